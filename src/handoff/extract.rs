//! Builds a handoff from a transcript read as a stream: the user's requests (harness
//! context skipped), the last answer and turn state, stated decisions, files touched,
//! commands with their exit codes, and what went wrong. Unknown records are skipped.

use regex::Regex;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::OnceLock;

use super::Handoff;
use crate::home::transcript::{ReadStats, TranscriptReader, is_harness_context, message_text};

/// How much is tracked while streaming, whatever the transcript's length: memory stays
/// bounded and every insertion is O(1).
const TRACK_DECISIONS: usize = 64;
const TRACK_FILES: usize = 1_000;
const TRACK_COMMANDS: usize = 5_000;

/// Bounds that keep a handoff a handoff, not a transcript.
const MAX_REQUESTS: usize = 5;
const MAX_DECISIONS: usize = 8;
const MAX_FILES: usize = 30;
const MAX_COMMANDS: usize = 25;
const MAX_RISKS: usize = 12;
const TEXT_CLIP: usize = 300;
const ANSWER_CLIP: usize = 800;

/// What the caller knows beyond the transcript (the thread row, where the doc will be).
#[derive(Default)]
pub struct Context {
    pub git_branch: Option<String>,
    pub git_sha: Option<String>,
    pub title: Option<String>,
    pub doc_path: Option<String>,
}

#[derive(Default)]
struct CommandRun {
    command: String,
    runs: u32,
    last_exit: Option<i64>,
}

#[derive(Default)]
struct State {
    id: String,
    cwd: Option<String>,
    branch: Option<String>,
    commit: Option<String>,
    /// The first request and a window of the latest ones.
    requests: Vec<String>,
    requests_total: usize,
    last_answer: Option<String>,
    last_assistant_message: Option<String>,
    turns: u32,
    last_turn_open: bool,
    /// The latest decisions (a window), with the set of those held for dedup.
    decisions: VecDeque<String>,
    decisions_seen: HashSet<String>,
    decisions_total: usize,
    files: Vec<String>,
    files_seen: HashSet<String>,
    files_total: usize,
    commands_untracked: usize,
    pending_calls: HashMap<String, usize>,
    commands: Vec<CommandRun>,
    command_index: HashMap<String, usize>,
    errors: Vec<String>,
}

pub struct Extracted {
    pub handoff: Handoff,
    pub stats: ReadStats,
}

pub fn from_transcript(path: &Path, ctx: &Context) -> std::io::Result<Extracted> {
    let mut reader = TranscriptReader::open(path)?;
    let mut st = State::default();
    while let Some(record) = reader.next_record()? {
        st.take(&record);
    }
    let stats = reader.finish()?;
    Ok(Extracted {
        handoff: st.into_handoff(path, ctx, &stats),
        stats,
    })
}

fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

fn decision_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)\b(i decided|we decided|decided to|decision:|i chose|we chose|chose to|going with|opted (for|to)|i'll use|i will use|we'll use|we will use|let's use|instead of|i'm keeping|we keep|settled on)\b").unwrap()
    })
}

fn exit_code_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)(?:process exited with code|exit code:?|exited with)\s*(-?\d+)").unwrap()
    })
}

fn patch_path_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?m)^\*\*\* (?:Add|Update|Delete) File: (.+)$|^\*\*\* Move to: (.+)$").unwrap()
    })
}

fn produced_path_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?:^|\s)(?:>>?|tee(?:\s+-a)?|touch|mkdir(?:\s+-p)?)\s+([^\s;&|<>"']+)"#)
            .unwrap()
    })
}

impl State {
    fn take(&mut self, record: &Value) {
        let kind = record
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let payload = record.get("payload").unwrap_or(&Value::Null);
        let ptype = payload
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match (kind, ptype) {
            ("session_meta", _) => {
                let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_string);
                self.id = text("id")
                    .or_else(|| text("session_id"))
                    .unwrap_or_default();
                self.cwd = text("cwd");
                self.branch = payload
                    .pointer("/git/branch")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.commit = payload
                    .pointer("/git/commit_hash")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            ("response_item", "message") => {
                let text = message_text(payload);
                match payload.get("role").and_then(Value::as_str) {
                    Some("user") if !is_harness_context(&text) && !text.trim().is_empty() => {
                        self.note_request(text)
                    }
                    Some("assistant") if !text.trim().is_empty() => {
                        self.note_decisions(&text);
                        self.last_assistant_message = Some(text.clone());
                        self.last_answer = Some(text);
                    }
                    _ => {}
                }
            }
            ("response_item", "function_call")
            | ("response_item", "custom_tool_call")
            | ("response_item", "local_shell_call") => {
                self.take_call(payload);
            }
            ("response_item", "function_call_output")
            | ("response_item", "custom_tool_call_output") => {
                let call = payload
                    .get("call_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let output = match payload.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let code = exit_code_re()
                    .captures(&output)
                    .and_then(|c| c[1].parse().ok())
                    .or_else(|| {
                        serde_json::from_str::<Value>(&output)
                            .ok()
                            .and_then(|v| v.pointer("/metadata/exit_code").and_then(Value::as_i64))
                    });
                if let (Some(&i), Some(code)) = (self.pending_calls.get(call), code) {
                    self.commands[i].last_exit = Some(code);
                }
            }
            ("event_msg", "task_started") => {
                self.turns += 1;
                self.last_turn_open = true;
            }
            ("event_msg", "task_complete") => {
                self.last_turn_open = false;
                if let Some(m) = payload
                    .get("last_agent_message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.trim().is_empty())
                {
                    self.last_answer = Some(m.to_string());
                }
            }
            ("event_msg", "turn_aborted") => self.errors.push("a turn was aborted".into()),
            ("event_msg", "error") | ("event_msg", "stream_error") => {
                let m = payload
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("an error");
                self.errors.push(clip(m, 200));
            }
            ("compacted", _) => {}
            _ => {}
        }
    }

    fn take_call(&mut self, payload: &Value) {
        let name = payload
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let call_id = payload
            .get("call_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let args: Value = match payload.get("arguments") {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            Some(v) => v.clone(),
            None => payload.get("action").cloned().unwrap_or(Value::Null),
        };
        let raw_input = payload
            .get("input")
            .and_then(Value::as_str)
            .map(str::to_string);
        let command = match &args {
            Value::Object(o) => match (o.get("cmd"), o.get("command")) {
                (Some(Value::String(c)), _) => Some(c.clone()),
                (_, Some(Value::Array(parts))) => {
                    let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
                    // ["bash", "-lc", "<script>"] is the script.
                    match parts.as_slice() {
                        [_, flag, script] if flag.starts_with('-') && flag.contains('c') => {
                            Some(script.to_string())
                        }
                        _ => Some(parts.join(" ")),
                    }
                }
                (_, Some(Value::String(c))) => Some(c.clone()),
                _ => None,
            },
            _ => None,
        };
        let patch_text = raw_input.or_else(|| {
            args.get("input")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        if let Some(p) = &patch_text
            && (name == "apply_patch" || p.contains("*** Begin Patch"))
        {
            self.note_patch(p);
        }
        let Some(command) = command else { return };
        if command.contains("*** Begin Patch") {
            self.note_patch(&command);
        }
        for c in produced_path_re().captures_iter(&command) {
            self.note_file(&c[1]);
        }
        let key = clip(&command, 200);
        let i = match self.command_index.get(&key) {
            Some(&i) => i,
            None if self.commands.len() >= TRACK_COMMANDS => {
                self.commands_untracked += 1;
                return;
            }
            None => {
                self.commands.push(CommandRun {
                    command: key.clone(),
                    ..Default::default()
                });
                self.command_index.insert(key, self.commands.len() - 1);
                self.commands.len() - 1
            }
        };
        self.commands[i].runs += 1;
        self.commands[i].last_exit = None;
        self.pending_calls.insert(call_id, i);
    }

    fn note_patch(&mut self, patch: &str) {
        for c in patch_path_re().captures_iter(patch) {
            if let Some(m) = c.get(1).or_else(|| c.get(2)) {
                self.note_file(m.as_str().trim());
            }
        }
    }

    fn note_request(&mut self, text: String) {
        self.requests_total += 1;
        // Keep the first request and the latest few; the middle is counted, not kept.
        if self.requests.len() > MAX_REQUESTS + 1 {
            self.requests.remove(1);
        }
        self.requests.push(clip(&text, TEXT_CLIP * 4));
    }

    fn note_file(&mut self, path: &str) {
        if path.starts_with("/dev/") || self.files_seen.contains(path) {
            return;
        }
        self.files_total += 1;
        if self.files.len() < TRACK_FILES {
            self.files_seen.insert(path.to_string());
            self.files.push(path.to_string());
        }
    }

    fn note_decisions(&mut self, text: &str) {
        for sentence in text
            .split(['\n', '.', '!', '?'])
            .map(str::trim)
            .filter(|s| s.len() > 8)
        {
            if decision_re().is_match(sentence) {
                let s = clip(sentence, 200);
                if self.decisions_seen.insert(s.clone()) {
                    self.decisions_total += 1;
                    self.decisions.push_back(s);
                    if self.decisions.len() > TRACK_DECISIONS
                        && let Some(old) = self.decisions.pop_front()
                    {
                        self.decisions_seen.remove(&old);
                    }
                }
            }
        }
    }

    fn into_handoff(self, path: &Path, ctx: &Context, stats: &ReadStats) -> Handoff {
        let mut h = Handoff {
            thread_id: self.id.clone(),
            ..Default::default()
        };
        let first = self.requests.first().map(|r| clip(r, TEXT_CLIP));
        h.title = ctx
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| first.clone())
            .map(|t| clip(t.lines().next().unwrap_or(""), 60))
            .unwrap_or_else(|| format!("session {}", self.id));
        if let Some(f) = &first {
            h.goal.push(format!("First request: {f}"));
        }
        let later: Vec<&String> = self.requests.iter().skip(1).collect();
        let shown = later.len().saturating_sub(MAX_REQUESTS);
        for r in later.iter().skip(shown) {
            h.goal.push(format!("Then: {}", clip(r, TEXT_CLIP)));
        }
        let omitted = self.requests_total.saturating_sub(1 + later.len() - shown);
        if omitted > 0 {
            h.truncated.push(format!(
                "{omitted} earlier follow-up requests are not listed"
            ));
        }

        let answer = self.last_answer.as_deref().map(|a| clip(a, ANSWER_CLIP));
        h.current_state.push(match &answer {
            Some(a) => format!("Last answer: {a}"),
            None => "No assistant answer was recorded.".into(),
        });
        h.current_state.push(format!(
            "Turns: {}; user requests: {}; the last turn {}",
            self.turns.max(self.requests_total as u32),
            self.requests_total,
            if self.last_turn_open {
                "did NOT complete"
            } else {
                "completed"
            }
        ));
        // The turn's final message may be a summary; the last assistant message may be the
        // one that says what is left.
        let remains = self
            .last_answer
            .as_deref()
            .and_then(remaining_work)
            .or_else(|| {
                self.last_assistant_message
                    .as_deref()
                    .and_then(remaining_work)
            });
        h.current_state.push(match &remains {
            Some(r) => format!("What remains: {r}"),
            None => "What remains: not stated in the transcript".into(),
        });

        let shown_decisions = self.decisions.len().min(MAX_DECISIONS);
        h.decisions = self
            .decisions
            .iter()
            .skip(self.decisions.len() - shown_decisions)
            .cloned()
            .collect();
        if self.decisions_total > shown_decisions {
            h.truncated.push(format!(
                "{} earlier decisions are not listed",
                self.decisions_total - shown_decisions
            ));
        }

        let branch = self.branch.clone().or_else(|| ctx.git_branch.clone());
        let commit = self.commit.clone().or_else(|| ctx.git_sha.clone());
        if let Some(cwd) = &self.cwd {
            h.files.push(format!("Working directory: {cwd}"));
        }
        if branch.is_some() || commit.is_some() {
            h.files.push(format!(
                "Git: branch {}{}",
                branch.clone().unwrap_or_else(|| "?".into()),
                commit
                    .as_ref()
                    .map(|c| format!(" at {}", &c[..c.len().min(12)]))
                    .unwrap_or_default()
            ));
        }
        h.files.push(format!("Transcript: {}", path.display()));
        for f in self.files.iter().take(MAX_FILES) {
            h.files.push(format!("Touched: {f}"));
        }
        if self.files_total > MAX_FILES {
            h.truncated.push(format!(
                "{} more touched files are not listed",
                self.files_total - MAX_FILES
            ));
        }

        let mut commands: Vec<&CommandRun> = self.commands.iter().collect();
        commands.sort_by_key(|c| !matches!(c.last_exit, Some(code) if code != 0));
        for c in commands.iter().take(MAX_COMMANDS) {
            let result = match c.last_exit {
                Some(0) => "exit 0".to_string(),
                Some(code) => format!("FAILED, exit {code}"),
                None => "no exit code recorded".to_string(),
            };
            let runs = if c.runs > 1 {
                format!(", ran {} times", c.runs)
            } else {
                String::new()
            };
            h.commands
                .push(format!("`{}` -> {result}{runs}", c.command));
        }
        let all_commands = commands.len() + self.commands_untracked;
        if all_commands > MAX_COMMANDS {
            h.truncated.push(format!(
                "{} more commands are not listed",
                all_commands - MAX_COMMANDS
            ));
        }

        let failing: Vec<&&CommandRun> = commands
            .iter()
            .filter(|c| matches!(c.last_exit, Some(code) if code != 0))
            .collect();
        for c in &failing {
            h.risks.push(format!(
                "`{}` last failed with exit {}",
                c.command,
                c.last_exit.unwrap_or(-1)
            ));
        }
        for e in &self.errors {
            h.risks.push(format!("Error: {e}"));
        }
        if self.last_turn_open {
            h.risks
                .push("The last turn did not complete: its work may be half done".into());
        }
        if stats.truncated_tail {
            h.risks
                .push("The transcript ends mid-record: the session may have been cut off".into());
        }
        if stats.skipped_oversized > 0 {
            h.risks.push(format!(
                "{} oversized records (large tool output) were skipped when reading",
                stats.skipped_oversized
            ));
        }
        if h.risks.len() > MAX_RISKS {
            h.truncated.push(format!(
                "{} more risks are not listed",
                h.risks.len() - MAX_RISKS
            ));
            h.risks.truncate(MAX_RISKS);
        }

        let next = if self.last_turn_open {
            format!(
                "finish the interrupted last request: {}",
                self.requests
                    .last()
                    .map(|r| clip(r, 200))
                    .unwrap_or_default()
            )
        } else if let Some(c) = failing.first() {
            format!(
                "make `{}` succeed (it last exited with {})",
                c.command,
                c.last_exit.unwrap_or(-1)
            )
        } else if let Some(r) = &remains {
            r.clone()
        } else {
            format!(
                "check that the goal is met, then continue from the last request: {}",
                self.requests
                    .last()
                    .map(|r| clip(r, 200))
                    .unwrap_or_else(|| "(none)".into())
            )
        };
        let look: Vec<&str> = self.files.iter().take(5).map(String::as_str).collect();
        h.restart_prompt = format!(
            "You are continuing work from an earlier Codex session (thread {}){}{}.\n\
             Goal: {}\n\
             Where it stands: {}\n\
             Next step: {}\n\
             Look first at: {}.{}",
            self.id,
            self.cwd
                .as_ref()
                .map(|c| format!(" in {c}"))
                .unwrap_or_default(),
            branch.map(|b| format!(", branch {b}")).unwrap_or_default(),
            first.unwrap_or_else(|| "not recorded".into()),
            answer
                .map(|a| clip(&a, 300))
                .unwrap_or_else(|| "no answer was recorded".into()),
            next,
            if look.is_empty() {
                self.cwd
                    .clone()
                    .unwrap_or_else(|| "the working directory".into())
            } else {
                look.join(", ")
            },
            ctx.doc_path
                .as_ref()
                .map(|p| format!(" The full handoff is {p}."))
                .unwrap_or_default()
        );
        h
    }
}

/// A sentence of the last answer that says what is left to do, if any.
fn remaining_work(answer: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?i)\b(next step|next,|todo|to do|remaining|still need|left to|not yet|follow-up|afterwards)\b").unwrap());
    answer
        .split(['\n', '.', '!', '?'])
        .map(str::trim)
        .find(|s| s.len() > 8 && re.is_match(s))
        .map(|s| clip(s, 300))
}
