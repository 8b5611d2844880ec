//! A transcript kept in the store as an object, given back byte for byte as it lay. A
//! `.jsonl.zst` is kept as its plain bytes (what dedupes and compresses across sessions)
//! when encoding them again with the tier's settings gives exactly the file; otherwise, as
//! for a file another encoder wrote, its compressed bytes are kept as they are.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::content_hash::{HashingReader, HashingWriter};
use crate::store::pack::{Chunker, ObjectId, ObjectStore, ObjectWriter};
use crate::zstd_stream::{self, EncodeSettings};

/// A transcript at least this large was compressed with workers inside its stream (see
/// `transcript_compress`), which changes the bytes zstd writes.
const WORKERS_FROM_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum TranscriptForm {
    /// The object is the file.
    Plain,
    /// The object is the plain text; the file is it encoded with these settings.
    Zstd {
        settings: EncodeSettings,
        plain_len: u64,
    },
    /// The object is the file's compressed bytes, as they were.
    ZstdAsIs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTranscript {
    pub object: String,
    #[serde(flatten)]
    pub form: TranscriptForm,
    /// BLAKE3 of the file as it lay, and its length.
    pub hash: String,
    pub len: u64,
}

/// Puts the transcript at `path` into `writer`; its bytes are read once (twice for a
/// compressed file another encoder wrote).
pub fn store(writer: &mut ObjectWriter<'_>, path: &Path) -> Result<StoredTranscript> {
    let file =
        crate::regular_file::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = file.metadata()?.len();
    if !zstd_stream::is_compressed_name(path) {
        let mut hashing = HashingReader::new(io::BufReader::new(file));
        let object = writer.put_reader(&mut hashing, Chunker::CdcLines)?;
        let (hash, read) = hashing.finish();
        ensure_same_length(path, len, read)?;
        return Ok(StoredTranscript {
            object: object.to_hex(),
            form: TranscriptForm::Plain,
            hash,
            len,
        });
    }
    if let Some(plain_len) = zstd_stream::declared_plain_size(path) {
        let settings = EncodeSettings {
            workers: if plain_len >= WORKERS_FROM_BYTES {
                std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
            } else {
                0
            },
            ..EncodeSettings::default()
        };
        let stored = HashingReader::new(io::BufReader::new(file));
        let mut decoder = zstd::stream::read::Decoder::new(stored)?;
        decoder.window_log_max(zstd_stream::CODEX_MAX_WINDOW_LOG)?;
        let again =
            zstd_stream::transcript_encoder(HashingWriter::new(io::sink()), settings, plain_len)?;
        let mut tee = Tee {
            source: decoder,
            copy: again,
        };
        let object = writer.put_reader(&mut tee, Chunker::CdcLines)?;
        let Tee { source, copy } = tee;
        let mut stored = source.finish();
        io::copy(&mut stored, &mut io::sink())?;
        let mut stored = stored.into_inner();
        // Whatever follows the frame is part of the file, and of its hash.
        io::copy(&mut stored, &mut io::sink())?;
        let (hash, read) = stored.finish();
        ensure_same_length(path, len, read)?;
        let (hash_again, _) = copy.finish()?.digest();
        if hash_again == hash {
            return Ok(StoredTranscript {
                object: object.to_hex(),
                form: TranscriptForm::Zstd {
                    settings,
                    plain_len,
                },
                hash,
                len,
            });
        }
        // The plain chunks just written are referenced by nothing: prune's to collect.
    }
    let file = crate::regular_file::open(path)?;
    let mut hashing = HashingReader::new(io::BufReader::new(file));
    let object = writer.put_reader(&mut hashing, Chunker::CdcLines)?;
    let (hash, read) = hashing.finish();
    ensure_same_length(path, len, read)?;
    Ok(StoredTranscript {
        object: object.to_hex(),
        form: TranscriptForm::ZstdAsIs,
        hash,
        len,
    })
}

fn ensure_same_length(path: &Path, expected: u64, read: u64) -> Result<()> {
    if read != expected {
        anyhow::bail!(
            "{} changed size while it was read ({expected} then {read} bytes); not retired",
            path.display()
        );
    }
    Ok(())
}

/// Writes the transcript back into `out` as it lay, and proves it: the bytes written must
/// hash to what was recorded, or this fails (and the caller drops what it wrote).
pub fn write_back(
    objects: &ObjectStore<'_>,
    stored: &StoredTranscript,
    out: &mut dyn Write,
) -> Result<()> {
    let id: ObjectId = stored.object.parse().context("a transcript's object id")?;
    let mut written = HashingWriter::new(out);
    match &stored.form {
        TranscriptForm::Plain | TranscriptForm::ZstdAsIs => {
            objects.read_to(&id, &mut written)?;
        }
        TranscriptForm::Zstd {
            settings,
            plain_len,
        } => {
            let mut encoder = zstd_stream::transcript_encoder(&mut written, *settings, *plain_len)?;
            objects.read_to(&id, &mut encoder)?;
            encoder.finish()?;
        }
    }
    written.flush()?;
    let (hash, len) = written.digest();
    if hash != stored.hash || len != stored.len {
        anyhow::bail!(
            "the transcript given back from object {} does not hash to the one retired ({hash}, {len} bytes; recorded {}, {} bytes)",
            stored.object,
            stored.hash,
            stored.len
        );
    }
    Ok(())
}

/// A reader that hands every byte it reads to a copy as well.
struct Tee<R: Read, W: Write> {
    source: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
