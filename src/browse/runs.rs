//! Changes made from the browser run as codex-maint's own commands, in a child process of
//! this very binary: `cleanup --yes --plan <id>` for the plan reviewed in the plan pane,
//! `handoff <ids>`, `undo --run <n>`. So a change from the browser takes exactly the path
//! the same change typed at a prompt takes (write gate, recovery, backup, journal,
//! contract, verification), and its report, captured rather than drawn over the view, is
//! what the log pane shows.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::terminal_text::one_line;

/// Lines of one report the log keeps; the rest is in `codex-maint log`.
const LINES_PER_RUN: usize = 60;

#[derive(Debug, Clone)]
pub struct RunResult {
    pub exit_code: i32,
    /// The journal's run, when the command made one.
    pub run_id: Option<i64>,
    pub lines: Vec<String>,
}

/// Runs `codex-maint --home H --store S --json <args>` and reads its report.
pub fn run_self(home: &Path, store_root: &Path, args: &[String]) -> RunResult {
    let typed = format!("$ codex-maint {}", args.join(" "));
    let output = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg("--home")
            .arg(home)
            .arg("--store")
            .arg(store_root)
            .arg("--json")
            .args(args)
            .stdin(Stdio::null())
            .output()
    });
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            return RunResult {
                exit_code: 1,
                run_id: None,
                lines: vec![typed, format!("could not start codex-maint: {e}")],
            };
        }
    };
    let exit_code = output.status.code().unwrap_or(1);
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let mut lines = vec![typed];
    lines.extend(report_lines(&doc));
    if doc.is_null() {
        lines.extend(
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .map(one_line),
        );
    }
    lines.truncate(LINES_PER_RUN);
    lines.push(format!("exit {exit_code}"));
    RunResult {
        exit_code,
        run_id: doc["data"]["run_id"].as_i64(),
        lines,
    }
}

/// A report's sections, or its error, as log lines.
fn report_lines(doc: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(error) = doc.get("error") {
        lines.push(format!(
            "refused or failed: {}",
            one_line(error["message"].as_str().unwrap_or("?"))
        ));
        for d in error["details"].as_array().into_iter().flatten() {
            lines.push(format!("  - {}", one_line(d.as_str().unwrap_or("?"))));
        }
        return lines;
    }
    for section in doc["sections"].as_array().into_iter().flatten() {
        let items = section["items"].as_array();
        if items.is_none_or(|i| i.is_empty()) {
            continue;
        }
        lines.push(format!(
            "{}:",
            one_line(section["title"].as_str().unwrap_or(""))
        ));
        for item in items.into_iter().flatten() {
            lines.push(format!("  {}", one_line(item.as_str().unwrap_or("?"))));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_and_an_error_read_as_log_lines() {
        let done = serde_json::json!({
            "sections": [
                { "title": "Completed actions", "items": ["archived a\u{1b}[2J (1 KiB) (op 3)"] },
                { "title": "Not touched", "items": [] }
            ],
            "data": { "run_id": 7 }
        });
        assert_eq!(
            report_lines(&done),
            ["Completed actions:", "  archived a\\x1b[2J (1 KiB) (op 3)"]
        );
        let refused = serde_json::json!({
            "error": { "message": "Codex is running", "details": ["pid 4 codex"] }
        });
        assert_eq!(
            report_lines(&refused),
            ["refused or failed: Codex is running", "  - pid 4 codex"]
        );
    }
}
