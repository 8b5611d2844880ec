//! `prune`: removes from the store what nothing references (blobs, backups of forgotten
//! runs, used or stale plans, leftovers), two-phase and crash-safe, under the store lock.

use anyhow::Result;
use serde_json::json;

use super::{Context, describe_recovery};
use crate::clock::human_bytes;
use crate::report::{self, Report};
use crate::store::retention::{self, compact, prune};

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Show what would be removed; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted so scripts can pass --yes to every command; prune removes only what nothing references
    #[arg(long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, args: PruneArgs) -> Result<Report> {
    let mut report = Report::spec_shaped("prune", "prune");
    if args.dry_run {
        let Some(store) = ctx.open_store_read_only()? else {
            report.push(report::COMPLETED, "nothing: there is no store yet");
            report.data = json!({ "dry_run": true, "items": [], "bytes": 0 });
            return Ok(report);
        };
        let forgotten = retention::forgotten_runs(&store.catalog)?;
        let items = prune::would_remove(&store.root, &store.catalog, &forgotten)?;
        let compacts =
            compact::preview(&store.catalog, &compact::plan(&store.catalog, &forgotten)?)?;
        let bytes: u64 = items.iter().map(|c| c.bytes).sum();
        for c in &items {
            report.push(
                report::PROPOSED,
                format!(
                    "would remove {} {} ({})",
                    c.kind,
                    c.name,
                    human_bytes(c.bytes)
                ),
            );
        }
        report.push(
            report::PROPOSED,
            format!("would free {} in {} items", human_bytes(bytes), items.len()),
        );
        if let Some(line) = compacts.line(true) {
            report.push(report::PROPOSED, line);
        }
        report.push(report::VERIFICATION, "dry run: nothing was changed");
        report.data =
            json!({ "dry_run": true, "items": items, "bytes": bytes, "compacts": compacts });
        return Ok(report);
    }
    let home = ctx.locate_home()?;
    let (store, recovered) = ctx.open_store_and_recover(&home)?;
    describe_recovery(&mut report, &recovered);
    let run = crate::ops::Run::begin(&store, "prune", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let outcome = prune::prune(&store);
    run.finish(if outcome.is_err() { "failed" } else { "done" })?;
    let pruned = outcome?;
    for c in pruned.removed.iter().take(50) {
        report.push(
            report::COMPLETED,
            format!("removed {} {} ({})", c.kind, c.name, human_bytes(c.bytes)),
        );
    }
    report.push(
        report::COMPLETED,
        format!(
            "freed {} in {} items; {} condemned by an interrupted prune were finished, {} taken up again were kept, {} temporaries removed",
            human_bytes(pruned.bytes()),
            pruned.removed.len(),
            pruned.resumed,
            pruned.kept_again,
            pruned.temporaries
        ),
    );
    if let Some(line) = pruned.compacted.line(false) {
        report.push(report::COMPLETED, line);
    }
    report.push(report::VERIFICATION, "only what no run in force, backup kept or plan in use referenced was removed; `codex-maint verify` checks the rest");
    report.data =
        json!({ "dry_run": false, "run_id": run_id, "pruned": pruned, "bytes": pruned.bytes() });
    Ok(report)
}
