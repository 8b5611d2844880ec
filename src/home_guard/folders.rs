//! The descriptors of the home's folders a batch writes in, resolved by the kernel beneath
//! the home: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where Linux has it, else one
//! `openat(O_NOFOLLOW | O_DIRECTORY)` per component. A folder is resolved once per batch,
//! not `lstat`ed component by component at every write, and the write then happens relative
//! to the very descriptor the check produced: a folder swapped for a symlink afterwards is
//! never written through.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Descriptors kept at most: well under the usual limit of 1,024 open files, which the
/// store, the thread index and the hashing threads share. Past it the cache starts over; the
/// write still uses the descriptor its own `place` resolved.
const MAX_OPEN: usize = 256;

/// Set once `openat2` turned out to be missing (a kernel before 5.6) or forbidden (a seccomp
/// filter answers EPERM or ENOSYS): from then on every guard walks.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// How folders are resolved; the walk is forced by tests to prove the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolution {
    KernelBeneath,
    #[cfg(test)]
    Walk,
}

/// Why a folder beneath the home cannot be used, naming the folder (relative to the home).
#[derive(Debug)]
pub(super) enum Blocked {
    Symlink(PathBuf),
    Unreadable(PathBuf, io::Error),
}

#[derive(Debug)]
pub(super) struct Folders {
    root: PathBuf,
    resolution: Resolution,
    home: Mutex<Option<Arc<OwnedFd>>>,
    open: Mutex<HashMap<PathBuf, Arc<OwnedFd>>>,
}

impl Folders {
    pub(super) fn new(root: &Path, resolution: Resolution) -> Folders {
        Folders {
            root: root.to_path_buf(),
            resolution,
            home: Mutex::new(None),
            open: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// Drops every folder descriptor but the home's: the next batch resolves afresh.
    pub(super) fn forget_all(&self) {
        self.open.lock().expect("folder cache lock").clear();
    }

    /// Drops `rel` and what lies beneath it, once codex-maint removed that folder.
    pub(super) fn forget(&self, rel: &Path) {
        self.open
            .lock()
            .expect("folder cache lock")
            .retain(|k, _| !k.starts_with(rel));
    }

    /// The folder `rel` (relative, only plain components; empty for the home itself), or
    /// `None` where it, or a folder above it, does not exist yet.
    pub(super) fn resolve(&self, rel: &Path) -> Result<Option<Arc<OwnedFd>>, Blocked> {
        let Some(home) = self.home()? else {
            return Ok(None);
        };
        if rel.as_os_str().is_empty() {
            return Ok(Some(home));
        }
        let (base_rel, base) = {
            let open = self.open.lock().expect("folder cache lock");
            if let Some(fd) = open.get(rel) {
                return Ok(Some(fd.clone()));
            }
            rel.ancestors()
                .skip(1)
                .find_map(|a| open.get(a).map(|fd| (a.to_path_buf(), fd.clone())))
                .unwrap_or((PathBuf::new(), home))
        };
        let rest = rel.strip_prefix(&base_rel).unwrap_or(rel);
        if self.resolution == Resolution::KernelBeneath
            && !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed)
        {
            match beneath(&base, rest) {
                Ok(fd) => return Ok(Some(self.keep(rel, fd))),
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::NOSYS | Errno::PERM) => {
                    OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
                }
                // A symlink, a file where a folder should be, a rename racing the lookup:
                // the walk below finds which component it is, and names it.
                Err(_) => {}
            }
        }
        self.walk(base_rel, base, rest)
    }

    fn home(&self) -> Result<Option<Arc<OwnedFd>>, Blocked> {
        let mut home = self.home.lock().expect("home descriptor lock");
        if let Some(fd) = home.as_ref() {
            return Ok(Some(fd.clone()));
        }
        // The home itself is taken as the user spelled it, symlinks included.
        match rustix::fs::open(&self.root, folder_flags(), Mode::empty()) {
            Ok(fd) => Ok(Some(home.insert(Arc::new(fd)).clone())),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Blocked::Unreadable(PathBuf::new(), e.into())),
        }
    }

    /// One component at a time, never following a symlink, keeping each folder it opens.
    fn walk(
        &self,
        mut at_rel: PathBuf,
        mut at: Arc<OwnedFd>,
        rest: &Path,
    ) -> Result<Option<Arc<OwnedFd>>, Blocked> {
        for part in rest.components() {
            at_rel.push(part);
            match rustix::fs::openat(&*at, part.as_os_str(), folder_flags(), Mode::empty()) {
                Ok(fd) => at = self.keep(&at_rel, fd),
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => {
                    let is_symlink =
                        rustix::fs::statat(&*at, part.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
                    return Err(if is_symlink {
                        Blocked::Symlink(at_rel)
                    } else {
                        Blocked::Unreadable(at_rel, e.into())
                    });
                }
            }
        }
        Ok(Some(at))
    }

    fn keep(&self, rel: &Path, fd: OwnedFd) -> Arc<OwnedFd> {
        let fd = Arc::new(fd);
        let mut open = self.open.lock().expect("folder cache lock");
        if open.len() >= MAX_OPEN {
            open.clear();
        }
        open.insert(rel.to_path_buf(), fd.clone());
        fd
    }
}

/// Read-only, so a folder's descriptor can also be fsynced once its entries changed.
fn folder_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn beneath(base: &OwnedFd, rest: &Path) -> Result<OwnedFd, Errno> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // EAGAIN: a rename elsewhere raced the lookup; the kernel asks for another try.
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(base, rest, folder_flags(), Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 3 => tries += 1,
            other => return other,
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn beneath(_base: &OwnedFd, _rest: &Path) -> Result<OwnedFd, Errno> {
    Err(Errno::NOSYS)
}
