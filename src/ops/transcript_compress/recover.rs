//! Settling a recode that a crash, or a failed batch, left prepared: decided only from what
//! is on disk and in the journal, so a failure and a crash end in the same state and
//! nothing is guessed.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

use super::{Direction, RecodeDetail};
use crate::fs_atomic::remove_created_dirs_if_empty;
use crate::ops::created_file::is_ours as is_ours_by_identity;
use crate::ops::thread_row::{IndexWriter, RowState};
use crate::ops::{OpRecord, Recovered};
use crate::store::Store;

/// Brings a recode left `prepared` by a crash to rest from what is on disk. The temporary
/// file is ours by the name the journal recorded and always goes. Source still there: the
/// op is rolled back (a destination already renamed into place is removed only when it is
/// provably the file this op wrote). Source gone: the destination was proven before the
/// source went, so the op is rolled forward. Anything else is reported, never guessed.
pub(super) fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
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
    // Removing a destination needs more than equal bytes: it must be the file this op made.
    let is_our_file =
        |path: &Path| is_ours_by_identity(detail.created.as_ref(), path, || is_ours(path));
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
            crate::ops::row_now::carry_row_after_recovery(&detail.thread_id, settled_at, other)?
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
        (true, true) if is_our_file(&dst)? => {
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
