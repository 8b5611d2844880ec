//! Each safety rule of DESIGN.md and each bad input of the issue: a clear one-line error,
//! the documented exit code, and nothing changed.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use std::process::Command as StdCommand;
use support::*;

fn old_specs(n: u64) -> Vec<SessionSpec> {
    (0..n).map(|i| SessionSpec::aged(i, 30.0, 2500)).collect()
}

fn sleep_bin() -> &'static str {
    ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("sleep")
}

#[test]
fn a_running_codex_blocks_every_mutating_command_and_is_named() {
    let specs = old_specs(3);
    let sb = Sandbox::with_sessions(&specs, true);
    let doc = sb.ok_json(&["archive", &specs[0].id]);
    let op = doc["data"]["archived"][0]["op_id"]
        .as_i64()
        .unwrap()
        .to_string();
    let before = sb.home_files();
    let rows = sb.thread_rows();
    let mut codex = fake_codex(sb.dir.path(), &sb.home);
    for args in [
        vec!["archive", specs[1].id.as_str()],
        vec!["undo"],
        vec!["restore", op.as_str()],
        vec!["recover"],
    ] {
        let (code, doc) = sb.json(&args);
        assert_eq!(code, 3, "{args:?}: {doc:#}");
        let msg = error_message(&doc);
        assert!(msg.contains("Codex is running"), "{msg}");
        let detail = doc["error"]["details"][0].as_str().unwrap();
        assert!(detail.contains(&format!("pid {}", codex.id())), "{detail}");
        assert!(detail.contains("to stop"), "{detail}");
    }
    // Dry runs only read, so they still answer.
    sb.ok_json(&["archive", &specs[1].id, "--dry-run"]);
    assert_eq!(before, sb.home_files());
    assert_eq!(rows, sb.thread_rows());
    assert!(
        codex.try_wait().unwrap().is_none(),
        "the process was not killed"
    );
    codex.kill().unwrap();
    codex.wait().unwrap();
}

#[test]
fn a_codex_of_another_home_does_not_block() {
    let specs = old_specs(2);
    let sb = Sandbox::with_sessions(&specs, true);
    let elsewhere = sb.dir.path().join("another-home");
    let mut codex = fake_codex(sb.dir.path(), &elsewhere);
    sb.ok_json(&["archive", &specs[0].id]);
    codex.kill().unwrap();
    codex.wait().unwrap();
}

#[test]
fn the_app_server_daemon_pid_file_marks_codex_running() {
    let specs = old_specs(2);
    let sb = Sandbox::with_sessions(&specs, true);
    let mut daemon = StdCommand::new(sleep_bin())
        .arg("30")
        .env("CODEX_HOME", "/nowhere")
        .spawn()
        .unwrap();
    std::fs::create_dir_all(sb.home.join("app-server-daemon")).unwrap();
    std::fs::write(
        sb.home.join("app-server-daemon/daemon.pid"),
        format!("{{\"pid\": {}, \"started_at\": 1}}", daemon.id()),
    )
    .unwrap();
    let (code, doc) = sb.json(&["archive", &specs[0].id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        doc["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("daemon stop")
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    sb.ok_json(&["archive", &specs[0].id]);
}

#[test]
fn a_thread_with_a_held_writer_lock_is_current_and_never_moved() {
    use fs2::FileExt;
    let specs = old_specs(2);
    let sb = Sandbox::with_sessions(&specs, true);
    let locks = sb.home.join("thread-writer-locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lock = std::fs::File::create(locks.join(format!("{}.lock", specs[0].id))).unwrap();
    lock.lock_exclusive().unwrap();
    let (code, doc) = sb.json(&["archive", &specs[0].id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        doc["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("current")
    );
    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let moved: Vec<&str> = doc["data"]["archived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(moved, vec![specs[1].id.as_str()]);
}

#[test]
fn a_missing_home_is_a_usage_error() {
    let sb = Sandbox::new();
    let (code, doc) = sb.json(&["archive", "abc"]);
    assert_eq!(code, 2);
    assert!(error_message(&doc).contains("no Codex home"));
    assert!(!sb.store.exists());
}

#[test]
fn a_corrupt_thread_index_refuses_transcript_moves() {
    let specs = old_specs(3);
    let sb = Sandbox::with_sessions(&specs, true);
    let db = sb.home.join("state_5.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().skip(100).take(3000) {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let before = sb.home_files();
    let (code, doc) = sb.json(&["archive", "--older-than", "10d", "--yes"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("thread index"));
    assert_eq!(before, sb.home_files());
}

#[test]
fn an_index_without_the_needed_columns_is_not_guessed_at() {
    let specs = old_specs(2);
    let sb = Sandbox::with_sessions(&specs, false);
    let conn = rusqlite::Connection::open(sb.home.join("state_6.sqlite")).unwrap();
    conn.execute_batch("CREATE TABLE threads (id TEXT PRIMARY KEY, path TEXT)")
        .unwrap();
    drop(conn);
    let (code, doc) = sb.json(&["archive", &specs[0].id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("state_6.sqlite is not understood"));
}

#[test]
fn a_locked_thread_index_refuses_before_any_move() {
    let specs = old_specs(3);
    let sb = Sandbox::with_sessions(&specs, true);
    let conn = rusqlite::Connection::open(sb.home.join("state_5.sqlite")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; UPDATE threads SET title = title;")
        .unwrap();
    // Not the databases: hashing state_5.sqlite would open and close it in this process,
    // and closing any descriptor of a file drops this process's POSIX locks on it.
    let before = sb.home_files_except_databases();
    let (code, doc) = sb.json(&["archive", &specs[0].id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("locked"));
    assert_eq!(before, sb.home_files_except_databases());
    conn.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn an_occupied_destination_is_a_conflict_and_nothing_is_overwritten() {
    let specs = old_specs(3);
    let sb = Sandbox::with_sessions(&specs, true);
    std::fs::create_dir_all(sb.home.join("archived_sessions")).unwrap();
    let squatter = sb.home.join("archived_sessions").join(specs[1].file_name());
    std::fs::write(&squatter, "not the same session\n").unwrap();
    let before = sb.home_files();
    let (code, doc) = sb.json(&["archive", "--older-than", "10d", "--yes"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        doc["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("occupied")
    );
    assert_eq!(before, sb.home_files());
}

#[test]
fn a_second_writer_waits_briefly_then_refuses() {
    use fs2::FileExt;
    let specs = old_specs(2);
    let sb = Sandbox::with_sessions(&specs, true);
    // A store with its catalog: a lock file alone would be a store that lost its catalog.
    sb.ok_json(&["archive", &specs[1].id]);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(sb.store.join("lock"))
        .unwrap();
    lock.lock_exclusive().unwrap();
    let started = std::time::Instant::now();
    let (code, doc) = sb.json(&["archive", &specs[0].id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "it waited before refusing"
    );
    assert!(error_message(&doc).contains("another codex-maint"));
    FileExt::unlock(&lock).unwrap();
    sb.ok_json(&["archive", &specs[0].id]);
}

#[test]
fn a_catalog_failing_its_integrity_check_stops_writers_and_fails_verify() {
    let specs = old_specs(40);
    let sb = Sandbox::with_sessions(&specs, true);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let catalog = sb.store.join("catalog.sqlite");
    let conn = rusqlite::Connection::open(&catalog).unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&catalog).unwrap();
    // Scribble over the middle of the ops table's pages, past the schema page.
    let start = page_size as usize * 3;
    for b in bytes.iter_mut().skip(start).take(page_size as usize) {
        *b ^= 0xa5;
    }
    std::fs::write(&catalog, &bytes).unwrap();
    let before = sb.home_files();
    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("catalog"));
    assert_eq!(before, sb.home_files());
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
}

#[test]
fn verify_finds_an_altered_blob_and_a_missing_archived_file() {
    let specs = old_specs(3);
    let sb = Sandbox::with_sessions(&specs, true);
    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let store = codex_maint::store::Store::open_for_write(&sb.store).unwrap();
    let blob = store
        .blobs()
        .put_bytes(b"backup bytes that must not change")
        .unwrap();
    store
        .catalog
        .record_blob(&blob.hash, blob.size, blob.stored_size)
        .unwrap();
    drop(store);
    assert_eq!(sb.json(&["verify"]).0, 0);

    let blob_path = codex_maint::store::blobs::BlobStore::new(&sb.store).path_of(&blob.hash);
    std::fs::write(&blob_path, zstd::encode_all(&b"forged"[..], 3).unwrap()).unwrap();
    std::fs::remove_file(doc["data"]["archived"][0]["destination"].as_str().unwrap()).unwrap();
    let store_before = codex_maint::testkit::fingerprint::tree_fingerprint(&sb.store);
    let home_before = sb.home_files();
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
    let problems: Vec<&str> = texts(&doc["data"]["problems"]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&blob.hash) && p.contains("altered")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("missing")),
        "{problems:?}"
    );
    assert_eq!(
        home_before,
        sb.home_files(),
        "verify never writes in the home"
    );
    let store_after = codex_maint::testkit::fingerprint::tree_fingerprint(&sb.store);
    let changed: Vec<String> =
        codex_maint::testkit::fingerprint::differences(&store_before, &store_after)
            .into_iter()
            .filter(|d| !d.contains("catalog.sqlite-shm"))
            .collect();
    assert!(
        changed.is_empty(),
        "verify never writes in the store: {changed:?}"
    );
}

#[test]
fn verify_and_log_without_a_store_create_nothing() {
    let sb = Sandbox::with_sessions(&old_specs(1), true);
    let before = sb.home_files();
    sb.ok_json(&["verify"]);
    sb.ok_json(&["log"]);
    assert!(!sb.store.exists());
    assert_eq!(before, sb.home_files());
}

#[test]
fn a_store_inside_the_home_is_refused() {
    let specs = old_specs(1);
    let sb = Sandbox::with_sessions(&specs, true);
    let out = assert_cmd::Command::cargo_bin("codex-maint")
        .unwrap()
        .env("HOME", sb.dir.path())
        .env_remove("CODEX_MAINT_STORE")
        .arg("--home")
        .arg(&sb.home)
        .arg("--store")
        .arg(sb.home.join("maint"))
        .args(["archive", &specs[0].id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is inside the Codex home"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sb.home.join("maint").exists());
}
