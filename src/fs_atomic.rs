//! Filesystem steps the journal relies on: a move that never overwrites, a write that is
//! either whole or absent, and the fsyncs that make both survive a power cut.

use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::content_hash::HashingReader;
use crate::error::MaintError;
use crate::failpoint;
use crate::home_guard::{HomeGuard, Placed};

/// Prefix of every temporary name this tool writes, so recovery and inspection can tell
/// our half-written files from anything else.
pub const TEMP_PREFIX: &str = ".codex-maint-tmp-";

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub fn fsync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fsync_dir(p),
        _ => Ok(()),
    }
}

/// `dir` and those of its parents that do not exist, outermost first: what creating `dir`
/// would create, and so what an op records before it does.
pub fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// Creates `dir` and any missing parents, returning the ones it created (outermost first)
/// so an undo can remove exactly those and nothing the user made.
pub fn create_dirs_recording(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let missing = missing_dirs(dir);
    for d in &missing {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        fsync_parent(d)?;
    }
    Ok(missing)
}

/// Removes folders this tool created, innermost first, but only while they are empty: a
/// folder that gained content since is the user's now and stays.
pub fn remove_created_dirs_if_empty(created: &[PathBuf]) {
    for d in created.iter().rev() {
        if fs::remove_dir(d).is_ok() {
            let _ = fsync_parent(d);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveMethod {
    Rename,
    CopyAcrossFilesystems,
}

/// Moves a file or folder from `src` to `dst` without ever replacing anything at `dst`.
/// Within one filesystem it is one atomic rename; across filesystems (files only) it is
/// a hashed copy beside the destination, renamed into place, then the source removed, so
/// a crash leaves the source intact or a verified whole copy, never a partial file.
pub fn move_no_replace(src: &Path, dst: &Path) -> Result<MoveMethod> {
    let method = move_no_replace_unsynced(src, dst)?;
    fsync_parent(dst)?;
    if src.parent() != dst.parent() {
        fsync_parent(src)?;
    }
    Ok(method)
}

/// The same move, leaving the fsync of the two folders to the caller, who syncs each
/// distinct folder of a batch once before recording the batch as done. Until then a
/// power cut may undo the rename, which recovery sees as "not moved" and rolls back.
pub fn move_no_replace_unsynced(src: &Path, dst: &Path) -> Result<MoveMethod> {
    move_checked_unsynced(src, dst, &RemoveUnchecked)
}

/// Why a source was left where it is after its copy was made: someone wrote to it
/// meanwhile, so the copy was dropped and the source is the one to keep.
#[derive(Debug)]
pub struct SourceKept(pub String);

impl std::fmt::Display for SourceKept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceKept {}

/// The last word before a source that was copied is removed: it checks the source again and
/// calls `remove` only if it may go, keeping writers out meanwhile; otherwise `SourceKept`.
pub trait SourceRemoval {
    fn remove_checked(&self, src: &Path, remove: &mut dyn FnMut() -> io::Result<()>) -> Result<()>;
}

/// For files only codex-maint writes (its temporary files, its blobs).
struct RemoveUnchecked;

impl SourceRemoval for RemoveUnchecked {
    fn remove_checked(
        &self,
        _src: &Path,
        remove: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<()> {
        Ok(remove()?)
    }
}

/// The move, where a copy across filesystems removes its source only if `removal` agrees;
/// when it does not, the copy this call made is removed again and `SourceKept` returned.
pub fn move_checked_unsynced(
    src: &Path,
    dst: &Path,
    removal: &dyn SourceRemoval,
) -> Result<MoveMethod> {
    if fs::symlink_metadata(dst).is_ok() {
        return Err(MaintError::refused(
            format!(
                "destination {} is occupied; nothing was overwritten",
                dst.display()
            ),
            vec![dst.display().to_string()],
        )
        .into());
    }
    match rename_no_replace(src, dst) {
        Ok(()) => {
            failpoint::hit("move-renamed");
            Ok(MoveMethod::Rename)
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_across_filesystems(src, dst, removal)?;
            Ok(MoveMethod::CopyAcrossFilesystems)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(MaintError::refused(
            format!(
                "destination {} is occupied; nothing was overwritten",
                dst.display()
            ),
            vec![dst.display().to_string()],
        )
        .into()),
        Err(e) => Err(e).with_context(|| format!("moving {} to {}", src.display(), dst.display())),
    }
}

/// `move_no_replace_unsynced` for a move inside the home: both names are resolved by
/// `guard` (nothing outside the home, no symlinked folder on the way) and the rename is
/// made relative to the folders it resolved, so the folders checked are the folders written.
pub fn move_within_home(guard: &HomeGuard, src: &Path, dst: &Path) -> Result<MoveMethod> {
    move_within_home_checked(guard, src, dst, &RemoveUnchecked)
}

/// `move_within_home`, where a copy across filesystems removes its source only if
/// `removal` agrees (see `move_checked_unsynced`).
pub fn move_within_home_checked(
    guard: &HomeGuard,
    src: &Path,
    dst: &Path,
    removal: &dyn SourceRemoval,
) -> Result<MoveMethod> {
    let (from, to) = (guard.place(src)?, guard.place(dst)?);
    match rename_no_replace_placed(&from, &to) {
        Ok(()) => {
            failpoint::hit("move-renamed");
            Ok(MoveMethod::Rename)
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            if exists_placed(&to) {
                return Err(occupied(dst));
            }
            copy_across_filesystems(src, dst, removal)?;
            Ok(MoveMethod::CopyAcrossFilesystems)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(occupied(dst)),
        Err(e) => Err(e).with_context(|| format!("moving {} to {}", src.display(), dst.display())),
    }
}

/// Removes the file `path` inside the home, relative to the folder `guard` resolved.
pub fn remove_file_within_home(guard: &HomeGuard, path: &Path) -> Result<()> {
    let placed = guard.place(path)?;
    rustix::fs::unlinkat(&*placed.folder, &placed.name, rustix::fs::AtFlags::empty())
        .map_err(io::Error::from)
        .with_context(|| format!("removing {}", path.display()))
}

/// Creates the new file `path` inside the home (never over anything, never through a
/// symlink), relative to the folder `guard` resolved; readable by nobody else until its
/// final mode is set.
pub fn create_new_within_home(guard: &HomeGuard, path: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags};
    let placed = guard.place(path)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(
        &*placed.folder,
        &placed.name,
        flags,
        Mode::from_raw_mode(0o600),
    )
    .map_err(io::Error::from)
    .with_context(|| format!("creating {}", path.display()))?;
    Ok(File::from(fd))
}

fn occupied(dst: &Path) -> anyhow::Error {
    MaintError::refused(
        format!(
            "destination {} is occupied; nothing was overwritten",
            dst.display()
        ),
        vec![dst.display().to_string()],
    )
    .into()
}

fn exists_placed(placed: &Placed) -> bool {
    rustix::fs::statat(
        &*placed.folder,
        &placed.name,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .is_ok()
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn rename_no_replace_placed(from: &Placed, to: &Placed) -> io::Result<()> {
    use rustix::fs::{RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(
        &*from.folder,
        &from.name,
        &*to.folder,
        &to.name,
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL | Errno::NOTSUP | Errno::NOSYS) => link_then_unlink_placed(from, to),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn rename_no_replace_placed(from: &Placed, to: &Placed) -> io::Result<()> {
    link_then_unlink_placed(from, to)
}

/// `link_then_unlink`, relative to the resolved folders.
fn link_then_unlink_placed(from: &Placed, to: &Placed) -> io::Result<()> {
    use rustix::fs::{AtFlags, FileType};
    let source = rustix::fs::statat(&*from.folder, &from.name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(source.st_mode) == FileType::Directory {
        if exists_placed(to) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        return Ok(rustix::fs::renameat(
            &*from.folder,
            &from.name,
            &*to.folder,
            &to.name,
        )?);
    }
    rustix::fs::linkat(
        &*from.folder,
        &from.name,
        &*to.folder,
        &to.name,
        AtFlags::empty(),
    )?;
    Ok(rustix::fs::unlinkat(
        &*from.folder,
        &from.name,
        AtFlags::empty(),
    )?)
}

/// One atomic rename that fails with `AlreadyExists` rather than replace anything, files
/// and folders alike: `renameat2(RENAME_NOREPLACE)` on Linux, `renameatx_np(RENAME_EXCL)`
/// on macOS.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
pub fn rename_no_replace(src: &Path, dst: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, src, CWD, dst, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A filesystem that cannot refuse in the rename itself (Linux says EINVAL, macOS
        // ENOTSUP), or a macOS older than 10.12 without the call (ENOSYS).
        Err(Errno::INVAL | Errno::NOTSUP | Errno::NOSYS) => link_then_unlink(src, dst),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
pub fn rename_no_replace(src: &Path, dst: &Path) -> io::Result<()> {
    link_then_unlink(src, dst)
}

/// Where the OS has no no-replace rename: a hard link refuses an existing name, so a file
/// is linked then unlinked. A folder cannot be linked; for it the check and the rename are
/// two steps, which the store lock keeps other codex-maint runs out of.
fn link_then_unlink(src: &Path, dst: &Path) -> io::Result<()> {
    if fs::symlink_metadata(src)?.is_dir() {
        if fs::symlink_metadata(dst).is_ok() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        return fs::rename(src, dst);
    }
    fs::hard_link(src, dst)?;
    fs::remove_file(src)
}

fn copy_across_filesystems(src: &Path, dst: &Path, removal: &dyn SourceRemoval) -> Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if !meta.is_file() {
        bail!(
            "{} is on another filesystem than {}; only files can be moved across filesystems",
            src.display(),
            dst.display()
        );
    }
    let temp = temp_path_beside(dst);
    let (src_hash, _) = {
        let mut reader = HashingReader::new(crate::regular_file::open(src)?);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        io::copy(&mut reader, &mut out)?;
        out.set_permissions(meta.permissions())?;
        out.set_modified(meta.modified()?)?;
        out.sync_all()?;
        reader.finish()
    };
    failpoint::hit("move-copied-temp");
    let copy_hash = crate::content_hash::hash_file(&temp)?;
    if copy_hash != src_hash {
        let _ = fs::remove_file(&temp);
        bail!(
            "copy of {} to {} did not match its source",
            src.display(),
            dst.display()
        );
    }
    let copy_identity = identity(&fs::symlink_metadata(&temp)?);
    rename_no_replace(&temp, dst).with_context(|| format!("placing {}", dst.display()))?;
    fsync_parent(dst)?;
    failpoint::hit("move-before-source-removed");
    if let Err(kept) = removal.remove_checked(src, &mut || fs::remove_file(src)) {
        // Only the copy made here goes: whatever else took the name since is left alone.
        if fs::symlink_metadata(dst).is_ok_and(|m| identity(&m) == copy_identity) {
            fs::remove_file(dst)?;
            fsync_parent(dst)?;
        }
        return Err(kept);
    }
    fsync_parent(src)?;
    Ok(())
}

/// Device and inode: which file a name leads to.
pub fn identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// A name `temp_path_beside` makes: the prefix, a 32-digit uuid, a dash. Folders a store-dir
/// op parks (`…stored-`, `…restoring-`) do not match: those are its recovery's to settle.
pub fn is_temp_file_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.get(..33))
        .is_some_and(|id| id.ends_with('-') && id[..32].bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the half-written files a killed run left directly in `dir`, identified by name
/// alone: each is a copy of bytes that still exist elsewhere (a source, a blob, a file
/// not yet replaced), so none is the only copy of anything. Returns what it removed.
pub fn remove_temp_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file
            && is_temp_file_name(&e.file_name().to_string_lossy())
            && fs::remove_file(e.path()).is_ok()
        {
            removed.push(e.path());
        }
    }
    if !removed.is_empty() {
        let _ = fsync_dir(dir);
    }
    removed
}

pub fn temp_path_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = path.parent().unwrap_or(Path::new("."));
    parent.join(format!(
        "{TEMP_PREFIX}{}-{name}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Writes `bytes` to `path` so a reader sees the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<()> {
    write_atomic_with(path, mode, |out| Ok(out.write_all(bytes)?))
}

/// `write_atomic` for content written as it is made (a plan of 100,000 actions is never
/// one string in memory): `write` fills the new file, which replaces `path` only whole.
pub fn write_atomic_with(
    path: &Path,
    mode: Option<u32>,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let temp = temp_path_beside(path);
    let written = (|| -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        if let Some(mode) = mode {
            set_mode(&f, mode)?;
        }
        let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
        write(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))?;
    fsync_parent(path)?;
    Ok(())
}

/// Writes `bytes` as a new file at `path`, whole or not at all, and never over anything:
/// an occupied `path` is refused (exit 3) and left as it was.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let temp = temp_path_beside(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| format!("writing {}", temp.display()))?;
        set_mode(&f, mode)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    move_no_replace(&temp, path).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })?;
    Ok(())
}

/// Permission bits (and type bits) of a file, as `stat` reports them.
#[cfg(unix)]
pub fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
pub fn file_mode(_meta: &fs::Metadata) -> u32 {
    0o644
}

#[cfg(unix)]
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_refuses_an_occupied_destination_and_keeps_both() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "source").unwrap();
        fs::write(&b, "already here").unwrap();
        let err = move_no_replace(&a, &b).unwrap_err();
        assert_eq!(
            crate::error::exit_kind_of(&err),
            crate::error::ExitKind::Refused
        );
        assert_eq!(fs::read_to_string(&a).unwrap(), "source");
        assert_eq!(fs::read_to_string(&b).unwrap(), "already here");
    }

    /// A plain rename would put a folder over an empty one; this one must refuse and leave
    /// both where they were.
    #[test]
    fn a_folder_is_never_renamed_over_an_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::write(a.join("inside"), "kept").unwrap();
        fs::create_dir(&b).unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(a.join("inside")).unwrap(), "kept");
        assert!(fs::read_dir(&b).unwrap().next().is_none());
    }

    #[test]
    fn a_file_is_never_renamed_over_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "source").unwrap();
        fs::write(&b, "already here").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&a).unwrap(), "source");
        assert_eq!(fs::read_to_string(&b).unwrap(), "already here");
    }

    #[test]
    fn move_keeps_bytes_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("sub/b"));
        fs::write(&a, "payload").unwrap();
        let before = fs::metadata(&a).unwrap().modified().unwrap();
        let created = create_dirs_recording(b.parent().unwrap()).unwrap();
        assert_eq!(created, vec![dir.path().join("sub")]);
        move_no_replace(&a, &b).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&b).unwrap(), "payload");
        assert_eq!(fs::metadata(&b).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn only_our_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let ours = temp_path_beside(&dir.path().join("codex-tui.log.1"));
        fs::write(&ours, "half").unwrap();
        let parked = dir.path().join(format!("{TEMP_PREFIX}stored-release"));
        fs::create_dir(&parked).unwrap();
        let lookalike = dir.path().join(format!("{TEMP_PREFIX}notes.txt"));
        fs::write(&lookalike, "user's").unwrap();
        assert_eq!(remove_temp_files_in(dir.path()), vec![ours.clone()]);
        assert!(!ours.exists() && parked.exists() && lookalike.exists());
    }

    #[test]
    fn created_dirs_are_removed_only_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("x/y");
        let created = create_dirs_recording(&deep).unwrap();
        fs::write(dir.path().join("x/keep"), "user file").unwrap();
        remove_created_dirs_if_empty(&created);
        assert!(!deep.exists());
        assert!(dir.path().join("x/keep").exists());
    }
}
