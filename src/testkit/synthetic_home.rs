//! Generates Codex homes shaped like the ones real Codex writes (CODEX-LAYOUT.md): dated
//! transcripts whose records have Codex's types, archived ones flat, and a `state_5.sqlite`
//! thread index whose rows match. Used where running the real CLI would be too slow or
//! cannot produce the shape wanted (old, pinned, huge).

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, params};
use serde_json::json;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub id: String,
    pub started: DateTime<Utc>,
    /// Last write, as the file's mtime.
    pub last_active: DateTime<Utc>,
    pub target_bytes: usize,
    pub archived: bool,
    pub pinned: bool,
    pub cwd: String,
}

impl SessionSpec {
    /// A session `age_days` old, about `bytes` long, with an id derived from `n`.
    pub fn aged(n: u64, age_days: f64, bytes: usize) -> SessionSpec {
        let last_active = Utc::now() - Duration::seconds((age_days * 86_400.0) as i64);
        SessionSpec {
            id: id_for(n),
            started: last_active - Duration::minutes(30),
            last_active,
            target_bytes: bytes,
            archived: false,
            pinned: false,
            cwd: format!("/work/project-{}", n % 7),
        }
    }

    pub fn file_name(&self) -> String {
        format!(
            "rollout-{}-{}.jsonl",
            self.started.format("%Y-%m-%dT%H-%M-%S"),
            self.id
        )
    }

    pub fn path_in(&self, home: &Path) -> PathBuf {
        if self.archived {
            home.join("archived_sessions").join(self.file_name())
        } else {
            home.join("sessions")
                .join(self.started.format("%Y").to_string())
                .join(self.started.format("%m").to_string())
                .join(self.started.format("%d").to_string())
                .join(self.file_name())
        }
    }
}

/// Distinct, valid, v7-shaped ids, deterministic in `n`.
pub fn id_for(n: u64) -> String {
    let hi = 0x0195_0000_0000_7000u64 | ((n >> 12) & 0xffff_ffff) << 16 | (n & 0x0fff);
    let lo = 0x8000_0000_0000_0000u64 | n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 2;
    uuid::Uuid::from_u64_pair(hi, lo).to_string()
}

/// The columns of Codex 0.169's `threads` that codex-maint reads or writes, plus the ones
/// whose presence makes the index recognisably Codex's. Names and types as Codex has them.
pub const THREADS_SCHEMA: &str = "
CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    rollout_path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    model_provider TEXT NOT NULL,
    cwd TEXT NOT NULL,
    title TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    archived_at INTEGER,
    git_sha TEXT,
    git_branch TEXT,
    first_user_message TEXT NOT NULL DEFAULT '',
    preview TEXT NOT NULL DEFAULT '',
    history_mode TEXT NOT NULL DEFAULT 'legacy',
    is_pinned INTEGER NOT NULL DEFAULT 0
);";

/// Opens the home's thread index: the one real Codex made, if it has run in this home
/// (then its full schema is kept), else a new one with `THREADS_SCHEMA`.
pub fn create_index(home: &Path) -> Result<Connection> {
    let conn = Connection::open(home.join("state_5.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    if !table_exists(&conn, "threads")? {
        conn.execute_batch(THREADS_SCHEMA)?;
    }
    Ok(conn)
}

fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?)
}

pub fn insert_row(conn: &Connection, home: &Path, spec: &SessionSpec) -> Result<()> {
    // Codex's own schema has NOT NULL columns without defaults that the reduced one lacks.
    let has_policy_columns = conn
        .prepare_cached(
            "SELECT count(*) > 0 FROM pragma_table_info('threads') WHERE name = 'sandbox_policy'",
        )?
        .query_row([], |r| r.get::<_, bool>(0))?;
    let sql = if has_policy_columns {
        "INSERT INTO threads (id, rollout_path, created_at, updated_at, source, model_provider, cwd, title,
                              archived, archived_at, git_branch, first_user_message, preview, history_mode, is_pinned,
                              sandbox_policy, approval_mode)
         VALUES (?1, ?2, ?3, ?4, 'cli', 'openai', ?5, ?6, ?7, ?8, 'main', ?6, ?6, 'paginated', ?9,
                 '{\"type\":\"read-only\"}', 'never')"
    } else {
        "INSERT INTO threads (id, rollout_path, created_at, updated_at, source, model_provider, cwd, title,
                              archived, archived_at, git_branch, first_user_message, preview, history_mode, is_pinned)
         VALUES (?1, ?2, ?3, ?4, 'cli', 'openai', ?5, ?6, ?7, ?8, 'main', ?6, ?6, 'paginated', ?9)"
    };
    conn.prepare_cached(sql)?.execute(params![
        spec.id,
        spec.path_in(home).display().to_string(),
        spec.started.timestamp(),
        spec.last_active.timestamp(),
        spec.cwd,
        format!("task for {}", &spec.id[..8]),
        spec.archived as i64,
        spec.archived.then(|| spec.last_active.timestamp()),
        spec.pinned as i64,
    ])?;
    Ok(())
}

/// Writes the transcript, sets its mtime, and returns its path.
pub fn write_transcript(home: &Path, spec: &SessionSpec) -> Result<PathBuf> {
    let path = spec.path_in(home);
    fs::create_dir_all(path.parent().unwrap())?;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    let mut ordinal = 0u64;
    let mut written = 0usize;
    let mut emit = |out: &mut BufWriter<File>,
                    record_type: &str,
                    payload: serde_json::Value|
     -> Result<usize> {
        let line = json!({
            "timestamp": spec.started.to_rfc3339(),
            "ordinal": ordinal,
            "type": record_type,
            "payload": payload,
        })
        .to_string();
        ordinal += 1;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(line.len() + 1)
    };
    written += emit(
        &mut out,
        "session_meta",
        json!({
            "id": spec.id, "session_id": spec.id, "timestamp": spec.started.to_rfc3339(), "cwd": spec.cwd,
            "originator": "codex_cli_rs", "cli_version": "0.169.0", "source": "cli", "model_provider": "openai",
            "base_instructions": {"text": "You are a coding agent. ".repeat(40)},
            "git": {"branch": "main", "commit_hash": "0123456789abcdef0123456789abcdef01234567"}
        }),
    )?;
    written += emit(
        &mut out,
        "response_item",
        json!({"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "<environment_context>cwd</environment_context>"}]}),
    )?;
    written += emit(
        &mut out,
        "response_item",
        json!({"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": format!("Please fix the build in {}", spec.cwd)}]}),
    )?;
    // Codex lists an active session (`thread/list`, the resume picker) only when its head
    // holds a user message event beside the response item, as Codex itself records.
    written += emit(
        &mut out,
        "event_msg",
        json!({"type": "user_message", "message": format!("Please fix the build in {}", spec.cwd),
               "images": [], "local_images": [], "text_elements": []}),
    )?;
    let mut words = Prose::new(spec.id.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    }));
    let mut turn = 0u64;
    while written < spec.target_bytes {
        turn += 1;
        written += emit(
            &mut out,
            "event_msg",
            json!({"type": "task_started", "turn_id": format!("turn-{turn}")}),
        )?;
        written += emit(
            &mut out,
            "response_item",
            json!({"type": "function_call", "name": "exec_command",
            "arguments": json!({"cmd": format!("cargo test --package p{turn}")}).to_string(), "call_id": format!("call_{turn}")}),
        )?;
        written += emit(
            &mut out,
            "response_item",
            json!({"type": "function_call_output", "call_id": format!("call_{turn}"),
            "output": format!("Process exited with code {}\n{}", turn % 3, words.tool_output(900))}),
        )?;
        written += emit(
            &mut out,
            "response_item",
            json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": format!("Turn {turn}: I decided to keep the cache. {}", words.text(900))}]}),
        )?;
        written += emit(
            &mut out,
            "event_msg",
            json!({"type": "task_complete", "last_agent_message": format!("Turn {turn} done")}),
        )?;
    }
    out.flush()?;
    drop(out);
    set_mtime(&path, spec.last_active)?;
    Ok(path)
}

/// Text that compresses about as well as a real session's tool output and answers do:
/// words of code and build output drawn by a fixed-seed generator, so a home is the same
/// every time it is built, and a ratio measured on it is not flattered by repeated filler.
struct Prose {
    state: u64,
    /// Recent tool outputs: a session reads the same files and reruns the same tests, so
    /// about half of its outputs repeat an earlier one, which is most of why real
    /// transcripts compress as well as they do (the level table in docs/benchmarks.md).
    earlier: Vec<String>,
}

const VOCABULARY: &[&str] = &[
    "fn",
    "let",
    "mut",
    "pub",
    "struct",
    "impl",
    "use",
    "crate",
    "self",
    "return",
    "match",
    "Some",
    "None",
    "Ok",
    "Err",
    "String",
    "Vec",
    "Path",
    "error",
    "warning",
    "test",
    "cargo",
    "build",
    "src/main.rs",
    "src/lib.rs",
    "Cargo.toml",
    "passed",
    "failed",
    "running",
    "note:",
    "--> ",
    "|",
    "^",
    "expected",
    "found",
    "type",
    "mismatched",
    "cannot",
    "borrow",
    "as",
    "mutable",
    "because",
    "it",
    "is",
    "also",
    "borrowed",
    "immutable",
    "the",
    "a",
    "of",
    "to",
    "in",
    "and",
    "for",
    "with",
    "this",
    "that",
    "file",
    "line",
    "column",
    "function",
    "module",
    "index",
    "cache",
    "config",
    "session",
    "thread",
    "archive",
    "rollout",
    "sqlite",
    "query",
    "SELECT",
    "FROM",
    "WHERE",
    "rows",
    "commit",
    "branch",
    "main",
    "diff",
    "+",
    "-",
    "@@",
    "{",
    "}",
    "(",
    ")",
    ";",
    "=>",
    "->",
    "&",
    "::",
    "<",
    ">",
    "0",
    "1",
    "42",
    "200",
    "404",
    "true",
    "false",
    "null",
    "await",
    "async",
    "tokio",
    "serde",
    "json",
    "http",
    "request",
];

/// Of every 8 tool outputs, how many repeat an earlier one: chosen so that a generated home
/// compresses about as well as transcripts the real Codex wrote.
const REPEATED_OUTPUTS_IN_8: u64 = 6;

impl Prose {
    fn new(seed: u64) -> Prose {
        Prose {
            state: seed | 1,
            earlier: Vec::new(),
        }
    }

    fn tool_output(&mut self, bytes: usize) -> String {
        let r = self.next();
        if r % 8 < REPEATED_OUTPUTS_IN_8 && !self.earlier.is_empty() {
            return self.earlier[(r >> 8) as usize % self.earlier.len()].clone();
        }
        let text = self.text(bytes);
        if self.earlier.len() == 8 {
            self.earlier.remove(0);
        }
        self.earlier.push(text.clone());
        text
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn text(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes + 16);
        while out.len() < bytes {
            let r = self.next();
            match r % 29 {
                0 => out.push('\n'),
                1 => out.push_str(&format!("{:x}", r >> 20)),
                2 => out.push_str(&format!("{}", (r >> 40) % 10_000)),
                _ => out.push_str(VOCABULARY[(r >> 8) as usize % VOCABULARY.len()]),
            }
            out.push(' ');
        }
        out
    }
}

pub fn set_mtime(path: &Path, when: DateTime<Utc>) -> Result<()> {
    let f = File::options().write(true).open(path)?;
    f.set_modified(SystemTime::from(when))?;
    Ok(())
}

/// A home with these sessions and, when `with_index`, a matching thread index.
pub fn build(home: &Path, specs: &[SessionSpec], with_index: bool) -> Result<()> {
    fs::create_dir_all(home)?;
    fs::write(home.join("config.toml"), "model = \"gpt-5\"\n")?;
    let conn = if with_index {
        Some(create_index(home)?)
    } else {
        None
    };
    if let Some(conn) = &conn {
        conn.execute_batch("BEGIN")?;
    }
    for spec in specs {
        write_transcript(home, spec)?;
        if let Some(conn) = &conn {
            insert_row(conn, home, spec)?;
        }
    }
    if let Some(conn) = &conn {
        conn.execute_batch("COMMIT")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sessions_read_as_codex_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let specs = vec![
            SessionSpec::aged(1, 30.0, 5000),
            SessionSpec {
                archived: true,
                ..SessionSpec::aged(2, 40.0, 100)
            },
        ];
        build(dir.path(), &specs, true).unwrap();
        let home = crate::home::CodexHome {
            root: dir.path().to_path_buf(),
        };
        let (files, problems) = crate::home::sessions::scan(&home);
        assert!(problems.is_empty());
        assert_eq!(files.len(), 2);
        for f in &files {
            assert!(f.in_dated_folder, "{:?}", f.path);
            let meta = crate::home::sessions::read_session_meta(&f.path).unwrap();
            assert_eq!(Some(meta.id.as_str()), f.id());
        }
        assert!(files.iter().any(|f| f.size >= 5000));
        let ids: std::collections::HashSet<String> = (0..10_000).map(id_for).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
