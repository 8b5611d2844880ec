//! SPEC.md's validation after a cleanup: the backup, each applied op, the config, the
//! databases, the dirty worktrees left alone, and the sizes before and after.

use anyhow::Result;
use serde::Serialize;
use std::path::Path;

use crate::clock::human_bytes;
use crate::home::worktrees::Cleanliness;
use crate::home::{CodexHome, relative_to};
use crate::report::{self, Report};
use crate::survey::InspectData;

#[derive(Debug, Serialize)]
pub(super) struct CategorySize {
    category: &'static str,
    before: u64,
    after: u64,
}

pub(super) fn sizes(before: &InspectData, after: &InspectData) -> Vec<CategorySize> {
    let top = |d: &InspectData, name: &str| {
        d.top_level
            .iter()
            .find(|e| e.name == name)
            .map_or(0, |e| e.size.disk_bytes)
    };
    let logs = |d: &InspectData| {
        d.logs.large_files.iter().map(|l| l.bytes).sum::<u64>()
            + d.logs
                .databases
                .iter()
                .map(|x| x.bytes + x.wal_bytes)
                .sum::<u64>()
    };
    let releases = |d: &InspectData| {
        d.releases
            .as_ref()
            .map_or(0, |r| r.releases.iter().map(|x| x.bytes).sum())
    };
    vec![
        CategorySize {
            category: "sessions",
            before: before.sessions.active.bytes,
            after: after.sessions.active.bytes,
        },
        CategorySize {
            category: "archived_sessions",
            before: before.sessions.archived.bytes,
            after: after.sessions.archived.bytes,
        },
        CategorySize {
            category: "logs",
            before: logs(before),
            after: logs(after),
        },
        CategorySize {
            category: "worktrees",
            before: top(before, "worktrees"),
            after: top(after, "worktrees"),
        },
        CategorySize {
            category: "releases",
            before: releases(before),
            after: releases(after),
        },
        CategorySize {
            category: "home",
            before: before.total.disk_bytes,
            after: after.total.disk_bytes,
        },
    ]
}

/// Whether cleanup left `config.toml` parsing. A config that did not parse before the run
/// was never edited (the planner proposes no edit to it), so its breakage is the user's to
/// fix and is said as such, not counted against the run.
fn config_check(r: &mut Report, before: &InspectData, after: &InspectData) -> Option<String> {
    if !after.config.exists {
        return None;
    }
    if after.config.parses {
        r.push(report::VERIFICATION, "config.toml parses: ok");
        return None;
    }
    if before.config.exists && !before.config.parses {
        r.push(
            report::VERIFICATION,
            "config.toml parses: no, as before this run, which did not edit it",
        );
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "config.toml did not parse before this cleanup and was left as it was ({}); Codex may not start until it is fixed",
                before.config.error.as_deref().unwrap_or("does not parse")
            ),
        );
        return None;
    }
    r.push(report::VERIFICATION, "config.toml parses: FAILED");
    Some("config.toml does not parse".into())
}

/// SPEC.md "Validation" for cleanup, each check named with its result.
pub(super) fn verify_after(
    r: &mut Report,
    home: &CodexHome,
    store: &crate::store::Store,
    run_id: i64,
    backup_dir: &Path,
    before: &InspectData,
    after: &InspectData,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    match std::fs::read(backup_dir.join(crate::store::backup::MANIFEST_NAME))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::store::backup::Manifest>(&b).ok())
    {
        Some(m) => problems.extend(crate::store::backup::check(backup_dir, &m)?),
        None => problems.push(format!(
            "backup manifest in {} is missing",
            backup_dir.display()
        )),
    }
    r.push(
        report::VERIFICATION,
        format!(
            "backup present at {}: {}",
            backup_dir.display(),
            if problems.is_empty() { "ok" } else { "FAILED" }
        ),
    );

    let (applied, op_problems) = crate::ops::verify_applied_of_run(store, run_id)?;
    r.push(
        report::VERIFICATION,
        format!(
            "{} ops applied, each item at its recorded place with its hash (and thread row): {}",
            applied,
            if op_problems.is_empty() {
                "ok".to_string()
            } else {
                format!("{} problems", op_problems.len())
            }
        ),
    );
    problems.extend(op_problems);

    problems.extend(config_check(r, before, after));
    for db in &after.databases {
        r.push(
            report::VERIFICATION,
            format!(
                "PRAGMA {} {}: {}",
                db.check.pragma(),
                relative_to(home, Path::new(&db.path)),
                db.integrity
            ),
        );
        if db.integrity != "ok" {
            problems.push(format!("{} integrity {}", db.path, db.integrity));
        }
    }
    for w in before
        .worktrees
        .iter()
        .filter(|w| w.status == Cleanliness::Dirty)
    {
        let still = Path::new(&w.path).exists();
        r.push(
            report::VERIFICATION,
            format!(
                "dirty worktree {} untouched: {}",
                relative_to(home, Path::new(&w.path)),
                if still { "ok" } else { "FAILED" }
            ),
        );
        if !still {
            problems.push(format!("dirty worktree {} moved", w.path));
        }
    }
    for s in sizes(before, after) {
        if s.before != s.after {
            r.push(
                report::VERIFICATION,
                format!(
                    "{}: {} -> {}",
                    s.category,
                    human_bytes(s.before),
                    human_bytes(s.after)
                ),
            );
        }
    }
    for p in &problems {
        r.push(report::RESIDUAL_RISK, format!("verification: {p}"));
    }
    Ok(problems)
}
