//! The survey as SPEC.md's report: what `inspect` prints, and what the scheduled run files.

use std::path::Path;

use super::SurveyOptions;
use super::model::{InspectData, ReleaseReport};
use crate::clock::{human_age, human_bytes};
use crate::home::config::ProjectState;
use crate::home::processes::{self, ProcessKind};
use crate::home::{CodexHome, relative_to};
use crate::ops::row_repair;
use crate::report::{self, Report};

pub fn render(home: &CodexHome, data: &InspectData, args: &SurveyOptions) -> Report {
    let mut r = Report::spec_shaped("inspect", "inspect");
    let rel = |p: &str| relative_to(home, Path::new(p));
    let hot = report::OBSERVED;

    r.extend(hot, data.frees.lines());
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
    r.extend(hot, data.listing_cap.lines());
    if let Some(history) = &data.thread_history {
        r.push(hot, history.line());
    }
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
    if let Some(command) = &data.frees.next_command {
        r.push(
            report::PROPOSED,
            format!(
                "{command}: the one command that does the most ({}), freeing about {}; it shows the plan and changes nothing",
                data.frees.categories.join(", "),
                human_bytes(data.frees.cleanup_total)
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
    if c.estimate.is_some() && !c.gate.allowed {
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "{} transcripts could be compressed, but not now: {}",
                data.frees.compress.transcripts, c.gate.reason
            ),
        );
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
    r.push(
        report::VERIFICATION,
        "free pages: PRAGMA freelist_count and page_size of each database, on the same read-only connection",
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
