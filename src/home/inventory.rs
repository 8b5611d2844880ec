//! One walk of the home gathers everything `inspect` needs: sizes per top-level entry,
//! worktree and release folder sizes, oversized logs, databases, and each transcript's
//! metadata and first line, handed to the caller a batch at a time so little per file is kept.
//! Symlinks are never followed; anything unreadable becomes a finding, never a failure.

use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::sessions::{self, SessionFile, SessionLocation, SessionMeta};
use super::{ARCHIVED_SESSIONS_DIR, CREDENTIALS_FILE, CodexHome, SESSIONS_DIR};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub apparent_bytes: u64,
    pub disk_bytes: u64,
    pub files: u64,
    /// Age of the most recently modified entry, the best "last used" a folder offers.
    pub newest_age_secs: Option<u64>,
}

impl Tally {
    fn add(&mut self, meta: &fs::Metadata) {
        self.apparent_bytes += meta.len();
        self.disk_bytes += disk_bytes(meta);
        if !meta.is_dir() {
            self.files += 1;
        }
        if let Ok(t) = meta.modified() {
            let age = crate::clock::age_secs(t);
            self.newest_age_secs = Some(self.newest_age_secs.map_or(age, |a| a.min(age)));
        }
    }
}

#[cfg(unix)]
fn disk_bytes(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn disk_bytes(meta: &fs::Metadata) -> u64 {
    meta.len()
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub path: String,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LargeFile {
    pub path: String,
    pub bytes: u64,
    pub age_secs: u64,
}

#[derive(Debug, Default)]
pub struct Inventory {
    pub total: Tally,
    pub top_level: BTreeMap<String, (String, Tally)>,
    pub grouped: BTreeMap<PathBuf, Tally>,
    pub large_logs: Vec<LargeFile>,
    pub databases: Vec<PathBuf>,
    pub findings: Vec<Finding>,
    pub credentials_present: bool,
}

/// What the walk hands over for each transcript.
pub struct TranscriptSeen<'a> {
    pub file: &'a SessionFile,
    pub meta: Result<SessionMeta, String>,
    /// The file does not end with a newline: its last record was cut off.
    pub truncated_tail: bool,
}

pub struct WalkOptions {
    pub large_log_bytes: u64,
    /// Folders whose sizes are wanted on their own (worktree roots, release folders).
    pub groups: Vec<PathBuf>,
}

pub fn walk(
    home: &CodexHome,
    options: &WalkOptions,
    on_transcript: &mut dyn FnMut(TranscriptSeen<'_>),
) -> Inventory {
    let mut inv = Inventory::default();
    let groups: HashSet<&Path> = options.groups.iter().map(PathBuf::as_path).collect();
    let sessions_root = home.sessions_dir();
    let archived_root = home.archived_sessions_dir();
    let mut pending: Vec<SessionFile> = Vec::with_capacity(TRANSCRIPT_BATCH);
    // Sorted by name, a plain transcript and its `.zst` twin come one after the other, so
    // twins are seen without a `stat` of every transcript's would-be twin.
    for entry in walkdir::WalkDir::new(&home.root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = err
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                inv.findings.push(Finding {
                    path,
                    problem: format!("unreadable: {}", io_reason(&err)),
                });
                continue;
            }
        };
        let path = entry.path();
        let rel = path.strip_prefix(&home.root).unwrap_or(path);
        if path.file_name().and_then(|n| n.to_str()).is_none() {
            inv.findings.push(Finding {
                path: path.display().to_string(),
                problem: crate::path_text::NAME_NOT_UTF8.into(),
            });
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(err) => {
                inv.findings.push(Finding {
                    path: path.display().to_string(),
                    problem: format!("cannot stat: {}", io_reason(&err)),
                });
                continue;
            }
        };
        inv.total.add(&meta);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = if entry.depth() == 1 {
            kind_of(&meta)
        } else {
            String::new()
        };
        let slot = inv
            .top_level
            .entry(top.clone())
            .or_insert_with(|| (kind.clone(), Tally::default()));
        if entry.depth() == 1 {
            slot.0 = kind;
        }
        slot.1.add(&meta);
        if let Some(group) = path.ancestors().find(|a| groups.contains(a)) {
            inv.grouped
                .entry(group.to_path_buf())
                .or_default()
                .add(&meta);
        }

        let ft = meta.file_type();
        if ft.is_symlink()
            && let Err(e) = fs::metadata(path)
        {
            let problem = if e.raw_os_error() == Some(libc::ELOOP) {
                "symlink loop"
            } else {
                "broken symlink"
            };
            inv.findings.push(Finding {
                path: path.display().to_string(),
                problem: problem.into(),
            });
        }
        if entry.depth() == 1 && top == CREDENTIALS_FILE {
            inv.credentials_present = true;
            continue;
        }
        if ft.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if entry.depth() == 1 && name.ends_with(".sqlite") && ft.is_file() {
            inv.databases.push(path.to_path_buf());
        }
        let in_sessions = top == SESSIONS_DIR && entry.depth() <= 5;
        let in_archive = top == ARCHIVED_SESSIONS_DIR && entry.depth() == 2;
        if (in_sessions || in_archive) && sessions::is_transcript_candidate(path, false) {
            let (location, root) = if in_sessions {
                (SessionLocation::Active, &sessions_root)
            } else {
                (SessionLocation::Archived, &archived_root)
            };
            let mut file = SessionFile::from_metadata(path, &meta, location, root);
            if let Some(previous) = pending.last_mut()
                && previous.path == file.twin_path()
            {
                previous.has_twin = true;
                file.has_twin = true;
            }
            pending.push(file);
            // The newest stays behind for the next batch: its twin may be next.
            if pending.len() > TRANSCRIPT_BATCH {
                let newest = pending.pop();
                hand_over(&mut pending, on_transcript);
                pending.extend(newest);
            }
            continue;
        }
        // A temporary file of ours is a crash's leftover, removed by `recover`: never a log
        // to report or to plan a rotation for.
        let is_log = (top == "log" || name.ends_with(".log"))
            && ft.is_file()
            && !crate::fs_atomic::is_temp_file_name(&name);
        if is_log && meta.len() >= options.large_log_bytes {
            inv.large_logs.push(LargeFile {
                path: path.display().to_string(),
                bytes: meta.len(),
                age_secs: meta.modified().map(crate::clock::age_secs).unwrap_or(0),
            });
        }
    }
    hand_over(&mut pending, on_transcript);
    inv.large_logs.sort_by_key(|l| std::cmp::Reverse(l.bytes));
    inv
}

/// Transcripts are read in batches on all cores: opening thousands of small files one at
/// a time was most of inspect's time, and a batch keeps memory flat however many there are.
const TRANSCRIPT_BATCH: usize = 1024;

fn hand_over(pending: &mut Vec<SessionFile>, on_transcript: &mut dyn FnMut(TranscriptSeen<'_>)) {
    use rayon::prelude::*;
    let firsts: Vec<(Result<SessionMeta, String>, bool)> = pending
        .par_iter()
        .map(|file| {
            if file.is_symlink {
                (Err("a symlink; not read".into()), false)
            } else {
                sessions::read_session_meta_and_tail(&file.path, file.size)
            }
        })
        .collect();
    for (file, (meta, truncated_tail)) in pending.iter().zip(firsts) {
        on_transcript(TranscriptSeen {
            file,
            meta,
            truncated_tail,
        });
    }
    pending.clear();
}

fn kind_of(meta: &fs::Metadata) -> String {
    let ft = meta.file_type();
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "file"
    }
    .into()
}

fn io_reason(err: &walkdir::Error) -> String {
    if err.loop_ancestor().is_some() {
        return "symlink loop".into();
    }
    err.io_error()
        .map(|e| e.to_string())
        .unwrap_or_else(|| err.to_string())
}
