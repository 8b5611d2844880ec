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
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = folder.metadata().ok()?;
        let dev = meta.dev();
        let key = format!(
            "{:02x}:{:02x}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev),
            meta.ino()
        );
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        let pid = holder_in(&locks, &key)?;
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
    #[cfg(not(target_os = "linux"))]
    {
        let _ = folder;
        None
    }
}

/// The pid holding a granted `flock` on the file `key` ("MAJOR:MINOR:INODE", hex device
/// numbers as the kernel prints them) in the text of `/proc/locks`; waiters ("->") skipped.
fn holder_in(locks: &str, key: &str) -> Option<u32> {
    locks
        .lines()
        .filter(|line| !line.contains("->"))
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == key)?;
            (fields.get(1) == Some(&"FLOCK") && at >= 1)
                .then(|| fields[at - 1].parse().ok())
                .flatten()
        })
        .filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_the_kernels_list_of_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 77 08:01:42 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 103:02:9917 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 103:02:9917 0 EOF\n";
        assert_eq!(holder_in(locks, "103:02:9917"), Some(4242));
        assert_eq!(holder_in(locks, "103:02:991"), None);
        assert_eq!(holder_in(locks, "08:01:42"), None, "only flock holders");
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
