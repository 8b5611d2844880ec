//! `cleanup`: SPEC.md's cleanup mode. Inspect, plan, confirm (interactively, or with
//! `--yes --plan <id>` naming the exact plan reviewed), refuse while Codex runs, back up,
//! execute each confirmed action as a journaled op, verify, and report what happened.
//! The steps are `crate::cleanup`'s; this command reads the flags and the plan reviewed.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::automation::unattended;
use crate::cleanup::{
    CATEGORIES, CleanupArgs, Invocation, Plan, apply, build_plan, enforce_contract, load_plan,
    plan_frees, plan_report, save_plan,
};
use crate::error::MaintError;
use crate::policy::handoff_threads;
use crate::report::{self, Report};
use crate::survey::{self, DatabaseDepth};

pub use crate::automation::settings::CleanupFlags;
use crate::automation::settings::{Setting, Source, settle};

pub fn run(ctx: &Context, mut args: CleanupArgs) -> Result<Report> {
    // Applying a reviewed plan plans again over the categories that plan covered: how one
    // category is carried out can depend on another being chosen (sessions are archived
    // straight into compressed form only alongside `compress`).
    // A plan narrowed to picked sessions (`browse`) plans again over the same picks.
    if let (Some(id), false) = (&args.plan_id, args.dry_run) {
        let reviewed = load_plan(&ctx.store_root, id)?.0;
        let covered = reviewed.categories;
        // A plan of every category stays "every category": only a narrowed one narrows.
        if args.only.is_empty() && !CATEGORIES.iter().all(|c| covered.iter().any(|k| k == c)) {
            args.only = covered;
        }
        args.selection = reviewed.selection;
    }
    for c in &args.only {
        if !CATEGORIES.contains(&c.as_str()) {
            return Err(MaintError::usage(format!(
                "--only {c}: the categories are {}",
                CATEGORIES.join(",")
            ))
            .into());
        }
    }
    let home = ctx.locate_home()?;
    home.require_recognizable()?;
    let handoffs = handoff_threads(&ctx.store_root)?;
    let before = survey::gather(&home, &args.inspect, &handoffs, DatabaseDepth::Full);
    let planned = build_plan(&ctx.store_root, &home, &before, &args)?;
    let plan = &planned.plan;

    if args.dry_run {
        // A read-only store is still read by a dry run (docs/safety.md): the plan is shown,
        // and only applying it waits for a store that can keep it.
        let saved = match save_plan(&ctx.store_root, plan) {
            Ok(path) => Some(path),
            Err(e) if crate::store::is_read_only_error(&e) => None,
            Err(e) => return Err(e),
        };
        let mut r = plan_report(&home, plan, &before)?;
        r.push(
            report::BACKUPS,
            match &saved {
                Some(saved) => format!(
                    "not created: dry run (the plan was saved as {})",
                    saved.display()
                ),
                None => format!(
                    "not created: dry run; the plan was not saved, the store {} is read-only: make it writable and run the dry run again to apply a plan",
                    ctx.store_root.display()
                ),
            },
        );
        r.push(report::VERIFICATION, "no files changed in the Codex home");
        if let Some(gate) = &planned.gate {
            r.push(
                report::VERIFICATION,
                format!(
                    "compression gate ({}): {}",
                    if gate.allowed { "open" } else { "closed" },
                    gate.reason
                ),
            );
        }
        if saved.is_some() {
            r.push(
                report::RESIDUAL_RISK,
                format!(
                    "to apply exactly this plan: codex-maint cleanup --yes --plan {}",
                    plan.id
                ),
            );
        }
        r.data = json!({
            "dry_run": true,
            "plan_file": saved,
            "compression_gate": planned.gate,
            "frees": plan_frees(plan, &before),
        });
        plan.put_in(&mut r, "plan")?;
        return Ok(r);
    }

    // Decide what was reviewed before anything else happens: a plan named by id is held
    // to what the dry run sealed and to what the planner makes now.
    let reviewed: Plan = match (&args.plan_id, args.yes) {
        (Some(id), _) => {
            let (reviewed, seal) = load_plan(&ctx.store_root, id)?;
            enforce_contract(id, &reviewed, &seal, plan)?;
            reviewed
        }
        (None, true) => {
            return Err(MaintError::refused(
                "--yes applies only a reviewed plan: run `codex-maint cleanup --dry-run`, then `cleanup --yes --plan <id>`; nothing was changed",
                vec![],
            )
            .into());
        }
        (None, false) => plan.clone(),
    };
    apply(
        &invocation(ctx),
        &home,
        &args,
        &before,
        planned,
        reviewed,
        !args.yes,
        &handoffs,
    )
}

/// `cleanup` as typed: the scheduled run, or a run with its flags settled over the policy
/// file, whose report says where each threshold came from.
pub fn run_with_flags(ctx: &Context, flags: CleanupFlags) -> Result<Report> {
    let policy = match &flags.policy {
        Some(file) => Some(
            crate::automation::policy::Policy::load(file)
                .map_err(|e| MaintError::usage(format!("{e:#}")))?,
        ),
        None => None,
    };
    if flags.unattended {
        let policy_path = flags.policy.as_deref().expect("clap requires --policy");
        let policy = policy.expect("loaded above, as --unattended requires --policy");
        let home = ctx.locate_home()?;
        return unattended::run(&invocation(ctx), &home, policy_path, &policy);
    }
    let (args, settings) = settle(&flags, policy.as_ref());
    let mut r = run(ctx, args)?;
    record_settings(&mut r, &settings);
    Ok(r)
}

/// `data.settings` and one line of the text view: each threshold, and whether a flag, the
/// policy file or the default set it.
fn record_settings(r: &mut Report, settings: &[Setting]) {
    if let Some(data) = r.data.as_object_mut() {
        data.insert("settings".into(), json!(settings));
    }
    let described: Vec<String> = settings
        .iter()
        .map(|s| {
            let source = match s.source {
                Source::Flag => "flag",
                Source::Policy => "policy",
                Source::Default => "default",
            };
            format!("{} {} ({source})", s.name, s.value)
        })
        .collect();
    r.push(
        report::PROPOSED,
        format!("thresholds: {}", described.join(", ")),
    );
}

fn invocation(ctx: &Context) -> Invocation<'_> {
    Invocation {
        store_root: &ctx.store_root,
        argv: &ctx.argv,
    }
}
