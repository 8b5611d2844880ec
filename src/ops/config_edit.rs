//! Editing `config.toml` (removing `[projects."<path>"]` entries for folders that are gone)
//! with toml_edit, which keeps comments, order and unknown entries. Both versions of the
//! file are kept as blobs, so undo is the same edit in reverse, exact to the byte, mode
//! and mtime, and refuses if the file changed since.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::clock::system_time_ns;
use crate::content_hash::{hash_bytes, hash_file};
use crate::failpoint;
use crate::fs_atomic::write_atomic;
use crate::home::sessions::file_mode;
use crate::store::{NewOp, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigEditDetail {
    pub removed_projects: Vec<String>,
    pub before_blob: String,
    pub after_blob: String,
    pub mode: u32,
    pub before_mtime_ns: i64,
    /// The mtime the edited file got, so that taking back an undo restores it too.
    pub after_mtime_ns: Option<i64>,
}

/// The config text without the given `[projects]` entries; `None` when nothing changes.
pub fn without_projects(text: &str, remove: &[String]) -> Result<Option<String>> {
    let mut doc: toml_edit::DocumentMut = text.parse().context("config.toml does not parse")?;
    let Some(projects) = doc.get_mut("projects").and_then(|p| p.as_table_like_mut()) else {
        return Ok(None);
    };
    let mut changed = false;
    for key in remove {
        changed |= projects.remove(key).is_some();
    }
    Ok(changed.then(|| doc.to_string()))
}

pub fn execute(run: &Run, config: &Path, remove: &[String]) -> Result<Option<i64>> {
    let before = crate::regular_file::read_through_link(config)
        .with_context(|| format!("reading {}", config.display()))?;
    let meta = fs::metadata(config)?;
    let text = String::from_utf8(before.clone()).context("config.toml is not UTF-8")?;
    let Some(after) = without_projects(&text, remove)? else {
        return Ok(None);
    };
    after
        .parse::<toml_edit::DocumentMut>()
        .context("the edited config.toml would not parse; nothing changed")?;
    let blobs = run.store.blobs();
    let b = blobs.put_bytes(&before)?;
    let a = blobs.put_bytes(after.as_bytes())?;
    run.store
        .catalog
        .record_blob(&b.hash, b.size, b.stored_size)?;
    run.store
        .catalog
        .record_blob(&a.hash, a.size, a.stored_size)?;
    blobs.sync()?;
    let detail = ConfigEditDetail {
        removed_projects: remove.to_vec(),
        before_blob: b.hash.clone(),
        after_blob: a.hash.clone(),
        mode: file_mode(&meta),
        before_mtime_ns: meta.modified().map(system_time_ns).unwrap_or(0),
        after_mtime_ns: None,
    };
    rewrite(run, config, detail, None).map(Some)
}

/// Replaces the file's `before_blob` bytes with its `after_blob` bytes, journaled.
fn rewrite(
    run: &Run,
    config: &Path,
    mut detail: ConfigEditDetail,
    reverts_op: Option<i64>,
) -> Result<i64> {
    run.guard.ensure(config)?;
    let op_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::EditConfig.to_string(),
            src: crate::path_text::recorded_string(config)?,
            dst: Some(crate::path_text::recorded_string(config)?),
            size: None,
            mode: Some(detail.mode as i64),
            mtime_ns: Some(detail.before_mtime_ns),
            hash_before: Some(detail.before_blob.clone()),
            blob: Some(detail.before_blob.clone()),
            detail: super::detail::stored(&detail)?,
            reverts_op,
        },
    )?;
    failpoint::hit("op-prepared");
    let bytes = run.store.blobs().read_all(&detail.after_blob)?;
    let config = &written_file(config)?;
    write_atomic(config, &bytes, Some(detail.mode))?;
    if let Some(mtime) = detail.after_mtime_ns {
        let f = fs::File::options().write(true).open(config)?;
        f.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(mtime.max(0) as u64),
        )?;
        f.sync_all()?;
    } else {
        detail.after_mtime_ns = fs::metadata(config)?.modified().ok().map(system_time_ns);
        run.store
            .catalog
            .update_detail(op_id, &super::detail::stored(&detail)?)?;
    }
    failpoint::hit("file-moved");
    run.store
        .catalog
        .mark_applied(op_id, Some(&detail.after_blob))?;
    failpoint::hit("op-applied");
    Ok(op_id)
}

/// The file an edit of `config` replaces. A `config.toml` that is a symlink (a dotfiles
/// checkout, say) stays one: the edit is written to the file it points at, which is the
/// file Codex reads, and undo writes the old bytes back there. Only a regular file owned by
/// whoever runs codex-maint is written through a link; anything else is refused.
fn written_file(config: &Path) -> Result<std::path::PathBuf> {
    let link =
        fs::symlink_metadata(config).with_context(|| format!("reading {}", config.display()))?;
    if !link.file_type().is_symlink() {
        return Ok(config.to_path_buf());
    }
    let target = fs::canonicalize(config)
        .with_context(|| format!("following the symlink {}", config.display()))?;
    let meta = fs::symlink_metadata(&target)?;
    #[cfg(unix)]
    let owned = {
        use std::os::unix::fs::MetadataExt;
        meta.uid() == rustix::process::getuid().as_raw()
    };
    #[cfg(not(unix))]
    let owned = true;
    if !meta.is_file() || !owned {
        return Err(crate::error::MaintError::refused(
            format!(
                "{} is a symlink to {}, which is not a regular file of yours; it was not edited",
                config.display(),
                target.display()
            ),
            vec![],
        )
        .into());
    }
    Ok(target)
}

fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let detail = op.detail_as::<ConfigEditDetail>()?.clone();
    let now = hash_through_link(Path::new(&op.src)).ok();
    if now.as_deref() == Some(detail.after_blob.as_str()) {
        store
            .catalog
            .mark_applied(op.id, Some(&detail.after_blob))?;
        Ok(Recovered::RolledForward)
    } else if now.as_deref() == Some(detail.before_blob.as_str()) {
        store.catalog.mark_rolled_back(op.id)?;
        Ok(Recovered::RolledBack)
    } else {
        Ok(Recovered::Stuck(format!(
            "{} matches neither version the op recorded",
            op.src
        )))
    }
}

fn revert_conflicts(store: &Store, op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<ConfigEditDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    let mut conflicts = Vec::new();
    if hash_through_link(Path::new(&op.src)).ok().as_deref() != Some(detail.after_blob.as_str()) {
        conflicts.push(format!("op {}: {} changed since codex-maint edited it; edit it back by hand or restore the backup", op.id, op.src));
    }
    if store.blobs().read_all(&detail.before_blob).is_err() {
        conflicts.push(format!(
            "op {}: the stored earlier version of {} is missing or damaged",
            op.id, op.src
        ));
    }
    conflicts
}

fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let d = op.detail_as::<ConfigEditDetail>()?.clone();
    let reversed = ConfigEditDetail {
        removed_projects: Vec::new(),
        before_blob: d.after_blob,
        after_blob: d.before_blob,
        mode: d.mode,
        before_mtime_ns: d.after_mtime_ns.unwrap_or(0),
        after_mtime_ns: Some(d.before_mtime_ns),
    };
    rewrite(run, Path::new(&op.src), reversed, Some(op.id))
}

fn verify_live(op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<ConfigEditDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    match crate::regular_file::read_through_link(Path::new(&op.src))
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
    {
        Ok(text) => {
            if hash_bytes(text.as_bytes()) != detail.after_blob {
                problems.push(format!(
                    "op {}: {} changed since codex-maint wrote it",
                    op.id, op.src
                ));
            }
            if text.parse::<toml_edit::DocumentMut>().is_err() {
                problems.push(format!("op {}: {} does not parse", op.id, op.src));
            }
        }
        Err(e) => problems.push(format!("op {}: {} cannot be read ({e})", op.id, op.src)),
    }
    problems
}

pub struct ConfigEdit;

impl super::OpType for ConfigEdit {
    fn what_it_did(&self, _kind: OpKind) -> &'static str {
        "edited"
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<ConfigEditDetail>(json).map(super::OpDetail::ConfigEdit)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<std::path::PathBuf>> {
        Ok(vec![std::path::PathBuf::from(&op.src)])
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

/// The hash of the config an op edited: through its symlink, as the edit was written.
fn hash_through_link(config: &Path) -> std::io::Result<String> {
    hash_file(&fs::canonicalize(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_project_keeps_comments_order_and_unknown_keys() {
        let text = "# top comment\nmodel = \"gpt-5\" # inline\n\n[projects.\"/gone\"]\ntrust_level = \"trusted\"\n\n[projects.\"/kept\"]\ntrust_level = \"trusted\"\nfuture_key = 1 # keep me\n\n[unknown_table]\nx = [1, 2]\n";
        let out = without_projects(text, &["/gone".to_string()])
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "# top comment\nmodel = \"gpt-5\" # inline\n\n[projects.\"/kept\"]\ntrust_level = \"trusted\"\nfuture_key = 1 # keep me\n\n[unknown_table]\nx = [1, 2]\n"
        );
        assert!(
            without_projects(text, &["/not-there".to_string()])
                .unwrap()
                .is_none()
        );
    }
}
