//! The transactional archive store (DESIGN.md "The store"): a folder outside the Codex
//! home holding our catalog, content-addressed blobs and backups, guarded by one lock.

pub mod backup;
pub mod blobs;
pub mod catalog;
pub mod folder;
pub mod migrations;
pub mod pack;
mod read_back;
pub mod retention;
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
    /// Creates the store if needed (folders 0700, built whole then renamed into place, see
    /// `folder`), takes the writer lock, opens the catalog and brings its schema up to date.
    /// A folder that lost its catalog is refused, never started afresh.
    pub fn open_for_write(root: &Path) -> Result<Store> {
        let found = folder::look_at(root)?;
        folder::create(root, found).map_err(|e| refuse_if_read_only(root, e))?;
        let lock = StoreLock::acquire(root).map_err(|e| refuse_if_read_only(root, e))?;
        let path = root.join(CATALOG_FILE);
        // Opened only once it exists: SQLite would otherwise make an empty one.
        let mut conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the catalog {}", path.display()))?;
        check_catalog(&conn, root)?;
        restrict_file(&path)?;
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
        removed.extend(self.objects().remove_temp_files());
        removed.extend(folder::remove_abandoned_builds_inside(&self.root));
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
    if !exists(root)? {
        return Ok(None);
    }
    let path = root.join(CATALOG_FILE);
    let db = crate::sqlite_read::open(&path)
        .with_context(|| format!("opening the catalog {}", path.display()))?;
    check_catalog(&db.conn, root)?;
    Ok(Some(Catalog::read_only(db)))
}

/// Whether a store with a catalog is at `root`: `false` where nothing was ever recorded
/// (no folder, or one not started yet), and a refusal (exit 3) for a folder that lost its
/// catalog or is no folder at all. Nothing is written.
pub fn exists(root: &Path) -> Result<bool> {
    Ok(folder::look_at(root)? == folder::StoreFolder::Catalog)
}

/// Whether `err` comes of a folder that cannot be written: a read-only mount, or one this
/// user may not write.
pub fn is_read_only_error(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            )
        })
}

/// A store that cannot be written (a read-only mount, or folders this user may not
/// write) is refused before anything is opened for writing: a plain I/O error would read
/// as a fault of the tool, and the user needs to hear that nothing was changed.
fn refuse_if_read_only(root: &Path, err: anyhow::Error) -> anyhow::Error {
    if !is_read_only_error(&err) {
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

/// The catalog must be one this binary understands, with its tables: a catalog without
/// them means the history was lost (a new store's catalog is created with its schema, and
/// renamed into place only then), and starting afresh would hide that for good.
fn check_catalog(conn: &Connection, root: &Path) -> Result<()> {
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
        return Err(MaintError::refused(
            format!(
                "the catalog {} has no tables: the history of what codex-maint changed is lost or truncated, and a fresh one would hide that; nothing was changed. Put back a good copy of the catalog; {}",
                path.display(),
                folder::start_over(root)
            ),
            vec![path.display().to_string()],
        )
        .into());
    }
    if tables.iter().any(|t| t == "schema_migrations") {
        let newest: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(|e| unreadable(&path, e))?;
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
    Ok(())
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> MaintError {
    MaintError::refused(
        format!(
            "the catalog {} cannot be read ({e}); nothing was changed",
            path.display()
        ),
        vec![],
    )
}

/// Every writer checks the catalog before it records anything, with `quick_check`: every
/// page, b-tree and record. The full `integrity_check` (each index against its table) is
/// `verify`'s: at 100,000 retired sessions the catalog is 335 MB, and the full check took
/// 0.84 s of a 0.95 s `restore` of one session, against 0.18 s for `quick_check`.
fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let problems =
        crate::sqlite_check::problems(conn, crate::sqlite_check::IntegrityCheck::QuickCheck)
            .map_err(|e| unreadable(path, e))?;
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
