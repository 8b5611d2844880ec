//! Turning a transcript into its compressed form `<name>.jsonl.zst` and back, in place or
//! together with an archive move, with its thread row pointed at the new path in the same
//! op (as Codex's own unarchive does). The plain file goes only after the compressed one
//! has been decoded again and found to hash to exactly the plain bytes; the compressed file
//! is then the one copy, and decoding it is how undo gives back the byte-identical original.

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

use super::thread_row::{IndexWriter, RowState};
use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::clock::system_time_ns;
use crate::error::MaintError;
use crate::fs_atomic::{
    create_dirs_recording, fsync_dir, move_no_replace_unsynced, remove_created_dirs_if_empty,
    temp_path_beside,
};
use crate::home::sessions::file_mode;
use crate::store::{NewOp, OpState, Store};
use crate::zstd_stream::{self, EncodeSettings, Hashed};
use crate::{failpoint, home};

/// A file at least this large is encoded with workers inside its stream; smaller ones are
/// spread one per thread, since zstd gives each worker jobs of several MB.
const LARGE_FILE_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Compress,
    Decompress,
}

impl Direction {
    pub fn kind(self) -> OpKind {
        match self {
            Direction::Compress => OpKind::CompressSession,
            Direction::Decompress => OpKind::DecompressSession,
        }
    }
    fn of_kind(kind: OpKind) -> Option<Direction> {
        match kind {
            OpKind::CompressSession => Some(Direction::Compress),
            OpKind::DecompressSession => Some(Direction::Decompress),
            _ => None,
        }
    }
    fn reversed(self) -> Direction {
        match self {
            Direction::Compress => Direction::Decompress,
            Direction::Decompress => Direction::Compress,
        }
    }
}

/// What the journal keeps of a recode beyond the columns of `ops`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecodeDetail {
    pub thread_id: String,
    /// The thread index updated with it; `None` for homes without one.
    pub index: Option<String>,
    pub row_before: Option<RowState>,
    pub row_after: Option<RowState>,
    /// Where the new representation is written before it is renamed into place: recovery
    /// removes it by this name.
    pub temp: PathBuf,
    pub settings: Option<EncodeSettings>,
    /// Known once the one pass over the source has run (before anything is visible).
    pub plain_hash: Option<String>,
    pub plain_len: Option<u64>,
    pub stored_hash: Option<String>,
    pub stored_len: Option<u64>,
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub tidy_dirs: Vec<PathBuf>,
}

impl RecodeDetail {
    /// The hash the source must have, and the destination must have, in `direction`.
    fn hashes(&self, direction: Direction) -> (Option<&String>, Option<&String>) {
        match direction {
            Direction::Compress => (self.plain_hash.as_ref(), self.stored_hash.as_ref()),
            Direction::Decompress => (self.stored_hash.as_ref(), self.plain_hash.as_ref()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlannedRecode {
    pub direction: Direction,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub detail: RecodeDetail,
    pub reverts_op: Option<i64>,
}

/// The row as it will read once the transcript is at `dst`: Codex's own spelling of the
/// home (from the old row) with the new file name, and the archived flag given.
fn row_at(before: &RowState, dst: &Path, archived: Option<(i64, Option<i64>)>) -> RowState {
    let old = Path::new(&before.rollout_path);
    let new_name = dst.file_name().unwrap_or_default();
    let rollout_path = match archived {
        // Moving between folders: spelled as the archive move spells it.
        Some(_) => super::session_move::codex_spelling_of(&before.rollout_path, dst, new_name),
        None => old.with_file_name(new_name).display().to_string(),
    };
    let (archived, archived_at) = archived.unwrap_or((before.archived, before.archived_at));
    RowState {
        rollout_path,
        archived,
        archived_at,
    }
}

/// Plans compressing one plain transcript beside itself.
pub fn plan_compress_in_place(
    file: &home::sessions::SessionFile,
    row: Option<&home::thread_index::ThreadRow>,
    index_path: Option<&Path>,
    settings: EncodeSettings,
) -> PlannedRecode {
    let dst = file.twin_path();
    plan(
        Direction::Compress,
        file.path.clone(),
        dst,
        file.id().unwrap_or_default(),
        row,
        index_path,
        None,
        Some(settings),
    )
}

/// Plans archiving and compressing one active plain transcript in one op: it lands as
/// `archived_sessions/<name>.jsonl.zst`, its row archived and pointed there.
pub fn plan_archive_compressed(
    home: &home::CodexHome,
    file: &home::sessions::SessionFile,
    row: Option<&home::thread_index::ThreadRow>,
    index_path: Option<&Path>,
    settings: EncodeSettings,
    now_unix: i64,
) -> PlannedRecode {
    let name = file.twin_path();
    let dst = home
        .archived_sessions_dir()
        .join(name.file_name().unwrap_or_default());
    plan(
        Direction::Compress,
        file.path.clone(),
        dst,
        file.id().unwrap_or_default(),
        row,
        index_path,
        Some((1, Some(now_unix))),
        Some(settings),
    )
}

/// Plans turning one compressed transcript back into a plain one beside itself (for a
/// user who must return to a Codex older than 0.137).
pub fn plan_decompress_in_place(
    file: &home::sessions::SessionFile,
    row: Option<&home::thread_index::ThreadRow>,
    index_path: Option<&Path>,
) -> PlannedRecode {
    plan(
        Direction::Decompress,
        file.path.clone(),
        file.twin_path(),
        file.id().unwrap_or_default(),
        row,
        index_path,
        None,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
fn plan(
    direction: Direction,
    src: PathBuf,
    dst: PathBuf,
    thread_id: &str,
    row: Option<&home::thread_index::ThreadRow>,
    index_path: Option<&Path>,
    archived: Option<(i64, Option<i64>)>,
    settings: Option<EncodeSettings>,
) -> PlannedRecode {
    let row_before = row.map(|r| RowState {
        rollout_path: r.rollout_path.clone(),
        archived: r.archived,
        archived_at: r.archived_at,
    });
    let row_after = row_before.as_ref().map(|b| row_at(b, &dst, archived));
    PlannedRecode {
        direction,
        src,
        dst: dst.clone(),
        detail: RecodeDetail {
            thread_id: thread_id.to_string(),
            index: index_path.map(|p| p.display().to_string()),
            row_before,
            row_after,
            temp: temp_path_beside(&dst),
            settings,
            plain_hash: None,
            plain_len: None,
            stored_hash: None,
            stored_len: None,
            created_dirs: Vec::new(),
            tidy_dirs: Vec::new(),
        },
        reverts_op: None,
    }
}

/// The inverse of an applied recode: the other direction, from where it left the
/// transcript back to where it was, the row back to what it was. The hashes it recorded
/// are what the result must hash to.
pub fn plan_revert(op: &OpRecord, our_folders: &[PathBuf]) -> Result<PlannedRecode> {
    let detail = op.detail_as::<RecodeDetail>()?.clone();
    let direction = Direction::of_kind(op.kind)
        .with_context(|| format!("op {} is not a compression", op.id))?;
    let dst_of_op = PathBuf::from(op.dst.as_deref().context("a recode has a destination")?);
    let back_to = PathBuf::from(&op.src);
    Ok(PlannedRecode {
        direction: direction.reversed(),
        src: dst_of_op.clone(),
        dst: back_to.clone(),
        detail: RecodeDetail {
            thread_id: detail.thread_id,
            index: detail.index,
            row_before: detail.row_after,
            row_after: detail.row_before,
            temp: temp_path_beside(&back_to),
            settings: detail.settings,
            plain_hash: detail.plain_hash,
            plain_len: detail.plain_len,
            stored_hash: detail.stored_hash,
            stored_len: detail.stored_len,
            created_dirs: Vec::new(),
            tidy_dirs: our_folders
                .iter()
                .filter(|d| dst_of_op.starts_with(d))
                .cloned()
                .collect(),
        },
        reverts_op: Some(op.id),
    })
}

fn journal_unreadable(op: &OpRecord) -> String {
    format!(
        "op {} ({}): its journal detail cannot be read",
        op.id, op.kind
    )
}

/// Recodes per journal batch: each batch is prepared in one commit and settled in one.
pub const BATCH: usize = 256;

/// Executes `plans` in order, a batch at a time, stopping at the first batch that fails.
/// Returns the op ids done (a prefix of `plans`) and the failure, if any.
pub fn execute_all(
    run: &Run,
    plans: Vec<PlannedRecode>,
    mut index: Option<&mut IndexWriter>,
    doing: &str,
    progress: &dyn crate::progress::Progress,
) -> (Vec<i64>, Option<anyhow::Error>) {
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
/// 4. the rows changed (one transaction); 5. the sources removed; 6. all marked applied.
///
/// If any step fails, recovery settles the batch's ops from what is on disk, exactly as
/// after a crash, so a failure and a crash leave the same state.
pub fn execute_batch(
    run: &Run,
    plans: Vec<PlannedRecode>,
    mut index: Option<&mut IndexWriter>,
) -> Result<Vec<i64>> {
    let catalog = &run.store.catalog;
    let mut plans = plans;
    let mut new_ops = Vec::with_capacity(plans.len());
    let mut sources = Vec::with_capacity(plans.len());
    for plan in plans.iter_mut() {
        run.guard.ensure_all([
            plan.src.as_path(),
            plan.dst.as_path(),
            plan.detail.temp.as_path(),
        ])?;
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
        plan.detail.created_dirs =
            crate::fs_atomic::missing_dirs(plan.dst.parent().unwrap_or(Path::new("/")));
        let (source_hash, _) = plan.detail.hashes(plan.direction);
        new_ops.push(NewOp {
            kind: plan.direction.kind().to_string(),
            src: plan.src.display().to_string(),
            dst: Some(plan.dst.display().to_string()),
            size: Some(meta.len() as i64),
            mode: Some(file_mode(&meta) as i64),
            mtime_ns: meta.modified().ok().map(system_time_ns),
            hash_before: source_hash.cloned(),
            blob: None,
            detail: super::detail::stored(&plan.detail)?,
            reverts_op: plan.reverts_op,
        });
        sources.push(meta);
    }
    let ids = catalog.prepare_ops(run.id, &new_ops)?;
    failpoint::hit("op-prepared");

    let outcome = (|| -> Result<()> {
        // The temporary file is written beside its destination, so that folder comes first.
        for plan in &plans {
            if let Some(parent) = plan.dst.parent() {
                create_dirs_recording(parent)?;
            }
        }
        let proven = transform_all(&plans, &sources);
        let mut recorded = Vec::with_capacity(plans.len());
        for ((plan, id), result) in plans.iter_mut().zip(&ids).zip(proven) {
            let hashed = result?;
            plan.detail.plain_hash = Some(hashed.plain_hash);
            plan.detail.plain_len = Some(hashed.plain_len);
            plan.detail.stored_hash = Some(hashed.stored_hash);
            plan.detail.stored_len = Some(hashed.stored_len);
            let (source_hash, _) = plan.detail.hashes(plan.direction);
            recorded.push((
                *id,
                source_hash.cloned().unwrap_or_default(),
                super::detail::stored(&plan.detail)?,
            ));
        }
        catalog.record_source_hashes(&recorded)?;
        failpoint::hit("recode-encoded");

        for plan in &plans {
            move_no_replace_unsynced(&plan.detail.temp, &plan.dst)?;
            failpoint::hit("recode-renamed");
        }
        for folder in distinct_folders(plans.iter().map(|p| p.dst.as_path())) {
            fsync_dir(folder)?;
        }
        if let Some(index) = index.as_deref_mut() {
            let changes: Vec<(&str, &RowState, &RowState)> = plans
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
        for plan in &plans {
            fs::remove_file(&plan.src)
                .with_context(|| format!("removing {}", plan.src.display()))?;
            failpoint::hit("recode-source-removed");
        }
        for folder in distinct_folders(plans.iter().map(|p| p.src.as_path())) {
            fsync_dir(folder)?;
        }
        for plan in &plans {
            remove_created_dirs_if_empty(&plan.detail.tidy_dirs);
        }
        Ok(())
    })();

    if let Err(err) = outcome {
        let mut unsettled = Vec::new();
        for id in &ids {
            let settled = catalog
                .op(*id)
                .and_then(|op| op.context("a prepared op is in the catalog"))
                .and_then(OpRecord::try_from)
                .and_then(|op| recover(run.store, &op));
            match settled {
                Ok(Recovered::Stuck(why)) => unsettled.push(why),
                Ok(_) => {}
                Err(e) => unsettled.push(format!("op {id}: {e:#}")),
            }
        }
        if !unsettled.is_empty() {
            return Err(err.context(format!(
                "and settling the batch left {} item(s) for `codex-maint recover`: {}",
                unsettled.len(),
                unsettled.join("; ")
            )));
        }
        return Err(err);
    }

    let applied: Vec<(i64, Option<String>)> = ids
        .iter()
        .zip(&plans)
        .map(|(id, plan)| (*id, plan.detail.hashes(plan.direction).1.cloned()))
        .collect();
    catalog.mark_applied_many(&applied)?;
    failpoint::hit("op-applied");
    Ok(ids)
}

fn distinct_folders<'p>(paths: impl Iterator<Item = &'p Path>) -> Vec<&'p Path> {
    let mut folders: Vec<&Path> = paths.filter_map(Path::parent).collect();
    folders.sort();
    folders.dedup();
    folders
}

/// Writes each plan's temporary file from its source and proves it, on all cores: small
/// files one per thread, large ones with workers inside their stream.
fn transform_all(plans: &[PlannedRecode], sources: &[fs::Metadata]) -> Vec<Result<Hashed>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let is_large = |meta: &fs::Metadata| meta.len() >= LARGE_FILE_BYTES;
    let mut results: Vec<Option<Result<Hashed>>> = plans.iter().map(|_| None).collect();
    // Large files one at a time, each with workers inside its stream; then the small ones
    // side by side. Never both at once: a large stream's jobs are most of the peak memory.
    for (i, (plan, meta)) in plans.iter().zip(sources).enumerate() {
        if is_large(meta) {
            results[i] = Some(transform_one(plan, meta, cores));
        }
    }
    let small: Vec<(usize, Result<Hashed>)> = plans
        .par_iter()
        .zip(sources.par_iter())
        .enumerate()
        .filter(|(_, (_, meta))| !is_large(meta))
        .map(|(i, (plan, meta))| (i, transform_one(plan, meta, 0)))
        .collect();
    for (i, result) in small {
        results[i] = Some(result);
    }
    let mut results: Vec<Result<Hashed>> = results
        .into_iter()
        .map(|r| r.expect("every plan was transformed"))
        .collect();
    // One flush makes every new file of the batch durable before any is renamed into place.
    if let Err(e) = make_durable(plans) {
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(anyhow::anyhow!("making the new files durable: {e}"));
        }
    }
    results
}

/// Linux flushes each filesystem the batch wrote to with one `syncfs`: a journal commit per
/// batch instead of one per file. Elsewhere each file was fsynced as it was written.
fn make_durable(plans: &[PlannedRecode]) -> std::io::Result<()> {
    if !BATCH_SYNC {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let mut synced = std::collections::HashSet::new();
        for plan in plans {
            let folder = plan.detail.temp.parent().unwrap_or(Path::new("."));
            let dir = fs::File::open(folder)?;
            if synced.insert(dir.metadata()?.dev()) {
                rustix::fs::syncfs(&dir)?;
            }
        }
    }
    Ok(())
}

const BATCH_SYNC: bool = cfg!(target_os = "linux");

fn transform_one(plan: &PlannedRecode, meta: &fs::Metadata, workers: u32) -> Result<Hashed> {
    // The new file carries the transcript's mode and mtime from the start, so the flush
    // that makes its bytes durable makes those durable too.
    let new_file = zstd_stream::NewFileMeta {
        mode: Some(file_mode(meta) & 0o7777),
        mtime: meta.modified().ok(),
        caller_syncs: BATCH_SYNC,
    };
    let temp = &plan.detail.temp;
    let (expected_source, expected_result) = plan.detail.hashes(plan.direction);
    let hashed = match plan.direction {
        Direction::Compress => {
            let settings = EncodeSettings {
                workers,
                ..plan.detail.settings.unwrap_or_default()
            };
            let written = zstd_stream::encode_file(&plan.src, temp, settings, new_file)
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
        Direction::Decompress => zstd_stream::decode_file(&plan.src, temp, new_file)
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

/// Brings a recode left `prepared` by a crash to rest from what is on disk. The temporary
/// file is ours by the name the journal recorded and always goes. Source still there: the
/// op is rolled back (a destination already renamed into place is removed only when it is
/// provably the file this op wrote). Source gone: the destination was proven before the
/// source went, so the op is rolled forward. Anything else is reported, never guessed.
fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let detail = op.detail_as::<RecodeDetail>()?;
    let direction =
        Direction::of_kind(op.kind).with_context(|| format!("op {} is not a recode", op.id))?;
    let src = PathBuf::from(&op.src);
    let dst = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    remove_temp(&detail.temp)?;
    let (_, result_hash) = detail.hashes(direction);
    let is_ours = |path: &Path| -> Result<bool> {
        Ok(match result_hash {
            Some(h) => &crate::content_hash::hash_file(path)? == h,
            None => false,
        })
    };
    let mut index = match &detail.index {
        Some(p) if detail.row_before.is_some() => Some(IndexWriter::open(Path::new(p))?),
        _ => None,
    };
    let mut settle_row = |from: &Option<RowState>, to: &Option<RowState>| -> Result<()> {
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
    let at_src = fs::symlink_metadata(&src).is_ok();
    let at_dst = fs::symlink_metadata(&dst).is_ok();
    match (at_src, at_dst) {
        (true, false) => {
            if let Some(stuck) = carry_unrecorded_row(&src, &dst)? {
                return Ok(stuck);
            }
            settle_row(&detail.row_after, &detail.row_before)?;
            remove_created_dirs_if_empty(&detail.created_dirs);
            store.catalog.mark_rolled_back(op.id)?;
            Ok(Recovered::RolledBack)
        }
        (true, true) if is_ours(&dst)? => {
            settle_row(&detail.row_after, &detail.row_before)?;
            fs::remove_file(&dst)?;
            crate::fs_atomic::fsync_parent(&dst)?;
            if let Some(stuck) = carry_unrecorded_row(&src, &dst)? {
                return Ok(stuck);
            }
            remove_created_dirs_if_empty(&detail.created_dirs);
            store.catalog.mark_rolled_back(op.id)?;
            Ok(Recovered::RolledBack)
        }
        (true, true) => Ok(Recovered::Stuck(format!(
            "both {} and {} exist and the second is not the file this op wrote; keep the right one by hand",
            src.display(),
            dst.display()
        ))),
        (false, true) if is_ours(&dst)? => {
            if let Some(stuck) = carry_unrecorded_row(&dst, &src)? {
                return Ok(stuck);
            }
            settle_row(&detail.row_before, &detail.row_after)?;
            remove_created_dirs_if_empty(&detail.tidy_dirs);
            store
                .catalog
                .mark_applied(op.id, result_hash.map(String::as_str))?;
            Ok(Recovered::RolledForward)
        }
        (false, true) => Ok(Recovered::Stuck(format!(
            "{} is gone and {} differs from the journaled hash",
            src.display(),
            dst.display()
        ))),
        (false, false) => Ok(Recovered::Stuck(format!(
            "neither {} nor {} exists",
            src.display(),
            dst.display()
        ))),
    }
}

fn remove_temp(temp: &Path) -> Result<()> {
    let ours = temp.file_name().is_some_and(|n| {
        n.to_string_lossy()
            .starts_with(crate::fs_atomic::TEMP_PREFIX)
    });
    if ours && fs::symlink_metadata(temp).is_ok() {
        fs::remove_file(temp).with_context(|| format!("removing {}", temp.display()))?;
        crate::fs_atomic::fsync_parent(temp)?;
    }
    Ok(())
}

/// Why an applied recode cannot be taken back now; empty when it can.
fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    let our_folders = super::session_move::folders_we_created(store).unwrap_or_default();
    plan_checked_revert(op, &our_folders, &mut std::collections::HashMap::new()).1
}

/// The revert of `op`, and why it cannot run now (empty when it can): the transcript gone
/// or changed since, its original place occupied, or its row not as expected. Each thread
/// index is read once, through `readers`, which a batch of reverts shares.
pub fn plan_checked_revert(
    op: &OpRecord,
    our_folders: &[PathBuf],
    readers: &mut std::collections::HashMap<String, crate::sqlite_read::ReadOnlyDb>,
) -> (Option<PlannedRecode>, Vec<String>) {
    let mut conflicts = Vec::new();
    let mut plan = match plan_revert(op, our_folders) {
        Ok(p) => p,
        Err(e) => return (None, vec![format!("{e:#}")]),
    };
    match fs::symlink_metadata(&plan.src) {
        Err(_) => conflicts.push(format!(
            "op {}: {} is no longer there",
            op.id,
            plan.src.display()
        )),
        Ok(m) if !m.is_file() => conflicts.push(format!(
            "op {}: {} is no longer a regular file",
            op.id,
            plan.src.display()
        )),
        Ok(_) => match crate::content_hash::hash_file(&plan.src) {
            Ok(h) if Some(&h) == op.hash_after.as_ref() => {}
            Ok(_) => conflicts.push(format!(
                "op {}: {} changed since (hash differs)",
                op.id,
                plan.src.display()
            )),
            Err(e) => conflicts.push(format!(
                "op {}: cannot read {}: {e}",
                op.id,
                plan.src.display()
            )),
        },
    }
    if fs::symlink_metadata(&plan.dst).is_ok() {
        conflicts.push(format!(
            "op {}: the original place {} is occupied",
            op.id,
            plan.dst.display()
        ));
    }
    conflicts.extend(row_conflicts(op, &mut plan, readers));
    (Some(plan), conflicts)
}

/// The thread index a revert of `op` acts on: the one recorded, else the one the home has
/// now (Codex may have built it since). `Err` when a recorded index is gone or the one
/// found is not understood.
fn index_for_revert(op: &OpRecord, plan: &mut PlannedRecode) -> Result<Option<String>, String> {
    if plan.detail.index.is_none() {
        plan.detail.index = super::row_now::index_of_home_now(&plan.src)
            .map_err(|reason| format!("op {}: {reason}", op.id))?
            .map(|p| p.display().to_string());
    }
    match &plan.detail.index {
        Some(path) if Path::new(path).exists() => Ok(Some(path.clone())),
        Some(path) if plan.detail.row_before.is_some() => {
            Err(format!("op {}: the thread index {path} is gone", op.id))
        }
        _ => Ok(None),
    }
}

/// Decides, against the index as it is now, the row change the revert makes, and keeps it
/// in `plan` so the journal records it (see `row_now::decide`).
fn decide_row_now(
    op: &OpRecord,
    plan: &mut PlannedRecode,
    conn: &rusqlite::Connection,
    index: &str,
) -> Result<(), String> {
    let expected = plan
        .detail
        .row_before
        .as_ref()
        .zip(plan.detail.row_after.as_ref());
    match super::row_now::decide(
        conn,
        index,
        &plan.detail.thread_id,
        expected,
        &plan.src,
        &plan.dst,
        crate::clock::now_unix(),
    ) {
        Ok(Some(change)) => {
            plan.detail.row_before = Some(change.before);
            plan.detail.row_after = Some(change.after);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(reason) => Err(format!("op {}: {reason}", op.id)),
    }
}

fn row_conflicts(
    op: &OpRecord,
    plan: &mut PlannedRecode,
    readers: &mut std::collections::HashMap<String, crate::sqlite_read::ReadOnlyDb>,
) -> Vec<String> {
    let index = match index_for_revert(op, plan) {
        Ok(Some(index)) => index,
        Ok(None) => return Vec::new(),
        Err(reason) => return vec![reason],
    };
    if !readers.contains_key(&index) {
        match crate::home::sqlite_read::open(Path::new(&index)) {
            Ok(db) => {
                readers.insert(index.clone(), db);
            }
            Err(e) => {
                return vec![format!(
                    "op {}: cannot read the thread index {index}: {e:#}",
                    op.id
                )];
            }
        }
    }
    decide_row_now(op, plan, &readers[&index].conn, &index)
        .err()
        .into_iter()
        .collect()
}

/// Takes back one applied recode as a new journaled op of `run`.
fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let our_folders = super::session_move::folders_we_created(run.store)?;
    let mut plan = plan_revert(op, &our_folders)?;
    let refuse = |reason: String| {
        crate::error::MaintError::refused(
            format!("{reason}; nothing was changed"),
            vec![reason.clone()],
        )
    };
    let mut index = match index_for_revert(op, &mut plan).map_err(refuse)? {
        Some(p) => {
            let writer = IndexWriter::open(Path::new(&p))?;
            writer.preflight(Path::new(&p))?;
            decide_row_now(op, &mut plan, writer.connection(), &p).map_err(refuse)?;
            Some(writer)
        }
        None => None,
    };
    let ids = execute_batch(run, vec![plan], index.as_mut())?;
    Ok(ids[0])
}

/// What `verify` finds wrong with a recode in force: the transcript missing or not what
/// was recorded (a compressed one must decode to the recorded plain hash), or its row
/// pointing at nothing.
fn verify_live(
    op: &OpRecord,
    rows: &super::session_move::RowLookup<'_>,
    indexes_now: &super::row_now::IndexesNow,
    proven: &Proven,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(dst) = op.dst.as_deref() else {
        return problems;
    };
    let Ok(detail) = op.detail_as::<RecodeDetail>() else {
        return vec![journal_unreadable(op)];
    };
    match proven.get(Path::new(dst)) {
        Some(Ok(h)) => {
            if detail.plain_hash.as_ref() != Some(&h.plain_hash) {
                problems.push(format!(
                    "op {}: {dst} does not decode to the recorded transcript",
                    op.id
                ));
            }
            if op.hash_after.as_ref()
                != Some(if op.kind == OpKind::CompressSession {
                    &h.stored_hash
                } else {
                    &h.plain_hash
                })
            {
                problems.push(format!(
                    "op {}: {dst} does not match its recorded hash",
                    op.id
                ));
            }
        }
        Some(Err(e)) => problems.push(format!(
            "op {}: {dst} is missing or cannot be decoded ({e})",
            op.id
        )),
        None => problems.push(format!("op {}: {dst} was not checked", op.id)),
    }
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

/// Each checked transcript's hashes: compressed ones decoded, plain ones read.
pub type Proven = std::collections::HashMap<PathBuf, std::io::Result<Hashed>>;

/// Proves, on all cores, every transcript the recodes in `ops` left in place.
pub fn prove_all(ops: &[OpRecord]) -> Proven {
    let targets: Vec<PathBuf> = ops
        .iter()
        .filter(|o| is_recode(o))
        .filter_map(|o| o.dst.as_deref().map(PathBuf::from))
        .collect();
    targets
        .into_par_iter()
        .map(|path| {
            let proof = if zstd_stream::is_compressed_name(&path) {
                zstd_stream::decode_and_hash(&path)
            } else {
                crate::content_hash::hash_file(&path).map(|h| Hashed {
                    plain_hash: h.clone(),
                    plain_len: 0,
                    stored_hash: h,
                    stored_len: 0,
                })
            };
            (path, proof)
        })
        .collect()
}

pub fn is_recode(op: &OpRecord) -> bool {
    Direction::of_kind(op.kind).is_some() && op.state == OpState::Applied
}

pub struct Recode;

impl super::OpType for Recode {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::DecompressSession {
            "decompressed transcript"
        } else {
            "compressed transcript"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<RecodeDetail>(json).map(super::OpDetail::Recode)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let d = op.detail_as::<RecodeDetail>()?;
        let mut paths = vec![PathBuf::from(&op.src)];
        paths.extend(op.dst.as_deref().map(PathBuf::from));
        paths.push(d.temp.clone());
        Ok(paths)
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
    fn verify_live(&self, op: &OpRecord, seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op, seen.rows, seen.indexes_now, seen.proven)
    }
}
