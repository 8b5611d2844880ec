//! One writer per Codex home, whatever its store: the store lock keeps two runs of one store
//! apart, but two stores on one home would each recover, compress and roll back the same
//! transcripts. Every writing command holds an exclusive `flock` on a descriptor of the home
//! folder itself, so no file is added to Codex's home and the kernel drops the lock with the
//! process, however it ends.

use anyhow::{Context, Result};
use std::fs::File;
use std::path::Path;

use crate::error::MaintError;

/// Held for as long as a command writes in the home; the lock goes with the descriptor.
pub struct HomeLock {
    _folder: File,
}

impl HomeLock {
    /// Takes the home's lock, waiting as long as a writer waits for the store's lock, then
    /// refuses (exit 3) naming the process that holds it where the system says.
    pub fn acquire(home: &Path) -> Result<HomeLock> {
        let folder = open_folder(home)
            .with_context(|| format!("opening the Codex home {} to lock it", home.display()))?;
        match crate::store::lock_exclusive_waiting(&folder) {
            Ok(()) => Ok(HomeLock { _folder: folder }),
            Err(waited) => {
                let holder = holder_of(&folder);
                Err(MaintError::refused(
                    format!(
                        "{} is changing the Codex home {} (it holds the lock on that folder); waited {} ms, nothing was changed. Try again when it has finished",
                        holder.as_deref().unwrap_or("another codex-maint"),
                        home.display(),
                        waited.as_millis()
                    ),
                    holder.into_iter().collect(),
                )
                .into())
            }
        }
    }
}

#[cfg(unix)]
fn open_folder(home: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(home)
}

#[cfg(not(unix))]
fn open_folder(home: &Path) -> std::io::Result<File> {
    File::open(home)
}

/// "process 123 (codex-maint archive --compress)": the holder of the lock on `folder`, as
/// Linux lists it in `/proc/locks` by device and inode. Best effort: elsewhere, in another
/// pid namespace, or when the list cannot be read, `None`.
fn holder_of(folder: &File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = folder.metadata().ok()?;
    let pid = holder_in(
        &crate::proc_locks::held()?,
        (
            rustix::fs::major(meta.dev()).into(),
            rustix::fs::minor(meta.dev()).into(),
        ),
        meta.ino(),
    )?;
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty());
    Some(match command {
        Some(c) => format!("process {pid} ({c})"),
        None => format!("process {pid}"),
    })
}

/// The pid holding a `flock` on the file `ino` of device `(major, minor)`.
fn holder_in(locks: &[crate::proc_locks::HeldLock], dev: (u64, u64), ino: u64) -> Option<u32> {
    locks
        .iter()
        .find(|l| l.flock && (l.major, l.minor) == dev && l.ino == ino && l.pid > 0)
        .map(|l| l.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_the_flock_on_that_very_file() {
        use crate::proc_locks::HeldLock;
        let lock = |flock, pid, ino| HeldLock {
            flock,
            pid,
            major: 0x103,
            minor: 2,
            ino,
        };
        let locks = [
            lock(false, 77, 9917),
            lock(true, 4242, 9917),
            lock(true, 11, 991),
        ];
        assert_eq!(holder_in(&locks, (0x103, 2), 9917), Some(4242));
        assert_eq!(holder_in(&locks, (0x103, 2), 42), None);
        assert_eq!(holder_in(&locks, (8, 1), 9917), None);
        assert_eq!(
            holder_in(&locks[..1], (0x103, 2), 9917),
            None,
            "only flock holders"
        );
    }

    #[test]
    fn a_second_lock_on_the_same_home_is_refused_naming_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let _held = HomeLock::acquire(dir.path()).unwrap();
        let err = match HomeLock::acquire(dir.path()) {
            Ok(_) => panic!("two locks on one home"),
            Err(e) => e,
        };
        assert_eq!(
            crate::error::exit_kind_of(&err),
            crate::error::ExitKind::Refused
        );
        if cfg!(target_os = "linux") {
            let me = format!("process {}", std::process::id());
            assert!(err.to_string().contains(&me), "{err:#}");
        }
    }
}
