//! Giving a retired session back to the home: its transcript written from the store and
//! renamed into the place it left, never over anything, and its rows put back by column
//! name. `restore` does this as a new op; recovery does the same for an op a crash left
//! half done (a retire is rolled back, a restore finished), so a session is never lost
//! between the store and the home.

use anyhow::{Context, Result};
use std::path::Path;

use super::{RetireDetail, home_place, temp_for, transcript_object};
use crate::error::MaintError;
use crate::home_guard::HomeGuard;
use crate::ops::created_file::CreatedFile;
use crate::ops::thread_rows::{DumpedRow, ThreadDatabases, dump};
use crate::ops::{OpKind, OpRecord, Recovered, Run};
use crate::store::{NewOp, Store};

/// Why the retired session of `op` cannot come back now; empty when it can.
pub fn restore_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    match check_restorable(store, op) {
        Ok(problems) => problems,
        Err(e) => vec![format!("op {}: {e:#}", op.id)],
    }
}

fn check_restorable(store: &Store, op: &OpRecord) -> Result<Vec<String>> {
    let d = op.detail_as::<RetireDetail>()?;
    let place = home_place(op);
    let mut problems = Vec::new();
    if place.symlink_metadata().is_ok() {
        problems.push(format!(
            "{} is occupied; the retired session {} would be written there",
            place.display(),
            d.thread_id
        ));
    }
    let rows = rows_of(store, d)?;
    let dbs = ThreadDatabases::open(&d.home)?;
    problems.extend(dbs.misfits(&rows));
    let present = dbs.rows_of(&[d.thread_id.as_str()])?;
    if present.get(&d.thread_id).is_some_and(|r| !r.is_empty()) {
        problems.push(format!(
            "Codex's databases hold rows of thread {} again; nothing of the retired one is put over them",
            d.thread_id
        ));
    }
    let objects = store.objects();
    if !objects.contains(&d.transcript.object.parse()?)? {
        problems.push(format!(
            "the store lacks the transcript object {} of thread {}",
            d.transcript.object, d.thread_id
        ));
    }
    Ok(problems)
}

fn rows_of(store: &Store, d: &RetireDetail) -> Result<Vec<DumpedRow>> {
    let bytes = store
        .objects()
        .read(&d.rows_object.parse()?)
        .with_context(|| format!("reading the rows of retired thread {}", d.thread_id))?;
    dump::decode(&bytes)
}

/// Brings back the session `op` retired, as a new op of `run`; returns its id.
pub fn restore(run: &Run, op: &OpRecord) -> Result<i64> {
    let conflicts = restore_conflicts(run.store, op);
    if !conflicts.is_empty() {
        return Err(MaintError::refused(
            format!(
                "cannot restore: {}; nothing was changed",
                conflicts.join("; ")
            ),
            conflicts,
        )
        .into());
    }
    let mut detail = op.detail_as::<RetireDetail>()?.clone();
    let place = home_place(op);
    run.guard.ensure(&place)?;
    crate::ops::transcript_place::ensure(run.guard.root(), &[&place])?;
    let temp = temp_for(&place);
    detail.temp = Some(temp.clone());
    detail.created_dirs = run
        .guard
        .missing_folders(place.parent().unwrap_or(Path::new("/")))?;
    let new_op = NewOp {
        kind: OpKind::RestoreSession.to_string(),
        src: op.dst.clone().unwrap_or_default(),
        dst: Some(op.src.clone()),
        size: op.size,
        mode: op.mode,
        mtime_ns: op.mtime_ns,
        hash_before: None,
        blob: None,
        detail: crate::ops::detail::stored(&detail)?,
        reverts_op: Some(op.id),
    };
    let id = run.store.catalog.prepare_op(run.id, &new_op)?;
    crate::failpoint::hit("op-prepared");
    let restored = run
        .store
        .catalog
        .op(id)
        .and_then(|o| o.context("the op just prepared"))
        .and_then(OpRecord::try_from)
        .and_then(|o| put_back_all(run.store, &run.guard, &o));
    if let Err(e) = restored {
        // Finished by the next command's recovery, which writes only what is missing.
        return Err(e.context(format!(
            "restoring thread {}; `codex-maint recover` finishes it",
            detail.thread_id
        )));
    }
    run.store
        .catalog
        .mark_applied(id, Some(&detail.transcript.hash))?;
    crate::failpoint::hit("op-applied");
    Ok(id)
}

/// Settles an op a crash left `prepared`: the session is put back whole either way: a
/// retire is then rolled back, a restore finished.
pub fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let d = op.detail_as::<RetireDetail>()?;
    let guard = HomeGuard::new(&d.home);
    if let Err(e) = put_back_all(store, &guard, op) {
        return Ok(Recovered::Stuck(format!(
            "op {} (thread {}): {e:#}",
            op.id, d.thread_id
        )));
    }
    if op.kind == OpKind::RetireSession {
        store.catalog.mark_rolled_back(op.id)?;
        Ok(Recovered::RolledBack)
    } else {
        store
            .catalog
            .mark_applied(op.id, Some(&d.transcript.hash))?;
        Ok(Recovered::RolledForward)
    }
}

/// Writes whatever of the session is missing from the home: the transcript (unless its
/// place holds it already) and the rows (those not there already).
fn put_back_all(store: &Store, guard: &HomeGuard, op: &OpRecord) -> Result<()> {
    let d = op.detail_as::<RetireDetail>()?;
    let place = home_place(op);
    let temp = d.temp.clone().unwrap_or_else(|| temp_for(&place));
    if let Some(stale) = place.parent().map(|_| temp.as_path())
        && stale.symlink_metadata().is_ok()
        && d.created.is_none_or(|ours| ours.is_at(stale))
    {
        crate::fs_atomic::remove_file_within_home(guard, stale)?;
    }
    match place.symlink_metadata() {
        Ok(_) if d.transcript_is_at(&place) => {}
        Ok(_) => {
            anyhow::bail!(
                "{} is occupied by another file; the retired session stays in the store",
                place.display()
            )
        }
        Err(_) => write_transcript(store, guard, op, d, &place, &temp)?,
    }
    crate::failpoint::hit("restore-transcript-written");
    let rows = rows_of(store, d)?;
    let mut dbs = ThreadDatabases::open(&d.home)?;
    dbs.put_back(&[d.thread_id.as_str()], &rows)?;
    Ok(())
}

impl RetireDetail {
    fn transcript_is_at(&self, place: &Path) -> bool {
        crate::content_hash::hash_file(place).is_ok_and(|h| h == self.transcript.hash)
    }
}

fn write_transcript(
    store: &Store,
    guard: &HomeGuard,
    op: &OpRecord,
    d: &RetireDetail,
    place: &Path,
    temp: &Path,
) -> Result<()> {
    if let Some(parent) = place.parent() {
        guard.create_folders(parent)?;
    }
    let file = crate::fs_atomic::create_new_within_home(guard, temp)?;
    if let Some(mode) = op.mode {
        crate::fs_atomic::set_mode(&file, mode as u32 & 0o7777)?;
    }
    let mut out = std::io::BufWriter::new(file);
    let written = transcript_object::write_back(&store.objects(), &d.transcript, &mut out)
        .and_then(|()| Ok(out.into_inner().map_err(|e| e.into_error())?));
    let file = match written {
        Ok(file) => file,
        Err(e) => {
            let _ = crate::fs_atomic::remove_file_within_home(guard, temp);
            return Err(e);
        }
    };
    if let Some(ns) = op.mtime_ns {
        file.set_modified(crate::clock::system_time_from_ns(ns))?;
    }
    file.sync_all()?;
    let mut detail = d.clone();
    detail.created = Some(CreatedFile::of(&file.metadata()?));
    store
        .catalog
        .update_detail(op.id, &crate::ops::detail::stored(&detail)?)?;
    drop(file);
    crate::fs_atomic::move_within_home(guard, temp, place)?;
    guard.sync_folder(place.parent().unwrap_or(Path::new("/")))?;
    Ok(())
}
