//! One writer at a time: every command that writes holds an exclusive lock on
//! `<store>/lock`. A second writer waits a little for the first, then refuses.

use anyhow::{Context, Result};
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::MaintError;

/// How long a second writer waits before refusing.
const DEFAULT_WAIT: Duration = Duration::from_secs(3);

/// The test suite runs many binaries against one store and shortens the wait through
/// `CODEX_MAINT_LOCK_WAIT_MS`; only a `test-hooks` build reads it.
#[cfg(feature = "test-hooks")]
fn wait_before_refusing() -> Duration {
    std::env::var("CODEX_MAINT_LOCK_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_WAIT)
}

#[cfg(not(feature = "test-hooks"))]
fn wait_before_refusing() -> Duration {
    DEFAULT_WAIT
}

pub struct StoreLock {
    file: File,
}

impl StoreLock {
    pub fn acquire(root: &Path) -> Result<StoreLock> {
        let path = root.join("lock");
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .with_context(|| format!("opening the store lock {}", path.display()))?;
        // A lock made by an earlier version may still be world-readable.
        super::restrict_file(&path)?;
        match lock_exclusive_waiting(&file) {
            Ok(()) => Ok(StoreLock { file }),
            Err(waited) => Err(MaintError::refused(
                format!(
                    "another codex-maint is changing the store {} (its lock {} is held); waited {} ms, nothing was changed. Try again when it has finished",
                    root.display(),
                    path.display(),
                    waited.as_millis()
                ),
                vec![path.display().to_string()],
            )
            .into()),
        }
    }
}

/// Takes an exclusive `flock` on `file`, trying again for the writer's wait; `Err` holds
/// how long it waited before giving up. Shared by every lock a writer takes, so one
/// setting (and the test suite's shortened wait) governs them all.
pub fn lock_exclusive_waiting(file: &File) -> Result<(), Duration> {
    let wait = wait_before_refusing();
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(()),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return Err(wait),
        }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
