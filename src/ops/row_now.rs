//! Taking a transcript move back against Codex's thread index as it is now, not as it was
//! when the move was recorded: Codex may have built its index since (a home first written by
//! a Codex without one), or moved the row itself. A revert then either carries the row it
//! finds along with the file, in the same journaled op, or refuses with the reason.

use rusqlite::Connection;
use std::path::{Path, PathBuf};

use super::thread_row::{self, RowState};
use crate::home::{self, CodexHome, thread_index};

/// The Codex home a transcript lives in, read from its place: `archived_sessions/<file>`
/// or `sessions/Y/M/D/<file>`.
pub fn home_of_transcript(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    if parent.file_name()? == home::ARCHIVED_SESSIONS_DIR {
        return parent.parent().map(Path::to_path_buf);
    }
    let sessions = path.ancestors().nth(4)?;
    if sessions.file_name()? == home::SESSIONS_DIR {
        return sessions.parent().map(Path::to_path_buf);
    }
    None
}

/// The thread index of the home a transcript lives in, found by looking now. An index that
/// exists but is not understood is an error: a revert cannot keep it consistent.
pub fn index_of_home_now(transcript: &Path) -> Result<Option<PathBuf>, String> {
    let Some(root) = home_of_transcript(transcript) else {
        return Ok(None);
    };
    match thread_index::detect(&CodexHome { root }) {
        thread_index::IndexState::Absent => Ok(None),
        thread_index::IndexState::Understood(index) => Ok(Some(index.path)),
        thread_index::IndexState::NotUnderstood { path, reason } => {
            Err(format!("the thread index {} {reason}", path.display()))
        }
    }
}

/// Whether a row's `rollout_path` names the transcript at `place`: the same file, or its
/// plain / `.zst` twin, which Codex resolves to each other.
pub fn names_file(rollout_path: &str, place: &Path) -> bool {
    let named = Path::new(rollout_path);
    named == place
        || named == home::sessions::twin_path(place)
        || home::same_file(named, place)
        || home::same_file(&home::sessions::twin_path(named), place)
}

/// Whether a place is in `archived_sessions/`, which is what Codex's archived flag says.
pub fn is_archived_place(place: &Path) -> bool {
    place
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == home::ARCHIVED_SESSIONS_DIR)
}

/// The row once the transcript is at `to`: the home spelled as the row spells it, the
/// archived flag set from the folder as Codex's archive (`archived_at` = now) and
/// unarchive (`archived_at` NULL) set it, and left alone when the folder kind is unchanged.
pub fn row_following(now: &RowState, from: &Path, to: &Path, now_unix: i64) -> RowState {
    let rollout_path = match (home_of_transcript(from), home_of_transcript(to)) {
        (Some(our_home_from), Some(our_home_to)) if our_home_from == our_home_to => {
            let depth = from
                .strip_prefix(&our_home_from)
                .map(|r| r.components().count())
                .unwrap_or(0);
            let codex_home = Path::new(&now.rollout_path).ancestors().nth(depth);
            match (codex_home, to.strip_prefix(&our_home_to)) {
                (Some(h), Ok(rel)) if depth > 0 => h.join(rel).display().to_string(),
                _ => to.display().to_string(),
            }
        }
        _ => to.display().to_string(),
    };
    let (archived, archived_at) = match (is_archived_place(to), now.archived != 0) {
        (true, true) | (false, false) => (now.archived, now.archived_at),
        (true, false) => (1, Some(now_unix)),
        (false, true) => (0, None),
    };
    RowState {
        rollout_path,
        archived,
        archived_at,
    }
}

/// The row change a revert makes, decided against the index as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub index: String,
    pub before: RowState,
    pub after: RowState,
}

/// Decides the row change for moving a thread's transcript from `from` (where it is now) to
/// `to`. `expected` is the row the journal says the index holds (with `planned` as what the
/// revert sets it to); `None` when the op recorded no row. A row as recorded is moved as
/// planned; a row that appeared or moved since is carried along when it names the file where
/// it is now, and refused otherwise; no row at all needs no change unless one was recorded.
pub fn decide(
    conn: &Connection,
    index: &str,
    thread_id: &str,
    expected: Option<(&RowState, &RowState)>,
    from: &Path,
    to: &Path,
    now_unix: i64,
) -> Result<Option<RowChange>, String> {
    let now = thread_row::read(conn, thread_id)
        .map_err(|e| format!("cannot read thread {thread_id}'s row in {index}: {e:#}"))?;
    match (now, expected) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!("thread {thread_id} has no row any more in {index}")),
        (Some(row), Some((before, after))) if &row == before => Ok(Some(RowChange {
            index: index.to_string(),
            before: before.clone(),
            after: after.clone(),
        })),
        (Some(row), _) if names_file(&row.rollout_path, from) => {
            let after = row_following(&row, from, to, now_unix);
            Ok(Some(RowChange {
                index: index.to_string(),
                before: row,
                after,
            }))
        }
        (Some(row), recorded) => Err(format!(
            "thread {thread_id}'s row in {index} {} and points at {} (archived {}), not at {}; run `codex-maint repair` first",
            if recorded.is_some() {
                "changed since"
            } else {
                "appeared since"
            },
            row.rollout_path,
            row.archived,
            from.display()
        )),
    }
}

/// Whether a row names a place that no longer exists by its place in the home: the same
/// folder kind and relative path, whatever spelling of the home the row uses.
fn names_place_by_path(rollout_path: &str, place: &Path) -> bool {
    let Some(our_home) = home_of_transcript(place) else {
        return false;
    };
    let Ok(rel) = place.strip_prefix(&our_home) else {
        return false;
    };
    let named = Path::new(rollout_path);
    named.ends_with(rel) || named.ends_with(home::sessions::twin_path(rel))
}

/// After recovery settled a move whose op recorded no row at `settled_at` (the other end
/// being `other_place`): a row Codex made since, naming either end, is pointed at the file
/// where it is, in Codex's spelling and with the flag of its folder. `Err` is a row naming
/// neither, which recovery reports rather than guesses about.
pub fn carry_row_after_recovery(
    thread_id: &str,
    settled_at: &Path,
    other_place: &Path,
) -> anyhow::Result<Result<(), String>> {
    let index = match index_of_home_now(settled_at) {
        Ok(Some(index)) => index,
        Ok(None) => return Ok(Ok(())),
        Err(reason) => return Ok(Err(reason)),
    };
    let mut writer = thread_row::IndexWriter::open(&index)?;
    let Some(row) = thread_row::read(writer.connection(), thread_id)? else {
        return Ok(Ok(()));
    };
    let from = if names_file(&row.rollout_path, settled_at) {
        settled_at
    } else if names_place_by_path(&row.rollout_path, other_place) {
        other_place
    } else {
        return Ok(Err(format!(
            "thread {thread_id}'s row in {} points at {}, where neither end of the move is",
            index.display(),
            row.rollout_path
        )));
    };
    let after = row_following(&row, from, settled_at, crate::clock::now_unix());
    if after != row {
        writer.transition(&[(thread_id, &row, &after)])?;
    }
    Ok(Ok(()))
}

/// The thread index each home has now, looked at once per home however many of its items
/// a command checks: what `verify` holds a transcript against, and what a revert of an op
/// that recorded no index acts on.
#[derive(Default)]
pub struct IndexesNow {
    by_home: std::cell::RefCell<std::collections::HashMap<PathBuf, thread_index::IndexState>>,
}

impl IndexesNow {
    fn state_of(&self, place: &Path) -> Option<thread_index::IndexState> {
        let root = home_of_transcript(place)?;
        Some(
            self.by_home
                .borrow_mut()
                .entry(root.clone())
                .or_insert_with(|| thread_index::detect(&CodexHome { root }))
                .clone(),
        )
    }

    /// The index `verify` holds a transcript at `place` against: the one its op recorded,
    /// else the one its home has now. An index that is gone or not understood is still
    /// named, so the problem is reported rather than passed over.
    pub fn for_place(&self, recorded: Option<&str>, place: &Path) -> Option<String> {
        if let Some(index) = recorded {
            return Some(index.to_string());
        }
        match self.state_of(place)? {
            thread_index::IndexState::Absent => None,
            thread_index::IndexState::Understood(index) => Some(index.path.display().to_string()),
            thread_index::IndexState::NotUnderstood { path, .. } => {
                Some(path.display().to_string())
            }
        }
    }

    /// The index a revert acts on when its op recorded none; `Err` for one that exists but
    /// is not understood, which a revert cannot keep consistent.
    pub fn to_write(&self, place: &Path) -> Result<Option<PathBuf>, String> {
        match self.state_of(place) {
            None | Some(thread_index::IndexState::Absent) => Ok(None),
            Some(thread_index::IndexState::Understood(index)) => Ok(Some(index.path)),
            Some(thread_index::IndexState::NotUnderstood { path, reason }) => {
                Err(format!("the thread index {} {reason}", path.display()))
            }
        }
    }
}

/// What `verify` finds wrong between Codex's index and a transcript in force at `place`:
/// no row although an index exists, a row naming another file, or an archived flag that
/// disagrees with the folder. `recorded` is the row the op left, to say whether a row that
/// disagrees appeared or moved since.
pub fn disagreement(
    op_id: i64,
    thread_id: &str,
    index: &str,
    looked_up: Option<anyhow::Result<Option<RowState>>>,
    place: &Path,
    recorded: Option<&RowState>,
) -> Option<String> {
    let since = |row: &RowState| match recorded {
        None => "appeared since the op",
        Some(r) if r == row => "as the op left it",
        Some(_) => "changed since the op",
    };
    match looked_up {
        None => Some(format!(
            "op {op_id}: the thread index {index} cannot be read"
        )),
        Some(Err(e)) => Some(format!(
            "op {op_id}: the thread index {index} cannot be read ({e:#})"
        )),
        Some(Ok(None)) => Some(format!(
            "op {op_id}: thread {thread_id} has no row in {index}"
        )),
        Some(Ok(Some(row))) if !names_file(&row.rollout_path, place) => Some(format!(
            "op {op_id}: thread {thread_id}'s row ({}) points at {}, not at {}; `codex-maint repair` proposes the fix",
            since(&row),
            row.rollout_path,
            place.display()
        )),
        Some(Ok(Some(row))) if (row.archived != 0) != is_archived_place(place) => Some(format!(
            "op {op_id}: thread {thread_id}'s row ({}) says archived {} but {} is in {}",
            since(&row),
            row.archived,
            place.display(),
            if is_archived_place(place) {
                "archived_sessions/"
            } else {
                "sessions/"
            }
        )),
        Some(Ok(Some(_))) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unarchive_spells_the_home_as_the_row_does_and_clears_the_flag() {
        let now = RowState {
            rollout_path: "/link/h/archived_sessions/rollout-x.jsonl".into(),
            archived: 1,
            archived_at: Some(5),
        };
        let after = row_following(
            &now,
            Path::new("/real/h/archived_sessions/rollout-x.jsonl"),
            Path::new("/real/h/sessions/2026/01/02/rollout-x.jsonl"),
            99,
        );
        assert_eq!(
            after,
            RowState {
                rollout_path: "/link/h/sessions/2026/01/02/rollout-x.jsonl".into(),
                archived: 0,
                archived_at: None,
            }
        );
    }

    #[test]
    fn an_archive_sets_the_flag_and_now() {
        let now = RowState {
            rollout_path: "/h/sessions/2026/01/02/rollout-x.jsonl".into(),
            archived: 0,
            archived_at: None,
        };
        let after = row_following(
            &now,
            Path::new("/h/sessions/2026/01/02/rollout-x.jsonl"),
            Path::new("/h/archived_sessions/rollout-x.jsonl"),
            99,
        );
        assert_eq!(after.rollout_path, "/h/archived_sessions/rollout-x.jsonl");
        assert_eq!((after.archived, after.archived_at), (1, Some(99)));
    }

    #[test]
    fn the_home_is_read_from_either_folder() {
        assert_eq!(
            home_of_transcript(Path::new("/h/archived_sessions/r.jsonl")),
            Some(PathBuf::from("/h"))
        );
        assert_eq!(
            home_of_transcript(Path::new("/h/sessions/2026/01/02/r.jsonl")),
            Some(PathBuf::from("/h"))
        );
        assert_eq!(home_of_transcript(Path::new("/h/other/r.jsonl")), None);
    }
}
