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
