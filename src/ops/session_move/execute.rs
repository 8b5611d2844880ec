//! Carrying out moves a batch at a time under the journal protocol, because the commits,
//! folder fsyncs and the one write to the thread index are what a large archive costs, and
//! a batch pays each of them once.

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::PlannedMove;
use crate::clock::system_time_ns;
use crate::error::MaintError;
use crate::failpoint;
use crate::fs_atomic::{SourceKept, move_within_home, move_within_home_checked};
use crate::home::sessions::file_mode;
use crate::ops::source_recheck::{Recheck, SourceSeen};
use crate::ops::thread_row::{IndexWriter, RowState};
use crate::ops::{Outcome, Run};
use crate::store::NewOp;

/// Moves per journal batch, for every command that moves sessions: large enough that
/// commits and folder fsyncs are amortised (a folder is synced once per batch however many
/// of its files moved), small enough that a failure rolls back little.
pub const BATCH: usize = 1024;

/// Moves a command plans in full and hands over at once: several batches, so hashing the
/// next batch still overlaps moving this one.
pub const SLICE: usize = 8 * BATCH;

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
) -> (Vec<Outcome>, Option<anyhow::Error>) {
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
/// marked rolled back, so a failed batch leaves no trace but its journal rows. A move
/// across filesystems that finds its source written to by Codex after the copy leaves that
/// item to Codex (copy dropped, op rolled back with the reason); the others go on.
pub fn execute_batch(
    run: &Run,
    plans: Vec<PlannedMove>,
    mut index: Option<&mut IndexWriter>,
) -> Result<Vec<Outcome>> {
    let catalog = &run.store.catalog;
    let mut plans = plans;
    let to_hash: Vec<PathBuf> = plans
        .iter()
        .filter(|p| p.known_hash.is_none())
        .map(|p| p.src.clone())
        .collect();
    let prefetched = crate::content_hash::Prefetched::new(to_hash);
    // The batch's folders are resolved afresh, once each, and every write below happens
    // relative to those descriptors.
    run.guard.begin_batch();
    let mut prepared = Vec::with_capacity(plans.len());
    let mut dirs_claimed: HashSet<PathBuf> = HashSet::new();
    let mut seen = Vec::with_capacity(plans.len());
    for mut plan in plans.drain(..) {
        run.guard
            .ensure_all([plan.src.as_path(), plan.dst.as_path()])?;
        crate::ops::transcript_place::ensure(run.guard.root(), &[&plan.src, &plan.dst])?;
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
        for dir in run
            .guard
            .missing_folders(plan.dst.parent().unwrap_or(Path::new("/")))?
        {
            if dirs_claimed.insert(dir.clone()) {
                plan.detail.created_dirs.push(dir);
            }
        }
        let new_op = NewOp {
            kind: plan.kind.to_string(),
            src: crate::path_text::recorded_string(&plan.src)?,
            dst: Some(crate::path_text::recorded_string(&plan.dst)?),
            size: Some(meta.len() as i64),
            mode: Some(file_mode(&meta) as i64),
            mtime_ns: meta.modified().ok().map(system_time_ns),
            hash_before: Some(hash.clone()),
            blob: None,
            detail: crate::ops::detail::stored(&plan.detail)?,
            reverts_op: plan.reverts_op,
        };
        prepared.push((plan, new_op, hash));
        seen.push(SourceSeen::of(&meta));
    }
    let ops: Vec<NewOp> = prepared.iter().map(|(_, op, _)| op.clone()).collect();
    let ids = catalog.prepare_ops(run.id, &ops)?;
    failpoint::hit("op-prepared");

    let mut moved: Vec<usize> = Vec::new();
    let mut left: Vec<(usize, String)> = Vec::new();
    let outcome = (|| -> Result<()> {
        for (i, (plan, _, _)) in prepared.iter().enumerate() {
            run.guard
                .ensure_all([plan.src.as_path(), plan.dst.as_path()])?;
            if let Some(parent) = plan.dst.parent() {
                run.guard.create_folders(parent)?;
            }
            let check = Recheck {
                home: run.guard.root(),
                thread_id: Some(plan.detail.thread_id.as_str()).filter(|id| !id.is_empty()),
                seen: seen[i],
            };
            match move_within_home_checked(&run.guard, &plan.src, &plan.dst, &check) {
                Ok(_) => moved.push(i),
                Err(e) => match e.downcast::<SourceKept>() {
                    Ok(SourceKept(why)) => left.push((i, why)),
                    Err(e) => return Err(e),
                },
            }
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
            run.guard.sync_folder(folder)?;
        }
        if let Some(index) = index.as_deref_mut() {
            let changes: Vec<(&str, &RowState, &RowState)> = moved
                .iter()
                .map(|&i| &prepared[i])
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
            let put_back = move_within_home(&run.guard, &plan.dst, &plan.src).and_then(|_| {
                for folder in [plan.src.parent(), plan.dst.parent()].into_iter().flatten() {
                    run.guard.sync_folder(folder)?;
                }
                Ok(())
            });
            if let Err(back) = put_back {
                return Err(err.context(format!(
                    "and putting {} back failed ({back:#}); run `codex-maint recover`",
                    plan.src.display()
                )));
            }
        }
        for (plan, _, _) in prepared.iter().rev() {
            run.guard.remove_folders_if_empty(&plan.detail.created_dirs);
        }
        for id in &ids {
            catalog.mark_rolled_back(*id)?;
        }
        return Err(err);
    }

    for (plan, _, _) in &prepared {
        run.guard.remove_folders_if_empty(&plan.detail.tidy_dirs);
    }
    let mut outcomes: Vec<Outcome> = ids.iter().map(|id| Outcome::Done(*id)).collect();
    for (i, why) in left {
        let (plan, _, _) = &prepared[i];
        let mut detail = plan.detail.clone();
        detail.left_to_codex = Some(why.clone());
        catalog.update_detail(ids[i], &crate::ops::detail::stored(&detail)?)?;
        run.guard.remove_folders_if_empty(&plan.detail.created_dirs);
        catalog.mark_rolled_back(ids[i])?;
        outcomes[i] = Outcome::LeftToCodex { op_id: ids[i], why };
    }
    let applied: Vec<(i64, Option<String>)> = ids
        .iter()
        .zip(&prepared)
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.done().is_some())
        .map(|((id, (_, _, hash)), _)| (*id, Some(hash.clone())))
        .collect();
    catalog.mark_applied_many(&applied)?;
    failpoint::hit("op-applied");
    Ok(outcomes)
}
