//! The reversible operations. Each knows how to prepare (journal first), apply, recover
//! after a crash, take itself back, and say whether it still holds. `ops` is the only
//! layer that joins the Codex home and the store.

pub mod config_edit;
pub mod created_file;
pub mod database_reclaim;
pub mod detail;
pub mod kind;
pub mod record;
pub mod row_digest;
pub mod row_now;
pub mod row_repair;
pub mod session_move;
pub mod session_retire;
pub mod source_recheck;
pub mod state_backup;
pub mod store_dir;
pub mod store_files;
pub mod taken_over;
pub mod thread_row;
pub mod thread_rows;
pub mod transcript_compress;
pub mod transcript_place;
pub mod tree_manifest;
pub mod worktree_move;
pub mod write_file;

use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::home_guard::HomeGuard;

pub use detail::OpDetail;
pub use kind::{OpKind, OpType, Seen};
pub use record::OpRecord;

use crate::store::{OpState, Store};

/// The name of an item's place once it has moved into the store, so that, as for any
/// other move, the op that later takes it out names that place as its source.
pub fn store_place(original: &std::path::Path) -> Result<String> {
    Ok(format!("store:{}", crate::path_text::recorded(original)?))
}

/// One mutating invocation, as recorded in `runs`.
pub struct Run<'s> {
    pub store: &'s Store,
    pub id: i64,
    /// Every path this run writes in the home is checked by it just before the write.
    pub guard: HomeGuard,
}

impl<'s> Run<'s> {
    pub fn begin(
        store: &'s Store,
        command: &str,
        args: &[String],
        home: &Path,
        reverts_run: Option<i64>,
    ) -> Result<Run<'s>> {
        let home_text = crate::path_text::recorded(home)?;
        let id = store
            .catalog
            .begin_run(command, args, home_text, reverts_run)?;
        Ok(Run {
            store,
            id,
            guard: HomeGuard::new(home),
        })
    }

    /// Records how the run ended. A failed run first settles the step it stopped in: each
    /// of its ops still `prepared` is finished or rolled back from what is on disk, as
    /// recovery would after a crash, so a failure (Codex holding its index, a full disk)
    /// leaves nothing for a later `recover`. What recovery will not guess about stays
    /// `prepared`, for the next command to report.
    pub fn finish(self, status: &str) -> Result<()> {
        if status == "failed" {
            self.settle_prepared_ops()?;
        }
        crate::failpoint::hit("run-finishing");
        self.store.catalog.finish_run(self.id, status)
    }

    fn settle_prepared_ops(&self) -> Result<()> {
        let prepared = record::read_all(self.store.catalog.ops_in_state(OpState::Prepared)?)?;
        for op in prepared.iter().filter(|op| op.run_id == self.id) {
            if path_conflicts(&self.guard, op).is_empty() {
                // A step that cannot be settled now is the next command's to report.
                let _ = recover_one(self.store, op);
            }
        }
        Ok(())
    }
}

/// What became of one planned item of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(i64),
    /// Codex wrote to the source while the op ran: the source is left as Codex wrote it, the
    /// copy the op made is dropped, and the op is rolled back, saying why.
    LeftToCodex {
        op_id: i64,
        why: String,
    },
}

impl Outcome {
    pub fn done(&self) -> Option<i64> {
        match self {
            Outcome::Done(id) => Some(*id),
            Outcome::LeftToCodex { .. } => None,
        }
    }

    /// The report's line for an item left to Codex.
    pub fn left_line(&self, path: &Path) -> Option<String> {
        match self {
            Outcome::Done(_) => None,
            Outcome::LeftToCodex { op_id, why } => Some(format!(
                "left as Codex wrote it: {} ({why}; op {op_id} rolled back, nothing lost)",
                path.display()
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Recovered {
    RolledForward,
    RolledBack,
    /// The disk is in a state recovery will not guess about; left `prepared`, reported.
    Stuck(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoveredOp {
    pub op_id: i64,
    pub run_id: i64,
    pub kind: OpKind,
    pub src: String,
    pub dst: Option<String>,
    pub result: Recovered,
}

/// Finishes or rolls back every op a crash left `prepared`, then closes the runs it
/// interrupted. An op whose recorded paths the guard refuses is left for the user, never
/// acted on. Every writing command calls this first.
pub fn recover_all(store: &Store, guard: &HomeGuard) -> Result<Vec<RecoveredOp>> {
    let mut results = Vec::new();
    let prepared = record::read_all(store.catalog.ops_in_state(OpState::Prepared)?)?;
    // A killed op may have left a temporary copy beside any path it writes; those folders
    // are swept once its recovery has settled what is real.
    let mut folders: Vec<PathBuf> = prepared
        .iter()
        .filter(|op| path_conflicts(guard, op).is_empty())
        .flat_map(|op| home_paths(op).unwrap_or_default())
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    folders.sort();
    folders.dedup();
    for op in prepared {
        let refused = path_conflicts(guard, &op);
        let result = if refused.is_empty() {
            recover_one(store, &op)?
        } else {
            Recovered::Stuck(refused.join("; "))
        };
        results.push(RecoveredOp {
            op_id: op.id,
            run_id: op.run_id,
            kind: op.kind,
            src: op.src.clone(),
            dst: op.dst.clone(),
            result,
        });
    }
    store.catalog.mark_unfinished_runs_interrupted()?;
    for folder in folders {
        crate::fs_atomic::remove_temp_files_in(&folder);
    }
    store.remove_temp_files();
    Ok(results)
}

/// After a batch failed with `err`, settles each of its ops in `op_ids` still prepared (as
/// recovery would after a crash, with `recover`), and returns `err`, saying what, if
/// anything, was left for `codex-maint recover`.
pub fn settle_failed_batch(
    store: &Store,
    op_ids: impl IntoIterator<Item = i64>,
    err: anyhow::Error,
    recover: impl Fn(&Store, &OpRecord) -> Result<Recovered>,
) -> anyhow::Error {
    use anyhow::Context as _;
    let mut unsettled = Vec::new();
    for id in op_ids {
        let settled = store
            .catalog
            .op(id)
            .and_then(|op| op.context("a prepared op is in the catalog"))
            .and_then(OpRecord::try_from)
            .and_then(|op| recover(store, &op));
        match settled {
            Ok(Recovered::Stuck(why)) => unsettled.push(why),
            Ok(_) => {}
            Err(e) => unsettled.push(format!("op {id}: {e:#}")),
        }
    }
    if unsettled.is_empty() {
        return err;
    }
    err.context(format!(
        "and settling the batch left {} item(s) for `codex-maint recover`: {}",
        unsettled.len(),
        unsettled.join("; ")
    ))
}

fn recover_one(store: &Store, op: &OpRecord) -> Result<Recovered> {
    op.kind.op_type().recover(store, op)
}

/// The paths in the home that applying, taking back or recovering `op` writes, as its
/// journal records them. A scheduler entry (`write_file`, and its copy in the store) lives
/// outside the home and is not listed.
pub fn home_paths(op: &OpRecord) -> Result<Vec<PathBuf>> {
    op.kind.op_type().home_paths(op)
}

/// Why the guard refuses to let `op` write where its journal says; empty when it allows.
pub fn path_conflicts(guard: &HomeGuard, op: &OpRecord) -> Vec<String> {
    match home_paths(op) {
        Ok(paths) => paths
            .iter()
            .filter_map(|p| guard.reason_to_refuse(p))
            .map(|why| format!("op {}: {why}", op.id))
            .collect(),
        Err(e) => vec![format!(
            "op {}: its journal detail cannot be read ({e})",
            op.id
        )],
    }
}

/// Why an op other than a session move cannot be taken back now (session moves are
/// checked in batches by `session_move::revert_conflicts`).
pub fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    op.kind.op_type().revert_conflicts(store, op)
}

/// Takes back one op other than a session move, as a new journaled op of `run`.
pub fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    op.kind.op_type().revert(run, op)
}

/// What `verify` finds wrong with each of `ops`, all taken to be in force.
pub fn verify_all_live(ops: &[OpRecord], progress: &dyn crate::progress::Progress) -> Vec<String> {
    progress.start(ops.len() as u64, "verifying");
    let problems = LiveChecker::default().check(ops, progress);
    progress.finish();
    problems
}

/// What `verify` finds wrong with the ops `run_id` applied, read a page at a time (a run of
/// 100,000 sessions has as many ops); and how many were applied.
pub fn verify_applied_of_run(store: &Store, run_id: i64) -> Result<(usize, Vec<String>)> {
    let mut checker = LiveChecker::default();
    let mut problems = Vec::new();
    let mut applied = 0usize;
    let mut after_seq = i64::MIN;
    loop {
        let page = record::read_all(store.catalog.ops_of_run_after(
            run_id,
            after_seq,
            crate::store::catalog::live_page_size(),
        )?)?;
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        let page: Vec<OpRecord> = page
            .into_iter()
            .filter(|o| o.state == crate::store::OpState::Applied)
            .collect();
        applied += page.len();
        problems.extend(checker.check(&page, &crate::progress::NoProgress));
    }
    Ok((applied, problems))
}

/// Checks ops in force a page at a time, so a catalog of 100,000 is never held at once:
/// each page's files are hashed ahead on all cores, and each thread index is opened once,
/// read-only, for all the pages.
#[derive(Default)]
pub struct LiveChecker {
    dbs: std::collections::HashMap<String, Option<crate::home::sqlite_read::ReadOnlyDb>>,
    indexes_now: row_now::IndexesNow,
    /// Items Codex itself moved, rewrote or deleted since their op: information, not problems.
    pub taken_over: Vec<String>,
}

impl LiveChecker {
    /// The problems of one page; `progress` advances by one per op.
    pub fn check(
        &mut self,
        ops: &[OpRecord],
        progress: &dyn crate::progress::Progress,
    ) -> Vec<String> {
        use crate::home::sqlite_read;
        let to_hash = moved_item_paths(ops);
        let hashed = to_hash.len() as u64;
        let hashes = crate::content_hash::Prefetched::with_progress(to_hash, progress);
        progress.advance(ops.len() as u64 - hashed);
        let proven = transcript_compress::prove_all(ops);
        let mut problems = Vec::new();
        for op in ops {
            let recorded = op.detail.index();
            let place = op.dst.as_deref().map(Path::new);
            if let Some(index) = place.and_then(|p| self.indexes_now.for_place(recorded, p)) {
                self.dbs
                    .entry(index.clone())
                    .or_insert_with(|| sqlite_read::open(Path::new(&index)).ok());
            }
            let dbs = &self.dbs;
            let lookup = |index: &str, id: &str| -> Option<Result<Option<thread_row::RowState>>> {
                let db = dbs.get(index)?.as_ref()?;
                Some(thread_row::read(&db.conn, id))
            };
            let seen = Seen {
                rows: &lookup,
                indexes_now: &self.indexes_now,
                hashes: &hashes,
                proven: &proven,
            };
            let found = op.kind.op_type().verify_live(op, &seen);
            if found.is_empty() {
                continue;
            }
            // Only an item that looks wrong is asked whether Codex took it over.
            let thread_id = match &op.detail {
                OpDetail::SessionMove(d) => Some(d.thread_id.as_str()),
                OpDetail::Recode(d) => Some(d.thread_id.as_str()),
                _ => None,
            };
            let row_now = place
                .and_then(|p| self.indexes_now.for_place(recorded, p))
                .zip(thread_id)
                .and_then(|(index, id)| lookup(&index, id));
            match taken_over::by_codex(op, row_now.as_ref()) {
                Some(how) => self.taken_over.push(taken_over::line(op, &how)),
                None => problems.extend(found),
            }
        }
        problems
    }
}

/// The files whose hashes verifying or reverting `ops` will need: each session move's
/// destination.
pub fn moved_item_paths(ops: &[OpRecord]) -> Vec<std::path::PathBuf> {
    ops.iter()
        .filter(|o| session_move::is_move(o))
        .filter_map(|o| o.dst.as_deref().map(std::path::PathBuf::from))
        .collect()
}

/// One line a person can read: what the op did.
pub fn describe(op: &OpRecord) -> String {
    format!(
        "{} {} -> {}",
        op.kind.op_type().what_it_did(op.kind),
        op.src,
        op.dst.as_deref().unwrap_or("-")
    )
}
