//! Git worktrees the Codex app keeps under `worktrees/<id>/<repo>`: whether git vouches for
//! each (registered in its main repository), whether it is clean, how old it is. Git is
//! asked with `--no-optional-locks`, so asking never rewrites an index.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Listed by `git worktree list` of the repository its `.git` file names.
    Registered,
    /// A `.git` file whose repository does not list it (or is gone).
    Unregistered,
    /// A full repository, not a linked worktree.
    StandaloneRepository,
    NotGit,
    Unknown,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Cleanliness {
    Clean,
    Dirty,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorktreeFacts {
    pub path: String,
    pub registration: Registration,
    pub main_repository: Option<String>,
    pub status: Cleanliness,
    pub changed_entries: usize,
    pub branch: Option<String>,
    pub note: Option<String>,
}

/// The folders that look like worktree roots: `worktrees/<id>/<name>`, or `worktrees/<id>`
/// when that folder itself holds a `.git`.
pub fn roots(worktrees_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(ids) = std::fs::read_dir(worktrees_dir) else {
        return out;
    };
    for id in ids.flatten() {
        let p = id.path();
        if !id.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if p.join(".git").exists() {
            out.push(p);
            continue;
        }
        if let Ok(children) = std::fs::read_dir(&p) {
            for c in children.flatten() {
                if c.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(c.path());
                }
            }
        }
    }
    out.sort();
    out
}

pub fn examine(root: &Path) -> WorktreeFacts {
    let mut facts = WorktreeFacts {
        path: root.display().to_string(),
        registration: Registration::Unknown,
        main_repository: None,
        status: Cleanliness::Unknown,
        changed_entries: 0,
        branch: None,
        note: None,
    };
    let dot_git = root.join(".git");
    match std::fs::symlink_metadata(&dot_git) {
        Err(_) => {
            facts.registration = Registration::NotGit;
            facts.note = Some("no .git: not a git checkout".into());
            return facts;
        }
        Ok(m) if m.is_dir() => facts.registration = Registration::StandaloneRepository,
        Ok(_) => {
            let gitdir = crate::regular_file::read_to_string(&dot_git)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("gitdir:").map(|g| g.trim().to_string()))
                });
            let Some(gitdir) = gitdir else {
                facts.note = Some(".git file does not name a gitdir".into());
                return facts;
            };
            let gitdir = if Path::new(&gitdir).is_absolute() {
                PathBuf::from(&gitdir)
            } else {
                root.join(&gitdir)
            };
            // <main>/.git/worktrees/<name> -> <main>/.git
            let common = gitdir
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf);
            facts.main_repository = common
                .as_ref()
                .and_then(|c| c.parent())
                .map(|m| m.display().to_string());
            facts.registration = match common.filter(|c| c.exists()) {
                None => {
                    facts.note = Some(format!("its repository {} is gone", gitdir.display()));
                    Registration::Unregistered
                }
                Some(common) => registered_in(&common, root),
            };
        }
    }
    match run_git(
        GitAt::WorkTree(root),
        &["status", "--porcelain=v1", "--branch"],
    ) {
        Ok(out) => {
            let mut lines = out.lines();
            facts.branch = lines
                .next()
                .and_then(|l| l.strip_prefix("## "))
                .map(|b| b.split("...").next().unwrap_or(b).to_string());
            facts.changed_entries = lines.filter(|l| !l.is_empty()).count();
            facts.status = if facts.changed_entries == 0 {
                Cleanliness::Clean
            } else {
                Cleanliness::Dirty
            };
        }
        Err(e) => facts.note = Some(format!("git status failed: {e}")),
    }
    facts
}

fn registered_in(common_git_dir: &Path, root: &Path) -> Registration {
    match run_git(
        GitAt::GitDir(common_git_dir),
        &["worktree", "list", "--porcelain"],
    ) {
        Ok(list) => {
            let me = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            let listed = list
                .lines()
                .filter_map(|l| l.strip_prefix("worktree "))
                .any(|p| {
                    let p = Path::new(p);
                    p == root || std::fs::canonicalize(p).map(|c| c == me).unwrap_or(false)
                });
            if listed {
                Registration::Registered
            } else {
                Registration::Unregistered
            }
        }
        Err(_) => Registration::Unknown,
    }
}

/// Which repository git is pointed at: a worktree's folder, or a bare git directory.
enum GitAt<'a> {
    WorkTree(&'a Path),
    GitDir(&'a Path),
}

/// Runs git without taking its optional locks, so looking never contends with a Codex
/// that is using the same repository; the error is git's first line of complaint.
fn run_git(at: GitAt<'_>, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("git");
    command
        .arg("--no-optional-locks")
        .env("GIT_OPTIONAL_LOCKS", "0");
    match at {
        GitAt::WorkTree(dir) => command.arg("-C").arg(dir),
        GitAt::GitDir(dir) => command.arg("--git-dir").arg(dir),
    };
    let out = command.args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    }
}
