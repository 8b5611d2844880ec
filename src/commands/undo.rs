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
use crate::ops::OpRecord;
use crate::ops::Run;
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::thread_row::IndexWriter;
use crate::ops::transcript_compress::{self, PlannedRecode};
use crate::report::{self, Report};
use crate::store::{OpState, Store};

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
    let live = crate::ops::record::read_all(store.catalog.live_ops()?)?;
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
    let mut report = revert(ctx, &home, &store, vec![last], "restore", None, dry_run)?;
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
    if !crate::ops::record::read_all(store.catalog.live_ops()?)?
        .iter()
        .any(|o| o.id == op_id)
    {
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

fn open(
    ctx: &Context,
    home: &CodexHome,
    dry_run: bool,
) -> Result<(Option<Store>, Vec<crate::ops::RecoveredOp>)> {
    if dry_run {
        return Ok((ctx.open_store_read_only()?, Vec::new()));
    }
    if !ctx.store_root.join(crate::store::CATALOG_FILE).exists() {
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

/// A thread index as a revert holds it: a dry run only reads it (through a connection that
/// writes not a byte in the home, WAL and `-shm` included), a run writes it.
enum IndexHandle {
    Reading(crate::home::sqlite_read::ReadOnlyDb),
    Writing(IndexWriter),
}

impl IndexHandle {
    fn open(path: &Path, dry_run: bool) -> Result<IndexHandle> {
        if dry_run {
            return Ok(IndexHandle::Reading(crate::home::sqlite_read::open(path)?));
        }
        let writer = IndexWriter::open(path)?;
        writer.preflight(path)?;
        Ok(IndexHandle::Writing(writer))
    }

    fn connection(&self) -> &rusqlite::Connection {
        match self {
            IndexHandle::Reading(db) => &db.conn,
            IndexHandle::Writing(w) => w.connection(),
        }
    }

    fn writer(&mut self) -> Option<&mut IndexWriter> {
        match self {
            IndexHandle::Reading(_) => None,
            IndexHandle::Writing(w) => Some(w),
        }
    }
}

/// An op to take back, with what its revert needs decided before anything moves.
enum Planned {
    Session(OpRecord, Box<PlannedMove>),
    Recode(OpRecord, Box<PlannedRecode>),
    Other(OpRecord),
}

impl Planned {
    fn op(&self) -> &OpRecord {
        match self {
            Planned::Session(op, _) | Planned::Recode(op, _) | Planned::Other(op) => op,
        }
    }

    /// The thread index a batched revert writes, for grouping consecutive ones.
    fn batch_key(&self) -> Option<(bool, Option<String>)> {
        match self {
            Planned::Session(_, p) => Some((true, p.detail.index.clone())),
            Planned::Recode(_, p) => Some((false, p.detail.index.clone())),
            Planned::Other(_) => None,
        }
    }
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
    let to_check = crate::ops::moved_item_paths(&ops);
    let checking = crate::progress::bar(to_check.len() as u64, "checking");
    let hashes = crate::content_hash::Prefetched::with_progress(to_check, &checking);
    checking.finish_and_clear();
    let guard = crate::home_guard::HomeGuard::new(&home.root);
    let mut indexes: HashMap<String, IndexHandle> = HashMap::new();
    let indexes_now = crate::ops::row_now::IndexesNow::default();
    let mut plans: Vec<Planned> = Vec::new();
    let mut conflicts = Vec::new();
    let mut readers = HashMap::new();
    for op in ops {
        if transcript_compress::is_recode(&op) {
            let refused = crate::ops::path_conflicts(&guard, &op);
            if !refused.is_empty() {
                conflicts.extend(refused);
                plans.push(Planned::Other(op));
                continue;
            }
            let (plan, found) =
                transcript_compress::plan_checked_revert(&op, &our_folders, &mut readers);
            conflicts.extend(found);
            if let Some(plan) = plan {
                if let Some(path) = &plan.detail.index
                    && !dry_run
                    && !indexes.contains_key(path)
                {
                    indexes.insert(path.clone(), IndexHandle::open(Path::new(path), false)?);
                }
                plans.push(Planned::Recode(op, Box::new(plan)));
            } else {
                plans.push(Planned::Other(op));
            }
            continue;
        }
        if !session_move::is_move(&op) {
            let refused = crate::ops::path_conflicts(&guard, &op);
            if !refused.is_empty() {
                // Its other checks would already read or stat where the guard says no.
                conflicts.extend(refused);
                plans.push(Planned::Other(op));
                continue;
            }
            conflicts.extend(crate::ops::revert_conflicts(store, &op));
            plans.push(Planned::Other(op));
            continue;
        }
        let mut plan = session_move::plan_revert(&op, &our_folders)?;
        if let Err(reason) = session_move::adopt_index_now(&op, &mut plan, &indexes_now) {
            conflicts.push(reason);
        }
        let index = match &plan.detail.index {
            Some(path) if Path::new(path).exists() => {
                if !indexes.contains_key(path) {
                    match IndexHandle::open(Path::new(path), dry_run) {
                        Ok(handle) => {
                            indexes.insert(path.clone(), handle);
                        }
                        Err(e)
                            if crate::error::exit_kind_of(&e)
                                == crate::error::ExitKind::Refused =>
                        {
                            return Err(e);
                        }
                        Err(e) => conflicts.push(format!(
                            "op {}: cannot open the thread index {path}: {e:#}",
                            op.id
                        )),
                    }
                }
                indexes.get(path).map(IndexHandle::connection)
            }
            _ => None,
        };
        conflicts.extend(session_move::revert_conflicts(
            &op, &mut plan, index, &hashes,
        ));
        conflicts.extend(crate::ops::path_conflicts(&guard, &op));
        plans.push(Planned::Session(op, Box::new(plan)));
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
    // A dry run says what will be taken back, a run what was.
    let describe = |op: &OpRecord| {
        format!(
            "{} op {}: {} ({})",
            if dry_run {
                "will take back"
            } else {
                "took back"
            },
            op.id,
            crate::ops::describe(op),
            human_bytes(op.size.unwrap_or(0).max(0) as u64)
        )
    };
    let rel = |text: String| text.replace(&format!("{}/", home.display()), "");
    if dry_run {
        for p in &plans {
            report.push(report::PROPOSED, rel(describe(p.op())));
        }
        report.push(
            report::VERIFICATION,
            "checked every item is still as its op left it: no conflicts; no files changed",
        );
        let ids: Vec<i64> = plans.iter().map(|p| p.op().id).collect();
        report.data = json!({ "dry_run": true, "run_id": null, "reverts_run": reverts_run, "reverts_ops": ids });
        return Ok(report);
    }

    let run = Run::begin(store, command, &ctx.argv, &home.root, reverts_run)?;
    let progress = crate::progress::bar(plans.len() as u64, "taking back");
    let run_id = run.id;
    let mut reverted = Vec::new();
    let mut failure = None;
    let mut i = 0;
    while i < plans.len() && failure.is_none() {
        if let Planned::Other(op) = &plans[i] {
            match crate::ops::revert(&run, op) {
                Ok(new_id) => {
                    progress.inc(1);
                    report.push(
                        report::COMPLETED,
                        rel(format!("{} (op {new_id})", describe(op))),
                    );
                    reverted.push(json!({ "op_id": new_id, "reverts_op": op.id, "kind": op.kind, "from": op.dst, "to": op.src }));
                }
                Err(e) => failure = Some(e),
            }
            i += 1;
            continue;
        }
        // Consecutive moves (or recodes) of one index share a batch: one row transaction.
        let key = plans[i].batch_key();
        let mut j = i;
        while j < plans.len() && j - i < session_move::BATCH && plans[j].batch_key() == key {
            j += 1;
        }
        let index = key.as_ref().and_then(|(_, index)| index.clone());
        let writer = index
            .as_ref()
            .and_then(|k| indexes.get_mut(k))
            .and_then(IndexHandle::writer);
        let done = if matches!(plans[i], Planned::Session(..)) {
            let batch: Vec<PlannedMove> = plans[i..j]
                .iter()
                .filter_map(|p| match p {
                    Planned::Session(_, m) => Some((**m).clone()),
                    _ => None,
                })
                .collect();
            session_move::execute_batch(&run, batch, writer)
        } else {
            let batch: Vec<PlannedRecode> = plans[i..j]
                .iter()
                .filter_map(|p| match p {
                    Planned::Recode(_, r) => Some((**r).clone()),
                    _ => None,
                })
                .collect();
            transcript_compress::execute_batch(&run, batch, writer)
        };
        match done {
            Ok(ids) => {
                progress.inc((j - i) as u64);
                for (p, new_id) in plans[i..j].iter().zip(ids) {
                    let (thread_id, from, to) = match p {
                        Planned::Session(_, m) => (&m.detail.thread_id, &m.src, &m.dst),
                        Planned::Recode(_, r) => (&r.detail.thread_id, &r.src, &r.dst),
                        Planned::Other(_) => continue,
                    };
                    let op = p.op();
                    report.push(
                        report::COMPLETED,
                        rel(format!("{} (op {new_id})", describe(op))),
                    );
                    reverted.push(json!({ "op_id": new_id, "reverts_op": op.id, "kind": op.kind, "thread_id": thread_id,
                        "from": from, "to": to }));
                }
            }
            Err(e) => failure = Some(e),
        }
        i = j;
    }
    progress.finish_and_clear();
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
        format!("{} items back at their original paths; each was checked (place, hash, thread row) before it moved", reverted.len()),
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
            "{command} run {run_id} stopped after {} items; {}",
            reverted.len(),
            super::STOPPED_PART_WAY
        )));
    }
    Ok(report)
}
