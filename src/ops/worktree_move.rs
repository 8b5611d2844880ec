//! Moving a clean, registered git worktree with git's own `git worktree move`, so the main
//! repository's registration follows it; undo moves it back the same way.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::tree_manifest;
use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::failpoint;
use crate::fs_atomic::{create_dirs_recording, remove_created_dirs_if_empty};
use crate::store::{NewOp, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorktreeDetail {
    pub main_repository: PathBuf,
    pub digest: String,
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub tidy_dirs: Vec<PathBuf>,
    /// The main repository's `gitdir` file for this worktree (outside the home), as it
    /// was before the move: `git worktree move` rewrites it, and taking the move back puts
    /// its mtime and mode back once git has written the same bytes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitdir_before: Option<GitdirFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GitdirFile {
    pub path: PathBuf,
    pub hash: String,
    pub mode: u32,
    pub mtime_ns: i64,
}

/// The `gitdir` file git keeps for `worktree` in its main repository, named by the
/// worktree's `.git` file (`gitdir: <main>/.git/worktrees/<name>`).
fn gitdir_file(worktree: &Path) -> Option<GitdirFile> {
    let dot_git = crate::regular_file::read_to_string(&worktree.join(".git")).ok()?;
    let admin = dot_git.trim().strip_prefix("gitdir:")?.trim();
    // A relative `gitdir:` (worktree.useRelativePaths) is relative to the worktree.
    let path = worktree.join(admin).join("gitdir");
    let bytes = crate::regular_file::read(&path).ok()?;
    let meta = std::fs::symlink_metadata(&path).ok()?;
    Some(GitdirFile {
        hash: crate::content_hash::hash_bytes(&bytes),
        mode: crate::fs_atomic::file_mode(&meta),
        mtime_ns: meta
            .modified()
            .map(crate::clock::system_time_ns)
            .unwrap_or(0),
        path,
    })
}

/// Gives the `gitdir` file back its recorded mode and mtime, when git has written it
/// again with the bytes it had; otherwise it is git's new file, and left so.
fn restore_gitdir_file(worktree: &Path, before: &GitdirFile) -> Result<()> {
    match gitdir_file(worktree) {
        Some(now) if now.path == before.path && now.hash == before.hash => {
            let file = crate::regular_file::open_writable(&before.path)?;
            crate::fs_atomic::set_mode(&file, before.mode)?;
            file.set_modified(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_nanos(before.mtime_ns.max(0) as u64),
            )?;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn git_worktree(main: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(main)
        .arg("worktree")
        .args(args)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git worktree {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn is_registered(main: &Path, worktree: &Path) -> bool {
    let Ok(list) = git_worktree(main, &["list", "--porcelain"]) else {
        return false;
    };
    let want = std::fs::canonicalize(worktree).unwrap_or_else(|_| worktree.to_path_buf());
    list.lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .any(|p| {
            Path::new(p) == worktree || std::fs::canonicalize(p).map(|c| c == want).unwrap_or(false)
        })
}

pub fn execute(
    run: &Run,
    src: &Path,
    dst: &Path,
    main: &Path,
    reverts_op: Option<i64>,
    tidy_dirs: Vec<PathBuf>,
) -> Result<i64> {
    execute_restoring(run, src, dst, main, reverts_op, tidy_dirs, None)
}

/// `execute`, and then, for an undo, the `gitdir` file as it was before the move undone.
fn execute_restoring(
    run: &Run,
    src: &Path,
    dst: &Path,
    main: &Path,
    reverts_op: Option<i64>,
    tidy_dirs: Vec<PathBuf>,
    gitdir_back: Option<&GitdirFile>,
) -> Result<i64> {
    run.guard.ensure_all([src, dst])?;
    let digest = tree_manifest::digest(&tree_manifest::manifest(src, false)?);
    let missing: Vec<PathBuf> = dst
        .parent()
        .map(|p| {
            p.ancestors()
                .take_while(|d| !d.exists())
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .rev()
        .collect();
    let detail = WorktreeDetail {
        main_repository: main.to_path_buf(),
        digest: digest.clone(),
        created_dirs: missing,
        tidy_dirs,
        gitdir_before: gitdir_file(src),
    };
    let op_id = run.store.catalog.prepare_op(
        run.id,
        &NewOp {
            kind: OpKind::MoveWorktree.to_string(),
            src: crate::path_text::recorded_string(src)?,
            dst: Some(crate::path_text::recorded_string(dst)?),
            hash_before: Some(digest.clone()),
            detail: super::detail::stored(&detail)?,
            reverts_op,
            ..Default::default()
        },
    )?;
    failpoint::hit("op-prepared");
    if let Some(parent) = dst.parent() {
        create_dirs_recording(parent)?;
    }
    if let Err(e) = git_worktree(
        main,
        &[
            "move",
            crate::path_text::recorded(src)?,
            crate::path_text::recorded(dst)?,
        ],
    ) {
        remove_created_dirs_if_empty(&detail.created_dirs);
        run.store.catalog.mark_rolled_back(op_id)?;
        return Err(e);
    }
    failpoint::hit("file-moved");
    if let Some(before) = gitdir_back {
        restore_gitdir_file(dst, before)
            .with_context(|| format!("restoring the times of {}", before.path.display()))?;
    }
    remove_created_dirs_if_empty(&detail.tidy_dirs);
    run.store.catalog.mark_applied(op_id, Some(&digest))?;
    failpoint::hit("op-applied");
    Ok(op_id)
}

fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let detail = op.detail_as::<WorktreeDetail>()?;
    let src = PathBuf::from(&op.src);
    let dst = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    match (src.exists(), dst.exists()) {
        (true, false) => {
            remove_created_dirs_if_empty(&detail.created_dirs);
            store.catalog.mark_rolled_back(op.id)?;
            Ok(Recovered::RolledBack)
        }
        (false, true) => {
            if !is_registered(&detail.main_repository, &dst) {
                git_worktree(
                    &detail.main_repository,
                    &["repair", crate::path_text::recorded(&dst)?],
                )?;
            }
            // A crash between git's move and the tidying leaves the folders an undo empties.
            remove_created_dirs_if_empty(&detail.tidy_dirs);
            store
                .catalog
                .mark_applied(op.id, op.hash_before.as_deref())?;
            Ok(Recovered::RolledForward)
        }
        _ => Ok(Recovered::Stuck(format!(
            "worktree {} / {}: expected exactly one of them",
            src.display(),
            dst.display()
        ))),
    }
}

fn revert_conflicts(op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<WorktreeDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    let here = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    let mut conflicts = Vec::new();
    match tree_manifest::manifest(&here, false) {
        Ok(m) if tree_manifest::digest(&m) == detail.digest => {}
        Ok(_) => conflicts.push(format!(
            "op {}: worktree {} changed since it was moved",
            op.id,
            here.display()
        )),
        Err(_) => conflicts.push(format!(
            "op {}: worktree {} is no longer there",
            op.id,
            here.display()
        )),
    }
    if Path::new(&op.src).exists() {
        conflicts.push(format!(
            "op {}: its original place {} is occupied",
            op.id, op.src
        ));
    }
    if !is_registered(&detail.main_repository, &here) {
        conflicts.push(format!(
            "op {}: {} is not registered in {} any more",
            op.id,
            here.display(),
            detail.main_repository.display()
        ));
    }
    conflicts
}

fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    let detail = op.detail_as::<WorktreeDetail>()?;
    let here = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    execute_restoring(
        run,
        &here,
        Path::new(&op.src),
        &detail.main_repository,
        Some(op.id),
        detail.created_dirs.clone(),
        detail.gitdir_before.as_ref(),
    )
}

fn verify_live(op: &OpRecord) -> Vec<String> {
    let detail = match op.detail_as::<WorktreeDetail>() {
        Ok(detail) => detail,
        Err(e) => return vec![e.to_string()],
    };
    let here = PathBuf::from(op.dst.as_deref().unwrap_or_default());
    let mut problems = Vec::new();
    match tree_manifest::manifest(&here, false) {
        Ok(m) if tree_manifest::digest(&m) == detail.digest => {}
        _ => problems.push(format!(
            "op {}: worktree {} is missing or changed",
            op.id,
            here.display()
        )),
    }
    if !is_registered(&detail.main_repository, &here) {
        problems.push(format!(
            "op {}: git does not list {} as a worktree of {}",
            op.id,
            here.display(),
            detail.main_repository.display()
        ));
    }
    problems
}

pub struct WorktreeMove;

impl super::OpType for WorktreeMove {
    fn what_it_did(&self, _kind: OpKind) -> &'static str {
        "moved worktree"
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<WorktreeDetail>(json).map(super::OpDetail::Worktree)
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
