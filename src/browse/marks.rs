//! What a session can be marked for, the key that marks it, and whether a session may be
//! marked so. Cleanup marks become a plan narrowed to the marked sessions; a handoff mark
//! writes the session's handoff document. A new cleanup tier (retire) is one row of
//! `MARK_KEYS` and one variant of `SessionMark`.

use crate::cleanup::SessionMark;
use crate::policy::Protection;
use crate::survey::session_list::{ListedSession, SessionState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    Cleanup(SessionMark),
    Handoff,
}

/// Each mark, its key, and the word the list shows.
pub const MARK_KEYS: &[(char, Mark, &str)] = &[
    ('a', Mark::Cleanup(SessionMark::Archive), "archive"),
    ('c', Mark::Cleanup(SessionMark::Compress), "compress"),
    ('r', Mark::Cleanup(SessionMark::Retire), "retire"),
    ('h', Mark::Handoff, "hand off"),
];

impl Mark {
    pub fn word(self) -> &'static str {
        MARK_KEYS
            .iter()
            .find(|(_, m, _)| *m == self)
            .map_or("?", |(_, _, w)| w)
    }

    /// The one-letter tag in the list's mark column.
    pub fn tag(self) -> char {
        MARK_KEYS
            .iter()
            .find(|(_, m, _)| *m == self)
            .map_or('?', |(k, _, _)| k.to_ascii_uppercase())
    }

    pub fn of_key(key: char) -> Option<Mark> {
        MARK_KEYS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, m, _)| *m)
    }
}

/// Why `session` cannot be marked `mark`, if it cannot. `protection` is what a default
/// cleanup judged (`None` when not judged yet: then it is not marked, to be safe).
pub fn refusal(
    session: &ListedSession,
    mark: Mark,
    protection: Option<&Option<Protection>>,
    has_handoff: bool,
) -> Option<String> {
    let state = session.state();
    match mark {
        Mark::Handoff => {
            if session.id.is_none() {
                Some("its transcript names no thread id, so no handoff can be written".into())
            } else if has_handoff {
                Some("it has a handoff already".into())
            } else {
                None
            }
        }
        Mark::Cleanup(m) => {
            if m.categories(state == SessionState::Active).is_empty() {
                return Some(format!("it is {} already", state.as_str()));
            }
            if state == SessionState::Compressed {
                return Some("it is compressed already".into());
            }
            match protection {
                None => Some("it has not been judged yet; try again".into()),
                Some(Some(p)) => Some(format!("protected: {}", p.explain())),
                Some(None) => None,
            }
        }
    }
}
