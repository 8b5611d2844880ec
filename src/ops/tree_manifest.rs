//! A folder's shape, for checking that a folder is still as an op left it and for putting
//! back what tar cannot keep: times finer than a second, a symlink's own mtime, and the
//! times of folders, which unpacking a tar rewrites as it fills them.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::clock::system_time_ns;
use crate::home::sessions::file_mode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub path: String,
    pub kind: char,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    /// A symlink's target, in an exact manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The folder itself, in an exact manifest: its mode and mtime come back too.
pub const ROOT: &str = ".";

/// Every entry under `root` (not following symlinks), sorted by path: names, kinds,
/// sizes, modes, and the mtimes of files and symlinks. What a worktree's identity is.
pub fn manifest(root: &Path, skip_git_internals: bool) -> Result<Vec<ManifestEntry>> {
    walk(root, skip_git_internals, false)
}

/// `manifest`, and also the folder itself, every folder's mtime and every symlink's
/// target: everything that makes a stored tree come back exactly.
pub fn exact_manifest(root: &Path) -> Result<Vec<ManifestEntry>> {
    walk(root, false, true)
}

fn walk(root: &Path, skip_git_internals: bool, exact: bool) -> Result<Vec<ManifestEntry>> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(if exact { 0 } else { 1 })
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker.into_iter().filter_entry(|e| {
        !(skip_git_internals && e.depth() == 1 && e.file_name() == ".git" && e.file_type().is_dir())
    }) {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        let ft = meta.file_type();
        let inside = entry.path().strip_prefix(root)?;
        // A stored tree is read by tar, which would open a FIFO and wait on it forever.
        if exact
            && !ft.is_dir()
            && !ft.is_symlink()
            && let Some(what) = crate::regular_file::what_else(&meta)
        {
            anyhow::bail!(
                "{} is not a regular file ({what}): {} is kept",
                entry.path().display(),
                root.display()
            );
        }
        out.push(ManifestEntry {
            // Recorded in the journal and joined back onto the folder on restore: a lossy
            // name would name a file that does not exist.
            path: if inside.as_os_str().is_empty() {
                ROOT.to_string()
            } else {
                crate::path_text::recorded_string(inside)?
            },
            kind: if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else {
                'f'
            },
            size: if ft.is_dir() { 0 } else { meta.len() },
            mode: file_mode(&meta),
            mtime_ns: if ft.is_dir() && !exact {
                0
            } else {
                meta.modified().map(system_time_ns).unwrap_or(0)
            },
            target: if exact && ft.is_symlink() {
                let target = std::fs::read_link(entry.path())?;
                Some(crate::path_text::recorded_string(&target)?)
            } else {
                None
            },
        });
    }
    Ok(out)
}

/// The first entry under `root` that is neither a folder, a regular file nor a symlink
/// (a FIFO, a socket, a device), as "path (a FIFO)": such a tree is not stored.
pub fn first_odd_entry(root: &Path) -> Option<String> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_type().is_dir() && !e.file_type().is_symlink())
        .find_map(|e| {
            let what = crate::regular_file::what_else(&e.path().symlink_metadata().ok()?)?;
            Some(format!("{} ({what})", e.path().display()))
        })
}

/// One hash for a manifest: equal digests mean same names, kinds, sizes, modes, mtimes
/// (and, in an exact manifest, link targets).
pub fn digest(entries: &[ManifestEntry]) -> String {
    let mut hasher = blake3::Hasher::new();
    for e in entries {
        hasher.update(
            format!(
                "{}\0{}\0{}\0{:o}\0{}",
                e.path, e.kind, e.size, e.mode, e.mtime_ns
            )
            .as_bytes(),
        );
        if let Some(target) = &e.target {
            hasher.update(format!("\0{target}").as_bytes());
        }
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// The first entry where `found` differs from `recorded`, said for a person.
pub fn first_difference(recorded: &[ManifestEntry], found: &[ManifestEntry]) -> Option<String> {
    let mut found_at = found.iter().peekable();
    for r in recorded {
        match found_at.peek() {
            Some(f) if f.path == r.path => {
                if *f != r {
                    return Some(format!("{}: recorded {r:?}, found {f:?}", r.path));
                }
                found_at.next();
            }
            Some(f) if f.path < r.path => return Some(format!("{}: not recorded", f.path)),
            _ => return Some(format!("{}: missing", r.path)),
        }
    }
    found_at.next().map(|f| format!("{}: not recorded", f.path))
}

/// Gives every entry under `root` the mode and mtime `entries` recorded: files, folders,
/// and symlinks (their own mtime, never their target's). Children before their folder,
/// though setting a child's times leaves its folder's mtime alone, so the order is only
/// for clarity. An entry without a recorded folder mtime (a manifest from before exact
/// manifests) keeps the folder's.
pub fn set_times_and_modes(root: &Path, entries: &[ManifestEntry]) -> Result<()> {
    use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps, UTIME_OMIT, chmodat, utimensat};
    for e in entries.iter().rev() {
        let path = if e.path == ROOT {
            root.to_path_buf()
        } else {
            root.join(&e.path)
        };
        if e.kind != 'l' {
            chmodat(
                CWD,
                &path,
                Mode::from_raw_mode(e.mode & 0o7777),
                AtFlags::empty(),
            )
            .with_context(|| format!("setting the mode of {}", path.display()))?;
        }
        if e.kind == 'd' && e.mtime_ns == 0 {
            continue;
        }
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: e.mtime_ns.div_euclid(1_000_000_000),
                tv_nsec: e.mtime_ns.rem_euclid(1_000_000_000) as _,
            },
        };
        utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("setting the mtime of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exact_manifest_comes_back_exactly_links_folders_and_modes_included() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::create_dir_all(tree.join("lib")).unwrap();
        std::fs::write(tree.join("lib/tool.js"), "x").unwrap();
        std::os::unix::fs::symlink("../lib/tool.js", tree.join("bin/tool")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            tree.join("lib/tool.js"),
            std::fs::Permissions::from_mode(0o751),
        )
        .unwrap();
        let recorded = exact_manifest(&tree).unwrap();
        assert_eq!(recorded[0].path, ROOT);
        let link = recorded.iter().find(|e| e.kind == 'l').unwrap();
        assert_eq!(link.target.as_deref(), Some("../lib/tool.js"));
        assert!(recorded.iter().all(|e| e.mtime_ns != 0));

        // Disturb every time and mode, then put them back.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(
            tree.join("lib/tool.js"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(tree.join("lib/tool.js"), "x").unwrap();
        std::fs::remove_file(tree.join("bin/tool")).unwrap();
        std::os::unix::fs::symlink("../lib/tool.js", tree.join("bin/tool")).unwrap();
        let disturbed = exact_manifest(&tree).unwrap();
        assert!(first_difference(&recorded, &disturbed).is_some());
        set_times_and_modes(&tree, &recorded).unwrap();
        let back = exact_manifest(&tree).unwrap();
        assert_eq!(first_difference(&recorded, &back), None);
        assert_eq!(digest(&recorded), digest(&back));

        std::fs::remove_file(tree.join("bin/tool")).unwrap();
        std::os::unix::fs::symlink("../lib/other.js", tree.join("bin/tool")).unwrap();
        set_times_and_modes(&tree, &recorded).unwrap();
        let retargeted = exact_manifest(&tree).unwrap();
        assert!(
            first_difference(&recorded, &retargeted)
                .unwrap()
                .contains("bin/tool")
        );
    }

    #[test]
    fn a_manifest_without_targets_hashes_as_it_always_did() {
        let e = ManifestEntry {
            path: "a".into(),
            kind: 'f',
            size: 1,
            mode: 0o100644,
            mtime_ns: 5,
            target: None,
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"a\x00f\x001\x00100644\x005\n");
        assert_eq!(digest(&[e]), hasher.finalize().to_hex().to_string());
    }
}
