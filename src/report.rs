//! What every command returns: data first (serde), text second, rendered from the same
//! value so `--json` and the human view can never disagree. The sections are SPEC.md's
//! output shape; `data` carries the structured facts with stable field names.

use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Report {
    pub command: String,
    /// SPEC.md's mode: inspect, cleanup, handoff, automation; other commands name themselves.
    pub mode: String,
    pub exit_code: i32,
    pub sections: Vec<Section>,
    pub data: Value,
    /// When set, the text view is exactly this (documents printed for a pipe); the same
    /// content is in `data` for `--json`.
    pub raw_text: Option<String>,
    /// Said on stderr beside `raw_text`, so what goes to stdout stays a valid file.
    pub raw_notes: Option<String>,
    /// Per-item lists of `data` too long to hold (a policy run over 100,000 sessions): kept
    /// on disk and streamed into `data` under their key when the report is written.
    pub long_lists: Vec<(String, LongList)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    pub items: Vec<String>,
}

/// SPEC.md's section titles, in its order.
pub const OBSERVED: &str = "Observed hot spots";
pub const PROPOSED: &str = "Proposed actions";
pub const COMPLETED: &str = "Completed actions";
pub const NOT_TOUCHED: &str = "Not touched";
pub const BACKUPS: &str = "Backups and manifests";
pub const VERIFICATION: &str = "Verification";
pub const RESIDUAL_RISK: &str = "Residual risk";

impl Report {
    pub fn new(command: &str, mode: &str) -> Report {
        Report {
            command: command.into(),
            mode: mode.into(),
            exit_code: 0,
            sections: Vec::new(),
            data: Value::Null,
            raw_text: None,
            raw_notes: None,
            long_lists: Vec::new(),
        }
    }

    /// A report in SPEC.md's shape, every section present even when empty, so a reader
    /// can tell "nothing" from "not reported".
    pub fn spec_shaped(command: &str, mode: &str) -> Report {
        let mut r = Report::new(command, mode);
        for title in [
            OBSERVED,
            PROPOSED,
            COMPLETED,
            NOT_TOUCHED,
            BACKUPS,
            VERIFICATION,
            RESIDUAL_RISK,
        ] {
            r.sections.push(Section {
                title: title.into(),
                items: Vec::new(),
            });
        }
        r
    }

    pub fn push(&mut self, title: &str, item: impl Into<String>) {
        let item = item.into();
        match self.sections.iter_mut().find(|s| s.title == title) {
            Some(s) => s.items.push(item),
            None => self.sections.push(Section {
                title: title.into(),
                items: vec![item],
            }),
        }
    }

    pub fn extend(&mut self, title: &str, items: impl IntoIterator<Item = String>) {
        for item in items {
            self.push(title, item);
        }
    }

    /// Puts `list` into `data` under `key`, in place of any value there. `"plan.actions"`
    /// puts it under `actions` of the object `data.plan`.
    pub fn attach_list(&mut self, key: &str, list: LongList) {
        let mut at = &mut self.data;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let Value::Object(map) = at else { break };
            if parts.peek().is_none() {
                map.remove(part);
                break;
            }
            at = map
                .entry(part)
                .or_insert_with(|| Value::Object(Default::default()));
        }
        self.long_lists.retain(|(k, _)| k != key);
        self.long_lists.push((key.to_string(), list));
    }

    pub fn render_text(&self) -> String {
        if let Some(raw) = &self.raw_text {
            return raw.clone();
        }
        let mut out = String::from("## Codex Session Maintenance\n");
        out.push_str(&format!("Mode:\n- {}\n", self.mode));
        for section in &self.sections {
            out.push_str(&format!("{}:\n", section.title));
            if section.items.is_empty() {
                out.push_str("- none\n");
            }
            for item in &section.items {
                out.push_str(&format!("- {item}\n"));
            }
        }
        out
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Report", 5)?;
        out.serialize_field("command", &self.command)?;
        out.serialize_field("mode", &self.mode)?;
        out.serialize_field("exit_code", &self.exit_code)?;
        out.serialize_field("sections", &self.sections)?;
        if self.long_lists.is_empty() {
            out.serialize_field("data", &self.data)?;
        } else {
            out.serialize_field(
                "data",
                &DataWithLists {
                    data: &self.data,
                    lists: &self.long_lists,
                },
            )?;
        }
        out.end()
    }
}

struct DataWithLists<'a> {
    data: &'a Value,
    lists: &'a [(String, LongList)],
}

impl Serialize for DataWithLists<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Value::Object(fields) = self.data {
            for (k, v) in fields {
                let nested: Vec<(String, LongList)> = self
                    .lists
                    .iter()
                    .filter_map(|(key, list)| {
                        let rest = key.strip_prefix(k.as_str())?.strip_prefix('.')?;
                        Some((rest.to_string(), list.clone()))
                    })
                    .collect();
                if nested.is_empty() {
                    map.serialize_entry(k, v)?;
                } else {
                    map.serialize_entry(
                        k,
                        &DataWithLists {
                            data: v,
                            lists: &nested,
                        },
                    )?;
                }
            }
        }
        for (k, list) in self.lists.iter().filter(|(k, _)| !k.contains('.')) {
            map.serialize_entry(k, list)?;
        }
        map.end()
    }
}

/// A per-item list written as it is built, one JSON line per item, to an unlinked
/// temporary file: memory holds one item, whatever the count. Serializing it reads the
/// items back in order.
#[derive(Debug, Clone)]
pub struct LongList {
    file: Arc<File>,
    count: u64,
}

pub struct LongListWriter {
    out: BufWriter<File>,
    file: Arc<File>,
    count: u64,
}

impl LongListWriter {
    pub fn new() -> anyhow::Result<LongListWriter> {
        use anyhow::Context;
        let file = tempfile::tempfile().context("creating a temporary file for a long list")?;
        Ok(LongListWriter {
            out: BufWriter::with_capacity(64 << 10, file.try_clone()?),
            file: Arc::new(file),
            count: 0,
        })
    }

    pub fn push(&mut self, item: &impl Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, item)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(mut self) -> anyhow::Result<LongList> {
        self.out.flush()?;
        Ok(LongList {
            file: self.file,
            count: self.count,
        })
    }
}

impl LongList {
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The items back, in the order they were pushed.
    pub fn items(&self) -> std::io::Result<impl Iterator<Item = std::io::Result<Value>> + '_> {
        self.items_as::<Value>()
    }

    /// The items back as `T`, in order. Each reader keeps its own position in the file, so
    /// two readers of clones of one list never disturb each other.
    pub fn items_as<T: DeserializeOwned>(
        &self,
    ) -> std::io::Result<impl Iterator<Item = std::io::Result<T>> + '_> {
        let reader = PositionalReader {
            file: &self.file,
            at: 0,
        };
        Ok(BufReader::with_capacity(64 << 10, reader)
            .lines()
            .map(|line| line.and_then(|l| serde_json::from_str(&l).map_err(std::io::Error::other))))
    }
}

/// Reads a shared file from its own offset (`pread`), not the file's shared cursor.
struct PositionalReader<'a> {
    file: &'a File,
    at: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Serialize for LongList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut seq = serializer.serialize_seq(Some(self.count as usize))?;
        for item in self.items().map_err(S::Error::custom)? {
            seq.serialize_element(&item.map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

/// The `keep` largest of many items, for the text view: a person reads the biggest ones
/// and a count, the full list is in `--json`.
pub struct Largest {
    keep: usize,
    heap: BinaryHeap<std::cmp::Reverse<(u64, String)>>,
    seen: u64,
}

impl Largest {
    pub fn new(keep: usize) -> Largest {
        Largest {
            keep,
            heap: BinaryHeap::new(),
            seen: 0,
        }
    }

    pub fn offer(&mut self, size: u64, line: impl FnOnce() -> String) {
        self.seen += 1;
        if self.heap.len() < self.keep {
            self.heap.push(std::cmp::Reverse((size, line())));
        } else if self.heap.peek().is_some_and(|smallest| smallest.0.0 < size) {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse((size, line())));
        }
    }

    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept lines, largest first, then "... and N more" when some were left out.
    pub fn into_lines(self, more: impl FnOnce(u64) -> String) -> Vec<String> {
        let shown = self.heap.len() as u64;
        let mut lines: Vec<(u64, String)> = self.heap.into_iter().map(|r| r.0).collect();
        lines.sort_by_key(|line| std::cmp::Reverse(line.0));
        let mut out: Vec<String> = lines.into_iter().map(|(_, line)| line).collect();
        if self.seen > shown {
            out.push(more(self.seen - shown));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_carries_every_section_and_item_of_the_data() {
        let mut r = Report::spec_shaped("inspect", "inspect");
        r.push(OBSERVED, "sessions/ - 2.0 GiB");
        let text = r.render_text();
        assert!(text.starts_with("## Codex Session Maintenance\nMode:\n- inspect\n"));
        assert!(text.contains("Observed hot spots:\n- sessions/ - 2.0 GiB\n"));
        assert!(text.contains("Completed actions:\n- none\n"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["sections"][0]["items"][0], "sessions/ - 2.0 GiB");
    }

    #[test]
    fn a_long_list_is_written_into_data_in_order_beside_the_other_fields() {
        let mut r = Report::spec_shaped("archive", "archive");
        r.data = serde_json::json!({ "run_id": 7, "archived": "replaced" });
        let mut list = LongListWriter::new().unwrap();
        for i in 0..10_000u64 {
            list.push(&serde_json::json!({ "n": i })).unwrap();
        }
        r.attach_list("archived", list.finish().unwrap());
        let text = serde_json::to_string_pretty(&r).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["data"]["run_id"], 7);
        let items = json["data"]["archived"].as_array().unwrap();
        assert_eq!(items.len(), 10_000);
        assert!(items.iter().enumerate().all(|(i, v)| v["n"] == i as u64));
        // Written twice, the same: reading rewinds the list.
        assert_eq!(serde_json::to_string_pretty(&r).unwrap(), text);
    }

    #[test]
    fn a_long_list_can_sit_inside_an_object_of_data() {
        let mut r = Report::spec_shaped("cleanup", "cleanup");
        r.data =
            serde_json::json!({ "plan": { "id": "p1", "actions": "replaced" }, "dry_run": true });
        let mut list = LongListWriter::new().unwrap();
        for i in 0..3u64 {
            list.push(&serde_json::json!({ "n": i })).unwrap();
        }
        r.attach_list("plan.actions", list.finish().unwrap());
        let json: Value = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(json["data"]["plan"]["id"], "p1");
        assert_eq!(json["data"]["plan"]["actions"][2]["n"], 2);
        assert_eq!(json["data"]["dry_run"], true);
        assert!(json["data"].get("plan.actions").is_none());
    }

    #[test]
    fn largest_keeps_the_biggest_items_and_counts_the_rest() {
        let mut top = Largest::new(3);
        for size in [5u64, 1, 9, 7, 3, 8] {
            top.offer(size, || format!("item {size}"));
        }
        assert_eq!(top.seen(), 6);
        let lines = top.into_lines(|more| format!("and {more} more"));
        assert_eq!(lines, ["item 9", "item 8", "item 7", "and 3 more"]);
    }
}
