//! The survey of a home: what `inspect` reports and `cleanup` plans from, built from the
//! read-only knowledge in `home` and the decisions in `policy`, below the commands.

pub mod compression;
mod databases;
mod frees;
mod gather;
pub mod history_weight;
pub mod id_prefixes;
pub mod listing_cap;
mod model;
mod render;
pub mod session_list;

pub use databases::DatabaseDepth;
pub use frees::Frees;
pub use gather::gather;
pub use model::*;
pub use render::{render, size_lines};

/// The thresholds a survey reports against: which files are large, which sessions are
/// idle enough to archive or compress, which worktrees are old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyOptions {
    pub large_session_bytes: u64,
    pub large_log_bytes: u64,
    pub min_age_secs: u64,
    pub old_worktree_secs: u64,
    pub handoff_min_bytes: u64,
    pub compress_min_idle_secs: u64,
    /// Archived sessions idle this long leave Codex's view for the store (`retire`).
    pub retire_min_age_secs: u64,
    /// At most this many transcripts stay in `archived_sessions/`: Codex lists only the
    /// first 10,000 files of a folder, so the oldest beyond are retired.
    pub retire_folder_cap: usize,
}

impl Default for SurveyOptions {
    fn default() -> Self {
        SurveyOptions {
            large_session_bytes: 10 << 20,
            large_log_bytes: 50 << 20,
            min_age_secs: crate::policy::DEFAULT_MIN_AGE_SECS,
            old_worktree_secs: 10 * 86_400,
            handoff_min_bytes: crate::policy::DEFAULT_HANDOFF_MIN_BYTES,
            compress_min_idle_secs: crate::policy::DEFAULT_COMPRESS_MIN_IDLE_SECS,
            retire_min_age_secs: crate::policy::DEFAULT_RETIRE_MIN_AGE_SECS,
            retire_folder_cap: crate::policy::DEFAULT_RETIRE_FOLDER_CAP,
        }
    }
}
