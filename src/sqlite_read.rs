//! Opening a SQLite file (Codex's, or our own catalog when only reading) without writing a
//! byte beside it. A plain read-only connection may still write the `-shm` index and cannot
//! be trusted to leave mtimes alone, so: a database without a pending WAL is opened
//! `immutable`, one with a WAL is copied (with its WAL) to a private temporary folder and
//! read there.

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Above this size a database with a pending WAL is read from its main file alone rather
/// than copied: a consistent snapshot as of the last checkpoint, said so in the report.
const COPY_LIMIT: u64 = 256 << 20;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Snapshot {
    /// No pending WAL: what was read is the whole database.
    Whole,
    /// Read from a private copy of the file and its WAL.
    CopiedWithWal,
    /// The WAL (this many bytes) was too large to copy; its transactions are not seen.
    MainFileOnly { wal_bytes: u64 },
}

pub struct ReadOnlyDb {
    pub conn: Connection,
    pub snapshot: Snapshot,
    _copy: Option<tempfile::TempDir>,
}

impl ReadOnlyDb {
    /// The connection with the private copy it reads, which must outlive it.
    pub fn into_parts(self) -> (Connection, Option<tempfile::TempDir>) {
        (self.conn, self._copy)
    }
}

pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

pub fn shm_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

pub fn open(db: &Path) -> Result<ReadOnlyDb> {
    // SQLite's own open would wait forever on a FIFO named like a database.
    crate::regular_file::open(db).with_context(|| format!("reading {}", db.display()))?;
    let wal_bytes = std::fs::metadata(wal_path(db))
        .map(|m| m.len())
        .unwrap_or(0);
    let db_bytes = std::fs::metadata(db)
        .with_context(|| format!("reading {}", db.display()))?
        .len();
    if wal_bytes == 0 || db_bytes + wal_bytes > COPY_LIMIT {
        let conn = open_immutable(db)?;
        let snapshot = if wal_bytes == 0 {
            Snapshot::Whole
        } else {
            Snapshot::MainFileOnly { wal_bytes }
        };
        return Ok(ReadOnlyDb {
            conn,
            snapshot,
            _copy: None,
        });
    }
    let dir = tempfile::Builder::new()
        .prefix("codex-maint-read-")
        .tempdir()?;
    let copy = dir.path().join(db.file_name().unwrap_or_default());
    std::fs::copy(db, &copy).with_context(|| format!("reading {}", db.display()))?;
    std::fs::copy(wal_path(db), wal_path(&copy))
        .with_context(|| format!("reading the WAL of {}", db.display()))?;
    let conn = Connection::open(&copy)?;
    Ok(ReadOnlyDb {
        conn,
        snapshot: Snapshot::CopiedWithWal,
        _copy: Some(dir),
    })
}

fn open_immutable(db: &Path) -> Result<Connection> {
    let uri = format!("file:{}?mode=ro&immutable=1", uri_escape(db));
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", db.display()))
}

/// SQLite decodes `%HH` in a URI to that byte, so escaping every byte outside ASCII names
/// the file exactly, even one whose name is not UTF-8; a lossy text would open another file.
#[cfg(unix)]
fn uri_escape(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'%' | b'?' | b'#' | 0x80.. => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

#[cfg(not(unix))]
fn uri_escape(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_wal_database_sees_pending_rows_and_changes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state_5.sqlite");
        let writer = Connection::open(&db).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1),(2);")
            .unwrap();
        let before = crate::test_support::tree_fingerprint(dir.path());
        let read = open(&db).unwrap();
        let n: i64 = read
            .conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        assert!(matches!(read.snapshot, Snapshot::CopiedWithWal));
        drop(read);
        assert_eq!(before, crate::test_support::tree_fingerprint(dir.path()));
        drop(writer);
    }

    /// A lossy spelling of `d\xff` is `d\u{fffd}`, a different folder that may exist.
    #[cfg(unix)]
    #[test]
    fn a_database_under_a_name_that_is_not_utf8_is_the_one_opened() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        for (folder, value) in [(&b"d\xff"[..], 1), ("d\u{fffd}".as_bytes(), 2)] {
            let folder = dir.path().join(std::ffi::OsStr::from_bytes(folder));
            std::fs::create_dir(&folder).unwrap();
            Connection::open(folder.join("x.sqlite"))
                .unwrap()
                .execute_batch(&format!(
                    "CREATE TABLE t(x); INSERT INTO t VALUES ({value});"
                ))
                .unwrap();
        }
        let db = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"d\xff/x.sqlite"));
        let read = open(&db).unwrap();
        let x: i64 = read
            .conn
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 1);
    }
}
