//! Handoff documents (SPEC.md "Handoff Docs"): what a long session knew, distilled from its
//! transcript so a fresh session can pick it up, bounded in length, secrets removed.

pub mod extract;
pub mod redact;

use serde::Serialize;

/// The sections a handoff must have to count (SPEC.md "Validation").
pub const REQUIRED_SECTIONS: &[&str] = &["## Goal", "## Current State", "## Restart Prompt"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Handoff {
    pub thread_id: String,
    pub title: String,
    pub goal: Vec<String>,
    pub current_state: Vec<String>,
    pub decisions: Vec<String>,
    pub files: Vec<String>,
    pub commands: Vec<String>,
    pub risks: Vec<String>,
    pub restart_prompt: String,
    /// Lines of notes about what was left out to keep it short.
    pub truncated: Vec<String>,
}

impl Handoff {
    pub fn render(&self) -> String {
        let mut out = format!("# Codex Handoff: {}\n\n", self.title);
        let section = |out: &mut String, title: &str, items: &[String], empty: &str| {
            out.push_str(&format!("## {title}\n"));
            if items.is_empty() {
                out.push_str(&format!("- {empty}\n"));
            }
            for i in items {
                out.push_str(&format!("- {}\n", i.replace('\n', " ")));
            }
            out.push('\n');
        };
        section(
            &mut out,
            "Goal",
            &self.goal,
            "No user request was found in the transcript.",
        );
        section(&mut out, "Current State", &self.current_state, "Unknown.");
        section(
            &mut out,
            "Decisions",
            &self.decisions,
            "No explicit decisions were found in the transcript.",
        );
        section(
            &mut out,
            "Files And Artifacts",
            &self.files,
            "None recorded.",
        );
        section(
            &mut out,
            "Commands And Results",
            &self.commands,
            "No commands were run.",
        );
        section(
            &mut out,
            "Risks Or Blockers",
            &self.risks,
            "None found in the transcript.",
        );
        out.push_str("## Restart Prompt\n");
        out.push_str(&self.restart_prompt);
        out.push('\n');
        if !self.truncated.is_empty() {
            out.push_str("\n---\n");
            for t in &self.truncated {
                out.push_str(&format!("_{t}_\n"));
            }
        }
        out
    }
}

/// Whether a document has every section SPEC.md requires.
pub fn has_required_sections(doc: &str) -> Vec<&'static str> {
    REQUIRED_SECTIONS
        .iter()
        .copied()
        .filter(|s| !doc.lines().any(|l| l.trim_end() == *s))
        .collect()
}
