//! Shared by the integration tests: run the binary against a home and store in temporary
//! folders (never the machine's `~/.codex`), and observe homes and thread indexes.
#![allow(dead_code)]

pub mod codex_cli;
pub mod kill;
pub mod kill_home;
pub mod model_server;

use assert_cmd::Command;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codex_maint::testkit::fingerprint::{EntryState, tree_fingerprint, tree_fingerprint_filtered};
use codex_maint::testkit::synthetic_home::{SessionSpec, build};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub store: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("codex-home");
        let store = dir.path().join("maint-store");
        Sandbox { dir, home, store }
    }

    pub fn with_sessions(specs: &[SessionSpec], with_index: bool) -> Sandbox {
        let sb = Sandbox::new();
        build(&sb.home, specs, with_index).unwrap();
        sb
    }

    /// The binary with `--home` and `--store` set and an environment that cannot reach the
    /// real home: `HOME`, `CODEX_HOME` and `CODEX_MAINT_STORE` point into the sandbox.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.process())
    }

    /// `cmd` as a plain process, for a test that starts it and stops it itself.
    pub fn process(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("codex-maint"));
        cmd.env("HOME", self.dir.path())
            .env("CODEX_HOME", &self.home)
            .env("CODEX_MAINT_STORE", &self.store)
            .env_remove(codex_maint::failpoint::ENV_VAR)
            .env("CODEX_MAINT_LOCK_WAIT_MS", "500")
            .arg("--home")
            .arg(&self.home)
            .arg("--store")
            .arg(&self.store);
        cmd
    }

    /// Runs with `--json` and returns (exit code, parsed stdout).
    pub fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of {args:?} is not one JSON document ({e}):\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, doc)
    }

    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let (code, doc) = self.json(args);
        assert_eq!(code, 0, "{args:?} failed: {doc:#}");
        doc
    }

    /// Every entry of the home, Codex's databases and their `-wal`/`-shm` included, byte
    /// for byte: what "nothing changed" means.
    pub fn home_files(&self) -> BTreeMap<String, EntryState> {
        tree_fingerprint(&self.home)
    }

    /// Every file of the home except Codex's databases: for a change and its undo, after
    /// which SQLite has rewritten pages of the thread index even though every row is back;
    /// those rows are compared with `thread_rows` instead.
    pub fn home_files_except_databases(&self) -> BTreeMap<String, EntryState> {
        tree_fingerprint_filtered(&self.home, |rel| !rel.contains(".sqlite"))
    }

    /// After an undo: every file (bytes, mode, mtime; databases compared by their rows) and
    /// every thread row is as it was before the change.
    pub fn assert_back_to(
        &self,
        files_before: &BTreeMap<String, EntryState>,
        rows_before: &[(String, String, i64, Option<i64>, i64)],
        when: &str,
    ) {
        let diffs = codex_maint::testkit::fingerprint::differences(
            files_before,
            &self.home_files_except_databases(),
        );
        assert!(
            diffs.is_empty(),
            "{when}: home differs after undo:\n{}",
            diffs.join("\n")
        );
        assert_eq!(
            rows_before,
            self.thread_rows(),
            "{when}: thread rows differ"
        );
    }

    pub fn thread_rows(&self) -> Vec<(String, String, i64, Option<i64>, i64)> {
        thread_rows(&self.home)
    }
}

pub fn thread_rows(home: &Path) -> Vec<(String, String, i64, Option<i64>, i64)> {
    let conn = Connection::open(home.join("state_5.sqlite")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT id, rollout_path, archived, archived_at, updated_at FROM threads ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Every session exists exactly once, under `sessions/` or `archived_sessions/`, whole
/// (same hash as at the start), and its row says where it is.
pub fn assert_sessions_whole_and_consistent(
    home: &Path,
    original_hashes: &BTreeMap<String, String>,
) {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(home).follow_links(false) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = codex_maint::home::sessions::parse_rollout_name(&name) {
            assert!(
                seen.insert(n.id.clone(), entry.path().to_path_buf())
                    .is_none(),
                "{} exists twice",
                n.id
            );
        }
        assert!(
            !name.starts_with(codex_maint::fs_atomic::TEMP_PREFIX),
            "temporary file left: {}",
            entry.path().display()
        );
    }
    let retired = retired_in_sandbox_store(home);
    for (id, hash) in original_hashes {
        let Some(path) = seen.get(id) else {
            // Retired into the sandbox's store: whole when its transcript object (the plain
            // bytes, however the file lay) is the session's plain hash.
            let object = retired
                .get(id)
                .unwrap_or_else(|| panic!("session {id} is lost: neither in the home nor retired"));
            assert_eq!(object, hash, "retired session {id} is not whole");
            continue;
        };
        assert_eq!(&plain_hash(path), hash, "session {id} is not whole");
    }
    if home.join("state_5.sqlite").exists() {
        for (id, rollout_path, archived, _, _) in thread_rows(home) {
            let Some(path) = seen.get(&id) else { continue };
            assert_eq!(
                Path::new(&rollout_path),
                path.as_path(),
                "row of {id} points elsewhere"
            );
            let in_archive = path.parent().unwrap().ends_with("archived_sessions");
            assert_eq!(
                archived == 1,
                in_archive,
                "row of {id} says archived={archived}, file at {}",
                path.display()
            );
        }
    }
}

/// The sessions the store beside `home` (a sandbox's `maint-store`) holds retired: thread
/// id to transcript object.
fn retired_in_sandbox_store(home: &Path) -> BTreeMap<String, String> {
    let store = home.parent().unwrap().join("maint-store");
    match codex_maint::store::open_read_only(&store).unwrap() {
        Some(catalog) => catalog
            .retired_sessions()
            .unwrap()
            .into_iter()
            .map(|r| (r.thread_id, r.transcript_object))
            .collect(),
        None => BTreeMap::new(),
    }
}

/// The hash of a transcript's plain bytes, decoding a compressed one: a session is whole
/// when these match, whichever form it is stored in.
pub fn plain_hash(path: &Path) -> String {
    codex_maint::content_hash::hash_reader(codex_maint::zstd_stream::open_plain(path).unwrap())
        .unwrap()
}

pub fn session_hashes(home: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(home) {
        let entry = entry.unwrap();
        if let Some(n) =
            codex_maint::home::sessions::parse_rollout_name(&entry.file_name().to_string_lossy())
        {
            out.insert(n.id, plain_hash(entry.path()));
        }
    }
    out
}

/// A home of `n` sessions: mostly old, some recent, one pinned, one current (just written).
pub fn mixed_specs(n: u64) -> Vec<SessionSpec> {
    (0..n)
        .map(|i| {
            let age = match i % 5 {
                0 => 3.0,
                _ => 20.0 + i as f64,
            };
            let mut s = SessionSpec::aged(i, age, 1500 + (i as usize * 977) % 40_000);
            s.pinned = i == 7;
            s
        })
        .collect()
}

/// Runs git with a throwaway identity; panics with git's message on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sets every file's and folder's mtime under `root` to `days` ago.
pub fn age_tree(root: &Path, days: u64) {
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
    for e in walkdir::WalkDir::new(root)
        .contents_first(true)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            std::fs::File::options()
                .write(true)
                .open(e.path())
                .unwrap()
                .set_modified(when)
                .unwrap();
        } else if e.file_type().is_dir() {
            std::fs::File::open(e.path())
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }
}

/// A main repository with one commit, at `dir`.
pub fn init_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "init"]);
}

/// Registers `path` as a worktree of `repo` on a new branch `branch`.
pub fn add_worktree(repo: &Path, branch: &str, path: &Path) {
    git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            branch,
            path.to_str().unwrap(),
        ],
    );
}

/// The message of a refused or failed command's `--json` document.
pub fn error_message(doc: &serde_json::Value) -> &str {
    doc["error"]["message"].as_str().unwrap_or_default()
}

/// The strings of a JSON array, such as a report's `error.details` or `problems`.
pub fn texts(array: &serde_json::Value) -> Vec<&str> {
    array
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

/// Leaves a committed transaction in `db`'s WAL, not checkpointed into the main file.
/// Two daemon releases of 600 KB, `current` pointing at the newer: cleanup's releases
/// category moves the older one into the store.
pub fn write_two_releases(home: &Path) {
    let releases = home.join("packages/app-server-daemon/releases");
    for v in [
        "0.160.0-x86_64-unknown-linux-musl",
        "0.169.0-x86_64-unknown-linux-musl",
    ] {
        std::fs::create_dir_all(releases.join(v).join("bin")).unwrap();
        std::fs::write(
            releases.join(v).join("bin/codex"),
            format!("binary {v}\n").repeat(50_000),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(
        "releases/0.169.0-x86_64-unknown-linux-musl",
        home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
}

/// A 3.6 MB `log/codex-tui.log` and a `logs_2.sqlite` of 6,000 rows whose last writes
/// still sit in its `-wal`: what cleanup's log category rotates.
pub fn write_large_logs(home: &Path) {
    std::fs::create_dir_all(home.join("log")).unwrap();
    std::fs::write(
        home.join("log/codex-tui.log"),
        "line of log\n".repeat(300_000),
    )
    .unwrap();
    write_with_pending_wal(
        &home.join("logs_2.sqlite"),
        "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts INTEGER, level TEXT, target TEXT, feedback_log_body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
         INSERT INTO logs (ts, level, target, feedback_log_body) SELECT i, 'INFO', 'codex', printf('%.200c', 'x') FROM n;",
    );
}

pub fn write_with_pending_wal(db: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
}

/// A stand-in for a running Codex: `sleep` under the name `codex`, using `codex_home`.
pub fn fake_codex(sandbox: &Path, codex_home: &Path) -> std::process::Child {
    let bin = sandbox.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let codex = bin.join("codex");
    if !codex.exists() {
        let sleep = ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep");
        std::fs::copy(sleep, &codex).unwrap();
    }
    // A test thread forking at the moment the copy's file is still open for writing makes
    // exec fail with "text file busy" until that child has exec'd in turn: try again.
    let mut attempts = 0;
    let child = loop {
        match std::process::Command::new(&codex)
            .arg("60")
            .env("CODEX_HOME", codex_home)
            .spawn()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    std::thread::sleep(std::time::Duration::from_millis(150));
    child
}

/// Every row of every table of `conn`, as `table: v1|v2|...` text, each table's rows in the
/// order SQLite returns them (sorted when `sorted`): what two states of a database are
/// compared by when their pages may differ.
pub fn table_rows_text(conn: &rusqlite::Connection, sorted: bool) -> Vec<String> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut found: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(|r| format!("{t}: {}", r.unwrap()))
            .collect();
        if sorted {
            found.sort();
        }
        out.extend(found);
    }
    out
}

/// Runs `cmd` until the failure point `point` aborts it or, with `after_micros`, kills it
/// that long after it started: the two ways the store's kill tests stop a writer.
pub fn run_and_stop(
    cmd: &mut std::process::Command,
    point: &str,
    after_micros: Option<u64>,
) -> std::process::ExitStatus {
    match after_micros {
        None => cmd
            .env(codex_maint::failpoint::ENV_VAR, point)
            .status()
            .unwrap(),
        Some(micros) => {
            let mut child = cmd.spawn().unwrap();
            std::thread::sleep(std::time::Duration::from_micros(micros));
            let _ = child.kill();
            child.wait().unwrap()
        }
    }
}
