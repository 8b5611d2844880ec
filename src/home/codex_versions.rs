//! Which Codex versions use this home, from the evidence a home and its machine hold: the
//! `cli_version` recent transcripts were written by, the `codex` on `PATH`, and the app-server
//! daemon's current release. Codex reads a compressed transcript (`.jsonl.zst`) only since
//! 0.137.0; older versions fail on it or do not see it, so it may be written only when every
//! Codex found reads it.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::CodexHome;
use super::sessions::SessionFile;

/// The first Codex that lists, reads and unarchives `.jsonl.zst` transcripts.
pub const FIRST_ZST_READER: Version = Version(0, 137, 0);
/// Transcripts written within this window show which Codex versions still use the home.
pub const RECENT_WINDOW_SECS: u64 = 30 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first `X.Y.Z` in `text` (`codex-cli 0.169.0`, `0.169.0-x86_64-unknown-linux-gnu`,
/// `0.137.0-alpha.2`).
pub fn parse_version(text: &str) -> Option<Version> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let mut parts = word.split('.');
            let v = Version(
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
            );
            Some(v)
        })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// `cli_version` in the first record of a transcript written in the last 30 days.
    RecentTranscript,
    /// `codex --version` of the `codex` found on `PATH`.
    CodexOnPath,
    /// The release the app-server daemon's `current` names.
    DaemonRelease,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionEvidence {
    pub source: EvidenceSource,
    pub version: String,
    /// Where it was seen: a transcript, a binary, a release folder.
    pub path: String,
    pub reads_compressed: bool,
    /// How many recent transcripts say this version (transcripts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcripts: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompressionGate {
    pub allowed: bool,
    pub reason: String,
    pub minimum_version: String,
    pub evidence: Vec<VersionEvidence>,
}

/// Gathers the evidence and decides. `files` is the home's transcripts (as scanned); the
/// recent ones' first records are read here.
pub fn compression_gate(home: &CodexHome, files: &[SessionFile]) -> CompressionGate {
    let mut recent = RecentVersions::default();
    for f in files.iter().filter(|f| RecentVersions::counts(f)) {
        if let Ok(meta) = super::sessions::read_session_meta(&f.path) {
            recent.note(f, meta.cli_version.as_deref());
        }
    }
    gate_with(home, recent)
}

/// Decides from versions already collected from recent transcripts (a walk that reads
/// first records anyway passes them here), plus `codex` on PATH and the daemon release.
pub fn gate_with(home: &CodexHome, recent: RecentVersions) -> CompressionGate {
    let mut evidence = recent.into_evidence();
    evidence.extend(codex_on_path());
    evidence.extend(daemon_release(home));
    decide(evidence)
}

/// The versions recent transcripts were written by: one entry per version, naming one
/// transcript, in memory bounded by the number of versions.
#[derive(Debug, Default)]
pub struct RecentVersions {
    by_version: std::collections::BTreeMap<String, (PathBuf, u64)>,
}

impl RecentVersions {
    /// Whether `file` is recent enough to count as evidence.
    pub fn counts(file: &SessionFile) -> bool {
        !file.is_symlink && crate::clock::age_secs(file.mtime) <= RECENT_WINDOW_SECS
    }

    /// Records `file`'s version if it is recent. A recent transcript that names no version
    /// (Codex before `cli_version` existed) counts as old.
    pub fn note(&mut self, file: &SessionFile, cli_version: Option<&str>) {
        if !Self::counts(file) {
            return;
        }
        let version = cli_version.unwrap_or("0.0.0").to_string();
        let entry = self
            .by_version
            .entry(version)
            .or_insert((file.path.clone(), 0));
        entry.1 += 1;
    }

    fn into_evidence(self) -> Vec<VersionEvidence> {
        self.by_version
            .into_iter()
            .map(|(version, (path, count))| {
                let mut e = evidence(EvidenceSource::RecentTranscript, &version, &path).unwrap_or(
                    VersionEvidence {
                        source: EvidenceSource::RecentTranscript,
                        version: version.clone(),
                        path: path.display().to_string(),
                        reads_compressed: false,
                        transcripts: None,
                    },
                );
                e.transcripts = Some(count);
                e
            })
            .collect()
    }
}

pub fn decide(evidence: Vec<VersionEvidence>) -> CompressionGate {
    let too_old: Vec<&VersionEvidence> = evidence.iter().filter(|e| !e.reads_compressed).collect();
    let reason = if evidence.is_empty() {
        format!(
            "no evidence of which Codex uses this home (no transcript written in the last 30 days, no codex on PATH, no daemon release); compressed transcripts need Codex {FIRST_ZST_READER} or later"
        )
    } else if !too_old.is_empty() {
        too_old
            .iter()
            .map(|e| {
                format!(
                    "Codex {} ({}: {}) cannot read compressed transcripts; they need {FIRST_ZST_READER} or later",
                    e.version,
                    match e.source {
                        EvidenceSource::RecentTranscript => "a recent transcript",
                        EvidenceSource::CodexOnPath => "codex on PATH",
                        EvidenceSource::DaemonRelease => "the daemon's current release",
                    },
                    e.path
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        format!(
            "every Codex seen using this home is {FIRST_ZST_READER} or later ({})",
            evidence
                .iter()
                .map(|e| e.version.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    CompressionGate {
        allowed: !evidence.is_empty() && too_old.is_empty(),
        reason,
        minimum_version: FIRST_ZST_READER.to_string(),
        evidence,
    }
}

fn evidence(source: EvidenceSource, version_text: &str, path: &Path) -> Option<VersionEvidence> {
    let version = parse_version(version_text)?;
    Some(VersionEvidence {
        source,
        version: version.to_string(),
        path: path.display().to_string(),
        reads_compressed: version >= FIRST_ZST_READER,
        transcripts: None,
    })
}

fn codex_on_path() -> Option<VersionEvidence> {
    let path_var = std::env::var_os("PATH")?;
    let binary = std::env::split_paths(&path_var)
        .map(|dir| dir.join("codex"))
        .find(|candidate| is_executable(candidate))?;
    let output = run_with_timeout(&binary, Duration::from_secs(10));
    match output {
        Some(text) => evidence(EvidenceSource::CodexOnPath, &text, &binary),
        // A `codex` that does not say its version is a Codex we cannot vouch for.
        None => Some(VersionEvidence {
            source: EvidenceSource::CodexOnPath,
            version: "unknown".into(),
            path: binary.display().to_string(),
            reads_compressed: false,
            transcripts: None,
        }),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn run_with_timeout(binary: &Path, limit: Duration) -> Option<String> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut text).ok()?;
    Some(text)
}

fn daemon_release(home: &CodexHome) -> Option<VersionEvidence> {
    let facts = super::releases::read(home)?;
    let current = facts.current?;
    let path = Path::new(&facts.releases_dir).join(&current);
    evidence(EvidenceSource::DaemonRelease, &current, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_codex_prints_and_names() {
        assert_eq!(
            parse_version("codex-cli 0.169.0\n"),
            Some(Version(0, 169, 0))
        );
        assert_eq!(
            parse_version("0.136.0-x86_64-unknown-linux-gnu"),
            Some(Version(0, 136, 0))
        );
        assert_eq!(parse_version("0.137.0-alpha.2"), Some(Version(0, 137, 0)));
        assert_eq!(parse_version("codex"), None);
    }

    fn seen(version: &str) -> VersionEvidence {
        evidence(EvidenceSource::RecentTranscript, version, Path::new("/t")).unwrap()
    }

    #[test]
    fn one_old_codex_or_no_evidence_at_all_closes_the_gate() {
        assert!(decide(vec![seen("0.137.0"), seen("0.169.0")]).allowed);
        let mixed = decide(vec![seen("0.169.0"), seen("0.136.0")]);
        assert!(!mixed.allowed);
        assert!(mixed.reason.contains("0.136.0"), "{}", mixed.reason);
        assert!(mixed.reason.contains("/t"), "{}", mixed.reason);
        let none = decide(Vec::new());
        assert!(!none.allowed);
        assert!(none.reason.contains("no evidence"), "{}", none.reason);
    }
}
