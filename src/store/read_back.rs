//! Reading a blob back while it is being written: a second handle on the same file follows
//! the writer, decodes what has reached the file and hashes the plain bytes. The check a
//! blob must pass before its source may go (it decodes, whole, to the bytes it is named
//! for) then costs no pass of its own after the compression: on a machine whose cores the
//! compressor does not fill, it runs beside it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::content_hash::HashingWriter;

/// How far the writer has got: bytes in the file, and whether it is done (or gave up).
#[derive(Default)]
struct Progress {
    state: Mutex<(u64, bool)>,
    moved: Condvar,
}

impl Progress {
    fn update(&self, change: impl FnOnce(&mut (u64, bool))) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
        self.moved.notify_all();
    }
}

/// The file being written, reporting each write to the reader that follows it.
pub struct Followed {
    file: File,
    progress: Arc<Progress>,
    written: u64,
    _ends_reading: EndsReading,
}

/// When the writer is done or dropped part way, the reader must not wait for more.
struct EndsReading(Arc<Progress>);

impl Drop for EndsReading {
    fn drop(&mut self) {
        self.0.update(|s| s.1 = true);
    }
}

impl Write for Followed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        let written = self.written;
        self.progress.update(|s| s.0 = written);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Followed {
    /// Tells the reader that nothing more comes, and gives back the file.
    pub fn into_file(self) -> File {
        self.file
    }
}

/// Reads the file only as far as the writer has got, waiting for more until it is done.
struct Following {
    file: File,
    progress: Arc<Progress>,
    read: u64,
}

impl Read for Following {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = {
            let mut state = self
                .progress
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while state.0 <= self.read && !state.1 {
                state = self
                    .progress
                    .moved
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            state.0
        };
        if available <= self.read {
            return Ok(0);
        }
        let want = buf.len().min((available - self.read) as usize);
        let n = self.file.read(&mut buf[..want])?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The hash and length of the plain bytes the file decoded to, once the writer is done.
pub struct ReadBack(JoinHandle<io::Result<(String, u64)>>);

impl ReadBack {
    pub fn finish(self) -> io::Result<(String, u64)> {
        self.0
            .join()
            .map_err(|_| io::Error::other("the read-back of a blob panicked"))?
    }
}

/// Wraps `file`, just created empty at `path`, with a reader that follows it.
pub fn follow(file: File, path: &Path) -> io::Result<(Followed, ReadBack)> {
    let progress = Arc::new(Progress::default());
    let reader = Following {
        file: File::open(path)?,
        progress: progress.clone(),
        read: 0,
    };
    let decoding = std::thread::Builder::new()
        .name("blob-read-back".into())
        .spawn(move || -> io::Result<(String, u64)> {
            let mut plain = HashingWriter::new(io::sink());
            io::copy(&mut zstd::stream::read::Decoder::new(reader)?, &mut plain)?;
            Ok(plain.digest())
        })?;
    Ok((
        Followed {
            file,
            progress: progress.clone(),
            written: 0,
            _ends_reading: EndsReading(progress),
        },
        ReadBack(decoding),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_decodes_what_the_writer_wrote_as_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let plain = b"a line of a log that repeats\n".repeat(200_000);
        let (followed, read_back) = follow(File::create(&path).unwrap(), &path).unwrap();
        let mut encoder = zstd::Encoder::new(followed, 3).unwrap();
        for chunk in plain.chunks(65_536) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap().into_file();
        let (hash, len) = read_back.finish().unwrap();
        assert_eq!(len, plain.len() as u64);
        assert_eq!(hash, crate::content_hash::hash_bytes(&plain));
    }

    #[test]
    fn a_file_that_is_not_a_whole_stream_does_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let whole = zstd::encode_all(&b"some plain bytes ".repeat(10_000)[..], 3).unwrap();
        let (mut followed, read_back) = follow(File::create(&path).unwrap(), &path).unwrap();
        followed.write_all(&whole[..whole.len() / 2]).unwrap();
        drop(followed);
        assert!(read_back.finish().is_err());
    }
}
