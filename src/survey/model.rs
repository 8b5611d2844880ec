//! The survey's data model: everything a look at a home found. The field names are the
//! `inspect --json` contract (docs/guide.md, "inspect"); `cleanup` plans from the same value.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::home::config::ConfigFacts;
use crate::home::inventory::{Finding, LargeFile, Tally};
use crate::home::processes::FoundProcess;
use crate::home::sqlite_read::Snapshot;
use crate::home::worktrees::{Cleanliness, Registration};
use crate::ops::row_repair::RepairPlan;
use crate::policy::Protection;
use crate::sqlite_check::IntegrityCheck;
use crate::survey::compression::CompressionReport;

/// Everything inspect found; the field names are the `--json` contract (docs/guide.md, "inspect").
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
    /// What a default cleanup would give back, step by step, and the command that does it.
    pub frees: super::frees::Frees,
    /// Folders at or over the 10,000 files Codex lists, and what it no longer lists.
    pub listing_cap: super::listing_cap::ListingCap,
    /// The thread history's weight by thread state, when the home has one.
    pub thread_history: Option<super::history_weight::HistoryWeight>,
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
    pub(super) fn add(&mut self, file: &crate::home::sessions::SessionFile, age: u64) {
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
    /// Sessions a default cleanup's `retire` step may take (archived ones and archive
    /// candidates that pass the archive protections at any age), for `frees` to choose from.
    #[serde(skip)]
    pub retire_eligible: Vec<RetireEligible>,
    pub retire_min_age_secs: u64,
    pub retire_folder_cap: usize,
}

/// One session `retire` may take: how long it has been idle, its bytes as it lies, and
/// its plain bytes when it is still an archive candidate (which it would not compress).
#[derive(Debug, Clone, Copy)]
pub struct RetireEligible {
    pub age_secs: u64,
    pub bytes: u64,
    pub archive_candidate: bool,
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
    /// Pages on SQLite's freelist and their size (`PRAGMA freelist_count`, `page_size`),
    /// read read-only: space only a vacuum gives back, which cleanup does not do.
    pub free_pages: Option<FreePages>,
}

#[derive(Debug, Serialize, Clone, Copy)]
pub struct FreePages {
    pub freelist_count: u64,
    pub page_size: u64,
    pub bytes: u64,
}
