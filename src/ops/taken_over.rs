//! A change Codex itself made to an item since our op is the user's (DESIGN.md "Safety
//! rules"): `codex unarchive` moving a transcript to its dated folder, a resume rewriting a
//! `.jsonl.zst` to plain or appending, `codex delete` removing thread and row. Such an item
//! is "taken over by Codex": reported as information, left alone by undo. It is told apart
//! from damage by Codex's own index: the row names another existing file of that thread
//! (Codex moved it and recorded where), or the thread is gone from the files and the index
//! alike (Codex deleted it). A file gone, or changed, while the row still names our place is
//! not Codex's doing as far as anyone can show, and stays a problem.

use std::path::{Path, PathBuf};

use super::OpRecord;
use super::detail::OpDetail;
use super::thread_row::RowState;
use crate::home::{self, sessions::twin_path};

/// How Codex took the item over, when it did; `row_now` is the thread's row as the index
/// holds it now (`None` when the index cannot be read: then nothing is excused).
pub fn by_codex(
    op: &OpRecord,
    row_now: Option<&anyhow::Result<Option<RowState>>>,
) -> Option<String> {
    let thread_id = match &op.detail {
        OpDetail::SessionMove(d) => d.thread_id.as_str(),
        OpDetail::Recode(d) => d.thread_id.as_str(),
        OpDetail::Reclaim(_) => return super::database_reclaim::taken_over(op),
        _ => return None,
    };
    let place = Path::new(op.dst.as_deref()?);
    if thread_id.is_empty() {
        return None;
    }
    let place_exists = std::fs::symlink_metadata(place).is_ok();
    match row_now? {
        Ok(Some(row)) => {
            let named = PathBuf::from(&row.rollout_path);
            if place_exists && (named == place || home::same_file(&named, place)) {
                return None;
            }
            let current = [twin_path(&named), named]
                .into_iter()
                .filter(|p| p != place && !(place_exists && home::same_file(p, place)))
                .find(|p| p.is_file() && p.to_string_lossy().contains(thread_id))?;
            Some(format!(
                "thread {thread_id} is now {} and Codex's index names it ({})",
                current.display(),
                if place_exists {
                    format!("{} is left beside it", place.display())
                } else {
                    format!("{} is gone", place.display())
                }
            ))
        }
        Ok(None) if !place_exists && !any_transcript_of(place, thread_id) => Some(format!(
            "thread {thread_id} was deleted: gone from the transcripts and from Codex's index"
        )),
        _ => None,
    }
}

/// Whether any transcript of the thread is left in the home `place` lies in.
fn any_transcript_of(place: &Path, thread_id: &str) -> bool {
    let Some(home) = place.ancestors().find_map(|a| {
        let name = a.file_name()?;
        (name == home::SESSIONS_DIR || name == home::ARCHIVED_SESSIONS_DIR)
            .then(|| a.parent())
            .flatten()
    }) else {
        return true;
    };
    [home::SESSIONS_DIR, home::ARCHIVED_SESSIONS_DIR]
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(home.join(d)).into_iter().flatten())
        .any(|e| e.file_name().to_string_lossy().contains(thread_id))
}

/// The line a report gives an item taken over by Codex.
pub fn line(op: &OpRecord, how: &str) -> String {
    format!(
        "taken over by Codex (the user's own change, left as it is): op {} ({}): {how}",
        op.id, op.kind
    )
}
