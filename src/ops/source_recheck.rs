//! The last look at a source before it is removed (DESIGN.md "Safety rules": Codex wins).
//! An op reads a transcript, writes its new form, and only then removes the source; Codex
//! may have resumed the thread in between. Right before the unlink the source is compared
//! with what was read (size, mtime, ctime, device and inode) while the thread's writer lock
//! is held by us, so no Codex writer can start between the look and the unlink. A batch
//! takes the hold before its rows change: a row is never pointed at the new file while a
//! Codex writer may still record the old one.
//!
//! How Codex takes that lock (codex-rs `ThreadWriterLockCoordinator::acquire`, the same in
//! 0.169 and 0.171: both binaries carry `.coordination.lock` and "already has an active
//! writer"): it takes a blocking exclusive flock on `thread-writer-locks/.coordination.lock`,
//! opens or creates `<thread>.lock`, tries a non-blocking exclusive flock on it and, if that
//! is busy, fails with "thread … already has an active writer" rather than write without
//! it; then it releases the coordination lock and keeps the thread lock while it writes.
//! Dropping the lock, and its sweep of stale lock files, also run under the coordination
//! lock. So holding the coordination lock makes a starting writer wait (never write), and a
//! thread lock we cannot take means a writer is writing now. We hold both, only around the
//! look and the unlink, and create no lock file: where Codex keeps none there is no writer.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::fs_atomic::{SourceKept, SourceRemoval};

/// What identifies the bytes a source held when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceSeen {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    dev: u64,
    ino: u64,
}

impl SourceSeen {
    pub fn of(meta: &fs::Metadata) -> SourceSeen {
        use std::os::unix::fs::MetadataExt;
        SourceSeen {
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// How the file at `path` now differs from what was read; `None` when it does not.
    pub fn difference(&self, path: &Path) -> Option<String> {
        let now = match fs::symlink_metadata(path) {
            Ok(meta) => SourceSeen::of(&meta),
            Err(e) => return Some(format!("it can no longer be read ({e})")),
        };
        if (now.dev, now.ino) != (self.dev, self.ino) {
            Some("it was replaced by another file".into())
        } else if now.len != self.len {
            Some(format!(
                "it was written to ({} bytes when read, {} now)",
                self.len, now.len
            ))
        } else if now.mtime_ns != self.mtime_ns || now.ctime_ns != self.ctime_ns {
            Some("it was written to (its times changed)".into())
        } else {
            None
        }
    }
}

/// Codex's writers kept out of a batch's threads while their sources are checked again, their
/// rows changed and their sources removed; released when dropped.
pub struct WriterHold {
    locks: std::path::PathBuf,
    held: Vec<File>,
}

impl WriterHold {
    /// Takes the coordination lock, so that no Codex writer starts meanwhile; a writer
    /// starting now gets it first, and the batch then fails and is rolled back whole.
    pub fn begin(home: &Path) -> Result<WriterHold, SourceKept> {
        use rustix::fs::{FlockOperation, flock};
        let locks = home.join(crate::home::WRITER_LOCKS_DIR);
        let mut held = Vec::new();
        // Opened, never created: a home where Codex keeps no lock files has no writer.
        if let Ok(coordination) = File::open(locks.join(".coordination.lock")) {
            let started = Instant::now();
            while flock(&coordination, FlockOperation::NonBlockingLockExclusive).is_err() {
                if started.elapsed() > COORDINATION_WAIT {
                    return Err(SourceKept(
                        "a Codex writer was starting on this home (its coordination lock stayed held)"
                            .into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            held.push(coordination);
        }
        Ok(WriterHold { locks, held })
    }

    /// Whether `src` may go: no Codex writer holds its thread (whose lock is then held by
    /// us until the hold is dropped), and it is still the file that was read.
    pub fn check(
        &mut self,
        thread_id: Option<&str>,
        src: &Path,
        seen: &SourceSeen,
    ) -> Result<(), SourceKept> {
        use rustix::fs::{FlockOperation, flock};
        if let Some(id) = thread_id
            && let Ok(thread_lock) = File::open(self.locks.join(format!("{id}.lock")))
        {
            if flock(&thread_lock, FlockOperation::NonBlockingLockExclusive).is_err() {
                return Err(SourceKept(format!(
                    "Codex is writing thread {id} (its writer lock is held)"
                )));
            }
            self.held.push(thread_lock);
        }
        match seen.difference(src) {
            Some(why) => Err(SourceKept(why)),
            None => Ok(()),
        }
    }
}

/// The source of one op, as read, and the thread whose writer lock guards it: for a move
/// that copies across filesystems, whose source goes right after its copy is in place.
pub struct Recheck<'a> {
    pub home: &'a Path,
    pub thread_id: Option<&'a str>,
    pub seen: SourceSeen,
}

impl SourceRemoval for Recheck<'_> {
    fn remove_checked(
        &self,
        src: &Path,
        remove: &mut dyn FnMut() -> io::Result<()>,
    ) -> anyhow::Result<()> {
        crate::failpoint::act("before-source-removed", src);
        let mut hold = WriterHold::begin(self.home)?;
        hold.check(self.thread_id, src, &self.seen)?;
        remove()?;
        Ok(())
    }
}

/// How long a Codex writer starting up may keep the coordination lock before we give way.
const COORDINATION_WAIT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use fs2::FileExt;

    fn recheck_of<'a>(home: &'a Path, id: &'a str, src: &Path) -> Recheck<'a> {
        Recheck {
            home,
            thread_id: Some(id),
            seen: SourceSeen::of(&fs::metadata(src).unwrap()),
        }
    }

    #[test]
    fn a_source_written_to_after_it_was_read_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.jsonl");
        fs::write(&src, "one\n").unwrap();
        let check = recheck_of(dir.path(), "x", &src);
        fs::write(&src, "one\ntwo\n").unwrap();
        let err = check
            .remove_checked(&src, &mut || fs::remove_file(&src))
            .unwrap_err();
        assert!(err.downcast_ref::<SourceKept>().is_some(), "{err:#}");
        assert!(src.exists());
        let check = recheck_of(dir.path(), "x", &src);
        check
            .remove_checked(&src, &mut || fs::remove_file(&src))
            .unwrap();
        assert!(!src.exists());
    }

    #[test]
    fn a_held_thread_lock_keeps_the_source_and_a_free_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join(crate::home::WRITER_LOCKS_DIR);
        fs::create_dir_all(&locks).unwrap();
        let id = "01a20c2e-e45a-7d33-9558-2b68569b884c";
        let lock = locks.join(format!("{id}.lock"));
        fs::write(&lock, "").unwrap();
        fs::write(locks.join(".coordination.lock"), "").unwrap();
        let src = dir.path().join("t.jsonl");
        fs::write(&src, "one\n").unwrap();
        let writer = File::open(&lock).unwrap();
        writer.lock_exclusive().unwrap();
        let err = recheck_of(dir.path(), id, &src)
            .remove_checked(&src, &mut || fs::remove_file(&src))
            .unwrap_err();
        assert!(err.to_string().contains("writer lock is held"), "{err:#}");
        assert!(src.exists());
        FileExt::unlock(&writer).unwrap();
        recheck_of(dir.path(), id, &src)
            .remove_checked(&src, &mut || fs::remove_file(&src))
            .unwrap();
        assert!(!src.exists());
        assert_eq!(
            fs::read_dir(&locks).unwrap().count(),
            2,
            "no lock file is created"
        );
    }
}
