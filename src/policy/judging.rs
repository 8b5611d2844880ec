//! The session policy applied to a list of transcripts: each one's first record is read,
//! judged, and either planned or kept with its reason. `archive` and `cleanup` judge
//! through here; `inspect`, `handoff` and both of them learn which threads have a handoff.

use anyhow::Result;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{Protection, SessionFacts, SessionPolicy, judge_for_archive};
use crate::clock::now_unix;
use crate::home::CodexHome;
use crate::home::sessions::{self, SessionFile};
use crate::home::thread_index::ThreadRow;
use crate::ops::session_move::{self, PlannedMove};

/// What judging a session needs to know beyond the file itself.
#[derive(Clone, Copy)]
pub struct SessionKnowledge<'a> {
    /// `None` for a home without a thread index.
    pub rows: Option<&'a HashMap<String, ThreadRow>>,
    pub index_path: Option<&'a std::path::Path>,
    pub locks: &'a HashSet<String>,
    pub handoffs: &'a HashSet<String>,
}

pub struct Judged<'f, P = PlannedMove> {
    pub chosen: Vec<(&'f SessionFile, P, u64)>,
    pub protected: Vec<SessionLine>,
}

/// Threads with a handoff on record; read-only, and empty when there is no store yet.
pub fn handoff_threads(store_root: &Path) -> Result<HashSet<String>> {
    match crate::store::open_read_only(store_root)? {
        Some(catalog) => catalog.threads_with_handoff(),
        None => Ok(HashSet::new()),
    }
}

/// The shared session policy applied to each target: a planned move, or the reason kept.
pub fn judge_sessions<'f>(
    home: &CodexHome,
    targets: Vec<&'f SessionFile>,
    known: &SessionKnowledge<'_>,
    policy: &SessionPolicy,
) -> Judged<'f> {
    let now = now_unix();
    judge_with(
        targets,
        known,
        |facts| judge_for_archive(facts, policy),
        |file, row| session_move::plan_archive(home, file, row, known.index_path, now),
    )
}

/// Reads each target's first record (on all cores, a slice at a time), asks `judge`, and
/// plans with `plan` the ones it lets through.
pub fn judge_with<'f, P>(
    targets: Vec<&'f SessionFile>,
    known: &SessionKnowledge<'_>,
    judge: impl Fn(&SessionFacts<'_>) -> Result<(), Protection>,
    plan: impl Fn(&SessionFile, Option<&ThreadRow>) -> P,
) -> Judged<'f, P> {
    let mut chosen = Vec::new();
    let mut protected = Vec::new();
    // First records are read on all cores, a slice at a time: on a cold cache each is a
    // disk seek, one at a time they cost more than hashing what is then moved, and a
    // slice keeps no more than its own records in memory.
    let first_records = targets.chunks(1024).flat_map(|slice| {
        use rayon::prelude::*;
        let read = || -> Vec<Result<sessions::SessionMeta, String>> {
            slice
                .par_iter()
                .map(|file| sessions::read_session_meta(&file.path))
                .collect()
        };
        let metas = crate::io_pool::install(read);
        slice.iter().copied().zip(metas)
    });
    for (file, meta) in first_records {
        let row = known.rows.map(|r| file.id().and_then(|id| r.get(id)));
        let facts = SessionFacts {
            file,
            meta: &meta,
            row,
            writer_locked: file.id().is_some_and(|id| known.locks.contains(id)),
            has_handoff: file.id().is_some_and(|id| known.handoffs.contains(id)),
        };
        let age = facts.last_activity_age_secs();
        match judge(&facts) {
            Ok(()) => chosen.push((file, plan(file, row.flatten()), age)),
            Err(protection) => protected.push(SessionLine {
                id: file.id().unwrap_or("?").to_string(),
                path: file.path.display().to_string(),
                size: file.size,
                last_active_secs: age,
                protection: Some(protection),
                op_id: None,
                destination: None,
            }),
        }
    }
    Judged { chosen, protected }
}

#[derive(Debug, Serialize)]
pub struct SessionLine {
    pub id: String,
    pub path: String,
    pub size: u64,
    pub last_active_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

impl SessionLine {
    /// "<id> - <why it is kept>", as the report lists a protected session.
    pub fn kept_because(&self) -> String {
        format!(
            "{} - {}",
            self.id,
            self.protection
                .as_ref()
                .map(Protection::explain)
                .unwrap_or_default()
        )
    }
}
