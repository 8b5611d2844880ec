//! `automation`: SPEC.md's automation mode. Prints the repeatable maintenance contract
//! (kept as `policy.toml` in the store), and the scheduler entry that would run it;
//! installs nothing unless asked with `--install --yes`, and never enables a schedule.

use anyhow::Result;
use serde_json::json;
use std::path::PathBuf;

use super::{Context, confirm, describe_recovery};
use crate::automation::policy::{
    APPROVAL_FILE, POLICY_FILE, Policy, TEMPLATE, is_approved, policy_hash,
};
use crate::automation::schedule::{self, Rendered, Scheduler};
use crate::error::MaintError;
use crate::ops::{Run, write_file};
use crate::report::{self, Report};

#[derive(clap::Args)]
pub struct AutomationArgs {
    /// The policy file (default: policy.toml in the store)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write the default policy file for you to edit
    #[arg(long)]
    pub init: bool,
    /// Approve the policy as it is now, so a scheduled run may act on it
    #[arg(long)]
    pub approve: bool,
    /// Print the scheduler entry for this machine
    #[arg(long, value_enum, value_name = "KIND")]
    pub print_schedule: Option<Scheduler>,
    /// Write the printed entry (journaled; `undo` removes it); never enables it
    #[arg(long)]
    pub install: bool,
    /// Confirm --install without asking
    #[arg(long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, args: AutomationArgs) -> Result<Report> {
    let home = ctx.locate_home()?;
    let policy_path = args
        .policy
        .clone()
        .unwrap_or_else(|| ctx.store_root.join(POLICY_FILE));
    let mut r = Report::spec_shaped("automation", "automation");

    if args.init {
        if policy_path.exists() {
            return Err(MaintError::refused(
                format!(
                    "{} already exists; edit it rather than replace it",
                    policy_path.display()
                ),
                vec![],
            )
            .into());
        }
        crate::store::create_private_dir(policy_path.parent().unwrap_or(&ctx.store_root))?;
        crate::fs_atomic::write_atomic(&policy_path, TEMPLATE.as_bytes(), Some(0o600))?;
        r.push(
            report::COMPLETED,
            format!(
                "wrote the default policy to {}: review and edit it, then approve it",
                policy_path.display()
            ),
        );
    }
    let exists = policy_path.exists();
    let policy = if exists {
        Policy::load(&policy_path).map_err(|e| MaintError::usage(format!("{e:#}")))?
    } else {
        Policy::default_policy()
    };
    if args.approve {
        if !exists {
            return Err(MaintError::refused(
                "there is no policy file to approve: run `codex-maint automation --init` first"
                    .to_string(),
                vec![],
            )
            .into());
        }
        crate::fs_atomic::write_atomic(
            &ctx.store_root.join(APPROVAL_FILE),
            policy_hash(&policy_path)?.as_bytes(),
            Some(0o600),
        )?;
        r.push(
            report::COMPLETED,
            format!(
                "approved {} as it is now; any later edit needs a new approval",
                policy_path.display()
            ),
        );
    }
    let approved = exists && is_approved(&ctx.store_root, &policy_path);
    r.push(
        report::OBSERVED,
        if exists {
            format!("policy {} ({})", policy_path.display(), if approved { "approved" } else { "not approved, or changed since approval" })
        } else {
            format!("no policy file yet: the defaults are shown; `codex-maint automation --init` writes them to {}", policy_path.display())
        },
    );
    contract(&mut r, &policy, &ctx.store_root, approved);

    let exe = std::env::current_exe()?;
    let command = schedule::command_line(&exe, &home.root, &ctx.store_root, &policy_path);
    let user_home = crate::home::home_dir().unwrap_or_else(|| PathBuf::from("/"));
    let rendered: Option<Rendered> = args
        .print_schedule
        .map(|s| schedule::render(s, &policy, &command, &user_home))
        .transpose()?;
    let mut installed = Vec::new();
    let mut run_id = None;

    match (&rendered, args.install) {
        (None, true) => return Err(MaintError::usage("--install needs --print-schedule systemd|launchd|cron to say what to install").into()),
        (Some(rendered), true) => {
            if !exists {
                return Err(MaintError::refused("install a schedule only for a policy you have written: run `codex-maint automation --init` first".to_string(), vec![]).into());
            }
            confirm(&format!("Write {} file(s) for {:?} (nothing will be enabled)?", rendered.files.len(), rendered.scheduler), args.yes)?;
            let (store, recovered) = ctx.open_store_and_recover(&home)?;
            describe_recovery(&mut r, &recovered);
            let run = Run::begin(&store, "automation", &ctx.argv, &home.root, None)?;
            run_id = Some(run.id);
            let mut failure = None;
            for f in &rendered.files {
                match write_file::execute(&run, &f.path, f.contents.as_bytes()) {
                    Ok(op) => {
                        r.push(report::COMPLETED, format!("wrote {} (op {op})", f.path.display()));
                        installed.push(f.path.clone());
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            run.finish(if failure.is_some() { "failed" } else { "done" })?;
            r.push(report::BACKUPS, format!("journal: run {} in {}; `codex-maint undo --run {}` removes what was written", run_id.unwrap_or(0), store.root.join(crate::store::CATALOG_FILE).display(), run_id.unwrap_or(0)));
            if let Some(e) = failure {
                return Err(e);
            }
            r.push(report::VERIFICATION, format!("Scheduled: NOT YET. The files are written but nothing is enabled; to enable: {}", rendered.enable));
            r.push(report::RESIDUAL_RISK, format!("to stop it later: {}", rendered.disable));
        }
        (Some(rendered), false) => {
            r.push(report::VERIFICATION, format!("Scheduled: NO. The {:?} entry was only printed; nothing was written or enabled", rendered.scheduler));
            r.push(report::PROPOSED, format!("to write it: codex-maint automation --print-schedule {} --install --yes", format!("{:?}", rendered.scheduler).to_lowercase()));
            // stdout carries the entries alone, so `> file.plist` is a valid plist; where
            // each belongs and what to do next go to stderr.
            let mut notes = String::new();
            for f in &rendered.files {
                notes.push_str(&format!("# {}\n", f.path.display()));
            }
            notes.push_str(&format!(
                "# Nothing was scheduled: this was only printed. Write it with `--install --yes`, then enable it with: {}\n",
                rendered.enable
            ));
            r.raw_text = Some(rendered.files.iter().map(|f| f.contents.as_str()).collect::<Vec<_>>().join("\n"));
            r.raw_notes = Some(notes);
        }
        (None, false) => r.push(report::VERIFICATION, "Scheduled: NO. Nothing was installed; print a scheduler entry with --print-schedule systemd|launchd|cron"),
    }
    if installed.is_empty() {
        r.push(
            report::NOT_TOUCHED,
            "no scheduler entry was written; no timer, agent or crontab was enabled",
        );
    }
    if !args.init && !args.approve && installed.is_empty() {
        r.push(
            report::COMPLETED,
            "nothing: automation only designs the routine unless asked",
        );
    }
    r.data = json!({
        "policy_path": policy_path,
        "policy_exists": exists,
        "approved": approved,
        "policy": policy,
        "command": command,
        "schedule": rendered,
        "installed": installed,
        "scheduled": false,
        "run_id": run_id,
    });
    Ok(r)
}

fn contract(r: &mut Report, policy: &Policy, store_root: &std::path::Path, approved: bool) {
    let when = match policy.schedule.every.as_str() {
        "weekly" => format!(
            "every {} at {}",
            policy.schedule.weekday, policy.schedule.at
        ),
        "monthly" => format!("on the 1st of each month at {}", policy.schedule.at),
        _ => format!("every day at {}", policy.schedule.at),
    };
    r.push(
        report::PROPOSED,
        format!("what runs: `codex-maint inspect` {when} (local time), always"),
    );
    if policy.cleanup.unattended.is_empty() {
        r.push(
            report::PROPOSED,
            "unattended cleanup: none; the scheduled run only inspects and reports",
        );
    } else {
        r.push(
            report::PROPOSED,
            format!(
                "unattended cleanup of {} (min age {}, logs over {} MB, sessions over {} MB only with a handoff){}",
                policy.cleanup.unattended.join(", "),
                policy.cleanup.min_age,
                policy.inspect.large_log_mb,
                policy.cleanup.handoff_min_mb,
                if approved { "" } else { " - inactive until the policy is approved" }
            ),
        );
    }
    r.push(
        report::PROPOSED,
        format!(
            "reports go to {} (each run, plus latest.txt and latest.json)",
            policy.report_dir(store_root).display()
        ),
    );
    r.push(
        report::PROPOSED,
        "it never: deletes anything; runs a cleanup while Codex runs (it refuses and reports); acts on a policy you have not approved or have changed since; schedules itself",
    );
    r.push(report::PROPOSED, "every change it makes is backed up and journaled, so `codex-maint log`, `undo` and `verify` cover it");
}
