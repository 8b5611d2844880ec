//! Moving a transcript between `sessions/Y/M/D/` and `archived_sessions/` together with its
//! thread row, as Codex's own `archive` / `unarchive` do, journaled so that a crash at any
//! instant leaves the file exactly once, whole, and its row matching where it is.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::thread_row::{IndexWriter, RowState};
use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::clock::system_time_ns;
use crate::content_hash::hash_file;
use crate::error::MaintError;
use crate::fs_atomic::{
    TEMP_PREFIX, create_dirs_recording, fsync_dir, move_no_replace, move_no_replace_unsynced,
    remove_created_dirs_if_empty,
};
use crate::home::sessions::{SessionFile, file_mode};
use crate::store::{NewOp, OpState, Store};
use crate::{failpoint, home};

/// What the journal keeps of a move beyond the columns of `ops`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MoveDetail {
    pub thread_id: String,
    /// The thread index updated with the move; `None` for homes without one.
    pub index: Option<String>,
    pub row_before: Option<RowState>,
    pub row_after: Option<RowState>,
    /// Folders this op created for its destination, removed again if it is rolled back.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// Folders an earlier op created that this one empties (an undo), removed if empty.
    #[serde(default)]
    pub tidy_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PlannedMove {
    pub kind: OpKind,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub detail: MoveDetail,
    pub reverts_op: Option<i64>,
    /// The content hash when the caller has just read it, so the file is read only once.
    pub known_hash: Option<String>,
}

/// Plans the archive of one active transcript the way `codex archive` does it: same file
/// name, flat in `archived_sessions/`, row pointed at the new path and marked archived.
pub fn plan_archive(
    home: &home::CodexHome,
    file: &SessionFile,
    row: Option<&home::thread_index::ThreadRow>,
    index_path: Option<&Path>,
    now_unix: i64,
) -> PlannedMove {
    let file_name = file
        .path
        .file_name()
        .expect("transcripts have names")
        .to_owned();
    let dst = archive_destination(home, file);
    let row_before = row.map(|r| RowState {
        rollout_path: r.rollout_path.clone(),
        archived: r.archived,
        archived_at: r.archived_at,
    });
    let row_after = row_before.as_ref().map(|before| RowState {
        rollout_path: codex_spelling_of(&before.rollout_path, &dst, &file_name),
        archived: 1,
        archived_at: Some(now_unix),
    });
    PlannedMove {
        kind: OpKind::ArchiveSession,
        src: file.path.clone(),
        dst,
        detail: MoveDetail {
            thread_id: file.id().unwrap_or_default().to_string(),
            index: index_path.map(|p| p.display().to_string()),
            row_before,
            row_after,
            created_dirs: Vec::new(),
            tidy_dirs: Vec::new(),
        },
        reverts_op: None,
        known_hash: None,
    }
}

/// Where archiving puts a transcript: `archived_sessions/`, flat, under the same name.
pub fn archive_destination(home: &home::CodexHome, file: &SessionFile) -> PathBuf {
    home.archived_sessions_dir()
        .join(file.path.file_name().expect("transcripts have names"))
}

/// Codex stores absolute paths spelled from its own view of the home; the new path keeps
/// that spelling (taken from the old row) rather than ours, which may differ by a symlink.
pub(crate) fn codex_spelling_of(
    old_rollout_path: &str,
    our_dst: &Path,
    file_name: &std::ffi::OsStr,
) -> String {
    // <home>/sessions/YYYY/MM/DD/<file>: the home is five levels up, `sessions` four.
    let old = Path::new(old_rollout_path);
    let under_sessions = old
        .ancestors()
        .nth(4)
        .and_then(|s| s.file_name())
        .is_some_and(|n| n == home::SESSIONS_DIR);
    let codex_home = old.ancestors().nth(5).filter(|_| under_sessions);
    match codex_home {
        Some(h) => h
            .join(home::ARCHIVED_SESSIONS_DIR)
            .join(file_name)
            .display()
            .to_string(),
        None => our_dst.display().to_string(),
    }
}

/// Every folder codex-maint ever created for a destination. An inverse move tidies those
/// above its item once they are empty: the op that created a shared folder may be taken
/// back before, or in another run than, the ops that filled it.
pub fn folders_we_created(store: &Store) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for list in store.catalog.created_dir_lists()? {
        for d in serde_json::from_value::<Vec<PathBuf>>(list).unwrap_or_default() {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// The inverse of an applied move: back to where it was, the row back to what it was;
/// of `our_folders`, those above the item are removed once the move leaves them empty.
pub fn plan_revert(op: &OpRecord, our_folders: &[PathBuf]) -> Result<PlannedMove> {
    let detail = op.detail_as::<MoveDetail>()?;
    let dst_of_op = op.dst.clone().context("a move op has a destination")?;
    let kind = if op.kind == OpKind::ArchiveSession {
        OpKind::UnarchiveSession
    } else {
        OpKind::ArchiveSession
    };
    Ok(PlannedMove {
        kind,
        src: PathBuf::from(&dst_of_op),
        dst: PathBuf::from(&op.src),
        detail: MoveDetail {
            thread_id: detail.thread_id.clone(),
            index: detail.index.clone(),
            row_before: detail.row_after.clone(),
            row_after: detail.row_before.clone(),
            created_dirs: Vec::new(),
            tidy_dirs: our_folders
                .iter()
                .filter(|d| Path::new(dst_of_op.as_str()).starts_with(d))
                .cloned()
                .collect(),
        },
        reverts_op: Some(op.id),
        known_hash: None,
    })
}

/// Names, in `plan`, the thread index the home has now when the op recorded none: Codex may
/// have built one since, and a revert must carry the row it made along with the file.
pub fn adopt_index_now(
    op: &OpRecord,
    plan: &mut PlannedMove,
    indexes_now: &super::row_now::IndexesNow,
) -> Result<(), String> {
    if plan.detail.index.is_none() {
        plan.detail.index = indexes_now
            .to_write(&plan.src)
            .map_err(|reason| format!("op {}: {reason}", op.id))?
            .map(|p| p.display().to_string());
    }
    Ok(())
}

/// Why an applied move cannot be taken back now; empty when it can. Hashes the file, and
/// records the hash in `plan` so the revert does not read it again. The row is decided
/// against `index` as it is now (see `row_now::decide`), and the decision kept in `plan`.
pub fn revert_conflicts(
    op: &OpRecord,
    plan: &mut PlannedMove,
    index: Option<&rusqlite::Connection>,
    hashes: &crate::content_hash::Prefetched,
) -> Vec<String> {
    let mut conflicts = Vec::new();
    let here = &plan.src;
    match fs::symlink_metadata(here) {
        Err(_) => conflicts.push(format!(
            "op {}: {} is no longer there",
            op.id,
            here.display()
        )),
        Ok(m) if !m.is_file() => conflicts.push(format!(
            "op {}: {} is no longer a regular file",
            op.id,
            here.display()
        )),
        Ok(_) => match hashes.hash(here) {
            Ok(h) if Some(&h) == op.hash_after.as_ref().or(op.hash_before.as_ref()) => {
                plan.known_hash = Some(h)
            }
            Ok(_) => conflicts.push(format!(
                "op {}: {} changed since it was moved (hash differs)",
                op.id,
                here.display()
            )),
            Err(e) => conflicts.push(format!("op {}: cannot read {}: {e}", op.id, here.display())),
        },
    }
    if fs::symlink_metadata(&plan.dst).is_ok() {
        conflicts.push(format!(
            "op {}: the original place {} is occupied",
            op.id,
            plan.dst.display()
        ));
    }
    match (index, plan.detail.index.clone()) {
        (Some(conn), Some(path)) => {
            let expected = plan
                .detail
                .row_before
                .as_ref()
                .zip(plan.detail.row_after.as_ref());
            match super::row_now::decide(
                conn,
                &path,
                &plan.detail.thread_id,
                expected,
                &plan.src,
                &plan.dst,
                crate::clock::now_unix(),
            ) {
                Ok(Some(change)) => {
                    plan.detail.row_before = Some(change.before);
                    plan.detail.row_after = Some(change.after);
                }
                Ok(None) => {}
                Err(reason) => conflicts.push(format!("op {}: {reason}", op.id)),
            }
        }
        _ if plan.detail.row_before.is_some() => conflicts.push(format!(
            "op {}: the thread index {:?} is gone",
            op.id, plan.detail.index
        )),
        _ => {}
    }
    conflicts
}

/// Moves per journal batch, for every command that moves sessions: large enough that
/// commits and folder fsyncs are amortised (a folder is synced once per batch however many
/// of its files moved), small enough that a failure rolls back little.
pub const BATCH: usize = 1024;

/// Executes `plans` in order, `BATCH` at a time, stopping at the first batch that fails.
/// The next batch is hashed while this one is journaled, moved and synced, so the reads
/// overlap the renames and fsyncs instead of waiting for them. Returns the op ids of the
/// moves done (a prefix of `plans`) and the failure, if any; progress goes to `progress`.
pub fn execute_all(
    run: &Run,
    plans: Vec<PlannedMove>,
    mut index: Option<&mut IndexWriter>,
    doing: &str,
    progress: &dyn crate::progress::Progress,
) -> (Vec<i64>, Option<anyhow::Error>) {
    progress.start(plans.len() as u64, doing);
    let batches: Vec<&[PlannedMove]> = plans.chunks(BATCH).collect();
    let hash_batch = |batch: &[PlannedMove]| {
        crate::content_hash::Prefetched::new(
            batch
                .iter()
                .filter(|p| p.known_hash.is_none())
                .map(|p| p.src.clone())
                .collect(),
        )
    };
    let mut done = Vec::with_capacity(plans.len());
    let mut failure = None;
    std::thread::scope(|scope| {
        let mut next = batches.first().map(|b| scope.spawn(move || hash_batch(b)));
        for (k, batch) in batches.iter().enumerate() {
            let hashes = next
                .take()
                .expect("each batch's hashing was started")
                .join()
                .expect("hashing does not panic");
            next = batches
                .get(k + 1)
                .map(|b| scope.spawn(move || hash_batch(b)));
            let hashed: Vec<PlannedMove> = batch
                .iter()
                .map(|p| PlannedMove {
                    known_hash: p.known_hash.clone().or_else(|| hashes.hash(&p.src).ok()),
                    ..p.clone()
                })
                .collect();
            match execute_batch(run, hashed, index.as_deref_mut()) {
                Ok(ids) => {
                    progress.advance(ids.len() as u64);
                    done.extend(ids);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    });
    progress.finish();
    (done, failure)
}

/// Executes a batch of moves under the journal protocol: all prepared (one commit), each
/// file moved, all rows changed (one transaction), all marked applied (one commit). If
/// any step fails, the moves already made in this batch are put back and the batch's ops
/// marked rolled back, so a failed batch leaves no trace but its journal rows.
pub fn execute_batch(
    run: &Run,
    plans: Vec<PlannedMove>,
    mut index: Option<&mut IndexWriter>,
) -> Result<Vec<i64>> {
    let catalog = &run.store.catalog;
    let mut plans = plans;
    let to_hash: Vec<PathBuf> = plans
        .iter()
        .filter(|p| p.known_hash.is_none())
        .map(|p| p.src.clone())
        .collect();
    let prefetched = crate::content_hash::Prefetched::new(to_hash);
    let mut prepared = Vec::with_capacity(plans.len());
    let mut dirs_claimed: HashSet<PathBuf> = HashSet::new();
    for mut plan in plans.drain(..) {
        run.guard
            .ensure_all([plan.src.as_path(), plan.dst.as_path()])?;
        let meta = fs::symlink_metadata(&plan.src)
            .with_context(|| format!("reading {}", plan.src.display()))?;
        if !meta.is_file() {
            return Err(MaintError::refused(
                format!("{} is not a regular file; not moved", plan.src.display()),
                vec![],
            )
            .into());
        }
        let hash = match plan.known_hash.take() {
            Some(h) => h,
            None => prefetched
                .hash(&plan.src)
                .with_context(|| format!("hashing {}", plan.src.display()))?,
        };
        for dir in crate::fs_atomic::missing_dirs(plan.dst.parent().unwrap_or(Path::new("/"))) {
            if dirs_claimed.insert(dir.clone()) {
                plan.detail.created_dirs.push(dir);
            }
        }
        let new_op = NewOp {
            kind: plan.kind.to_string(),
            src: plan.src.display().to_string(),
            dst: Some(plan.dst.display().to_string()),
            size: Some(meta.len() as i64),
            mode: Some(file_mode(&meta) as i64),
            mtime_ns: meta.modified().ok().map(system_time_ns),
            hash_before: Some(hash.clone()),
            blob: None,
            detail: super::detail::stored(&plan.detail)?,
            reverts_op: plan.reverts_op,
        };
        prepared.push((plan, new_op, hash));
    }
    let ops: Vec<NewOp> = prepared.iter().map(|(_, op, _)| op.clone()).collect();
    let ids = catalog.prepare_ops(run.id, &ops)?;
    failpoint::hit("op-prepared");

    let mut moved: Vec<usize> = Vec::new();
    let outcome = (|| -> Result<()> {
        for (i, (plan, _, _)) in prepared.iter().enumerate() {
            run.guard
                .ensure_all([plan.src.as_path(), plan.dst.as_path()])?;
            if let Some(parent) = plan.dst.parent() {
                create_dirs_recording(parent)?;
            }
            move_no_replace_unsynced(&plan.src, &plan.dst)?;
            moved.push(i);
            failpoint::hit("file-moved");
        }
        let mut folders: Vec<&Path> = prepared
            .iter()
            .flat_map(|(p, _, _)| [p.src.parent(), p.dst.parent()])
            .flatten()
            .collect();
        folders.sort();
        folders.dedup();
        for folder in folders {
            fsync_dir(folder)?;
        }
        if let Some(index) = index.as_deref_mut() {
            let changes: Vec<(&str, &RowState, &RowState)> = prepared
                .iter()
                .filter_map(|(plan, _, _)| {
                    let d = &plan.detail;
                    Some((
                        d.thread_id.as_str(),
                        d.row_before.as_ref()?,
                        d.row_after.as_ref()?,
                    ))
                })
                .collect();
            index.transition(&changes)?;
        }
        failpoint::hit("thread-row-updated");
        Ok(())
    })();

    if let Err(err) = outcome {
        for &i in moved.iter().rev() {
            let (plan, _, _) = &prepared[i];
            if let Err(back) = move_no_replace(&plan.dst, &plan.src) {
                return Err(err.context(format!(
                    "and putting {} back failed ({back:#}); run `codex-maint recover`",
                    plan.src.display()
                )));
            }
        }
        for (plan, _, _) in prepared.iter().rev() {
            remove_created_dirs_if_empty(&plan.detail.created_dirs);
        }
        for id in &ids {
            catalog.mark_rolled_back(*id)?;
        }
        return Err(err);
    }

    for (plan, _, _) in &prepared {
        remove_created_dirs_if_empty(&plan.detail.tidy_dirs);
    }
    let applied: Vec<(i64, Option<String>)> = ids
        .iter()
        .zip(&prepared)
        .map(|(id, (_, _, hash))| (*id, Some(hash.clone())))
        .collect();
    catalog.mark_applied_many(&applied)?;
    failpoint::hit("op-applied");
    Ok(ids)
}

/// Brings one op left `prepared` by a crash to rest by looking at the disk: a file still at
/// its source was never moved (roll back), a whole file at its destination was (roll
/// forward); the row is set to match, and anything else is reported, never guessed.
fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let detail = op.detail_as::<MoveDetail>()?;
    let src = PathBuf::from(&op.src);
    let dst = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    let expected = op.hash_before.clone().unwrap_or_default();
    let at_src = fs::symlink_metadata(&src).is_ok();
    let at_dst = fs::symlink_metadata(&dst).is_ok();
    let mut index = match &detail.index {
        Some(p) if detail.row_before.is_some() => Some(IndexWriter::open(Path::new(p))?),
        _ => None,
    };
    let settle_row = |index: &mut Option<IndexWriter>,
                      from: &Option<RowState>,
                      to: &Option<RowState>|
     -> Result<()> {
        if let (Some(index), Some(from), Some(to)) = (index.as_mut(), from, to) {
            index.transition(&[(detail.thread_id.as_str(), from, to)])?;
        }
        Ok(())
    };
    // A row Codex made after the op was recorded follows the file where recovery leaves it.
    let carry_unrecorded_row = |settled_at: &Path, other: &Path| -> Result<Option<Recovered>> {
        if detail.row_before.is_some() {
            return Ok(None);
        }
        Ok(
            super::row_now::carry_row_after_recovery(&detail.thread_id, settled_at, other)?
                .err()
                .map(Recovered::Stuck),
        )
    };
    match (at_src, at_dst) {
        (true, false) => {
            if let Some(stuck) = carry_unrecorded_row(&src, &dst)? {
                return Ok(stuck);
            }
            settle_row(&mut index, &detail.row_after, &detail.row_before)?;
            remove_our_temp_copies(&dst);
            remove_created_dirs_if_empty(&detail.created_dirs);
            store.catalog.mark_rolled_back(op.id)?;
            Ok(Recovered::RolledBack)
        }
        (false, true) => {
            if hash_file(&dst)? != expected {
                return Ok(Recovered::Stuck(format!(
                    "{} differs from the journaled hash",
                    dst.display()
                )));
            }
            if let Some(stuck) = carry_unrecorded_row(&dst, &src)? {
                return Ok(stuck);
            }
            settle_row(&mut index, &detail.row_before, &detail.row_after)?;
            remove_created_dirs_if_empty(&detail.tidy_dirs);
            store.catalog.mark_applied(op.id, Some(&expected))?;
            Ok(Recovered::RolledForward)
        }
        (true, true) => {
            // A move interrupted between placing the copy and removing the source: finish it
            // only when both are provably the same bytes.
            if hash_file(&dst)? == expected && hash_file(&src)? == expected {
                fs::remove_file(&src)?;
                crate::fs_atomic::fsync_parent(&src)?;
                if let Some(stuck) = carry_unrecorded_row(&dst, &src)? {
                    return Ok(stuck);
                }
                settle_row(&mut index, &detail.row_before, &detail.row_after)?;
                store.catalog.mark_applied(op.id, Some(&expected))?;
                Ok(Recovered::RolledForward)
            } else {
                Ok(Recovered::Stuck(format!(
                    "both {} and {} exist and differ; keep the right one by hand",
                    src.display(),
                    dst.display()
                )))
            }
        }
        (false, false) => Ok(Recovered::Stuck(format!(
            "neither {} nor {} exists",
            src.display(),
            dst.display()
        ))),
    }
}

fn remove_our_temp_copies(dst: &Path) {
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        return;
    };
    let suffix = format!("-{}", name.to_string_lossy());
    if let Ok(entries) = fs::read_dir(parent) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(TEMP_PREFIX) && n.ends_with(&suffix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Looks up a thread's row in an index: `None` when the index cannot be opened.
pub type RowLookup<'a> = dyn Fn(&str, &str) -> Option<Result<Option<RowState>>> + 'a;

/// What `verify` finds wrong with a live move: the item missing or changed at its recorded
/// place, or the thread row no longer pointing at an existing file.
fn verify_live(
    op: &OpRecord,
    rows: &RowLookup<'_>,
    indexes_now: &super::row_now::IndexesNow,
    hashes: &crate::content_hash::Prefetched,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(dst) = op.dst.as_deref() else {
        return problems;
    };
    match hashes.hash(Path::new(dst)) {
        Ok(h) if Some(&h) == op.hash_after.as_ref() => {}
        Ok(_) => problems.push(format!(
            "op {}: {dst} does not match its recorded hash",
            op.id
        )),
        Err(e) => problems.push(format!(
            "op {}: {dst} is missing or unreadable ({e})",
            op.id
        )),
    }
    let Ok(detail) = op.detail_as::<MoveDetail>() else {
        problems.push(format!("op {}: its journal detail cannot be read", op.id));
        return problems;
    };
    if let Some(index) = indexes_now.for_place(detail.index.as_deref(), Path::new(dst)) {
        problems.extend(super::row_now::disagreement(
            op.id,
            &detail.thread_id,
            &index,
            rows(&index, &detail.thread_id),
            Path::new(dst),
            detail.row_after.as_ref(),
        ));
    }
    problems
}

pub fn is_move(op: &OpRecord) -> bool {
    matches!(op.kind, OpKind::ArchiveSession | OpKind::UnarchiveSession)
        && op.state == OpState::Applied
}

pub struct SessionMove;

impl super::OpType for SessionMove {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::UnarchiveSession {
            "unarchived session"
        } else {
            "archived session"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<MoveDetail>(json).map(super::OpDetail::SessionMove)
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<Recovered> {
        recover(store, op)
    }
    /// A session move is taken back only together with the other moves of its undo, which
    /// share one write to the thread index: `undo` checks them with `revert_conflicts`.
    fn revert_conflicts(&self, _store: &Store, op: &OpRecord) -> Vec<String> {
        vec![format!(
            "op {}: a session move is taken back in a batch with its thread index, by undo",
            op.id
        )]
    }
    fn revert(&self, _run: &Run, op: &OpRecord) -> Result<i64> {
        anyhow::bail!(
            "op {}: a session move is taken back in a batch with its thread index, by undo",
            op.id
        )
    }
    fn verify_live(&self, op: &OpRecord, seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op, seen.rows, seen.indexes_now, seen.hashes)
    }
}
