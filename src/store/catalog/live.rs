//! The ops in force, read a page at a time: a home of 100,000 archived sessions has as
//! many live ops, and `verify`, `undo` and `restore` must not hold them all at once.
//! Pages are keyed on the last row seen (never OFFSET), so each costs the same.

use anyhow::Result;
use rusqlite::params;

use super::{Catalog, OP_COLUMNS, StoredOp};

/// An op is in force when it is applied, not taken back, and no later op in force picked
/// its item up from where it left it. A chain (archived, then compressed where it lies) has
/// only its last op in force; once that one is taken back, the one before it is in force
/// again, so an `undo` after the undo of a compression takes back the archive. An inverse
/// op picks its item up from where the op it reverts left it, so a reverted op stays out
/// even when the inverse is itself taken back (a redo is a new op in force).
/// The subquery is a lookup in `ops_by_src`; over all ops, the outer query walks
/// `ops_by_state` from the last id seen.
const IS_LIVE: &str = "o.state = 'applied' AND o.reverted_by IS NULL AND NOT EXISTS (SELECT 1
     FROM ops later WHERE later.state = 'applied' AND later.reverted_by IS NULL
     AND later.id > o.id AND later.src = o.dst)";

/// The same for the ops of one run, which must be found through `(run_id, seq)`: the `+`
/// keeps SQLite (which has no statistics here) from choosing `ops_by_state` and so
/// reading every applied op of every run.
const IS_LIVE_IN_RUN: &str = "+o.state = 'applied' AND o.reverted_by IS NULL AND NOT EXISTS
     (SELECT 1 FROM ops later WHERE later.state = 'applied' AND later.reverted_by IS NULL
     AND later.id > o.id AND later.src = o.dst)";

/// Ops per page: enough that each page's files keep every core busy hashing, few enough
/// that a page of ops and their plans stays a few megabytes.
const PAGE: usize = 2048;

/// A forgotten run's ops are no longer in force for undo, restore or verify: their items
/// stand where they are, but what would take them back may be gone (`forget`, `prune`).
/// They still count as `later` ops above, since the item did move on from where an earlier
/// op left it. A catalog from before `forgotten_runs` (read by a dry run, unmigrated) has
/// nothing forgotten.
const NOT_FORGOTTEN: &str = "NOT EXISTS (SELECT 1 FROM forgotten_runs f WHERE f.run_id = o.run_id)";

/// The page size; a `test-hooks` build takes `CODEX_MAINT_PAGE_SIZE`, so a test of a few
/// thousand ops crosses many page boundaries.
#[cfg(feature = "test-hooks")]
pub fn live_page_size() -> usize {
    std::env::var("CODEX_MAINT_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(PAGE)
}

#[cfg(not(feature = "test-hooks"))]
pub fn live_page_size() -> usize {
    PAGE
}

fn columns_of_o() -> String {
    OP_COLUMNS
        .split(", ")
        .map(|c| format!("o.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A session retired into the store and not brought back: what `verify` proves, `inspect`
/// counts and `prune` keeps. The journal is the one record of them (no table beside it).
#[derive(Debug, Clone)]
pub struct RetiredSession {
    pub op_id: i64,
    pub thread_id: String,
    pub rollout_path: String,
    pub transcript_object: String,
    pub rows_object: String,
    pub bytes: i64,
    pub title: Option<String>,
    pub cwd: Option<String>,
    pub retired_at: Option<String>,
}

impl Catalog {
    /// Every session retired and not brought back, by op id.
    /// A lean detail stores the transcript's object as `=hash_before` (it is the file's
    /// hash): read back as that column.
    pub fn retired_sessions(&self) -> Result<Vec<RetiredSession>> {
        let sql = format!(
            "SELECT o.id, o.src, o.dst, o.hash_before, o.detail, COALESCE(o.size, 0), o.finished_at
             FROM ops o WHERE o.kind = 'retire_session' AND {} ORDER BY o.id",
            self.live_test(false)
        );
        let mut stmt = self.connection().prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut retired = Vec::new();
        while let Some(r) = rows.next()? {
            let src: String = r.get(1)?;
            let dst: Option<String> = r.get(2)?;
            let hash_before: Option<String> = r.get(3)?;
            // Expanded as every read of a lean detail is: a plain transcript's object id is
            // its hash_before, stored as a token.
            let detail =
                super::full_detail(&src, dst.as_deref(), hash_before.as_deref(), r.get(4)?);
            let detail: serde_json::Value = serde_json::from_str(&detail)?;
            let text = |pointer: &str| {
                detail
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            retired.push(RetiredSession {
                op_id: r.get(0)?,
                thread_id: text("/thread_id").unwrap_or_default(),
                rollout_path: src,
                transcript_object: text("/transcript/object").unwrap_or_default(),
                rows_object: text("/rows_object").unwrap_or_default(),
                bytes: r.get(5)?,
                title: text("/title"),
                cwd: text("/cwd"),
                retired_at: r.get(6)?,
            });
        }
        Ok(retired)
    }

    /// Whether this catalog can hold forgotten runs (migration 4).
    pub fn knows_forgetting(&self) -> bool {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'forgotten_runs')",
                [],
                |r| r.get(0),
            )
            .unwrap_or(false)
    }

    /// The test "in force" over all ops (`in_run: false`) or one run's, forgotten runs out.
    fn live_test(&self, in_run: bool) -> String {
        let base = if in_run { IS_LIVE_IN_RUN } else { IS_LIVE };
        if self.knows_forgetting() {
            format!("{base} AND {NOT_FORGOTTEN}")
        } else {
            base.to_string()
        }
    }

    /// Every op in force, by id. What `verify` checks, `undo` takes back and `restore`
    /// accepts; callers that may meet a large catalog page with `live_ops_after`.
    pub fn live_ops(&self) -> Result<Vec<StoredOp>> {
        self.live_ops_after(0, i64::MAX as usize)
    }

    /// Up to `limit` ops in force with an id above `after_id`, by id.
    pub fn live_ops_after(&self, after_id: i64, limit: usize) -> Result<Vec<StoredOp>> {
        self.query_ops(
            &format!(
                "SELECT {} FROM ops o WHERE o.id > ?1 AND {} ORDER BY o.id LIMIT ?2",
                columns_of_o(),
                self.live_test(false)
            ),
            params![after_id, limit as i64],
        )
    }

    /// Up to `limit` ops in force of run `run_id` with a `seq` below `before_seq`, newest
    /// first: the order an undo takes them back in.
    pub fn live_ops_of_run_before(
        &self,
        run_id: i64,
        before_seq: i64,
        limit: usize,
    ) -> Result<Vec<StoredOp>> {
        self.query_ops(
            &format!(
                "SELECT {} FROM ops o WHERE o.run_id = ?1 AND o.seq < ?2 AND {}
                 ORDER BY o.seq DESC LIMIT ?3",
                columns_of_o(),
                self.live_test(true)
            ),
            params![run_id, before_seq, limit as i64],
        )
    }

    /// The ops in force of run `run_id` whose kind is one of `kinds`, by seq.
    pub fn live_ops_of_run_of_kinds(&self, run_id: i64, kinds: &[&str]) -> Result<Vec<StoredOp>> {
        let kinds = kinds
            .iter()
            .map(|k| format!("'{}'", k.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        self.query_ops(
            &format!(
                "SELECT {} FROM ops o WHERE o.run_id = ?1 AND o.kind IN ({kinds}) AND {} ORDER BY o.seq",
                columns_of_o(),
                self.live_test(true)
            ),
            params![run_id],
        )
    }

    /// How many ops are in force, of one run (with the later ops that do again what it did,
    /// see `live_redos`) or of all: the length of a progress bar.
    pub fn live_op_count(&self, run_id: Option<i64>) -> Result<u64> {
        let count: i64 = match run_id {
            Some(run) => {
                let own: i64 = self.conn.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM ops o WHERE o.run_id = ?1 AND {}",
                        self.live_test(true)
                    ),
                    [run],
                    |r| r.get(0),
                )?;
                own + self.live_redo_ids_of_run(run)?.len() as i64
            }
            None => self.conn.query_row(
                &format!("SELECT COUNT(*) FROM ops o WHERE {}", self.live_test(false)),
                [],
                |r| r.get(0),
            )?,
        };
        Ok(count as u64)
    }

    pub fn is_live(&self, op_id: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT EXISTS(SELECT 1 FROM ops o WHERE o.id = ?1 AND {})",
                self.live_test(true)
            ),
            [op_id],
            |r| r.get(0),
        )?)
    }

    /// The newest run with ops in force that is not a `passed_over` run (an undo: a second
    /// `undo` goes further back instead of redoing the first). A run whose item another
    /// run put back again (`restore`, then the undo of that restore) still has it in force.
    pub fn newest_run_with_live_ops(&self, passed_over: &str) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        let own: Option<i64> = self
            .conn
            .query_row(
                &format!(
                    "SELECT r.id FROM runs r
                     WHERE r.command != ?1
                       AND EXISTS (SELECT 1 FROM ops o WHERE o.run_id = r.id AND {})
                     ORDER BY r.id DESC LIMIT 1",
                    self.live_test(true)
                ),
                [passed_over],
                |r| r.get(0),
            )
            .optional()?;
        let mut newest = own;
        for redo in self.live_redos()? {
            if newest.is_some_and(|n| n >= redo.counts_for_run) {
                continue;
            }
            let command: String = self.conn.query_row(
                "SELECT command FROM runs WHERE id = ?1",
                [redo.counts_for_run],
                |r| r.get(0),
            )?;
            if command != passed_over {
                newest = Some(redo.counts_for_run);
            }
        }
        Ok(newest)
    }

    /// Ops in force that do again what an earlier op did, because the op that took it back
    /// was itself taken back (archive, `restore` of one session, then `undo` of the
    /// restore), each with the run of the op it does again: that run is where `undo` looks
    /// for it, not the undo run it was recorded in, or the item could never be taken back
    /// with its run. An op that takes back an op an even number of steps from an op that
    /// took nothing back does that op again; an odd number, it takes that op back. Walks up
    /// through primary keys only; such chains are short.
    pub fn live_redos(&self) -> Result<Vec<Redo>> {
        let live = self.live_test(false);
        let sql = format!(
            "WITH RECURSIVE up(op, cur, steps) AS (
                 SELECT o.id, o.reverts_op, 1 FROM ops o
                 WHERE o.reverts_op IS NOT NULL AND {live}
                 UNION ALL
                 SELECT up.op, c.reverts_op, up.steps + 1 FROM up
                   JOIN ops c ON c.id = up.cur WHERE c.reverts_op IS NOT NULL)
             SELECT up.op, o.run_id, first.run_id FROM up
               JOIN ops o ON o.id = up.op
               JOIN ops first ON first.id = up.cur
             WHERE first.reverts_op IS NULL AND up.steps % 2 = 0
             ORDER BY up.op DESC"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(Redo {
                op_id: r.get(0)?,
                run_id: r.get(1)?,
                counts_for_run: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The ops in force of later runs that do again what an op of `run` did, newest first:
    /// an undo of `run` takes them back with its own.
    pub fn live_redo_ids_of_run(&self, run: i64) -> Result<Vec<i64>> {
        Ok(self
            .live_redos()?
            .into_iter()
            .filter(|r| r.counts_for_run == run && r.run_id != run)
            .map(|r| r.op_id)
            .collect())
    }
}

/// An op in force that does again what an op of run `counts_for_run` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redo {
    pub op_id: i64,
    pub run_id: i64,
    pub counts_for_run: i64,
}

#[cfg(test)]
mod tests {
    use super::super::NewOp;
    use super::*;
    use rusqlite::Connection;

    fn catalog() -> Catalog {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrations::apply_pending(&mut conn).unwrap();
        Catalog::new(conn)
    }

    fn moved(src: &str, dst: &str, reverts_op: Option<i64>) -> NewOp {
        NewOp {
            kind: "archive_session".into(),
            src: src.into(),
            dst: Some(dst.into()),
            detail: serde_json::json!({}),
            reverts_op,
            ..NewOp::default()
        }
    }

    /// Run 1 archives 25 items; run 2 archives 10 more; run 3 (an undo) takes back every
    /// third item of run 1; one op of run 2 is left prepared, another rolled back.
    fn mixed_catalog() -> (Catalog, i64, i64) {
        let c = catalog();
        let first = c.begin_run("archive", &[], "/h", None).unwrap();
        let ops: Vec<NewOp> = (0..25)
            .map(|i| moved(&format!("/h/s/{i}"), &format!("/h/a/{i}"), None))
            .collect();
        let ids = c.prepare_ops(first, &ops).unwrap();
        c.mark_applied_many(&ids.iter().map(|&id| (id, None)).collect::<Vec<_>>())
            .unwrap();
        let second = c.begin_run("archive", &[], "/h", None).unwrap();
        let ops: Vec<NewOp> = (25..35)
            .map(|i| moved(&format!("/h/s/{i}"), &format!("/h/a/{i}"), None))
            .collect();
        let second_ids = c.prepare_ops(second, &ops).unwrap();
        c.mark_applied_many(
            &second_ids[2..]
                .iter()
                .map(|&id| (id, None))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        c.mark_rolled_back(second_ids[1]).unwrap();
        let undo = c.begin_run("undo", &[], "/h", Some(first)).unwrap();
        let inverse: Vec<NewOp> = (0..25)
            .step_by(3)
            .map(|i| moved(&format!("/h/a/{i}"), &format!("/h/s/{i}"), Some(ids[i])))
            .collect();
        let inverse_ids = c.prepare_ops(undo, &inverse).unwrap();
        c.mark_applied_many(&inverse_ids.iter().map(|&id| (id, None)).collect::<Vec<_>>())
            .unwrap();
        (c, first, undo)
    }

    fn ids(ops: &[StoredOp]) -> Vec<i64> {
        ops.iter().map(|o| o.id).collect()
    }

    #[test]
    fn pages_by_id_join_up_to_exactly_the_live_ops_whatever_the_page_size() {
        let (c, _, _) = mixed_catalog();
        let all = ids(&c.live_ops().unwrap());
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        // 25 of run 1 less the 9 taken back, 8 applied of run 2, the 9 inverse ops.
        assert_eq!(all.len(), 16 + 8 + 9);
        assert_eq!(c.live_op_count(None).unwrap(), all.len() as u64);
        for page in [1, 2, 7, 16, 32, 33, 100] {
            let mut joined = Vec::new();
            let mut after = 0;
            loop {
                let got = ids(&c.live_ops_after(after, page).unwrap());
                assert!(got.len() <= page);
                let Some(&last) = got.last() else { break };
                joined.extend(got);
                after = last;
            }
            assert_eq!(joined, all, "page size {page}");
        }
    }

    #[test]
    fn pages_of_a_run_are_its_live_ops_newest_first_without_the_reverted_ones() {
        let (c, first, undo) = mixed_catalog();
        let live = c.live_ops().unwrap();
        let mut expected: Vec<&StoredOp> = live.iter().filter(|o| o.run_id == first).collect();
        expected.sort_by_key(|o| std::cmp::Reverse(o.seq));
        let expected: Vec<i64> = expected.iter().map(|o| o.id).collect();
        assert_eq!(expected.len(), 16);
        assert_eq!(c.live_op_count(Some(first)).unwrap(), 16);
        for page in [1, 3, 5, 16, 17] {
            let mut joined = Vec::new();
            let mut before = i64::MAX;
            loop {
                let got = c.live_ops_of_run_before(first, before, page).unwrap();
                let Some(last) = got.last() else { break };
                before = last.seq;
                assert!(got.iter().all(|o| o.reverted_by.is_none()));
                joined.extend(ids(&got));
            }
            assert_eq!(joined, expected, "page size {page}");
        }
        assert!(c.is_live(expected[0]).unwrap());
        let reverted = c
            .ops_of_run(first)
            .unwrap()
            .into_iter()
            .find(|o| o.reverted_by.is_some())
            .unwrap();
        assert!(!c.is_live(reverted.id).unwrap());
        assert_eq!(c.live_op_count(Some(undo)).unwrap(), 9);
    }

    #[test]
    fn the_newest_run_to_undo_passes_over_undo_runs_and_runs_with_nothing_in_force() {
        let (c, first, _) = mixed_catalog();
        let second = first + 1;
        assert_eq!(c.newest_run_with_live_ops("undo").unwrap(), Some(second));
        let later = c.begin_run("archive", &[], "/h", None).unwrap();
        let id = c.prepare_op(later, &moved("/h/x", "/h/y", None)).unwrap();
        c.mark_rolled_back(id).unwrap();
        assert_eq!(c.newest_run_with_live_ops("undo").unwrap(), Some(second));
        assert_eq!(
            c.newest_run_with_live_ops("nothing").unwrap(),
            Some(later - 1)
        );
    }

    /// Archived, then compressed where it lies, then the compression taken back: the
    /// archive is in force again and is what the next `undo` finds; taken back a second
    /// time (a redo of the compression), only the redo is in force.
    #[test]
    fn once_the_last_op_of_a_chain_is_taken_back_the_one_before_is_in_force_again() {
        let c = catalog();
        let apply = |run: i64, op: NewOp| -> i64 {
            let id = c.prepare_op(run, &op).unwrap();
            c.mark_applied_many(&[(id, None)]).unwrap();
            id
        };
        let archive_run = c.begin_run("archive", &[], "/h", None).unwrap();
        let archive = apply(archive_run, moved("/h/s/x", "/h/a/x", None));
        let compress_run = c.begin_run("cleanup", &[], "/h", None).unwrap();
        let compress = apply(compress_run, moved("/h/a/x", "/h/a/x.zst", None));
        let live = |id: i64| c.is_live(id).unwrap();
        assert!(!live(archive) && live(compress));

        let undo_run = c.begin_run("undo", &[], "/h", None).unwrap();
        let decompress = apply(undo_run, moved("/h/a/x.zst", "/h/a/x", Some(compress)));
        assert!(live(archive), "the archive is in force again");
        assert!(!live(compress) && live(decompress));
        assert_eq!(
            c.newest_run_with_live_ops("undo").unwrap(),
            Some(archive_run)
        );
        assert_eq!(c.live_op_count(Some(archive_run)).unwrap(), 1);

        let redo_run = c.begin_run("undo", &[], "/h", None).unwrap();
        let redo = apply(redo_run, moved("/h/a/x", "/h/a/x.zst", Some(decompress)));
        assert!(live(redo));
        assert!(
            !live(archive) && !live(compress) && !live(decompress),
            "one op in force for the one item"
        );

        // Both taken back: the redo, then the archive; only the last move back is in force.
        apply(undo_run, moved("/h/a/x.zst", "/h/a/x", Some(redo)));
        let back = apply(undo_run, moved("/h/a/x", "/h/s/x", Some(archive)));
        assert_eq!(
            c.live_ops()
                .unwrap()
                .iter()
                .map(|o| o.id)
                .collect::<Vec<_>>(),
            vec![back]
        );
    }

    #[test]
    fn the_paged_queries_use_indexes_not_scans_of_ops() {
        let (c, _, _) = mixed_catalog();
        let plan = |sql: &str| -> String {
            let mut stmt = c
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.join("\n")
        };
        let by_id = plan(&format!(
            "SELECT o.id FROM ops o WHERE o.id > 5 AND {} ORDER BY o.id LIMIT 9",
            c.live_test(false)
        ));
        assert!(
            by_id.contains("USING INDEX ops_by_state (state=? AND rowid>?)"),
            "{by_id}"
        );
        for sql in [
            format!(
                "SELECT o.id FROM ops o WHERE o.run_id = 1 AND o.seq < 9 AND {}
                 ORDER BY o.seq DESC LIMIT 9",
                c.live_test(true)
            ),
            format!(
                "SELECT COUNT(*) FROM ops o WHERE o.run_id = 1 AND {}",
                c.live_test(true)
            ),
            format!(
                "SELECT r.id FROM runs r WHERE r.command != 'undo'
                 AND EXISTS (SELECT 1 FROM ops o WHERE o.run_id = r.id AND {})
                 ORDER BY r.id DESC LIMIT 1",
                c.live_test(true)
            ),
        ] {
            let plan = plan(&sql);
            assert!(
                plan.contains("sqlite_autoindex_ops_1 (run_id=?"),
                "{sql}\n{plan}"
            );
            assert!(!plan.contains("(state=?"), "{sql}\n{plan}");
        }
        for plan in [
            by_id,
            plan(&format!(
                "SELECT o.id FROM ops o WHERE {}",
                c.live_test(false)
            )),
        ] {
            assert!(plan.contains("ops_by_src (src=?"), "{plan}");
            assert!(
                !plan.contains("SCAN o") && !plan.contains("SCAN later"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    fn apply(c: &Catalog, run: i64, op: NewOp) -> i64 {
        let id = c.prepare_ops(run, &[op]).unwrap()[0];
        c.mark_applied_many(&[(id, None)]).unwrap();
        id
    }

    /// Archive (run 1), `restore` of one session (run 2), `undo` of that restore (run 3):
    /// the session is archived again by an undo run, yet it belongs to run 1, so the next
    /// `undo` takes it back with run 1 instead of leaving it archived for good.
    #[test]
    fn an_item_done_again_by_an_undo_is_taken_back_with_the_run_that_first_did_it() {
        let c = catalog();
        let first = c.begin_run("archive", &[], "/h", None).unwrap();
        let s = apply(&c, first, moved("/h/s/S", "/h/a/S", None));
        let t = apply(&c, first, moved("/h/s/T", "/h/a/T", None));
        let restore = c.begin_run("restore", &[], "/h", None).unwrap();
        let put_back = apply(&c, restore, moved("/h/a/S", "/h/s/S", Some(s)));
        let undo = c.begin_run("undo", &[], "/h", Some(restore)).unwrap();
        let again = apply(&c, undo, moved("/h/s/S", "/h/a/S", Some(put_back)));

        assert_eq!(c.newest_run_with_live_ops("undo").unwrap(), Some(first));
        assert_eq!(c.live_redo_ids_of_run(first).unwrap(), vec![again]);
        assert!(c.live_redo_ids_of_run(undo).unwrap().is_empty());
        assert_eq!(c.live_op_count(Some(first)).unwrap(), 2);
        assert_eq!(
            ids(&c.live_ops_of_run_before(first, i64::MAX, 10).unwrap()),
            vec![t]
        );

        // The undo of run 1 takes back both; then nothing is left to undo.
        let second_undo = c.begin_run("undo", &[], "/h", Some(first)).unwrap();
        apply(&c, second_undo, moved("/h/a/S", "/h/s/S", Some(again)));
        apply(&c, second_undo, moved("/h/a/T", "/h/s/T", Some(t)));
        assert_eq!(c.live_op_count(Some(first)).unwrap(), 0);
        assert_eq!(c.newest_run_with_live_ops("undo").unwrap(), None);
    }
}
