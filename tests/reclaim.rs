//! Cleanup's `reclaim`: the free pages of Codex's thread history and log databases given
//! back while Codex is closed, every row the same, undoable to the file, never over rows
//! Codex wrote since; a dry run changes no byte (`-wal`/`-shm` included); a crash at any
//! step recovers; Codex running refuses.

mod support;

use codex_maint::failpoint::ENV_VAR;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use support::*;

const HISTORY: &str = "thread_history_1.sqlite";
const LOGS: &str = "logs_2.sqlite";

/// A thread history (auto_vacuum incremental, as Codex makes it) of 4,000 items of 4 KB,
/// 3,000 of them deleted, the last deletes still in its `-wal`; and a log database without
/// auto_vacuum, most of its rows deleted: both over the threshold.
fn home_with_free_pages() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::create_dir_all(&sb.home).unwrap();
    std::fs::write(sb.home.join("config.toml"), "model = \"x\"\n").unwrap();
    let history = sb.home.join(HISTORY);
    {
        let conn = Connection::open(&history).unwrap();
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;
             CREATE TABLE thread_items (thread_id TEXT NOT NULL, ordinal INTEGER NOT NULL, item_json TEXT NOT NULL, PRIMARY KEY (thread_id, ordinal));
             CREATE TABLE thread_turns (thread_id TEXT, turn INTEGER, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
             INSERT INTO thread_items SELECT 'thread-' || (i % 8), i, printf('{\"text\":\"%.4000c\"}', 'a') FROM n;
             INSERT INTO thread_turns VALUES ('thread-1', 1, 'one'), ('thread-2', 1, NULL);",
        )
        .unwrap();
    }
    write_with_pending_wal(
        &history,
        "DELETE FROM thread_items WHERE thread_id IN ('thread-0','thread-2','thread-4','thread-6','thread-3','thread-5');",
    );
    let logs = sb.home.join(LOGS);
    {
        let conn = Connection::open(&logs).unwrap();
        conn.execute_batch(
            "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts INTEGER, level TEXT, feedback_log_body TEXT, thread_id TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO logs (ts, level, feedback_log_body) SELECT i, 'INFO', printf('%.2000c', 'x') FROM n;
             DELETE FROM logs WHERE id > 500;",
        )
        .unwrap();
    }
    sb
}

/// Every row of every table, in key order, as text: compared between two states.
fn rows(db: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let copy = copy_trio(db, dir.path());
    let conn = Connection::open(&copy).unwrap();
    support::table_rows_text(&conn, true)
}

/// A copy of the database with its `-wal`, read without touching the original.
fn copy_trio(db: &Path, into: &Path) -> PathBuf {
    let copy = into.join(db.file_name().unwrap());
    std::fs::copy(db, &copy).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", copy.display())).unwrap();
    }
    copy
}

/// The file as the reclaim keeps it: the database with its WAL checkpointed into it.
fn checkpointed_bytes(db: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let copy = copy_trio(db, dir.path());
    let conn = Connection::open(&copy).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    std::fs::read(&copy).unwrap()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn wal_and_shm(db: &Path) -> [PathBuf; 2] {
    [
        PathBuf::from(format!("{}-wal", db.display())),
        PathBuf::from(format!("{}-shm", db.display())),
    ]
}

fn reviewed_plan(sb: &Sandbox) -> String {
    let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "reclaim"]);
    plan["data"]["plan"]["id"].as_str().unwrap().to_string()
}

#[test]
fn reclaim_shrinks_both_databases_keeps_every_row_and_undo_puts_the_files_back() {
    let sb = home_with_free_pages();
    let (history, logs) = (sb.home.join(HISTORY), sb.home.join(LOGS));
    assert!(
        wal_and_shm(&history)[0].exists(),
        "the test needs a pending WAL"
    );
    let rows_before = (rows(&history), rows(&logs));
    let kept_bytes = (checkpointed_bytes(&history), checkpointed_bytes(&logs));
    let sizes_before = (
        size(&history) + size(&wal_and_shm(&history)[0]),
        size(&logs),
    );

    // The dry run changes no byte: databases, -wal and -shm included.
    let files_before = sb.home_files();
    let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "reclaim"]);
    assert_eq!(
        files_before,
        sb.home_files(),
        "the dry run changed the home"
    );
    let text = plan.to_string();
    assert!(
        text.contains("over the threshold (at least 25% and 8.0 MiB free)"),
        "{plan:#}"
    );
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();

    let done = sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
    let completed = done.to_string();
    assert!(
        completed.contains("reclaimed thread_history_1.sqlite:"),
        "{done:#}"
    );
    assert!(completed.contains("by incremental_vacuum"), "{done:#}");
    assert!(completed.contains("reclaimed logs_2.sqlite:"), "{done:#}");
    assert!(completed.contains("by vacuum"), "{done:#}");
    assert!(
        size(&history) * 2 < sizes_before.0 && size(&logs) * 2 < sizes_before.1,
        "both shrink: {} -> {}, {} -> {}",
        sizes_before.0,
        size(&history),
        sizes_before.1,
        size(&logs)
    );
    for db in [&history, &logs] {
        for extra in wal_and_shm(db) {
            assert!(!extra.exists(), "{} is left", extra.display());
        }
        let ok: String = Connection::open(db)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
    assert_eq!(rows_before, (rows(&history), rows(&logs)));
    let mode: i64 = Connection::open(&history)
        .unwrap()
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        mode, 2,
        "the thread history stays incremental, as Codex made it"
    );
    let journal: String = Connection::open(&history)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal", "Codex finds the journal mode it left");
    assert_eq!(sb.json(&["verify"]).0, 0);

    sb.ok_json(&["undo"]);
    assert_eq!(std::fs::read(&history).unwrap(), kept_bytes.0);
    assert_eq!(std::fs::read(&logs).unwrap(), kept_bytes.1);
    assert_eq!(rows_before, (rows(&history), rows(&logs)));
    assert_eq!(sb.json(&["verify"]).0, 0);
}

#[test]
fn inspect_counts_what_reclaim_gives_back_in_its_headline() {
    let sb = home_with_free_pages();
    let doc = sb.ok_json(&["inspect"]);
    let f = &doc["data"]["frees"]["database_free_pages"];
    assert_eq!(f["reclaimed"], serde_json::json!([LOGS, HISTORY]), "{f:#}");
    let reclaimed = f["reclaimed_bytes"].as_u64().unwrap();
    assert!(reclaimed > 16 << 20, "{f:#}");
    assert!(doc["data"]["frees"]["cleanup_total"].as_u64().unwrap() >= reclaimed);
    let text = doc.to_string();
    assert!(
        text.contains("reclaim: frees about")
            && text.contains("vacuuming logs_2.sqlite, thread_history_1.sqlite"),
        "{doc:#}"
    );
    assert!(
        text.contains("codex-maint cleanup --dry-run --only reclaim"),
        "{doc:#}"
    );
}

#[test]
fn undo_leaves_a_reclaimed_database_codex_wrote_to_since_and_takes_back_the_rest() {
    let sb = home_with_free_pages();
    let (history, logs) = (sb.home.join(HISTORY), sb.home.join(LOGS));
    let kept_logs = checkpointed_bytes(&logs);
    let id = reviewed_plan(&sb);
    sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
    // Codex writes a row into the thread history after the reclaim.
    Connection::open(&history)
        .unwrap()
        .execute(
            "INSERT INTO thread_turns VALUES ('thread-9', 1, 'written by Codex since')",
            [],
        )
        .unwrap();
    let size_now = size(&history);

    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        doc.to_string().contains("taken over by Codex"),
        "the reclaim Codex wrote over is said left as it is: {doc:#}"
    );
    let turns: i64 = Connection::open(&history)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM thread_turns WHERE thread_id = 'thread-9'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(turns, 1, "the row Codex wrote is still there");
    assert_eq!(
        size(&history),
        size_now,
        "the thread history was not put back"
    );
    assert_eq!(
        std::fs::read(&logs).unwrap(),
        kept_logs,
        "the rest went back"
    );
}

#[test]
fn a_reviewed_reclaim_holds_and_frees_what_is_free_when_it_runs() {
    let sb = home_with_free_pages();
    let history = sb.home.join(HISTORY);
    let id = reviewed_plan(&sb);
    // Between review and apply, rows leave the thread history (as a retire earlier in the
    // same run would take them out) and its file is written: more pages are free now.
    Connection::open(&history)
        .unwrap()
        .execute("DELETE FROM thread_items WHERE thread_id = 'thread-1'", [])
        .unwrap();
    let rows_before = rows(&history);
    let done = sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
    assert_eq!(
        done["data"]["skipped_no_longer_hold"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "{done:#}"
    );
    let free: i64 = Connection::open(&history)
        .unwrap()
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0, "what was free when it ran was reclaimed");
    assert_eq!(rows_before, rows(&history));
    // 1,000 items of 4 KB are left of the 4,000: a little over 4 MB.
    assert!(size(&history) < 6 << 20, "{}", size(&history));
}

#[test]
fn reclaim_refuses_while_codex_runs_and_changes_nothing() {
    let sb = home_with_free_pages();
    let id = reviewed_plan(&sb);
    let files_before = sb.home_files();
    let mut codex = fake_codex(sb.dir.path(), &sb.home);
    let (code, doc) = sb.json(&["cleanup", "--yes", "--plan", &id]);
    let _ = codex.kill();
    let _ = codex.wait();
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("Codex is running"), "{doc:#}");
    assert_eq!(files_before, sb.home_files());
}

fn crash(sb: &Sandbox, point: &str, args: &[&str]) {
    let out = sb.cmd().env(ENV_VAR, point).args(args).output().unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("failpoint"),
        "{point} was never reached: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_recovers(sb: &Sandbox, point: &str, rows_before: &(Vec<String>, Vec<String>)) {
    let doc = sb.ok_json(&["recover"]);
    for r in doc["data"]["recovered"].as_array().unwrap() {
        assert_ne!(r["result"]["outcome"], "stuck", "{point}: {r:#}");
    }
    let (history, logs) = (sb.home.join(HISTORY), sb.home.join(LOGS));
    assert_eq!(
        *rows_before,
        (rows(&history), rows(&logs)),
        "{point}: rows after recovery"
    );
    assert_eq!(sb.json(&["verify"]).0, 0, "{point}: verify after recovery");
}

#[test]
fn a_reclaim_or_its_undo_killed_at_any_step_recovers_with_every_row() {
    let forward = [
        "op-prepared",
        "reclaim-kept",
        "reclaim-vacuumed",
        "op-applied",
        "reclaim-vacuumed@2",
    ];
    for point in forward {
        let sb = home_with_free_pages();
        let rows_before = (rows(&sb.home.join(HISTORY)), rows(&sb.home.join(LOGS)));
        let id = reviewed_plan(&sb);
        crash(&sb, point, &["cleanup", "--yes", "--plan", &id]);
        assert_recovers(&sb, point, &rows_before);
        let log = sb.ok_json(&["log"]);
        if log["data"]["runs"][0]["op_counts"]["applied"]
            .as_i64()
            .unwrap()
            > 0
        {
            sb.ok_json(&["undo", "--run", "1"]);
        }
        assert_recovers(&sb, point, &rows_before);
    }
    let backward = [
        "op-prepared",
        "reclaim-kept",
        "restore-temp-written",
        "reclaim-put-back-written",
        "file-moved",
        "op-applied",
        "file-moved@2",
    ];
    for point in backward {
        let sb = home_with_free_pages();
        let history = sb.home.join(HISTORY);
        let rows_before = (rows(&history), rows(&sb.home.join(LOGS)));
        let kept = checkpointed_bytes(&history);
        let id = reviewed_plan(&sb);
        sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
        crash(&sb, point, &["undo", "--run", "1"]);
        assert_recovers(&sb, point, &rows_before);
        // Whatever the crash left, the undo can be finished, to the kept file.
        let (code, doc) = sb.json(&["undo", "--run", "1"]);
        assert!(code == 0, "{point}: {doc:#}");
        assert_eq!(std::fs::read(&history).unwrap(), kept, "{point}");
        assert_recovers(&sb, point, &rows_before);
    }
}
