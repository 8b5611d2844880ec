//! Settling a move a crash left prepared, from where the file is and what it hashes to, so
//! the transcript ends up exactly once, whole, with its row matching where it is.

use anyhow::Result;
use std::fs;
use std::path::{Path, PathBuf};

use super::MoveDetail;
use crate::content_hash::hash_file;
use crate::fs_atomic::{TEMP_PREFIX, remove_created_dirs_if_empty};
use crate::ops::thread_row::{IndexWriter, RowState};
use crate::ops::{OpRecord, Recovered};
use crate::store::Store;

/// Brings one op left `prepared` by a crash to rest by looking at the disk: a file still at
/// its source was never moved (roll back), a whole file at its destination was (roll
/// forward); the row is set to match, and anything else is reported, never guessed.
pub(super) fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
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
            crate::ops::row_now::carry_row_after_recovery(&detail.thread_id, settled_at, other)?
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
