//! The one way codex-maint opens a file it reads from the home (and from its store): only
//! a regular file is ever opened. A FIFO named like a transcript would block `open` (or
//! the first read) until a writer came, a device may act on being opened, and a symlink
//! where a file is expected points somewhere no one checked. So the name is `lstat`ed
//! first, opened with `O_NOFOLLOW | O_NONBLOCK` (a FIFO swapped in after the `lstat`
//! opens at once instead of waiting for a writer), and the descriptor's own type is
//! checked with `fstat`. `O_NONBLOCK` is left set: on a regular file Linux ignores it.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// What the error of a refused open says, after "not a regular file: ".
const NOT_REGULAR: &str = "not a regular file";

/// Opens `path` for reading, only if it is a regular file; anything else is an error of
/// kind `InvalidInput` that says what it is (`is_not_regular` tells it apart).
pub fn open(path: &Path) -> io::Result<File> {
    open_with(path, OpenOptions::new().read(true))
}

/// `open`, for writing what is already there (its times and mode, as a restore sets them).
pub fn open_writable(path: &Path) -> io::Result<File> {
    open_with(path, OpenOptions::new().write(true))
}

fn open_with(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let seen = std::fs::symlink_metadata(path)?;
    refuse_unless_regular(&seen)?;
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW met a symlink swapped in after the lstat.
            Some(libc::ELOOP) => not_regular("a symlink"),
            // A socket swapped in after the lstat.
            Some(libc::ENXIO) => not_regular("a socket"),
            _ => e,
        })?;
    refuse_unless_regular(&file.metadata()?)?;
    Ok(file)
}

/// `open`, for a file the user may keep as a symlink (`config.toml` in a dotfiles
/// checkout): the link is followed, and the file it names must be a regular file.
pub fn open_through_link(path: &Path) -> io::Result<File> {
    open(&std::fs::canonicalize(path)?)
}

/// `open_through_link`, then the whole file.
pub fn read_through_link(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open_through_link(path)?, &mut bytes)?;
    Ok(bytes)
}

/// `open`, then the whole file as text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    io::Read::read_to_string(&mut open(path)?, &mut text)?;
    Ok(text)
}

/// `open`, then the whole file.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open(path)?, &mut bytes)?;
    Ok(bytes)
}

/// Whether `e` is `open`'s refusal of something that is not a regular file.
pub fn is_not_regular(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput && e.to_string().starts_with(NOT_REGULAR)
}

/// What a file of this metadata is, when it is not a regular file: "a FIFO", "a socket".
pub fn what_else(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a file"
    })
}

/// The same, from the mode `stat` reports (type bits included).
pub fn what_else_of_mode(mode: u32) -> Option<&'static str> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG => return None,
        libc::S_IFLNK => "a symlink",
        libc::S_IFDIR => "a folder",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFBLK | libc::S_IFCHR => "a device",
        _ => "not a file",
    })
}

fn refuse_unless_regular(meta: &Metadata) -> io::Result<()> {
    match what_else(meta) {
        None => Ok(()),
        Some(what) => Err(not_regular(what)),
    }
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{NOT_REGULAR} ({what}): kept"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_fifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt as _;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn only_a_regular_file_opens_and_a_fifo_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("rollout.jsonl");
        std::fs::write(&file, "x\n").unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "x\n");

        let fifo = d.path().join("fifo.jsonl");
        make_fifo(&fifo);
        let link = d.path().join("link.jsonl");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let socket = d.path().join("socket.jsonl");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, what) in [
            (&fifo, "a FIFO"),
            (&link, "a symlink"),
            (&socket, "a socket"),
        ] {
            let e = open(path).unwrap_err();
            assert!(is_not_regular(&e), "{e}");
            assert!(e.to_string().contains(what), "{e}");
        }
        assert!(!is_not_regular(
            &open(&d.path().join("missing")).unwrap_err()
        ));
    }
}
