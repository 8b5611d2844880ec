//! The transactional archive store (DESIGN.md "The store"): a folder outside the Codex
//! home holding our catalog, content-addressed blobs and backups, guarded by one lock.

pub mod backup;
pub mod blobs;
pub mod catalog;
pub mod migrations;
mod store_lock;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::MaintError;
pub use catalog::{Catalog, NewOp, OpRecord, OpState, RunRecord};
pub use store_lock::StoreLock;

pub const CATALOG_FILE: &str = "catalog.sqlite";

/// The store opened for writing: the lock is held for as long as this value lives.
pub struct Store {
    pub root: PathBuf,
    pub catalog: Catalog,
    _lock: StoreLock,
}

impl Store {
    /// Creates the store if needed (folders 0700), takes the writer lock, opens the
    /// catalog and brings its schema up to date.
    pub fn open_for_write(root: &Path) -> Result<Store> {
        create_private_dir(root)?;
        let lock = StoreLock::acquire(root)?;
        let path = root.join(CATALOG_FILE);
        let mut conn = Connection::open(&path)
            .with_context(|| format!("opening the catalog {}", path.display()))?;
        restrict_file(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        check_integrity(&conn, &path)?;
        migrations::apply_pending(&mut conn)?;
        Ok(Store {
            root: root.to_path_buf(),
            catalog: Catalog::new(conn),
            _lock: lock,
        })
    }

    pub fn blobs(&self) -> blobs::BlobStore {
        blobs::BlobStore::new(&self.root)
    }
}

/// Opens an existing catalog without the lock and without writing anything; `None` when
/// there is no store yet (nothing has ever been changed).
pub fn open_read_only(root: &Path) -> Result<Option<Catalog>> {
    let path = root.join(CATALOG_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening the catalog {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(Some(Catalog::new(conn)))
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
