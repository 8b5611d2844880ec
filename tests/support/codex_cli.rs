//! The real Codex CLI (npm `@openai/codex`), when present: where it is, `codex exec` to
//! write real sessions, and `codex app-server` to ask Codex what it sees.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One current Codex release, installed.
pub struct Codex {
    pub version: &'static str,
    pub bin: PathBuf,
}

/// Each current Codex (`CURRENT_CODEX_VERSIONS`) that is installed. A missing one is said
/// skipped, plainly; with `CODEX_MAINT_REQUIRE_CODEX` set it fails the test instead.
pub fn require(test: &str) -> Vec<Codex> {
    codex_maint::testkit::CURRENT_CODEX_VERSIONS
        .into_iter()
        .filter_map(|version| require_version(test, version).map(|bin| Codex { version, bin }))
        .collect()
}

/// Runs `body` once for each current Codex, in turn. A failure on one version does not
/// hide the others: each is caught, and the test then fails naming every version that
/// failed with its message.
pub fn on_each_current(test: &str, body: impl Fn(&Codex)) {
    let mut failures = Vec::new();
    for codex in require(test) {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&codex)));
        if let Err(panic) = run {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("on Codex {}: {message}", codex.version));
        }
    }
    assert!(failures.is_empty(), "{test}:\n{}", failures.join("\n"));
}

pub fn codex(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("CODEX_HOME", home)
        .env_remove("OPENAI_API_KEY")
        .env("RUST_LOG", "error");
    cmd
}

/// Linux refuses a single argument over 128 KiB; a longer prompt goes through stdin.
const LONGEST_PROMPT_ARGUMENT: usize = 64 << 10;

/// Runs one non-interactive session and returns its thread id.
pub fn exec(bin: &Path, home: &Path, workdir: &Path, prompt: &str) -> String {
    let mut cmd = codex(bin, home);
    cmd.current_dir(workdir)
        .args(["exec", "--skip-git-repo-check"]);
    let out = if prompt.len() <= LONGEST_PROMPT_ARGUMENT {
        cmd.arg(prompt).stdin(Stdio::null()).output().unwrap()
    } else {
        let mut child = cmd
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let text = prompt.to_string();
        let feeder = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        let fed = feeder.join().unwrap();
        // A Codex that failed may stop reading its prompt; its output below says why.
        if out.status.success() {
            fed.unwrap();
        }
        out
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "codex exec failed:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("session id: "))
        .unwrap_or_else(|| panic!("no session id in codex exec output:\n{text}"))
        .trim()
        .to_string()
}

/// A `codex app-server` over stdio, for `thread/list` and `thread/read`. Dropped, it is
/// closed and waited for, so no Codex process outlives the question.
pub struct AppServer {
    child: std::process::Child,
    reader: BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl AppServer {
    pub fn start(bin: &Path, home: &Path) -> AppServer {
        let mut child = codex(bin, home)
            .arg("app-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut server = AppServer {
            child,
            reader,
            next_id: 1,
        };
        server
            .request(
                "initialize",
                json!({"clientInfo": {"name": "codex-maint-tests", "version": "0"}}),
            )
            .unwrap();
        server.notify("initialized");
        server
    }

    fn notify(&mut self, method: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({"method": method})).unwrap();
    }

    /// The `result`, or the `error` as `Err`.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "{}",
            json!({"id": id, "method": method, "params": params})
        )
        .unwrap();
        stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "app-server closed while answering {method}"
            );
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg.get("id").and_then(Value::as_u64) == Some(id) {
                return match msg.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(msg["result"].clone()),
                };
            }
        }
    }

    /// Ids Codex lists as archived (or not), across every source kind.
    pub fn list(&mut self, archived: bool) -> Vec<String> {
        let kinds = ["cli", "vscode", "exec", "appServer"];
        let result = self
            .request(
                "thread/list",
                json!({"archived": archived, "sourceKinds": kinds, "limit": 200}),
            )
            .expect("thread/list");
        result["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Ids Codex lists the way its resume picker asks: source kinds and the configured
    /// model provider, which makes Codex scan the files (and meet its 10,000-file cap)
    /// rather than read its database.
    pub fn list_as_picker(&mut self, archived: bool, provider: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let result = self
                .request(
                    "thread/list",
                    json!({"archived": archived, "sourceKinds": ["cli", "vscode", "exec", "appServer"],
                           "modelProviders": [provider], "limit": 200, "cursor": cursor}),
                )
                .expect("thread/list");
            ids.extend(
                result["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_string()),
            );
            cursor = result["nextCursor"].clone();
            if cursor.is_null() {
                return ids;
            }
        }
    }

    /// The turns Codex reads for a thread, item by item: what must be the same after the
    /// thread has been out of the home and back.
    pub fn turns(&mut self, id: &str) -> Value {
        let read = self
            .read(id)
            .unwrap_or_else(|e| panic!("thread/read {id}: {e}"));
        read["thread"]["turns"].clone()
    }

    pub fn read(&mut self, id: &str) -> Result<Value, Value> {
        self.request("thread/read", json!({"threadId": id, "includeTurns": true}))
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sandbox whose home the real CLI wrote, talking to a stand-in model server that stays
/// up for as long as this lives (later `codex exec` calls need it).
pub struct RealHome {
    pub bin: PathBuf,
    pub server: super::model_server::ModelServer,
    pub sb: super::Sandbox,
    pub home: PathBuf,
    pub ids: Vec<String>,
}

/// `build_home` by `codex` in a fresh sandbox, one session per prompt.
pub fn real_home(codex: &Codex, prompts: &[&str]) -> RealHome {
    let server = super::model_server::ModelServer::start();
    let sb = super::Sandbox::new();
    let (home, ids) = build_home(&codex.bin, &server.config_toml(), sb.dir.path(), prompts);
    RealHome {
        bin: codex.bin.clone(),
        server,
        sb,
        home,
        ids,
    }
}

/// A Codex home written by the real CLI: `prompts.len()` sessions, then aged 40 days
/// (file mtimes) so that codex-maint's "current" guard does not apply to them.
pub fn build_home(
    bin: &Path,
    server_config: &str,
    root: &Path,
    prompts: &[&str],
) -> (PathBuf, Vec<String>) {
    let home = root.join("codex-home");
    let work = root.join("work");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(home.join("config.toml"), server_config).unwrap();
    let ids: Vec<String> = prompts.iter().map(|p| exec(bin, &home, &work, p)).collect();
    age_transcripts(&home, 40);
    (home, ids)
}

/// Makes the sessions look last active `days` ago: file mtimes, and the thread rows'
/// `updated_at` (Codex's triggers keep the `_ms` twins in step).
pub fn age_transcripts(home: &Path, days: u64) {
    let db = home.join("state_5.sqlite");
    if db.exists() {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "UPDATE threads SET updated_at = updated_at - ?1",
            [days as i64 * 86_400],
        )
        .unwrap();
    }
    super::age_tree(&home.join("sessions"), days);
}

/// `codex doctor --json`'s verdict on whether rollout files and the thread index agree.
pub fn rollout_db_parity(bin: &Path, home: &Path) -> Value {
    let out = codex(bin, home)
        .args(["doctor", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "codex doctor --json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    doc["checks"]["state.rollout_db_parity"].clone()
}

/// A Codex installed in the cache, current or older, or says plainly that the test is
/// skipped (and fails it when CI requires every real-Codex test to run).
pub fn require_version(test: &str, version: &str) -> Option<PathBuf> {
    let found = codex_maint::testkit::installed_codex_version(version);
    if found.is_none() && std::env::var_os("CODEX_MAINT_REQUIRE_CODEX").is_some() {
        panic!("{test}: CODEX_MAINT_REQUIRE_CODEX is set but Codex {version} is not installed");
    }
    if found.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: Codex {version} is not installed (run .ci/run, which installs it)"
        );
    }
    found
}

/// Codex's doctor must find the transcripts and the thread index in agreement.
pub fn assert_parity_ok(bin: &Path, home: &Path, when: &str) {
    let parity = rollout_db_parity(bin, home);
    assert_eq!(
        parity["status"], "ok",
        "codex doctor after {when}: {parity:#}"
    );
}

/// Codex lists each of `active` as active only, and each of `archived` as archived only.
pub fn assert_listed(bin: &Path, home: &Path, active: &[String], archived: &[String], when: &str) {
    let mut app = AppServer::start(bin, home);
    let listed_active = app.list(false);
    let listed_archived = app.list(true);
    for id in active {
        assert!(
            listed_active.contains(id) && !listed_archived.contains(id),
            "after {when}, Codex lists {id} as active: active {listed_active:?}, archived {listed_archived:?}"
        );
    }
    for id in archived {
        assert!(
            listed_archived.contains(id) && !listed_active.contains(id),
            "after {when}, Codex lists {id} as archived: active {listed_active:?}, archived {listed_archived:?}"
        );
    }
}

/// The transcript of a thread, wherever it is in the home.
pub fn transcript_of(home: &Path, id: &str) -> PathBuf {
    let mut found = Vec::new();
    for root in ["sessions", "archived_sessions"] {
        let mut stack = vec![home.join(root)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().contains(id) {
                    found.push(p);
                }
            }
        }
    }
    assert_eq!(found.len(), 1, "thread {id} has one transcript: {found:?}");
    found.remove(0)
}
