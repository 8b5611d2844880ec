//! Taking back ops in force a page at a time, in two passes: the first checks every page
//! with nothing moved (a conflict anywhere refuses the whole undo), the second checks each
//! page again and takes it back. Memory holds a page, its plans, and per moved session a
//! signature of the file the first pass hashed; the per-item list goes to disk.

use anyhow::Result;
use serde_json::json;

use super::checks::{Checker, Planned};
use crate::clock::human_bytes;
use crate::error::MaintError;
use crate::home::CodexHome;
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::transcript_compress::{self, PlannedRecode};
use crate::ops::{OpKind, OpRecord, Outcome, Run};
use crate::report::{self, LongListWriter, Report};
use crate::store::Store;

/// What a revert takes back: the ops in force of a run, or one op.
pub(super) enum ToRevert {
    Run(i64),
    One(Box<OpRecord>),
}

impl ToRevert {
    fn count(&self, store: &Store) -> Result<u64> {
        match self {
            ToRevert::Run(id) => store.catalog.live_op_count(Some(*id)),
            ToRevert::One(_) => Ok(1),
        }
    }

    /// Calls `each` with every page, newest op first, until it returns false.
    fn pages(
        &self,
        store: &Store,
        mut each: impl FnMut(Vec<OpRecord>) -> Result<bool>,
    ) -> Result<()> {
        match self {
            ToRevert::One(op) => {
                each(vec![(**op).clone()])?;
            }
            ToRevert::Run(id) => {
                // What later runs did again of this run's changes was done after them, so it
                // is taken back first.
                let redos = store.catalog.live_redo_ids_of_run(*id)?;
                for ids in redos.chunks(crate::store::catalog::live_page_size()) {
                    let mut page = Vec::with_capacity(ids.len());
                    for op_id in ids {
                        if let Some(op) = store.catalog.op(*op_id)? {
                            page.push(op);
                        }
                    }
                    if !each(crate::ops::record::read_all(page)?)? {
                        return Ok(());
                    }
                }
                let mut before = i64::MAX;
                loop {
                    let page =
                        crate::ops::record::read_all(store.catalog.live_ops_of_run_before(
                            *id,
                            before,
                            crate::store::catalog::live_page_size(),
                        )?)?;
                    let Some(last) = page.last() else { break };
                    before = last.seq;
                    if !each(page)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Item lines shown in full up to this many, as they always were.
const SHOWN_IN_FULL: usize = 50;
/// Past that, the text keeps this many of the largest and a count.
const LARGEST_SHOWN: usize = 20;

/// The lines of a per-item section: every one for a short list, else the largest.
struct ItemLines {
    in_order: Vec<String>,
    largest: report::Largest,
}

impl ItemLines {
    fn new() -> ItemLines {
        ItemLines {
            in_order: Vec::new(),
            largest: report::Largest::new(LARGEST_SHOWN),
        }
    }

    fn offer(&mut self, size: u64, line: impl FnOnce() -> String) {
        if self.largest.seen() < SHOWN_IN_FULL as u64 {
            let line = line();
            self.in_order.push(line.clone());
            self.largest.offer(size, || line);
        } else {
            self.in_order = Vec::new();
            self.largest.offer(size, line);
        }
    }

    fn into_lines(self, log_run: Option<i64>) -> Vec<String> {
        if self.largest.seen() <= SHOWN_IN_FULL as u64 {
            return self.in_order;
        }
        self.largest.into_lines(|more| match log_run {
            Some(run) => {
                format!("... and {more} more (every item: --json or `codex-maint log --run {run}`)")
            }
            None => format!("... and {more} more (every item: --json)"),
        })
    }
}

fn refused_for(command: &str, conflicts: Vec<String>, when: &str) -> anyhow::Error {
    MaintError::refused(
        format!(
            "{command} found {} conflict{}{when}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" }
        ),
        conflicts,
    )
    .into()
}

pub(super) fn revert(
    ctx: &super::Context,
    home: &CodexHome,
    store: &Store,
    what: ToRevert,
    command: &str,
    reverts_run: Option<i64>,
    dry_run: bool,
) -> Result<Report> {
    let total = what.count(store)?;
    let mut checker = Checker::new(store, home, dry_run)?;
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
    let size_of = |op: &OpRecord| op.size.unwrap_or(0).max(0) as u64;

    let checking = crate::progress::bar(total, "checking");
    let mut conflicts = Vec::new();
    let mut proposed = ItemLines::new();
    let mut proposed_ids = LongListWriter::new()?;
    what.pages(store, |page| {
        let (plans, found) = checker.check_page(page)?;
        checking.inc(plans.len() as u64);
        conflicts.extend(found);
        if dry_run && conflicts.is_empty() {
            for p in &plans {
                proposed.offer(size_of(p.op()), || rel(describe(p.op())));
                proposed_ids.push(&p.op().id)?;
            }
        }
        Ok(true)
    })?;
    checking.finish_and_clear();
    if !conflicts.is_empty() {
        return Err(refused_for(command, conflicts, "; nothing was changed"));
    }

    let mut report = Report::spec_shaped(command, command);
    if dry_run {
        report.extend(report::PROPOSED, proposed.into_lines(reverts_run));
        report.push(
            report::VERIFICATION,
            "checked every item is still as its op left it: no conflicts; no files changed",
        );
        report.data = json!({ "dry_run": true, "run_id": null, "reverts_run": reverts_run });
        report.attach_list("reverts_ops", proposed_ids.finish()?);
        return Ok(report);
    }

    let run = Run::begin(store, command, &ctx.argv, &home.root, reverts_run)?;
    let run_id = run.id;
    let progress = crate::progress::bar(total, "taking back");
    let mut completed = ItemLines::new();
    let mut reverted = LongListWriter::new()?;
    let mut failure = None;
    let mut left_to_codex = Vec::new();
    let paged = what.pages(store, |page| {
        // Checked again just before it moves: the first pass proved the page could go, but
        // the home is not locked against the user in between.
        let (plans, found) = match checker.check_page(page) {
            Ok(checked) => checked,
            Err(e) => {
                failure = Some(e);
                return Ok(false);
            }
        };
        if !found.is_empty() {
            failure = Some(refused_for(command, found, " after it began; it stopped there"));
            return Ok(false);
        }
        let mut taken_back = |op: &OpRecord, new_id: i64, item: serde_json::Value| -> Result<()> {
            progress.inc(1);
            completed.offer(size_of(op), || rel(format!("{} (op {new_id})", describe(op))));
            reverted.push(&item)
        };
        let mut i = 0;
        while i < plans.len() {
            // Consecutive row repairs go back together: one commit for the lot.
            let repairs: Vec<&OpRecord> = plans[i..]
                .iter()
                .map_while(|p| match p {
                    Planned::Other(op) if op.kind == OpKind::RepairThreadRow => Some(op),
                    _ => None,
                })
                .collect();
            if repairs.len() > 1 {
                match crate::ops::row_repair::revert_all(&run, &repairs) {
                    Ok(new_ids) => {
                        for (op, new_id) in repairs.iter().zip(new_ids) {
                            taken_back(
                                op,
                                new_id,
                                json!({ "op_id": new_id, "reverts_op": op.id, "kind": op.kind, "from": op.dst, "to": op.src }),
                            )?;
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        return Ok(false);
                    }
                }
                i += repairs.len();
                continue;
            }
            if let Planned::Other(op) = &plans[i] {
                match crate::ops::revert(&run, op) {
                    Ok(new_id) => taken_back(
                        op,
                        new_id,
                        json!({ "op_id": new_id, "reverts_op": op.id, "kind": op.kind, "from": op.dst, "to": op.src }),
                    )?,
                    Err(e) => {
                        failure = Some(e);
                        return Ok(false);
                    }
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
            let writer = key
                .as_ref()
                .and_then(|(_, index)| index.as_ref())
                .and_then(|k| checker.indexes.get_mut(k))
                .and_then(|h| h.writer());
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
            let ids = match done {
                Ok(ids) => ids,
                Err(e) => {
                    failure = Some(e);
                    return Ok(false);
                }
            };
            for (p, outcome) in plans[i..j].iter().zip(ids) {
                let new_id = match outcome {
                    Outcome::Done(id) => id,
                    Outcome::LeftToCodex { why, .. } => {
                        left_to_codex.push(rel(format!(
                            "left as Codex wrote it: {} ({why})",
                            describe(p.op())
                        )));
                        continue;
                    }
                };
                let (thread_id, from, to) = match p {
                    Planned::Session(_, m) => (&m.detail.thread_id, &m.src, &m.dst),
                    Planned::Recode(_, r) => (&r.detail.thread_id, &r.src, &r.dst),
                    Planned::Other(_) => continue,
                };
                let op = p.op();
                taken_back(
                    op,
                    new_id,
                    json!({ "op_id": new_id, "reverts_op": op.id, "kind": op.kind, "thread_id": thread_id,
                        "from": from, "to": to }),
                )?;
            }
            i = j;
        }
        Ok(true)
    });
    if let Err(e) = paged {
        failure.get_or_insert(e);
    }
    progress.finish_and_clear();
    run.finish(if failure.is_some() { "failed" } else { "done" })?;
    let count = reverted.len();
    if let Some(e) = failure {
        return Err(e.context(format!(
            "{command} run {run_id} stopped after {count} items; {}",
            crate::write_gate::STOPPED_PART_WAY
        )));
    }
    report.extend(report::COMPLETED, completed.into_lines(Some(run_id)));
    report.extend(report::COMPLETED, left_to_codex);
    report.extend(report::COMPLETED, checker.taken_over.values().cloned());
    report.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {}",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );
    report.push(
        report::VERIFICATION,
        format!("{count} items back at their original paths; each was checked (place, hash, thread row) before it moved"),
    );
    report.push(
        report::RESIDUAL_RISK,
        format!(
            "this {command} is itself run {run_id}; `codex-maint undo --run {run_id}` redoes it"
        ),
    );
    report.data = json!({ "dry_run": false, "run_id": run_id, "reverts_run": reverts_run });
    report.attach_list("reverted", reverted.finish()?);
    Ok(report)
}
