//! Read-only knowledge of a Codex home (CODEX-LAYOUT.md): where things are and what they
//! mean. Nothing in this layer changes a file.

pub mod codex_versions;
pub mod config;
pub mod inventory;
pub mod listening_ports;
pub mod processes;
pub mod releases;
pub mod sessions;
pub mod survey_rows;
pub use crate::sqlite_read;
pub mod thread_index;
pub mod thread_labels;
pub mod transcript;
pub mod worktrees;
pub mod writer_locks;

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::error::MaintError;

pub const SESSIONS_DIR: &str = "sessions";
pub const ARCHIVED_SESSIONS_DIR: &str = "archived_sessions";
pub const WRITER_LOCKS_DIR: &str = "thread-writer-locks";
pub const DAEMON_PID_FILE: &str = "app-server-daemon/daemon.pid";
pub const CREDENTIALS_FILE: &str = "auth.json";

/// Entries whose presence says "this folder is a Codex home"; a folder with none of them
/// cannot be identified confidently (SPEC.md stop rule).
const CODEX_MARKERS: &[&str] = &[
    "config.toml",
    SESSIONS_DIR,
    ARCHIVED_SESSIONS_DIR,
    "auth.json",
    "history.jsonl",
    "log",
    "installation_id",
    "state_5.sqlite",
];

#[derive(Debug, Clone)]
pub struct CodexHome {
    pub root: PathBuf,
}

impl CodexHome {
    /// `--home`, else `$CODEX_HOME`, else `~/.codex`; the folder must exist.
    pub fn locate(flag: Option<&Path>) -> Result<CodexHome> {
        let root = match flag {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
                Some(v) => PathBuf::from(v),
                None => home_dir()
                    .ok_or_else(|| {
                        MaintError::usage(
                            "cannot find the Codex home: no --home, no $CODEX_HOME, and no $HOME",
                        )
                    })?
                    .join(".codex"),
            },
        };
        let root = if root.is_relative() {
            std::env::current_dir()?.join(root)
        } else {
            root
        };
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(CodexHome { root }),
            Ok(_) => Err(MaintError::usage(format!(
                "the Codex home {} is not a folder",
                root.display()
            ))
            .into()),
            Err(_) => Err(MaintError::usage(format!(
                "no Codex home at {}: pass --home DIR or set CODEX_HOME",
                root.display()
            ))
            .into()),
        }
    }

    pub fn looks_like_codex_home(&self) -> bool {
        CODEX_MARKERS.iter().any(|m| self.root.join(m).exists())
            || std::fs::read_dir(&self.root)
                .map(|mut it| {
                    it.any(|e| {
                        e.map(|e| is_state_db_name(&e.file_name().to_string_lossy()))
                            .unwrap_or(false)
                    })
                })
                .unwrap_or(false)
    }

    /// Mutating commands stop here when the folder does not look like Codex's.
    pub fn require_recognizable(&self) -> Result<()> {
        if self.looks_like_codex_home() {
            return Ok(());
        }
        Err(MaintError::refused(
            format!(
                "{} does not look like a Codex home (no config.toml, sessions/, state_*.sqlite, ...); nothing was changed",
                self.root.display()
            ),
            vec![],
        )
        .into())
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.root.join(SESSIONS_DIR)
    }
    pub fn archived_sessions_dir(&self) -> PathBuf {
        self.root.join(ARCHIVED_SESSIONS_DIR)
    }
    pub fn writer_locks_dir(&self) -> PathBuf {
        self.root.join(WRITER_LOCKS_DIR)
    }
    pub fn display(&self) -> String {
        self.root.display().to_string()
    }
}

pub fn is_state_db_name(name: &str) -> bool {
    name.strip_prefix("state_")
        .and_then(|rest| rest.strip_suffix(".sqlite"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Two spellings name one place only when both resolve to the same file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// `path` as a report shows it: relative to the home when inside it.
pub fn relative_to(home: &CodexHome, path: &Path) -> String {
    path.strip_prefix(&home.root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}
