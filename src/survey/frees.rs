//! What a default cleanup would give back, step by step, worked out from the survey alone:
//! the headline `inspect` opens with, and the one command it proposes.

use serde::Serialize;

use super::model::InspectData;
use crate::clock::human_bytes;
use crate::home::config::ProjectState;
use crate::home::worktrees::{Cleanliness, Registration};
use crate::policy::CLEANUP_CATEGORIES;
use crate::policy::reclaim::{
    RECLAIM_MIN_FREE_BYTES, RECLAIM_MIN_FREE_PERCENT, is_reclaimable_database, passes,
};

#[derive(Debug, Default, Serialize)]
pub struct Frees {
    /// The home on disk, as the walk measured it.
    pub home_bytes: u64,
    /// Exact and estimated steps together: what `next_command` would give back.
    pub cleanup_total: u64,
    pub archive: ArchiveStep,
    pub compress: CompressStep,
    pub retire: RetireStep,
    pub logs_and_releases: LogsAndReleases,
    /// Counted in `cleanup_total` for the part cleanup's `reclaim` gives back.
    pub database_free_pages: DatabaseFreePages,
    /// The categories that would do something, in cleanup's order.
    pub categories: Vec<String>,
    /// `codex-maint cleanup --dry-run`, narrowed to `categories` unless they are all.
    pub next_command: Option<String>,
}

/// Sessions moved to `archived_sessions/`: a move within the home frees nothing.
#[derive(Debug, Default, Serialize)]
pub struct ArchiveStep {
    pub sessions: u64,
    pub bytes: u64,
    pub frees: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CompressStep {
    /// Plain transcripts compressed: idle sessions as they are archived, and archived ones.
    pub transcripts: u64,
    pub plain_bytes: u64,
    pub estimated_frees: u64,
    /// How the estimate was made (`data.compression.estimate.method`).
    pub method: Option<String>,
    /// Whether a cleanup would compress now (the compression gate); when not,
    /// `estimated_frees` is not in `cleanup_total`.
    pub allowed: bool,
    pub reason: String,
}

/// Sessions taken out of Codex's view into the store: idle past the retire age, and the
/// oldest beyond the folder cap. Their transcripts leave the home as they lie (archive
/// candidates among them are retired plain, so compression no longer counts them).
#[derive(Debug, Default, Serialize)]
pub struct RetireStep {
    pub sessions: u64,
    pub frees: u64,
    pub by_age: u64,
    pub beyond_cap: u64,
    /// Plain bytes of archive candidates retired rather than compressed.
    #[serde(skip)]
    pub not_compressed_plain: u64,
}

impl RetireStep {
    /// What a default cleanup's `retire` would choose, as `cleanup::retire_plan::choose`
    /// does (forks aside: a parent whose fork stays is kept, so this is "about").
    fn of(s: &super::model::SessionsReport) -> RetireStep {
        let mut step = RetireStep::default();
        let (old, mut rest): (Vec<_>, Vec<_>) = s
            .retire_eligible
            .iter()
            .partition(|e| e.age_secs >= s.retire_min_age_secs);
        let take = |e: &super::model::RetireEligible, step: &mut RetireStep| {
            step.sessions += 1;
            step.frees += e.bytes;
            if e.archive_candidate {
                step.not_compressed_plain += e.bytes;
            }
        };
        for e in &old {
            step.by_age += 1;
            take(e, &mut step);
        }
        let archived_after = (s.archived.count + s.archive_candidates.count) as usize;
        let mut staying = archived_after.saturating_sub(old.len());
        rest.sort_by_key(|e| std::cmp::Reverse(e.age_secs));
        for e in rest {
            if staying <= s.retire_folder_cap {
                break;
            }
            step.beyond_cap += 1;
            take(&e, &mut step);
            staying -= 1;
        }
        step
    }
}

/// Bytes that move out of the home into the store: exact, not estimated.
#[derive(Debug, Default, Serialize)]
pub struct LogsAndReleases {
    pub logs: u64,
    pub log_databases: u64,
    pub old_releases: u64,
    pub frees: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct DatabaseFreePages {
    pub databases: u64,
    pub bytes: u64,
    /// Of them, what cleanup's `reclaim` vacuums (`policy::reclaim`): these databases, and
    /// their free bytes as measured now.
    pub reclaimed: Vec<String>,
    pub reclaimed_bytes: u64,
}

impl Frees {
    pub fn of(data: &InspectData) -> Frees {
        let c = &data.compression;
        let retire = RetireStep::of(&data.sessions);
        let to_compress_plain = c.candidates.plain_bytes + c.archive_candidates.plain_bytes;
        let compress = CompressStep {
            transcripts: c.candidates.count + c.archive_candidates.count,
            plain_bytes: to_compress_plain,
            // Per category, as the cleanup's plan reckons it (sessions, compress); what
            // retire takes plain is not compressed first.
            estimated_frees: c.estimate.as_ref().map_or(0, |e| {
                (e.freed_from(c.archive_candidates.plain_bytes)
                    + e.freed_from(c.candidates.plain_bytes))
                .saturating_sub(e.freed_from(retire.not_compressed_plain))
            }),
            method: c.estimate.as_ref().map(|e| e.method.clone()),
            allowed: c.gate.allowed,
            reason: c.gate.reason.clone(),
        };
        let over: Vec<u64> = data
            .logs
            .databases
            .iter()
            .filter(|d| d.over_threshold)
            .map(|d| d.bytes + d.wal_bytes)
            .collect();
        let old_releases = data.releases.as_ref().map_or(0, |r| {
            r.releases
                .iter()
                .filter(|x| r.current.is_some() && !x.is_current)
                .count() as u64
        });
        let logs_and_releases = LogsAndReleases {
            logs: data.logs.large_files.len() as u64,
            log_databases: over.len() as u64,
            old_releases,
            frees: data.logs.large_files.iter().map(|l| l.bytes).sum::<u64>()
                + over.iter().sum::<u64>()
                + data.releases.as_ref().map_or(0, |r| r.old_bytes),
        };
        let with_free_pages: Vec<u64> = data
            .databases
            .iter()
            .filter_map(|d| d.free_pages.map(|f| f.bytes))
            .filter(|&b| b > 0)
            .collect();
        let reclaimed = reclaimed_by_cleanup(data);
        let categories =
            categories_that_apply(data, &compress, !reclaimed.is_empty(), retire.sessions > 0);
        let next_command = (!categories.is_empty()).then(|| {
            if categories.len() == CLEANUP_CATEGORIES.len() {
                "codex-maint cleanup --dry-run".to_string()
            } else {
                format!(
                    "codex-maint cleanup --dry-run --only {}",
                    categories.join(",")
                )
            }
        });
        Frees {
            home_bytes: data.total.disk_bytes,
            cleanup_total: logs_and_releases.frees
                + retire.frees
                + reclaimed.iter().map(|(_, b)| b).sum::<u64>()
                + if compress.allowed {
                    compress.estimated_frees
                } else {
                    0
                },
            archive: ArchiveStep {
                sessions: data.sessions.archive_candidates.count,
                bytes: data.sessions.archive_candidates.bytes,
                frees: 0,
            },
            compress,
            retire,
            logs_and_releases,
            database_free_pages: DatabaseFreePages {
                databases: with_free_pages.len() as u64,
                bytes: with_free_pages.iter().sum(),
                reclaimed_bytes: reclaimed.iter().map(|(_, b)| b).sum(),
                reclaimed: reclaimed.into_iter().map(|(name, _)| name).collect(),
            },
            categories,
            next_command,
        }
    }

    /// The headline's lines: the total, then each step.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "a default cleanup would free about {} of the home's {} on disk:",
            human_bytes(self.cleanup_total),
            human_bytes(self.home_bytes)
        )];
        lines.push(format!(
            "  archive: moves {} idle sessions ({}) to archived_sessions/, frees 0",
            self.archive.sessions,
            human_bytes(self.archive.bytes)
        ));
        let c = &self.compress;
        lines.push(match (&c.method, c.allowed) {
            (None, _) => "  compress: nothing to compress, frees 0".to_string(),
            (Some(method), true) => format!(
                "  compress: frees about {} of {} in {} transcripts, estimated from a sample ({method})",
                human_bytes(c.estimated_frees),
                human_bytes(c.plain_bytes),
                c.transcripts
            ),
            (Some(_), false) => format!(
                "  compress: would free about {} of {} in {} transcripts, but not now ({}): not counted",
                human_bytes(c.estimated_frees),
                human_bytes(c.plain_bytes),
                c.transcripts,
                c.reason
            ),
        });
        let r = &self.retire;
        lines.push(if r.sessions == 0 {
            "  retire: no archived session is idle past the retire age or beyond the folder cap, frees 0".to_string()
        } else {
            format!(
                "  retire: frees {} of {} sessions taken out of Codex's view into the store, restorable ({} idle past the retire age, {} the oldest beyond the folder cap)",
                human_bytes(r.frees),
                r.sessions,
                r.by_age,
                r.beyond_cap
            )
        });
        let l = &self.logs_and_releases;
        lines.push(format!(
            "  logs and releases: frees {} ({} logs and {} log databases over the threshold, {} old releases), moved into the store",
            human_bytes(l.frees),
            l.logs,
            l.log_databases,
            l.old_releases
        ));
        let f = &self.database_free_pages;
        lines.push(if f.reclaimed.is_empty() {
            format!(
                "  database free pages: {} in {} databases; reclaim: frees 0 (none of thread history or logs has at least {}% and {} free)",
                human_bytes(f.bytes),
                f.databases,
                RECLAIM_MIN_FREE_PERCENT,
                human_bytes(RECLAIM_MIN_FREE_BYTES)
            )
        } else {
            format!(
                "  database free pages: {} in {} databases; reclaim: frees about {} of them, vacuuming {} (at least {}% and {} free)",
                human_bytes(f.bytes),
                f.databases,
                human_bytes(f.reclaimed_bytes),
                f.reclaimed.join(", "),
                RECLAIM_MIN_FREE_PERCENT,
                human_bytes(RECLAIM_MIN_FREE_BYTES)
            )
        });
        lines
    }
}

/// Each cleanup category with something to do, as cleanup would plan it. Sessions are
/// compressed as they are archived only when `compress` is chosen too, so it goes with
/// them whenever the gate is open.
fn categories_that_apply(
    data: &InspectData,
    compress: &CompressStep,
    reclaim: bool,
    retire: bool,
) -> Vec<String> {
    let sessions = data.sessions.archive_candidates.count > 0;
    let applies = |category: &str| match category {
        "sessions" => sessions,
        "compress" => compress.allowed && compress.transcripts > 0,
        "logs" => {
            !data.logs.large_files.is_empty()
                || data.logs.databases.iter().any(|d| d.over_threshold)
        }
        "worktrees" => data.worktrees.iter().any(|w| {
            w.old && w.registration == Registration::Registered && w.status == Cleanliness::Clean
        }),
        "releases" => data
            .releases
            .as_ref()
            .is_some_and(|r| r.current.is_some() && r.releases.iter().any(|x| !x.is_current)),
        "reclaim" => reclaim,
        "retire" => retire,
        "projects" => {
            data.config.parses
                && data
                    .config
                    .projects
                    .iter()
                    .any(|p| p.state == ProjectState::Missing)
        }
        _ => false,
    };
    CLEANUP_CATEGORIES
        .iter()
        .filter(|c| applies(c))
        .map(|c| c.to_string())
        .collect()
}

/// The databases cleanup's `reclaim` would vacuum, by file name, with their free bytes: as
/// its planner decides, leaving out a log database the `logs` step moves whole.
fn reclaimed_by_cleanup(data: &InspectData) -> Vec<(String, u64)> {
    data.databases
        .iter()
        .filter(|d| {
            !data
                .logs
                .databases
                .iter()
                .any(|l| l.over_threshold && l.path == d.path)
        })
        .filter_map(|d| {
            let name = std::path::Path::new(&d.path).file_name()?.to_string_lossy();
            let free = d.free_pages?.bytes;
            (is_reclaimable_database(&name) && passes(d.bytes, free))
                .then(|| (name.into_owned(), free))
        })
        .collect()
}
