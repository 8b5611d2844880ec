//! Transcripts as one zstd stream, the representation Codex (0.137 and later) reads as
//! `<name>.jsonl.zst`: encoding and decoding file to file in bounded memory, with the
//! BLAKE3 of both the plain and the stored bytes taken in the same pass, so proving that a
//! compressed file gives back the exact original never needs a second read of either.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::content_hash::{HashingReader, HashingWriter};

/// The suffix Codex appends to a plain transcript's name for its compressed form.
pub const SUFFIX: &str = ".zst";

/// Codex decodes with the zstd library's default limit: a window of at most 2^27 bytes
/// (128 MiB). A frame needing more would be unreadable to it, so nothing above is ever used.
pub const CODEX_MAX_WINDOW_LOG: u32 = 27;

/// How a transcript is encoded. The default level comes from the level table in docs/benchmarks.md
/// (measured on transcripts the real Codex wrote; see benches/compression.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncodeSettings {
    pub level: i32,
    /// Worker threads inside one stream; 0 encodes on the calling thread. Small files gain
    /// nothing from workers (zstd splits jobs of several MB), so callers spread small files
    /// across threads instead and give workers only to large ones.
    pub workers: u32,
    /// Long-distance matching over this window (log2 bytes), for transcripts that repeat
    /// far-apart history; `None` leaves it off.
    pub long_window_log: Option<u32>,
}

pub const DEFAULT_LEVEL: i32 = 10;

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            level: DEFAULT_LEVEL,
            workers: 0,
            long_window_log: None,
        }
    }
}

/// What one pass over a transcript proved: the plain bytes' hash and length, and the
/// stored (compressed) bytes' hash and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub plain_hash: String,
    pub plain_len: u64,
    pub stored_hash: String,
    pub stored_len: u64,
}

impl HashingWriter<BufWriter<File>> {
    /// Flushes the new file, gives it `meta`, and returns the hash and length written.
    fn finish_new_file(self, meta: NewFileMeta) -> io::Result<(String, u64)> {
        let digest = self.digest();
        let file = self
            .into_inner()
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))?;
        finish_new(file, meta)?;
        Ok(digest)
    }
}

const IO_BUFFER: usize = 1 << 20;

/// What the new file is given before it is synced, so one fsync makes all of it durable.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewFileMeta {
    pub mode: Option<u32>,
    pub mtime: Option<std::time::SystemTime>,
    /// The caller makes a whole batch durable at once (one `syncfs`) instead of one fsync
    /// per file.
    pub caller_syncs: bool,
}

fn finish_new(file: File, meta: NewFileMeta) -> io::Result<()> {
    if let Some(mtime) = meta.mtime {
        file.set_modified(mtime)?;
    }
    if meta.caller_syncs {
        return Ok(());
    }
    file.sync_all()
}

/// Input taken per worker job when a stream is encoded with workers: zstd's default is
/// four windows, and every worker holds its job's input and output at once; this keeps a
/// huge transcript's peak near what `zstd -T0` itself needs at a fraction of the jobs' size.
pub(crate) const WORKER_JOB_BYTES: u32 = 4 << 20;

/// A transcript's worker jobs are smaller still: zstd's ring of input holds the window plus
/// three jobs beside the workers' jobs, so at 4 MiB the ring and the jobs' output took 34 MB
/// of a compression cleanup's peak, at 2 MiB 17 MB. The price is more job boundaries in a
/// transcript of 32 MB or more (the only ones given workers): 1.2% more output on 78 MB
/// of real source text, none on generated transcripts (docs/benchmarks.md, "Compressed transcripts").
const TRANSCRIPT_JOB_BYTES: u32 = 2 << 20;

/// The match finder's hash table is held to 2^20 entries. zstd's own tables give level 9 a
/// table of 2^21 and levels 10 and 11 2^22 (16 MiB, plus 4 MiB of tags, per context and so
/// per worker; higher levels more): at level 10 the two workers' tables were 43 MB of a
/// compression cleanup's 124 MB peak. At 2^20, measured with `zstd -T2 -10
/// --zstd=hlog=20` against plain `-10` (docs/benchmarks.md, "Compressed transcripts"), the output was
/// 0.2-0.3% larger, the run faster and its peak half. Decoding does not depend on it: a
/// frame records its window, not the encoder's tables.
pub const MATCH_TABLE_LOG: u32 = 20;

/// The level from which zstd's table for large inputs exceeds [`MATCH_TABLE_LOG`].
const FIRST_LEVEL_ABOVE_MATCH_TABLE_LOG: i32 = 9;

/// Up to 256 KiB of input zstd sizes its tables from a table for small inputs, and shrinks
/// any table to its window anyway (at most 2^19 entries there); the cap is left to inputs
/// above, where it is what keeps the table at 2^20.
const LARGE_INPUT_TABLE_FROM: u64 = 256 << 10;

fn match_table_cap(level: i32, plain_size: u64) -> Option<zstd::zstd_safe::CParameter> {
    (level >= FIRST_LEVEL_ABOVE_MATCH_TABLE_LOG && plain_size > LARGE_INPUT_TABLE_FROM)
        .then_some(zstd::zstd_safe::CParameter::HashLog(MATCH_TABLE_LOG))
}

/// What every encoder of a transcript of `plain_size` bytes is given beyond its level,
/// streamed to a file or in memory, so the two encode alike.
fn tuned_parameters(settings: EncodeSettings, plain_size: u64) -> Vec<zstd::zstd_safe::CParameter> {
    use zstd::zstd_safe::CParameter;
    let mut parameters: Vec<CParameter> = match_table_cap(settings.level, plain_size)
        .into_iter()
        .collect();
    if let Some(log) = settings.long_window_log {
        parameters.push(CParameter::EnableLongDistanceMatching(true));
        parameters.push(CParameter::WindowLog(log.min(CODEX_MAX_WINDOW_LOG)));
    }
    parameters
}

fn create_new(path: &Path, mode: Option<u32>) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Readable by nobody else while it is written; the final mode is set after.
        options.mode(0o600);
    }
    let file = options.open(path)?;
    if let Some(mode) = mode {
        crate::fs_atomic::set_mode(&file, mode)?;
    }
    Ok(file)
}

/// Encodes `src` into a new file `dst` (never replacing one), given `meta`, fsynced.
pub fn encode_file(
    src: &Path,
    dst: &Path,
    settings: EncodeSettings,
    meta: NewFileMeta,
) -> io::Result<Hashed> {
    encode_to(src, create_new(dst, meta.mode)?, settings, meta)
}

/// `encode_file` into a new file the caller created (relative to a folder it resolved).
pub fn encode_to(
    src: &Path,
    output: File,
    settings: EncodeSettings,
    meta: NewFileMeta,
) -> io::Result<Hashed> {
    let input = crate::regular_file::open(src)?;
    let plain_size = input.metadata()?.len();
    let stored = HashingWriter::new(BufWriter::with_capacity(IO_BUFFER, output));
    let mut encoder = transcript_encoder(stored, settings, plain_size)?;
    let mut plain = HashingReader::new(BufReader::with_capacity(IO_BUFFER, input));
    let copied = io::copy(&mut plain, &mut encoder)?;
    if copied != plain_size {
        return Err(io::Error::other(format!(
            "{} changed size while it was compressed ({plain_size} then {copied} bytes)",
            src.display()
        )));
    }
    let (stored_hash, stored_len) = encoder.finish()?.finish_new_file(meta)?;
    let (plain_hash, plain_len) = plain.finish();
    Ok(Hashed {
        plain_hash,
        plain_len,
        stored_hash,
        stored_len,
    })
}

/// The encoder every compressed transcript is written with, given its plain size: the
/// same settings and size give the same bytes, which is how a transcript kept as plain
/// chunks in the store is given back as the `.jsonl.zst` it was.
pub fn transcript_encoder<W: Write>(
    out: W,
    settings: EncodeSettings,
    plain_size: u64,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut encoder = zstd::stream::write::Encoder::new(out, settings.level)?;
    // The plain size in the frame header lets `inspect` report uncompressed bytes from the
    // first bytes of the file, without decoding it.
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(plain_size))?;
    encoder.include_checksum(true)?;
    for parameter in tuned_parameters(settings, plain_size) {
        encoder.set_parameter(parameter)?;
    }
    if settings.workers > 0 {
        encoder.multithread(settings.workers)?;
        encoder.set_parameter(zstd::zstd_safe::CParameter::JobSize(TRANSCRIPT_JOB_BYTES))?;
    }
    Ok(encoder)
}

/// Decodes `src` into a new file `dst` (never replacing one), given `meta`, fsynced.
pub fn decode_file(src: &Path, dst: &Path, meta: NewFileMeta) -> io::Result<Hashed> {
    decode_to(src, create_new(dst, meta.mode)?, meta)
}

/// `decode_file` into a new file the caller created (relative to a folder it resolved).
pub fn decode_to(src: &Path, output: File, meta: NewFileMeta) -> io::Result<Hashed> {
    let mut plain = HashingWriter::new(BufWriter::with_capacity(IO_BUFFER, output));
    let (stored_hash, stored_len) = decode_into(src, &mut plain)?;
    let (plain_hash, plain_len) = plain.finish_new_file(meta)?;
    Ok(Hashed {
        plain_hash,
        plain_len,
        stored_hash,
        stored_len,
    })
}

/// Decodes `src` only to hash it: what `verify` and the check before a plain file goes
/// need, without writing anything.
pub fn decode_and_hash(src: &Path) -> io::Result<Hashed> {
    let mut plain = HashingWriter::new(io::sink());
    let (stored_hash, stored_len) = decode_into(src, &mut plain)?;
    let (plain_hash, plain_len) = plain.digest();
    Ok(Hashed {
        plain_hash,
        plain_len,
        stored_hash,
        stored_len,
    })
}

fn decode_into(src: &Path, out: &mut impl Write) -> io::Result<(String, u64)> {
    let mut stored = HashingReader::new(crate::regular_file::open(src)?);
    {
        let mut decoder = zstd::stream::read::Decoder::new(&mut stored)?;
        decoder.window_log_max(CODEX_MAX_WINDOW_LOG)?;
        io::copy(&mut decoder, out)?;
    }
    // Whatever follows the last frame is part of the file too, and must be hashed.
    io::copy(&mut stored, &mut io::sink())?;
    out.flush()?;
    Ok(stored.finish())
}

/// A reader of a transcript's plain bytes, whichever form it is stored in.
pub fn open_plain(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let file = crate::regular_file::open(path)?;
    if is_compressed_name(path) {
        let mut decoder = zstd::stream::read::Decoder::new(file)?;
        decoder.window_log_max(CODEX_MAX_WINDOW_LOG)?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(file))
    }
}

pub fn is_compressed_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".jsonl.zst"))
}

/// The plain size a compressed file declares in its frame header, read from its first
/// bytes; `None` when the header does not say (another writer may leave it out).
pub fn declared_plain_size(path: &Path) -> Option<u64> {
    let mut head = [0u8; 18];
    let mut file = crate::regular_file::open(path).ok()?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return None,
        }
    }
    zstd::zstd_safe::get_frame_content_size(&head[..filled])
        .ok()
        .flatten()
}

/// Encodes up to `limit` bytes of `src` in memory and returns (plain bytes read, encoded
/// bytes): how `inspect` measures the ratio it promises, touching nothing. One frame of the
/// sample's known size, so zstd sizes its tables to the sample (a few MB) rather than to
/// an unknown stream (26 MB at level 10, per sample, on every core).
pub fn measure_ratio(src: &Path, settings: EncodeSettings, limit: u64) -> io::Result<(u64, u64)> {
    let mut sample = Vec::new();
    crate::regular_file::open(src)?
        .take(limit)
        .read_to_end(&mut sample)?;
    let encoded = in_memory_compressor(settings, sample.len() as u64)?.compress(&sample)?;
    Ok((sample.len() as u64, encoded.len() as u64))
}

/// A one-shot compressor with the settings `encode_file` streams with, for `size` bytes.
fn in_memory_compressor(
    settings: EncodeSettings,
    size: u64,
) -> io::Result<zstd::bulk::Compressor<'static>> {
    let mut compressor = zstd::bulk::Compressor::new(settings.level)?;
    for parameter in tuned_parameters(settings, size) {
        compressor.set_parameter(parameter)?;
    }
    Ok(compressor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_gives_back_the_exact_bytes_and_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("t.jsonl");
        let text: String = (0..20_000)
            .map(|i| {
                format!(
                    "{{\"ordinal\":{i},\"payload\":\"line {}\"}}\n",
                    i * 7919 % 1013
                )
            })
            .collect();
        std::fs::write(&plain, &text).unwrap();
        let packed = dir.path().join("t.jsonl.zst");
        let encoded = encode_file(
            &plain,
            &packed,
            EncodeSettings::default(),
            NewFileMeta {
                mode: Some(0o640),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(encoded.plain_len, text.len() as u64);
        assert_eq!(
            encoded.plain_hash,
            crate::content_hash::hash_bytes(text.as_bytes())
        );
        assert_eq!(
            encoded.stored_hash,
            crate::content_hash::hash_file(&packed).unwrap()
        );
        assert!(encoded.stored_len * 5 < encoded.plain_len);
        assert_eq!(declared_plain_size(&packed), Some(text.len() as u64));

        let checked = decode_and_hash(&packed).unwrap();
        assert_eq!(checked, encoded);
        let back = dir.path().join("back.jsonl");
        let decoded = decode_file(&packed, &back, NewFileMeta::default()).unwrap();
        assert_eq!(decoded, encoded);
        assert_eq!(std::fs::read_to_string(&back).unwrap(), text);
        let mut via_reader = String::new();
        open_plain(&packed)
            .unwrap()
            .read_to_string(&mut via_reader)
            .unwrap();
        assert_eq!(via_reader, text);
    }

    #[test]
    fn an_existing_destination_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("t.jsonl");
        std::fs::write(&plain, "{}\n").unwrap();
        let taken = dir.path().join("t.jsonl.zst");
        std::fs::write(&taken, "mine").unwrap();
        let err = encode_file(
            &plain,
            &taken,
            EncodeSettings::default(),
            NewFileMeta::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&taken).unwrap(), b"mine");
    }

    #[test]
    fn a_damaged_stream_is_an_error_not_a_short_read() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("t.jsonl");
        std::fs::write(&plain, "{\"a\":1}\n".repeat(10_000)).unwrap();
        let packed = dir.path().join("t.jsonl.zst");
        encode_file(
            &plain,
            &packed,
            EncodeSettings::default(),
            NewFileMeta::default(),
        )
        .unwrap();
        let mut bytes = std::fs::read(&packed).unwrap();
        let cut = bytes.len() / 2;
        bytes.truncate(cut);
        std::fs::write(&packed, &bytes).unwrap();
        assert!(decode_and_hash(&packed).is_err());
    }

    #[test]
    fn the_match_table_is_capped_from_level_9_above_256_kib_only() {
        assert_eq!(match_table_cap(8, 64 << 20), None);
        assert_eq!(match_table_cap(10, 256 << 10), None);
        assert!(match_table_cap(9, (256 << 10) + 1).is_some());
        assert!(match_table_cap(DEFAULT_LEVEL, 2 << 30).is_some());
    }

    #[test]
    fn a_level_10_context_for_megabytes_of_input_holds_the_capped_table_not_zstds() {
        let text: Vec<u8> = (0..60_000u64)
            .flat_map(|i| format!("{{\"n\":{i},\"v\":\"{}\"}}\n", i * 7919 % 10_007).into_bytes())
            .collect();
        assert!(text.len() > 1 << 20);
        let settings = EncodeSettings::default();
        let mut capped = in_memory_compressor(settings, text.len() as u64).unwrap();
        capped.compress(&text).unwrap();
        let mut uncapped = zstd::bulk::Compressor::new(settings.level).unwrap();
        uncapped.compress(&text).unwrap();
        let (capped, uncapped) = (
            capped.context_mut().sizeof(),
            uncapped.context_mut().sizeof(),
        );
        // zstd's own 2^22 hash and its tags are 20 MiB; capped they are 5 MiB.
        assert!(uncapped > 20 << 20, "{uncapped}");
        assert!(capped + (12 << 20) < uncapped, "{capped} of {uncapped}");
    }
}
