//! One pass over a home: the tree walk, every transcript's first line judged by the session
//! policy, the thread index compared with the transcripts, and the databases, processes and
//! worktrees asked on the other cores meanwhile.

use crate::home::survey_rows::SurveyRows;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::databases::{check_database, top_level_databases};
use super::model::{
    DatabaseReport, DriftItem, IndexReport, InspectData, LogDatabase, LogsReport, ProtectedSession,
    ReleaseReport, ReleasesReport, SessionsReport, TopLevelEntry, WorktreeReport,
};
use super::{DatabaseDepth, SurveyOptions};
use crate::home::config;
use crate::home::inventory::{self, Finding, LargeFile, TranscriptSeen, WalkOptions};
use crate::home::processes::{self, ProcessKind};
use crate::home::releases::{self, ReleaseFacts};
use crate::home::sessions::SessionLocation;
use crate::home::thread_index::{self, IndexState};
use crate::home::worktrees;
use crate::home::{CodexHome, writer_locks};
use crate::ops::row_repair;
use crate::policy::{Protection, SessionFacts, SessionPolicy, judge_for_archive};
use crate::survey::compression::CompressionSurvey;

/// The whole inventory, as data; `cleanup` plans from the same value.
pub fn gather(
    home: &CodexHome,
    args: &SurveyOptions,
    handoffs: &HashSet<String>,
    depth: DatabaseDepth,
) -> InspectData {
    let index_state = thread_index::detect(home);
    let mut index_report = IndexReport::default();
    let rows: Option<SurveyRows> = match &index_state {
        IndexState::Absent => {
            index_report.state = "absent".into();
            None
        }
        IndexState::NotUnderstood { path, reason } => {
            index_report.state = "not_understood".into();
            index_report.path = Some(path.display().to_string());
            index_report.reason = Some(reason.clone());
            None
        }
        IndexState::Understood(index) => {
            index_report.state = "understood".into();
            index_report.path = Some(index.path.display().to_string());
            match SurveyRows::read(index) {
                Ok(rows) => Some(rows),
                Err(e) => {
                    index_report.state = "not_understood".into();
                    index_report.reason = Some(format!("cannot be read: {e:#}"));
                    None
                }
            }
        }
    };
    index_report.rows = rows.as_ref().map_or(0, SurveyRows::len);
    let locks = writer_locks::held_thread_locks(home);
    let worktree_roots = worktrees::roots(&home.root.join("worktrees"));
    let release_facts = releases::read(home);
    let mut groups = worktree_roots.clone();
    if let Some(r) = &release_facts {
        groups.extend(r.releases.iter().map(|r| PathBuf::from(&r.path)));
    }

    let policy = SessionPolicy {
        min_age_secs: args.min_age_secs,
        explicit_request: false,
        handoff_min_bytes: args.handoff_min_bytes,
    };
    // What keeps an archived session from being retired: the archive protections, at any
    // age (the folder cap applies whatever the age).
    let any_age = SessionPolicy {
        min_age_secs: 0,
        ..policy.clone()
    };
    let mut sessions = SessionsReport {
        large_threshold_bytes: args.large_session_bytes,
        min_age_secs: args.min_age_secs,
        retire_min_age_secs: args.retire_min_age_secs,
        retire_folder_cap: args.retire_folder_cap,
        ..Default::default()
    };
    let mut seen_ids = SeenIds::default();
    let mut transcript_findings = Vec::new();
    let mut compression = CompressionSurvey::new(args.compress_min_idle_secs);
    let mut dated = super::listing_cap::DatedCounts::default();
    let sessions_root = home.sessions_dir();
    let mut on_transcript = |seen: TranscriptSeen<'_>| {
        let file = seen.file;
        if let Err(why) = &seen.meta {
            transcript_findings.push(Finding {
                path: file.path.display().to_string(),
                problem: format!("transcript: {why}"),
            });
        }
        if seen.truncated_tail {
            transcript_findings.push(Finding {
                path: file.path.display().to_string(),
                problem: "transcript ends mid-record (truncated last line)".into(),
            });
        }
        let row_read = rows.as_ref().map(|r| file.id().and_then(|id| r.get(id)));
        let row = row_read.as_ref().map(Option::as_ref);
        if let Some(id) = file.id() {
            seen_ids.insert(id);
            if row
                .flatten()
                .is_some_and(|r| Path::new(&r.rollout_path) == file.path)
            {
                seen_ids.insert_at_own_path(id);
            }
        }
        let facts = SessionFacts {
            file,
            meta: &seen.meta,
            row,
            writer_locked: file.id().is_some_and(|id| locks.contains(id)),
            has_handoff: file.id().is_some_and(|id| handoffs.contains(id)),
        };
        let age = facts.last_activity_age_secs();
        if file.size >= args.large_session_bytes {
            sessions.large.push(LargeFile {
                path: file.path.display().to_string(),
                bytes: file.size,
                age_secs: age,
            });
        }
        if let (Some(row), Some(id)) = (row, file.id()) {
            match row {
                None => index_report
                    .transcripts_without_row
                    .push(file.path.display().to_string()),
                Some(r) => {
                    let drift = DriftItem {
                        id: id.to_string(),
                        rollout_path: r.rollout_path.clone(),
                    };
                    match (file.location, r.archived != 0) {
                        (SessionLocation::Active, true) => {
                            index_report.archived_rows_under_sessions.push(drift)
                        }
                        (SessionLocation::Archived, false) => {
                            index_report.active_rows_under_archive.push(drift)
                        }
                        _ => {}
                    }
                }
            }
        }
        compression.see(&facts);
        if file.location == SessionLocation::Active {
            dated.add(&sessions_root, &file.path);
        }
        if file.location == SessionLocation::Archived {
            sessions.archived.add(file, age);
            if judge_for_archive(&facts, &any_age).is_ok() {
                sessions.retire_eligible.push(super::model::RetireEligible {
                    age_secs: age,
                    bytes: file.size,
                    archive_candidate: false,
                });
            }
            return;
        }
        sessions.active.add(file, age);
        match judge_for_archive(&facts, &policy) {
            Ok(()) => {
                compression.see_archive_candidate(file);
                sessions.archive_candidates.count += 1;
                sessions.archive_candidates.bytes += file.size;
                sessions.retire_eligible.push(super::model::RetireEligible {
                    age_secs: age,
                    bytes: file.size,
                    archive_candidate: true,
                });
            }
            Err(protection) => {
                let slot = sessions
                    .protected
                    .entry(protection.label().to_string())
                    .or_default();
                slot.count += 1;
                slot.bytes += file.size;
                if !matches!(protection, Protection::Recent(_)) {
                    sessions.protected_sessions.push(ProtectedSession {
                        id: file.id().map(str::to_string),
                        path: file.path.display().to_string(),
                        protection,
                    });
                }
            }
        }
    };
    // The databases, the process table and git are asked on the other core while this
    // one walks the tree: the walk waits on the filesystem, the checks on the CPU.
    let db_paths = top_level_databases(home);
    let history_path = super::history_weight::find(&db_paths);
    let (inv, (databases, log_databases), (processes, worktree_facts), thread_history) =
        std::thread::scope(|scope| {
            // The history's weight is a read of its own, beside the checks of every database.
            let history = scope
                .spawn(|| history_path.map(|p| super::history_weight::weigh(p, rows.as_ref())));
            let dbs = scope.spawn(|| {
                use rayon::prelude::*;
                // Each database on its own core: the thread index and a log database
                // take about as long as each other and as the walk.
                let results: Vec<(DatabaseReport, Option<LogDatabase>)> = db_paths
                    .par_iter()
                    .map(|path| check_database(path, depth, args.large_log_bytes))
                    .collect();
                let mut checked = Vec::with_capacity(results.len());
                let mut logs = Vec::new();
                for (report, log) in results {
                    checked.push(report);
                    logs.extend(log);
                }
                (checked, logs)
            });
            let others = scope.spawn(|| {
                let found = processes::scan(home, true).unwrap_or_default();
                let facts: Vec<worktrees::WorktreeFacts> = worktree_roots
                    .iter()
                    .map(|r| worktrees::examine(r))
                    .collect();
                (found, facts)
            });
            let inv = inventory::walk(
                home,
                &WalkOptions {
                    large_log_bytes: args.large_log_bytes,
                    groups,
                },
                &mut on_transcript,
            );
            (
                inv,
                dbs.join().expect("the database checks do not panic"),
                others.join().expect("the process scan does not panic"),
                history.join().expect("the history's weight does not panic"),
            )
        });
    sessions.large.sort_by_key(|l| std::cmp::Reverse(l.bytes));
    if let Some(rows) = &rows {
        let mut missing: Vec<DriftItem> = rows
            .paths()
            .filter(|(id, path)| !seen_ids.contains(id) && !Path::new(path).exists())
            .map(|(id, path)| DriftItem {
                id,
                rollout_path: path.to_string(),
            })
            .collect();
        missing.sort_by(|a, b| a.id.cmp(&b.id));
        index_report.rows_missing_transcript = missing;
        // Only a home whose rows disagree with its transcripts pays for the second look
        // that planning a repair needs.
        // A row whose transcript the walk found at the row's own path has not lost it.
        let a_row_lost_its_file = rows.paths().any(|(id, path)| {
            if seen_ids.at_own_path(&id) {
                return false;
            }
            let named = Path::new(path);
            !named.exists() && !crate::home::sessions::twin_path(named).exists()
        });
        if a_row_lost_its_file
            || !index_report.archived_rows_under_sessions.is_empty()
            || !index_report.active_rows_under_archive.is_empty()
        {
            index_report.repair = row_repair::plan_for_home(home).ok().flatten();
        }
    }

    let mut top_level: Vec<TopLevelEntry> = inv
        .top_level
        .iter()
        .map(|(name, (kind, size))| TopLevelEntry {
            name: name.clone(),
            kind: kind.clone(),
            size: size.clone(),
        })
        .collect();
    top_level.sort_by_key(|e| std::cmp::Reverse(e.size.disk_bytes));

    let logs = LogsReport {
        large_threshold_bytes: args.large_log_bytes,
        large_files: inv.large_logs.clone(),
        databases: log_databases,
    };
    let worktrees: Vec<WorktreeReport> = worktree_roots
        .iter()
        .zip(worktree_facts)
        .map(|(root, facts)| {
            let size = inv.grouped.get(root).cloned().unwrap_or_default();
            let old = size
                .newest_age_secs
                .is_some_and(|a| a >= args.old_worktree_secs);
            WorktreeReport {
                path: facts.path,
                bytes: size.disk_bytes,
                age_secs: size.newest_age_secs,
                old,
                registration: facts.registration,
                status: facts.status,
                changed_entries: facts.changed_entries,
                branch: facts.branch,
                main_repository: facts.main_repository,
                note: facts.note,
            }
        })
        .collect();
    let releases = release_facts.map(|r: ReleaseFacts| {
        let items: Vec<ReleaseReport> = r
            .releases
            .iter()
            .map(|rel| ReleaseReport {
                path: rel.path.clone(),
                name: rel.name.clone(),
                is_current: rel.is_current,
                bytes: inv
                    .grouped
                    .get(Path::new(&rel.path))
                    .map_or(0, |t| t.disk_bytes),
            })
            .collect();
        let old_bytes = if r.current.is_some() {
            items
                .iter()
                .filter(|i| !i.is_current)
                .map(|i| i.bytes)
                .sum()
        } else {
            0
        };
        ReleasesReport {
            current: r.current,
            releases: items,
            old_bytes,
        }
    });

    let codex_running = processes
        .iter()
        .any(|p| p.kind != ProcessKind::DevServer && p.uses_this_home);
    let mut findings = inv.findings;
    findings.extend(transcript_findings);
    let compression = compression.finish(home);
    findings.extend(compression.twins.iter().map(|path| Finding {
        path: path.clone(),
        problem: "a plain transcript and its compressed copy (.zst) both exist: both kept, neither acted on; Codex reads the plain one".into(),
    }));
    let mut not_touched = vec![
        "everything: inspect reads metadata and first lines only and changes no file".to_string(),
    ];
    if inv.credentials_present {
        not_touched.push(format!(
            "{}: credentials; never opened, copied or hashed",
            crate::home::CREDENTIALS_FILE
        ));
    }
    for f in &findings {
        if f.problem.starts_with("unreadable") || f.problem.starts_with("cannot stat") {
            not_touched.push(format!("{}: could not be read ({})", f.path, f.problem));
        }
    }
    let mut live_thread_locks: Vec<String> = locks.into_iter().collect();
    live_thread_locks.sort();

    let listing_cap =
        super::listing_cap::ListingCap::of(sessions.active.count, sessions.archived.count, &dated);
    let mut data = InspectData {
        home: home.display(),
        looks_like_codex_home: home.looks_like_codex_home(),
        total: inv.total,
        top_level,
        sessions,
        thread_index: index_report,
        logs,
        worktrees,
        releases,
        config: config::read(home),
        databases,
        processes,
        codex_running,
        live_thread_locks,
        findings,
        not_touched,
        compression,
        frees: Default::default(),
        listing_cap,
        thread_history,
    };
    data.frees = super::frees::Frees::of(&data);
    data
}

/// The ids of the transcripts walked, as 128-bit keys (a home has 100,000 of them), and
/// those found at the path their row names.
#[derive(Default)]
struct SeenIds {
    uuids: HashSet<u128>,
    others: HashSet<String>,
    at_own_path: HashSet<u128>,
}

impl SeenIds {
    fn insert_at_own_path(&mut self, id: &str) {
        if let Ok(u) = uuid::Uuid::parse_str(id) {
            self.at_own_path.insert(u.as_u128());
        }
    }

    fn at_own_path(&self, id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok_and(|u| self.at_own_path.contains(&u.as_u128()))
    }

    fn insert(&mut self, id: &str) {
        match uuid::Uuid::parse_str(id) {
            Ok(u) => {
                self.uuids.insert(u.as_u128());
            }
            Err(_) => {
                self.others.insert(id.to_string());
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        match uuid::Uuid::parse_str(id) {
            Ok(u) => self.uuids.contains(&u.as_u128()),
            Err(_) => self.others.contains(id),
        }
    }
}
