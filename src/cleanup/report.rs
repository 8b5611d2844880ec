//! How a cleanup's plan and its results read in a report.

use anyhow::Result;
use std::path::Path;

use super::frees::plan_frees;
use super::{Action, Kept, Plan};
use crate::clock::human_bytes;
use crate::home::{CodexHome, relative_to};
use crate::ops::OpKind;
use crate::report::{self, Report};
use crate::survey::{self, InspectData};

/// What a plan says it will do; `verb` is what a report says was done.
fn future_verb(a: &Action) -> &'static str {
    match a.kind {
        OpKind::ArchiveSession => "will archive",
        OpKind::CompressSession if a.category == "sessions" => "will archive and compress",
        OpKind::CompressSession => "will compress",
        OpKind::StoreFiles => "will rotate into the store",
        OpKind::StoreDir => "will move into the store",
        OpKind::MoveWorktree => "will move worktree",
        OpKind::EditConfig => "will prune dead projects from",
        OpKind::ReclaimDatabase => "will reclaim the free pages of",
        OpKind::RetireSession => "will retire into the store",
        _ => "will change",
    }
}

pub(super) fn verb(a: &Action) -> &'static str {
    match a.kind {
        OpKind::ArchiveSession => "archived",
        OpKind::CompressSession if a.category == "sessions" => "archived and compressed",
        OpKind::CompressSession => "compressed",
        OpKind::StoreFiles => "rotated into the store",
        OpKind::StoreDir => "moved into the store",
        OpKind::MoveWorktree => "moved worktree",
        OpKind::EditConfig => "pruned dead projects from",
        OpKind::RetireSession => "retired into the store",
        OpKind::ReclaimDatabase => "reclaimed the free pages of",
        _ => "changed",
    }
}

pub(super) fn observed(r: &mut Report, home: &CodexHome, data: &InspectData) {
    r.extend(report::OBSERVED, survey::size_lines(home, data, 5));
}

pub(super) fn kept_lines(r: &mut Report, home: &CodexHome, plan: &Plan) {
    let recent = plan
        .kept
        .iter()
        .filter(|k| k.reason.starts_with("recent"))
        .count();
    if recent > 0 {
        r.push(
            report::NOT_TOUCHED,
            format!("{recent} recent sessions, younger than the minimum age"),
        );
    }
    let others: Vec<&Kept> = plan
        .kept
        .iter()
        .filter(|k| !k.reason.starts_with("recent"))
        .collect();
    for k in others.iter().take(30) {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "{}: {} - {}",
                k.category,
                relative_to(home, Path::new(&k.path)),
                k.reason
            ),
        );
    }
    if others.len() > 30 {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "... and {} more kept items (all in --json)",
                others.len() - 30
            ),
        );
    }
}

/// What a plan proposes, for a person: sessions and transcripts by their count, every
/// other action one by one, and what each category frees.
pub fn plan_report(home: &CodexHome, plan: &Plan, data: &InspectData) -> Result<Report> {
    let frees = plan_frees(plan, data);
    let mut r = Report::spec_shaped("cleanup", "cleanup");
    observed(&mut r, home, data);
    for c in &plan.categories {
        let (count, bytes) = plan.actions.tally(c);
        if count == 0 {
            continue;
        }
        let freed = frees.of(c);
        if c == "sessions" && count > 10 {
            let (packed, packed_bytes) = plan.actions.tally_of(c, OpKind::CompressSession);
            if packed > 0 {
                r.push(report::PROPOSED, format!("sessions: will archive and compress {packed} idle sessions ({}) into archived_sessions/ as .jsonl.zst, each with its thread row; {freed}", human_bytes(packed_bytes)));
            }
            if count > packed {
                r.push(report::PROPOSED, format!("sessions: will archive {} idle sessions ({}) to archived_sessions/, each with its thread row; frees 0 (moved within the home)", count - packed, human_bytes(bytes - packed_bytes)));
            }
            continue;
        }
        // One line per retired session was 74,736 lines and a third of the dry run's peak
        // memory at 100,000 sessions; `--json`, `sessions` and `browse` name each one.
        if c == "retire" && count > 10 {
            r.push(report::PROPOSED, format!("retire: will retire {count} idle sessions ({}) out of Codex's view into the store, transcript and thread rows, each back with `restore <id>`; {freed}", human_bytes(bytes)));
            continue;
        }
        if c == "compress" && count > 10 {
            r.push(report::PROPOSED, format!("compress: will compress {count} idle archived transcripts ({}) in place as .jsonl.zst, each with its thread row; {freed}", human_bytes(bytes)));
            continue;
        }
        for a in plan.actions.first_of(c, count as usize)? {
            // A reclaim names no size of its own: what it frees is in its reason.
            let size = match a.kind {
                OpKind::ReclaimDatabase => String::new(),
                _ => format!(" ({})", human_bytes(a.bytes)),
            };
            r.push(
                report::PROPOSED,
                format!(
                    "{}: {} {}{size} - {}",
                    c,
                    future_verb(&a),
                    relative_to(home, Path::new(&a.path)),
                    a.reason
                ),
            );
        }
        r.push(
            report::PROPOSED,
            format!(
                "{c}: {count} actions ({}) in all; {freed}",
                human_bytes(bytes)
            ),
        );
    }
    r.push(report::PROPOSED, frees.total_line(plan));
    kept_lines(&mut r, home, plan);
    if data.codex_running {
        r.push(
            report::RESIDUAL_RISK,
            "Codex is running: close it before applying this plan",
        );
    }
    Ok(r)
}
