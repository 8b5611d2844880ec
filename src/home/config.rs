//! `config.toml`: whether it parses, and which `[projects."<path>"]` entries name a folder
//! that provably no longer exists. Read with toml_edit, the same parser that edits it.

use serde::Serialize;
use std::path::Path;

use super::CodexHome;

pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone, Serialize)]
pub struct ConfigFacts {
    pub path: String,
    pub exists: bool,
    pub parses: bool,
    pub error: Option<String>,
    pub projects: Vec<ProjectEntry>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProjectState {
    Exists,
    /// Provably gone: its parent chain resolves on this machine but the folder does not.
    Missing,
    /// Cannot be decided here: another OS's path, or a volume that is not mounted.
    Ambiguous,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProjectEntry {
    pub path: String,
    pub state: ProjectState,
    pub reason: String,
}

pub fn read(home: &CodexHome) -> ConfigFacts {
    let path = home.root.join(CONFIG_FILE);
    let mut facts = ConfigFacts {
        path: path.display().to_string(),
        exists: path.exists(),
        parses: false,
        error: None,
        projects: Vec::new(),
    };
    // config.toml may be a symlink into a dotfiles checkout; what it names is read.
    let text = match crate::regular_file::read_through_link(&path)
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
    {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return facts,
        Err(e) => {
            facts.error = Some(format!("cannot read: {e}"));
            return facts;
        }
    };
    let doc = match text.parse::<toml_edit::DocumentMut>() {
        Ok(d) => d,
        Err(e) => {
            facts.error = Some(
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("does not parse")
                    .to_string(),
            );
            return facts;
        }
    };
    facts.parses = true;
    if let Some(projects) = doc.get("projects").and_then(|p| p.as_table_like()) {
        for (key, _) in projects.iter() {
            let (state, reason) = judge_project_path(key);
            facts.projects.push(ProjectEntry {
                path: key.to_string(),
                state,
                reason,
            });
        }
    }
    facts
}

/// A path counts as missing only when we can prove it: it is a path of this OS, part of it
/// exists here, and it is not under a volume that is merely unmounted right now.
pub fn judge_project_path(path: &str) -> (ProjectState, String) {
    let looks_windows = path.len() >= 2 && path.as_bytes()[1] == b':' || path.starts_with("\\\\");
    if cfg!(unix) && looks_windows {
        return (
            ProjectState::Ambiguous,
            "a Windows path; cannot be checked on this system".into(),
        );
    }
    let p = Path::new(path);
    if !p.is_absolute() {
        return (ProjectState::Ambiguous, "not an absolute path".into());
    }
    if p.exists() {
        return (ProjectState::Exists, "exists".into());
    }
    let mount_roots = ["/Volumes", "/media", "/mnt", "/run/media"];
    if mount_roots.iter().any(|m| p.starts_with(m)) {
        return (
            ProjectState::Ambiguous,
            "on a removable or network volume that may not be mounted".into(),
        );
    }
    if let Some(mount) = unmounted_mount_point_above(p) {
        return (
            ProjectState::Ambiguous,
            format!("under {mount}, a mount point that is not mounted now"),
        );
    }
    match p.ancestors().skip(1).find(|a| a.exists()) {
        Some(a) if a != Path::new("/") => (
            ProjectState::Missing,
            format!("does not exist (nearest existing folder: {})", a.display()),
        ),
        _ => (
            ProjectState::Ambiguous,
            "no part of the path exists on this machine".into(),
        ),
    }
}

/// A mount point from `/etc/fstab` above `path` that `/proc/self/mounts` does not show:
/// the folder may be on that volume, so its absence proves nothing.
fn unmounted_mount_point_above(path: &Path) -> Option<String> {
    let mount_points = |file: &str| -> Vec<String> {
        std::fs::read_to_string(file)
            .map(|t| {
                t.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mounted = mount_points("/proc/self/mounts");
    mount_points("/etc/fstab")
        .into_iter()
        .filter(|m| m != "/" && m.starts_with('/'))
        .find(|m| path.starts_with(m) && !mounted.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_provably_missing_project_paths_count_as_dead() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().display().to_string();
        let dead = dir.path().join("gone/deeper").display().to_string();
        assert_eq!(judge_project_path(&live).0, ProjectState::Exists);
        assert_eq!(judge_project_path(&dead).0, ProjectState::Missing);
        assert_eq!(
            judge_project_path("C:\\Users\\x\\repo").0,
            ProjectState::Ambiguous
        );
        assert_eq!(
            judge_project_path("/Volumes/External/repo").0,
            ProjectState::Ambiguous
        );
        assert_eq!(
            judge_project_path("relative/path").0,
            ProjectState::Ambiguous
        );
    }

    #[test]
    fn config_projects_are_listed_and_a_broken_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let home = CodexHome {
            root: dir.path().to_path_buf(),
        };
        let gone = dir.path().join("nope").display().to_string();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("# mine\n[projects.\"{gone}\"]\ntrust_level = \"trusted\"\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n", dir.path().display()),
        )
        .unwrap();
        let facts = read(&home);
        assert!(facts.parses);
        assert_eq!(facts.projects.len(), 2);
        assert_eq!(
            facts
                .projects
                .iter()
                .filter(|p| p.state == ProjectState::Missing)
                .count(),
            1
        );
        std::fs::write(dir.path().join(CONFIG_FILE), "[projects\nbroken").unwrap();
        let facts = read(&home);
        assert!(!facts.parses && facts.error.is_some());
    }
}
