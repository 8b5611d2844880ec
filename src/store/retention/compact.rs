//! Compaction of forgotten runs' journals, prune's last step (docs/store-format.md
//! "Compacted journals"). A forgotten run keeps its lines for `log`, but not as rows: once
//! nothing in force reads an op of it, the op's row (about 1 KB with its indexes) becomes
//! a line in its run's one zstd frame in `forgotten_journals`. Rows and record change in
//! one transaction, so a kill leaves either the rows or the record, never neither.
//!
//! An op of a forgotten run stays a row while anything not forgotten could still read it:
//! - an op not forgotten with a lower id left an item where this op picked it up (the op
//!   in force is decided by the `later` op, see `catalog::live`), so deleting the row
//!   would put that op back in force;
//! - a row that stays names it as `reverts_op` or `reverted_by` (a foreign key, and the
//!   chains `live_redos` walks);
//! - it is still `prepared` (forget never picks such a run; a row is what recovery reads);
//! - it is the op with the highest id: `ops` has no AUTOINCREMENT, so SQLite gives a new
//!   row the highest id plus one, and with that row deleted the next op would take the id
//!   of a compacted one (`log`, `restore <op>` and `verify` name ops by id).

use anyhow::{Context, Result};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;

use crate::store::Catalog;
use crate::store::catalog::JournalLine;

/// zstd level of a record: a year's first run (20,000 lines) compacts in well under a
/// second, at about 90% of what level 19 gives.
const LEVEL: i32 = 9;

/// Which rows of which forgotten runs would become lines, by run.
#[derive(Debug, Default)]
pub struct CompactionPlan {
    runs: BTreeMap<i64, Vec<i64>>,
    /// Rows of forgotten runs that stay rows, for one of the reasons above.
    pub kept_as_rows: u64,
}

impl CompactionPlan {
    pub fn lines(&self) -> u64 {
        self.runs.values().map(|ids| ids.len() as u64).sum()
    }
}

/// What a compaction did, or (a dry run) would do.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Compacted {
    pub runs: u64,
    /// Op rows replaced by lines.
    pub lines: u64,
    /// Rows of forgotten runs that stay rows: something in force still reads them.
    pub kept_as_rows: u64,
    /// The lines as JSON text, and as stored (compressed).
    pub plain_bytes: u64,
    pub stored_bytes: u64,
}

impl Compacted {
    pub fn add(&mut self, other: &Compacted) {
        self.runs += other.runs;
        self.lines += other.lines;
        // A count of rows as they stand, not of work done: the latest pass tells it.
        self.kept_as_rows = other.kept_as_rows;
        self.plain_bytes += other.plain_bytes;
        self.stored_bytes += other.stored_bytes;
    }

    /// The report's line, when there is something to say.
    pub fn line(&self, dry_run: bool) -> Option<String> {
        if self.lines == 0 && self.kept_as_rows == 0 {
            return None;
        }
        let mut line = format!(
            "{} {} journal lines of {} forgotten run(s) into one compressed record each ({} of lines stored as {}); `log` still shows every line",
            if dry_run {
                "would compact"
            } else {
                "compacted"
            },
            self.lines,
            self.runs,
            crate::clock::human_bytes(self.plain_bytes),
            crate::clock::human_bytes(self.stored_bytes),
        );
        if self.kept_as_rows > 0 {
            line.push_str(&format!(
                "; {} line(s) of forgotten runs stay rows while a run in force still reads them",
                self.kept_as_rows
            ));
        }
        Some(line)
    }
}

/// Which op rows of the runs in `forgotten` may become lines. Reads only.
pub fn plan(catalog: &Catalog, forgotten: &HashSet<i64>) -> Result<CompactionPlan> {
    let mut plan = CompactionPlan::default();
    if forgotten.is_empty() || !catalog.knows_compaction() {
        return Ok(plan);
    }
    // Most prunes find every forgotten run compacted already: a lookup per run, no scan.
    let mut has_rows = catalog
        .connection()
        .prepare("SELECT EXISTS(SELECT 1 FROM ops WHERE run_id = ?1)")?;
    let mut any = false;
    for run in forgotten {
        any |= has_rows.query_row([run], |r| r.get::<_, bool>(0))?;
    }
    if !any {
        return Ok(plan);
    }
    // One pass over every op: the rows of forgotten runs, where each op not forgotten
    // first left an item, and every reference between ops.
    let mut candidates: Vec<(i64, i64)> = Vec::new();
    let mut compactable: HashSet<i64> = HashSet::new();
    let mut first_left_at: HashMap<String, i64> = HashMap::new();
    let mut forgotten_sources: Vec<(i64, String)> = Vec::new();
    let mut references: Vec<(i64, i64)> = Vec::new();
    let mut stmt = catalog.connection().prepare(
        "SELECT id, run_id, src, dst, state, reverts_op, reverted_by FROM ops ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let run: i64 = row.get(1)?;
        if forgotten.contains(&run) {
            if row.get_ref(4)?.as_str()? == "prepared" {
                plan.kept_as_rows += 1;
            } else {
                candidates.push((id, run));
                compactable.insert(id);
                forgotten_sources.push((id, row.get(2)?));
            }
        } else if let Some(dst) = row.get::<_, Option<String>>(3)? {
            first_left_at.entry(dst).or_insert(id);
        }
        for column in [5, 6] {
            if let Some(target) = row.get::<_, Option<i64>>(column)? {
                references.push((id, target));
            }
        }
    }
    let highest: Option<i64> =
        catalog
            .connection()
            .query_row("SELECT MAX(id) FROM ops", [], |r| r.get(0))?;
    if let Some(highest) = highest {
        compactable.remove(&highest);
    }
    for (id, src) in forgotten_sources {
        if first_left_at.get(&src).is_some_and(|&first| first < id) {
            compactable.remove(&id);
        }
    }
    // A row that stays keeps every op it names; that op staying may keep more.
    loop {
        let before = compactable.len();
        for (from, to) in &references {
            if !compactable.contains(from) {
                compactable.remove(to);
            }
        }
        if compactable.len() == before {
            break;
        }
    }
    for (id, run) in candidates {
        if compactable.contains(&id) {
            plan.runs.entry(run).or_default().push(id);
        } else {
            plan.kept_as_rows += 1;
        }
    }
    Ok(plan)
}

/// A run's record: its lines compacted earlier and the rows `ids`, by seq.
struct Record {
    lines: Vec<JournalLine>,
    frame: Vec<u8>,
    plain_bytes: u64,
}

fn record_of(conn: &Connection, catalog: &Catalog, run: i64, ids: &[i64]) -> Result<Record> {
    let wanted: HashSet<i64> = ids.iter().copied().collect();
    let mut lines = catalog.compacted_lines(run)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM ops WHERE run_id = ?1 ORDER BY seq",
        crate::store::catalog::LINE_COLUMNS
    ))?;
    for line in stmt.query_map([run], JournalLine::from_row)? {
        let line = line?;
        if wanted.contains(&line.id) {
            lines.push(line);
        }
    }
    lines.sort_by_key(|l| l.seq);
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), LEVEL)?;
    let mut plain_bytes = 0u64;
    for line in &lines {
        let mut text = serde_json::to_vec(line)?;
        text.push(b'\n');
        plain_bytes += text.len() as u64;
        encoder.write_all(&text)?;
    }
    Ok(Record {
        frame: encoder.finish()?,
        lines,
        plain_bytes,
    })
}

/// What `plan` would take, compressed as the compaction would (reads only): the dry runs'.
pub fn preview(catalog: &Catalog, plan: &CompactionPlan) -> Result<Compacted> {
    let mut out = Compacted {
        kept_as_rows: plan.kept_as_rows,
        ..Default::default()
    };
    for (run, ids) in &plan.runs {
        let record = record_of(catalog.connection(), catalog, *run, ids)?;
        out.runs += 1;
        out.lines += ids.len() as u64;
        out.plain_bytes += record.plain_bytes;
        out.stored_bytes += record.frame.len() as u64;
    }
    Ok(out)
}

/// Replaces the planned rows by their runs' records, in one transaction.
pub fn apply(catalog: &Catalog, plan: &CompactionPlan) -> Result<Compacted> {
    let mut out = Compacted {
        kept_as_rows: plan.kept_as_rows,
        ..Default::default()
    };
    if plan.runs.is_empty() {
        return Ok(out);
    }
    let tx = catalog.connection().unchecked_transaction()?;
    // Rows of two forgotten runs may name each other (an undo and the run it took back):
    // both go in this transaction, so the foreign keys are checked at its commit.
    tx.pragma_update(None, "defer_foreign_keys", "ON")?;
    let now = crate::clock::now_rfc3339();
    for (run, ids) in &plan.runs {
        let record = record_of(&tx, catalog, *run, ids)?;
        let applied: Vec<&JournalLine> = record
            .lines
            .iter()
            .filter(|l| l.state == "applied")
            .collect();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO forgotten_journals (run_id, format, ops, first_op, last_op,
                 applied, rolled_back, reverted, applied_bytes, plain_bytes, lines, compacted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            run,
            crate::store::catalog::JOURNAL_FORMAT,
            record.lines.len() as i64,
            record.lines.iter().map(|l| l.id).min(),
            record.lines.iter().map(|l| l.id).max(),
            applied.len() as i64,
            record
                .lines
                .iter()
                .filter(|l| l.state == "rolled_back")
                .count() as i64,
            record
                .lines
                .iter()
                .filter(|l| l.reverted_by.is_some())
                .count() as i64,
            applied.iter().filter_map(|l| l.size).sum::<i64>(),
            record.plain_bytes as i64,
            record.frame,
            now
        ])?;
        let mut delete = tx.prepare_cached("DELETE FROM ops WHERE id = ?1")?;
        for id in ids {
            delete.execute([id])?;
        }
        crate::failpoint::hit("compact-run");
        out.runs += 1;
        out.lines += ids.len() as u64;
        out.plain_bytes += record.plain_bytes;
        out.stored_bytes += record.frame.len() as u64;
    }
    tx.commit()
        .context("replacing forgotten runs' op rows by their compacted journals")?;
    crate::failpoint::hit("compact-committed");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewOp;

    fn catalog() -> Catalog {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::store::migrations::apply_pending(&mut conn).unwrap();
        Catalog::new(conn)
    }

    fn applied_op(c: &Catalog, run: i64, reverts_op: Option<i64>) -> i64 {
        let op = c
            .prepare_op(
                run,
                &NewOp {
                    kind: "archive_session".into(),
                    src: format!("/h/sessions/item-{run}"),
                    dst: Some(format!("/h/archived/item-{run}")),
                    detail: serde_json::json!({"thread_id": format!("t{run}")}),
                    reverts_op,
                    ..Default::default()
                },
            )
            .unwrap();
        c.mark_applied(op, None).unwrap();
        op
    }

    fn forget(c: &Catalog, runs: &[i64]) -> HashSet<i64> {
        for run in runs {
            c.connection()
                .execute(
                    "INSERT OR IGNORE INTO forgotten_runs (run_id, forgotten_at, reason) VALUES (?1, 'now', 'test')",
                    [run],
                )
                .unwrap();
        }
        crate::store::retention::forgotten_runs(c).unwrap()
    }

    /// Retired sessions are read from rows in force: compacting another forgotten run
    /// leaves them as they were, and a retire run forgotten (`--include-retired`) holds
    /// none before its compaction or after, while `log --session` still finds its line.
    #[test]
    fn retired_sessions_read_the_same_before_and_after_compaction() {
        let c = catalog();
        let retire = c.begin_run("retire", &[], "/h", None).unwrap();
        let op = c
            .prepare_op(
                retire,
                &NewOp {
                    kind: crate::store::retention::RETIRE_KIND.into(),
                    src: "/h/sessions/r.jsonl".into(),
                    dst: Some("store:/h/sessions/r.jsonl".into()),
                    detail: serde_json::json!({"thread_id": "r", "rows_object": "x"}),
                    ..Default::default()
                },
            )
            .unwrap();
        c.mark_applied(op, None).unwrap();
        let archive = c.begin_run("cleanup", &[], "/h", None).unwrap();
        applied_op(&c, archive, None);
        let later = c.begin_run("cleanup", &[], "/h", None).unwrap();
        applied_op(&c, later, None);
        let retired = |c: &Catalog| -> Vec<(i64, String)> {
            c.retired_sessions()
                .unwrap()
                .into_iter()
                .map(|s| (s.op_id, s.thread_id))
                .collect()
        };
        assert_eq!(retired(&c), vec![(op, "r".to_string())]);
        apply(&c, &plan(&c, &forget(&c, &[archive])).unwrap()).unwrap();
        assert_eq!(c.compacted_ops_of_run(archive).unwrap().len(), 1);
        assert_eq!(retired(&c), vec![(op, "r".to_string())]);

        let forgotten = forget(&c, &[archive, retire]);
        assert!(retired(&c).is_empty(), "a forgotten retire run holds none");
        apply(&c, &plan(&c, &forgotten).unwrap()).unwrap();
        assert!(retired(&c).is_empty());
        assert_eq!(c.compacted_ops_of_run(retire).unwrap()[0].id, op);
        assert_eq!(c.ops_of_thread("r").unwrap()[0].id, op);
    }

    /// An undo run forgotten alone stays rows: the op it took back, in force history of a
    /// run kept, names it as `reverted_by`. Once both are forgotten they compact in one
    /// transaction, each naming the other.
    #[test]
    fn folders_a_compacted_op_created_are_still_read_and_empty_lists_are_not() {
        let c = catalog();
        let archive = c.begin_run("cleanup", &[], "/h", None).unwrap();
        let mut ops = Vec::new();
        for (n, dirs) in [vec!["/h/archived/2026"], vec![]].into_iter().enumerate() {
            let op = c
                .prepare_op(
                    archive,
                    &NewOp {
                        kind: "archive_session".into(),
                        src: format!("/h/sessions/{n}.jsonl"),
                        dst: Some(format!("/h/archived/2026/{n}.jsonl")),
                        detail: serde_json::json!({"thread_id": format!("t{n}"), "created_dirs": dirs}),
                        ..Default::default()
                    },
                )
                .unwrap();
            c.mark_applied(op, None).unwrap();
            ops.push(op);
        }
        let later = c.begin_run("cleanup", &[], "/h", None).unwrap();
        applied_op(&c, later, None);
        let before = c.created_dir_lists().unwrap();
        apply(&c, &plan(&c, &forget(&c, &[archive])).unwrap()).unwrap();
        assert_eq!(c.compacted_ops_of_run(archive).unwrap().len(), 2);
        assert_eq!(c.created_dir_lists().unwrap(), before);
        assert_eq!(before, vec![serde_json::json!(["/h/archived/2026"])]);
        let creating: Vec<i64> = c
            .compacted_ops_creating_dirs()
            .unwrap()
            .iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(creating, vec![ops[0]]);
    }

    #[test]
    fn an_op_a_kept_row_names_stays_a_row_and_both_compact_together() {
        let c = catalog();
        let archive = c.begin_run("cleanup", &[], "/h", None).unwrap();
        let original = applied_op(&c, archive, None);
        let undo = c.begin_run("undo", &[], "/h", Some(archive)).unwrap();
        applied_op(&c, undo, Some(original));
        let forgotten = forget(&c, &[undo]);
        let only_undo = plan(&c, &forgotten).unwrap();
        assert_eq!((only_undo.lines(), only_undo.kept_as_rows), (0, 1));
        apply(&c, &only_undo).unwrap();

        let forgotten = forget(&c, &[archive]);
        let later = c.begin_run("cleanup", &[], "/h", None).unwrap();
        applied_op(&c, later, None);
        let both = plan(&c, &forgotten).unwrap();
        assert_eq!((both.lines(), both.kept_as_rows), (2, 0));
        let done = apply(&c, &both).unwrap();
        assert_eq!(done.runs, 2);
        let rows: i64 = c
            .connection()
            .query_row("SELECT COUNT(*) FROM ops", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the later run's op");
        let back = c.ops_of_run(undo).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].reverts_op, Some(original));
        assert_eq!(
            c.op(original).unwrap().unwrap().reverted_by,
            Some(back[0].id)
        );
        assert_eq!(c.ops_of_thread(&format!("t{archive}")).unwrap().len(), 1);
        assert_eq!(c.runs().unwrap()[0].op_counts.reverted, 1);
    }
}
