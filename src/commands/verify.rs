//! `verify`: the catalog's integrity, every blob's hash, every live change still in place.
//! It reads only; it opens the catalog read-only and Codex's databases without writing.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::error::ExitKind;
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::store::{self, OpState, blobs::BlobStore};

/// Problems listed in the text; `data.problems` has them all.
const PROBLEMS_SHOWN: usize = 50;

pub fn run(ctx: &Context) -> Result<Report> {
    let mut report = Report::spec_shaped("verify", "verify");
    let Some(catalog) = store::open_read_only(&ctx.store_root)? else {
        report.push(
            report::VERIFICATION,
            format!(
                "no store at {}: codex-maint has changed nothing, so there is nothing to verify",
                ctx.store_root.display()
            ),
        );
        report.data = json!({ "store": ctx.store_root, "problems": [], "checked": {} });
        return Ok(report);
    };
    let mut problems: Vec<String> = Vec::new();
    let mut checks = serde_json::Map::new();

    match crate::sqlite_check::integrity_problems(catalog.connection()) {
        Ok(p) if p.is_empty() => {
            report.push(report::VERIFICATION, "catalog PRAGMA integrity_check: ok")
        }
        Ok(p) => {
            report.push(
                report::VERIFICATION,
                format!("catalog PRAGMA integrity_check: {} problems", p.len()),
            );
            problems.extend(p.into_iter().map(|l| format!("catalog: {l}")));
        }
        Err(e) => problems.push(format!("catalog cannot be read: {e:#}")),
    }
    if !problems.is_empty() {
        return Ok(finish(report, problems, checks));
    }

    let blobs = BlobStore::new(&ctx.store_root);
    let blob_list = catalog.blob_hashes()?;
    let mut bad_blobs = 0;
    for (hash, _) in &blob_list {
        match blobs.rehash(hash) {
            Ok(h) if &h == hash => {}
            Ok(_) => {
                bad_blobs += 1;
                problems.push(format!(
                    "blob {hash}: its bytes were altered (hash differs)"
                ));
            }
            Err(e) => {
                bad_blobs += 1;
                problems.push(format!("blob {hash}: missing or unreadable ({e:#})"));
            }
        }
    }
    report.push(
        report::VERIFICATION,
        format!("{} blobs rehashed: {} bad", blob_list.len(), bad_blobs),
    );
    checks.insert(
        "blobs".into(),
        json!({ "checked": blob_list.len(), "bad": bad_blobs }),
    );

    for op in crate::ops::record::read_all(catalog.ops_in_state(OpState::Prepared)?)? {
        problems.push(format!(
            "op {} ({}) was interrupted and is still prepared: run `codex-maint recover`",
            op.id, op.kind
        ));
    }

    let before = problems.len();
    let (items_checked, taken_over) = check_live_ops(&catalog, &mut problems)?;
    report.push(
        report::VERIFICATION,
        format!("{items_checked} items in force checked at their recorded places, with their hashes and thread rows: {} problems", problems.len() - before),
    );
    checks.insert(
        "items".into(),
        json!({ "checked": items_checked, "bad": problems.len() - before, "taken_over_by_codex": taken_over.len() }),
    );
    report.extend(
        report::VERIFICATION,
        taken_over.iter().take(PROBLEMS_SHOWN).cloned(),
    );
    checks.insert("taken_over_by_codex".into(), json!(taken_over));
    let before = problems.len();
    let backups = crate::store::backup::verify_all(&catalog, &ctx.store_root)?;
    report.push(
        report::VERIFICATION,
        format!(
            "{} backups re-read against their manifests: {} problems",
            backups.checked,
            backups.problems.len()
        ),
    );
    problems.extend(backups.problems);
    checks.insert(
        "backups".into(),
        json!({ "checked": backups.checked, "bad": problems.len() - before }),
    );
    let objects = crate::store::pack::ObjectStore::new(&catalog, &ctx.store_root);
    let sizes = objects.sizes()?;
    let found = objects.verify_all()?;
    report.push(
        report::VERIFICATION,
        format!(
            "{} objects decoded to their ids from {} packs and {} dictionaries, each checked against its name: {} problems",
            sizes.objects,
            sizes.packs,
            sizes.dictionaries,
            found.len()
        ),
    );
    checks.insert(
        "objects".into(),
        json!({ "checked": sizes.objects, "packs": sizes.packs, "dictionaries": sizes.dictionaries, "bad": found.len() }),
    );
    problems.extend(found);
    let retired = catalog.retired_sessions()?;
    let missing = crate::ops::session_retire::verify_retired(&objects, &retired)?;
    report.push(
        report::VERIFICATION,
        format!(
            "{} retired sessions each hold their transcript and rows in the store: {} problems",
            retired.len(),
            missing.len()
        ),
    );
    checks.insert(
        "retired_sessions".into(),
        json!({ "checked": retired.len(), "bad": missing.len() }),
    );
    problems.extend(missing);
    let (records, lines, bad) = catalog.verify_compacted_journals()?;
    report.push(
        report::VERIFICATION,
        format!(
            "{records} compacted journals of forgotten runs decoded, {lines} lines, each matching its record: {} problems",
            bad.len()
        ),
    );
    checks.insert(
        "compacted_journals".into(),
        json!({ "checked": records, "lines": lines, "bad": bad.len() }),
    );
    problems.extend(bad);
    Ok(finish(report, problems, checks))
}

/// Checks every op in force a page at a time (a home of 100,000 archived sessions has as
/// many), adding what it finds to `problems`; returns how many ops it checked, and the
/// items Codex itself took over since (information, not problems).
fn check_live_ops(
    catalog: &store::Catalog,
    problems: &mut Vec<String>,
) -> Result<(u64, Vec<String>)> {
    let progress = crate::progress::OnTerminal::new();
    progress.start(catalog.live_op_count(None)?, "verifying");
    let mut checker = crate::ops::LiveChecker::default();
    let mut checked = 0;
    let mut after = 0;
    loop {
        let page = crate::ops::record::read_all(
            catalog.live_ops_after(after, store::catalog::live_page_size())?,
        )?;
        let Some(last) = page.last() else { break };
        after = last.id;
        checked += page.len() as u64;
        problems.extend(checker.check(&page, &progress));
    }
    progress.finish();
    Ok((checked, checker.taken_over))
}

fn finish(
    mut report: Report,
    problems: Vec<String>,
    checks: serde_json::Map<String, serde_json::Value>,
) -> Report {
    if !problems.is_empty() {
        report.exit_code = ExitKind::VerifyFailed.code();
        // Every problem is in `data`; the text shows what a person reads through.
        report.extend(
            report::RESIDUAL_RISK,
            problems.iter().take(PROBLEMS_SHOWN).cloned(),
        );
        if problems.len() > PROBLEMS_SHOWN {
            report.push(
                report::RESIDUAL_RISK,
                format!(
                    "... and {} more problems (every one: --json)",
                    problems.len() - PROBLEMS_SHOWN
                ),
            );
        }
    }
    report.data = json!({ "ok": problems.is_empty(), "problems": problems, "checked": checks });
    report
}
