//! `inspect` writes nothing: every file of a home Codex itself wrote (databases, their
//! `-wal` and `-shm` included) keeps its bytes, mode and mtime, and no store is created.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use support::codex_cli;
use support::*;

/// Leaves a committed transaction in `db`'s WAL, not checkpointed into the main file.
fn leave_uncheckpointed_wal(db: &std::path::Path) {
    write_with_pending_wal(
        db,
        "CREATE TABLE IF NOT EXISTS pending(x); INSERT INTO pending VALUES (1);",
    );
    let wal = codex_maint::home::sqlite_read::wal_path(db);
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "a WAL with content is left behind"
    );
}

fn assert_inspect_changes_nothing(sb: &Sandbox) -> serde_json::Value {
    let before = tree_fingerprint(&sb.home);
    let doc = sb.ok_json(&["inspect"]);
    let text = sb.cmd().arg("inspect").output().unwrap();
    assert!(text.status.success());
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(
        diffs.is_empty(),
        "inspect changed the home:\n{}",
        diffs.join("\n")
    );
    assert!(!sb.store.exists(), "inspect created the store");
    doc
}

#[test]
fn inspect_changes_nothing_in_a_home_real_codex_wrote() {
    codex_cli::on_each_current(
        "inspect_changes_nothing_in_a_home_real_codex_wrote",
        |codex| {
            let real = codex_cli::real_home(codex, &["one", "two"]);
            let sb = &real.sb;
            leave_uncheckpointed_wal(&sb.home.join("goals_1.sqlite"));
            for name in ["state_5.sqlite", "logs_2.sqlite"] {
                assert!(sb.home.join(name).exists(), "real Codex wrote {name}");
            }
            let doc = assert_inspect_changes_nothing(sb);
            let data = &doc["data"];
            assert_eq!(data["sessions"]["active"]["count"], 2);
            assert_eq!(data["thread_index"]["state"], "understood");
            assert_eq!(data["thread_index"]["rows"], 2);
            for db in data["databases"].as_array().unwrap() {
                assert_eq!(db["integrity"], "ok", "{db:#}");
            }
            let goals = data["databases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["path"].as_str().unwrap().ends_with("goals_1.sqlite"))
                .unwrap();
            assert_eq!(
                goals["snapshot"]["kind"], "copied_with_wal",
                "the pending WAL was read, from a copy"
            );
        },
    );
}

#[test]
fn inspect_changes_nothing_in_a_generated_home_with_a_pending_wal() {
    let sb = Sandbox::with_sessions(&mixed_specs(12), true);
    leave_uncheckpointed_wal(&sb.home.join("state_5.sqlite"));
    let doc = assert_inspect_changes_nothing(&sb);
    assert_eq!(
        doc["data"]["thread_index"]["rows"], 12,
        "rows in the WAL are seen"
    );
}
