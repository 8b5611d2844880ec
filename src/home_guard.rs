//! The one check every write into the Codex home goes through (DESIGN.md "Safety rules"):
//! the path must lie inside the home as spelled, with no `..` to climb out and no symlinked
//! folder between the home and it. It is asked at the time of the write, about the path
//! about to be written, whatever the catalog recorded: a catalog can be edited, and a
//! folder can be swapped for a symlink between the plan and the move.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::MaintError;

#[derive(Debug, Clone)]
pub struct HomeGuard {
    root: PathBuf,
}

impl HomeGuard {
    pub fn new(root: &Path) -> HomeGuard {
        HomeGuard {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Why `target` may not be written now; `None` when it may.
    pub fn reason_to_refuse(&self, target: &Path) -> Option<String> {
        if !target.is_absolute() {
            return Some(format!("{} is not an absolute path", target.display()));
        }
        let inside = match target.strip_prefix(&self.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel,
            _ => {
                return Some(format!(
                    "{} is outside the Codex home {}",
                    target.display(),
                    self.root.display()
                ));
            }
        };
        // Only below the home: the home itself is spelled as the user gave it.
        if inside
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Some(format!(
                "{} contains `..`, which could climb out of the Codex home",
                target.display()
            ));
        }
        // Every folder between the home and the target must be a real folder: a symlink
        // there would carry the write somewhere else. Folders not made yet are made by us.
        let mut folder = self.root.clone();
        let mut parts: Vec<Component> = inside.components().collect();
        parts.pop();
        for part in parts {
            folder.push(part);
            match std::fs::symlink_metadata(&folder) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Some(format!(
                        "{} is a symlink; codex-maint never writes through one (target {})",
                        folder.display(),
                        target.display()
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => {
                    return Some(format!("cannot check {}: {e}", folder.display()));
                }
            }
        }
        None
    }

    /// The same check as a refusal (exit 3) naming the path and the reason.
    pub fn ensure(&self, target: &Path) -> anyhow::Result<()> {
        match self.reason_to_refuse(target) {
            None => Ok(()),
            Some(why) => Err(MaintError::refused(
                format!("refusing to write {}: {why}", target.display()),
                vec![target.display().to_string()],
            )
            .into()),
        }
    }

    pub fn ensure_all<'p>(
        &self,
        targets: impl IntoIterator<Item = &'p Path>,
    ) -> anyhow::Result<()> {
        targets.into_iter().try_for_each(|t| self.ensure(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, HomeGuard) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/sessions/2026")).unwrap();
        let guard = HomeGuard::new(&dir.path().join("home"));
        (dir, guard)
    }

    #[test]
    fn a_path_inside_the_home_passes_even_where_folders_are_still_missing() {
        let (_d, g) = home();
        assert_eq!(
            g.reason_to_refuse(&g.root().join("sessions/2026/a.jsonl")),
            None
        );
        assert_eq!(g.reason_to_refuse(&g.root().join("new/deeper/b")), None);
    }

    #[test]
    fn dot_dot_is_refused_even_when_it_would_land_inside() {
        let (_d, g) = home();
        for p in ["sessions/../../x", "sessions/../config.toml"] {
            let why = g.reason_to_refuse(&g.root().join(p)).unwrap();
            assert!(why.contains(".."), "{why}");
        }
    }

    #[test]
    fn a_home_given_with_dot_dot_still_guards_below_it() {
        let (d, _) = home();
        let g = HomeGuard::new(&d.path().join("home/sessions/.."));
        assert_eq!(
            g.reason_to_refuse(&g.root().join("sessions/2026/a.jsonl")),
            None
        );
        assert!(
            g.reason_to_refuse(&g.root().join("sessions/../../x"))
                .is_some()
        );
    }

    #[test]
    fn outside_the_home_and_the_home_itself_are_refused() {
        let (d, g) = home();
        assert!(
            g.reason_to_refuse(&d.path().join("elsewhere"))
                .unwrap()
                .contains("outside")
        );
        assert!(g.reason_to_refuse(g.root()).unwrap().contains("outside"));
        assert!(g.reason_to_refuse(&d.path().join("home2/x")).is_some());
        assert!(g.reason_to_refuse(Path::new("sessions/x")).is_some());
    }

    #[test]
    fn a_symlinked_folder_on_the_way_is_refused() {
        let (d, g) = home();
        std::fs::create_dir(d.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(d.path().join("outside"), g.root().join("archived_sessions"))
            .unwrap();
        let why = g
            .reason_to_refuse(&g.root().join("archived_sessions/a.jsonl"))
            .unwrap();
        assert!(why.contains("symlink"), "{why}");
        assert!(
            g.ensure(&g.root().join("archived_sessions/a.jsonl"))
                .is_err()
        );
    }

    #[test]
    fn the_target_itself_may_be_a_symlink_only_its_folders_may_not() {
        let (d, g) = home();
        std::os::unix::fs::symlink(d.path(), g.root().join("link")).unwrap();
        assert_eq!(g.reason_to_refuse(&g.root().join("link")), None);
    }
}
