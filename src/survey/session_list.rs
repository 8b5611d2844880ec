//! The sessions of a home as people know them: what each was about (its title, or the first
//! thing the user asked), where it ran, how much it weighs, when it was last used, what
//! state it is in, and why a cleanup would keep it. Titles and folders come from Codex's
//! thread index when the home has one, else from the transcripts' first records. Nothing
//! is written anywhere: the index is read through `sqlite_read`, the store not at all
//! beyond its read-only list of handoffs.
//!
//! A transcript's head is read only when something asks for it (a filter on the folder or
//! the title, a row to show): a listing of the 50 largest of 100,000 sessions stats every
//! file, reads the index once, and opens 50 transcripts.

use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;

use crate::home::sessions::{self, SessionFile, SessionLocation, SessionMeta};
use crate::home::sqlite_read::ReadOnlyDb;
use crate::home::thread_index::{self, IndexState, ThreadIndex, ThreadRow};
use crate::home::thread_labels::{ThreadLabel, ThreadLabels};
use crate::home::{CodexHome, transcript, writer_locks};
use crate::policy::{
    DEFAULT_COMPRESS_MIN_IDLE_SECS, Protection, SessionFacts, SessionPolicy, judge_for_archive,
    judge_for_compress,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// A plain transcript under `sessions/`.
    Active,
    /// A plain transcript under `archived_sessions/`.
    Archived,
    /// Stored as `.jsonl.zst`, wherever it is.
    Compressed,
    /// Taken out of Codex's view into the store (`retire`); listed from the store's journal.
    Retired,
}

impl SessionState {
    pub fn of(file: &SessionFile) -> SessionState {
        match (file.compressed, file.location) {
            (true, _) => SessionState::Compressed,
            (false, SessionLocation::Active) => SessionState::Active,
            (false, SessionLocation::Archived) => SessionState::Archived,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Archived => "archived",
            SessionState::Compressed => "compressed",
            SessionState::Retired => "retired",
        }
    }
}

/// Where a session's title came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TitleSource {
    /// Codex's `threads.title`.
    ThreadTitle,
    /// Codex's `threads.first_user_message`.
    FirstUserMessage,
    /// The first user message of the transcript that is not harness context.
    Transcript,
}

/// One transcript of the listing.
pub struct ListedSession {
    pub file: SessionFile,
    /// The thread's id: the file name's, else the first record's.
    pub id: Option<String>,
    /// What the thread index knows of it (empty without an index or a row).
    pub label: ThreadLabel,
    /// The later of the file's mtime and the thread's `updated_at`, in Unix seconds.
    pub last_activity: i64,
    /// The transcript's first record, once read; boxed, since most rows of a large home
    /// never read it and the record is most of a row's size.
    pub meta: Option<Box<Result<SessionMeta, String>>>,
    /// The transcript's first request, once looked for.
    pub request: Option<Option<String>>,
}

impl ListedSession {
    /// The title a person reads, and where it came from.
    pub fn title(&self) -> Option<(&str, TitleSource)> {
        if let Some(t) = &self.label.title {
            return Some((t, TitleSource::ThreadTitle));
        }
        if let Some(t) = &self.label.first_message {
            return Some((t, TitleSource::FirstUserMessage));
        }
        self.request
            .as_ref()
            .and_then(Option::as_deref)
            .map(|t| (t, TitleSource::Transcript))
    }

    /// The first thing the user asked, from the index or the transcript.
    pub fn first_message(&self) -> Option<&str> {
        self.label
            .first_message
            .as_deref()
            .or_else(|| self.request.as_ref().and_then(Option::as_deref))
    }

    /// The project folder: the index's, else the first record's.
    pub fn cwd(&self) -> Option<&str> {
        self.label.cwd.as_deref().or_else(|| {
            self.meta
                .as_ref()
                .and_then(|m| m.as_ref().as_ref().ok())
                .and_then(|m| m.cwd.as_deref())
        })
    }

    pub fn state(&self) -> SessionState {
        SessionState::of(&self.file)
    }

    pub fn age_secs(&self, now: i64) -> u64 {
        (now - self.last_activity).max(0) as u64
    }

    /// Whether `fill` still has to read the first record for what `need` asks.
    fn wants_meta(&self, need: Need) -> bool {
        self.meta.is_none()
            && (need.judging || self.id.is_none() || (need.folder && self.label.cwd.is_none()))
    }

    /// Whether `fill` still has to look for the first request for what `need` asks.
    fn wants_request(&self, need: Need) -> bool {
        need.title
            && self.request.is_none()
            && self.label.title.is_none()
            && self.label.first_message.is_none()
    }
}

/// What a caller needs read from the transcripts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Need {
    /// The project folder, for a session the index gives none.
    pub folder: bool,
    /// The title, for a session the index gives none.
    pub title: bool,
    /// What judging needs: the first record of every session.
    pub judging: bool,
}

/// Every transcript of a home, with what the index says of each.
pub struct SessionListing {
    pub sessions: Vec<ListedSession>,
    /// "understood", "absent" or "not_understood" (then titles come from transcripts).
    pub index_state: &'static str,
    /// Unreadable folders, an index that could not be read: said, never fatal.
    pub problems: Vec<String>,
    /// The index and an open read of it: judging asks it for the rows of the sessions
    /// shown, a slice at a time, rather than holding 100,000 rows.
    index: Option<(ThreadIndex, ReadOnlyDb)>,
    locks: HashSet<String>,
    handoffs: HashSet<String>,
}

impl SessionListing {
    /// Stats every transcript and reads the index once; no transcript is opened yet.
    pub fn gather(home: &CodexHome, store_root: &Path) -> anyhow::Result<SessionListing> {
        let handoffs = crate::policy::handoff_threads(store_root)?;
        // The walk and the index read wait on different files: side by side, a home of
        // 100,000 sessions is listed in about the time of the longer of the two.
        let ((files, mut problems), (index_state, index, mut labels, index_problem)) =
            std::thread::scope(|scope| {
                // The walk stays on this thread: its many short-lived allocations are then
                // reused by the rows built next, rather than left behind in another arena.
                let index = scope.spawn(|| read_index(home));
                let walked = sessions::scan(home);
                let indexed = index.join().expect("reading the index does not panic");
                (walked, indexed)
            });
        problems.extend(index_problem);
        let sessions = files
            .into_iter()
            .map(|file| {
                let id = file.id().map(str::to_string);
                let label = id
                    .as_deref()
                    .and_then(|id| labels.take(id))
                    .unwrap_or_default();
                let mtime = crate::clock::system_time_ns(file.mtime).div_euclid(1_000_000_000);
                let last_activity = label.updated_at.map_or(mtime, |u| u.max(mtime));
                ListedSession {
                    file,
                    id,
                    label,
                    last_activity,
                    meta: None,
                    request: None,
                }
            })
            .collect();
        Ok(SessionListing {
            sessions,
            index_state,
            problems,
            index,
            locks: writer_locks::held_thread_locks(home),
            handoffs,
        })
    }

    /// Why a default `cleanup` would keep each of `sessions` where and as it is, or `None`
    /// where it would act (or, for one already compressed, has nothing left to do). Their
    /// first records must have been read (`fill` with `judging`).
    pub fn protections(
        &self,
        sessions: &[ListedSession],
    ) -> anyhow::Result<Vec<Option<Protection>>> {
        let rows = match &self.index {
            Some((index, db)) => {
                let ids: Vec<&str> = sessions.iter().filter_map(|s| s.file.id()).collect();
                let mut rows = std::collections::HashMap::new();
                for slice in ids.chunks(500) {
                    rows.extend(index.rows_of(&db.conn, slice)?);
                }
                Some(rows)
            }
            None => None,
        };
        Ok(sessions
            .iter()
            .map(|s| self.protection(s, rows.as_ref()))
            .collect())
    }

    fn protection(
        &self,
        session: &ListedSession,
        rows: Option<&std::collections::HashMap<String, ThreadRow>>,
    ) -> Option<Protection> {
        let unread = Err("not read".to_string());
        let meta = session.meta.as_deref().unwrap_or(&unread);
        let row = rows.map(|rows| session.file.id().and_then(|id| rows.get(id)));
        let facts = SessionFacts {
            file: &session.file,
            meta,
            row,
            writer_locked: session.file.id().is_some_and(|id| self.locks.contains(id)),
            has_handoff: session
                .file
                .id()
                .is_some_and(|id| self.handoffs.contains(id)),
        };
        match (session.file.location, session.file.compressed) {
            (SessionLocation::Active, _) => {
                judge_for_archive(&facts, &SessionPolicy::default()).err()
            }
            (SessionLocation::Archived, false) => {
                judge_for_compress(&facts, DEFAULT_COMPRESS_MIN_IDLE_SECS).err()
            }
            (SessionLocation::Archived, true) => None,
        }
    }
}

/// What the index says of every thread, and how it was read: its state, the open read that
/// judging asks again, the labels, and the problem to report when it could not be read.
#[allow(clippy::type_complexity)]
fn read_index(
    home: &CodexHome,
) -> (
    &'static str,
    Option<(ThreadIndex, ReadOnlyDb)>,
    ThreadLabels,
    Option<String>,
) {
    match thread_index::detect(home) {
        IndexState::Absent => ("absent", None, ThreadLabels::default(), None),
        IndexState::NotUnderstood { path, reason } => (
            "not_understood",
            None,
            ThreadLabels::default(),
            Some(format!(
                "Codex's thread index {} is not understood ({reason}): titles and folders are read from the transcripts",
                path.display()
            )),
        ),
        IndexState::Understood(index) => {
            // One open: a database with a pending WAL is read from a private copy.
            let read = crate::sqlite_read::open(&index.path).and_then(|db| {
                let labels = ThreadLabels::read_with(&index, &db.conn)?;
                Ok((db, labels))
            });
            match read {
                Ok((db, labels)) => ("understood", Some((index, db)), labels, None),
                Err(e) => {
                    let problem = format!(
                        "Codex's thread index {} cannot be read ({e:#}): titles and folders are read from the transcripts",
                        index.path.display()
                    );
                    (
                        "not_understood",
                        None,
                        ThreadLabels::default(),
                        Some(problem),
                    )
                }
            }
        }
    }
}

/// Reads what `need` asks of each session that lacks it, on all cores, a slice at a time:
/// each read is a seek on a cold disk.
pub fn fill(sessions: &mut [ListedSession], need: Need) {
    use rayon::prelude::*;
    for slice in sessions.chunks_mut(1024) {
        if !slice
            .iter()
            .any(|s| s.wants_meta(need) || s.wants_request(need))
        {
            continue;
        }
        crate::io_pool::install(|| {
            slice.par_iter_mut().for_each(|s| read_head(s, need));
        });
    }
}

fn read_head(session: &mut ListedSession, need: Need) {
    if session.wants_meta(need) {
        let meta = if session.file.is_symlink {
            Err("a symlink; not read".to_string())
        } else {
            sessions::read_session_meta(&session.file.path)
        };
        if session.id.is_none() {
            session.id = meta.as_ref().ok().map(|m| m.id.clone());
        }
        session.meta = Some(Box::new(meta));
    }
    if session.wants_request(need) {
        // An unreadable transcript has no title to give; its first record says why.
        session.request = Some(if session.file.is_symlink {
            None
        } else {
            transcript::first_user_request(&session.file.path)
                .ok()
                .flatten()
        });
    }
}
