//! The benchmark home: a heavy user's Codex home at any scale, built from the session
//! generator in `synthetic_home`, plus the logs, log database and daemon releases such a
//! home carries.

use anyhow::Result;
use rusqlite::Connection;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::synthetic_home::{SessionSpec, build};

/// A heavy user's home, at any scale: `sessions` transcripts summing to about
/// `total_bytes`, with a long tail (most under 1 MB, about 1 in 300 over 10 MB, 1 in 6,667
/// over 100 MB), `old_sessions` of them idle for more than 30 days (1 in 101 of those pinned),
/// a tenth of the rest already archived and the youngest still current; a thread index to match, a plain-text log, a log database and old
/// daemon releases.
#[derive(Debug, Clone)]
pub struct HeavyHome {
    pub sessions: u64,
    pub total_bytes: u64,
    pub old_sessions: u64,
    pub log_bytes: u64,
    pub release_bytes: u64,
}

impl HeavyHome {
    /// What the issue calls the full run: 20,000 sessions, 4 GB.
    pub fn full() -> HeavyHome {
        HeavyHome {
            sessions: 20_000,
            total_bytes: 4 << 30,
            old_sessions: 10_000,
            log_bytes: 300 << 20,
            release_bytes: 200 << 20,
        }
    }

    /// A quick run that keeps the same shape.
    pub fn quick() -> HeavyHome {
        HeavyHome {
            sessions: 2_000,
            total_bytes: 400 << 20,
            old_sessions: 1_000,
            log_bytes: 30 << 20,
            release_bytes: 20 << 20,
        }
    }

    /// The full shape at another session count: the same mix, ages and share archived,
    /// with `total_bytes` of transcripts (the full shape has about 200 KiB a session).
    pub fn at_scale(sessions: u64, total_bytes: u64) -> HeavyHome {
        HeavyHome {
            sessions,
            total_bytes,
            old_sessions: sessions / 2,
            ..HeavyHome::full()
        }
    }

    /// The unscaled size of session `i`: three tiers, deterministic.
    fn tier_bytes(i: u64) -> f64 {
        if i % 6_667 == 3 {
            150_000_000.0
        } else if i % 333 == 7 {
            15_000_000.0
        } else {
            // A Pareto-like spread between 8 KB and 1 MB.
            let u = ((i.wrapping_mul(2_654_435_761) % 10_000) as f64 + 1.0) / 10_000.0;
            (8_000.0 / u.powf(0.9)).min(1_000_000.0)
        }
    }

    pub fn specs(&self) -> Vec<SessionSpec> {
        // Scaled by the real sum of the tiers, so the transcripts add up to `total_bytes`
        // whatever the mix of tiers at this session count.
        let tier_sum: f64 = (0..self.sessions).map(Self::tier_bytes).sum();
        let unit = self.total_bytes as f64 / tier_sum;
        (0..self.sessions)
            .map(|i| {
                let old = i < self.old_sessions;
                let age = if old {
                    31.0 + (i % 90) as f64
                } else {
                    0.5 + (i % 29) as f64
                };
                let bytes = (Self::tier_bytes(i) * unit).max(2_000.0) as usize;
                let mut s = SessionSpec::aged(i, age, bytes);
                s.archived = !old && i % 10 == 9;
                // Pinned threads are rare and mostly old: the ones a policy run must keep.
                s.pinned = old && i % 101 == 13;
                s
            })
            .collect()
    }

    pub fn build(&self, home: &Path) -> Result<Vec<SessionSpec>> {
        let specs = self.specs();
        build(home, &specs, true)?;
        fs::create_dir_all(home.join("log"))?;
        write_pseudo_text(&home.join("log/codex-tui.log"), self.log_bytes)?;
        let logs = Connection::open(home.join("logs_2.sqlite"))?;
        // Codex's own log table, when Codex made it, has the same columns plus `ts_nanos`.
        logs.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
                                ts_nanos INTEGER NOT NULL DEFAULT 0, level TEXT NOT NULL, target TEXT NOT NULL,
                                feedback_log_body TEXT, thread_id TEXT, estimated_bytes INTEGER NOT NULL DEFAULT 0);",
        )?;
        let rows = (self.log_bytes / 2 / 300).max(1);
        logs.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO logs (ts, ts_nanos, level, target, feedback_log_body, estimated_bytes)
             SELECT i, 0, 'INFO', 'codex_core::exec', printf('%.250c', 'l'), 250 FROM n",
            [rows as i64],
        )?;
        drop(logs);
        let releases = home.join("packages/app-server-daemon/releases");
        for v in [
            "0.160.0-x86_64-unknown-linux-musl",
            "0.165.0-x86_64-unknown-linux-musl",
            "0.169.0-x86_64-unknown-linux-musl",
        ] {
            fs::create_dir_all(releases.join(v).join("bin"))?;
            write_pseudo_binary(&releases.join(v).join("bin/codex"), self.release_bytes)?;
        }
        let current = home.join("packages/app-server-daemon/current");
        if fs::symlink_metadata(&current).is_err() {
            std::os::unix::fs::symlink("releases/0.169.0-x86_64-unknown-linux-musl", current)?;
        }
        Ok(specs)
    }
}

/// Log-like text: repetitive, so it compresses as real logs do.
fn write_pseudo_text(path: &Path, bytes: u64) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut written = 0u64;
    let mut n = 0u64;
    while written < bytes {
        let line = format!(
            "2026-11-{:02}T10:{:02}:{:02}Z INFO codex_core::exec: command finished exit_code={} duration_ms={}\n",
            n % 28 + 1,
            n % 60,
            n % 59,
            n % 3,
            n % 997
        );
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        n += 1;
    }
    out.flush()?;
    Ok(())
}

/// Binary-like bytes: part noise, part structure, compressing about as a binary does.
fn write_pseudo_binary(path: &Path, bytes: u64) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while written < bytes {
        for (i, b) in block.iter_mut().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = if i % 3 == 0 {
                (state & 0xff) as u8
            } else {
                (i / 64) as u8
            };
        }
        out.write_all(&block)?;
        written += block.len() as u64;
    }
    out.flush()?;
    Ok(())
}
