//! Retiring sessions a batch at a time, under the journal protocol of the pack layer
//! (docs/store-format.md, "Writing, crash-safe"):
//! 1. each transcript and the thread's rows are read and written into the store's packs as
//!    objects, committed before any op names them;
//! 2. the ops are prepared (one commit), naming those objects;
//! 3. with Codex's writers held off, each transcript and its rows are checked again: an item
//!    Codex wrote to since it was read is left as Codex wrote it, its op rolled back;
//! 4. the others' rows are taken out (one transaction per database), then their transcripts;
//! 5. those ops are marked applied.
//!
//! A failure or a crash anywhere leaves ops `prepared` whose objects are whole; recovery
//! puts back whatever of the session is missing from the home, so it is never lost.

use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::lineage::Lineage;
use super::{RetireDetail, bring_back, transcript_object};
use crate::error::MaintError;
use crate::failpoint;
use crate::fs_atomic::{SourceKept, remove_file_within_home};
use crate::home::sessions::file_mode;
use crate::ops::source_recheck::{SourceSeen, WriterHold};
use crate::ops::thread_rows::{ThreadDatabases, dump};
use crate::ops::{OpKind, OpRecord, Outcome, Run};
use crate::store::NewOp;
use crate::store::pack::Chunker;

/// Sessions retired per journal batch: one object commit, one prepare, one row transaction
/// per database, one settle.
pub const BATCH: usize = 256;

/// One session to retire: its transcript where it lies now.
#[derive(Debug, Clone)]
pub struct PlannedRetire {
    pub src: PathBuf,
    pub thread_id: String,
    pub forks_from: Option<String>,
    /// Set when this retire takes back a restore.
    pub reverts_op: Option<i64>,
}

pub fn plan_retire(src: &Path, thread_id: &str, forks_from: Option<String>) -> PlannedRetire {
    PlannedRetire {
        src: src.to_path_buf(),
        thread_id: thread_id.to_string(),
        forks_from,
        reverts_op: None,
    }
}

/// Retires `plans` as one batch; refuses, with nothing changed, when a fork that stays in
/// the home reads from a thread the batch would take out.
pub fn execute_batch(
    run: &Run,
    plans: Vec<PlannedRetire>,
    dbs: &mut ThreadDatabases,
    lineage: &Lineage,
) -> Result<Vec<Outcome>> {
    let going: HashSet<&str> = plans.iter().map(|p| p.thread_id.as_str()).collect();
    let left_behind = lineage.forks_left_behind(&going);
    if !left_behind.is_empty() {
        let lines: Vec<String> = left_behind
            .iter()
            .map(|(parent, fork)| format!("{fork} forks from {parent}"))
            .collect();
        return Err(MaintError::refused(
            format!(
                "a fork reads its early turns from the thread it forks from, so that thread cannot be retired while the fork stays ({}); retire them together. Nothing was changed",
                lines.join("; ")
            ),
            lines,
        )
        .into());
    }
    let catalog = &run.store.catalog;
    let root = run.guard.root().to_path_buf();
    run.guard.begin_batch();
    let mut seen = Vec::with_capacity(plans.len());
    let mut metas = Vec::with_capacity(plans.len());
    for plan in &plans {
        run.guard.ensure(&plan.src)?;
        crate::ops::transcript_place::ensure(&root, &[&plan.src])?;
        let meta = std::fs::symlink_metadata(&plan.src)
            .with_context(|| format!("reading {}", plan.src.display()))?;
        if !meta.is_file() {
            return Err(MaintError::refused(
                format!("{} is not a regular file; not changed", plan.src.display()),
                vec![],
            )
            .into());
        }
        seen.push(SourceSeen::of(&meta));
        metas.push(meta);
    }
    let ids: Vec<&str> = plans.iter().map(|p| p.thread_id.as_str()).collect();
    let rows = dbs.rows_of(&ids)?;
    let dumps: Vec<Vec<u8>> = ids.iter().map(|id| dump::encode(&rows[*id])).collect();

    let objects = run.store.objects();
    let mut writer = objects.writer()?;
    let mut details = Vec::with_capacity(plans.len());
    for (plan, dumped) in plans.iter().zip(&dumps) {
        let transcript = transcript_object::store(&mut writer, &plan.src)?;
        let rows_object = writer.put_bytes(dumped, Chunker::CdcLines)?;
        let thread_rows = &rows[plan.thread_id.as_str()];
        let mut tables: Vec<String> = thread_rows
            .iter()
            .map(|r| format!("{}.{}", r.database, r.table))
            .collect();
        tables.sort();
        tables.dedup();
        let (title, cwd) = label_of(thread_rows);
        details.push(RetireDetail {
            thread_id: plan.thread_id.clone(),
            home: root.clone(),
            transcript,
            rows_object: rows_object.to_hex(),
            row_count: thread_rows.len() as u64,
            tables,
            forks_from: plan.forks_from.clone(),
            title,
            cwd,
            temp: None,
            created: None,
            created_dirs: Vec::new(),
            left_to_codex: None,
        });
    }
    writer.commit()?;
    failpoint::hit("retire-objects-stored");

    let mut new_ops = Vec::with_capacity(plans.len());
    for ((plan, meta), detail) in plans.iter().zip(&metas).zip(&details) {
        new_ops.push(NewOp {
            kind: OpKind::RetireSession.to_string(),
            src: crate::path_text::recorded_string(&plan.src)?,
            dst: Some(crate::ops::store_place(&plan.src)?),
            size: Some(meta.len() as i64),
            mode: Some(file_mode(meta) as i64),
            mtime_ns: meta.modified().ok().map(crate::clock::system_time_ns),
            hash_before: Some(detail.transcript.hash.clone()),
            blob: None,
            detail: crate::ops::detail::stored(detail)?,
            reverts_op: plan.reverts_op,
        });
    }
    let op_ids = catalog.prepare_ops(run.id, &new_ops)?;
    failpoint::hit("op-prepared");

    let mut left: Vec<(usize, String)> = Vec::new();
    let outcome = (|| -> Result<()> {
        for plan in &plans {
            failpoint::act("before-source-removed", &plan.src);
        }
        let mut hold = WriterHold::begin(&root)?;
        for (i, plan) in plans.iter().enumerate() {
            if let Err(SourceKept(why)) = hold.check(Some(&plan.thread_id), &plan.src, &seen[i]) {
                left.push((i, why));
            }
        }
        // Rows are read again under the hold: one Codex wrote since the first read would
        // otherwise be taken out without being kept.
        let staying: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| !left.iter().any(|(k, _)| k == i))
            .map(|(_, id)| *id)
            .collect();
        let again = dbs.rows_of(&staying)?;
        for (i, id) in ids.iter().enumerate() {
            if let Some(now) = again.get(*id)
                && dump::encode(now) != dumps[i]
            {
                left.push((
                    i,
                    format!("Codex wrote rows of thread {id} since they were read"),
                ));
            }
        }
        let taking: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| !left.iter().any(|(k, _)| k == i))
            .map(|(_, id)| *id)
            .collect();
        dbs.delete(&taking)?;
        failpoint::hit("retire-rows-taken");
        let mut folders = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            if left.iter().any(|(k, _)| *k == i) {
                continue;
            }
            remove_file_within_home(&run.guard, &plan.src)?;
            failpoint::hit("retire-source-removed");
            folders.extend(plan.src.parent().map(Path::to_path_buf));
        }
        drop(hold);
        folders.sort();
        folders.dedup();
        for folder in folders {
            run.guard.sync_folder(&folder)?;
        }
        Ok(())
    })();

    let is_left = |i: usize| left.iter().any(|(k, _)| *k == i);
    for (i, why) in &left {
        let mut detail = details[*i].clone();
        detail.left_to_codex = Some(why.clone());
        catalog.update_detail(op_ids[*i], &crate::ops::detail::stored(&detail)?)?;
        catalog.mark_rolled_back(op_ids[*i])?;
    }
    if let Err(err) = outcome {
        let unsettled = op_ids
            .iter()
            .enumerate()
            .filter(|(i, _)| !is_left(*i))
            .map(|(_, id)| *id);
        return Err(crate::ops::settle_failed_batch(
            run.store,
            unsettled,
            err,
            bring_back::recover,
        ));
    }
    let applied: Vec<(i64, Option<String>)> = op_ids
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_left(*i))
        .map(|(_, id)| (*id, None))
        .collect();
    catalog.mark_applied_many(&applied)?;
    failpoint::hit("op-applied");
    let by_index: HashMap<usize, &String> = left.iter().map(|(i, w)| (*i, w)).collect();
    Ok(op_ids
        .iter()
        .enumerate()
        .map(|(i, id)| match by_index.get(&i) {
            Some(why) => Outcome::LeftToCodex {
                op_id: *id,
                why: (*why).clone(),
            },
            None => Outcome::Done(*id),
        })
        .collect())
}

/// A title a person recognizes (at most 200 characters) and the project folder, from the
/// thread's `threads` row.
fn label_of(rows: &[dump::DumpedRow]) -> (Option<String>, Option<String>) {
    use crate::ops::thread_rows::RowValue;
    let Some(row) = rows.iter().find(|r| r.table == "threads") else {
        return (None, None);
    };
    let text = |name: &str| match row.columns.get(name) {
        Some(RowValue::Text(t)) if !t.trim().is_empty() => Some(t.clone()),
        _ => None,
    };
    let title = text("title")
        .or_else(|| text("first_user_message"))
        .map(|t| t.chars().take(200).collect());
    (title, text("cwd"))
}

/// Why a restored session cannot be retired again now: it must still be the transcript
/// the restore gave back; one Codex wrote to since is the user's.
pub fn retire_again_conflicts(op: &OpRecord) -> Vec<String> {
    let Ok(d) = op.detail_as::<RetireDetail>() else {
        return vec![format!("op {}: its detail cannot be read", op.id)];
    };
    let place = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    match crate::content_hash::hash_file(&place) {
        Ok(hash) if hash == d.transcript.hash => Vec::new(),
        Ok(_) => vec![format!(
            "{} changed since it was restored (Codex wrote to it): it is the user's now",
            place.display()
        )],
        Err(e) => vec![format!("{} cannot be read ({e})", place.display())],
    }
}

/// Retires again a session a restore brought back, as a new op of `run`.
pub fn retire_again(run: &Run, op: &OpRecord) -> Result<i64> {
    let conflicts = retire_again_conflicts(op);
    if !conflicts.is_empty() {
        return Err(MaintError::refused(conflicts.join("; "), conflicts).into());
    }
    let d = op.detail_as::<RetireDetail>()?;
    let place = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    let mut plan = plan_retire(&place, &d.thread_id, d.forks_from.clone());
    plan.reverts_op = Some(op.id);
    let mut dbs = ThreadDatabases::open(&d.home)?;
    let lineage = super::lineage::of_home(&d.home)?;
    match execute_batch(run, vec![plan], &mut dbs, &lineage)?.remove(0) {
        Outcome::Done(id) => Ok(id),
        Outcome::LeftToCodex { why, .. } => Err(MaintError::refused(
            format!("{} was not retired again: {why}", place.display()),
            vec![why],
        )
        .into()),
    }
}
