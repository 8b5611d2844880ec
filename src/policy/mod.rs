//! Decides, for each session found, whether it may be archived or must be kept, and why.
//! `archive`, `inspect` and `cleanup` all ask here, so they can never disagree.

mod judging;
pub mod reclaim;
pub use judging::{
    Judged, SessionKnowledge, SessionLine, handoff_threads, judge_sessions, judge_with,
};

use serde::Serialize;
use std::time::SystemTime;

use crate::clock::{age_secs, human_age};
use crate::home::same_file;
use crate::home::sessions::{SessionFile, SessionLocation, SessionMeta};
use crate::home::thread_index::ThreadRow;

pub const DEFAULT_MIN_AGE_SECS: u64 = 10 * 86_400;
/// What a cleanup can act on, by category (`--only`, and a policy's `unattended`).
pub const CLEANUP_CATEGORIES: &[&str] = &[
    "sessions",
    "compress",
    "logs",
    "worktrees",
    "releases",
    "projects",
    "retire",
    "reclaim",
];
/// Archived sessions idle this long are retired (`cleanup`'s `retire`).
pub const DEFAULT_RETIRE_MIN_AGE_SECS: u64 = 180 * 86_400;
/// Codex lists at most 10,000 files of a folder (`MAX_SCAN_FILES`); a cap below it leaves
/// room for the sessions archived before the next cleanup.
pub const DEFAULT_RETIRE_FOLDER_CAP: usize = 9_000;
/// A transcript at least this large is a long session that may still matter: it is kept
/// until it has a handoff document (SPEC.md "Handoff Docs").
pub const DEFAULT_HANDOFF_MIN_BYTES: u64 = 2 << 20;
/// An archived transcript idle this long may be compressed (`cleanup`'s `compress`): the
/// age Codex's own compression feature uses.
pub const DEFAULT_COMPRESS_MIN_IDLE_SECS: u64 = 7 * 86_400;
/// A transcript written to within this window may belong to a live session.
pub const CURRENT_WINDOW_SECS: u64 = 86_400;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Protection {
    Pinned,
    Current(String),
    Recent(String),
    Ambiguous(String),
    NeedsHandoff(String),
}

impl Protection {
    pub fn label(&self) -> &'static str {
        match self {
            Protection::Pinned => "pinned",
            Protection::Current(_) => "current",
            Protection::Recent(_) => "recent",
            Protection::Ambiguous(_) => "ambiguous",
            Protection::NeedsHandoff(_) => "needs_handoff",
        }
    }

    pub fn explain(&self) -> String {
        match self {
            Protection::Pinned => "pinned in Codex".into(),
            Protection::Current(why)
            | Protection::Recent(why)
            | Protection::Ambiguous(why)
            | Protection::NeedsHandoff(why) => {
                format!("{}: {why}", self.label())
            }
        }
    }

    /// Naming a session lifts the age heuristic and the handoff rule (an explicit per-item
    /// override, DESIGN.md), never pinned, current or ambiguous.
    pub fn lifted_by_explicit_request(&self) -> bool {
        matches!(self, Protection::Recent(_) | Protection::NeedsHandoff(_))
    }
}

#[derive(Debug, Clone)]
pub struct SessionPolicy {
    pub min_age_secs: u64,
    pub explicit_request: bool,
    pub handoff_min_bytes: u64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            min_age_secs: DEFAULT_MIN_AGE_SECS,
            explicit_request: false,
            handoff_min_bytes: DEFAULT_HANDOFF_MIN_BYTES,
        }
    }
}

/// What is known of one transcript when judging it.
pub struct SessionFacts<'a> {
    pub file: &'a SessionFile,
    pub meta: &'a Result<SessionMeta, String>,
    /// `None` when the home has no thread index (older Codex); `Some(None)` when it has one
    /// and this thread is missing from it.
    pub row: Option<Option<&'a ThreadRow>>,
    pub writer_locked: bool,
    pub has_handoff: bool,
}

impl SessionFacts<'_> {
    /// Last sign of life: the later of the file's mtime and the thread's `updated_at`.
    pub fn last_activity_age_secs(&self) -> u64 {
        let file_age = age_secs(self.file.mtime);
        let row_age = self.row.flatten().and_then(|r| r.updated_at).map(|t| {
            age_secs(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))
        });
        row_age.map_or(file_age, |r| r.min(file_age))
    }
}

/// `Ok(())` means the transcript may be compressed where it is: everything that keeps a
/// session from being archived keeps it plain too (pinned, current, ambiguous, a row that
/// disagrees), with the idle time as the age rule. A long session needs no handoff first:
/// Codex reads the compressed transcript, so nothing of it is put out of reach.
pub fn judge_for_compress(facts: &SessionFacts<'_>, min_idle_secs: u64) -> Result<(), Protection> {
    if facts.file.compressed {
        return Err(Protection::Ambiguous("already compressed".into()));
    }
    judge_for_archive(
        facts,
        &SessionPolicy {
            min_age_secs: min_idle_secs,
            explicit_request: false,
            handoff_min_bytes: u64::MAX,
        },
    )
}

/// `Ok(())` means the session may be archived; otherwise the first reason it is kept.
pub fn judge_for_archive(
    facts: &SessionFacts<'_>,
    policy: &SessionPolicy,
) -> Result<(), Protection> {
    let file = facts.file;
    if file.is_symlink {
        return Err(Protection::Ambiguous("the transcript is a symlink".into()));
    }
    if let Some(what) = crate::regular_file::what_else_of_mode(file.mode) {
        return Err(Protection::Ambiguous(format!(
            "not a regular file ({what}): kept, never opened"
        )));
    }
    let Some(name) = &file.name else {
        return Err(Protection::Ambiguous(
            "the file name is not Codex's rollout-<time>-<id>.jsonl".into(),
        ));
    };
    if !file.in_dated_folder {
        return Err(Protection::Ambiguous(
            "not in the dated folder its name implies".into(),
        ));
    }
    if file.has_twin {
        return Err(Protection::Ambiguous(format!(
            "both {} and its {} sibling exist; Codex reads the plain one",
            if file.compressed {
                "a compressed copy"
            } else {
                "a plain copy"
            },
            if file.compressed {
                "plain"
            } else {
                "compressed"
            }
        )));
    }
    if facts.writer_locked {
        return Err(Protection::Current(
            "a live Codex writer holds its thread lock".into(),
        ));
    }
    let mtime_age = age_secs(file.mtime);
    if mtime_age < CURRENT_WINDOW_SECS {
        return Err(Protection::Current(format!(
            "modified {} ago",
            human_age(mtime_age)
        )));
    }
    match facts.meta {
        Err(why) => {
            return Err(Protection::Ambiguous(format!(
                "no readable session_meta ({why})"
            )));
        }
        Ok(meta) if meta.id != name.id => {
            return Err(Protection::Ambiguous(format!(
                "session_meta names thread {}, the file name {}",
                meta.id, name.id
            )));
        }
        Ok(_) => {}
    }
    if let Some(row) = facts.row {
        let Some(row) = row else {
            return Err(Protection::Ambiguous(
                "no row in Codex's thread index".into(),
            ));
        };
        if row.is_pinned {
            return Err(Protection::Pinned);
        }
        // Most rows spell the path exactly as we found it; only a differing spelling costs
        // two `stat`s to compare identities.
        let row_path = std::path::Path::new(&row.rollout_path);
        if row_path != file.path && !same_file(row_path, &file.path) {
            return Err(Protection::Ambiguous(format!(
                "its thread row points at {}",
                row.rollout_path
            )));
        }
        let row_says_archived = row.archived != 0;
        if row_says_archived != (file.location == SessionLocation::Archived) {
            return Err(Protection::Ambiguous(
                "its thread row and its folder disagree on whether it is archived".into(),
            ));
        }
    }
    let age = facts.last_activity_age_secs();
    if age < policy.min_age_secs && !policy.explicit_request {
        return Err(Protection::Recent(format!(
            "last active {} ago, younger than the minimum age {}",
            human_age(age),
            human_age(policy.min_age_secs)
        )));
    }
    if file.size >= policy.handoff_min_bytes && !facts.has_handoff && !policy.explicit_request {
        return Err(Protection::NeedsHandoff(format!(
            "a long session ({}) without a handoff; run `codex-maint handoff {}` first",
            crate::clock::human_bytes(file.size),
            name.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::sessions::parse_rollout_name;
    use std::path::PathBuf;
    use std::time::Duration;

    const NAME: &str = "rollout-2026-01-02T03-04-05-01a20c2e-e45a-7d33-9558-2b68569b884c.jsonl";

    fn file(age_days: u64) -> SessionFile {
        SessionFile {
            path: PathBuf::from(format!("/h/sessions/2026/01/02/{NAME}")),
            location: SessionLocation::Active,
            name: parse_rollout_name(NAME),
            is_symlink: false,
            size: 10,
            mtime: SystemTime::now() - Duration::from_secs(age_days * 86_400),
            mode: 0o100644,
            in_dated_folder: true,
            compressed: false,
            has_twin: false,
        }
    }

    fn meta() -> Result<SessionMeta, String> {
        crate::home::sessions::parse_session_meta(&serde_json::json!({
            "type": "session_meta", "payload": {"id": "01a20c2e-e45a-7d33-9558-2b68569b884c"}
        }))
    }

    #[test]
    fn each_guard_protects_and_explicit_lifts_only_recency() {
        let m = meta();
        let old = file(40);
        let judge = |f: &SessionFile, locked: bool, explicit: bool| {
            let facts = SessionFacts {
                file: f,
                meta: &m,
                row: None,
                writer_locked: locked,
                has_handoff: false,
            };
            judge_for_archive(
                &facts,
                &SessionPolicy {
                    explicit_request: explicit,
                    ..Default::default()
                },
            )
        };
        assert_eq!(judge(&old, false, false), Ok(()));
        assert!(matches!(
            judge(&old, true, true),
            Err(Protection::Current(_))
        ));
        assert!(matches!(
            judge(&file(0), false, true),
            Err(Protection::Current(_))
        ));
        assert!(matches!(
            judge(&file(3), false, false),
            Err(Protection::Recent(_))
        ));
        assert_eq!(judge(&file(3), false, true), Ok(()));
        let mut link = file(40);
        link.is_symlink = true;
        assert!(matches!(
            judge(&link, false, true),
            Err(Protection::Ambiguous(_))
        ));
        let bad_meta: Result<SessionMeta, String> = Err("truncated".into());
        let facts = SessionFacts {
            file: &old,
            meta: &bad_meta,
            row: None,
            writer_locked: false,
            has_handoff: false,
        };
        assert!(matches!(
            judge_for_archive(&facts, &SessionPolicy::default()),
            Err(Protection::Ambiguous(_))
        ));
        let facts = SessionFacts {
            file: &old,
            meta: &m,
            row: Some(None),
            writer_locked: false,
            has_handoff: false,
        };
        assert!(matches!(
            judge_for_archive(&facts, &SessionPolicy::default()),
            Err(Protection::Ambiguous(_))
        ));
        let mut long = file(40);
        long.size = DEFAULT_HANDOFF_MIN_BYTES;
        let judge_long = |has_handoff: bool, explicit: bool| {
            let facts = SessionFacts {
                file: &long,
                meta: &m,
                row: None,
                writer_locked: false,
                has_handoff,
            };
            judge_for_archive(
                &facts,
                &SessionPolicy {
                    explicit_request: explicit,
                    ..Default::default()
                },
            )
        };
        assert!(matches!(
            judge_long(false, false),
            Err(Protection::NeedsHandoff(_))
        ));
        assert_eq!(judge_long(true, false), Ok(()));
        assert_eq!(
            judge_long(false, true),
            Ok(()),
            "naming a session is the per-item override"
        );
    }
}
