//! Content hashes: BLAKE3 of the plain bytes, streamed, as lowercase hex.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// Files at least this large are hashed in chunks spread over all cores; below it the
/// set-up costs more than it saves.
const PARALLEL_THRESHOLD: u64 = 1 << 20;
/// Large enough to keep every core busy, small enough that memory stays flat: a memory
/// map would be faster to write but counts the whole file in the process's resident set.
const PARALLEL_CHUNK: usize = 4 << 20;

pub fn hash_file(path: &Path) -> io::Result<String> {
    let file = crate::regular_file::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = blake3::Hasher::new();
    if len >= PARALLEL_THRESHOLD {
        hash_in_parallel_chunks(&mut hasher, file)?;
    } else {
        hash_reader_into(&mut hasher, file)?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

fn hash_in_parallel_chunks(hasher: &mut blake3::Hasher, mut file: File) -> io::Result<()> {
    let mut buf = vec![0u8; PARALLEL_CHUNK];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        hasher.update_rayon(&buf[..filled]);
        if filled < buf.len() {
            return Ok(());
        }
    }
}

pub fn hash_reader(reader: impl Read) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hash_reader_into(&mut hasher, reader)?;
    Ok(hasher.finalize().to_hex().to_string())
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn hash_reader_into(hasher: &mut blake3::Hasher, mut reader: impl Read) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
}

/// A reader that hashes what passes through it, so a copy and its check are one read.
pub struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }
    pub fn finish(self) -> (String, u64) {
        (self.hasher.finalize().to_hex().to_string(), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A writer that hashes what passes through it, so writing a copy and hashing it are one pass.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    /// The hash and length of what was written so far.
    pub fn digest(&self) -> (String, u64) {
        (self.hasher.finalize().to_hex().to_string(), self.len)
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes of many files, computed on all cores at once (reads overlap, small files too),
/// for a caller that will then look at them one by one.
pub struct Prefetched {
    hashes: std::collections::HashMap<std::path::PathBuf, Result<String, String>>,
}

impl Prefetched {
    pub fn new(paths: Vec<std::path::PathBuf>) -> Prefetched {
        Self::with_progress(paths, &crate::progress::NoProgress)
    }

    /// The same, advancing `progress` by one for each file hashed.
    pub fn with_progress(
        paths: Vec<std::path::PathBuf>,
        progress: &dyn crate::progress::Progress,
    ) -> Prefetched {
        use rayon::prelude::*;
        let hashes = paths
            .into_par_iter()
            .map(|p| {
                let h = hash_file(&p).map_err(|e| e.to_string());
                progress.advance(1);
                (p, h)
            })
            .collect();
        Prefetched { hashes }
    }

    /// Hashes of `paths`, as `with_progress`, beside hashes the caller already holds proof
    /// of (`known`), which are taken as they are.
    pub fn with_known(
        paths: Vec<std::path::PathBuf>,
        known: impl IntoIterator<Item = (std::path::PathBuf, String)>,
        progress: &dyn crate::progress::Progress,
    ) -> Prefetched {
        let mut prefetched = Self::with_progress(paths, progress);
        prefetched
            .hashes
            .extend(known.into_iter().map(|(p, h)| (p, Ok(h))));
        prefetched
    }

    /// The prefetched hash of `path`, else hashed now.
    pub fn hash(&self, path: &Path) -> io::Result<String> {
        match self.hashes.get(path) {
            Some(Ok(h)) => Ok(h.clone()),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
            None => hash_file(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_agrees_with_byte_hash_on_both_paths() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 10, (PARALLEL_THRESHOLD as usize) * 5 + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(hash_file(&path).unwrap(), hash_bytes(&bytes));
            assert_eq!(hash_reader(&bytes[..]).unwrap(), hash_bytes(&bytes));
        }
    }
}
