//! Writing a new file outside the store (a scheduler entry), journaled: it never replaces
//! an existing file, and taking it back moves it into the store (so even that is undoable)
//! and refuses if the file was edited since.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Run;
use super::{OpKind, OpRecord};
use crate::content_hash::{hash_bytes, hash_file};
use crate::error::MaintError;
use crate::failpoint;
use crate::fs_atomic::{create_dirs_recording, fsync_parent};
use crate::store::{NewOp, Store};

/// What the journal keeps of a written file beyond the columns of `ops`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriteFileDetail {
    /// Folders this op created for the file, removed again if it is rolled back.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
}

pub fn execute(run: &Run, path: &Path, contents: &[u8]) -> Result<i64> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(MaintError::refused(
            format!("{} already exists; it was not replaced", path.display()),
            vec![],
        )
        .into());
    }
    let hash = hash_bytes(contents);
    let op_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::WriteFile.to_string(),
            src: super::store_place(path)?,
            dst: Some(crate::path_text::recorded_string(path)?),
            size: Some(contents.len() as i64),
            hash_before: Some(hash.clone()),
            detail: super::detail::stored(&WriteFileDetail::default())?,
            ..Default::default()
        },
    )?;
    failpoint::hit("op-prepared");
    let created = create_dirs_recording(path.parent().unwrap_or(Path::new("/")))?;
    run.store.catalog.update_detail(
        op_id,
        &super::detail::stored(&WriteFileDetail {
            created_dirs: created,
        })?,
    )?;
    let temp = crate::fs_atomic::temp_path_beside(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    crate::fs_atomic::move_no_replace(&temp, path).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })?;
    fsync_parent(path)?;
    failpoint::hit("file-moved");
    run.store.catalog.mark_applied(op_id, Some(&hash))?;
    failpoint::hit("op-applied");
    Ok(op_id)
}

fn recover(store: &Store, op: &OpRecord) -> Result<super::Recovered> {
    let path = Path::new(op.dst.as_deref().unwrap_or_default());
    if hash_file(path).ok() == op.hash_before {
        store
            .catalog
            .mark_applied(op.id, op.hash_before.as_deref())?;
        Ok(super::Recovered::RolledForward)
    } else {
        store.catalog.mark_rolled_back(op.id)?;
        Ok(super::Recovered::RolledBack)
    }
}

fn revert_conflicts(op: &OpRecord) -> Vec<String> {
    let path = op.dst.as_deref().unwrap_or_default();
    match hash_file(Path::new(path)) {
        Ok(h) if Some(&h) == op.hash_before.as_ref() => Vec::new(),
        Ok(_) => vec![format!(
            "op {}: {path} was edited since codex-maint wrote it; remove it by hand if you mean to",
            op.id
        )],
        Err(_) => vec![format!("op {}: {path} is no longer there", op.id)],
    }
}

/// Taking a written file back: moved into the store, where it stays recoverable.
fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let path = Path::new(op.dst.as_deref().unwrap_or_default());
    super::store_files::execute_reverting(
        run,
        super::store_files::WRITTEN_FILE_CATEGORY,
        path,
        Some(op.id),
    )
}

fn verify_live(op: &OpRecord) -> Vec<String> {
    let path = op.dst.as_deref().unwrap_or_default();
    match hash_file(Path::new(path)) {
        Ok(h) if Some(&h) == op.hash_before.as_ref() => Vec::new(),
        _ => vec![format!("op {}: {path} is missing or was edited", op.id)],
    }
}

pub struct WriteFile;

impl super::OpType for WriteFile {
    fn what_it_did(&self, _kind: OpKind) -> &'static str {
        "wrote"
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<WriteFileDetail>(json).map(super::OpDetail::WriteFile)
    }
    /// A scheduler entry, and its copy in the store, live outside the home.
    fn home_paths(&self, _op: &OpRecord) -> Result<Vec<std::path::PathBuf>> {
        Ok(Vec::new())
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<super::Recovered> {
        recover(store, op)
    }
    fn revert_conflicts(&self, _store: &Store, op: &OpRecord) -> Vec<String> {
        revert_conflicts(op)
    }
    fn revert(&self, run: &super::Run, op: &OpRecord) -> Result<i64> {
        revert(run, op)
    }
    fn verify_live(&self, op: &OpRecord, _seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op)
    }
}
