//! Reads a transcript as a stream of records, in bounded memory: one line at a time, and a
//! line longer than the limit (a huge tool output) is skipped without being held. Unknown
//! record types are the caller's to skip; an unparseable or cut-off line is counted, not
//! fatal.

use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use crate::content_hash::HashingReader;

/// Records longer than this are skipped: their text would not fit a handoff anyway.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReadStats {
    pub records: u64,
    pub bytes: u64,
    pub skipped_oversized: u64,
    pub skipped_unparseable: u64,
    /// The file ends in the middle of a record.
    pub truncated_tail: bool,
    pub hash: Option<String>,
}

pub struct TranscriptReader {
    /// The plain bytes, decoded on the way when the transcript is stored compressed; the
    /// hash is of the plain bytes, so a session hashes the same in either form.
    reader: BufReader<HashingReader<Box<dyn io::Read + Send>>>,
    buf: Vec<u8>,
    pub stats: ReadStats,
}

impl TranscriptReader {
    pub fn open(path: &Path) -> io::Result<TranscriptReader> {
        Ok(TranscriptReader {
            reader: BufReader::with_capacity(
                256 * 1024,
                HashingReader::new(crate::zstd_stream::open_plain(path)?),
            ),
            buf: Vec::with_capacity(64 * 1024),
            stats: ReadStats::default(),
        })
    }

    /// The next record that parses, or `None` at the end.
    pub fn next_record(&mut self) -> io::Result<Option<Value>> {
        loop {
            self.buf.clear();
            let (complete, oversized) = self.read_bounded_line()?;
            if self.buf.is_empty() && !complete && !oversized {
                return Ok(None);
            }
            if oversized {
                self.stats.skipped_oversized += 1;
                continue;
            }
            if !complete {
                self.stats.truncated_tail = true;
            }
            let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => {
                    self.stats.records += 1;
                    return Ok(Some(v));
                }
                Err(_) => self.stats.skipped_unparseable += 1,
            }
        }
    }

    /// Reads one line into `buf` unless it exceeds the limit, in which case the rest of
    /// the line is consumed and dropped. Returns (ended with a newline, was oversized).
    fn read_bounded_line(&mut self) -> io::Result<(bool, bool)> {
        let mut oversized = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok((false, oversized));
            }
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..=i], true),
                None => (available, false),
            };
            let n = chunk.len();
            self.stats.bytes += n as u64;
            if !oversized && self.buf.len() + n <= MAX_RECORD_BYTES {
                self.buf.extend_from_slice(chunk);
            } else if !oversized {
                oversized = true;
                self.buf.clear();
                self.buf.shrink_to(64 * 1024);
            }
            self.reader.consume(n);
            if found {
                return Ok((true, oversized));
            }
        }
    }

    /// Reads whatever is left (so the hash covers the whole file) and returns the stats.
    pub fn finish(mut self) -> io::Result<ReadStats> {
        io::copy(&mut self.reader, &mut io::sink())?;
        let (hash, _) = self.reader.into_inner().finish();
        self.stats.hash = Some(hash);
        Ok(self.stats)
    }
}

/// Codex puts harness context (`<environment_context>`, `<user_instructions>`, ...) into
/// user messages; a text that opens with a tag is that, not the user's words.
pub fn is_harness_context(text: &str) -> bool {
    text.trim_start().starts_with('<')
}

/// How far into a transcript its first request is looked for: Codex writes it within the
/// first few records, after the session's metadata and the harness context.
const REQUEST_SEARCH_RECORDS: u64 = 64;
const REQUEST_SEARCH_BYTES: u64 = 4 << 20;

/// The first user message that is the user's words (not harness context), from the head
/// of the transcript only; `None` when the head holds none.
pub fn first_user_request(path: &Path) -> io::Result<Option<String>> {
    let mut reader = TranscriptReader::open(path)?;
    while reader.stats.records < REQUEST_SEARCH_RECORDS && reader.stats.bytes < REQUEST_SEARCH_BYTES
    {
        let Some(record) = reader.next_record()? else {
            break;
        };
        let payload = record.get("payload").unwrap_or(&Value::Null);
        let is_user_message = record.get("type").and_then(Value::as_str) == Some("response_item")
            && payload.get("type").and_then(Value::as_str) == Some("message")
            && payload.get("role").and_then(Value::as_str) == Some("user");
        if !is_user_message {
            continue;
        }
        let text = message_text(payload);
        if !is_harness_context(&text) && !text.trim().is_empty() {
            return Ok(Some(text.trim().to_string()));
        }
    }
    Ok(None)
}

/// All text of a message's `content` list (`input_text` / `output_text` / `text`).
pub fn message_text(payload: &Value) -> String {
    match payload.get("content") {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_unparseable_and_cut_off_lines_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let huge = format!(
            "{{\"type\":\"x\",\"payload\":\"{}\"}}\n",
            "a".repeat(MAX_RECORD_BYTES + 10)
        );
        std::fs::write(
            &path,
            format!("{{\"type\":\"a\"}}\n{huge}not json\n{{\"type\":\"b\"}}\n{{\"type\":\"c\""),
        )
        .unwrap();
        let mut r = TranscriptReader::open(&path).unwrap();
        let mut types = Vec::new();
        while let Some(v) = r.next_record().unwrap() {
            types.push(v["type"].as_str().unwrap().to_string());
        }
        let stats = r.finish().unwrap();
        assert_eq!(types, vec!["a", "b"]);
        assert_eq!(
            (stats.skipped_oversized, stats.skipped_unparseable),
            (1, 2),
            "the cut-off last line does not parse"
        );
        assert!(stats.truncated_tail);
        assert_eq!(
            stats.hash.unwrap(),
            crate::content_hash::hash_file(&path).unwrap()
        );
    }

    #[test]
    fn the_first_request_skips_harness_context_and_other_roles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let message = |role: &str, text: &str| {
            serde_json::json!({"type": "response_item", "payload": {"type": "message", "role": role,
                "content": [{"type": "input_text", "text": text}]}})
            .to_string()
        };
        let lines = [
            "{\"type\":\"session_meta\",\"payload\":{\"id\":\"a\"}}".to_string(),
            message("user", "  <environment_context>cwd</environment_context>"),
            message("assistant", "hello"),
            message("user", "  Fix the build  "),
            message("user", "second"),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        assert_eq!(
            first_user_request(&path).unwrap().as_deref(),
            Some("Fix the build")
        );
        std::fs::write(&path, lines[..3].join("\n") + "\n").unwrap();
        assert_eq!(first_user_request(&path).unwrap(), None);
    }
}
