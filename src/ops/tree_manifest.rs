//! A folder's shape, for checking that a folder is still as an op left it and for putting
//! back what tar cannot keep (mtimes finer than a second).

use anyhow::Result;
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
}

/// Every entry under `root` (not following symlinks), sorted by path.
pub fn manifest(root: &Path, skip_git_internals: bool) -> Result<Vec<ManifestEntry>> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker.into_iter().filter_entry(|e| {
        !(skip_git_internals && e.depth() == 1 && e.file_name() == ".git" && e.file_type().is_dir())
    }) {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        let ft = meta.file_type();
        out.push(ManifestEntry {
            // Recorded in the journal and joined back onto the folder on restore: a lossy
            // name would name a file that does not exist.
            path: crate::path_text::recorded_string(entry.path().strip_prefix(root)?)?,
            kind: if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else {
                'f'
            },
            size: if ft.is_dir() { 0 } else { meta.len() },
            mode: file_mode(&meta),
            mtime_ns: if ft.is_dir() {
                0
            } else {
                meta.modified().map(system_time_ns).unwrap_or(0)
            },
        });
    }
    Ok(out)
}

/// One hash for a manifest: equal digests mean same names, kinds, sizes, modes and mtimes.
pub fn digest(entries: &[ManifestEntry]) -> String {
    let mut hasher = blake3::Hasher::new();
    for e in entries {
        hasher.update(
            format!(
                "{}\0{}\0{}\0{:o}\0{}\n",
                e.path, e.kind, e.size, e.mode, e.mtime_ns
            )
            .as_bytes(),
        );
    }
    hasher.finalize().to_hex().to_string()
}

pub fn set_mtimes(root: &Path, entries: &[ManifestEntry]) -> Result<()> {
    for e in entries.iter().filter(|e| e.kind == 'f') {
        let f = std::fs::File::options()
            .write(true)
            .open(root.join(&e.path))?;
        f.set_modified(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.mtime_ns.max(0) as u64),
        )?;
    }
    Ok(())
}
