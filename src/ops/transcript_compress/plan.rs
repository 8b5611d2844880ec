//! Planning a recode: where the transcript will land and how its thread row will read
//! there are settled before anything is touched, so the journal records the whole change
//! before the first byte is written.

use std::path::{Path, PathBuf};

use super::{Direction, PlannedRecode, RecodeDetail};
use crate::fs_atomic::temp_path_beside;
use crate::home;
use crate::ops::thread_row::RowState;
use crate::zstd_stream::EncodeSettings;

/// The row as it will read once the transcript is at `dst`: Codex's own spelling of the
/// home (from the old row) with the new file name, and the archived flag given.
fn row_at(before: &RowState, dst: &Path, archived: Option<(i64, Option<i64>)>) -> RowState {
    let old = Path::new(&before.rollout_path);
    let new_name = dst.file_name().unwrap_or_default();
    let rollout_path = match archived {
        // Moving between folders: spelled as the archive move spells it.
        Some(_) => crate::ops::session_move::codex_spelling_of(&before.rollout_path, dst, new_name),
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
            left_to_codex: None,
            created: None,
        },
        reverts_op: None,
    }
}
