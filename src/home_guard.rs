//! The one check every write into the Codex home goes through (DESIGN.md "Safety rules"):
//! the path must lie inside the home as spelled, with no `..` to climb out and no symlinked
//! folder between the home and it. It is asked at the time of the write, about the path
//! about to be written, whatever the catalog recorded: a catalog can be edited, and a
//! folder can be swapped for a symlink between the plan and the move.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fd::OwnedFd;

use crate::error::MaintError;

mod folders;

use folders::{Blocked, Folders, Resolution};

/// The check, and the folders it resolved: a batch's writes happen relative to the
/// descriptors the check opened (`place`), so what was checked is what is written.
#[derive(Debug)]
pub struct HomeGuard {
    root: PathBuf,
    folders: Folders,
}

/// A path the guard allows, as the folder it lies in (resolved beneath the home, no
/// symlink on the way) and its name there.
#[derive(Debug, Clone)]
pub struct Placed {
    pub folder: Arc<OwnedFd>,
    pub name: OsString,
    pub path: PathBuf,
}

/// A clone resolves its folders on its own: descriptors belong to one guard's batches.
impl Clone for HomeGuard {
    fn clone(&self) -> HomeGuard {
        HomeGuard::resolving(&self.root, self.folders.resolution())
    }
}

impl HomeGuard {
    pub fn new(root: &Path) -> HomeGuard {
        HomeGuard::resolving(root, Resolution::KernelBeneath)
    }

    /// The guard as it runs where the kernel has no `openat2`: component by component.
    #[cfg(test)]
    pub(crate) fn walking(root: &Path) -> HomeGuard {
        HomeGuard::resolving(root, Resolution::Walk)
    }

    fn resolving(root: &Path, resolution: Resolution) -> HomeGuard {
        HomeGuard {
            root: root.to_path_buf(),
            folders: Folders::new(root, resolution),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A new batch resolves its folders afresh rather than trust descriptors of an older one.
    pub fn begin_batch(&self) {
        self.folders.forget_all();
    }

    /// Why `target` may not be written now; `None` when it may.
    pub fn reason_to_refuse(&self, target: &Path) -> Option<String> {
        self.resolve_parent(target).err()
    }

    /// The same check as a refusal (exit 3) naming the path and the reason.
    pub fn ensure(&self, target: &Path) -> anyhow::Result<()> {
        self.resolve_parent(target)
            .map(|_| ())
            .map_err(|why| refusal(target, why))
    }

    pub fn ensure_all<'p>(
        &self,
        targets: impl IntoIterator<Item = &'p Path>,
    ) -> anyhow::Result<()> {
        targets.into_iter().try_for_each(|t| self.ensure(t))
    }

    /// `target` checked and resolved for a write: its folder's descriptor and its name.
    /// Refused (exit 3) where the rule says no; an error where its folder does not exist.
    pub fn place(&self, target: &Path) -> anyhow::Result<Placed> {
        let folder = self
            .resolve_parent(target)
            .map_err(|why| refusal(target, why))?
            .ok_or_else(|| {
                anyhow::Error::from(io::Error::from(io::ErrorKind::NotFound))
                    .context(format!("the folder of {} does not exist", target.display()))
            })?;
        Ok(Placed {
            folder,
            name: target.file_name().unwrap_or_default().to_os_string(),
            path: target.to_path_buf(),
        })
    }

    /// `dir` and those folders above it that do not exist yet, outermost first: what
    /// creating `dir` would create, and so what an op records before it does.
    pub fn missing_folders(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let (missing, _) = self.nearest_folder(dir)?;
        Ok(missing.iter().map(|rel| self.root.join(rel)).collect())
    }

    /// Creates `dir` and the folders above it that are missing, each relative to the
    /// descriptor of the one above; returns those it created, outermost first, so an undo
    /// removes exactly those and nothing the user made.
    pub fn create_folders(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let (missing, mut above) = self.nearest_folder(dir)?;
        let mut created = Vec::with_capacity(missing.len());
        for rel in missing {
            let path = self.root.join(&rel);
            let name = rel.file_name().unwrap_or_default();
            match rustix::fs::mkdirat(&*above, name, rustix::fs::Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(anyhow::Error::from(io::Error::from(e))
                        .context(format!("creating {}", path.display())));
                }
            }
            rustix::fs::fsync(&*above)?;
            above = match self.folders.resolve(&rel) {
                Ok(Some(fd)) => fd,
                Ok(None) => anyhow::bail!("{} vanished as it was created", path.display()),
                Err(blocked) => return Err(refusal(dir, self.describe(blocked, dir))),
            };
            created.push(path);
        }
        Ok(created)
    }

    /// The folders from `dir` up to the nearest one that exists, outermost first and
    /// relative to the home, and that existing folder's descriptor.
    fn nearest_folder(&self, dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Arc<OwnedFd>)> {
        let rel = self.folder_beneath(dir).map_err(|why| refusal(dir, why))?;
        let mut missing: Vec<PathBuf> = Vec::new();
        let mut existing = rel;
        loop {
            match self.folders.resolve(existing) {
                Ok(Some(fd)) => {
                    missing.reverse();
                    return Ok((missing, fd));
                }
                Ok(None) if !existing.as_os_str().is_empty() => {
                    missing.push(existing.to_path_buf());
                    existing = existing.parent().unwrap_or(Path::new(""));
                }
                Ok(None) => {
                    return Err(
                        anyhow::Error::from(io::Error::from(io::ErrorKind::NotFound)).context(
                            format!("the Codex home {} does not exist", self.root.display()),
                        ),
                    );
                }
                Err(blocked) => return Err(refusal(dir, self.describe(blocked, dir))),
            }
        }
    }

    /// Removes folders codex-maint created, innermost first, but only while they are empty:
    /// a folder that gained content since is the user's now and stays.
    pub fn remove_folders_if_empty(&self, created: &[PathBuf]) {
        for dir in created.iter().rev() {
            self.remove_folder_if_empty(dir);
        }
    }

    /// Removes the folder `dir` if it is empty, relative to its parent's descriptor;
    /// whether it did. A folder outside the rule is left alone.
    pub fn remove_folder_if_empty(&self, dir: &Path) -> bool {
        let Ok(Some(parent)) = self.resolve_parent(dir) else {
            return false;
        };
        let name = dir.file_name().unwrap_or_default();
        if rustix::fs::unlinkat(&*parent, name, rustix::fs::AtFlags::REMOVEDIR).is_err() {
            return false;
        }
        if let Ok(rel) = self.folder_beneath(dir) {
            self.folders.forget(rel);
        }
        let _ = rustix::fs::fsync(&*parent);
        true
    }

    /// Makes the entries of folder `dir` (the home or a folder beneath it) durable, through
    /// the descriptor the batch resolved.
    pub fn sync_folder(&self, dir: &Path) -> anyhow::Result<()> {
        Ok(rustix::fs::fsync(&*self.folder(dir)?)?)
    }

    /// The descriptor of folder `dir` (the home or a folder beneath it), as the batch
    /// resolved it; refused where the rule says no, an error where it does not exist.
    pub fn folder(&self, dir: &Path) -> anyhow::Result<Arc<OwnedFd>> {
        let rel = self.folder_beneath(dir).map_err(|why| refusal(dir, why))?;
        match self.folders.resolve(rel) {
            Ok(Some(fd)) => Ok(fd),
            Ok(None) => Err(
                anyhow::Error::from(io::Error::from(io::ErrorKind::NotFound))
                    .context(format!("{} does not exist", dir.display())),
            ),
            Err(blocked) => Err(refusal(dir, self.describe(blocked, dir))),
        }
    }

    /// The folder `target` lies in, resolved; `None` where folders are still to be made.
    fn resolve_parent(&self, target: &Path) -> Result<Option<Arc<OwnedFd>>, String> {
        let inside = self.beneath(target)?;
        let folder = inside.parent().unwrap_or(Path::new(""));
        self.folders
            .resolve(folder)
            .map_err(|blocked| self.describe(blocked, target))
    }

    /// `target` relative to the home, if the rule's spelling allows it: absolute, strictly
    /// below the home, no `..`.
    fn beneath<'t>(&self, target: &'t Path) -> Result<&'t Path, String> {
        if !target.is_absolute() {
            return Err(format!("{} is not an absolute path", target.display()));
        }
        let inside = match target.strip_prefix(&self.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel,
            _ => {
                return Err(format!(
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
            return Err(format!(
                "{} contains `..`, which could climb out of the Codex home",
                target.display()
            ));
        }
        Ok(inside)
    }

    /// A folder that is the home or beneath it, relative to the home.
    fn folder_beneath<'d>(&self, dir: &'d Path) -> Result<&'d Path, String> {
        if dir == self.root {
            return Ok(Path::new(""));
        }
        self.beneath(dir)
    }

    fn describe(&self, blocked: Blocked, target: &Path) -> String {
        match blocked {
            Blocked::Symlink(rel) => format!(
                "{} is a symlink; codex-maint never writes through one (target {})",
                self.root.join(rel).display(),
                target.display()
            ),
            Blocked::Unreadable(rel, e) => {
                format!("cannot check {}: {e}", self.root.join(rel).display())
            }
        }
    }
}

fn refusal(target: &Path, why: String) -> anyhow::Error {
    MaintError::refused(
        format!("refusing to write {}: {why}", target.display()),
        vec![target.display().to_string()],
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same home, once guarded with `openat2` and once by the walk that replaces it
    /// where the kernel has none: every rule must hold for both.
    fn homes() -> Vec<(tempfile::TempDir, HomeGuard)> {
        let make: [fn(&Path) -> HomeGuard; 2] = [HomeGuard::new, HomeGuard::walking];
        make.iter()
            .map(|guard| {
                let dir = tempfile::tempdir().unwrap();
                std::fs::create_dir_all(dir.path().join("home/sessions/2026")).unwrap();
                let g = guard(&dir.path().join("home"));
                (dir, g)
            })
            .collect()
    }

    #[test]
    fn a_path_inside_the_home_passes_even_where_folders_are_still_missing() {
        for (_d, g) in homes() {
            assert_eq!(
                g.reason_to_refuse(&g.root().join("sessions/2026/a.jsonl")),
                None
            );
            assert_eq!(g.reason_to_refuse(&g.root().join("new/deeper/b")), None);
        }
    }

    #[test]
    fn dot_dot_is_refused_even_when_it_would_land_inside() {
        for (_d, g) in homes() {
            for p in ["sessions/../../x", "sessions/../config.toml"] {
                let why = g.reason_to_refuse(&g.root().join(p)).unwrap();
                assert!(why.contains(".."), "{why}");
            }
        }
    }

    #[test]
    fn a_home_given_with_dot_dot_still_guards_below_it() {
        for (d, walk) in homes() {
            let root = d.path().join("home/sessions/..");
            let g = HomeGuard::resolving(&root, walk.folders.resolution());
            assert_eq!(
                g.reason_to_refuse(&g.root().join("sessions/2026/a.jsonl")),
                None
            );
            assert!(
                g.reason_to_refuse(&g.root().join("sessions/../../x"))
                    .is_some()
            );
        }
    }

    #[test]
    fn outside_the_home_and_the_home_itself_are_refused() {
        for (d, g) in homes() {
            assert!(
                g.reason_to_refuse(&d.path().join("elsewhere"))
                    .unwrap()
                    .contains("outside")
            );
            assert!(g.reason_to_refuse(g.root()).unwrap().contains("outside"));
            assert!(g.reason_to_refuse(&d.path().join("home2/x")).is_some());
            assert!(g.reason_to_refuse(Path::new("sessions/x")).is_some());
        }
    }

    #[test]
    fn a_symlinked_folder_on_the_way_is_refused() {
        for (d, g) in homes() {
            std::fs::create_dir(d.path().join("outside")).unwrap();
            std::os::unix::fs::symlink(
                d.path().join("outside"),
                g.root().join("archived_sessions"),
            )
            .unwrap();
            let why = g
                .reason_to_refuse(&g.root().join("archived_sessions/a.jsonl"))
                .unwrap();
            let named = g.root().join("archived_sessions").display().to_string();
            assert!(why.contains("symlink") && why.contains(&named), "{why}");
            let deeper = g
                .reason_to_refuse(&g.root().join("archived_sessions/x/a.jsonl"))
                .unwrap();
            assert!(deeper.contains("symlink"), "{deeper}");
            let err = g
                .ensure(&g.root().join("archived_sessions/a.jsonl"))
                .unwrap_err();
            assert_eq!(
                crate::error::exit_kind_of(&err),
                crate::error::ExitKind::Refused
            );
            assert!(
                g.create_folders(&g.root().join("archived_sessions/x"))
                    .is_err()
            );
            assert!(!d.path().join("outside/x").exists());
        }
    }

    #[test]
    fn the_target_itself_may_be_a_symlink_only_its_folders_may_not() {
        for (d, g) in homes() {
            std::os::unix::fs::symlink(d.path(), g.root().join("link")).unwrap();
            assert_eq!(g.reason_to_refuse(&g.root().join("link")), None);
        }
    }

    /// What writing relative to the batch's descriptors buys: a folder swapped for a
    /// symlink after the guard resolved it is never written through. The write lands in
    /// the folder that was checked, and the next batch refuses the symlink.
    #[test]
    fn a_folder_swapped_for_a_symlink_after_the_check_is_never_written_through() {
        for (d, g) in homes() {
            let root = g.root().to_path_buf();
            let outside = d.path().join("outside");
            std::fs::create_dir(&outside).unwrap();
            std::fs::write(root.join("a.jsonl"), "transcript").unwrap();
            std::fs::write(root.join("sessions/2026/b.jsonl"), "another").unwrap();
            let (a, b) = (
                root.join("sessions/2026/a.jsonl"),
                root.join("sessions/2026/b.jsonl"),
            );
            g.begin_batch();
            g.ensure_all([a.as_path(), b.as_path()]).unwrap();

            std::fs::rename(root.join("sessions/2026"), root.join("sessions/checked")).unwrap();
            std::os::unix::fs::symlink(&outside, root.join("sessions/2026")).unwrap();
            std::fs::write(outside.join("b.jsonl"), "not ours").unwrap();

            crate::fs_atomic::move_within_home(&g, &root.join("a.jsonl"), &a).unwrap();
            crate::fs_atomic::remove_file_within_home(&g, &b).unwrap();
            g.sync_folder(&root.join("sessions/2026")).unwrap();
            assert!(!outside.join("a.jsonl").exists());
            assert_eq!(
                std::fs::read_to_string(outside.join("b.jsonl")).unwrap(),
                "not ours"
            );
            assert_eq!(
                std::fs::read_to_string(root.join("sessions/checked/a.jsonl")).unwrap(),
                "transcript"
            );
            assert!(!root.join("sessions/checked/b.jsonl").exists());

            g.begin_batch();
            let why = g.reason_to_refuse(&a).unwrap();
            assert!(why.contains("symlink"), "{why}");
            assert!(crate::fs_atomic::create_new_within_home(&g, &a).is_err());
            assert!(!outside.join("a.jsonl").exists());
        }
    }

    #[test]
    fn folders_are_created_and_removed_beneath_the_home_only_where_missing_or_empty() {
        for (_d, g) in homes() {
            let deep = g.root().join("archived_sessions/x/y");
            assert_eq!(
                g.missing_folders(&deep).unwrap(),
                vec![
                    g.root().join("archived_sessions"),
                    g.root().join("archived_sessions/x"),
                    deep.clone()
                ]
            );
            let created = g.create_folders(&deep).unwrap();
            assert!(deep.is_dir() && g.missing_folders(&deep).unwrap().is_empty());
            std::fs::write(g.root().join("archived_sessions/keep"), "user's").unwrap();
            g.remove_folders_if_empty(&created);
            assert!(!g.root().join("archived_sessions/x").exists());
            assert!(g.root().join("archived_sessions/keep").exists());
            // A folder removed is resolved afresh, not through a stale descriptor.
            assert_eq!(g.create_folders(&deep).unwrap().len(), 2);
            assert!(deep.is_dir());
        }
    }
}
