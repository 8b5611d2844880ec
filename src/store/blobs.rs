//! Content-addressed blobs: `blobs/ab/<blake3>.zst`, the hash of the plain bytes. A blob is
//! compressed to a temporary name, read back as it is written, fsynced, then renamed into
//! place, so a name that exists always holds a whole blob that decodes to its name.

use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::read_back;
use crate::content_hash::{HashingReader, HashingWriter, hash_reader};
use crate::failpoint;
use crate::fs_atomic::{fsync_dir, fsync_parent};

const ZSTD_LEVEL: i32 = 3;
const IO_BUFFER: usize = 1 << 20;

/// A new file only its owner can read, from its first byte: a stored copy of a log or a
/// transcript is as private as the original.
fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

pub struct BlobStore {
    dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub hash: String,
    pub size: u64,
    pub stored_size: u64,
}

impl BlobStore {
    pub fn new(store_root: &Path) -> Self {
        BlobStore {
            dir: store_root.join("blobs"),
        }
    }

    pub fn path_of(&self, hash: &str) -> PathBuf {
        let prefix = hash.get(..2).unwrap_or("xx");
        self.dir.join(prefix).join(format!("{hash}.zst"))
    }

    /// Removes temporary blobs a killed run left (only the lock holder calls this, so no
    /// other writer is filling one).
    pub fn remove_temp_blobs(&self) -> Vec<PathBuf> {
        crate::fs_atomic::remove_temp_files_in(&self.dir)
    }

    /// Compresses what `fill` writes into the store, hashing the plain bytes on the way, so
    /// a source is read once: one pass reads, hashes (BLAKE3) and hands the bytes to zstd's
    /// workers, one per core; a second thread reads the file back as it is written.
    pub fn put_with(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<StoredBlob> {
        super::create_private_dir(&self.dir)?;
        let temp = crate::fs_atomic::temp_path_beside(&self.dir.join("blob"));
        let written = (|| -> io::Result<(String, u64)> {
            let (out, read_back) = read_back::follow(private_file_options().open(&temp)?, &temp)?;
            let compressed = (|| -> io::Result<(String, u64, File)> {
                let mut encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
                encoder.multithread(workers())?;
                // Every worker holds its job's input and output at once; zstd's default
                // jobs (8 MB at this level) took a rotation's peak to 91 MB.
                encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(
                    crate::zstd_stream::WORKER_JOB_BYTES,
                ))?;
                // Large writes: zstd's workers take whole jobs of input, and a source
                // copied through this buffer is read in the same large pieces.
                let mut plain = BufWriter::with_capacity(IO_BUFFER, HashingWriter::new(encoder));
                fill(&mut plain)?;
                let hashing = plain.into_inner().map_err(|e| e.into_error())?;
                let (hash, size) = hashing.digest();
                Ok((hash, size, hashing.into_inner().finish()?.into_file()))
            })();
            // Joined whatever happened, so no reader is left on a file about to be removed.
            let decoded = read_back.finish();
            let (hash, size, file) = compressed?;
            if decoded? != (hash.clone(), size) {
                return Err(io::Error::other(
                    "the compressed copy does not read back to the bytes written",
                ));
            }
            file.sync_all()?;
            Ok((hash, size))
        })();
        let (hash, size) = match written {
            Ok(digest) => digest,
            Err(e) => {
                // A half-written blob must not go on filling a disk that is already full.
                let _ = fs::remove_file(&temp);
                return Err(anyhow::Error::new(e).context(format!(
                    "writing a blob into the store {} (the partial copy was removed; the item it was for is unchanged)",
                    self.dir.display()
                )));
            }
        };
        failpoint::hit("blob-temp-written");
        let final_path = self.path_of(&hash);
        super::create_private_dir(final_path.parent().expect("blob paths have a parent"))?;
        let stored_size = fs::metadata(&temp)?.len();
        // The copy just read back takes the name even when a blob of that name is there: it
        // holds the same bytes, and checking the old one instead would decode it again (and
        // a damaged one is mended this way).
        super::restrict_file(&temp)?;
        fs::rename(&temp, &final_path)?;
        fsync_parent(&final_path)?;
        Ok(StoredBlob {
            hash,
            size,
            stored_size,
        })
    }

    pub fn put_reader(&self, source: impl Read) -> Result<StoredBlob> {
        let mut source = BufReader::with_capacity(IO_BUFFER, source);
        self.put_with(|out| io::copy(&mut source, out).map(|_| ()))
    }

    pub fn put_file(&self, path: &Path) -> Result<StoredBlob> {
        let file = crate::regular_file::open(path)
            .with_context(|| format!("reading {}", path.display()))?;
        self.put_reader(file)
    }

    pub fn put_bytes(&self, bytes: &[u8]) -> Result<StoredBlob> {
        self.put_with(|out| out.write_all(bytes))
    }

    pub fn open(&self, hash: &str) -> Result<impl Read + use<>> {
        let path = self.path_of(hash);
        let file = File::open(&path).with_context(|| format!("opening blob {}", path.display()))?;
        Ok(zstd::Decoder::new(file)?)
    }

    pub fn read_all(&self, hash: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(hash)?.read_to_end(&mut bytes)?;
        if crate::content_hash::hash_bytes(&bytes) != hash {
            bail!("blob {hash} does not match its hash");
        }
        Ok(bytes)
    }

    /// Hash of the plain bytes the blob decompresses to; a mismatch means it was altered.
    pub fn rehash(&self, hash: &str) -> Result<String> {
        Ok(hash_reader(self.open(hash)?)?)
    }

    /// The blob is there and still decompresses to the bytes it is named for.
    pub fn is_intact(&self, hash: &str) -> bool {
        self.rehash(hash).is_ok_and(|got| got == hash)
    }

    /// Writes the blob's bytes to `dst`, which must not exist, checking the hash before
    /// the file takes its final name.
    pub fn restore_to(&self, hash: &str, dst: &Path) -> Result<()> {
        let temp = crate::fs_atomic::temp_path_beside(dst);
        let mut reader = HashingReader::new(self.open(hash)?);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .with_context(|| format!("writing {}", dst.display()))?;
        let copied = io::copy(&mut reader, &mut out)
            .and_then(|_| out.flush())
            .and_then(|()| out.sync_all());
        drop(out);
        if let Err(e) = copied {
            // A half-written copy is never left beside the item, least of all on a full
            // disk, where it would hold the space the next try needs.
            let _ = fs::remove_file(&temp);
            return Err(anyhow::Error::from(e).context(format!(
                "writing {} from the store; nothing was put in its place",
                dst.display()
            )));
        }
        let (got, _) = reader.finish();
        if got != hash {
            let _ = fs::remove_file(&temp);
            bail!(
                "blob {hash} does not match its hash; {} was not written",
                dst.display()
            );
        }
        failpoint::hit("restore-temp-written");
        crate::fs_atomic::move_no_replace(&temp, dst).inspect_err(|_| {
            let _ = fs::remove_file(&temp);
        })?;
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        if self.dir.exists() {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_round_trips_and_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let bytes = b"hello blob ".repeat(1000);
        let a = blobs.put_bytes(&bytes).unwrap();
        let b = blobs.put_bytes(&bytes).unwrap();
        assert_eq!(a.hash, b.hash);
        assert!(a.stored_size < a.size);
        assert_eq!(blobs.read_all(&a.hash).unwrap(), bytes);
        let out = dir.path().join("restored");
        blobs.restore_to(&a.hash, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), bytes);
        assert!(
            blobs.restore_to(&a.hash, &out).is_err(),
            "restore never overwrites"
        );
    }

    #[test]
    fn an_altered_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let stored = blobs.put_bytes(b"original bytes").unwrap();
        let forged = zstd::encode_all(&b"tampered bytes"[..], 3).unwrap();
        fs::write(blobs.path_of(&stored.hash), forged).unwrap();
        assert_ne!(blobs.rehash(&stored.hash).unwrap(), stored.hash);
        assert!(blobs.read_all(&stored.hash).is_err());
    }

    #[test]
    fn storing_the_same_bytes_again_mends_a_damaged_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let bytes = b"a log line\n".repeat(10_000);
        let stored = blobs.put_bytes(&bytes).unwrap();
        let forged = zstd::encode_all(&b"tampered bytes"[..], 3).unwrap();
        fs::write(blobs.path_of(&stored.hash), forged).unwrap();
        assert!(!blobs.is_intact(&stored.hash));
        assert_eq!(blobs.put_bytes(&bytes).unwrap().hash, stored.hash);
        assert_eq!(blobs.read_all(&stored.hash).unwrap(), bytes);
    }

    /// A source that fails part-way, as a full disk or a vanished file would.
    struct FailingAfter(usize);

    impl Read for FailingAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("No space left on device"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_failed_write_leaves_no_partial_blob_and_names_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let err = blobs.put_reader(FailingAfter(1 << 20)).unwrap_err();
        assert!(
            format!("{err:#}").contains(&dir.path().join("blobs").display().to_string()),
            "{err:#}"
        );
        let left: Vec<_> = fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_blob_is_private_from_its_first_byte() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let stored = blobs.put_bytes(b"secret transcript").unwrap();
        let mode = fs::metadata(blobs.path_of(&stored.hash))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
