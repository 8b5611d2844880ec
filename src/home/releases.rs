//! Old app-server daemon releases: full copies of the Codex binaries, one folder per
//! version under `packages/app-server-daemon/releases/`, one of them current.

use serde::Serialize;
use std::path::{Path, PathBuf};

use super::CodexHome;

pub const DAEMON_PACKAGE_DIR: &str = "packages/app-server-daemon";

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseFacts {
    pub releases_dir: String,
    /// The release `current` names; `None` when it cannot be told, and then none is old.
    pub current: Option<String>,
    pub releases: Vec<Release>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub path: String,
    pub name: String,
    pub is_current: bool,
}

pub fn releases_dir(home: &CodexHome) -> PathBuf {
    home.root.join(DAEMON_PACKAGE_DIR).join("releases")
}

pub fn read(home: &CodexHome) -> Option<ReleaseFacts> {
    let dir = releases_dir(home);
    let entries = std::fs::read_dir(&dir).ok()?;
    let current = current_release(&dir);
    let mut releases: Vec<Release> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Release {
                path: e.path().display().to_string(),
                is_current: current.as_deref() == Some(name.as_str()),
                name,
            }
        })
        .collect();
    releases.sort_by(|a, b| a.name.cmp(&b.name));
    Some(ReleaseFacts {
        releases_dir: dir.display().to_string(),
        current,
        releases,
    })
}

/// `current` may be a symlink (in `releases/` or beside it) or a file naming the release.
fn current_release(releases: &Path) -> Option<String> {
    for candidate in [releases.join("current"), releases.parent()?.join("current")] {
        if let Ok(target) = std::fs::read_link(&candidate) {
            return target.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        if let Ok(text) = crate::regular_file::read_to_string(&candidate) {
            let name = text.trim();
            let name = Path::new(name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())?;
            return Some(name);
        }
    }
    None
}
