//! Taking a recode back. The checks exist so that undo refuses, rather than overwrites or
//! loses, a transcript or row that changed since the recode; the revert itself is a new
//! journaled recode in the other direction.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

use super::execute::execute_batch;
use super::{Direction, PlannedRecode, RecodeDetail};
use crate::fs_atomic::temp_path_beside;
use crate::ops::thread_row::IndexWriter;
use crate::ops::{OpRecord, Run};
use crate::store::Store;

/// The inverse of an applied recode: the other direction, from where it left the
/// transcript back to where it was, the row back to what it was. The hashes it recorded
/// are what the result must hash to.
pub fn plan_revert(op: &OpRecord, our_folders: &[PathBuf]) -> Result<PlannedRecode> {
    let detail = op.detail_as::<RecodeDetail>()?.clone();
    let direction = Direction::of_kind(op.kind)
        .with_context(|| format!("op {} is not a compression", op.id))?;
    let dst_of_op = PathBuf::from(op.dst.as_deref().context("a recode has a destination")?);
    let back_to = PathBuf::from(&op.src);
    Ok(PlannedRecode {
        direction: direction.reversed(),
        src: dst_of_op.clone(),
        dst: back_to.clone(),
        detail: RecodeDetail {
            thread_id: detail.thread_id,
            index: detail.index,
            row_before: detail.row_after,
            row_after: detail.row_before,
            temp: temp_path_beside(&back_to),
            settings: detail.settings,
            plain_hash: detail.plain_hash,
            plain_len: detail.plain_len,
            stored_hash: detail.stored_hash,
            stored_len: detail.stored_len,
            created_dirs: Vec::new(),
            tidy_dirs: our_folders
                .iter()
                .filter(|d| dst_of_op.starts_with(d))
                .cloned()
                .collect(),
            left_to_codex: None,
            created: None,
        },
        reverts_op: Some(op.id),
    })
}

/// Why an applied recode cannot be taken back now; empty when it can.
pub(super) fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    let our_folders = crate::ops::session_move::folders_we_created(store).unwrap_or_default();
    plan_checked_revert(op, &our_folders, &mut std::collections::HashMap::new()).1
}

/// The revert of `op`, and why it cannot run now (empty when it can): the transcript gone
/// or changed since, its original place occupied, or its row not as expected. Each thread
/// index is read once, through `readers`, which a batch of reverts shares.
pub fn plan_checked_revert(
    op: &OpRecord,
    our_folders: &[PathBuf],
    readers: &mut std::collections::HashMap<String, crate::sqlite_read::ReadOnlyDb>,
) -> (Option<PlannedRecode>, Vec<String>) {
    let mut conflicts = Vec::new();
    let mut plan = match plan_revert(op, our_folders) {
        Ok(p) => p,
        Err(e) => return (None, vec![format!("{e:#}")]),
    };
    match fs::symlink_metadata(&plan.src) {
        Err(_) => conflicts.push(format!(
            "op {}: {} is no longer there",
            op.id,
            plan.src.display()
        )),
        Ok(m) if !m.is_file() => conflicts.push(format!(
            "op {}: {} is no longer a regular file",
            op.id,
            plan.src.display()
        )),
        Ok(_) => match crate::content_hash::hash_file(&plan.src) {
            Ok(h) if Some(&h) == op.hash_after.as_ref() => {}
            Ok(_) => conflicts.push(format!(
                "op {}: {} changed since (hash differs)",
                op.id,
                plan.src.display()
            )),
            Err(e) => conflicts.push(format!(
                "op {}: cannot read {}: {e}",
                op.id,
                plan.src.display()
            )),
        },
    }
    if fs::symlink_metadata(&plan.dst).is_ok() {
        conflicts.push(format!(
            "op {}: the original place {} is occupied",
            op.id,
            plan.dst.display()
        ));
    }
    conflicts.extend(row_conflicts(op, &mut plan, readers));
    (Some(plan), conflicts)
}

/// The thread index a revert of `op` acts on: the one recorded, else the one the home has
/// now (Codex may have built it since). `Err` when a recorded index is gone or the one
/// found is not understood.
fn index_for_revert(op: &OpRecord, plan: &mut PlannedRecode) -> Result<Option<String>, String> {
    if plan.detail.index.is_none() {
        plan.detail.index = crate::ops::row_now::index_of_home_now(&plan.src)
            .map_err(|reason| format!("op {}: {reason}", op.id))?
            .map(|p| crate::path_text::recorded_string(&p))
            .transpose()
            .map_err(|e| format!("op {}: {e:#}", op.id))?;
    }
    match &plan.detail.index {
        Some(path) if Path::new(path).exists() => Ok(Some(path.clone())),
        Some(path) if plan.detail.row_before.is_some() => {
            Err(format!("op {}: the thread index {path} is gone", op.id))
        }
        _ => Ok(None),
    }
}

/// Decides, against the index as it is now, the row change the revert makes, and keeps it
/// in `plan` so the journal records it (see `row_now::decide`).
fn decide_row_now(
    op: &OpRecord,
    plan: &mut PlannedRecode,
    conn: &rusqlite::Connection,
    index: &str,
) -> Result<(), String> {
    let expected = plan
        .detail
        .row_before
        .as_ref()
        .zip(plan.detail.row_after.as_ref());
    match crate::ops::row_now::decide(
        conn,
        index,
        &plan.detail.thread_id,
        expected,
        &plan.src,
        &plan.dst,
        crate::clock::now_unix(),
    ) {
        Ok(Some(change)) => {
            plan.detail.row_before = Some(change.before);
            plan.detail.row_after = Some(change.after);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(reason) => Err(format!("op {}: {reason}", op.id)),
    }
}

fn row_conflicts(
    op: &OpRecord,
    plan: &mut PlannedRecode,
    readers: &mut std::collections::HashMap<String, crate::sqlite_read::ReadOnlyDb>,
) -> Vec<String> {
    let index = match index_for_revert(op, plan) {
        Ok(Some(index)) => index,
        Ok(None) => return Vec::new(),
        Err(reason) => return vec![reason],
    };
    if !readers.contains_key(&index) {
        match crate::home::sqlite_read::open(Path::new(&index)) {
            Ok(db) => {
                readers.insert(index.clone(), db);
            }
            Err(e) => {
                return vec![format!(
                    "op {}: cannot read the thread index {index}: {e:#}",
                    op.id
                )];
            }
        }
    }
    decide_row_now(op, plan, &readers[&index].conn, &index)
        .err()
        .into_iter()
        .collect()
}

/// Takes back one applied recode as a new journaled op of `run`.
pub(super) fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let our_folders = crate::ops::session_move::folders_we_created(run.store)?;
    let mut plan = plan_revert(op, &our_folders)?;
    let refuse = |reason: String| {
        crate::error::MaintError::refused(
            format!("{reason}; nothing was changed"),
            vec![reason.clone()],
        )
    };
    let mut index = match index_for_revert(op, &mut plan).map_err(refuse)? {
        Some(p) => {
            let writer = IndexWriter::open(Path::new(&p))?;
            writer.preflight(Path::new(&p))?;
            decide_row_now(op, &mut plan, writer.connection(), &p).map_err(refuse)?;
            Some(writer)
        }
        None => None,
    };
    let src = plan.src.clone();
    let outcome = execute_batch(run, vec![plan], index.as_mut())?;
    match &outcome[0] {
        crate::ops::Outcome::Done(id) => Ok(*id),
        left => Err(crate::error::MaintError::refused(
            left.left_line(&src).unwrap_or_default(),
            vec![src.display().to_string()],
        )
        .into()),
    }
}
