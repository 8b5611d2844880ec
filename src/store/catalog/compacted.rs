//! Compacted journals (catalog format 6, docs/store-format.md "Compacted journals"): the
//! ops of a forgotten run that nothing in force reads any more are held as one zstd frame
//! of JSON lines, one per op with every column as it stood, instead of as rows with their
//! indexes. Every reader of a run's, a session's or an op's lines reads them here too, so
//! `log` shows a compacted run as it showed it before.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use rusqlite::params;
use serde_json::Value;

use super::{Catalog, OP_COLUMNS, OpState, RunRecord, StoredOp, full_detail};

/// The layout of a record's lines; a record of another format is refused, not guessed at.
pub const JOURNAL_FORMAT: i64 = 1;

/// One op as its row stood when it was compacted. The detail is the stored (lean) text,
/// expanded on read as a row's is; `run_id` is the record's own.
#[derive(Debug, Serialize, Deserialize)]
pub struct JournalLine {
    pub id: i64,
    pub seq: i64,
    pub kind: String,
    pub state: String,
    pub src: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts_op: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_by: Option<i64>,
    pub prepared_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// The `ops` columns a line is read from, the detail as stored.
pub const LINE_COLUMNS: &str = "id, seq, kind, state, src, dst, size, mode, mtime_ns, hash_before, \
     hash_after, blob, detail, reverts_op, reverted_by, prepared_at, finished_at";

impl JournalLine {
    /// A row selected with `LINE_COLUMNS`.
    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<JournalLine> {
        Ok(JournalLine {
            id: row.get(0)?,
            seq: row.get(1)?,
            kind: row.get(2)?,
            state: row.get(3)?,
            src: row.get(4)?,
            dst: row.get(5)?,
            size: row.get(6)?,
            mode: row.get(7)?,
            mtime_ns: row.get(8)?,
            hash_before: row.get(9)?,
            hash_after: row.get(10)?,
            blob: row.get(11)?,
            detail: row.get(12)?,
            reverts_op: row.get(13)?,
            reverted_by: row.get(14)?,
            prepared_at: row.get(15)?,
            finished_at: row.get(16)?,
        })
    }

    fn into_stored(self, run_id: i64) -> Result<StoredOp> {
        let detail = full_detail(
            &self.src,
            self.dst.as_deref(),
            self.hash_before.as_deref(),
            self.detail,
        );
        Ok(StoredOp {
            id: self.id,
            run_id,
            seq: self.seq,
            kind: self.kind,
            state: OpState::parse(&self.state)?,
            src: self.src,
            dst: self.dst,
            size: self.size,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            hash_before: self.hash_before,
            hash_after: self.hash_after,
            blob: self.blob,
            detail,
            reverts_op: self.reverts_op,
            reverted_by: self.reverted_by,
            prepared_at: self.prepared_at,
            finished_at: self.finished_at,
        })
    }
}

/// The lines of a record, by seq.
pub fn decode(run_id: i64, format: i64, frame: &[u8]) -> Result<Vec<JournalLine>> {
    known_format(run_id, format)?;
    let text = zstd::stream::decode_all(frame)
        .with_context(|| format!("decompressing the compacted journal of run {run_id}"))?;
    parse_lines(run_id, &text)
}

fn known_format(run_id: i64, format: i64) -> Result<()> {
    anyhow::ensure!(
        format == JOURNAL_FORMAT,
        "the compacted journal of run {run_id} has format {format}, written by a newer codex-maint; this one reads format {JOURNAL_FORMAT}"
    );
    Ok(())
}

fn parse_lines(run_id: i64, text: &[u8]) -> Result<Vec<JournalLine>> {
    let mut lines = Vec::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        lines.push(
            serde_json::from_slice::<JournalLine>(line)
                .with_context(|| format!("reading the compacted journal of run {run_id}"))?,
        );
    }
    lines.sort_by_key(|l| l.seq);
    Ok(lines)
}

/// The journal's readers: each reads the rows and the compacted lines alike.
impl Catalog {
    /// A run's ops, by seq.
    pub fn ops_of_run(&self, run_id: i64) -> Result<Vec<StoredOp>> {
        let mut ops = self.query_ops(
            &format!("SELECT {OP_COLUMNS} FROM ops WHERE run_id = ?1 ORDER BY seq"),
            params![run_id],
        )?;
        ops.extend(self.compacted_ops_of_run(run_id)?);
        ops.sort_by_key(|o| o.seq);
        Ok(ops)
    }

    /// Every op whose detail names this session (`thread_id`), whatever its kind, oldest
    /// first: keyed on the detail so each kind that moves a session is found without a list.
    pub fn ops_of_thread(&self, thread_id: &str) -> Result<Vec<StoredOp>> {
        let mut ops = self.query_ops(
            &format!(
                "SELECT {OP_COLUMNS} FROM ops WHERE json_extract(detail, '$.thread_id') = ?1 ORDER BY id"
            ),
            params![thread_id],
        )?;
        ops.extend(self.compacted_ops_of_thread(thread_id)?);
        ops.sort_by_key(|o| o.id);
        Ok(ops)
    }

    /// The sessions ops have touched whose id starts with `prefix`.
    pub fn thread_ids_starting_with(&self, prefix: &str) -> Result<Vec<String>> {
        // A range on the indexed expression (`ops_by_thread`): every id starting with
        // `prefix` sorts from it to it followed by the highest character.
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT json_extract(detail, '$.thread_id') AS t FROM ops
             WHERE json_extract(detail, '$.thread_id') >= ?1
               AND json_extract(detail, '$.thread_id') < ?2 ORDER BY t",
        )?;
        let upper = format!("{prefix}\u{10FFFF}");
        let rows = stmt.query_map(params![prefix, upper], |r| r.get::<_, String>(0))?;
        let mut ids = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        ids.extend(self.compacted_thread_ids_starting_with(prefix)?);
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The `created_dirs` lists of every op that created folders, in op order.
    pub fn created_dir_lists(&self) -> Result<Vec<Value>> {
        let mut stmt = self.conn.prepare(super::CREATED_DIR_LISTS)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                full_detail(
                    &r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?.as_deref(),
                    r.get::<_, Option<String>>(3)?.as_deref(),
                    r.get(4)?,
                ),
            ))
        })?;
        let mut details = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        details.extend(
            self.compacted_ops_creating_dirs()?
                .into_iter()
                .map(|o| (o.id, o.detail)),
        );
        details.sort_by_key(|(id, _)| *id);
        let mut out = Vec::new();
        for (_, detail) in details {
            let detail: Value = serde_json::from_str(&detail)?;
            out.push(detail["created_dirs"].clone());
        }
        Ok(out)
    }
}

impl Catalog {
    /// Whether this catalog can hold compacted journals (migration 6).
    pub fn knows_compaction(&self) -> bool {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'forgotten_journals')",
                [],
                |r| r.get(0),
            )
            .unwrap_or(false)
    }

    /// The compacted lines of run `run_id`, by seq (none if it has no record).
    pub fn compacted_lines(&self, run_id: i64) -> Result<Vec<JournalLine>> {
        if !self.knows_compaction() {
            return Ok(Vec::new());
        }
        let record: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT format, lines FROM forgotten_journals WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match record {
            Some((format, frame)) => decode(run_id, format, &frame),
            None => Ok(Vec::new()),
        }
    }

    /// The compacted ops of run `run_id`, by seq.
    pub fn compacted_ops_of_run(&self, run_id: i64) -> Result<Vec<StoredOp>> {
        self.compacted_lines(run_id)?
            .into_iter()
            .map(|l| l.into_stored(run_id))
            .collect()
    }

    /// Every compacted op for which `wanted` holds, from the records whose text contains
    /// `needle` (a cheap test before any line is parsed), by id.
    fn compacted_ops_where(
        &self,
        needle: &str,
        wanted: &dyn Fn(&StoredOp) -> bool,
    ) -> Result<Vec<StoredOp>> {
        if !self.knows_compaction() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT run_id, format, lines FROM forgotten_journals ORDER BY run_id")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let run_id: i64 = row.get(0)?;
            known_format(run_id, row.get(1)?)?;
            let text = zstd::stream::decode_all(row.get_ref(2)?.as_blob()?)?;
            if !contains(&text, needle.as_bytes()) {
                continue;
            }
            for line in parse_lines(run_id, &text)? {
                let op = line.into_stored(run_id)?;
                if wanted(&op) {
                    out.push(op);
                }
            }
        }
        out.sort_by_key(|o| o.id);
        Ok(out)
    }

    /// Compacted ops whose detail names session `thread_id`.
    pub fn compacted_ops_of_thread(&self, thread_id: &str) -> Result<Vec<StoredOp>> {
        self.compacted_ops_where(thread_id, &|op| {
            thread_of(&op.detail).is_some_and(|t| t == thread_id)
        })
    }

    /// Sessions compacted ops name whose id starts with `prefix`.
    pub fn compacted_thread_ids_starting_with(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .compacted_ops_where(prefix, &|op| {
                thread_of(&op.detail).is_some_and(|t| t.starts_with(prefix))
            })?
            .into_iter()
            .filter_map(|op| thread_of(&op.detail))
            .collect())
    }

    /// Compacted ops whose detail lists folders they created (`created_dirs`).
    pub fn compacted_ops_creating_dirs(&self) -> Result<Vec<StoredOp>> {
        // Every move writes `created_dirs`, mostly empty: only a record holding a non-empty
        // list, as its lines spell it (the detail is a JSON string in the line, so its
        // quotes are escaped), is decoded line by line.
        self.compacted_ops_where(r#"\"created_dirs\":[\""#, &|op| {
            serde_json::from_str::<serde_json::Value>(&op.detail)
                .ok()
                .and_then(|d| d["created_dirs"].as_array().map(|a| !a.is_empty()))
                .unwrap_or(false)
        })
    }

    /// The compacted op `op_id`, found through the records' id ranges.
    pub fn compacted_op(&self, op_id: i64) -> Result<Option<StoredOp>> {
        if !self.knows_compaction() {
            return Ok(None);
        }
        let runs: Vec<i64> = self
            .conn
            .prepare("SELECT run_id FROM forgotten_journals WHERE ?1 BETWEEN first_op AND last_op")?
            .query_map([op_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for run in runs {
            if let Some(op) = self
                .compacted_ops_of_run(run)?
                .into_iter()
                .find(|o| o.id == op_id)
            {
                return Ok(Some(op));
            }
        }
        Ok(None)
    }

    /// Every record decoded and checked against the columns beside it (lines, op ids,
    /// counts), and no op both a line and a row: (records, lines, problems).
    pub fn verify_compacted_journals(&self) -> Result<(u64, u64, Vec<String>)> {
        let (mut records, mut lines, mut problems) = (0, 0, Vec::new());
        if !self.knows_compaction() {
            return Ok((records, lines, problems));
        }
        let mut stmt = self.conn.prepare(
            "SELECT run_id, ops, first_op, last_op, applied, rolled_back, reverted, applied_bytes
             FROM forgotten_journals ORDER BY run_id",
        )?;
        let recorded: Vec<[i64; 8]> = stmt
            .query_map([], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ])
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut is_row = self
            .conn
            .prepare("SELECT EXISTS(SELECT 1 FROM ops WHERE id = ?1)")?;
        for [run, ops, first, last, applied, rolled_back, reverted, bytes] in recorded {
            records += 1;
            let held = match self.compacted_lines(run) {
                Ok(held) => held,
                Err(e) => {
                    problems.push(format!("the compacted journal of run {run}: {e:#}"));
                    continue;
                }
            };
            lines += held.len() as u64;
            let state = |s: &str| held.iter().filter(|l| l.state == s).count() as i64;
            let found = [
                held.len() as i64,
                held.iter().map(|l| l.id).min().unwrap_or(0),
                held.iter().map(|l| l.id).max().unwrap_or(0),
                state("applied"),
                state("rolled_back"),
                held.iter().filter(|l| l.reverted_by.is_some()).count() as i64,
                held.iter()
                    .filter(|l| l.state == "applied")
                    .filter_map(|l| l.size)
                    .sum(),
            ];
            if found != [ops, first, last, applied, rolled_back, reverted, bytes] {
                problems.push(format!(
                    "the compacted journal of run {run} holds {found:?} (lines, first and last op, applied, rolled back, reverted, bytes) where its row says {:?}",
                    [ops, first, last, applied, rolled_back, reverted, bytes]
                ));
            }
            for line in &held {
                if is_row.query_row([line.id], |r| r.get::<_, bool>(0))? {
                    problems.push(format!(
                        "op {} of run {run} is both a row and a compacted line",
                        line.id
                    ));
                }
            }
        }
        Ok((records, lines, problems))
    }

    /// Adds to each run's counts those of its compacted lines, kept beside the record.
    pub(super) fn add_compacted_counts(&self, runs: &mut [RunRecord]) -> Result<()> {
        if !self.knows_compaction() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare(
            "SELECT run_id, applied, rolled_back, reverted, applied_bytes FROM forgotten_journals",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let run_id: i64 = row.get(0)?;
            if let Ok(i) = runs.binary_search_by_key(&run_id, |r| r.id) {
                let c = &mut runs[i].op_counts;
                c.applied += row.get::<_, i64>(1)?;
                c.rolled_back += row.get::<_, i64>(2)?;
                c.reverted += row.get::<_, i64>(3)?;
                c.bytes += row.get::<_, i64>(4)?;
            }
        }
        Ok(())
    }
}

fn thread_of(detail: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(detail)
        .ok()?
        .get("thread_id")?
        .as_str()
        .map(str::to_string)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
