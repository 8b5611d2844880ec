//! A cleanup narrowed to sessions a person picked (in `browse`): each picked transcript and
//! what was asked of it. The planner still judges every picked session by the same policy,
//! so a pick can only narrow what a default cleanup would do, never widen it; the
//! selection is saved inside the plan, so the plan is sealed with it and applying the plan
//! by id plans again over exactly the same picks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a person asked of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMark {
    /// Into `archived_sessions/`, as plain text.
    Archive,
    /// Into `.jsonl.zst`: archived straight into it when active, in place when archived.
    Compress,
    /// Out of Codex's view into the store, from wherever it lies; restorable.
    Retire,
}

impl SessionMark {
    pub const ALL: &'static [SessionMark] = &[
        SessionMark::Archive,
        SessionMark::Compress,
        SessionMark::Retire,
    ];

    /// The cleanup categories that carry this mark out for a session that is active or not.
    /// A new tier (retire) is one more variant and one more arm here.
    pub fn categories(self, active: bool) -> &'static [&'static str] {
        match (self, active) {
            (SessionMark::Archive, true) => &["sessions"],
            (SessionMark::Archive, false) => &[],
            (SessionMark::Compress, true) => &["sessions", "compress"],
            (SessionMark::Compress, false) => &["compress"],
            (SessionMark::Retire, _) => &["retire"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionMark::Archive => "archive",
            SessionMark::Compress => "compress",
            SessionMark::Retire => "retire",
        }
    }
}

/// The picked transcripts, by path as the planner records it, and the mark of each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub marks: BTreeMap<String, SessionMark>,
}

impl Selection {
    pub fn mark_of(&self, path: &std::path::Path) -> Option<SessionMark> {
        self.marks.get(path.to_str()?).copied()
    }

    /// The categories to plan: each mark's, for the session's state when picked.
    pub fn categories(&self, active_of: impl Fn(&str) -> bool) -> Vec<String> {
        let needed: std::collections::HashSet<&str> = self
            .marks
            .iter()
            .flat_map(|(path, mark)| mark.categories(active_of(path)).iter().copied())
            .collect();
        // In cleanup's own order, as a plan lists its categories.
        super::CATEGORIES
            .iter()
            .filter(|c| needed.contains(*c))
            .map(|c| c.to_string())
            .collect()
    }
}

/// Whether the planner may act on `path` at all (no selection: every session may).
pub fn picked(selection: Option<&Selection>, path: &std::path::Path) -> bool {
    selection.is_none_or(|s| s.mark_of(path).is_some())
}

/// Whether a session the planner archives goes straight into compressed form: when the
/// gate is open and, under a selection, only when it was marked to be compressed.
pub fn compress_on_archive(
    selection: Option<&Selection>,
    path: &std::path::Path,
    gate_open: bool,
) -> bool {
    gate_open && selection.is_none_or(|s| s.mark_of(path) == Some(SessionMark::Compress))
}

/// Whether `path` was picked to be retired; without a selection, every session may be.
pub fn retire_picked(selection: Option<&Selection>, path: &std::path::Path) -> bool {
    selection.is_none_or(|s| s.mark_of(path) == Some(SessionMark::Retire))
}

/// Whether an archived plain transcript may be compressed in place.
pub fn compress_in_place(selection: Option<&Selection>, path: &std::path::Path) -> bool {
    selection.is_none_or(|s| s.mark_of(path) == Some(SessionMark::Compress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn picks(marks: &[(&str, SessionMark)]) -> Selection {
        Selection {
            marks: marks.iter().map(|(p, m)| (p.to_string(), *m)).collect(),
        }
    }

    #[test]
    fn a_selection_narrows_and_each_mark_keeps_to_its_own_step() {
        let s = picks(&[
            ("/h/sessions/a.jsonl", SessionMark::Archive),
            ("/h/sessions/b.jsonl", SessionMark::Compress),
            ("/h/archived_sessions/c.jsonl", SessionMark::Compress),
        ]);
        let s = Some(&s);
        assert!(picked(s, Path::new("/h/sessions/a.jsonl")));
        assert!(!picked(s, Path::new("/h/sessions/z.jsonl")));
        assert!(!compress_on_archive(
            s,
            Path::new("/h/sessions/a.jsonl"),
            true
        ));
        assert!(compress_on_archive(
            s,
            Path::new("/h/sessions/b.jsonl"),
            true
        ));
        assert!(!compress_on_archive(
            s,
            Path::new("/h/sessions/b.jsonl"),
            false
        ));
        assert!(!compress_in_place(
            s,
            Path::new("/h/archived_sessions/z.jsonl")
        ));
        assert!(compress_in_place(
            s,
            Path::new("/h/archived_sessions/c.jsonl")
        ));
        // Without a selection the planner is as it always was.
        assert!(picked(None, Path::new("/h/sessions/z.jsonl")));
        assert!(compress_on_archive(
            None,
            Path::new("/h/sessions/z.jsonl"),
            true
        ));
    }

    #[test]
    fn the_categories_are_those_the_marks_need() {
        let s = picks(&[
            ("/h/sessions/a.jsonl", SessionMark::Archive),
            ("/h/archived_sessions/c.jsonl", SessionMark::Compress),
        ]);
        let active = |p: &str| p.contains("/sessions/");
        assert_eq!(s.categories(active), ["sessions", "compress"]);
        let only_archive = picks(&[("/h/sessions/a.jsonl", SessionMark::Archive)]);
        assert_eq!(only_archive.categories(active), ["sessions"]);
    }
}
