//! `inspect`: SPEC.md's inspect mode in one pass. It finds the weight and the risks of a
//! Codex home and reports them in SPEC.md's shape; it writes nothing anywhere (not even
//! the store), which `tests/inspect_read_only.rs` proves on a home real Codex wrote.

use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{Context, relative_to};
use crate::arg_values::{age_secs, megabytes};
use crate::clock::{human_age, human_bytes};
use crate::home::config::{self, ConfigFacts, ProjectState};
use crate::home::inventory::{self, Finding, LargeFile, Tally, TranscriptSeen, WalkOptions};
use crate::home::processes::{self, FoundProcess, ProcessKind};
use crate::home::releases::{self, ReleaseFacts};
use crate::home::sessions::SessionLocation;
use crate::home::sqlite_read::{self, Snapshot, wal_path};
use crate::home::thread_index::{self, IndexState, ThreadRow};
use crate::home::worktrees::{self, Cleanliness, Registration};
use crate::home::{CodexHome, writer_locks};
use crate::ops::row_repair::{self, RepairPlan};
use crate::policy::{Protection, SessionFacts, SessionPolicy, judge_for_archive};
use crate::report::{self, Report};
use crate::sqlite_check::{self, IntegrityCheck};
use crate::survey::compression::{CompressionReport, CompressionSurvey};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Transcripts at least this large are listed (MB)
    #[arg(long = "large-session-mb", value_name = "MB", default_value = "10", value_parser = megabytes)]
    pub large_session_bytes: u64,
    /// Log files and log databases at least this large are listed (MB)
    #[arg(long = "large-log-mb", value_name = "MB", default_value = "50", value_parser = megabytes)]
    pub large_log_bytes: u64,
    /// Sessions idle for less than this are not archive candidates
    #[arg(long = "min-age", value_name = "AGE", default_value = "10d", value_parser = age_secs)]
    pub min_age_secs: u64,
    #[arg(skip = InspectArgs::default().old_worktree_secs)]
    pub old_worktree_secs: u64,
    #[arg(skip = InspectArgs::default().handoff_min_bytes)]
    pub handoff_min_bytes: u64,
    /// Archived transcripts idle for less than this are not compression candidates
    #[arg(long = "compress-min-age", value_name = "AGE", default_value = "7d", value_parser = age_secs)]
    pub compress_min_idle_secs: u64,
}

impl Default for InspectArgs {
    fn default() -> Self {
        InspectArgs {
            large_session_bytes: 10 << 20,
            large_log_bytes: 50 << 20,
            min_age_secs: crate::policy::DEFAULT_MIN_AGE_SECS,
            old_worktree_secs: 10 * 86_400,
            handoff_min_bytes: crate::policy::DEFAULT_HANDOFF_MIN_BYTES,
            compress_min_idle_secs: crate::policy::DEFAULT_COMPRESS_MIN_IDLE_SECS,
        }
    }
}

/// Everything inspect found; the field names are the `--json` contract (README).
#[derive(Debug, Serialize)]
pub struct InspectData {
    pub home: String,
    pub looks_like_codex_home: bool,
    pub total: Tally,
    pub top_level: Vec<TopLevelEntry>,
    pub sessions: SessionsReport,
    pub thread_index: IndexReport,
    pub logs: LogsReport,
    pub worktrees: Vec<WorktreeReport>,
    pub releases: Option<ReleasesReport>,
    pub config: ConfigFacts,
    pub databases: Vec<DatabaseReport>,
    pub processes: Vec<FoundProcess>,
    pub codex_running: bool,
    pub live_thread_locks: Vec<String>,
    pub findings: Vec<Finding>,
    pub not_touched: Vec<String>,
    pub compression: CompressionReport,
}

#[derive(Debug, Serialize)]
pub struct TopLevelEntry {
    pub name: String,
    pub kind: String,
    #[serde(flatten)]
    pub size: Tally,
}

#[derive(Debug, Default, Serialize)]
pub struct SessionBucket {
    pub count: u64,
    pub bytes: u64,
    pub oldest_age_secs: Option<u64>,
    pub newest_age_secs: Option<u64>,
    /// Counts by last activity: under 1 day, 10 days, 30 days, 90 days, and older.
    pub by_age: [u64; 5],
    /// How many are stored compressed (`.jsonl.zst`).
    pub compressed: u64,
    /// The plain size of all of them: `bytes` with each compressed one counted at the size
    /// its frame header declares.
    pub uncompressed_bytes: u64,
}

impl SessionBucket {
    fn add(&mut self, file: &crate::home::sessions::SessionFile, age: u64) {
        self.count += 1;
        self.bytes += file.size;
        if file.compressed {
            self.compressed += 1;
        }
        self.uncompressed_bytes += file.plain_size().unwrap_or(file.size);
        self.oldest_age_secs = Some(self.oldest_age_secs.map_or(age, |a| a.max(age)));
        self.newest_age_secs = Some(self.newest_age_secs.map_or(age, |a| a.min(age)));
        let slot = [86_400, 10 * 86_400, 30 * 86_400, 90 * 86_400]
            .iter()
            .position(|&limit| age < limit)
            .unwrap_or(4);
        self.by_age[slot] += 1;
    }
}

#[derive(Debug, Default, Serialize)]
pub struct SessionsReport {
    pub active: SessionBucket,
    pub archived: SessionBucket,
    pub large_threshold_bytes: u64,
    pub large: Vec<LargeFile>,
    pub min_age_secs: u64,
    pub archive_candidates: CountBytes,
    /// Protected sessions by reason (`pinned`, `current`, `recent`, `ambiguous`, ...).
    pub protected: BTreeMap<String, CountBytes>,
    /// Every protected session except the merely recent, with its reason.
    pub protected_sessions: Vec<ProtectedSession>,
}

#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct CountBytes {
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ProtectedSession {
    pub id: Option<String>,
    pub path: String,
    pub protection: Protection,
}

#[derive(Debug, Default, Serialize)]
pub struct IndexReport {
    /// `understood`, `absent` (an older Codex without one) or `not_understood`.
    pub state: String,
    pub path: Option<String>,
    pub reason: Option<String>,
    pub rows: usize,
    pub rows_missing_transcript: Vec<DriftItem>,
    pub transcripts_without_row: Vec<String>,
    pub archived_rows_under_sessions: Vec<DriftItem>,
    pub active_rows_under_archive: Vec<DriftItem>,
    /// What `repair` would change, and what it would leave alone and why; planned only
    /// when rows disagree with the transcripts.
    pub repair: Option<RepairPlan>,
}

#[derive(Debug, Serialize)]
pub struct DriftItem {
    pub id: String,
    pub rollout_path: String,
}

#[derive(Debug, Default, Serialize)]
pub struct LogsReport {
    pub large_threshold_bytes: u64,
    pub large_files: Vec<LargeFile>,
    pub databases: Vec<LogDatabase>,
}

#[derive(Debug, Serialize)]
pub struct LogDatabase {
    pub path: String,
    pub bytes: u64,
    pub wal_bytes: u64,
    pub rows: Option<i64>,
    pub over_threshold: bool,
}

#[derive(Debug, Serialize)]
pub struct WorktreeReport {
    pub path: String,
    pub bytes: u64,
    pub age_secs: Option<u64>,
    pub old: bool,
    pub registration: Registration,
    pub status: Cleanliness,
    pub changed_entries: usize,
    pub branch: Option<String>,
    pub main_repository: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReleasesReport {
    pub current: Option<String>,
    pub releases: Vec<ReleaseReport>,
    pub old_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ReleaseReport {
    pub path: String,
    pub name: String,
    pub is_current: bool,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct DatabaseReport {
    pub path: String,
    pub bytes: u64,
    pub wal_bytes: u64,
    /// `ok`, `failed`, `unreadable`, or `not checked: Codex is writing it`.
    pub integrity: String,
    /// Which check gave `integrity`: `integrity_check` or `quick_check`.
    pub check: IntegrityCheck,
    pub problems: Vec<String>,
    pub snapshot: Option<Snapshot>,
}

/// How thoroughly `gather` checks the databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseDepth {
    /// `inspect`: the full `integrity_check` everywhere but log databases, which get
    /// `quick_check`. codex-maint only ever moves a log database whole, which an index
    /// out of step with its table cannot affect, and cross-checking every index of a large
    /// one took most of inspect's time (0.35 s against 0.04 s on a 22 MB one Codex made).
    Survey,
    /// `cleanup`, before and after it acts: the full `integrity_check` everywhere.
    Full,
}

pub fn run(ctx: &Context, args: &InspectArgs) -> Result<Report> {
    let home = ctx.locate_home()?;
    let handoffs = crate::policy::handoff_threads(&ctx.store_root)?;
    let data = gather(&home, args, &handoffs, DatabaseDepth::Survey);
    Ok(render(&home, &data, args))
}

/// The whole inventory, as data; `cleanup` plans from the same value.
pub fn gather(
    home: &CodexHome,
    args: &InspectArgs,
    handoffs: &HashSet<String>,
    depth: DatabaseDepth,
) -> InspectData {
    let index_state = thread_index::detect(home);
    let mut index_report = IndexReport::default();
    let rows: Option<HashMap<String, ThreadRow>> = match &index_state {
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
            match index.read_all() {
                Ok(rows) => Some(rows),
                Err(e) => {
                    index_report.state = "not_understood".into();
                    index_report.reason = Some(format!("cannot be read: {e:#}"));
                    None
                }
            }
        }
    };
    index_report.rows = rows.as_ref().map_or(0, HashMap::len);
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
    let mut sessions = SessionsReport {
        large_threshold_bytes: args.large_session_bytes,
        min_age_secs: args.min_age_secs,
        ..Default::default()
    };
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut transcript_findings = Vec::new();
    let mut compression = CompressionSurvey::new(args.compress_min_idle_secs);
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
        let row = rows.as_ref().map(|r| file.id().and_then(|id| r.get(id)));
        if let Some(id) = file.id() {
            seen_ids.insert(id.to_string());
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
        if let (Some(rows), Some(id)) = (&rows, file.id()) {
            match rows.get(id) {
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
        if file.location == SessionLocation::Archived {
            sessions.archived.add(file, age);
            return;
        }
        sessions.active.add(file, age);
        match judge_for_archive(&facts, &policy) {
            Ok(()) => {
                sessions.archive_candidates.count += 1;
                sessions.archive_candidates.bytes += file.size;
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
    let (inv, (databases, log_databases), (processes, worktree_facts)) =
        std::thread::scope(|scope| {
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
            )
        });
    sessions.large.sort_by_key(|l| std::cmp::Reverse(l.bytes));
    if let Some(rows) = &rows {
        let mut missing: Vec<DriftItem> = rows
            .values()
            .filter(|r| !seen_ids.contains(&r.id) && !Path::new(&r.rollout_path).exists())
            .map(|r| DriftItem {
                id: r.id.clone(),
                rollout_path: r.rollout_path.clone(),
            })
            .collect();
        missing.sort_by(|a, b| a.id.cmp(&b.id));
        index_report.rows_missing_transcript = missing;
        // Only a home whose rows disagree with its transcripts pays for the second look
        // that planning a repair needs.
        let a_row_lost_its_file = rows.values().any(|r| {
            let named = Path::new(&r.rollout_path);
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

    InspectData {
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
    }
}

/// Every `*.sqlite` directly in the home: where Codex keeps its databases.
fn top_level_databases(home: &CodexHome) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(&home.root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_type().is_ok_and(|t| t.is_file())
                        && e.file_name().to_string_lossy().ends_with(".sqlite")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(wal_path(db))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn is_log_database(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("logs_"))
}

const NOT_CHECKED_WHILE_WRITTEN: &str = "not checked: Codex is writing it";

/// Size and mtime of a database and its WAL: what a writer changes.
fn on_disk_state(db: &Path) -> [Option<(u64, std::time::SystemTime)>; 2] {
    [db.to_path_buf(), wal_path(db)].map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)))
    })
}

/// An `immutable` read ignores Codex's locks, so a checkpoint landing while it reads looks
/// like damage: a database that changed meanwhile was not checked, and is not called damaged.
fn discount_if_written_meanwhile(
    report: &mut DatabaseReport,
    before: [Option<(u64, std::time::SystemTime)>; 2],
    after: [Option<(u64, std::time::SystemTime)>; 2],
) {
    if report.integrity != "ok" && before != after {
        report.integrity = NOT_CHECKED_WHILE_WRITTEN.into();
        report.problems =
            vec!["it changed while being read; check again once Codex is closed".into()];
    }
}

/// Checks one database and, for a log database, counts its rows on the same connection
/// (opening one with a pending WAL means copying it, so it is opened once).
fn check_database(
    path: &Path,
    depth: DatabaseDepth,
    large_log_bytes: u64,
) -> (DatabaseReport, Option<LogDatabase>) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let wal_bytes = wal_bytes(path);
    let is_log = is_log_database(path);
    let check = if depth == DatabaseDepth::Survey && is_log {
        IntegrityCheck::QuickCheck
    } else {
        IntegrityCheck::IntegrityCheck
    };
    let mut report = DatabaseReport {
        path: path.display().to_string(),
        bytes,
        wal_bytes,
        integrity: "unreadable".into(),
        check,
        problems: Vec::new(),
        snapshot: None,
    };
    let mut rows = None;
    let state_before = on_disk_state(path);
    match sqlite_read::open(path) {
        Err(e) => report.problems.push(format!("{e:#}")),
        Ok(db) => {
            report.snapshot = Some(db.snapshot.clone());
            match sqlite_check::problems(&db.conn, check) {
                Ok(p) if p.is_empty() => report.integrity = "ok".into(),
                Ok(p) => {
                    report.integrity = "failed".into();
                    report.problems = p.into_iter().take(10).collect();
                }
                Err(e) => report.problems.push(format!("{e:#}")),
            }
            discount_if_written_meanwhile(&mut report, state_before, on_disk_state(path));
            if is_log {
                rows = db
                    .conn
                    .query_row("SELECT COUNT(*) FROM logs", [], |r| r.get(0))
                    .ok();
            }
        }
    }
    let log = is_log.then(|| LogDatabase {
        path: report.path.clone(),
        bytes,
        wal_bytes,
        rows,
        over_threshold: bytes + wal_bytes >= large_log_bytes,
    });
    (report, log)
}

pub fn render(home: &CodexHome, data: &InspectData, args: &InspectArgs) -> Report {
    let mut r = Report::spec_shaped("inspect", "inspect");
    let rel = |p: &str| relative_to(home, Path::new(p));
    let hot = report::OBSERVED;

    if data.codex_running {
        for p in data
            .processes
            .iter()
            .filter(|p| p.kind != ProcessKind::DevServer && p.uses_this_home)
        {
            r.push(hot, format!("Codex is running: {}", processes::describe(p)));
        }
    }
    r.extend(hot, size_lines(home, data, 6));
    let s = &data.sessions;
    r.push(
        hot,
        format!(
            "sessions/ - {} transcripts, {}; archived_sessions/ - {}, {}",
            s.active.count,
            human_bytes(s.active.bytes),
            s.archived.count,
            human_bytes(s.archived.bytes)
        ),
    );
    if !s.large.is_empty() {
        let top: Vec<String> = s
            .large
            .iter()
            .take(3)
            .map(|l| format!("{} ({})", rel(&l.path), human_bytes(l.bytes)))
            .collect();
        r.push(
            hot,
            format!(
                "{} transcripts over {} - largest: {}",
                s.large.len(),
                human_bytes(s.large_threshold_bytes),
                top.join(", ")
            ),
        );
    }
    let protected: Vec<String> = s
        .protected
        .iter()
        .map(|(k, v)| format!("{} {k}", v.count))
        .collect();
    r.push(
        hot,
        format!(
            "{} sessions ({}) idle for {} or more are archive candidates; kept: {}",
            s.archive_candidates.count,
            human_bytes(s.archive_candidates.bytes),
            human_age(s.min_age_secs),
            if protected.is_empty() {
                "none".into()
            } else {
                protected.join(", ")
            }
        ),
    );
    for l in &data.logs.large_files {
        r.push(
            hot,
            format!(
                "{} - {} log, last written {} ago",
                rel(&l.path),
                human_bytes(l.bytes),
                human_age(l.age_secs)
            ),
        );
    }
    for db in &data.logs.databases {
        r.push(
            hot,
            format!(
                "{} - {} (+{} WAL), {} log rows{}",
                rel(&db.path),
                human_bytes(db.bytes),
                human_bytes(db.wal_bytes),
                db.rows.map_or("?".into(), |n| n.to_string()),
                if db.over_threshold {
                    format!(", over {}", human_bytes(args.large_log_bytes))
                } else {
                    String::new()
                }
            ),
        );
    }
    for w in &data.worktrees {
        r.push(
            hot,
            format!(
                "{} - {}, {}, {:?}, {:?}{}",
                rel(&w.path),
                human_bytes(w.bytes),
                w.age_secs.map_or("age unknown".into(), |a| format!(
                    "last modified {} ago",
                    human_age(a)
                )),
                w.registration,
                w.status,
                if w.old { ", older than 10 days" } else { "" }
            ),
        );
    }
    if let Some(rel_report) = &data.releases {
        let old: Vec<&ReleaseReport> = rel_report
            .releases
            .iter()
            .filter(|x| !x.is_current)
            .collect();
        match &rel_report.current {
            Some(cur) if !old.is_empty() => r.push(
                hot,
                format!(
                    "{} old daemon releases ({}) beside the current {}",
                    old.len(),
                    human_bytes(rel_report.old_bytes),
                    cur
                ),
            ),
            None if !rel_report.releases.is_empty() => r.push(
                hot,
                format!(
                    "{} daemon releases; which is current cannot be told, so none is called old",
                    rel_report.releases.len()
                ),
            ),
            _ => {}
        }
    }
    if !data.config.exists {
        r.push(hot, "config.toml - absent");
    } else if !data.config.parses {
        r.push(
            hot,
            format!(
                "config.toml - does not parse: {}",
                data.config.error.clone().unwrap_or_default()
            ),
        );
    }
    let dead: Vec<&str> = data
        .config
        .projects
        .iter()
        .filter(|p| p.state == ProjectState::Missing)
        .map(|p| p.path.as_str())
        .collect();
    if !dead.is_empty() {
        r.push(
            hot,
            format!(
                "config.toml - {} [projects] entries name folders that no longer exist: {}",
                dead.len(),
                dead.join(", ")
            ),
        );
    }
    let ix = &data.thread_index;
    match ix.state.as_str() {
        "not_understood" => r.push(
            hot,
            format!(
                "thread index {} not understood: {}",
                ix.path.clone().unwrap_or_default(),
                ix.reason.clone().unwrap_or_default()
            ),
        ),
        "understood" => {
            let drift = ix.rows_missing_transcript.len()
                + ix.transcripts_without_row.len()
                + ix.archived_rows_under_sessions.len()
                + ix.active_rows_under_archive.len();
            if drift > 0 {
                r.push(
                    hot,
                    format!(
                        "thread index drift: {} rows without a transcript, {} transcripts without a row, {} rows archived but under sessions/, {} active but under archived_sessions/",
                        ix.rows_missing_transcript.len(),
                        ix.transcripts_without_row.len(),
                        ix.archived_rows_under_sessions.len(),
                        ix.active_rows_under_archive.len()
                    ),
                );
            }
        }
        _ => {}
    }
    for db in data.databases.iter().filter(|d| d.integrity != "ok") {
        r.push(
            hot,
            format!(
                "{} - integrity {}: {}",
                rel(&db.path),
                db.integrity,
                db.problems.first().cloned().unwrap_or_default()
            ),
        );
    }
    for p in data
        .processes
        .iter()
        .filter(|p| p.kind == ProcessKind::DevServer)
    {
        r.push(
            hot,
            format!(
                "dev server pid {} ({} old): {}",
                p.pid,
                human_age(p.age_secs),
                p.command
            ),
        );
    }
    for f in data.findings.iter().take(20) {
        r.push(hot, format!("{} - {}", rel(&f.path), f.problem));
    }
    if data.findings.len() > 20 {
        r.push(
            hot,
            format!(
                "... and {} more findings (all in --json)",
                data.findings.len() - 20
            ),
        );
    }

    if let Some(plan) = &data.thread_index.repair {
        for fix in &plan.fixes {
            r.push(
                report::PROPOSED,
                format!(
                    "repair {}: codex-maint repair --dry-run",
                    row_repair::describe(home, fix)
                ),
            );
        }
        for left in &plan.left_alone {
            r.push(
                report::RESIDUAL_RISK,
                format!(
                    "thread {}'s row ({}) disagrees with the disk and repair leaves it alone: {}",
                    left.thread_id, left.rollout_path, left.why
                ),
            );
        }
    }
    if s.archive_candidates.count > 0 {
        r.push(
            report::PROPOSED,
            format!(
                "review archiving {} idle sessions ({}): codex-maint archive --older-than {} --dry-run",
                s.archive_candidates.count,
                human_bytes(s.archive_candidates.bytes),
                human_age(s.min_age_secs)
            ),
        );
    }
    let c = &data.compression;
    if c.compressed.count > 0 {
        r.push(
            hot,
            format!(
                "{} transcripts stored compressed: {} on disk, {} plain",
                c.compressed.count,
                human_bytes(c.compressed.stored_bytes),
                human_bytes(c.compressed.plain_bytes)
            ),
        );
    }
    if let Some(e) = &c.estimate {
        let line = format!(
            "{} archived transcripts ({}) idle for {} or more could be compressed to about {}, freeing about {} ({})",
            c.candidates.count,
            human_bytes(c.candidates.plain_bytes),
            human_age(c.min_idle_secs),
            human_bytes(e.estimated_stored_bytes),
            human_bytes(e.estimated_freed_bytes),
            e.method
        );
        if c.gate.allowed {
            r.push(
                report::PROPOSED,
                format!("{line}: codex-maint cleanup --only compress --dry-run"),
            );
        } else {
            r.push(
                report::RESIDUAL_RISK,
                format!("{line}, but not now: {}", c.gate.reason),
            );
        }
    }
    r.push(report::COMPLETED, "none: inspect only reads");
    r.extend(report::NOT_TOUCHED, data.not_touched.iter().cloned());
    r.push(report::BACKUPS, "not created because this was inspect-only");
    r.push(
        report::VERIFICATION,
        format!(
            "walked {} once without following symlinks; read the first line of {} transcripts",
            home.display(),
            s.active.count + s.archived.count
        ),
    );
    for db in &data.databases {
        r.push(
            report::VERIFICATION,
            format!(
                "PRAGMA {} {}: {}",
                db.check.pragma(),
                rel(&db.path),
                db.integrity
            ),
        );
    }
    if !data.worktrees.is_empty() {
        r.push(report::VERIFICATION, format!("git --no-optional-locks status in {} worktrees; git worktree list of their repositories", data.worktrees.len()));
    }
    r.push(
        report::VERIFICATION,
        format!(
            "process table read: {} Codex processes, {} dev servers, {} live thread-writer locks",
            data.processes
                .iter()
                .filter(|p| p.kind != ProcessKind::DevServer)
                .count(),
            data.processes
                .iter()
                .filter(|p| p.kind == ProcessKind::DevServer)
                .count(),
            data.live_thread_locks.len()
        ),
    );
    r.push(report::VERIFICATION, "no files changed: databases were read immutable or from a private copy, and no store was created");
    if data.codex_running {
        r.push(
            report::RESIDUAL_RISK,
            "Codex is running: any cleanup must wait until it is closed",
        );
    }
    if !data.looks_like_codex_home {
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "{} does not look like a Codex home; nothing here should be cleaned up",
                home.display()
            ),
        );
    }
    if !data.findings.is_empty() {
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "{} findings above need a person's look",
                data.findings.len()
            ),
        );
    }
    r.data = serde_json::to_value(data).unwrap_or_default();
    r
}
/// The home's total and its `most` heaviest top-level entries, one line each: the size
/// lines inspect reports and cleanup repeats as what it observed.
pub fn size_lines(home: &CodexHome, data: &InspectData, most: usize) -> Vec<String> {
    let mut lines = vec![format!(
        "{} - {} on disk in {} files (total)",
        home.display(),
        human_bytes(data.total.disk_bytes),
        data.total.files
    )];
    for e in data
        .top_level
        .iter()
        .take(most)
        .filter(|e| e.size.disk_bytes > 0)
    {
        let what = if e.kind == "dir" {
            format!(
                "/ - {} in {} files",
                human_bytes(e.size.disk_bytes),
                e.size.files
            )
        } else {
            format!(" - {}", human_bytes(e.size.disk_bytes))
        };
        lines.push(format!("{}{what}", e.name));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> DatabaseReport {
        DatabaseReport {
            path: "state_5.sqlite".into(),
            bytes: 4096,
            wal_bytes: 0,
            integrity: "failed".into(),
            check: IntegrityCheck::IntegrityCheck,
            problems: vec!["page 3 is never used".into()],
            snapshot: None,
        }
    }

    #[test]
    fn a_failure_while_the_database_changed_is_not_called_damage() {
        let t = std::time::SystemTime::UNIX_EPOCH;
        let before = [Some((4096, t)), None];
        let written = [Some((4096, t)), Some((8272, t))];

        let mut caught_mid_write = failed();
        discount_if_written_meanwhile(&mut caught_mid_write, before, written);
        assert_eq!(caught_mid_write.integrity, NOT_CHECKED_WHILE_WRITTEN);

        let mut really_damaged = failed();
        discount_if_written_meanwhile(&mut really_damaged, before, before);
        assert_eq!(really_damaged.integrity, "failed");
        assert_eq!(really_damaged.problems, failed().problems);

        let mut fine = DatabaseReport {
            integrity: "ok".into(),
            problems: Vec::new(),
            ..failed()
        };
        discount_if_written_meanwhile(&mut fine, before, written);
        assert_eq!(fine.integrity, "ok");
    }
}
