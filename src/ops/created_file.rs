//! A rollback removes only what its own op created. Equal bytes do not make a file ours:
//! another writer (a second store on the home, before the home lock; Codex itself) can put
//! the very same compressed bytes at the same name, and removing that would lose its
//! transcript. The op records the device and inode of the file it created, which a rename
//! keeps, and recovery removes a destination only when it is still that file.

use serde::{Deserialize, Serialize};
use std::fs::Metadata;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedFile {
    pub dev: u64,
    pub ino: u64,
}

impl CreatedFile {
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> CreatedFile {
        use std::os::unix::fs::MetadataExt;
        CreatedFile {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    #[cfg(not(unix))]
    pub fn of(_meta: &Metadata) -> CreatedFile {
        CreatedFile { dev: 0, ino: 0 }
    }

    pub fn at(path: &Path) -> std::io::Result<CreatedFile> {
        std::fs::symlink_metadata(path).map(|m| CreatedFile::of(&m))
    }

    /// Whether the file at `path` is, right now, the one the op created.
    pub fn is_at(&self, path: &Path) -> bool {
        CreatedFile::at(path).is_ok_and(|now| now == *self)
    }
}

/// Whether the file at `path` may be removed as the op's own: by the identity it recorded
/// when it has one (and then its bytes must also be the ones it wrote), else, for ops
/// journaled before identities were recorded, by the bytes alone as before.
pub fn is_ours(
    created: Option<&CreatedFile>,
    path: &Path,
    bytes_are_ours: impl FnOnce() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    if created.is_some_and(|c| !c.is_at(path)) {
        return Ok(false);
    }
    bytes_are_ours()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_under_the_same_name_are_not_the_file_the_op_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollout.jsonl.zst");
        std::fs::write(&path, "compressed").unwrap();
        let ours = CreatedFile::at(&path).unwrap();
        let keep_inode_busy = dir.path().join("held");
        std::fs::hard_link(&path, &keep_inode_busy).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "compressed").unwrap();
        assert!(!ours.is_at(&path));
        assert!(!is_ours(Some(&ours), &path, || Ok(true)).unwrap());
        assert!(
            is_ours(None, &path, || Ok(true)).unwrap(),
            "old ops keep the hash rule"
        );
        assert!(is_ours(Some(&CreatedFile::at(&path).unwrap()), &path, || Ok(true)).unwrap());
    }
}
