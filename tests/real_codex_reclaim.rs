//! Against the real Codex CLI (0.169 and the newest): `codex delete` of a large session
//! leaves `thread_history_1.sqlite` at its size, its pages free (openai/codex#45231);
//! `cleanup --only reclaim` gives them back, Codex's doctor still finds index and
//! transcripts in agreement, every other session reads with the same turns, and undo puts
//! the file back. Skipped, with a message, when the CLI is not installed.

mod support;

use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;
use support::codex_cli::{self, AppServer};

fn turns_of(bin: &Path, home: &Path, ids: &[String]) -> Vec<Value> {
    let mut app = AppServer::start(bin, home);
    ids.iter()
        .map(|id| {
            let read = app.read(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            read["thread"]["turns"].clone()
        })
        .collect()
}

/// One more turn of thread `id`, its prompt read from stdin.
fn resume(bin: &Path, home: &Path, work: &Path, id: &str, prompt: &str) {
    use std::io::Write;
    let mut child = codex_cli::codex(bin, home)
        .current_dir(work)
        .args(["exec", "--skip-git-repo-check", "resume", id, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = prompt.to_string();
    let feeder = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    assert!(
        out.status.success(),
        "codex exec resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn file_and_wal(db: &Path) -> u64 {
    let wal = format!("{}-wal", db.display());
    [db.to_path_buf(), wal.into()]
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Every row of every table of the thread history, in rowid order: what undo must give back.
fn history_rows(db: &Path) -> Vec<String> {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    support::table_rows_text(&conn, false)
}

#[test]
fn reclaim_gives_back_what_codex_delete_left_and_codex_reads_every_other_session() {
    codex_cli::on_each_current(
        "reclaim_gives_back_what_codex_delete_left_and_codex_reads_every_other_session",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server: _server,
                sb,
                home,
                ids,
            } = codex_cli::real_home(codex, &["one", "two"]);
            let work = sb.dir.path().join("work");
            // Ten turns each pasting a 1 MB log (Codex takes at most 1 MiB a turn): a session
            // whose items weigh 10 MB in the history.
            let pasted = "a line of a pasted build log, kept in the history\n".repeat(20_000);
            let big = codex_cli::exec(&bin, &home, &work, &pasted);
            for _ in 1..10 {
                resume(&bin, &home, &work, &big, &pasted);
            }
            let history = home.join("thread_history_1.sqlite");
            let turns_before = turns_of(&bin, &home, &ids);
            let out = codex_cli::codex(&bin, &home)
                .args(["delete", "--force", &big])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "codex delete: {out:?}");
            let bytes_before = file_and_wal(&history);
            let rows_before = history_rows(&history);
            assert!(
                rows_before.iter().all(|r| !r.contains(&big)),
                "codex delete took the thread's rows"
            );

            let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "reclaim"]);
            assert!(
                plan.to_string()
                    .contains("will reclaim the free pages of thread_history_1.sqlite"),
                "{plan:#}"
            );
            let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
            let done = sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
            let bytes_after = file_and_wal(&history);
            eprintln!(
                "Codex {}: thread_history_1.sqlite {bytes_before} -> {bytes_after} bytes",
                codex.version
            );
            assert!(
                bytes_after * 4 < bytes_before,
                "{bytes_before} -> {bytes_after}: {done:#}"
            );
            assert_eq!(rows_before, history_rows(&history));
            codex_cli::assert_parity_ok(&bin, &home, "reclaim");
            assert_eq!(turns_before, turns_of(&bin, &home, &ids), "after reclaim");
            assert_eq!(sb.json(&["verify"]).0, 0);

            sb.ok_json(&["undo"]);
            assert!(file_and_wal(&history) * 4 > bytes_before * 3);
            assert_eq!(rows_before, history_rows(&history));
            codex_cli::assert_parity_ok(&bin, &home, "undo of the reclaim");
            assert_eq!(turns_before, turns_of(&bin, &home, &ids), "after undo");
        },
    );
}
