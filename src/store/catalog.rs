//! Reads and writes of the catalog tables. Each write is its own committed transaction:
//! the journal's guarantees come from the order of these commits around the disk changes.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use crate::clock::now_rfc3339;

mod compacted;
mod lean_detail;
mod live;
pub use compacted::{JOURNAL_FORMAT, JournalLine, LINE_COLUMNS};
use lean_detail::OwnValues;
pub use live::RetiredSession;
pub use live::live_page_size;

/// An op's detail as it was written, from its stored text and the op's own columns (see
/// `lean_detail`): for readers that select the detail themselves.
pub fn full_detail(
    src: &str,
    dst: Option<&str>,
    hash_before: Option<&str>,
    stored: String,
) -> String {
    lean_detail::expand(
        stored,
        &OwnValues {
            src: Some(src),
            dst,
            hash_before,
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    Prepared,
    Applied,
    RolledBack,
}

impl OpState {
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Prepared => "prepared",
            OpState::Applied => "applied",
            OpState::RolledBack => "rolled_back",
        }
    }
    fn parse(text: &str) -> rusqlite::Result<OpState> {
        match text {
            "prepared" => Ok(OpState::Prepared),
            "applied" => Ok(OpState::Applied),
            "rolled_back" => Ok(OpState::RolledBack),
            other => Err(rusqlite::Error::InvalidColumnType(
                0,
                format!("unknown op state {other}"),
                rusqlite::types::Type::Text,
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub args: Vec<String>,
    pub home: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub reverts_run: Option<i64>,
    pub op_counts: OpCounts,
    /// When `forget` ended this run's undo history; its lines stay readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgotten_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OpCounts {
    pub applied: i64,
    pub prepared: i64,
    pub rolled_back: i64,
    pub reverted: i64,
    pub bytes: i64,
}

/// Everything needed to finish an op or take it back, written before it acts.
#[derive(Debug, Clone, Default)]
pub struct NewOp {
    pub kind: String,
    pub src: String,
    pub dst: Option<String>,
    pub size: Option<i64>,
    pub mode: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub hash_before: Option<String>,
    pub blob: Option<String>,
    pub detail: Value,
    pub reverts_op: Option<i64>,
}

/// An op as its row stands: kind and detail are the catalog's text, which the `ops` layer
/// reads into its typed record, because only it knows what each kind's detail holds.
#[derive(Debug, Clone)]
pub struct StoredOp {
    pub id: i64,
    pub run_id: i64,
    pub seq: i64,
    pub kind: String,
    pub state: OpState,
    pub src: String,
    pub dst: Option<String>,
    pub size: Option<i64>,
    pub mode: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub hash_before: Option<String>,
    pub hash_after: Option<String>,
    pub blob: Option<String>,
    pub detail: String,
    pub reverts_op: Option<i64>,
    pub reverted_by: Option<i64>,
    pub prepared_at: String,
    pub finished_at: Option<String>,
}

const OP_COLUMNS: &str = "id, run_id, seq, kind, state, src, dst, size, mode, mtime_ns, hash_before, \
     hash_after, blob, detail, reverts_op, reverted_by, prepared_at, finished_at";

fn op_from_row(row: &Row<'_>) -> rusqlite::Result<StoredOp> {
    let src: String = row.get(5)?;
    let dst: Option<String> = row.get(6)?;
    let hash_before: Option<String> = row.get(10)?;
    let detail = full_detail(&src, dst.as_deref(), hash_before.as_deref(), row.get(13)?);
    Ok(StoredOp {
        id: row.get(0)?,
        run_id: row.get(1)?,
        seq: row.get(2)?,
        kind: row.get(3)?,
        state: OpState::parse(&row.get::<_, String>(4)?)?,
        src,
        dst,
        size: row.get(7)?,
        mode: row.get(8)?,
        mtime_ns: row.get(9)?,
        hash_before,
        hash_after: row.get(11)?,
        blob: row.get(12)?,
        detail,
        reverts_op: row.get(14)?,
        reverted_by: row.get(15)?,
        prepared_at: row.get(16)?,
        finished_at: row.get(17)?,
    })
}

/// Its `WHERE` is the partial index `ops_creating_dirs`'s own, word for word: SQLite uses a
/// partial index only for a query whose terms imply the index's.
pub(crate) const CREATED_DIR_LISTS: &str = "SELECT id, src, dst, hash_before, detail FROM ops
     WHERE json_array_length(json_extract(detail, '$.created_dirs')) > 0 ORDER BY id";

pub struct Catalog {
    conn: Connection,
    /// Named in every failed write, so "disk is full" says which disk and which file.
    path: Option<std::path::PathBuf>,
    /// A private copy read instead of the catalog itself; dropped after `conn`.
    _snapshot: Option<tempfile::TempDir>,
}

impl Catalog {
    pub fn new(conn: Connection) -> Self {
        Catalog {
            conn,
            path: None,
            _snapshot: None,
        }
    }

    /// The catalog of the file at `path`, which failed writes name.
    pub fn at(conn: Connection, path: &std::path::Path) -> Self {
        Catalog {
            conn,
            path: Some(path.to_path_buf()),
            _snapshot: None,
        }
    }

    fn writing<T>(&self, result: rusqlite::Result<T>) -> Result<T> {
        result.with_context(|| match &self.path {
            Some(p) => format!(
                "writing the catalog {} (the journal keeps every finished step; `codex-maint recover` settles the rest once there is room)",
                p.display()
            ),
            None => "writing the catalog".to_string(),
        })
    }

    /// A catalog read through `sqlite_read`: nothing beside the file is written.
    pub fn read_only(db: crate::sqlite_read::ReadOnlyDb) -> Self {
        let (conn, snapshot) = db.into_parts();
        Catalog {
            conn,
            path: None,
            _snapshot: snapshot,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn begin_run(
        &self,
        command: &str,
        args: &[String],
        home: &str,
        reverts_run: Option<i64>,
    ) -> Result<i64> {
        self.writing(self.conn.execute(
            "INSERT INTO runs (command, args, home, started_at, status, reverts_run)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
            params![
                command,
                serde_json::to_string(args)?,
                home,
                now_rfc3339(),
                reverts_run
            ],
        ))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&self, run_id: i64, status: &str) -> Result<()> {
        self.writing(self.conn.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
            params![run_id, status, now_rfc3339()],
        ))?;
        Ok(())
    }

    /// Runs still marked running belong to a process that died; recovery closes them.
    pub fn mark_unfinished_runs_interrupted(&self) -> Result<Vec<i64>> {
        let ids = self.ids("SELECT id FROM runs WHERE status = 'running' ORDER BY id")?;
        self.writing(self.conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1 WHERE status = 'running'",
            [now_rfc3339()],
        ))?;
        Ok(ids)
    }

    /// The write-ahead step: the op is durable before anything on disk changes.
    pub fn prepare_op(&self, run_id: i64, op: &NewOp) -> Result<i64> {
        Ok(self.prepare_ops(run_id, std::slice::from_ref(op))?[0])
    }

    /// Prepares a batch in one commit: one fsync for the lot, the same guarantee for each.
    pub fn prepare_ops(&self, run_id: i64, ops: &[NewOp]) -> Result<Vec<i64>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut ids = Vec::with_capacity(ops.len());
        for op in ops {
            ids.push(Self::insert_op(&tx, run_id, op)?);
        }
        self.writing(tx.commit())?;
        Ok(ids)
    }

    fn insert_op(conn: &Connection, run_id: i64, op: &NewOp) -> Result<i64> {
        // Cached statements: a batch inserts hundreds of ops, and parsing the SQL each time
        // showed in profiles.
        let seq: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM ops WHERE run_id = ?1")?
            .query_row([run_id], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO ops (run_id, seq, kind, state, src, dst, size, mode, mtime_ns, hash_before,
                              blob, detail, reverts_op, prepared_at)
                          VALUES (?1, ?2, ?3, 'prepared', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
                run_id,
                seq,
                op.kind,
                op.src,
                op.dst,
                op.size,
                op.mode,
                op.mtime_ns,
                op.hash_before,
                op.blob,
                lean_detail::compact(
                    &op.detail,
                    &OwnValues {
                        src: Some(&op.src),
                        dst: op.dst.as_deref(),
                        hash_before: op.hash_before.as_deref(),
                    }
                )?,
                                op.reverts_op,
                now_rfc3339()
            ])?;
        Ok(conn.last_insert_rowid())
    }

    pub fn mark_applied(&self, op_id: i64, hash_after: Option<&str>) -> Result<()> {
        self.mark_applied_many(&[(op_id, hash_after.map(str::to_string))])
    }

    /// Marks ops applied and, for inverse ops, their originals as reverted, in one
    /// transaction so the two can never disagree.
    pub fn mark_applied_many(&self, ops: &[(i64, Option<String>)]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        let now = now_rfc3339();
        for (op_id, hash_after) in ops {
            tx.prepare_cached(
                "UPDATE ops SET state = 'applied', hash_after = COALESCE(?2, hash_after), finished_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![op_id, hash_after, now])?;
            tx.prepare_cached(
                "UPDATE ops SET reverted_by = ?1 WHERE id = (SELECT reverts_op FROM ops WHERE id = ?1)",
            )?
            .execute([op_id])?;
        }
        self.writing(tx.commit())?;
        Ok(())
    }

    /// For ops whose content went into a blob: record it as the op's blob and mark applied.
    pub fn update_blob_and_applied(&self, op_id: i64, blob: Option<&str>) -> Result<()> {
        self.writing(self.conn.execute(
            "UPDATE ops SET blob = ?2, hash_before = COALESCE(hash_before, ?2) WHERE id = ?1",
            params![op_id, blob],
        ))?;
        self.mark_applied(op_id, blob)
    }

    pub fn mark_rolled_back(&self, op_id: i64) -> Result<()> {
        self.writing(self.conn.execute(
            "UPDATE ops SET state = 'rolled_back', finished_at = ?2 WHERE id = ?1",
            params![op_id, now_rfc3339()],
        ))?;
        Ok(())
    }

    /// Records, for ops prepared before their source could be hashed (the hash is taken in
    /// the same pass that transforms it), that hash and the detail that goes with it, in
    /// one commit, before anything the ops do becomes visible.
    pub fn record_source_hashes(&self, ops: &[(i64, String, Value)]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        for (op_id, hash_before, detail) in ops {
            let (src, dst) = Self::paths_of(&tx, *op_id)?;
            let stored = lean_detail::compact(
                detail,
                &OwnValues {
                    src: Some(&src),
                    dst: dst.as_deref(),
                    hash_before: Some(hash_before),
                },
            )?;
            tx.prepare_cached("UPDATE ops SET hash_before = ?2, detail = ?3 WHERE id = ?1")?
                .execute(params![op_id, hash_before, stored])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn update_detail(&self, op_id: i64, detail: &Value) -> Result<()> {
        let (src, dst) = Self::paths_of(&self.conn, op_id)?;
        let hash_before: Option<String> =
            self.conn
                .query_row("SELECT hash_before FROM ops WHERE id = ?1", [op_id], |r| {
                    r.get(0)
                })?;
        let stored = lean_detail::compact(
            detail,
            &OwnValues {
                src: Some(&src),
                dst: dst.as_deref(),
                hash_before: hash_before.as_deref(),
            },
        )?;
        self.writing(self.conn.execute(
            "UPDATE ops SET detail = ?2 WHERE id = ?1",
            params![op_id, stored],
        ))?;
        Ok(())
    }

    fn paths_of(conn: &Connection, op_id: i64) -> Result<(String, Option<String>)> {
        Ok(conn
            .prepare_cached("SELECT src, dst FROM ops WHERE id = ?1")?
            .query_row([op_id], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    /// The op `op_id`, from its row or, once its run was compacted, its journal line.
    pub fn op(&self, op_id: i64) -> Result<Option<StoredOp>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {OP_COLUMNS} FROM ops WHERE id = ?1"),
                [op_id],
                op_from_row,
            )
            .optional()?;
        match row {
            Some(op) => Ok(Some(op)),
            None => self.compacted_op(op_id),
        }
    }

    pub fn ops_in_state(&self, state: OpState) -> Result<Vec<StoredOp>> {
        self.query_ops(
            &format!("SELECT {OP_COLUMNS} FROM ops WHERE state = ?1 ORDER BY id"),
            params![state.as_str()],
        )
    }

    /// A page of a run's ops in `seq` order, after `after_seq`: a run of 100,000 ops is
    /// checked a page at a time.
    pub fn ops_of_run_after(
        &self,
        run_id: i64,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredOp>> {
        self.query_ops(
            &format!(
                "SELECT {OP_COLUMNS} FROM ops WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ),
            params![run_id, after_seq, limit as i64],
        )
    }

    fn query_ops(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<StoredOp>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(args, op_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn ids(&self, sql: &str) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let forgotten_at = if self.knows_forgetting() {
            "(SELECT forgotten_at FROM forgotten_runs f WHERE f.run_id = r.id)"
        } else {
            "NULL"
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.id, r.command, r.args, r.home, r.started_at, r.finished_at, r.status, r.reverts_run,
                    COALESCE(SUM(o.state = 'applied'), 0), COALESCE(SUM(o.state = 'prepared'), 0),
                    COALESCE(SUM(o.state = 'rolled_back'), 0), COALESCE(SUM(o.reverted_by IS NOT NULL), 0),
                    COALESCE(SUM(CASE WHEN o.state = 'applied' THEN o.size END), 0), {forgotten_at}
             FROM runs r LEFT JOIN ops o ON o.run_id = r.id
             GROUP BY r.id ORDER BY r.id"
        ))?;
        let rows = stmt.query_map([], |r| {
            let args: String = r.get(2)?;
            Ok(RunRecord {
                id: r.get(0)?,
                command: r.get(1)?,
                args: serde_json::from_str(&args).unwrap_or_default(),
                home: r.get(3)?,
                started_at: r.get(4)?,
                finished_at: r.get(5)?,
                status: r.get(6)?,
                reverts_run: r.get(7)?,
                op_counts: OpCounts {
                    applied: r.get(8)?,
                    prepared: r.get(9)?,
                    rolled_back: r.get(10)?,
                    reverted: r.get(11)?,
                    bytes: r.get(12)?,
                },
                forgotten_at: r.get(13)?,
            })
        })?;
        let mut runs = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        self.add_compacted_counts(&mut runs)?;
        Ok(runs)
    }

    pub fn run(&self, run_id: i64) -> Result<Option<RunRecord>> {
        Ok(self.runs()?.into_iter().find(|r| r.id == run_id))
    }

    /// Threads that have a handoff document on record.
    pub fn threads_with_handoff(&self) -> Result<std::collections::HashSet<String>> {
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'handoffs')",
            [],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(Default::default());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT thread_id FROM handoffs")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn record_handoff(
        &self,
        thread_id: &str,
        path: &str,
        doc_hash: &str,
        transcript_hash: Option<&str>,
        transcript_size: Option<u64>,
    ) -> Result<i64> {
        self.writing(self.conn.execute(
            "INSERT INTO handoffs (thread_id, path, created_at, doc_hash, transcript_hash, transcript_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![thread_id, path, now_rfc3339(), doc_hash, transcript_hash, transcript_size.map(|s| s as i64)],
        ))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn record_blob(&self, hash: &str, size: u64, stored_size: u64) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO blobs (hash, size, stored_size, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![hash, size as i64, stored_size as i64, now_rfc3339()],
            )
            .context("recording a blob")?;
        Ok(())
    }

    pub fn blob_hashes(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT hash, size FROM blobs ORDER BY hash")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
