//! A failure inside a command is settled inside that command: when an op cannot finish
//! (Codex holding its thread index mid-run), the command takes its own step back before it
//! exits and names the path, leaving nothing doubled and nothing for a later `recover`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn prepared_ops(store: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        store.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM ops WHERE state = 'prepared'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn wait_for(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the run never reached the pause");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn codex_holding_its_index_mid_compress_leaves_no_transcript_doubled_and_nothing_prepared() {
    let sb = Sandbox::with_sessions(&mixed_specs(12), true);
    let hashes = session_hashes(&sb.home);
    let index = sb.home.join("state_5.sqlite");
    let pause = sb.dir.path().join("paused");
    // Paused once every new file is written and journaled, before any is renamed into
    // place; the index lock is taken there, as Codex writing a turn would.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("codex-maint"))
        .env("HOME", sb.dir.path())
        .env("CODEX_HOME", &sb.home)
        .env_remove(codex_maint::failpoint::ENV_VAR)
        .env(
            codex_maint::failpoint::PAUSE_VAR,
            format!("recode-encoded={}", pause.display()),
        )
        .arg("--home")
        .arg(&sb.home)
        .arg("--store")
        .arg(&sb.store)
        .args([
            "--json",
            "archive",
            "--older-than",
            "10d",
            "--compress",
            "--yes",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&pause);
    let codex = rusqlite::Connection::open(&index).unwrap();
    codex.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();

    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "the run could not finish: {doc:#}"
    );
    let said = error_message(&doc);
    assert!(
        said.contains(&index.display().to_string()),
        "the message does not name the index: {said}"
    );
    // Checked while Codex still holds its index: the command settled its step by itself.
    assert_sessions_whole_and_consistent(&sb.home, &hashes);
    assert_eq!(prepared_ops(&sb.store), 0, "an op was left for `recover`");

    codex.execute_batch("ROLLBACK").unwrap();
    drop(codex);
    let verified = sb.json(&["verify"]);
    assert_eq!(verified.0, 0, "{:#}", verified.1);
    let recovered = sb.ok_json(&["recover"]);
    assert_eq!(
        recovered["data"]["recovered"],
        serde_json::json!([]),
        "{recovered:#}"
    );
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    assert_sessions_whole_and_consistent(&sb.home, &hashes);
}
