//! The scheduled run (`cleanup --unattended --policy FILE`): it always surveys the home and
//! files the report; it cleans up only what an approved, unchanged policy opts into.

use anyhow::Result;
use std::path::Path;

use super::policy::{Policy, is_approved};
use super::settings::{CleanupFlags, settle};
use crate::cleanup::{Invocation, apply, build_plan};
use crate::home::CodexHome;
use crate::policy::handoff_threads;
use crate::report::{self, Report};
use crate::survey::{self, DatabaseDepth};

/// The scheduled run: always inspects and files its report; cleans up only the categories
/// an approved, unchanged policy opts into, and still refuses while Codex runs, backs up
/// and journals. Its report lands in the policy's report folder (and `latest.txt`).
/// The caller has read the policy file and located the home.
pub fn run(
    at: &Invocation<'_>,
    home: &CodexHome,
    policy_path: &Path,
    policy: &Policy,
) -> Result<Report> {
    let approved = is_approved(at.store_root, policy_path);
    let reports = policy.report_dir(at.store_root);
    let unattended = CleanupFlags {
        only: policy.cleanup.unattended.clone(),
        yes: true,
        ..Default::default()
    };
    let (args, _) = settle(&unattended, Some(policy));
    let handoffs = handoff_threads(at.store_root)?;
    let before = survey::gather(home, &args.inspect, &handoffs, DatabaseDepth::Full);
    let inspect_report = survey::render(home, &before, &args.inspect);
    file_report(&reports, "inspect", &inspect_report)?;

    let outcome: Result<Report> = if policy.cleanup.unattended.is_empty() {
        let mut r = inspect_report.clone();
        r.push(
            report::COMPLETED,
            "scheduled run: inspect only (the policy opts into no unattended cleanup)",
        );
        Ok(r)
    } else if !approved {
        let mut r = inspect_report.clone();
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "the policy opts into unattended cleanup of {} but is not approved (or changed since): inspect only. Review it, then run `codex-maint automation --approve`",
                policy.cleanup.unattended.join(", ")
            ),
        );
        Ok(r)
    } else {
        let planned = build_plan(at.store_root, home, &before, &args)?;
        let reviewed = planned.plan.clone();
        apply(
            at, home, &args, &before, planned, reviewed, false, &handoffs,
        )
    };
    let outcome = match outcome {
        Ok(mut r) if approved && policy.store.is_set() => {
            keep_store_budget(at, home, policy, &mut r).map(|_| r)
        }
        other => other,
    };
    match outcome {
        Ok(r) => {
            file_report(&reports, "run", &r)?;
            Ok(r)
        }
        Err(e) => {
            let mut r = inspect_report;
            r.exit_code = crate::error::exit_kind_of(&e).code();
            r.push(
                report::RESIDUAL_RISK,
                format!("scheduled cleanup did not run: {e:#}"),
            );
            for d in crate::error::details_of(&e) {
                r.push(report::RESIDUAL_RISK, d);
            }
            file_report(&reports, "run", &r)?;
            Err(e)
        }
    }
}

/// The policy's store budget, after the cleanup: forget and prune to stay inside it, as a
/// run of its own, and say what was dropped, what was kept and why.
fn keep_store_budget(
    at: &Invocation<'_>,
    home: &CodexHome,
    policy: &Policy,
    r: &mut Report,
) -> Result<()> {
    use crate::clock::human_bytes;
    use crate::store::retention::budget::{self, Budget};
    if !crate::store::exists(at.store_root)? {
        return Ok(());
    }
    let limits = Budget {
        keep_within_secs: policy
            .store
            .keep_within
            .as_deref()
            .and_then(crate::clock::parse_duration),
        max_store_bytes: policy.store.max_store_bytes,
        yeses: crate::store::retention::forget::Yeses {
            only_copies: policy.store.delete_only_copies,
            retired: false,
        },
    };
    let (store, _) = crate::write_gate::open_store_and_recover(home, at.store_root)?;
    let run = crate::ops::Run::begin(&store, "forget", at.argv, &home.root, None)?;
    let outcome = budget::keep(&store, &limits, run.id);
    run.finish(if outcome.is_err() { "failed" } else { "done" })?;
    let kept = outcome?;
    for f in &kept.forgotten {
        r.push(
            report::COMPLETED,
            format!(
                "store budget: forgot run {} ({}, {}): {} change(s) can no longer be undone; {} only cop(ies) deleted",
                f.run_id, f.command, f.started_at, f.in_force, f.only_copies.len()
            ),
        );
    }
    for s in &kept.skipped {
        r.push(
            report::NOT_TOUCHED,
            format!("store budget kept run {}: {}", s.run_id, s.reason),
        );
    }
    r.push(
        report::COMPLETED,
        format!(
            "store budget: pruned {} in {} items; the store is {} (was {})",
            human_bytes(kept.pruned.bytes()),
            kept.pruned.removed.len(),
            human_bytes(kept.after.total),
            human_bytes(kept.before.total)
        ),
    );
    if kept.over_budget {
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "the store ({}) is still over max_store_bytes ({}): nothing more may be forgotten without a yes the policy does not give",
                human_bytes(kept.after.total),
                human_bytes(policy.store.max_store_bytes.unwrap_or(0))
            ),
        );
    }
    if let Some(data) = r.data.as_object_mut() {
        data.insert("store_budget".into(), serde_json::to_value(&kept)?);
    }
    Ok(())
}

/// `<dir>/<time>-<what>.txt` and `.json`, plus `latest.txt` / `latest.json` for the eye.
fn file_report(dir: &Path, what: &str, r: &Report) -> Result<()> {
    crate::store::create_private_dir(dir)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let text = r.render_text();
    let json = serde_json::to_vec_pretty(r)?;
    for (name, bytes) in [
        (format!("{stamp}-{what}.txt"), text.as_bytes()),
        (format!("{stamp}-{what}.json"), json.as_slice()),
        ("latest.txt".to_string(), text.as_bytes()),
        ("latest.json".to_string(), json.as_slice()),
    ] {
        crate::fs_atomic::write_atomic(&dir.join(name), bytes, Some(0o600))?;
    }
    Ok(())
}
