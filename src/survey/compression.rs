//! What compressing the home's archived transcripts would free, and whether it may: fed one
//! transcript at a time by a walk that has read its first record anyway, in memory bounded
//! by the sample, then measured by compressing that sample in memory (touching nothing).

use serde::Serialize;
use std::path::PathBuf;

use crate::home::CodexHome;
use crate::home::codex_versions::{self, CompressionGate, RecentVersions};
use crate::home::sessions::{SessionFile, SessionLocation};
use crate::policy::{SessionFacts, judge_for_compress};
use crate::zstd_stream::{self, EncodeSettings};

/// Files compressed to measure the ratio, and how much of each is read: enough for a
/// stable figure, little enough that inspect stays a quick look.
const SAMPLE_FILES: usize = 12;
const SAMPLE_BYTES_PER_FILE: u64 = 1 << 20;

#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct StoredPlain {
    pub count: u64,
    pub stored_bytes: u64,
    pub plain_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Estimate {
    pub level: i32,
    pub sampled_files: u64,
    pub sampled_bytes: u64,
    pub sampled_compressed_bytes: u64,
    /// Compressed / plain over the sample.
    pub ratio: f64,
    pub estimated_stored_bytes: u64,
    pub estimated_freed_bytes: u64,
    pub method: String,
}

impl Estimate {
    /// What compressing `plain_bytes` of transcripts frees at the sample's ratio.
    pub fn freed_from(&self, plain_bytes: u64) -> u64 {
        plain_bytes.saturating_sub((plain_bytes as f64 * self.ratio).round() as u64)
    }
}

#[derive(Debug, Serialize)]
pub struct CompressionReport {
    pub gate: CompressionGate,
    pub min_idle_secs: u64,
    /// Archived plain transcripts idle long enough, that nothing protects.
    pub candidates: StoredPlain,
    /// Active plain transcripts idle enough to archive: a cleanup that compresses archives
    /// them straight into compressed form, so the estimate's sample covers them too.
    pub archive_candidates: StoredPlain,
    pub estimate: Option<Estimate>,
    /// Transcripts already compressed, active and archived.
    pub compressed: StoredPlain,
    /// Plain files whose compressed sibling also exists (both kept, neither acted on).
    pub twins: Vec<String>,
}

pub struct CompressionSurvey {
    min_idle_secs: u64,
    recent: RecentVersions,
    candidates: StoredPlain,
    archive_candidates: StoredPlain,
    compressed: StoredPlain,
    twins: Vec<String>,
    /// The candidates with the smallest path hashes: a pseudo-random sample that needs no
    /// random source and holds at most `SAMPLE_FILES` paths.
    sample: Vec<(u64, PathBuf)>,
}

impl CompressionSurvey {
    pub fn new(min_idle_secs: u64) -> Self {
        CompressionSurvey {
            min_idle_secs,
            recent: RecentVersions::default(),
            candidates: StoredPlain::default(),
            archive_candidates: StoredPlain::default(),
            compressed: StoredPlain::default(),
            twins: Vec::new(),
            sample: Vec::new(),
        }
    }

    /// An active session the archive policy chose: compressed as it is archived when the
    /// gate is open, so it counts towards what compression frees.
    pub fn see_archive_candidate(&mut self, file: &SessionFile) {
        if file.compressed {
            return;
        }
        self.archive_candidates.count += 1;
        self.archive_candidates.stored_bytes += file.size;
        self.archive_candidates.plain_bytes += file.size;
        self.offer_to_sample(&file.path);
    }

    fn offer_to_sample(&mut self, path: &std::path::Path) {
        let key = u64::from_le_bytes(
            blake3::hash(path.as_os_str().as_encoded_bytes()).as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        );
        self.sample.push((key, path.to_path_buf()));
        if self.sample.len() > SAMPLE_FILES {
            self.sample.sort_unstable();
            self.sample.truncate(SAMPLE_FILES);
        }
    }

    pub fn see(&mut self, facts: &SessionFacts<'_>) {
        let file: &SessionFile = facts.file;
        if let Ok(meta) = facts.meta {
            self.recent.note(file, meta.cli_version.as_deref());
        }
        if file.has_twin && !file.compressed {
            self.twins.push(file.path.display().to_string());
        }
        if file.compressed {
            self.compressed.count += 1;
            self.compressed.stored_bytes += file.size;
            self.compressed.plain_bytes += file.plain_size().unwrap_or(file.size);
            return;
        }
        if file.location != SessionLocation::Archived
            || judge_for_compress(facts, self.min_idle_secs).is_err()
        {
            return;
        }
        self.candidates.count += 1;
        self.candidates.stored_bytes += file.size;
        self.candidates.plain_bytes += file.size;
        self.offer_to_sample(&file.path);
    }

    pub fn finish(self, home: &CodexHome) -> CompressionReport {
        let gate = codex_versions::gate_with(home, self.recent);
        let sampled_from = self.candidates.count + self.archive_candidates.count;
        let estimate =
            (sampled_from > 0).then(|| estimate(&self.sample, self.candidates, sampled_from));
        CompressionReport {
            gate,
            min_idle_secs: self.min_idle_secs,
            candidates: self.candidates,
            archive_candidates: self.archive_candidates,
            estimate,
            compressed: self.compressed,
            twins: self.twins,
        }
    }
}

/// The ratio measured on the sample, applied to the archived `candidates`; the sample is
/// drawn from all `sampled_from` transcripts a cleanup would compress.
fn estimate(sample: &[(u64, PathBuf)], candidates: StoredPlain, sampled_from: u64) -> Estimate {
    use rayon::prelude::*;
    let settings = EncodeSettings::default();
    let measured: Vec<(u64, u64)> = sample
        .par_iter()
        .filter_map(|(_, path)| {
            zstd_stream::measure_ratio(path, settings, SAMPLE_BYTES_PER_FILE).ok()
        })
        .collect();
    let sampled_bytes: u64 = measured.iter().map(|m| m.0).sum();
    let sampled_compressed: u64 = measured.iter().map(|m| m.1).sum();
    let ratio = if sampled_bytes == 0 {
        1.0
    } else {
        sampled_compressed as f64 / sampled_bytes as f64
    };
    let stored = (candidates.plain_bytes as f64 * ratio).round() as u64;
    Estimate {
        level: settings.level,
        sampled_files: measured.len() as u64,
        sampled_bytes,
        sampled_compressed_bytes: sampled_compressed,
        ratio,
        estimated_stored_bytes: stored,
        estimated_freed_bytes: candidates.plain_bytes.saturating_sub(stored),
        method: format!(
            "measured by compressing the first {} MiB of {} of the {} transcripts to compress in memory at level {}; a whole file compresses at least as well as its start",
            SAMPLE_BYTES_PER_FILE >> 20,
            measured.len(),
            sampled_from,
            settings.level
        ),
    }
}
