//! What `inspect` says of the parts of a home Codex stops showing or never shrinks: folders
//! at or over the 10,000 files Codex lists, with what it no longer lists; and the weight of
//! the thread history by the state of each thread.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use rusqlite::Connection;
use support::*;

/// `n` empty transcripts named as Codex names them, in `dir`.
fn empty_transcripts(dir: &std::path::Path, n: usize, first: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in first..first + n {
        let name = format!("rollout-2026-01-01T00-00-00-00000000-0000-7000-8000-{i:012x}.jsonl");
        std::fs::File::create(dir.join(name)).unwrap();
    }
}

#[test]
fn inspect_warns_at_ten_thousand_files_and_says_what_codex_no_longer_lists() {
    let sb = Sandbox::new();
    let sessions = sb.home.join("sessions/2026");
    // 10,004 active: 9,000 on the newest day, 1,000 the day before, 4 the oldest day.
    empty_transcripts(&sessions.join("03/03"), 9_000, 0);
    empty_transcripts(&sessions.join("03/02"), 1_000, 9_000);
    empty_transcripts(&sessions.join("03/01"), 4, 10_000);
    empty_transcripts(&sb.home.join("archived_sessions"), 10_300, 20_000);

    let doc = sb.ok_json(&["inspect"]);
    let cap = &doc["data"]["listing_cap"];
    assert_eq!(cap["sessions"]["transcripts"], 10_004, "{cap:#}");
    assert_eq!(cap["sessions"]["unlisted"], 4);
    assert_eq!(cap["sessions"]["unlisted_through"], "2026/03/01");
    assert_eq!(cap["archived_sessions"]["unlisted"], 300);
    let text = doc.to_string();
    assert!(
        text.contains("warning: sessions/ holds 10004 transcripts; Codex lists at most 10000 per folder: the 4 oldest are not listed")
            && text.contains("sessions from 2026/03/01 and before"),
        "{text}"
    );
    assert!(
        text.contains("warning: archived_sessions/ holds 10300 transcripts")
            && text.contains("300 are not listed, an arbitrary subset, recent ones included"),
        "{text}"
    );
    assert!(text.contains("scan cap reached"), "{text}");
}

#[test]
fn inspect_is_silent_under_the_cap_and_warns_at_exactly_it() {
    let sb = Sandbox::new();
    empty_transcripts(&sb.home.join("archived_sessions"), 9_999, 0);
    let doc = sb.ok_json(&["inspect"]);
    assert!(doc["data"]["listing_cap"]["archived_sessions"].is_null());
    assert!(!doc.to_string().contains("Codex lists at most"));
    empty_transcripts(&sb.home.join("archived_sessions"), 1, 9_999);
    let doc = sb.ok_json(&["inspect"]);
    assert_eq!(
        doc["data"]["listing_cap"]["archived_sessions"]["unlisted"],
        0
    );
    assert!(doc.to_string().contains("all listed, but at the cap"));
}

#[test]
fn inspect_weighs_the_thread_history_by_thread_state_and_changes_nothing() {
    let specs: Vec<SessionSpec> = (0..5)
        .map(|i| {
            let mut s = SessionSpec::aged(i, 40.0, 2_000);
            s.archived = i >= 3;
            s
        })
        .collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let history = sb.home.join("thread_history_1.sqlite");
    let conn = Connection::open(&history).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE thread_items (thread_id TEXT NOT NULL, ordinal INTEGER NOT NULL, item_json TEXT NOT NULL, PRIMARY KEY (thread_id, ordinal));",
    )
    .unwrap();
    // Thread i has i + 1 items of 1,000 bytes; and one thread no row knows of.
    for (i, spec) in specs.iter().enumerate() {
        for ordinal in 0..=i {
            conn.execute(
                "INSERT INTO thread_items VALUES (?1, ?2, ?3)",
                rusqlite::params![spec.id, ordinal as i64, "x".repeat(1_000)],
            )
            .unwrap();
        }
    }
    conn.execute(
        "INSERT INTO thread_items VALUES ('deleted-thread', 0, ?1)",
        [&"é".repeat(50)],
    )
    .unwrap();
    drop(conn);
    write_with_pending_wal(
        &history,
        "INSERT INTO thread_items VALUES ('deleted-thread', 1, 'pending in the WAL');",
    );

    let before = sb.home_files();
    let doc = sb.ok_json(&["inspect"]);
    assert_eq!(before, sb.home_files(), "inspect changed the home");
    let w = &doc["data"]["thread_history"];
    assert_eq!(
        w["active"],
        serde_json::json!({"count": 3, "bytes": 6_000}),
        "{w:#}"
    );
    assert_eq!(
        w["archived"],
        serde_json::json!({"count": 2, "bytes": 9_000}),
        "{w:#}"
    );
    // Bytes, not characters: 50 two-byte characters, and the row still in the WAL.
    assert_eq!(
        w["without_row"],
        serde_json::json!({"count": 1, "bytes": 100 + "pending in the WAL".len()}),
        "{w:#}"
    );
    assert!(w["retired_in_store"].is_null());
    let text = doc.to_string();
    assert!(
        text.contains("thread_history_1.sqlite (")
            && text.contains("items of active 5.9 KiB (3 threads), archived 8.8 KiB (2 threads), without a thread row"),
        "{text}"
    );
}
