//! `repair`: makes Codex's thread index agree with the transcripts on disk, as a journaled,
//! undoable run: rows that lost their file are pointed at it, archived flags that disagree
//! with the folder are set as Codex's archive / unarchive set them. Homes broken by a manual
//! `mv` (SPEC.md's own procedure) are healed this way. Ambiguous rows are reported, not
//! touched; transcripts Codex has not indexed get no row.

use anyhow::Result;
use serde_json::json;

use super::{Context, confirm, describe_recovery, refuse_if_codex_running};
use crate::error::ExitKind;
use crate::home::thread_index;
use crate::ops::Run;
use crate::ops::row_repair;
use crate::ops::thread_row::IndexWriter;
use crate::report::{self, LongListWriter, Report};

#[derive(clap::Args)]
pub struct RepairArgs {
    /// Show what would be repaired and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm without asking
    #[arg(long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, args: RepairArgs) -> Result<Report> {
    let home = ctx.locate_home()?;
    home.require_recognizable()?;
    if !args.dry_run {
        refuse_if_codex_running(&home)?;
    }
    let index = thread_index::require_understood(&home)?;
    let mut report = Report::spec_shaped("repair", "repair");
    let Some(index) = index else {
        report.push(
            report::COMPLETED,
            "nothing: the home has no thread index; Codex builds one from the transcripts on its next start",
        );
        report.push(report::VERIFICATION, "no files changed");
        report.data =
            json!({ "dry_run": args.dry_run, "run_id": null, "fixes": [], "left_alone": [] });
        return Ok(report);
    };
    // Rows read from a damaged index can look right while it is not, and a repair written
    // into it could make things worse: checked before planning, dry run included.
    crate::sqlite_check::refuse_unless_intact(&index.path, "the thread index")?;
    let plan = row_repair::plan_for_home(&home)?.unwrap_or_default();
    for left in plan.left_alone.iter().take(SHOWN_IN_TEXT) {
        report.push(
            report::NOT_TOUCHED,
            format!(
                "thread {} (row names {}): {}",
                left.thread_id, left.rollout_path, left.why
            ),
        );
    }
    more_in_json(
        &mut report,
        report::NOT_TOUCHED,
        plan.left_alone.len(),
        "rows left alone",
    );
    if args.dry_run || plan.fixes.is_empty() {
        for fix in plan.fixes.iter().take(SHOWN_IN_TEXT) {
            report.push(
                report::PROPOSED,
                format!("will repair {}", row_repair::describe(&home, fix)),
            );
        }
        more_in_json(&mut report, report::PROPOSED, plan.fixes.len(), "repairs");
        if plan.fixes.is_empty() {
            report.push(
                report::COMPLETED,
                "nothing: every row Codex has names its transcript, with the flag of its folder",
            );
        }
        report.push(report::BACKUPS, "not created: nothing was changed");
        report.push(report::VERIFICATION, "no files changed");
        report.data = json!({ "dry_run": args.dry_run, "run_id": null,
            "fixes": plan.fixes, "left_alone": plan.left_alone });
        return Ok(report);
    }

    confirm(
        &format!(
            "Repair {} thread row{} in {}?",
            plan.fixes.len(),
            if plan.fixes.len() == 1 { "" } else { "s" },
            index.path.display()
        ),
        args.yes,
    )?;
    refuse_if_codex_running(&home)?;
    let (store, recovered) = ctx.open_store_and_recover(&home)?;
    describe_recovery(&mut report, &recovered);
    let mut writer = IndexWriter::open(&index.path)?;
    writer.preflight(&index.path)?;
    let run = Run::begin(&store, "repair", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let outcome = row_repair::execute_all(&run, &mut writer, &plan.fixes);
    run.finish(if outcome.is_err() { "failed" } else { "done" })?;
    let ids = outcome?;
    let mut done = LongListWriter::new()?;
    for (fix, id) in plan.fixes.iter().zip(&ids) {
        if done.len() < SHOWN_IN_TEXT as u64 {
            report.push(
                report::COMPLETED,
                format!("repaired {} (op {id})", row_repair::describe(&home, fix)),
            );
        }
        done.push(&json!({ "op_id": id, "fix": fix }))?;
    }
    more_in_json(&mut report, report::COMPLETED, ids.len(), "repairs done");
    report.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {}; each row's old values are kept there",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );
    let (applied, problems) = crate::ops::verify_applied_of_run(&store, run_id)?;
    if problems.is_empty() {
        report.push(
            report::VERIFICATION,
            format!("{applied} rows each name an existing transcript with the flag of its folder"),
        );
    } else {
        report.exit_code = ExitKind::VerifyFailed.code();
        report.extend(
            report::VERIFICATION,
            problems.iter().map(|p| format!("FAILED: {p}")),
        );
    }
    report.push(
        report::RESIDUAL_RISK,
        format!("to put the rows back as they were: codex-maint undo --run {run_id}"),
    );
    report.data = json!({ "dry_run": false, "run_id": run_id,
        "left_alone": plan.left_alone, "verification_problems": problems });
    report.attach_list("repaired", done.finish()?);
    Ok(report)
}

/// Items a text report lists one by one; the rest are counted (every one is in --json).
const SHOWN_IN_TEXT: usize = 50;

fn more_in_json(report: &mut Report, title: &str, count: usize, what: &str) {
    if count > SHOWN_IN_TEXT {
        report.push(
            title,
            format!(
                "... and {} more {what} (every one is in --json)",
                count - SHOWN_IN_TEXT
            ),
        );
    }
}
