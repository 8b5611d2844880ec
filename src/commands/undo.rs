//! `undo` (a whole run) and `restore` (one op): journaled runs of their own that take
//! changes back newest first, after checking every item is still as the change left it.

use anyhow::Result;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

use super::{Context, describe_recovery, refuse_if_codex_running};
use crate::clock::human_bytes;
use crate::error::MaintError;
use crate::home::CodexHome;
use crate::ops::Run;
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::thread_row::IndexWriter;
use crate::report::{self, Report};
use crate::store::{OpRecord, OpState, Store};

const UNDO_COMMAND: &str = "undo";

pub fn undo(ctx: &Context, run_id: Option<i64>, dry_run: bool) -> Result<Report> {
    let home = ctx.locate_home()?;
    if !dry_run {
        refuse_if_codex_running(&home)?;
    }
    let (store, recovered) = open(ctx, dry_run)?;
    let Some(store) = store else {
        return Ok(nothing_to_do(
            "undo",
            "there is no store yet: codex-maint has changed nothing",
        ));
    };
    let mut report = undo_in(ctx, &home, &store, run_id, dry_run)?;
    describe_recovery(&mut report, &recovered);
    Ok(report)
}

fn undo_in(
    ctx: &Context,
    home: &CodexHome,
    store: &Store,
    run_id: Option<i64>,
    dry_run: bool,
) -> Result<Report> {
    let runs = store.catalog.runs()?;
    let live = store.catalog.live_ops()?;
    let target = match run_id {
        Some(id) => runs.iter().find(|r| r.id == id).ok_or_else(|| {
            MaintError::usage(format!("there is no run {id}; see `codex-maint log`"))
        })?,
        // The newest run with changes in force, passing over undo runs: a second `undo`
        // goes further back instead of redoing the first.
        None => match runs
            .iter()
            .rev()
            .find(|r| r.command != UNDO_COMMAND && live.iter().any(|o| o.run_id == r.id))
        {
            Some(r) => r,
            None => return Ok(nothing_to_do("undo", "no run has changes left to undo")),
        },
    };
    let mut ops: Vec<OpRecord> = live.into_iter().filter(|o| o.run_id == target.id).collect();
    ops.sort_by_key(|o| std::cmp::Reverse(o.seq));
    if ops.is_empty() {
        return Ok(nothing_to_do(
            "undo",
            &format!("run {} has nothing left to undo", target.id),
        ));
    }
    revert(ctx, home, store, ops, "undo", Some(target.id), dry_run)
}

pub fn restore(ctx: &Context, op_id: i64, dry_run: bool) -> Result<Report> {
    let home = ctx.locate_home()?;
    if !dry_run {
        refuse_if_codex_running(&home)?;
    }
    let (store, recovered) = open(ctx, dry_run)?;
    let store = store
        .ok_or_else(|| MaintError::usage(format!("there is no op {op_id}: the store is empty")))?;
    let op = store.catalog.op(op_id)?.ok_or_else(|| {
        MaintError::usage(format!(
            "there is no op {op_id}; see `codex-maint log --run N`"
        ))
    })?;
    if let Some(by) = op.reverted_by {
        return Err(MaintError::refused(
            format!("op {op_id} was already taken back by op {by}; nothing was changed"),
            vec![],
        )
        .into());
    }
    if op.state != OpState::Applied {
        return Err(MaintError::refused(
            format!(
                "op {op_id} is {}, not applied; there is nothing to restore",
                op.state.as_str()
            ),
            vec![],
        )
        .into());
    }
    if !store.catalog.live_ops()?.iter().any(|o| o.id == op_id) {
        return Err(MaintError::refused(
            format!("op {op_id} is no longer in force: a later operation moved its item on (see `codex-maint log`); nothing was changed"),
            vec![],
        )
        .into());
    }
    let mut report = revert(ctx, &home, &store, vec![op], "restore", None, dry_run)?;
    describe_recovery(&mut report, &recovered);
    Ok(report)
}

fn open(ctx: &Context, dry_run: bool) -> Result<(Option<Store>, Vec<crate::ops::RecoveredOp>)> {
    if dry_run {
        // A dry run takes no lock and writes nothing; it reads through a writer-less view.
        if !ctx.store_root.join(crate::store::CATALOG_FILE).exists() {
            return Ok((None, Vec::new()));
        }
        let (store, _) = ctx.open_store_without_recovery()?;
        return Ok((Some(store), Vec::new()));
    }
    if !ctx.store_root.join(crate::store::CATALOG_FILE).exists() {
        return Ok((None, Vec::new()));
    }
    let (store, recovered) = ctx.open_store_and_recover()?;
    Ok((Some(store), recovered))
}

fn nothing_to_do(command: &str, why: &str) -> Report {
    let mut r = Report::spec_shaped(command, command);
    r.push(report::COMPLETED, format!("nothing: {why}"));
    r.push(report::VERIFICATION, "no files changed");
    r.data = json!({ "run_id": null, "reverted": [] });
    r
}

fn revert(
    ctx: &Context,
    home: &CodexHome,
    store: &Store,
    ops: Vec<OpRecord>,
    command: &str,
    reverts_run: Option<i64>,
    dry_run: bool,
) -> Result<Report> {
    let our_folders = session_move::folders_we_created(store)?;
    let mut writers: HashMap<String, IndexWriter> = HashMap::new();
    let mut plans: Vec<(OpRecord, PlannedMove)> = Vec::new();
    let mut conflicts = Vec::new();
    for op in ops {
        if !session_move::is_move(&op) {
            conflicts.push(format!(
                "op {}: kind {} cannot be taken back by this version",
                op.id, op.kind
            ));
            continue;
        }
        let mut plan = session_move::plan_revert(&op, &our_folders)?;
        let writer = match &plan.detail.index {
            Some(path) if plan.detail.row_before.is_some() => {
                if !writers.contains_key(path) {
                    match IndexWriter::open(Path::new(path)) {
                        Ok(w) => {
                            if !dry_run {
                                w.preflight(Path::new(path))?;
                            }
                            writers.insert(path.clone(), w);
                        }
                        Err(e) => conflicts.push(format!(
                            "op {}: cannot open the thread index {path}: {e:#}",
                            op.id
                        )),
                    }
                }
                writers.get(path)
            }
            _ => None,
        };
        conflicts.extend(session_move::revert_conflicts(&op, &mut plan, writer));
        plans.push((op, plan));
    }
    if !conflicts.is_empty() {
        return Err(MaintError::refused(
            format!(
                "{command} found {} conflict{}; nothing was changed",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" }
            ),
            conflicts,
        )
        .into());
    }

    let mut report = Report::spec_shaped(command, command);
    let describe = |op: &OpRecord, plan: &PlannedMove| {
        format!(
            "{} {} ({}): {} -> {}",
            if op.kind == session_move::ARCHIVE {
                "unarchive"
            } else {
                "re-archive"
            },
            plan.detail.thread_id,
            human_bytes(op.size.unwrap_or(0) as u64),
            super::relative_to(home, &plan.src),
            super::relative_to(home, &plan.dst)
        )
    };
    if dry_run {
        for (op, plan) in &plans {
            report.push(
                report::PROPOSED,
                format!("{} (reverts op {})", describe(op, plan), op.id),
            );
        }
        report.push(
            report::VERIFICATION,
            "checked every item is still as its op left it: no conflicts; no files changed",
        );
        report.data = json!({ "dry_run": true, "run_id": null, "reverts_run": reverts_run,
            "reverts_ops": plans.iter().map(|(o, _)| o.id).collect::<Vec<_>>() });
        return Ok(report);
    }

    let run = Run::begin(store, command, &ctx.argv, &home.display(), reverts_run)?;
    let run_id = run.id;
    let mut reverted = Vec::new();
    let mut failure = None;
    // Ops of different indexes never share a batch, so each batch's rows change in one
    // transaction of one database.
    let mut i = 0;
    while i < plans.len() {
        let key = plans[i].1.detail.index.clone();
        let mut j = i;
        while j < plans.len() && plans[j].1.detail.index == key && j - i < 256 {
            j += 1;
        }
        let batch: Vec<PlannedMove> = plans[i..j].iter().map(|(_, p)| p.clone()).collect();
        let writer = key.as_ref().and_then(|k| writers.get_mut(k));
        match session_move::execute_batch(&run, batch, writer) {
            Ok(ids) => {
                for ((op, plan), new_id) in plans[i..j].iter().zip(ids) {
                    report.push(
                        report::COMPLETED,
                        format!("{} (op {new_id}, reverts op {})", describe(op, plan), op.id),
                    );
                    reverted.push(json!({ "op_id": new_id, "reverts_op": op.id, "thread_id": plan.detail.thread_id,
                        "from": plan.src, "to": plan.dst }));
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        i = j;
    }
    run.finish(if failure.is_some() { "failed" } else { "done" })?;
    report.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {}",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );
    report.push(
        report::VERIFICATION,
        format!(
            "{} items back at their original paths, hashes and thread rows checked before the move",
            reverted.len()
        ),
    );
    report.push(
        report::RESIDUAL_RISK,
        format!(
            "this {command} is itself run {run_id}; `codex-maint undo --run {run_id}` redoes it"
        ),
    );
    report.data = json!({ "dry_run": false, "run_id": run_id, "reverts_run": reverts_run, "reverted": reverted });
    if let Some(e) = failure {
        return Err(e.context(format!(
            "{command} run {run_id} stopped after {} items",
            reverted.len()
        )));
    }
    Ok(report)
}
