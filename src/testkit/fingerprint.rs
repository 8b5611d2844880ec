//! A tree's observable state (every entry's kind, bytes hash, mode and mtime) for
//! "nothing changed" and "back exactly as it was" assertions.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime_ns: i64,
    pub hash: Option<String>,
    pub link_target: Option<String>,
}

/// Keyed by path relative to `root`. Folder mtimes are left out: creating and removing an
/// entry inside a folder changes its mtime even when everything in it is back as it was.
pub fn tree_fingerprint(root: &Path) -> BTreeMap<String, EntryState> {
    tree_fingerprint_filtered(root, |_| true)
}

pub fn tree_fingerprint_filtered(
    root: &Path,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, EntryState> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let Ok(entry) = entry else { continue };
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !keep(&rel) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let ft = meta.file_type();
        let state = EntryState {
            kind: if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else {
                "file"
            },
            mode: crate::home::sessions::file_mode(&meta),
            mtime_ns: if ft.is_dir() {
                0
            } else {
                meta.modified()
                    .map(crate::clock::system_time_ns)
                    .unwrap_or(0)
            },
            hash: if ft.is_file() {
                crate::content_hash::hash_file(entry.path()).ok()
            } else {
                None
            },
            link_target: if ft.is_symlink() {
                std::fs::read_link(entry.path())
                    .ok()
                    .map(|t| t.display().to_string())
            } else {
                None
            },
        };
        out.insert(rel, state);
    }
    out
}

/// Lines naming each entry that differs, for an assertion message a person can act on.
pub fn differences(
    before: &BTreeMap<String, EntryState>,
    after: &BTreeMap<String, EntryState>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diffs.push(format!("missing after: {k}")),
            Some(w) if w != v => diffs.push(format!("changed: {k}: {v:?} -> {w:?}")),
            _ => {}
        }
    }
    for k in after.keys() {
        if !before.contains_key(k) {
            diffs.push(format!("new after: {k}"));
        }
    }
    diffs
}
