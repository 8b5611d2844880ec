//! Giving a Codex database's free pages back to the disk, while Codex is closed: Codex
//! deletes rows but never shrinks `thread_history_1.sqlite` (openai/codex#45231), and a
//! log database can stay at a gigabyte with most pages free (#35823).
//!
//! Protocol: prepare (path, bytes) → checkpoint the WAL into the file → digest every
//! table's rows and keep the file's bytes as a blob → `PRAGMA incremental_vacuum` where
//! `auto_vacuum` is incremental, else `VACUUM` (each one SQLite transaction: a crash leaves
//! the old pages or the new, never a mix) → checkpoint again, so the file shrinks and the
//! last close removes `-wal` and `-shm` → the rows digested again, equal → applied. Codex
//! then finds a smaller file in the journal mode it left, and nothing beside it.
//!
//! Undo writes the kept bytes back in place, but only while the database still holds the
//! very rows the op found: rows Codex wrote since are the user's, and putting the old file
//! back would drop them, so such a reclaim is left as it is (taken over by Codex).

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::row_digest::RowsDigest;
use super::{OpKind, OpRecord, Recovered, Run};
use crate::clock::{human_bytes, system_time_ns};
use crate::error::MaintError;
use crate::failpoint;
use crate::fs_atomic::{fsync_parent, temp_path_beside};
use crate::home::sessions::file_mode;
use crate::sqlite_read::{shm_path, wal_path};
use crate::store::{NewOp, Store};

pub const INCREMENTAL_VACUUM: &str = "incremental_vacuum";
pub const VACUUM: &str = "vacuum";
/// What an undo of a reclaim does: the kept bytes written back.
pub const PUT_BACK: &str = "put back";

/// What a database file is now, cheaply: a write by anyone changes one of these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileFacts {
    pub len: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    /// The `-wal` beside it, 0 when there is none.
    pub wal_len: u64,
}

impl FileFacts {
    pub fn of(db: &Path) -> Option<FileFacts> {
        let meta = fs::symlink_metadata(db).ok()?;
        Some(FileFacts {
            len: meta.len(),
            mtime_ns: meta.modified().map(system_time_ns).unwrap_or(0),
            inode: meta.ino(),
            wal_len: fs::metadata(wal_path(db)).map(|m| m.len()).unwrap_or(0),
        })
    }

    fn bytes(&self) -> u64 {
        self.len + self.wal_len
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReclaimDetail {
    pub database: PathBuf,
    /// `incremental_vacuum`, `vacuum`, or `put back` (an undo); set once it is known.
    pub method: Option<String>,
    /// The file and its `-wal`, as the op found them.
    pub bytes_before: u64,
    pub bytes_after: Option<u64>,
    pub page_size: Option<u64>,
    pub free_pages_before: Option<u64>,
    pub free_pages_after: Option<u64>,
    pub mode: u32,
    /// The file's mtime as the op found it: an undo gives the file back with it.
    #[serde(default)]
    pub mtime_ns: i64,
    /// Every table's rows when the op began: the same after, or the op is taken back.
    pub rows: Option<RowsDigest>,
    /// The file's bytes once its WAL was checkpointed into it, before the change: what an
    /// undo writes back. Set before anything but that checkpoint is done.
    pub blob: Option<String>,
    /// For an undo: the blob it writes back (the reclaim's `blob`).
    pub puts_back: Option<String>,
    pub after: Option<FileFacts>,
}

impl ReclaimDetail {
    /// The report's line for a finished op.
    pub fn line(&self, op_id: i64) -> String {
        let name = self
            .database
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(
            "{name}: {} before, {} after, by {} (op {op_id}); {} rows in {} tables read the same before and after",
            human_bytes(self.bytes_before),
            human_bytes(self.bytes_after.unwrap_or(self.bytes_before)),
            self.method.as_deref().unwrap_or("-"),
            self.rows.as_ref().map_or(0, RowsDigest::rows),
            self.rows
                .as_ref()
                .map_or(0, |r| r.tables.len().saturating_sub(1)),
        )
    }
}

/// What a reclaim did: its op, and whether there was anything to give back when it ran.
pub struct Reclaimed {
    pub op_id: i64,
    /// No free page when it ran (the op is rolled back, nothing was changed).
    pub nothing_free: bool,
    pub detail: ReclaimDetail,
}

/// Reclaims the free pages of `db`, measured now, as a journaled op of `run`.
pub fn execute(run: &Run, db: &Path) -> Result<Reclaimed> {
    execute_reverting(run, db, None)
}

fn execute_reverting(run: &Run, db: &Path, reverts_op: Option<i64>) -> Result<Reclaimed> {
    let (facts, mut detail) = begin(run, db)?;
    let op_id = prepare(run, OpKind::ReclaimDatabase, &facts, &detail, reverts_op)?;
    failpoint::hit("op-prepared");
    let conn = match open_writable(db) {
        Ok(c) => c,
        Err(e) => {
            run.store.catalog.mark_rolled_back(op_id)?;
            return Err(e);
        }
    };
    let kept = (|| -> Result<bool> {
        checkpoint(&conn, db)?;
        let page_size = pragma(&conn, "page_size")?;
        let free = pragma(&conn, "freelist_count")?;
        detail.page_size = Some(page_size);
        detail.free_pages_before = Some(free);
        if free == 0 {
            return Ok(false);
        }
        detail.method = Some(if pragma(&conn, "auto_vacuum")? == 2 {
            INCREMENTAL_VACUUM.into()
        } else {
            VACUUM.into()
        });
        detail.rows = Some(RowsDigest::of(&conn)?);
        detail.blob = Some(keep_bytes(run.store, db)?);
        run.store
            .catalog
            .update_detail(op_id, &super::detail::stored(&detail)?)?;
        Ok(true)
    })();
    match kept {
        Ok(true) => {}
        Ok(false) => {
            drop(conn);
            run.store.catalog.mark_rolled_back(op_id)?;
            return Ok(Reclaimed {
                op_id,
                nothing_free: true,
                detail,
            });
        }
        Err(e) => {
            drop(conn);
            run.store.catalog.mark_rolled_back(op_id)?;
            return Err(e);
        }
    }
    failpoint::hit("reclaim-kept");
    let sql = if detail.method.as_deref() == Some(INCREMENTAL_VACUUM) {
        "PRAGMA incremental_vacuum"
    } else {
        "VACUUM"
    };
    if let Err(e) = run_to_end(&conn, sql) {
        // One SQLite transaction that did not commit: the file is as it was.
        drop(conn);
        run.store.catalog.mark_rolled_back(op_id)?;
        return Err(anyhow::Error::from(e).context(format!("{sql} on {}", db.display())));
    }
    failpoint::hit("reclaim-vacuumed");
    checkpoint(&conn, db)?;
    detail.free_pages_after = Some(pragma(&conn, "freelist_count")?);
    let rows_now = RowsDigest::of(&conn)?;
    drop(conn);
    let recorded = detail.rows.as_ref().expect("set above");
    if rows_now != *recorded {
        // Never seen; but should SQLite ever change a row, the file goes back as it was.
        let differences = recorded.differences(&rows_now);
        put_back(
            run.store,
            db,
            detail.blob.as_deref().expect("set above"),
            detail.mode,
            detail.mtime_ns,
        )?;
        run.store.catalog.mark_rolled_back(op_id)?;
        bail!(
            "{} did not read the same after {sql} ({}); the file was put back as it was",
            db.display(),
            differences.join("; ")
        );
    }
    finish(run.store, op_id, &mut detail, db)?;
    Ok(Reclaimed {
        op_id,
        nothing_free: false,
        detail,
    })
}

/// Checks the paths and reads what the op starts from.
fn begin(run: &Run, db: &Path) -> Result<(FileFacts, ReclaimDetail)> {
    run.guard
        .ensure_all([db, wal_path(db).as_path(), shm_path(db).as_path()])?;
    let meta = fs::symlink_metadata(db).with_context(|| format!("reading {}", db.display()))?;
    anyhow::ensure!(
        meta.is_file(),
        "{} is not a regular file; not changed",
        db.display()
    );
    let facts = FileFacts::of(db).context("the database vanished")?;
    let detail = ReclaimDetail {
        database: db.to_path_buf(),
        method: None,
        bytes_before: facts.bytes(),
        bytes_after: None,
        page_size: None,
        free_pages_before: None,
        free_pages_after: None,
        mode: file_mode(&meta),
        mtime_ns: facts.mtime_ns,
        rows: None,
        blob: None,
        puts_back: None,
        after: None,
    };
    Ok((facts, detail))
}

fn prepare(
    run: &Run,
    kind: OpKind,
    facts: &FileFacts,
    detail: &ReclaimDetail,
    reverts_op: Option<i64>,
) -> Result<i64> {
    let path = crate::path_text::recorded_string(&detail.database)?;
    run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: kind.to_string(),
            src: path.clone(),
            dst: Some(path),
            size: Some(facts.bytes() as i64),
            mode: Some(detail.mode as i64),
            mtime_ns: Some(facts.mtime_ns),
            blob: detail.puts_back.clone(),
            detail: super::detail::stored(detail)?,
            reverts_op,
            ..Default::default()
        },
    )
}

/// Records what the file is once the op is done, and marks it applied.
fn finish(store: &Store, op_id: i64, detail: &mut ReclaimDetail, db: &Path) -> Result<()> {
    let after = FileFacts::of(db).context("the database vanished")?;
    detail.bytes_after = Some(after.bytes());
    detail.after = Some(after);
    store
        .catalog
        .update_detail(op_id, &super::detail::stored(&*detail)?)?;
    store
        .catalog
        .mark_applied(op_id, detail.puts_back.as_deref())?;
    failpoint::hit("op-applied");
    Ok(())
}

/// Codex's database opened for writing, never created: a missing file is an error.
fn open_writable(db: &Path) -> Result<Connection> {
    crate::regular_file::open(db).with_context(|| format!("reading {}", db.display()))?;
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

/// Moves every committed transaction of the WAL into the file and empties the WAL; a
/// reader or writer elsewhere (Codex, after all) makes it refuse.
fn checkpoint(conn: &Connection, db: &Path) -> Result<()> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .with_context(|| format!("checkpointing {}", db.display()))?;
    if busy != 0 {
        return Err(MaintError::refused(
            format!(
                "{} is in use by another process (is Codex running?); its WAL could not be checkpointed, nothing was changed",
                db.display()
            ),
            vec![],
        )
        .into());
    }
    Ok(())
}

/// Steps `sql` until it is done: `incremental_vacuum` frees one page per step, so a caller
/// that stops at its first row (as `execute_batch` does) frees one page.
fn run_to_end(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn pragma(conn: &Connection, name: &str) -> Result<u64> {
    let n: i64 = conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The file's bytes as a blob, read back as it is written.
fn keep_bytes(store: &Store, db: &Path) -> Result<String> {
    let blobs = store.blobs();
    let stored = blobs.put_file(db)?;
    store
        .catalog
        .record_blob(&stored.hash, stored.size, stored.stored_size)?;
    blobs.sync()?;
    Ok(stored.hash)
}

/// Writes the blob's bytes in place of `db`, with the mode and mtime it had, whole or not at all (a temporary beside it,
/// renamed over it). The `-wal` must be empty, as a checkpoint and close leave it: its
/// frames would otherwise be read as pages of the file put back. It and the `-shm`, which
/// only indexes it, are then removed, so SQLite finds the file alone, as it was kept.
fn put_back(store: &Store, db: &Path, hash: &str, mode: u32, mtime_ns: i64) -> Result<()> {
    let wal = wal_path(db);
    if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        bail!(
            "{} holds transactions not yet in {}; nothing was put back",
            wal.display(),
            db.display()
        );
    }
    let temp = temp_path_beside(db);
    store.blobs().restore_to(hash, &temp)?;
    let written = (|| -> Result<()> {
        let f = crate::regular_file::open_writable(&temp)?;
        crate::fs_atomic::set_mode(&f, mode)?;
        f.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(mtime_ns.max(0) as u64),
        )?;
        f.sync_all()?;
        failpoint::hit("reclaim-put-back-written");
        fs::rename(&temp, db)?;
        fsync_parent(db)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    for extra in [wal, shm_path(db)] {
        if fs::symlink_metadata(&extra).is_ok() {
            fs::remove_file(&extra)?;
        }
    }
    fsync_parent(db)?;
    Ok(())
}

fn rows_now(db: &Path) -> Result<Option<RowsDigest>> {
    RowsDigest::of_file_now(db, || FileFacts::of(db))
}

/// Why the rows of the op's database are not those it recorded; empty when they are.
fn rows_differ(op: &OpRecord, d: &ReclaimDetail) -> Vec<String> {
    let Some(recorded) = &d.rows else {
        return vec![format!("op {}: no rows were recorded", op.id)];
    };
    match rows_now(&d.database) {
        Ok(Some(now)) if now == *recorded => Vec::new(),
        Ok(Some(now)) => vec![format!(
            "op {}: {} does not hold the rows it held when the op ran ({})",
            op.id,
            d.database.display(),
            recorded.differences(&now).join("; ")
        )],
        Ok(None) => vec![format!(
            "op {}: {} has a WAL too large to read without writing; start and close Codex once to checkpoint it, then try again",
            op.id,
            d.database.display()
        )],
        Err(e) => vec![format!(
            "op {}: {} cannot be read ({e:#})",
            op.id,
            d.database.display()
        )],
    }
}

fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let mut detail = op.detail_as::<ReclaimDetail>()?.clone();
    let db = detail.database.clone();
    if op.kind == OpKind::ReclaimDatabase {
        // Before its blob is kept the op changed no page but by a checkpoint; after, the
        // vacuum is one SQLite transaction, done or not, and the rows are the same either way.
        if detail.blob.is_none() {
            store.catalog.mark_rolled_back(op.id)?;
            return Ok(Recovered::RolledBack);
        }
        finish(store, op.id, &mut detail, &db)?;
        return Ok(Recovered::RolledForward);
    }
    let Some(puts_back) = detail.puts_back.clone() else {
        store.catalog.mark_rolled_back(op.id)?;
        return Ok(Recovered::RolledBack);
    };
    // The rename is the undo's one step: the file is the kept bytes, or it is not.
    if crate::content_hash::hash_file(&db).ok().as_deref() == Some(puts_back.as_str()) {
        // What `put_back` had left to do: an empty `-wal`, and the `-shm` indexing it.
        if fs::metadata(wal_path(&db)).is_ok_and(|m| m.len() == 0) {
            let _ = fs::remove_file(wal_path(&db));
            let _ = fs::remove_file(shm_path(&db));
        }
        finish(store, op.id, &mut detail, &db)?;
        return Ok(Recovered::RolledForward);
    }
    store.catalog.mark_rolled_back(op.id)?;
    Ok(Recovered::RolledBack)
}

fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    let d = match op.detail_as::<ReclaimDetail>() {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    let mut conflicts = rows_differ(op, d);
    if op.kind == OpKind::ReclaimDatabase
        && !d
            .blob
            .as_deref()
            .is_some_and(|h| store.blobs().is_intact(h))
    {
        conflicts.push(format!(
            "op {}: the kept copy of {} is missing or damaged",
            op.id,
            d.database.display()
        ));
    }
    conflicts
}

/// Takes a reclaim back by writing the kept bytes in place; takes an undo back by
/// reclaiming again.
fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let d = op.detail_as::<ReclaimDetail>()?;
    if op.kind == OpKind::UnreclaimDatabase {
        let again = execute_reverting(run, &d.database, Some(op.id))?;
        if again.nothing_free {
            bail!(
                "{} has no free page to reclaim again; nothing was changed",
                d.database.display()
            );
        }
        return Ok(again.op_id);
    }
    let db = d.database.clone();
    let puts_back = d.blob.clone().context("the reclaim kept no copy")?;
    let (facts, mut detail) = begin(run, &db)?;
    detail.method = Some(PUT_BACK.into());
    detail.puts_back = Some(puts_back.clone());
    detail.rows = d.rows.clone();
    detail.mode = d.mode;
    let new_id = prepare(run, OpKind::UnreclaimDatabase, &facts, &detail, Some(op.id))?;
    failpoint::hit("op-prepared");
    let kept = (|| -> Result<()> {
        let conn = open_writable(&db)?;
        checkpoint(&conn, &db)?;
        // Checked again right before the file is replaced: a row written since the check
        // of the whole undo is the user's, and stays.
        let now = RowsDigest::of(&conn)?;
        if Some(&now) != d.rows.as_ref() {
            return Err(MaintError::refused(
                format!(
                    "{} changed since the undo was checked; nothing was put back",
                    db.display()
                ),
                d.rows
                    .as_ref()
                    .map(|r| r.differences(&now))
                    .unwrap_or_default(),
            )
            .into());
        }
        drop(conn);
        // The reclaimed file is kept too, so the undo is itself undoable and drops nothing.
        detail.blob = Some(keep_bytes(run.store, &db)?);
        run.store
            .catalog
            .update_detail(new_id, &super::detail::stored(&detail)?)?;
        Ok(())
    })();
    if let Err(e) = kept {
        run.store.catalog.mark_rolled_back(new_id)?;
        return Err(e);
    }
    failpoint::hit("reclaim-kept");
    put_back(run.store, &db, &puts_back, d.mode, d.mtime_ns)?;
    failpoint::hit("file-moved");
    finish(run.store, new_id, &mut detail, &db)?;
    Ok(new_id)
}

fn verify_live(op: &OpRecord) -> Vec<String> {
    match op.detail_as::<ReclaimDetail>() {
        Ok(d) => rows_differ(op, d),
        Err(e) => vec![e.to_string()],
    }
}

/// How Codex took the database over since the op: it wrote to the file (its facts are not
/// those the op left), so the rows that differ are its own.
pub fn taken_over(op: &OpRecord) -> Option<String> {
    let d = op.detail_as::<ReclaimDetail>().ok()?;
    let now = FileFacts::of(&d.database);
    (now.as_ref() != d.after.as_ref()).then(|| {
        format!(
            "Codex wrote to {} since the op: its rows are Codex's now, and the file stays as Codex left it",
            d.database.display()
        )
    })
}

pub struct DatabaseReclaim;

impl super::OpType for DatabaseReclaim {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::UnreclaimDatabase {
            "put back the database as it was before its reclaim"
        } else {
            "reclaimed the free pages of"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<ReclaimDetail>(json).map(super::OpDetail::Reclaim)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let db = PathBuf::from(&op.src);
        Ok(vec![wal_path(&db), shm_path(&db), db])
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<Recovered> {
        recover(store, op)
    }
    fn revert_conflicts(&self, store: &Store, op: &OpRecord) -> Vec<String> {
        revert_conflicts(store, op)
    }
    fn revert(&self, run: &Run, op: &OpRecord) -> Result<i64> {
        revert(run, op)
    }
    fn verify_live(&self, op: &OpRecord, _seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op)
    }
}
