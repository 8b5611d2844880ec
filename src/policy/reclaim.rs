//! Which of Codex's databases cleanup's `reclaim` vacuums, and when. `inspect`'s headline
//! and cleanup's plan both ask here, so they can never disagree.
//!
//! Only the two that rows leave and Codex never shrinks: `thread_history_N.sqlite` (a copy
//! of every session's items, kept at its size after `codex delete`, openai/codex#45231)
//! and `logs_N.sqlite` (#35823). The thresholds: a quarter of the file free, because less
//! is the churn a database reuses by itself as rows come and go (Codex trims its own log
//! table and writes again into the pages it freed); and 8 MiB, because each reclaim
//! keeps the whole file in the store for undo, which is not worth it for less.

use crate::clock::human_bytes;

pub const RECLAIM_MIN_FREE_PERCENT: u64 = 25;
pub const RECLAIM_MIN_FREE_BYTES: u64 = 8 << 20;

/// Whether `file_name` is a database `reclaim` looks at: `thread_history_N.sqlite` or
/// `logs_N.sqlite`, whatever Codex's schema generation `N` is.
pub fn is_reclaimable_database(file_name: &str) -> bool {
    ["thread_history_", "logs_"].iter().any(|prefix| {
        file_name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(".sqlite"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// What `reclaim` makes of one database: `Ok(reason)` to vacuum it, `Err(reason)` to keep
/// it. `rows_leave` is true when the same plan takes rows out of it first (a retire), so
/// what is free now says nothing of what will be: it is reclaimed, measured when it runs.
pub fn judge_reclaim(file_bytes: u64, free_bytes: u64, rows_leave: bool) -> Result<String, String> {
    let share = free_bytes.saturating_mul(100) / file_bytes.max(1);
    let measured = format!(
        "{} of its {} free ({share}%)",
        human_bytes(free_bytes),
        human_bytes(file_bytes)
    );
    let threshold = format!(
        "at least {RECLAIM_MIN_FREE_PERCENT}% and {} free",
        human_bytes(RECLAIM_MIN_FREE_BYTES)
    );
    let how = "vacuumed with Codex closed (incremental_vacuum where Codex set auto_vacuum incremental, else VACUUM), free pages measured again when it runs, the file kept in the store for undo, its rows checked the same after";
    if passes(file_bytes, free_bytes) {
        Ok(format!(
            "{measured}, over the threshold ({threshold}); {how}"
        ))
    } else if rows_leave {
        Ok(format!(
            "{measured} now, and this plan takes rows out of it first; {how}"
        ))
    } else {
        Err(format!("{measured}: under the threshold ({threshold})"))
    }
}

pub fn passes(file_bytes: u64, free_bytes: u64) -> bool {
    free_bytes >= RECLAIM_MIN_FREE_BYTES
        && free_bytes.saturating_mul(100) >= file_bytes.saturating_mul(RECLAIM_MIN_FREE_PERCENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_thread_history_and_logs_databases_over_both_thresholds_are_reclaimed() {
        assert!(is_reclaimable_database("thread_history_1.sqlite"));
        assert!(is_reclaimable_database("logs_2.sqlite"));
        assert!(is_reclaimable_database("logs_3.sqlite"));
        for other in [
            "state_5.sqlite",
            "logs_.sqlite",
            "logs_2.sqlite-wal",
            "goals_1.sqlite",
        ] {
            assert!(!is_reclaimable_database(other), "{other}");
        }
        let mib = 1u64 << 20;
        assert!(judge_reclaim(100 * mib, 25 * mib, false).is_ok());
        assert!(judge_reclaim(100 * mib, 24 * mib, false).is_err());
        assert!(judge_reclaim(10 * mib, 7 * mib, false).is_err());
        assert!(judge_reclaim(10 * mib, 8 * mib, false).is_ok());
        assert!(judge_reclaim(10 * mib, 0, true).is_ok());
    }
}
