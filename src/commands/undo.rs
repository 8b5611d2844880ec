//! `undo` (a whole run) and `restore` (one op): journaled runs of their own that take
//! changes back newest first, after checking every item is still as the change left it.

mod checks;
mod taking_back;

use anyhow::Result;
use serde_json::json;

use super::{Context, describe_recovery, refuse_if_codex_running};
use crate::error::MaintError;
use crate::home::CodexHome;
use crate::ops::OpRecord;
use crate::report::{self, Report};
use crate::store::{OpState, Store};
use taking_back::{ToRevert, revert};

const UNDO_COMMAND: &str = "undo";

#[derive(clap::Args)]
pub struct UndoArgs {
    /// Take back this run instead of the newest one with changes in force
    #[arg(long, value_name = "N")]
    pub run: Option<i64>,
    /// Check every item and show what would be taken back; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted so scripts can pass --yes to every command; undo asks nothing
    #[arg(long)]
    pub yes: bool,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// An operation id (digits, as `log --run N` shows it), or a session id or unique prefix
    pub target: String,
    /// Check the item and show what would be restored; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted so scripts can pass --yes to every command; restore asks nothing
    #[arg(long)]
    pub yes: bool,
}

pub fn undo(ctx: &Context, run_id: Option<i64>, dry_run: bool) -> Result<Report> {
    let home = ctx.locate_home()?;
    if !dry_run {
        refuse_if_codex_running(&home)?;
    }
    let (store, recovered) = open(ctx, &home, dry_run)?;
    let Some(store) = store else {
        if !dry_run {
            // A first store killed while it was built leaves its build behind, and nothing
            // in it: this is where it goes.
            crate::store::folder::remove_abandoned_builds_inside(&ctx.store_root);
        }
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
    let target = match run_id {
        Some(id) => {
            if !store.catalog.runs()?.iter().any(|r| r.id == id) {
                return Err(MaintError::usage(format!(
                    "there is no run {id}; see `codex-maint log`"
                ))
                .into());
            }
            refuse_if_forgotten(store, id)?;
            id
        }
        // The newest run with changes in force, passing over undo runs: a second `undo`
        // goes further back instead of redoing the first.
        None => match store.catalog.newest_run_with_live_ops(UNDO_COMMAND)? {
            Some(id) => id,
            None => return Ok(nothing_to_do("undo", "no run has changes left to undo")),
        },
    };
    if store.catalog.live_op_count(Some(target))? == 0 {
        return Ok(nothing_to_do(
            "undo",
            &format!("run {target} has nothing left to undo"),
        ));
    }
    revert(
        ctx,
        home,
        store,
        ToRevert::Run(target),
        "undo",
        Some(target),
        dry_run,
    )
}

/// `restore 42` is an op; anything else is a session id or prefix. Session ids are
/// UUIDs, so a prefix of digits alone is taken as an op id; add a letter or a dash.
pub fn restore(ctx: &Context, target: &str, dry_run: bool) -> Result<Report> {
    if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) {
        let op_id = target
            .parse()
            .map_err(|_| MaintError::usage(format!("op id {target} is out of range")))?;
        return restore_op(ctx, op_id, dry_run);
    }
    restore_session(ctx, target, dry_run)
}

/// Takes back codex-maint's last move of a session that is still in force (an archive, a
/// cleanup's archive, or any other op whose detail names the session), so it is where
/// Codex had it before that move, thread row included.
fn restore_session(ctx: &Context, text: &str, dry_run: bool) -> Result<Report> {
    let home = ctx.locate_home()?;
    if !dry_run {
        refuse_if_codex_running(&home)?;
    }
    let (store, recovered) = open(ctx, &home, dry_run)?;
    let store = store.ok_or_else(|| {
        MaintError::usage(format!(
            "codex-maint has never moved a session {text}: the store is empty"
        ))
    })?;
    let thread_id = super::session_in_catalog(&store.catalog, text)?;
    let ops = crate::ops::record::read_all(store.catalog.ops_of_thread(&thread_id)?)?;
    let mut forward_in_force = Vec::new();
    for op in ops {
        if op.state == OpState::Applied
            && op.reverted_by.is_none()
            && !takes_back_a_move(&store, &op)?
        {
            forward_in_force.push(op);
        }
    }
    let Some(last) = forward_in_force.pop() else {
        return Ok(nothing_to_do(
            "restore",
            &format!(
                "every move codex-maint made of session {thread_id} has been taken back; it is where Codex had it"
            ),
        ));
    };
    refuse_if_forgotten(&store, last.run_id)?;
    let mut report = revert(
        ctx,
        &home,
        &store,
        ToRevert::One(Box::new(last)),
        "restore",
        None,
        dry_run,
    )?;
    if let Some(earlier) = forward_in_force.last() {
        report.push(
            report::RESIDUAL_RISK,
            format!(
                "an earlier move still holds session {thread_id} ({}); `codex-maint restore {thread_id}` again takes that back too",
                crate::ops::describe(earlier)
            ),
        );
    }
    if let Some(data) = report.data.as_object_mut() {
        data.insert("session".into(), json!(thread_id));
    }
    describe_recovery(&mut report, &recovered);
    Ok(report)
}

/// Whether the op is an undo (or restore) of a move rather than a move: an undo of an
/// undo is a move again, so it is the parity of the chain of `reverts_op` that decides.
fn takes_back_a_move(store: &Store, op: &OpRecord) -> Result<bool> {
    let mut takes_back = false;
    let mut reverts = op.reverts_op;
    while let Some(id) = reverts {
        takes_back = !takes_back;
        reverts = crate::ops::record::read_one(store.catalog.op(id)?)?.and_then(|o| o.reverts_op);
    }
    Ok(takes_back)
}

fn restore_op(ctx: &Context, op_id: i64, dry_run: bool) -> Result<Report> {
    let home = ctx.locate_home()?;
    if !dry_run {
        refuse_if_codex_running(&home)?;
    }
    let (store, recovered) = open(ctx, &home, dry_run)?;
    let store = store
        .ok_or_else(|| MaintError::usage(format!("there is no op {op_id}: the store is empty")))?;
    let op = crate::ops::record::read_one(store.catalog.op(op_id)?)?.ok_or_else(|| {
        MaintError::usage(format!(
            "there is no op {op_id}; see `codex-maint log --run N`"
        ))
    })?;
    refuse_if_forgotten(&store, op.run_id)?;
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
    if !store.catalog.is_live(op_id)? {
        return Err(MaintError::refused(
            format!("op {op_id} is no longer in force: a later operation moved its item on (see `codex-maint log`); nothing was changed"),
            vec![],
        )
        .into());
    }
    let mut report = revert(
        ctx,
        &home,
        &store,
        ToRevert::One(Box::new(op)),
        "restore",
        None,
        dry_run,
    )?;
    describe_recovery(&mut report, &recovered);
    Ok(report)
}

/// A forgotten run's changes stand, but what would take them back may be gone: refused
/// (exit 3) before anything is checked or changed.
fn refuse_if_forgotten(store: &Store, run_id: i64) -> Result<()> {
    if let Some(when) = crate::store::retention::forgotten_at(&store.catalog, run_id)? {
        return Err(MaintError::refused(
            format!(
                "run {run_id} was forgotten on {when} (`codex-maint forget`): its changes stand, but can no longer be undone or restored; nothing was changed"
            ),
            vec![],
        )
        .into());
    }
    Ok(())
}

fn open(
    ctx: &Context,
    home: &CodexHome,
    dry_run: bool,
) -> Result<(Option<Store>, Vec<crate::ops::RecoveredOp>)> {
    if dry_run {
        return Ok((ctx.open_store_read_only()?, Vec::new()));
    }
    if !crate::store::exists(&ctx.store_root)? {
        return Ok((None, Vec::new()));
    }
    let (store, recovered) = ctx.open_store_and_recover(home)?;
    Ok((Some(store), recovered))
}

fn nothing_to_do(command: &str, why: &str) -> Report {
    let mut r = Report::spec_shaped(command, command);
    r.push(report::COMPLETED, format!("nothing: {why}"));
    r.push(report::VERIFICATION, "no files changed");
    r.data = json!({ "run_id": null, "reverted": [] });
    r
}
