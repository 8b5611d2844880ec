//! Moving a folder (an old daemon release) into the store as one compressed tar blob, and
//! back. The folder leaves the home only after its blob reads back whole; the journal keeps
//! the folder's manifest so undo restores names, modes and exact mtimes.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

use super::tree_manifest::{self, ManifestEntry};
use super::{OpKind, OpRecord};
use super::{Recovered, Run, store_place};
use crate::failpoint;
use crate::fs_atomic::{TEMP_PREFIX, fsync_parent, move_no_replace};
use crate::store::{NewOp, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreDirDetail {
    pub category: String,
    pub dir: PathBuf,
    pub manifest: Vec<ManifestEntry>,
    pub digest: String,
    pub blob: Option<String>,
    /// Where the folder is renamed before it is removed, so a crash mid-removal is finished.
    pub trash: Option<PathBuf>,
    /// The manifest is exact (`tree_manifest::exact_manifest`): the folder itself, folder
    /// mtimes and link targets are recorded and restored. False for ops recorded before.
    #[serde(default)]
    pub exact: bool,
}

impl StoreDirDetail {
    /// The manifest of `root` as this op recorded its own: exact, or as it was before.
    fn manifest_of(&self, root: &Path) -> Result<Vec<ManifestEntry>> {
        if self.exact {
            tree_manifest::exact_manifest(root)
        } else {
            tree_manifest::manifest(root, false)
        }
    }
}

fn trash_name(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{TEMP_PREFIX}stored-{name}"))
}

fn staging_name(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.with_file_name(format!("{TEMP_PREFIX}restoring-{name}"))
}

/// Streams `dir` as a tar straight into the blob writer: one pass reads each file, hashes
/// the stream and compresses it, with no temporary tar and no pipe between threads.
fn tar_into_store(store: &Store, dir: &Path) -> Result<crate::store::blobs::StoredBlob> {
    store.blobs().put_with(|out| {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        builder.append_dir_all(".", dir)?;
        builder.finish()
    })
}

pub fn execute(run: &Run, category: &str, dir: &Path) -> Result<i64> {
    execute_reverting(run, category, dir, None)
}

pub fn execute_reverting(
    run: &Run,
    category: &str,
    dir: &Path,
    reverts_op: Option<i64>,
) -> Result<i64> {
    crate::path_text::recorded(dir)?;
    run.guard.ensure_all([dir, trash_name(dir).as_path()])?;
    let meta = fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "{} is not a folder; not moved",
        dir.display()
    );
    let manifest = tree_manifest::exact_manifest(dir)?;
    let mut detail = StoreDirDetail {
        category: category.into(),
        dir: dir.to_path_buf(),
        digest: tree_manifest::digest(&manifest),
        manifest,
        blob: None,
        trash: None,
        exact: true,
    };
    let bytes: u64 = detail.manifest.iter().map(|e| e.size).sum();
    let op_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::StoreDir.to_string(),
            src: crate::path_text::recorded_string(dir)?,
            dst: Some(store_place(dir)?),
            size: Some(bytes as i64),
            hash_before: Some(detail.digest.clone()),
            detail: super::detail::stored(&detail)?,
            reverts_op,
            ..Default::default()
        },
    )?;
    failpoint::hit("op-prepared");
    let stored = tar_into_store(run.store, dir)?;
    run.store
        .catalog
        .record_blob(&stored.hash, stored.size, stored.stored_size)?;
    // The blob was read back whole as it was written (`put_with` fails otherwise).
    run.store.blobs().sync()?;
    anyhow::ensure!(
        tree_manifest::digest(&detail.manifest_of(dir)?) == detail.digest,
        "{} changed while it was being stored; nothing removed",
        dir.display()
    );
    detail.blob = Some(stored.hash.clone());
    detail.trash = Some(trash_name(dir));
    run.store
        .catalog
        .update_detail(op_id, &super::detail::stored(&detail)?)?;
    failpoint::hit("file-moved");
    let trash = detail.trash.as_ref().expect("just set");
    move_no_replace(dir, trash)?;
    fs::remove_dir_all(trash)?;
    fsync_parent(dir)?;
    run.store
        .catalog
        .update_blob_and_applied(op_id, Some(&stored.hash))?;
    failpoint::hit("op-applied");
    Ok(op_id)
}

fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let detail = op.detail_as::<StoreDirDetail>()?;
    if op.kind == OpKind::RestoreDir {
        let staging = staging_name(&detail.dir);
        if detail.dir.exists() {
            store.catalog.mark_applied(op.id, op.blob.as_deref())?;
            return Ok(Recovered::RolledForward);
        }
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        store.catalog.mark_rolled_back(op.id)?;
        return Ok(Recovered::RolledBack);
    }
    let trash = detail.trash.clone();
    match (
        detail.blob.as_deref(),
        detail.dir.exists(),
        trash.as_ref().is_some_and(|t| t.exists()),
    ) {
        (Some(hash), false, true) => {
            if !store.blobs().is_intact(hash) {
                return Ok(Recovered::Stuck(format!(
                    "the stored copy of {} is damaged; its folder is kept at {}",
                    detail.dir.display(),
                    trash.unwrap().display()
                )));
            }
            fs::remove_dir_all(trash.unwrap())?;
            store.catalog.update_blob_and_applied(op.id, Some(hash))?;
            Ok(Recovered::RolledForward)
        }
        (Some(hash), false, false) => {
            store.catalog.update_blob_and_applied(op.id, Some(hash))?;
            Ok(Recovered::RolledForward)
        }
        (_, true, _) => {
            store.catalog.mark_rolled_back(op.id)?;
            Ok(Recovered::RolledBack)
        }
        (None, false, _) => Ok(Recovered::Stuck(format!(
            "{} is gone and no stored copy was recorded",
            detail.dir.display()
        ))),
    }
}

fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<StoreDirDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    let mut conflicts = Vec::new();
    if op.kind == OpKind::RestoreDir {
        match detail.manifest_of(&detail.dir) {
            Ok(m) if tree_manifest::digest(&m) == detail.digest => {}
            _ => conflicts.push(format!(
                "op {}: {} is missing or changed since it was restored",
                op.id,
                detail.dir.display()
            )),
        }
        return conflicts;
    }
    if fs::symlink_metadata(&detail.dir).is_ok() {
        conflicts.push(format!(
            "op {}: {} exists again",
            op.id,
            detail.dir.display()
        ));
    }
    match detail.blob.as_deref() {
        Some(h) if store.blobs().is_intact(h) => {}
        _ => conflicts.push(format!(
            "op {}: the stored copy of {} is missing or damaged",
            op.id,
            detail.dir.display()
        )),
    }
    conflicts
}

fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let detail = op.detail_as::<StoreDirDetail>()?;
    if op.kind == OpKind::RestoreDir {
        return execute_reverting(run, &detail.category, &detail.dir, Some(op.id));
    }
    run.guard
        .ensure_all([detail.dir.as_path(), staging_name(&detail.dir).as_path()])?;
    let hash = detail.blob.clone().context("no stored copy recorded")?;
    let new_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::RestoreDir.to_string(),
            src: store_place(&detail.dir)?,
            dst: Some(crate::path_text::recorded_string(&detail.dir)?),
            size: op.size,
            hash_before: Some(detail.digest.clone()),
            blob: Some(hash.clone()),
            detail: super::detail::stored(detail)?,
            reverts_op: Some(op.id),
            ..Default::default()
        },
    )?;
    failpoint::hit("op-prepared");
    let staging = staging_name(&detail.dir);
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    // The op is marked applied only once every unpacked byte is on disk: a power cut
    // after that must not leave a restored folder of empty files. A restore that fails
    // leaves neither its temporary folder nor a prepared op behind.
    let unpacked =
        unpack_exactly(run.store, &hash, &staging, detail).and_then(|()| sync_tree(&staging));
    if let Err(e) = unpacked {
        let _ = fs::remove_dir_all(&staging);
        run.store.catalog.mark_rolled_back(new_id)?;
        return Err(e);
    }
    failpoint::hit("file-moved");
    move_no_replace(&staging, &detail.dir)?;
    run.store.catalog.mark_applied(new_id, Some(&hash))?;
    failpoint::hit("op-applied");
    Ok(new_id)
}

/// Unpacks the stored tar into `staging` and gives every entry its recorded mode and
/// times (tar keeps whole seconds, and no time of a symlink or of a filled folder); the
/// result must match the recorded manifest, entry for entry.
fn unpack_exactly(
    store: &Store,
    hash: &str,
    staging: &Path,
    detail: &StoreDirDetail,
) -> Result<()> {
    fs::create_dir(staging)?;
    let mut archive = tar::Archive::new(store.blobs().open(hash)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.unpack(staging)?;
    tree_manifest::set_times_and_modes(staging, &detail.manifest)?;
    let found = detail.manifest_of(staging)?;
    if tree_manifest::digest(&found) != detail.digest {
        anyhow::bail!(
            "the restored copy of {} does not match what was stored ({}); nothing was restored",
            detail.dir.display(),
            tree_manifest::first_difference(&detail.manifest, &found)
                .unwrap_or_else(|| "its recorded digest differs".into())
        );
    }
    Ok(())
}

fn sync_tree(root: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .contents_first(true)
    {
        let entry = entry?;
        let kind = entry.file_type();
        if kind.is_file() || kind.is_dir() {
            fs::File::open(entry.path())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn verify_live(op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<StoreDirDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    if op.kind == OpKind::RestoreDir {
        return match detail.manifest_of(&detail.dir) {
            Ok(m) if tree_manifest::digest(&m) == detail.digest => Vec::new(),
            _ => vec![format!(
                "op {}: restored {} is missing or changed",
                op.id,
                detail.dir.display()
            )],
        };
    }
    if detail.blob.is_none() {
        return vec![format!(
            "op {}: applied but no stored copy is recorded",
            op.id
        )];
    }
    Vec::new()
}

pub struct StoreDir;

impl super::OpType for StoreDir {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::RestoreDir {
            "restored folder from the store"
        } else {
            "moved folder into the store"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<StoreDirDetail>(json).map(super::OpDetail::StoreDir)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let d = op.detail_as::<StoreDirDetail>()?;
        Ok(std::iter::once(&d.dir).chain(&d.trash).cloned().collect())
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
