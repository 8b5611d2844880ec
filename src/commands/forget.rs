//! `forget`: ends undo history past a window (restic's `forget`, then its `prune`). A
//! forgotten run stays in `log`, marked; what only it held is freed. It never drops the
//! only copy of a log, nor a retired session, without the flag that names it.

use anyhow::Result;
use serde_json::json;

use super::{Context, confirm, describe_recovery};
use crate::clock::human_bytes;
use crate::error::MaintError;
use crate::report::{self, Report};
use crate::store::retention::forget::{self, ForgetPlan, Selection, Yeses};
use crate::store::retention::{budget, compact, prune};

#[derive(clap::Args)]
pub struct ForgetArgs {
    /// Keep the runs started within this age (e.g. 90d); forget older ones
    #[arg(long, value_name = "AGE")]
    pub keep_within: Option<String>,
    /// Keep the N newest runs that changed something; forget older ones
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Forget exactly this run
    #[arg(long, value_name = "N", conflicts_with_all = ["keep_within", "keep_last"])]
    pub run: Option<i64>,
    /// Delete the only copy of a log (or an old release) a forgotten run moved into the store; without it such runs are kept, with the reason
    #[arg(long)]
    pub yes_delete_only_copies: bool,
    /// Also forget runs holding retired sessions, which are your data, not undo history
    #[arg(long)]
    pub include_retired: bool,
    /// List what could no longer be undone, and what would be freed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm without asking
    #[arg(long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, args: ForgetArgs) -> Result<Report> {
    let selection = selection(&args)?;
    let yeses = Yeses {
        only_copies: args.yes_delete_only_copies,
        retired: args.include_retired,
    };
    let mut report = Report::spec_shaped("forget", "forget");
    if let Some(id) = args.run
        && let Some(store) = ctx.open_store_read_only()?
        && store.catalog.run(id)?.is_none()
    {
        return Err(
            MaintError::usage(format!("there is no run {id}; see `codex-maint log`")).into(),
        );
    }
    if args.dry_run {
        let Some(store) = ctx.open_store_read_only()? else {
            return Ok(nothing(
                report,
                "there is no store yet: there is no history to forget",
            ));
        };
        let plan = forget::plan(&store.catalog, &selection, yeses, chrono::Utc::now())?;
        let mut gone = crate::store::retention::forgotten_runs(&store.catalog)?;
        gone.extend(plan.run_ids());
        let frees = prune::would_remove(&store.root, &store.catalog, &gone)?;
        let compacts = compact::preview(&store.catalog, &compact::plan(&store.catalog, &gone)?)?;
        describe_plan(&mut report, &plan, true);
        let bytes: u64 = frees.iter().map(|c| c.bytes).sum();
        report.push(
            report::PROPOSED,
            format!(
                "would free {} in {} stored items",
                human_bytes(bytes),
                frees.len()
            ),
        );
        if let Some(line) = compacts.line(true) {
            report.push(report::PROPOSED, line);
        }
        report.push(report::VERIFICATION, "dry run: nothing was changed");
        report.data = json!({ "dry_run": true, "run_id": null, "plan": plan,
            "frees": { "bytes": bytes, "items": frees }, "compacts": compacts });
        return Ok(report);
    }
    let home = ctx.locate_home()?;
    let (store, recovered) = ctx.open_store_and_recover(&home)?;
    describe_recovery(&mut report, &recovered);
    let plan = forget::plan(&store.catalog, &selection, yeses, chrono::Utc::now())?;
    if plan.forget.is_empty() {
        describe_plan(&mut report, &plan, false);
        report.data = json!({ "dry_run": false, "run_id": null, "plan": plan });
        return Ok(nothing(report, "no run to forget"));
    }
    confirm(
        &format!(
            "Forget {} run(s)? Their changes stay, but can no longer be undone.",
            plan.forget.len()
        ),
        args.yes,
    )?;
    let run = crate::ops::Run::begin(&store, "forget", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let outcome = budget::forget_and_prune(&store, &plan, run_id, "forget");
    run.finish(if outcome.is_err() { "failed" } else { "done" })?;
    let pruned = outcome?;
    describe_plan(&mut report, &plan, false);
    report.push(
        report::COMPLETED,
        format!(
            "freed {} in {} stored items{}",
            human_bytes(pruned.bytes()),
            pruned.removed.len(),
            if pruned.resumed > 0 {
                format!(" ({} left by an interrupted prune)", pruned.resumed)
            } else {
                String::new()
            }
        ),
    );
    if let Some(line) = pruned.compacted.line(false) {
        report.push(report::COMPLETED, line);
    }
    report.push(
        report::VERIFICATION,
        "every run not forgotten keeps what its undo needs; `codex-maint verify` checks it",
    );
    report.data = json!({ "dry_run": false, "run_id": run_id, "plan": plan, "pruned": pruned });
    Ok(report)
}

fn selection(args: &ForgetArgs) -> Result<Selection> {
    if let Some(run) = args.run {
        return Ok(Selection::Run(run));
    }
    let within_secs = match &args.keep_within {
        Some(text) => Some(crate::clock::parse_duration(text).ok_or_else(|| {
            MaintError::usage(format!("--keep-within {text}: give an age like 90d"))
        })?),
        None => None,
    };
    if within_secs.is_none() && args.keep_last.is_none() {
        return Err(MaintError::usage(
            "say what to keep: --keep-within AGE, --keep-last N, or --run N to forget one run",
        )
        .into());
    }
    Ok(Selection::Keep {
        within_secs,
        last: args.keep_last,
    })
}

fn describe_plan(report: &mut Report, plan: &ForgetPlan, dry_run: bool) {
    let title = if dry_run {
        report::PROPOSED
    } else {
        report::COMPLETED
    };
    let verb = if dry_run { "would forget" } else { "forgot" };
    for r in &plan.forget {
        report.push(
            title,
            format!(
                "{verb} run {} ({}, {}): {} change(s) in force can no longer be undone",
                r.run_id, r.command, r.started_at, r.in_force
            ),
        );
        for c in &r.only_copies {
            report.push(
                title,
                format!(
                    "  only copy deleted: {} ({}, op {})",
                    c.path,
                    human_bytes(c.bytes.max(0) as u64),
                    c.op_id
                ),
            );
        }
    }
    for s in &plan.skipped {
        report.push(
            report::NOT_TOUCHED,
            format!("run {} kept: {}", s.run_id, s.reason),
        );
    }
}

fn nothing(mut report: Report, why: &str) -> Report {
    report.push(report::COMPLETED, format!("nothing: {why}"));
    if report.data.is_null() {
        report.data = json!({ "run_id": null });
    }
    report
}
