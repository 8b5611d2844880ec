//! What every command returns: data first (serde), text second, rendered from the same
//! value so `--json` and the human view can never disagree. The sections are SPEC.md's
//! output shape; `data` carries the structured facts with stable field names.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    /// SPEC.md's mode: inspect, cleanup, handoff, automation; other commands name themselves.
    pub mode: String,
    pub exit_code: i32,
    pub sections: Vec<Section>,
    pub data: Value,
    /// When set, the text view is exactly this (documents printed for a pipe); the same
    /// content is in `data` for `--json`.
    #[serde(skip)]
    pub raw_text: Option<String>,
    /// Said on stderr beside `raw_text`, so what goes to stdout stays a valid file.
    #[serde(skip)]
    pub raw_notes: Option<String>,
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
}
