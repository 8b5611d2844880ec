//! Moving files into the store, compressed: a rotated log, or a SQLite database with its
//! `-wal` and `-shm` (moved together, as they lie, so undo puts back the same bytes and
//! SQLite finds a consistent trio). The path is left free for Codex to start a fresh one.
//!
//! Protocol: prepare (paths, sizes, modes, mtimes) → compress each into a blob, read back
//! as it is written → record the blobs → check each source is unchanged since it was read
//! → remove the sources → applied.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::clock::system_time_ns;
use crate::content_hash::hash_file;
use crate::failpoint;
use crate::fs_atomic::fsync_parent;
use crate::home::sessions::file_mode;
use crate::store::{NewOp, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFile {
    pub path: PathBuf,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    /// Set once the bytes are in the store; a crash before this leaves the source alone.
    pub blob: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreFilesDetail {
    pub category: String,
    pub files: Vec<StoredFile>,
}

/// The category of a file codex-maint wrote outside the home (a scheduler entry) and
/// later took back into the store.
pub const WRITTEN_FILE_CATEGORY: &str = "written-file";

/// Every stored item comes from the home and goes back there, except a written file,
/// whose place is the scheduler's folder outside it.
pub fn writes_in_home(category: &str) -> bool {
    category != WRITTEN_FILE_CATEGORY
}

/// The files that make up one item: a database travels with its `-wal` and `-shm`.
pub fn item_files(main: &Path) -> Vec<PathBuf> {
    let mut files = vec![main.to_path_buf()];
    if main.extension().is_some_and(|e| e == "sqlite") {
        for extra in [
            crate::home::sqlite_read::wal_path(main),
            crate::home::sqlite_read::shm_path(main),
        ] {
            if fs::symlink_metadata(&extra).is_ok() {
                files.push(extra);
            }
        }
    }
    files
}

/// What changes whenever a file's bytes do: any write moves its change time (which no one
/// can set back) and a replacement changes its inode. The blob's hash was taken from the
/// bytes read while storing, so equal facts before and after mean those bytes are the
/// file's, without hashing the whole file a second time.
#[derive(Debug, PartialEq, Eq)]
struct Unchanged {
    len: u64,
    inode: u64,
    device: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Unchanged {
    fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Unchanged {
            len: meta.len(),
            inode: meta.ino(),
            device: meta.dev(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

pub fn execute(run: &Run, category: &str, main: &Path) -> Result<i64> {
    execute_reverting(run, category, main, None)
}

/// Stores the item; `reverts_op` when this takes back a restore.
pub fn execute_reverting(
    run: &Run,
    category: &str,
    main: &Path,
    reverts_op: Option<i64>,
) -> Result<i64> {
    let mut files = Vec::new();
    let mut seen_before = Vec::new();
    for path in item_files(main) {
        if writes_in_home(category) {
            run.guard.ensure(&path)?;
        }
        let meta =
            fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            meta.is_file(),
            "{} is not a regular file; not moved",
            path.display()
        );
        seen_before.push(Unchanged::of(&meta));
        files.push(StoredFile {
            path,
            size: meta.len(),
            mode: file_mode(&meta),
            mtime_ns: meta.modified().map(system_time_ns).unwrap_or(0),
            blob: None,
        });
    }
    let mut detail = StoreFilesDetail {
        category: category.to_string(),
        files,
    };
    let main_meta = &detail.files[0];
    let op_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::StoreFiles.to_string(),
            src: crate::path_text::recorded_string(main)?,
            dst: Some(super::store_place(main)?),
            size: Some(detail.files.iter().map(|f| f.size as i64).sum()),
            mode: Some(main_meta.mode as i64),
            mtime_ns: Some(main_meta.mtime_ns),
            detail: super::detail::stored(&detail)?,
            reverts_op,
            ..Default::default()
        },
    )?;
    failpoint::hit("op-prepared");
    let blobs = run.store.blobs();
    for f in &mut detail.files {
        let stored = blobs.put_file(&f.path)?;
        run.store
            .catalog
            .record_blob(&stored.hash, stored.size, stored.stored_size)?;
        f.blob = Some(stored.hash);
    }
    blobs.sync()?;
    run.store
        .catalog
        .update_detail(op_id, &super::detail::stored(&detail)?)?;
    // Each blob was read back whole as it was written (`put_file` fails otherwise).
    for (f, before) in detail.files.iter().zip(&seen_before) {
        anyhow::ensure!(
            fs::symlink_metadata(&f.path).is_ok_and(|m| Unchanged::of(&m) == *before),
            "{} changed while it was being stored; nothing removed",
            f.path.display()
        );
    }
    failpoint::hit("file-moved");
    for f in &detail.files {
        fs::remove_file(&f.path)?;
        fsync_parent(&f.path)?;
    }
    let main_hash = detail.files[0].blob.clone();
    run.store
        .catalog
        .update_blob_and_applied(op_id, main_hash.as_deref())?;
    failpoint::hit("op-applied");
    Ok(op_id)
}

fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let detail = op.detail_as::<StoreFilesDetail>()?;
    let all_stored = detail.files.iter().all(|f| f.blob.is_some());
    let all_present = detail.files.iter().all(|f| f.path.exists());
    if op.kind == OpKind::RestoreFiles {
        return recover_restore(store, op, detail);
    }
    if !all_stored || all_present {
        store.catalog.mark_rolled_back(op.id)?;
        return Ok(Recovered::RolledBack);
    }
    let blobs = store.blobs();
    for f in &detail.files {
        let hash = f.blob.as_deref().expect("checked");
        if !blobs.is_intact(hash) {
            return Ok(Recovered::Stuck(format!(
                "the stored copy of {} is damaged",
                f.path.display()
            )));
        }
        if f.path.exists() {
            if hash_file(&f.path)? != hash {
                return Ok(Recovered::Stuck(format!(
                    "{} differs from its stored copy",
                    f.path.display()
                )));
            }
            fs::remove_file(&f.path)?;
            fsync_parent(&f.path)?;
        }
    }
    store
        .catalog
        .update_blob_and_applied(op.id, detail.files[0].blob.as_deref())?;
    Ok(Recovered::RolledForward)
}

/// Why the op cannot be taken back now; empty when it can.
fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<StoreFilesDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    let mut conflicts = Vec::new();
    if op.kind == OpKind::RestoreFiles {
        for f in &detail.files {
            let expected = f.blob.as_deref().unwrap_or_default();
            if hash_file(&f.path).ok().as_deref() != Some(expected) {
                conflicts.push(format!(
                    "op {}: {} is missing or changed since it was restored",
                    op.id,
                    f.path.display()
                ));
            }
        }
        return conflicts;
    }
    for f in &detail.files {
        if fs::symlink_metadata(&f.path).is_ok() {
            conflicts.push(format!(
                "op {}: {} exists again (Codex may have started a fresh one); move it aside first",
                op.id,
                f.path.display()
            ));
        }
        match f.blob.as_deref() {
            Some(h) if store.blobs().is_intact(h) => {}
            _ => conflicts.push(format!(
                "op {}: the stored copy of {} is missing or damaged",
                op.id,
                f.path.display()
            )),
        }
    }
    conflicts
}

/// Takes an op back: a stored item is restored; a restore is stored again.
fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let detail = op.detail_as::<StoreFilesDetail>()?;
    if op.kind == OpKind::RestoreFiles {
        return execute_reverting(
            run,
            &detail.category,
            Path::new(op.dst.as_deref().unwrap_or(&op.src)),
            Some(op.id),
        );
    }
    if writes_in_home(&detail.category) {
        run.guard
            .ensure_all(detail.files.iter().map(|f| f.path.as_path()))?;
    }
    let new_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::RestoreFiles.to_string(),
            src: super::store_place(Path::new(&op.src))?,
            dst: Some(op.src.clone()),
            size: op.size,
            mode: op.mode,
            mtime_ns: op.mtime_ns,
            hash_before: op.blob.clone(),
            blob: op.blob.clone(),
            detail: super::detail::stored(detail)?,
            reverts_op: Some(op.id),
        },
    )?;
    failpoint::hit("op-prepared");
    let mut put_back = Vec::new();
    for f in &detail.files {
        if let Err(e) = restore_one(run.store, f, &mut put_back) {
            // Settled here rather than left to `recover`: what this step put back is taken
            // away again, so the rotation stays as it was, whole in the store.
            take_away(&put_back);
            run.store.catalog.mark_rolled_back(new_id)?;
            return Err(e);
        }
    }
    failpoint::hit("file-moved");
    run.store.catalog.mark_applied(new_id, op.blob.as_deref())?;
    failpoint::hit("op-applied");
    Ok(new_id)
}

/// Writes one file back from its blob; once it has its name, its path and inode go into
/// `put_back`, so a failure later in the step can take it away again.
fn restore_one(store: &Store, f: &StoredFile, put_back: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let hash = f.blob.as_deref().context("no stored copy recorded")?;
    store.blobs().restore_to(hash, &f.path)?;
    let ino = fs::symlink_metadata(&f.path)?.ino();
    put_back.push((f.path.clone(), ino));
    restore_metadata(f)
        .with_context(|| format!("setting the mode and mtime of {}", f.path.display()))
}

/// Removes the files a failed restore put back, each only while it is still the file
/// this step wrote (same inode): its content stays in the store's blob.
fn take_away(put_back: &[(PathBuf, u64)]) {
    for (path, ino) in put_back {
        if fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *ino) {
            let _ = fs::remove_file(path);
            let _ = fsync_parent(path);
        }
    }
}

/// Mode and mtime as recorded; set again by recovery, since a crash can fall between the
/// file taking its name and these being set.
fn restore_metadata(f: &StoredFile) -> Result<()> {
    let file = crate::regular_file::open_writable(&f.path)?;
    crate::fs_atomic::set_mode(&file, f.mode)?;
    file.set_modified(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(f.mtime_ns.max(0) as u64),
    )?;
    file.sync_all()?;
    Ok(())
}

fn recover_restore(store: &Store, op: &OpRecord, detail: &StoreFilesDetail) -> Result<Recovered> {
    // Finish the restore: every file not yet back is written from its blob. Files already
    // back are whole (restore_to writes under a temporary name and renames).
    for f in &detail.files {
        if !f.path.exists() {
            restore_one(store, f, &mut Vec::new())?;
        } else if f.blob.is_some() && hash_file(&f.path).ok() == f.blob {
            restore_metadata(f)?;
        } else {
            return Ok(Recovered::Stuck(format!(
                "{} is back but differs from its stored copy",
                f.path.display()
            )));
        }
    }
    store.catalog.mark_applied(op.id, op.blob.as_deref())?;
    Ok(Recovered::RolledForward)
}

/// A live rotation is fine while its blobs are whole (the blob check of `verify` reads
/// them); here only that they are recorded.
fn verify_live(op: &OpRecord) -> Vec<String> {
    match op.detail_as::<StoreFilesDetail>() {
        Ok(d) if op.kind == OpKind::StoreFiles && d.files.iter().any(|f| f.blob.is_none()) => {
            vec![format!(
                "op {}: applied but a file has no stored copy recorded",
                op.id
            )]
        }
        Ok(d) if op.kind == OpKind::RestoreFiles => d
            .files
            .iter()
            .filter(|f| {
                f.blob
                    .as_deref()
                    .is_some_and(|h| hash_file(&f.path).ok().as_deref() != Some(h))
            })
            .map(|f| {
                format!(
                    "op {}: restored {} is missing or changed",
                    op.id,
                    f.path.display()
                )
            })
            .collect(),
        Ok(_) => Vec::new(),
        Err(_) => vec![format!("op {}: its journal detail cannot be read", op.id)],
    }
}

pub struct StoreFiles;

impl super::OpType for StoreFiles {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::RestoreFiles {
            "restored from the store"
        } else {
            "moved into the store"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<StoreFilesDetail>(json).map(super::OpDetail::StoreFiles)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let d = op.detail_as::<StoreFilesDetail>()?;
        Ok(if writes_in_home(&d.category) {
            d.files.iter().map(|f| f.path.clone()).collect()
        } else {
            Vec::new()
        })
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<super::Recovered> {
        recover(store, op)
    }
    fn revert_conflicts(&self, store: &Store, op: &OpRecord) -> Vec<String> {
        revert_conflicts(store, op)
    }
    fn revert(&self, run: &super::Run, op: &OpRecord) -> Result<i64> {
        revert(run, op)
    }
    fn verify_live(&self, op: &OpRecord, _seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_is_seen_even_with_its_size_and_mtime_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codex-tui.log");
        fs::write(&path, "first bytes\n").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        let before = Unchanged::of(&meta);
        assert_eq!(Unchanged::of(&fs::symlink_metadata(&path).unwrap()), before);
        // The change time moves with the kernel's clock tick; wait one out.
        std::thread::sleep(std::time::Duration::from_millis(30));
        fs::write(&path, "other bytes\n").unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(meta.modified().unwrap()).unwrap();
        let after = fs::symlink_metadata(&path).unwrap();
        assert_eq!(after.len(), meta.len());
        assert_ne!(Unchanged::of(&after), before);
    }
}
