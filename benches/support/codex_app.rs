//! The real Codex as the benchmarks ask it: `codex app-server` over stdio for
//! `thread/list` (paged, timed), and `codex doctor --json` for the rollout/index parity.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

/// Codex 0.169 stops a `thread/list` (and its doctor's scan) after this many rollout files.
pub const SCAN_CAP: u64 = 10_000;

pub fn codex(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("CODEX_HOME", home)
        .env_remove("OPENAI_API_KEY")
        .env("RUST_LOG", "error");
    cmd
}

pub struct AppServer {
    child: Child,
    reader: BufReader<ChildStdout>,
    next_id: u64,
}

/// One full listing: how many threads, how long the first page took (what a resume
/// picker waits for) and how long all pages took.
pub struct Listing {
    pub threads: usize,
    pub first_page_secs: f64,
    pub all_secs: f64,
}

impl AppServer {
    pub fn start(bin: &Path, home: &Path) -> AppServer {
        let mut child = codex(bin, home)
            .arg("app-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("codex app-server starts");
        let reader = BufReader::new(child.stdout.take().expect("piped"));
        let mut server = AppServer {
            child,
            reader,
            next_id: 1,
        };
        server.request(
            "initialize",
            json!({"clientInfo": {"name": "codex-maint-bench", "version": "0"}}),
        );
        let stdin = server.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "{}", json!({"method": "initialized"})).expect("write");
        server
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(
            stdin,
            "{}",
            json!({"id": id, "method": method, "params": params})
        )
        .expect("write");
        stdin.flush().expect("flush");
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).expect("read") > 0,
                "codex app-server closed while answering {method}"
            );
            let msg: Value = serde_json::from_str(&line).expect("JSON");
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(e) = msg.get("error") {
                    panic!("{method}: {e}");
                }
                return msg["result"].clone();
            }
        }
    }

    /// Every thread Codex lists as archived (or not), page by page as a client pages.
    pub fn list_all(&mut self, archived: bool, page: u64) -> Listing {
        self.list_filtered(archived, page, None)
    }

    /// As the resume picker asks: with the configured model provider too, which makes
    /// Codex scan the files (and meet its 10,000-file cap) instead of its database.
    pub fn list_as_picker(&mut self, archived: bool, provider: &str) -> Listing {
        self.list_filtered(archived, 200, Some(provider))
    }

    fn list_filtered(&mut self, archived: bool, page: u64, provider: Option<&str>) -> Listing {
        let started = Instant::now();
        let mut first_page_secs = None;
        let mut cursor: Option<String> = None;
        let mut threads = 0;
        loop {
            let mut params = json!({"archived": archived, "limit": page,
                "sourceKinds": ["cli", "vscode", "exec", "appServer"]});
            if let Some(c) = &cursor {
                params["cursor"] = json!(c);
            }
            if let Some(p) = provider {
                params["modelProviders"] = json!([p]);
            }
            let result = self.request("thread/list", params);
            first_page_secs.get_or_insert(started.elapsed().as_secs_f64());
            threads += result["data"].as_array().map_or(0, Vec::len);
            match result["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        Listing {
            threads,
            first_page_secs: first_page_secs.unwrap_or(0.0),
            all_secs: started.elapsed().as_secs_f64(),
        }
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Real Codex makes its databases (the thread index with its full schema) on first use;
/// any command does it, even one that then fails, as archiving an unknown id does. The
/// generator then fills them, so Codex lists and opens the generated threads.
pub fn create_databases(bin: &Path, home: &Path) {
    std::fs::create_dir_all(home).expect("home");
    let _ = codex(bin, home)
        .args(["archive", "00000000-0000-7000-8000-000000000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        home.join("state_5.sqlite").exists(),
        "the real Codex did not create its thread index in {}",
        home.display()
    );
}

/// `codex doctor --json`'s `state.rollout_db_parity`: its status, and when it is not
/// `ok`, the counts behind it (above 10,000 files Codex's scan stops and says `warning`
/// whatever it found; the missing, duplicate and stale counts say whether it found drift).
pub fn parity(bin: &Path, home: &Path) -> String {
    let out = codex(bin, home)
        .args(["doctor", "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("codex doctor runs");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let check = &doc["checks"]["state.rollout_db_parity"];
    let status = check["status"].as_str().unwrap_or("no answer").to_string();
    if status == "ok" {
        return status;
    }
    let detail = |key: &str| check["details"][key].as_str().unwrap_or("?").to_string();
    format!(
        "{status} (scan cap reached: {}; missing active rows {}, missing archived rows {}, duplicate ids {}, malformed names {})",
        detail("rollout DB scan cap reached"),
        detail("rollout DB missing active rows"),
        detail("rollout DB missing archived rows"),
        detail("rollout DB duplicate rollout thread ids"),
        detail("rollout DB malformed file names"),
    )
}
