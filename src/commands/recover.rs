//! `recover`: bring runs interrupted by a crash to rest, explicitly. Every writing
//! command does the same first; this one does only that.

use anyhow::Result;
use serde_json::json;

use super::{Context, describe_recovery, refuse_if_codex_running};
use crate::report::{self, Report};

pub fn run(ctx: &Context) -> Result<Report> {
    let home = ctx.locate_home()?;
    refuse_if_codex_running(&home)?;
    let mut report = Report::spec_shaped("recover", "recover");
    if !crate::store::exists(&ctx.store_root)? {
        let removed = crate::store::folder::remove_abandoned_builds_inside(&ctx.store_root);
        report.extend(
            report::COMPLETED,
            removed.iter().map(|p| {
                format!(
                    "removed the build of a first store a crash left: {}",
                    p.display()
                )
            }),
        );
        report.push(report::COMPLETED, "nothing: there is no store yet");
        report.data = json!({ "recovered": [] });
        return Ok(report);
    }
    let (_store, recovered) = ctx.open_store_and_recover(&home)?;
    if recovered.is_empty() {
        report.push(
            report::COMPLETED,
            "nothing to recover: no interrupted operations",
        );
    }
    describe_recovery(&mut report, &recovered);
    let stuck = recovered
        .iter()
        .filter(|r| matches!(r.result, crate::ops::Recovered::Stuck(_)))
        .count();
    if stuck > 0 {
        report.exit_code = crate::error::ExitKind::VerifyFailed.code();
    }
    report.push(
        report::VERIFICATION,
        format!(
            "{} interrupted ops examined, {stuck} need a decision",
            recovered.len()
        ),
    );
    report.data = json!({ "recovered": recovered });
    Ok(report)
}
