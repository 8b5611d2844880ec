//! Where a file is cut into chunks, chosen by what the file is, so that what repeats
//! falls into equal chunks: database pages, runs of transcript lines, or small files whole.
//! A chunk is never longer than `MAX_CHUNK`, so it always fits in one block.

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chunker {
    /// An SQLite database, cut at its page size (from its header).
    SqlitePage,
    /// A transcript: content-defined cut points, only at line ends.
    CdcLines,
    /// Small files: one chunk (a large one is cut every `MAX_CHUNK` bytes).
    Whole,
}

impl Chunker {
    pub fn as_str(self) -> &'static str {
        match self {
            Chunker::SqlitePage => "sqlite-page",
            Chunker::CdcLines => "cdc-lines",
            Chunker::Whole => "whole",
        }
    }

    pub fn parse(text: &str) -> Option<Chunker> {
        [Chunker::SqlitePage, Chunker::CdcLines, Chunker::Whole]
            .into_iter()
            .find(|c| c.as_str() == text)
    }

    /// Whether its blocks are compressed as text (high level, with the dictionary) or as
    /// database pages (fast, without).
    pub fn is_text(self) -> bool {
        !matches!(self, Chunker::SqlitePage)
    }
}

impl std::fmt::Display for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest chunk any chunker cuts (also a whole file's piece), at most one block.
pub const MAX_CHUNK: usize = 1 << 20;
const CDC_MIN: usize = 8 << 10;
const CDC_MAX: usize = 256 << 10;
/// 2^14: a cut is armed on average 16 KiB past the minimum, then made at the next line
/// end, for chunks of about 32 KiB on transcripts.
const CDC_MASK: u64 = (1 << 14) - 1;
/// A file that is not an SQLite database (no header) is cut as 4 KiB pages.
const FALLBACK_PAGE: usize = 4096;

/// A gear table from a fixed seed (splitmix64): part of what makes cut points repeat
/// between runs and versions; changing it changes only how well new chunks dedupe against
/// old ones, never what an object reads back as.
const GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x6378_6d70_6163_6b31; // "cxmpack1"
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// Cuts a stream into chunks, holding at most `MAX_CHUNK` bytes of it beyond the chunk it
/// hands out.
pub struct Cutter<'r> {
    chunker: Chunker,
    source: &'r mut dyn Read,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    page: usize,
}

impl<'r> Cutter<'r> {
    pub fn new(chunker: Chunker, source: &'r mut dyn Read) -> Cutter<'r> {
        Cutter {
            chunker,
            source,
            buf: Vec::new(),
            start: 0,
            eof: false,
            page: 0,
        }
    }

    fn window(&self) -> usize {
        match self.chunker {
            Chunker::SqlitePage => self.page.max(100),
            Chunker::CdcLines => CDC_MAX,
            Chunker::Whole => MAX_CHUNK,
        }
    }

    /// Reads until `want` bytes are buffered past `start`, or the source ends.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        while !self.eof && self.buf.len() - self.start < want {
            let have = self.buf.len();
            let need = want - (have - self.start);
            self.buf.resize(have + need.max(64 << 10), 0);
            let n = loop {
                match self.source.read(&mut self.buf[have..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            };
            self.buf.truncate(have + n);
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if self.chunker == Chunker::SqlitePage && self.page == 0 {
            self.fill(100)?;
            self.page = page_size(&self.buf[self.start..]);
        }
        let window = self.window();
        self.fill(window)?;
        let available = &self.buf[self.start..];
        if available.is_empty() {
            return Ok(None);
        }
        let len = match self.chunker {
            Chunker::SqlitePage => self.page.min(available.len()),
            Chunker::Whole => available.len().min(MAX_CHUNK),
            Chunker::CdcLines => cdc_cut(&available[..available.len().min(CDC_MAX)]),
        };
        let chunk = &self.buf[self.start..self.start + len];
        self.start += len;
        Ok(Some(chunk))
    }
}

/// The page size in an SQLite header (bytes 16-17, big-endian; 1 means 65,536).
fn page_size(head: &[u8]) -> usize {
    if head.len() < 100 || &head[..16] != b"SQLite format 3\0" {
        return FALLBACK_PAGE;
    }
    match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65_536,
        n if n >= 512 && n.is_power_of_two() => n as usize,
        _ => FALLBACK_PAGE,
    }
}

/// The length of the next chunk of `data` (at most `CDC_MAX` bytes, the rest of the stream
/// when shorter): once `CDC_MIN` bytes are in, a gear hash of the last 64 bytes arms a cut
/// when its low bits are zero, and the cut is made just after the next `\n`. At `CDC_MAX`
/// with no armed cut, the chunk ends after the last line end seen, or at `CDC_MAX` for a
/// line longer than that.
fn cdc_cut(data: &[u8]) -> usize {
    if data.len() <= CDC_MIN {
        return data.len();
    }
    let mut hash: u64 = 0;
    let mut armed = false;
    let mut last_line_end = None;
    for (i, &b) in data.iter().enumerate() {
        hash = (hash << 1).wrapping_add(GEAR[b as usize]);
        if i < CDC_MIN {
            continue;
        }
        if b == b'\n' {
            if armed {
                return i + 1;
            }
            last_line_end = Some(i + 1);
        }
        if hash & CDC_MASK == 0 {
            armed = true;
        }
    }
    if data.len() < CDC_MAX {
        return data.len();
    }
    last_line_end.unwrap_or(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut_all(chunker: Chunker, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut source = bytes;
        let mut cutter = Cutter::new(chunker, &mut source);
        let mut chunks = Vec::new();
        while let Some(c) = cutter.next_chunk().unwrap() {
            chunks.push(c.to_vec());
        }
        chunks
    }

    fn lines(seed: u64, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut x = seed;
        for i in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!("{{\"line\":{i},\"payload\":\"{:x}{:x}\"}}\n", x, x >> 7).as_bytes(),
            );
        }
        out
    }

    #[test]
    fn transcript_chunks_end_at_line_ends_and_rejoin_whole() {
        let text = lines(1, 20_000);
        let chunks = cut_all(Chunker::CdcLines, &text);
        assert!(chunks.len() > 5, "{}", chunks.len());
        assert_eq!(chunks.concat(), text);
        for c in &chunks {
            assert_eq!(c.last(), Some(&b'\n'));
            assert!(c.len() <= CDC_MAX);
        }
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.len() >= CDC_MIN, "{}", c.len());
        }
    }

    #[test]
    fn lines_inserted_in_front_leave_later_chunks_equal() {
        let text = lines(2, 20_000);
        let mut shifted = lines(3, 50);
        shifted.extend_from_slice(&text);
        let a = cut_all(Chunker::CdcLines, &text);
        let b = cut_all(Chunker::CdcLines, &shifted);
        let shared = a.iter().filter(|c| b.contains(c)).count();
        assert!(shared + 2 >= a.len(), "{shared} of {}", a.len());
    }

    #[test]
    fn a_database_is_cut_at_its_page_size() {
        let mut db = vec![0u8; 8192 * 3];
        db[..16].copy_from_slice(b"SQLite format 3\0");
        db[16..18].copy_from_slice(&8192u16.to_be_bytes());
        let chunks = cut_all(Chunker::SqlitePage, &db);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() == 8192));
    }

    #[test]
    fn an_empty_stream_has_no_chunks_and_a_big_whole_file_is_cut_at_the_maximum() {
        assert!(cut_all(Chunker::Whole, b"").is_empty());
        assert!(cut_all(Chunker::CdcLines, b"").is_empty());
        let big = vec![7u8; MAX_CHUNK * 2 + 5];
        let chunks = cut_all(Chunker::Whole, &big);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_CHUNK, MAX_CHUNK, 5]
        );
    }
}
