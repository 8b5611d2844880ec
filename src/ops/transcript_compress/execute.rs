//! Carrying out recodes a batch at a time, because that is what makes a large archive
//! affordable: one commit to prepare, one `syncfs` per filesystem, one row transaction and
//! one commit to settle, however many transcripts the batch holds. The proof that each new
//! file decodes to the plain bytes is made here, before any source is removed.

use anyhow::{Context, Result};
use rayon::prelude::*;
use std::fs;
use std::path::Path;

use super::recover::recover;
use super::{Direction, PlannedRecode};
use crate::clock::system_time_ns;
use crate::error::MaintError;
use crate::failpoint;
use crate::fs_atomic::SourceKept;
use crate::fs_atomic::{move_within_home, remove_file_within_home};
use crate::home::sessions::file_mode;
use crate::home_guard::HomeGuard;
use crate::ops::created_file::CreatedFile;
use crate::ops::source_recheck::{SourceSeen, WriterHold};
use crate::ops::thread_row::{IndexWriter, RowState};
use crate::ops::{Outcome, Run};
use crate::store::NewOp;
use crate::zstd_stream::{self, EncodeSettings, Hashed};

/// A file at least this large is encoded with workers inside its stream; smaller ones are
/// spread one per thread, since zstd gives each worker jobs of several MB.
const LARGE_FILE_BYTES: u64 = 32 << 20;

/// Recodes per journal batch: each batch is prepared in one commit and settled in one.
pub const BATCH: usize = 256;

/// Recodes a command plans in full and hands over at once. Smaller than a slice of moves:
/// a slice's rows and plans are what a compression run holds besides its encoders.
pub const SLICE: usize = 8 * BATCH;

/// Executes `plans` in order, a batch at a time, stopping at the first batch that fails.
/// Returns what became of each item done (a prefix of `plans`) and the failure, if any.
pub fn execute_all(
    run: &Run,
    plans: Vec<PlannedRecode>,
    mut index: Option<&mut IndexWriter>,
    doing: &str,
    progress: &dyn crate::progress::Progress,
) -> (Vec<Outcome>, Option<anyhow::Error>) {
    progress.start(plans.len() as u64, doing);
    let mut done = Vec::with_capacity(plans.len());
    for batch in plans.chunks(BATCH) {
        match execute_batch(run, batch.to_vec(), index.as_deref_mut()) {
            Ok(ids) => {
                progress.advance(ids.len() as u64);
                done.extend(ids);
            }
            Err(e) => {
                progress.finish();
                return (done, Some(e));
            }
        }
    }
    progress.finish();
    (done, None)
}

/// One batch under the journal protocol:
/// 1. every op prepared (one commit), naming the temporary file it will write;
/// 2. each source read once, on all cores, into its temporary file, which is then decoded
///    again and must hash to the plain bytes; the hashes are recorded (one commit);
/// 3. each temporary file given the source's mtime and renamed, never over anything;
/// 4. with Codex's writers held off, each source checked again: one Codex wrote to since it
///    was read, or is writing, is left to Codex (its file dropped, its op rolled back);
/// 5. the other rows changed (one transaction) and their sources removed;
/// 6. those marked applied.
///
/// If any step fails, recovery settles the batch's ops from what is on disk, exactly as
/// after a crash, so a failure and a crash leave the same state.
pub fn execute_batch(
    run: &Run,
    plans: Vec<PlannedRecode>,
    mut index: Option<&mut IndexWriter>,
) -> Result<Vec<Outcome>> {
    let catalog = &run.store.catalog;
    let mut plans = plans;
    let mut new_ops = Vec::with_capacity(plans.len());
    let mut sources = Vec::with_capacity(plans.len());
    // The batch's folders are resolved afresh, once each, and every write below happens
    // relative to those descriptors.
    run.guard.begin_batch();
    for plan in plans.iter_mut() {
        run.guard.ensure_all([
            plan.src.as_path(),
            plan.dst.as_path(),
            plan.detail.temp.as_path(),
        ])?;
        crate::ops::transcript_place::ensure(run.guard.root(), &[&plan.src, &plan.dst])?;
        let meta = fs::symlink_metadata(&plan.src)
            .with_context(|| format!("reading {}", plan.src.display()))?;
        if !meta.is_file() {
            return Err(MaintError::refused(
                format!("{} is not a regular file; not changed", plan.src.display()),
                vec![],
            )
            .into());
        }
        if fs::symlink_metadata(&plan.dst).is_ok() {
            return Err(MaintError::refused(
                format!(
                    "{} is occupied; nothing was overwritten or changed",
                    plan.dst.display()
                ),
                vec![plan.dst.display().to_string()],
            )
            .into());
        }
        // Every op of the batch names the folders it needs that do not exist yet: each one's
        // temporary file sits there until it is renamed, so whichever op is rolled back last
        // is the one that finds them empty and removes them.
        plan.detail.created_dirs = run
            .guard
            .missing_folders(plan.dst.parent().unwrap_or(Path::new("/")))?;
        let (source_hash, _) = plan.detail.hashes(plan.direction);
        new_ops.push(NewOp {
            kind: plan.direction.kind().to_string(),
            src: crate::path_text::recorded_string(&plan.src)?,
            dst: Some(crate::path_text::recorded_string(&plan.dst)?),
            size: Some(meta.len() as i64),
            mode: Some(file_mode(&meta) as i64),
            mtime_ns: meta.modified().ok().map(system_time_ns),
            hash_before: source_hash.cloned(),
            blob: None,
            detail: crate::ops::detail::stored(&plan.detail)?,
            reverts_op: plan.reverts_op,
        });
        sources.push(meta);
    }
    let ids = catalog.prepare_ops(run.id, &new_ops)?;
    failpoint::hit("op-prepared");

    let mut left: Vec<(usize, String)> = Vec::new();
    let outcome = (|| -> Result<()> {
        // The temporary file is written beside its destination, so that folder comes first.
        for plan in &plans {
            if let Some(parent) = plan.dst.parent() {
                run.guard.create_folders(parent)?;
            }
        }
        let proven = transform_all(run, &plans, &sources);
        let mut recorded = Vec::with_capacity(plans.len());
        for ((plan, id), result) in plans.iter_mut().zip(&ids).zip(proven) {
            let hashed = result?;
            plan.detail.plain_hash = Some(hashed.plain_hash);
            plan.detail.plain_len = Some(hashed.plain_len);
            plan.detail.stored_hash = Some(hashed.stored_hash);
            plan.detail.stored_len = Some(hashed.stored_len);
            plan.detail.created = Some(
                CreatedFile::at(&plan.detail.temp)
                    .with_context(|| format!("reading {}", plan.detail.temp.display()))?,
            );
            let (source_hash, _) = plan.detail.hashes(plan.direction);
            recorded.push((
                *id,
                source_hash.cloned().unwrap_or_default(),
                crate::ops::detail::stored(&plan.detail)?,
            ));
        }
        catalog.record_source_hashes(&recorded)?;
        failpoint::hit("recode-encoded");
        for plan in &plans {
            failpoint::act("source-encoded", &plan.src);
        }

        for plan in &plans {
            move_within_home(&run.guard, &plan.detail.temp, &plan.dst)?;
            failpoint::hit("recode-renamed");
        }
        for folder in distinct_folders(plans.iter().map(|p| p.dst.as_path())) {
            run.guard.sync_folder(folder)?;
        }
        // From here until the sources are gone no Codex writer starts; one writing now, or
        // one that wrote since its source was read, wins: that item is left to it.
        for plan in &plans {
            failpoint::act("before-source-removed", &plan.src);
        }
        let mut hold = WriterHold::begin(run.guard.root())?;
        for (i, plan) in plans.iter().enumerate() {
            let thread_id = Some(plan.detail.thread_id.as_str()).filter(|id| !id.is_empty());
            if let Err(SourceKept(why)) =
                hold.check(thread_id, &plan.src, &SourceSeen::of(&sources[i]))
            {
                leave_to_codex(run, plan, ids[i], &why)?;
                left.push((i, why));
            }
        }
        let going: Vec<&PlannedRecode> = plans
            .iter()
            .enumerate()
            .filter(|(i, _)| !left.iter().any(|(k, _)| k == i))
            .map(|(_, plan)| plan)
            .collect();
        if let Some(index) = index.as_deref_mut() {
            let changes: Vec<(&str, &RowState, &RowState)> = going
                .iter()
                .filter_map(|plan| {
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
        for plan in &going {
            remove_file_within_home(&run.guard, &plan.src)?;
            failpoint::hit("recode-source-removed");
        }
        drop(hold);
        for folder in distinct_folders(plans.iter().map(|p| p.src.as_path())) {
            run.guard.sync_folder(folder)?;
        }
        for plan in &plans {
            run.guard.remove_folders_if_empty(&plan.detail.tidy_dirs);
        }
        Ok(())
    })();

    let is_left = |i: usize| left.iter().any(|(k, _)| *k == i);
    if let Err(err) = outcome {
        let unsettled = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_left(*i))
            .map(|(_, id)| *id);
        return Err(crate::ops::settle_failed_batch(
            run.store, unsettled, err, recover,
        ));
    }

    let applied: Vec<(i64, Option<String>)> = ids
        .iter()
        .zip(&plans)
        .enumerate()
        .filter(|(i, _)| !is_left(*i))
        .map(|(_, (id, plan))| (*id, plan.detail.hashes(plan.direction).1.cloned()))
        .collect();
    catalog.mark_applied_many(&applied)?;
    failpoint::hit("op-applied");
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, id)| match left.iter().find(|(k, _)| *k == i) {
            Some((_, why)) => Outcome::LeftToCodex {
                op_id: *id,
                why: why.clone(),
            },
            None => Outcome::Done(*id),
        })
        .collect())
}

/// Codex wrote to the source after it was read, or is writing it: the source stays as
/// Codex left it, the file this op wrote goes (only if it is still that file), and the op,
/// whose row was never changed, is rolled back with the reason.
fn leave_to_codex(run: &Run, plan: &PlannedRecode, op_id: i64, why: &str) -> Result<()> {
    let mut detail = plan.detail.clone();
    detail.left_to_codex = Some(why.to_string());
    run.store
        .catalog
        .update_detail(op_id, &crate::ops::detail::stored(&detail)?)?;
    if plan
        .detail
        .created
        .is_some_and(|ours| ours.is_at(&plan.dst))
    {
        remove_file_within_home(&run.guard, &plan.dst)?;
        run.guard
            .sync_folder(plan.dst.parent().unwrap_or(Path::new("/")))?;
    }
    run.guard.remove_folders_if_empty(&detail.created_dirs);
    run.store.catalog.mark_rolled_back(op_id)?;
    Ok(())
}

fn distinct_folders<'p>(paths: impl Iterator<Item = &'p Path>) -> Vec<&'p Path> {
    let mut folders: Vec<&Path> = paths.filter_map(Path::parent).collect();
    folders.sort();
    folders.dedup();
    folders
}

/// Writes each plan's temporary file from its source and proves it, on all cores: small
/// files one per thread, large ones with workers inside their stream.
fn transform_all(
    run: &Run,
    plans: &[PlannedRecode],
    sources: &[fs::Metadata],
) -> Vec<Result<Hashed>> {
    let guard = &run.guard;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let is_large = |meta: &fs::Metadata| meta.len() >= LARGE_FILE_BYTES;
    let mut results: Vec<Option<Result<Hashed>>> = plans.iter().map(|_| None).collect();
    // Large files one at a time, each with workers inside its stream; then the small ones
    // side by side. Never both at once: a large stream's jobs are most of the peak memory.
    for (i, (plan, meta)) in plans.iter().zip(sources).enumerate() {
        if is_large(meta) {
            results[i] = Some(transform_one(guard, plan, meta, cores));
        }
    }
    let small: Vec<(usize, Result<Hashed>)> = plans
        .par_iter()
        .zip(sources.par_iter())
        .enumerate()
        .filter(|(_, (_, meta))| !is_large(meta))
        .map(|(i, (plan, meta))| (i, transform_one(guard, plan, meta, 0)))
        .collect();
    for (i, result) in small {
        results[i] = Some(result);
    }
    let mut results: Vec<Result<Hashed>> = results
        .into_iter()
        .map(|r| r.expect("every plan was transformed"))
        .collect();
    // One flush makes every new file of the batch durable before any is renamed into place.
    if let Err(e) = make_durable(guard, plans) {
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(anyhow::anyhow!("making the new files durable: {e}"));
        }
    }
    results
}

/// Linux flushes each filesystem the batch wrote to with one `syncfs`: a journal commit per
/// batch instead of one per file. Elsewhere each file was fsynced as it was written.
fn make_durable(guard: &HomeGuard, plans: &[PlannedRecode]) -> Result<()> {
    if !BATCH_SYNC {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        let mut synced = std::collections::HashSet::new();
        for folder in distinct_folders(plans.iter().map(|p| p.detail.temp.as_path())) {
            let dir = guard.folder(folder)?;
            if synced.insert(rustix::fs::fstat(&*dir)?.st_dev) {
                rustix::fs::syncfs(&*dir)?;
            }
        }
    }
    Ok(())
}

const BATCH_SYNC: bool = cfg!(target_os = "linux");

fn transform_one(
    guard: &HomeGuard,
    plan: &PlannedRecode,
    meta: &fs::Metadata,
    workers: u32,
) -> Result<Hashed> {
    // The new file carries the transcript's mode and mtime from the start, so the flush
    // that makes its bytes durable makes those durable too.
    let new_file = zstd_stream::NewFileMeta {
        mode: Some(file_mode(meta) & 0o7777),
        mtime: meta.modified().ok(),
        caller_syncs: BATCH_SYNC,
    };
    let temp = &plan.detail.temp;
    // Created relative to the folder the guard resolved for the batch, never through a
    // symlink swapped in since.
    let output = crate::fs_atomic::create_new_within_home(guard, temp)?;
    if let Some(mode) = new_file.mode {
        crate::fs_atomic::set_mode(&output, mode)?;
    }
    let (expected_source, expected_result) = plan.detail.hashes(plan.direction);
    let hashed = match plan.direction {
        Direction::Compress => {
            let settings = EncodeSettings {
                workers,
                ..plan.detail.settings.unwrap_or_default()
            };
            let written = zstd_stream::encode_to(&plan.src, output, settings, new_file)
                .with_context(|| format!("compressing {}", plan.src.display()))?;
            // The proof that the compressed file is the transcript: decoded again, it must
            // hash to the plain bytes just read, and be the bytes just written.
            let decoded = zstd_stream::decode_and_hash(temp)
                .with_context(|| format!("decoding {} again", temp.display()))?;
            if decoded != written {
                anyhow::bail!(
                    "{} does not decode to the transcript it was made from; the plain file is kept",
                    temp.display()
                );
            }
            written
        }
        Direction::Decompress => zstd_stream::decode_to(&plan.src, output, new_file)
            .with_context(|| format!("decompressing {}", plan.src.display()))?,
    };
    let (source_now, result_now) = match plan.direction {
        Direction::Compress => (&hashed.plain_hash, &hashed.stored_hash),
        Direction::Decompress => (&hashed.stored_hash, &hashed.plain_hash),
    };
    if expected_source.is_some_and(|h| h != source_now) {
        anyhow::bail!(
            "{} changed since it was recorded (hash differs); not changed",
            plan.src.display()
        );
    }
    // A recompression may pick other bytes than the first one did (another level, another
    // library), so only a plain result is held to the recorded hash; a compressed one is
    // held to decoding to the recorded plain bytes, checked above.
    if plan.direction == Direction::Decompress && expected_result.is_some_and(|h| h != result_now) {
        anyhow::bail!(
            "{} does not decode to the recorded transcript; not changed",
            plan.src.display()
        );
    }
    Ok(hashed)
}
