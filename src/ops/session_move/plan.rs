//! Planning an archive move the way `codex archive` lays it out, so that Codex finds an
//! archived transcript, and its row, exactly where it would have put them itself.

use std::path::{Path, PathBuf};

use super::{MoveDetail, PlannedMove};
use crate::home;
use crate::home::sessions::SessionFile;
use crate::ops::OpKind;
use crate::ops::thread_row::RowState;

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
            left_to_codex: None,
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
