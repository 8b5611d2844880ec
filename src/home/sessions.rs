//! Session transcripts: Codex's file names, where they live, and the one line of each we
//! read (`session_meta`). Transcript bodies are never read here. A transcript is a plain
//! `rollout-….jsonl` or its compressed form `rollout-….jsonl.zst` (one zstd stream), which
//! Codex 0.137 and later reads wherever a plain one may be.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::CodexHome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionLocation {
    Active,
    Archived,
}

/// What a Codex transcript's file name says: `rollout-YYYY-MM-DDThh-mm-ss-<uuid>.jsonl`,
/// with `.zst` after it when compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutName {
    /// "YYYYMMDD", ASCII digits: a home holds one name per transcript, 100,000 of them in a
    /// heavy one, so the date is kept inline rather than as three strings.
    date: [u8; 8],
    pub id: String,
}

impl RolloutName {
    fn date_part(&self, range: std::ops::Range<usize>) -> &str {
        std::str::from_utf8(&self.date[range]).expect("parsed as ASCII digits")
    }

    pub fn year(&self) -> &str {
        self.date_part(0..4)
    }

    pub fn month(&self) -> &str {
        self.date_part(4..6)
    }

    pub fn day(&self) -> &str {
        self.date_part(6..8)
    }
}

pub fn parse_rollout_name(name: &str) -> Option<RolloutName> {
    let plain = name
        .strip_suffix(crate::zstd_stream::SUFFIX)
        .unwrap_or(name);
    let stem = plain.strip_prefix("rollout-")?.strip_suffix(".jsonl")?;
    // "YYYY-MM-DDThh-mm-ss" is 19 bytes, then '-' and a 36-byte uuid.
    if stem.len() != 19 + 1 + 36 || !stem.is_char_boundary(19) {
        return None;
    }
    let (stamp, rest) = stem.split_at(19);
    let id = rest.strip_prefix('-')?;
    let b = stamp.as_bytes();
    let digits_at = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let shape_ok = digits_at(0..4)
        && b[4] == b'-'
        && digits_at(5..7)
        && b[7] == b'-'
        && digits_at(8..10)
        && b[10] == b'T'
        && digits_at(11..13)
        && b[13] == b'-'
        && digits_at(14..16)
        && b[16] == b'-'
        && digits_at(17..19);
    if !shape_ok || uuid::Uuid::parse_str(id).is_err() {
        return None;
    }
    let mut date = [0u8; 8];
    date[0..4].copy_from_slice(&b[0..4]);
    date[4..6].copy_from_slice(&b[5..7]);
    date[6..8].copy_from_slice(&b[8..10]);
    Some(RolloutName {
        date,
        id: id.to_ascii_lowercase(),
    })
}

/// A file found where Codex keeps transcripts, with the metadata policy needs.
#[derive(Debug, Clone)]
pub struct SessionFile {
    pub path: PathBuf,
    pub location: SessionLocation,
    pub name: Option<RolloutName>,
    pub is_symlink: bool,
    pub size: u64,
    pub mtime: SystemTime,
    pub mode: u32,
    /// For active sessions: whether it sits in the dated folder its name implies.
    pub in_dated_folder: bool,
    /// Stored as one zstd stream (`.jsonl.zst`).
    pub compressed: bool,
    /// A plain file and its compressed sibling both exist: which one holds the session is
    /// a guess (Codex reads the plain one), so neither is acted on.
    pub has_twin: bool,
}

impl SessionFile {
    pub fn from_path(
        path: &Path,
        location: SessionLocation,
        sessions_root: &Path,
    ) -> std::io::Result<SessionFile> {
        let meta = fs::symlink_metadata(path)?;
        Ok(SessionFile::from_metadata(
            path,
            &meta,
            location,
            sessions_root,
        ))
    }

    /// From metadata the caller already has (a directory walk), without another `stat`.
    pub fn from_metadata(
        path: &Path,
        meta: &fs::Metadata,
        location: SessionLocation,
        sessions_root: &Path,
    ) -> SessionFile {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = parse_rollout_name(&file_name);
        let in_dated_folder = match (&name, location) {
            (Some(n), SessionLocation::Active) => {
                path.parent() == Some(&sessions_root.join(n.year()).join(n.month()).join(n.day()))
            }
            (_, SessionLocation::Archived) => path.parent() == Some(sessions_root),
            _ => false,
        };
        SessionFile {
            path: path.to_path_buf(),
            location,
            name,
            is_symlink: meta.file_type().is_symlink(),
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            mode: file_mode(meta),
            in_dated_folder,
            compressed: crate::zstd_stream::is_compressed_name(path),
            has_twin: false,
        }
    }

    /// The path of the other representation of this transcript: the compressed sibling
    /// of a plain file, or the plain sibling of a compressed one.
    pub fn twin_path(&self) -> PathBuf {
        twin_path(&self.path)
    }

    /// The plain size: the file's own for a plain transcript; for a compressed one what its
    /// frame header declares, else `None`.
    pub fn plain_size(&self) -> Option<u64> {
        if self.compressed {
            crate::zstd_stream::declared_plain_size(&self.path)
        } else {
            Some(self.size)
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.name.as_ref().map(|n| n.id.as_str())
    }
}

pub use crate::fs_atomic::file_mode;

/// `x.jsonl` <-> `x.jsonl.zst`.
pub fn twin_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(crate::zstd_stream::SUFFIX) {
        Some(plain) => path.with_file_name(plain),
        None => path.with_file_name(format!("{name}{}", crate::zstd_stream::SUFFIX)),
    }
}

/// Marks every transcript whose other representation sits beside it. Paths are compared
/// as bytes: hashing 100,000 `Path`s component by component was a third of a listing's time.
fn mark_twins(files: &mut [SessionFile]) {
    use std::os::unix::ffi::OsStrExt;
    let suffix = crate::zstd_stream::SUFFIX.as_bytes();
    let twins: Vec<bool> = {
        let paths: std::collections::HashSet<&[u8]> = files
            .iter()
            .map(|f| f.path.as_os_str().as_bytes())
            .collect();
        let mut twin = Vec::new();
        files
            .iter()
            .map(|f| {
                let path = f.path.as_os_str().as_bytes();
                match path.strip_suffix(suffix) {
                    Some(plain) => paths.contains(plain),
                    None => {
                        twin.clear();
                        twin.extend_from_slice(path);
                        twin.extend_from_slice(suffix);
                        paths.contains(&twin[..])
                    }
                }
            })
            .collect()
    };
    for (file, has_twin) in files.iter_mut().zip(twins) {
        file.has_twin = has_twin;
    }
}

/// Every `*.jsonl` under `sessions/` and `archived_sessions/`, without following symlinks.
/// Problems (unreadable folders) come back as text for the report, never as a failure.
pub fn scan(home: &CodexHome) -> (Vec<SessionFile>, Vec<String>) {
    let mut candidates: Vec<(PathBuf, SessionLocation, usize)> = Vec::new();
    let mut problems = Vec::new();
    let roots = [
        (home.sessions_dir(), SessionLocation::Active, 4),
        (home.archived_sessions_dir(), SessionLocation::Archived, 1),
    ];
    for (at, (root, location, depth)) in roots.iter().enumerate() {
        match fs::symlink_metadata(root) {
            Err(_) => continue,
            Ok(m) if m.file_type().is_symlink() => {
                problems.push(format!(
                    "{} is a symlink; its transcripts are not counted or moved (codex-maint never follows a symlink out of the home)",
                    root.display()
                ));
                continue;
            }
            Ok(_) => {}
        }
        // Sorted by name, the walk yields paths in `Path` order, so the sort below finds
        // them almost in place.
        for entry in walkdir::WalkDir::new(root)
            .min_depth(1)
            .max_depth(*depth)
            .follow_links(false)
            .sort_by_file_name()
        {
            match entry {
                Ok(e) if is_transcript_candidate(e.path(), e.file_type().is_dir()) => {
                    candidates.push((e.into_path(), *location, at))
                }
                Ok(_) => {}
                Err(err) => problems.push(format!("{err}")),
            }
        }
    }
    // The `stat`s on all cores: on a home of 100,000 transcripts they are most of a scan.
    let stated: Vec<Result<SessionFile, String>> = crate::io_pool::install(|| {
        use rayon::prelude::*;
        candidates
            .par_iter()
            .map(|(path, location, at)| {
                SessionFile::from_path(path, *location, &roots[*at].0)
                    .map_err(|err| format!("{}: {err}", path.display()))
            })
            .collect()
    });
    let mut found = Vec::with_capacity(stated.len());
    for file in stated {
        match file {
            Ok(f) => found.push(f),
            Err(problem) => problems.push(problem),
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    mark_twins(&mut found);
    (found, problems)
}

pub fn is_transcript_candidate(path: &Path, is_dir: bool) -> bool {
    !is_dir
        && (path.extension().is_some_and(|e| e == "jsonl")
            || crate::zstd_stream::is_compressed_name(path))
}

/// The first record of a transcript, which names the thread and where it ran.
#[derive(Debug, Clone, Serialize)]
pub struct SessionMeta {
    pub id: String,
    pub timestamp: Option<String>,
    pub cwd: Option<String>,
    pub originator: Option<String>,
    pub cli_version: Option<String>,
    pub source: Option<String>,
    pub git_branch: Option<String>,
    pub git_commit: Option<String>,
    /// The thread this one is a fork of and reads its early turns from (`history_base`,
    /// 0.160 and later): that thread's rows must stay while this one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forks_from: Option<String>,
}

/// The files of the one session whose id is `wanted` or starts with it, in any case (a
/// session may have more than one file, e.g. a copy left in both places). No match, or a
/// prefix shared by several sessions, is an error that says which.
pub fn files_of_id<'f>(
    files: &'f [SessionFile],
    wanted: &str,
) -> Result<Vec<&'f SessionFile>, String> {
    let wanted_lc = wanted.to_ascii_lowercase();
    let matches: Vec<&SessionFile> = files
        .iter()
        .filter(|f| f.id().is_some_and(|id| id.starts_with(&wanted_lc)))
        .collect();
    let mut distinct: Vec<&str> = matches.iter().filter_map(|f| f.id()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    match distinct.len() {
        0 => Err(format!("no session matches {wanted}")),
        1 => Ok(matches),
        _ => Err(format!(
            "{wanted} is ambiguous: it matches {}",
            distinct.join(", ")
        )),
    }
}

/// A `session_meta` line carries the full base instructions (tens of KB); anything far
/// larger is not a Codex first line and is not read further.
const MAX_FIRST_LINE: u64 = 8 << 20;

pub fn read_session_meta(path: &Path) -> Result<SessionMeta, String> {
    let plain = crate::zstd_stream::open_plain(path).map_err(|e| format!("cannot open: {e}"))?;
    first_record_meta(plain)
}

/// The first record, and whether the file ends mid-record (its last byte is not a newline),
/// from one open: the two things inspect wants of every transcript. `len` is the size the
/// caller already stat'ed, which spares a second stat per file.
pub fn read_session_meta_and_tail(path: &Path, len: u64) -> (Result<SessionMeta, String>, bool) {
    if crate::zstd_stream::is_compressed_name(path) {
        // A stream's last plain byte is known only by decoding all of it; a compressed
        // transcript was whole when it was written, and a damaged one fails to decode.
        return (read_session_meta(path), false);
    }
    let file = match crate::regular_file::open(path) {
        Ok(f) => f,
        Err(e) => return (Err(format!("cannot open: {e}")), false),
    };
    let truncated_tail = ends_mid_record(&file, len);
    (first_record_meta(file), truncated_tail)
}

fn ends_mid_record(file: &File, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    len > 0 && file.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n'
}

fn first_record_meta(file: impl Read) -> Result<SessionMeta, String> {
    let mut line = Vec::new();
    BufReader::new(file.take(MAX_FIRST_LINE))
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read: {e}"))?;
    if line.is_empty() {
        return Err("empty transcript".into());
    }
    let record: Value = serde_json::from_slice(&line)
        .map_err(|_| "first line is not a whole JSON record".to_string())?;
    parse_session_meta(&record)
}

pub fn parse_session_meta(record: &Value) -> Result<SessionMeta, String> {
    if record.get("type").and_then(Value::as_str) != Some("session_meta") {
        return Err("first record is not session_meta".into());
    }
    let payload = record.get("payload").ok_or("session_meta has no payload")?;
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_string);
    let id = text("id")
        .or_else(|| text("session_id"))
        .ok_or("session_meta has no id")?;
    let git = payload.get("git");
    let git_text = |key: &str| {
        git.and_then(|g| g.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(SessionMeta {
        id: id.to_ascii_lowercase(),
        timestamp: text("timestamp"),
        cwd: text("cwd"),
        originator: text("originator"),
        cli_version: text("cli_version"),
        source: payload.get("source").map(|s| match s {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        git_branch: git_text("branch"),
        git_commit: git_text("commit_hash"),
        forks_from: payload
            .get("history_base")
            .and_then(|b| b.get("thread_id"))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
    })
}

/// Where Codex's own `unarchive` puts a transcript back: the dated folder of its name.
pub fn dated_folder(sessions_root: &Path, name: &RolloutName) -> PathBuf {
    sessions_root
        .join(name.year())
        .join(name.month())
        .join(name.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_names_parse_and_others_do_not() {
        let n = parse_rollout_name(
            "rollout-2026-11-24T06-12-09-01a20c2e-e45a-7d33-9558-2b68569b884c.jsonl",
        )
        .unwrap();
        assert_eq!((n.year(), n.month(), n.day()), ("2026", "11", "24"));
        assert_eq!(n.id, "01a20c2e-e45a-7d33-9558-2b68569b884c");
        for bad in [
            "rollout-2026-11-24T06-12-09-not-a-uuid.jsonl",
            "notes.jsonl",
            "rollout-2026-11-24-06-12-09-01a20c2e-e45a-7d33-9558-2b68569b884c.jsonl",
            "rollout-2026-11-24T06-12-09-01a20c2e-e45a-7d33-9558-2b68569b884c.json",
        ] {
            assert!(parse_rollout_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn session_meta_is_read_from_the_first_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        fs::write(
            &path,
            "{\"type\":\"session_meta\",\"payload\":{\"id\":\"ABC\",\"cwd\":\"/w\",\"git\":{\"branch\":\"main\"}}}\n{not json\n",
        )
        .unwrap();
        let meta = read_session_meta(&path).unwrap();
        assert_eq!(meta.id, "abc");
        assert_eq!(meta.git_branch.as_deref(), Some("main"));
        fs::write(&path, "{\"type\":\"session_me").unwrap();
        assert!(read_session_meta(&path).is_err());
    }
}
