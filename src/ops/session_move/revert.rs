//! Planning and checking the move back. Undo refuses rather than overwrite an occupied
//! place or carry back a transcript changed since, and decides the row against the index as
//! it is now, because Codex may have written to it in between.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

use super::{MoveDetail, PlannedMove};
use crate::ops::{OpKind, OpRecord};
use crate::store::Store;

/// Every folder codex-maint ever created for a destination. An inverse move tidies those
/// above its item once they are empty: the op that created a shared folder may be taken
/// back before, or in another run than, the ops that filled it.
pub fn folders_we_created(store: &Store) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for list in store.catalog.created_dir_lists()? {
        for d in serde_json::from_value::<Vec<PathBuf>>(list).unwrap_or_default() {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// The inverse of an applied move: back to where it was, the row back to what it was;
/// of `our_folders`, those above the item are removed once the move leaves them empty.
pub fn plan_revert(op: &OpRecord, our_folders: &[PathBuf]) -> Result<PlannedMove> {
    let detail = op.detail_as::<MoveDetail>()?;
    let dst_of_op = op.dst.clone().context("a move op has a destination")?;
    let kind = if op.kind == OpKind::ArchiveSession {
        OpKind::UnarchiveSession
    } else {
        OpKind::ArchiveSession
    };
    Ok(PlannedMove {
        kind,
        src: PathBuf::from(&dst_of_op),
        dst: PathBuf::from(&op.src),
        detail: MoveDetail {
            thread_id: detail.thread_id.clone(),
            index: detail.index.clone(),
            row_before: detail.row_after.clone(),
            row_after: detail.row_before.clone(),
            created_dirs: Vec::new(),
            tidy_dirs: our_folders
                .iter()
                .filter(|d| Path::new(dst_of_op.as_str()).starts_with(d))
                .cloned()
                .collect(),
            left_to_codex: None,
        },
        reverts_op: Some(op.id),
        known_hash: None,
    })
}

/// Names, in `plan`, the thread index the home has now when the op recorded none: Codex may
/// have built one since, and a revert must carry the row it made along with the file.
pub fn adopt_index_now(
    op: &OpRecord,
    plan: &mut PlannedMove,
    indexes_now: &crate::ops::row_now::IndexesNow,
) -> Result<(), String> {
    if plan.detail.index.is_none() {
        plan.detail.index = indexes_now
            .to_write(&plan.src)
            .map_err(|reason| format!("op {}: {reason}", op.id))?
            .map(|p| crate::path_text::recorded_string(&p))
            .transpose()
            .map_err(|e| format!("op {}: {e:#}", op.id))?;
    }
    Ok(())
}

/// Why an applied move cannot be taken back now; empty when it can. Hashes the file, and
/// records the hash in `plan` so the revert does not read it again. The row is decided
/// against `index` as it is now (see `row_now::decide`), and the decision kept in `plan`.
pub fn revert_conflicts(
    op: &OpRecord,
    plan: &mut PlannedMove,
    index: Option<&rusqlite::Connection>,
    hashes: &crate::content_hash::Prefetched,
) -> Vec<String> {
    let mut conflicts = Vec::new();
    let here = &plan.src;
    match fs::symlink_metadata(here) {
        Err(_) => conflicts.push(format!(
            "op {}: {} is no longer there",
            op.id,
            here.display()
        )),
        Ok(m) if !m.is_file() => conflicts.push(format!(
            "op {}: {} is no longer a regular file",
            op.id,
            here.display()
        )),
        Ok(_) => match hashes.hash(here) {
            Ok(h) if Some(&h) == op.hash_after.as_ref().or(op.hash_before.as_ref()) => {
                plan.known_hash = Some(h)
            }
            Ok(_) => conflicts.push(format!(
                "op {}: {} changed since it was moved (hash differs)",
                op.id,
                here.display()
            )),
            Err(e) => conflicts.push(format!("op {}: cannot read {}: {e}", op.id, here.display())),
        },
    }
    if fs::symlink_metadata(&plan.dst).is_ok() {
        conflicts.push(format!(
            "op {}: the original place {} is occupied",
            op.id,
            plan.dst.display()
        ));
    }
    match (index, plan.detail.index.clone()) {
        (Some(conn), Some(path)) => {
            let expected = plan
                .detail
                .row_before
                .as_ref()
                .zip(plan.detail.row_after.as_ref());
            match crate::ops::row_now::decide(
                conn,
                &path,
                &plan.detail.thread_id,
                expected,
                &plan.src,
                &plan.dst,
                crate::clock::now_unix(),
            ) {
                Ok(Some(change)) => {
                    plan.detail.row_before = Some(change.before);
                    plan.detail.row_after = Some(change.after);
                }
                Ok(None) => {}
                Err(reason) => conflicts.push(format!("op {}: {reason}", op.id)),
            }
        }
        _ if plan.detail.row_before.is_some() => conflicts.push(format!(
            "op {}: the thread index {:?} is gone",
            op.id, plan.detail.index
        )),
        _ => {}
    }
    conflicts
}
