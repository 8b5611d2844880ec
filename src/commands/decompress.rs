//! `decompress`: the way back for a user who must return to a Codex older than 0.137, which
//! cannot read `.jsonl.zst`: every compressed transcript (or the named sessions') becomes a
//! plain one beside it, its thread row pointed at it, each a journaled op `undo` reverses.

use anyhow::Result;
use serde_json::json;
use std::collections::HashMap;

use super::{Context, confirm, describe_recovery, refuse_if_codex_running, relative_to};
use crate::clock::human_bytes;
use crate::error::MaintError;
use crate::home::sessions::{self, SessionFile};
use crate::home::thread_index::{self, ThreadRow};
use crate::ops::thread_row::IndexWriter;
use crate::ops::transcript_compress::{self, PlannedRecode};
use crate::ops::{Outcome, Run};
use crate::report::{self, Report};

#[derive(clap::Args)]
pub struct DecompressArgs {
    /// Only these sessions (ids or unique prefixes); every compressed transcript when none are given
    pub ids: Vec<String>,
    /// Show what would be decompressed and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm without asking
    #[arg(long)]
    pub yes: bool,
}

/// Room to leave free on the home's filesystem beyond the plain bytes themselves.
const FREE_SPACE_MARGIN: u64 = 64 << 20;

pub fn run(ctx: &Context, args: DecompressArgs) -> Result<Report> {
    let home = ctx.locate_home()?;
    home.require_recognizable()?;
    if !args.dry_run {
        refuse_if_codex_running(&home)?;
    }
    let index = thread_index::require_understood(&home)?;
    let rows: Option<HashMap<String, ThreadRow>> =
        index.as_ref().map(|i| i.read_all()).transpose()?;

    let (files, _) = sessions::scan(&home);
    let compressed: Vec<&SessionFile> = files.iter().filter(|f| f.compressed).collect();
    let wanted: Vec<&SessionFile> = if args.ids.is_empty() {
        compressed
    } else {
        let mut chosen = Vec::new();
        for id in &args.ids {
            let matches = sessions::files_of_id(&files, id)
                .map_err(|why| MaintError::usage(format!("{why}; nothing was changed")))?;
            chosen.extend(matches.into_iter().filter(|f| f.compressed));
        }
        chosen
    };
    let mut report = Report::spec_shaped("decompress", "decompress");
    let (targets, kept): (Vec<&SessionFile>, Vec<&SessionFile>) = wanted
        .into_iter()
        .partition(|f| !f.is_symlink && !f.has_twin && f.name.is_some());
    for f in &kept {
        report.push(
            report::NOT_TOUCHED,
            format!(
                "{} - {}",
                relative_to(&home, &f.path),
                if f.has_twin {
                    "a plain copy sits beside it (ambiguous; Codex reads the plain one)"
                } else {
                    "not a Codex transcript file (symlink or unknown name)"
                }
            ),
        );
    }
    let plain_bytes: u64 = targets.iter().map(|f| f.plain_size().unwrap_or(0)).sum();
    let stored_bytes: u64 = targets.iter().map(|f| f.size).sum();
    let candidates: Vec<serde_json::Value> = targets
        .iter()
        .map(|f| {
            json!({
                "id": f.id(),
                "path": f.path,
                "destination": f.twin_path(),
                "stored_bytes": f.size,
                "plain_bytes": f.plain_size(),
            })
        })
        .collect();

    if args.dry_run || targets.is_empty() {
        for f in &targets {
            report.push(
                report::PROPOSED,
                format!(
                    "will decompress {} ({} -> {})",
                    relative_to(&home, &f.path),
                    human_bytes(f.size),
                    f.plain_size()
                        .map(human_bytes)
                        .unwrap_or_else(|| "size unknown".into())
                ),
            );
        }
        report.push(report::BACKUPS, "not created: nothing was changed");
        report.push(report::VERIFICATION, "no files changed");
        report.data = json!({ "dry_run": args.dry_run, "run_id": null, "candidates": candidates,
            "stored_bytes": stored_bytes, "plain_bytes": plain_bytes });
        return Ok(report);
    }

    let free = fs2::available_space(&home.root).unwrap_or(u64::MAX);
    if free < plain_bytes.saturating_add(FREE_SPACE_MARGIN) {
        return Err(MaintError::refused(
            format!(
                "the plain transcripts need {} but {} has {} free; nothing was changed",
                human_bytes(plain_bytes),
                home.display(),
                human_bytes(free)
            ),
            vec![],
        )
        .into());
    }
    confirm(
        &format!(
            "Decompress {} transcripts ({} -> {})?",
            targets.len(),
            human_bytes(stored_bytes),
            human_bytes(plain_bytes)
        ),
        args.yes,
    )?;
    refuse_if_codex_running(&home)?;
    let (store, recovered) = ctx.open_store_and_recover(&home)?;
    describe_recovery(&mut report, &recovered);
    let mut writer = match &index {
        Some(i) => {
            let w = IndexWriter::open(&i.path)?;
            w.preflight(&i.path)?;
            Some(w)
        }
        None => None,
    };
    let index_path = index.as_ref().map(|i| i.path.as_path());
    let plans: Vec<PlannedRecode> = targets
        .iter()
        .map(|f| {
            let row = rows.as_ref().and_then(|r| f.id().and_then(|id| r.get(id)));
            transcript_compress::plan_decompress_in_place(f, row, index_path)
        })
        .collect();
    let run = Run::begin(&store, "decompress", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let (ids, failure) = transcript_compress::execute_all(
        &run,
        plans,
        writer.as_mut(),
        "decompressing",
        &crate::progress::OnTerminal::new(),
    );
    run.finish(if failure.is_some() { "failed" } else { "done" })?;
    let mut done = Vec::new();
    for (f, outcome) in targets.iter().zip(&ids) {
        let Outcome::Done(id) = outcome else {
            report.extend(report::COMPLETED, outcome.left_line(&f.path));
            continue;
        };
        report.push(
            report::COMPLETED,
            format!(
                "decompressed {} (op {id})",
                relative_to(&home, &f.twin_path())
            ),
        );
        done.push(json!({ "op_id": id, "id": f.id(), "path": f.twin_path(), "from": f.path }));
    }
    report.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {}; each compressed file was decoded, hashed and replaced by its plain bytes",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );
    let applied: Vec<_> = crate::ops::record::read_all(store.catalog.ops_of_run(run_id)?)?
        .into_iter()
        .filter(transcript_compress::is_recode)
        .collect();
    let problems = crate::ops::verify_all_live(&applied, &crate::progress::OnTerminal::new());
    if problems.is_empty() {
        report.push(
            report::VERIFICATION,
            format!(
                "{} plain transcripts in place, each hashing to the bytes its compressed form held, each thread row pointing at it",
                applied.len()
            ),
        );
    } else {
        report.exit_code = crate::error::ExitKind::VerifyFailed.code();
        report.extend(
            report::VERIFICATION,
            problems.iter().map(|p| format!("FAILED: {p}")),
        );
    }
    report.push(
        report::RESIDUAL_RISK,
        format!("to compress them again: codex-maint undo --run {run_id}"),
    );
    report.data = json!({ "dry_run": false, "run_id": run_id, "decompressed": done,
        "stored_bytes": stored_bytes, "plain_bytes": plain_bytes, "verification_problems": problems });
    if let Some(e) = failure {
        return Err(e.context(format!(
            "run {run_id} stopped after {} transcripts (they can be undone); {}",
            done.len(),
            super::STOPPED_PART_WAY
        )));
    }
    Ok(report)
}
