//! Whether a move still holds: the transcript where the journal says it went, unchanged,
//! and its thread row pointing at it, since a row pointing at nothing hides the session
//! from Codex.

use anyhow::Result;
use std::path::Path;

use super::MoveDetail;
use crate::ops::OpRecord;
use crate::ops::thread_row::RowState;

/// Looks up a thread's row in an index: `None` when the index cannot be opened.
pub type RowLookup<'a> = dyn Fn(&str, &str) -> Option<Result<Option<RowState>>> + 'a;

/// What `verify` finds wrong with a live move: the item missing or changed at its recorded
/// place, or the thread row no longer pointing at an existing file.
pub(super) fn verify_live(
    op: &OpRecord,
    rows: &RowLookup<'_>,
    indexes_now: &crate::ops::row_now::IndexesNow,
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
        problems.extend(crate::ops::row_now::disagreement(
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
