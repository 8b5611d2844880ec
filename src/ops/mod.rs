//! The reversible operations. Each knows how to prepare (journal first), apply, recover
//! after a crash, take itself back, and say whether it still holds. `ops` is the only
//! layer that joins the Codex home and the store.

pub mod config_edit;
pub mod row_now;
pub mod row_repair;
pub mod session_move;
pub mod state_backup;
pub mod store_dir;
pub mod store_files;
pub mod thread_row;
pub mod transcript_compress;
pub mod tree_manifest;
pub mod worktree_move;
pub mod write_file;

use anyhow::{Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::home_guard::HomeGuard;

use crate::store::{OpRecord, OpState, Store};

/// The name of an item's place once it has moved into the store, so that, as for any
/// other move, the op that later takes it out names that place as its source.
pub fn store_place(original: &std::path::Path) -> String {
    format!("store:{}", original.display())
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
        let id =
            store
                .catalog
                .begin_run(command, args, &home.display().to_string(), reverts_run)?;
        Ok(Run {
            store,
            id,
            guard: HomeGuard::new(home),
        })
    }

    pub fn finish(self, status: &str) -> Result<()> {
        crate::failpoint::hit("run-finishing");
        self.store.catalog.finish_run(self.id, status)
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
    pub kind: String,
    pub src: String,
    pub dst: Option<String>,
    pub result: Recovered,
}

/// Finishes or rolls back every op a crash left `prepared`, then closes the runs it
/// interrupted. An op whose recorded paths the guard refuses is left for the user, never
/// acted on. Every writing command calls this first.
pub fn recover_all(store: &Store, guard: &HomeGuard) -> Result<Vec<RecoveredOp>> {
    let mut results = Vec::new();
    let prepared = store.catalog.ops_in_state(OpState::Prepared)?;
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
            kind: op.kind.clone(),
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

fn recover_one(store: &Store, op: &OpRecord) -> Result<Recovered> {
    match op.kind.as_str() {
        session_move::ARCHIVE | session_move::UNARCHIVE => session_move::recover(store, op),
        transcript_compress::COMPRESS | transcript_compress::DECOMPRESS => {
            transcript_compress::recover(store, op)
        }
        store_files::KIND | store_files::RESTORE_KIND => store_files::recover(store, op),
        store_dir::KIND | store_dir::RESTORE_KIND => store_dir::recover(store, op),
        worktree_move::KIND => worktree_move::recover(store, op),
        config_edit::KIND => config_edit::recover(store, op),
        write_file::KIND => write_file::recover(store, op),
        row_repair::KIND => row_repair::recover(store, op),
        other => bail!(
            "op {} has a kind this version does not know ({other}); upgrade codex-maint",
            op.id
        ),
    }
}

/// The paths in the home that applying, taking back or recovering `op` writes, as its
/// journal records them. A scheduler entry (`write_file`, and its copy in the store) lives
/// outside the home and is not listed.
pub fn home_paths(op: &OpRecord) -> Result<Vec<PathBuf>> {
    let src_and_dst = || {
        let mut paths = vec![PathBuf::from(&op.src)];
        paths.extend(op.dst.as_deref().map(PathBuf::from));
        paths
    };
    Ok(match op.kind.as_str() {
        session_move::ARCHIVE | session_move::UNARCHIVE | worktree_move::KIND => src_and_dst(),
        transcript_compress::COMPRESS | transcript_compress::DECOMPRESS => {
            let d: transcript_compress::RecodeDetail = serde_json::from_value(op.detail.clone())?;
            let mut paths = src_and_dst();
            paths.push(d.temp);
            paths
        }
        store_files::KIND | store_files::RESTORE_KIND => {
            let d: store_files::StoreFilesDetail = serde_json::from_value(op.detail.clone())?;
            if store_files::writes_in_home(&d.category) {
                d.files.into_iter().map(|f| f.path).collect()
            } else {
                Vec::new()
            }
        }
        store_dir::KIND | store_dir::RESTORE_KIND => {
            let d: store_dir::StoreDirDetail = serde_json::from_value(op.detail.clone())?;
            std::iter::once(d.dir).chain(d.trash).collect()
        }
        config_edit::KIND => vec![PathBuf::from(&op.src)],
        // A row repair writes only Codex's thread index; the transcript it names stays put.
        row_repair::KIND => {
            let d: row_repair::RowFix = serde_json::from_value(op.detail.clone())?;
            vec![PathBuf::from(d.index)]
        }
        _ => Vec::new(),
    })
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
    match op.kind.as_str() {
        transcript_compress::COMPRESS | transcript_compress::DECOMPRESS => {
            transcript_compress::revert_conflicts(store, op)
        }
        store_files::KIND | store_files::RESTORE_KIND => store_files::revert_conflicts(store, op),
        store_dir::KIND | store_dir::RESTORE_KIND => store_dir::revert_conflicts(store, op),
        worktree_move::KIND => worktree_move::revert_conflicts(op),
        config_edit::KIND => config_edit::revert_conflicts(store, op),
        write_file::KIND => write_file::revert_conflicts(op),
        row_repair::KIND => row_repair::revert_conflicts(op),
        other => vec![format!(
            "op {}: kind {other} cannot be taken back by this version",
            op.id
        )],
    }
}

/// Takes back one op other than a session move, as a new journaled op of `run`.
pub fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    match op.kind.as_str() {
        transcript_compress::COMPRESS | transcript_compress::DECOMPRESS => {
            transcript_compress::revert(run, op)
        }
        store_files::KIND | store_files::RESTORE_KIND => store_files::revert(run, op),
        store_dir::KIND | store_dir::RESTORE_KIND => store_dir::revert(run, op),
        worktree_move::KIND => worktree_move::revert(run, op),
        config_edit::KIND => config_edit::revert(run, op),
        write_file::KIND => write_file::revert(run, op),
        row_repair::KIND => row_repair::revert(run, op),
        other => bail!(
            "op {}: kind {other} cannot be taken back by this version",
            op.id
        ),
    }
}

/// What `verify` finds wrong with an op in force.
pub fn verify_live(
    op: &OpRecord,
    rows: &session_move::RowLookup<'_>,
    indexes_now: &row_now::IndexesNow,
    hashes: &crate::content_hash::Prefetched,
    proven: &transcript_compress::Proven,
) -> Vec<String> {
    match op.kind.as_str() {
        session_move::ARCHIVE | session_move::UNARCHIVE => {
            session_move::verify_live(op, rows, indexes_now, hashes)
        }
        transcript_compress::COMPRESS | transcript_compress::DECOMPRESS => {
            transcript_compress::verify_live(op, rows, indexes_now, proven)
        }
        store_files::KIND | store_files::RESTORE_KIND => store_files::verify_live(op),
        store_dir::KIND | store_dir::RESTORE_KIND => store_dir::verify_live(op),
        worktree_move::KIND => worktree_move::verify_live(op),
        config_edit::KIND => config_edit::verify_live(op),
        write_file::KIND => write_file::verify_live(op),
        row_repair::KIND => row_repair::verify_live(op, rows),
        other => vec![format!(
            "op {}: kind {other} is unknown to this version",
            op.id
        )],
    }
}

/// What `verify` finds wrong with each of `ops`, all taken to be in force: the files moved
/// are hashed ahead on all cores, and each thread index is opened once, read-only.
pub fn verify_all_live(ops: &[OpRecord], progress: &dyn crate::progress::Progress) -> Vec<String> {
    use crate::home::sqlite_read;
    use std::collections::HashMap;
    let to_hash = moved_item_paths(ops);
    progress.start(to_hash.len() as u64, "verifying");
    let hashes = crate::content_hash::Prefetched::with_progress(to_hash, progress);
    progress.finish();
    let proven = transcript_compress::prove_all(ops);
    let mut dbs: HashMap<String, Option<sqlite_read::ReadOnlyDb>> = HashMap::new();
    let indexes_now = row_now::IndexesNow::default();
    let mut problems = Vec::new();
    for op in ops {
        let recorded = op.detail.get("index").and_then(|v| v.as_str());
        let place = op.dst.as_deref().map(Path::new);
        if let Some(index) = place.and_then(|p| indexes_now.for_place(recorded, p)) {
            dbs.entry(index.clone())
                .or_insert_with(|| sqlite_read::open(Path::new(&index)).ok());
        }
        let lookup = |index: &str, id: &str| -> Option<Result<Option<thread_row::RowState>>> {
            let db = dbs.get(index)?.as_ref()?;
            Some(thread_row::read(&db.conn, id))
        };
        problems.extend(verify_live(op, &lookup, &indexes_now, &hashes, &proven));
    }
    problems
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
    let what = match op.kind.as_str() {
        session_move::ARCHIVE => "archived session",
        session_move::UNARCHIVE => "unarchived session",
        transcript_compress::COMPRESS => "compressed transcript",
        transcript_compress::DECOMPRESS => "decompressed transcript",
        store_files::KIND => "moved into the store",
        store_files::RESTORE_KIND => "restored from the store",
        store_dir::KIND => "moved folder into the store",
        store_dir::RESTORE_KIND => "restored folder from the store",
        worktree_move::KIND => "moved worktree",
        config_edit::KIND => "edited",
        write_file::KIND => "wrote",
        row_repair::KIND => "repaired thread row",
        other => other,
    };
    format!("{what} {} -> {}", op.src, op.dst.as_deref().unwrap_or("-"))
}
