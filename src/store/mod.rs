//! The transactional archive store (DESIGN.md "The store"): a folder outside the Codex
//! home holding our catalog, content-addressed blobs and backups, guarded by one lock.

pub mod backup;
pub mod blobs;
pub mod catalog;
pub mod migrations;
mod read_back;
mod store_lock;

use anyhow::{Context, Result};
use rusqlite::Connection;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::MaintError;
pub use catalog::{Catalog, NewOp, OpState, RunRecord, StoredOp};
pub use store_lock::{StoreLock, lock_exclusive_waiting};

pub const CATALOG_FILE: &str = "catalog.sqlite";

/// The store opened by a command: for writing (the lock held for as long as this value
/// lives), or for a dry run's reading (no lock, nothing written).
pub struct Store {
    pub root: PathBuf,
    pub catalog: Catalog,
    _lock: Option<StoreLock>,
    /// The lock on the Codex home this store writes in, taken before the store's own.
    _home_lock: Option<crate::home_lock::HomeLock>,
}

impl Store {
    /// Creates the store if needed (folders 0700), takes the writer lock, opens the
    /// catalog and brings its schema up to date.
    pub fn open_for_write(root: &Path) -> Result<Store> {
        create_private_dir(root).map_err(|e| refuse_if_read_only(root, e))?;
        let lock = StoreLock::acquire(root).map_err(|e| refuse_if_read_only(root, e))?;
        let path = root.join(CATALOG_FILE);
        let history = history_dirs(root);
        if !path.exists() && !history.is_empty() {
            return Err(MaintError::refused(
                format!(
                    "the catalog {} is missing, but the store holds stored copies or backups ({}); a fresh catalog would hide them, so nothing was changed. Put back the catalog",
                    path.display(),
                    history.join(", ")
                ),
                history,
            )
            .into());
        }
        let mut conn = Connection::open(&path)
            .with_context(|| format!("opening the catalog {}", path.display()))?;
        restrict_file(&path)?;
        check_catalog(&conn, root)?;
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")
        };
        setup().map_err(|e| {
            MaintError::failed(format!(
                "cannot write the catalog {} ({e}); nothing was changed. Is the store read-only or its disk full?",
                path.display()
            ))
        })?;
        check_integrity(&conn, &path)?;
        migrations::apply_pending(&mut conn).with_context(|| {
            format!(
                "bringing the catalog {} up to date; nothing else was changed",
                path.display()
            )
        })?;
        Ok(Store {
            root: root.to_path_buf(),
            catalog: Catalog::at(conn, &path),
            _lock: Some(lock),
            _home_lock: None,
        })
    }

    /// The store as a dry run sees it: the catalog read without the lock and without a
    /// byte written (not even SQLite's `-shm`); `None` when there is no store yet.
    pub fn open_read_only(root: &Path) -> Result<Option<Store>> {
        Ok(open_read_only(root)?.map(|catalog| Store {
            root: root.to_path_buf(),
            catalog,
            _lock: None,
            _home_lock: None,
        }))
    }

    /// The store opened for writing in a Codex home whose lock `home_lock` is: held until
    /// the store is dropped. The home is locked first, always: two runs that take the same
    /// two locks in the same order never wait on each other in a cycle, so a writer with
    /// another store on this home, or another home on this store, waits then refuses.
    pub fn open_for_write_in(root: &Path, home_lock: crate::home_lock::HomeLock) -> Result<Store> {
        let mut store = Store::open_for_write(root)?;
        store._home_lock = Some(home_lock);
        Ok(store)
    }

    pub fn blobs(&self) -> blobs::BlobStore {
        blobs::BlobStore::new(&self.root)
    }

    /// Removes the temporary files a killed run left in the store: half-written blobs and
    /// backup manifests. Only the lock holder calls this, so no writer is filling one.
    pub fn remove_temp_files(&self) -> Vec<PathBuf> {
        let mut removed = self.blobs().remove_temp_blobs();
        if let Ok(backups) = fs::read_dir(self.root.join("backups")) {
            for b in backups.flatten() {
                if b.file_type().is_ok_and(|t| t.is_dir()) {
                    removed.extend(crate::fs_atomic::remove_temp_files_in(&b.path()));
                }
            }
        }
        removed
    }
}

/// Opens an existing catalog without the lock and without writing anything; `None` when
/// there is no store yet (nothing has ever been changed).
pub fn open_read_only(root: &Path) -> Result<Option<Catalog>> {
    let path = root.join(CATALOG_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let db = crate::sqlite_read::open(&path)
        .with_context(|| format!("opening the catalog {}", path.display()))?;
    if !check_catalog(&db.conn, root)? {
        // An empty catalog of an empty store: as if nothing had ever been changed.
        return Ok(None);
    }
    Ok(Some(Catalog::read_only(db)))
}

/// A store that cannot be written (a read-only mount, or folders this user may not
/// write) is refused before anything is opened for writing: a plain I/O error would read
/// as a fault of the tool, and the user needs to hear that nothing was changed.
fn refuse_if_read_only(root: &Path, err: anyhow::Error) -> anyhow::Error {
    let read_only = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            )
        });
    if !read_only {
        return err;
    }
    MaintError::refused(
        format!(
            "the store {} is read-only ({err:#}); nothing was changed. Make it writable, or point --store at a writable folder; `verify`, `log` and dry runs still read it",
            root.display()
        ),
        vec![root.display().to_string()],
    )
    .into()
}

/// Folders of the store that hold what only the catalog can explain.
const HISTORY_DIRS: &[&str] = &["blobs", "backups"];

fn history_dirs(root: &Path) -> Vec<String> {
    HISTORY_DIRS
        .iter()
        .map(|d| root.join(d))
        .filter(|d| fs::read_dir(d).is_ok_and(|mut it| it.next().is_some()))
        .map(|d| d.display().to_string())
        .collect()
}

/// The catalog must be one this binary understands, and an empty one is accepted only for
/// a store with nothing in it: an empty or truncated catalog beside stored blobs means the
/// history was lost, and starting a fresh one would hide that (and every stored copy) for
/// good. Returns whether the catalog has its tables yet.
fn check_catalog(conn: &Connection, root: &Path) -> Result<bool> {
    let path = root.join(CATALOG_FILE);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| {
            MaintError::refused(
                format!(
                    "the catalog {} cannot be read ({e}): it is damaged or not a codex-maint catalog; nothing was changed. Put back a good copy, or run `codex-maint verify`",
                    path.display()
                ),
                vec![path.display().to_string()],
            )
        })?;
    if tables.is_empty() {
        let history = history_dirs(root);
        if !history.is_empty() {
            return Err(MaintError::refused(
                format!(
                    "the catalog {} is empty, but the store holds stored copies or backups ({}): its history was lost or truncated, and a fresh catalog would hide them; nothing was changed. Put back a good copy of the catalog",
                    path.display(),
                    history.join(", ")
                ),
                history,
            )
            .into());
        }
        return Ok(false);
    }
    if tables.iter().any(|t| t == "schema_migrations") {
        let newest: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(|e| {
                MaintError::refused(
                    format!(
                        "the catalog {} cannot be read ({e}); nothing was changed",
                        path.display()
                    ),
                    vec![],
                )
            })?;
        let known = migrations::latest_version();
        if let Some(newest) = newest.filter(|v| *v > known) {
            return Err(MaintError::refused(
                format!(
                    "the catalog {} has format {newest}, written by a newer codex-maint; this one knows formats up to {known}. Nothing was changed: upgrade codex-maint",
                    path.display()
                ),
                vec![],
            )
            .into());
        }
    }
    Ok(true)
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let problems = crate::sqlite_check::integrity_problems(conn).map_err(|e| {
        MaintError::refused(
            format!(
                "the catalog {} cannot be read ({e}); nothing was changed",
                path.display()
            ),
            vec![],
        )
    })?;
    if !problems.is_empty() {
        return Err(MaintError::refused(
            format!(
                "the catalog {} fails its integrity check; nothing was changed. Run `codex-maint verify` for details",
                path.display()
            ),
            problems,
        )
        .into());
    }
    Ok(())
}

pub fn create_private_dir(dir: &Path) -> Result<()> {
    let created = crate::fs_atomic::create_dirs_recording(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    for d in created {
        restrict_dir(&d)?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

#[cfg(unix)]
pub fn restrict_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(not(unix))]
pub fn restrict_file(_path: &Path) -> Result<()> {
    Ok(())
}
