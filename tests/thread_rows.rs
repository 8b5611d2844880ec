//! A thread's rows across Codex's databases: taken out whole, put back identical, with
//! Codex's triggers and other threads' rows as they were.

use codex_maint::ops::thread_rows::{ThreadDatabases, dump};
use rusqlite::Connection;
use std::path::Path;

/// Two databases shaped like Codex 0.171's: `threads` with children, and a queue whose
/// triggers bump a per-thread revision (`queue_1.sqlite`).
fn make_home(home: &Path) {
    let state = Connection::open(home.join("state_5.sqlite")).unwrap();
    state
        .execute_batch(
            "CREATE TABLE threads (id TEXT PRIMARY KEY, title TEXT NOT NULL, score REAL, blob BLOB, thread_section_id TEXT);
             CREATE TABLE thread_attachments (id TEXT PRIMARY KEY, thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE, payload TEXT);
             CREATE TABLE thread_spawn_edges (parent_thread_id TEXT NOT NULL, child_thread_id TEXT NOT NULL PRIMARY KEY, status TEXT);
             CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT);
             INSERT INTO threads VALUES ('a', 'first', 0.5, x'0001', NULL), ('b', 'second', NULL, NULL, 's1');
             INSERT INTO thread_attachments VALUES ('att1', 'a', 'p'), ('att2', 'b', 'q');
             INSERT INTO thread_spawn_edges VALUES ('b', 'a', 'done');
             INSERT INTO projects VALUES ('p', 'proj');",
        )
        .unwrap();
    let queue = Connection::open(home.join("queue_1.sqlite")).unwrap();
    queue
        .execute_batch(
            "CREATE TABLE queued_items (id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, payload_json TEXT);
             CREATE TABLE queued_thread_revisions (revision INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL UNIQUE);
             CREATE TRIGGER bump_insert AFTER INSERT ON queued_items BEGIN
                 INSERT INTO queued_thread_revisions (thread_id) VALUES (NEW.thread_id)
                 ON CONFLICT(thread_id) DO UPDATE SET revision = (SELECT COALESCE(MAX(revision), 0) + 1 FROM queued_thread_revisions);
             END;
             CREATE TRIGGER bump_delete AFTER DELETE ON queued_items BEGIN
                 INSERT INTO queued_thread_revisions (thread_id) VALUES (OLD.thread_id)
                 ON CONFLICT(thread_id) DO UPDATE SET revision = (SELECT COALESCE(MAX(revision), 0) + 1 FROM queued_thread_revisions);
             END;
             INSERT INTO queued_items (thread_id, payload_json) VALUES ('a', '{}'), ('a', '[]'), ('b', '1');",
        )
        .unwrap();
}

/// The home of `make_home` with thread `a` taken out; its rows as they were.
fn home_with_a_taken_out(home: &Path) -> Vec<dump::DumpedRow> {
    make_home(home);
    let mut dbs = ThreadDatabases::open(home).unwrap();
    let taken = dbs.rows_of(&["a"]).unwrap().remove("a").unwrap();
    dbs.delete(&["a"]).unwrap();
    taken
}

fn all_rows(home: &Path) -> Vec<u8> {
    let dbs = ThreadDatabases::open(home).unwrap();
    let rows = dbs.rows_of(&["a", "b"]).unwrap();
    let mut all: Vec<_> = rows.into_values().flatten().collect();
    all.sort_by_key(|r| r.line());
    dump::encode(&all)
}

#[test]
fn a_thread_taken_out_and_put_back_has_the_same_rows_and_the_others_are_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    make_home(home);
    let before = all_rows(home);
    assert!(!before.is_empty());
    let mut dbs = ThreadDatabases::open(home).unwrap();
    let taken = dbs.rows_of(&["a"]).unwrap().remove("a").unwrap();
    let tables: Vec<String> = taken
        .iter()
        .map(|r| format!("{}.{}", r.database, r.table))
        .collect();
    for t in [
        "state_5.sqlite.threads",
        "state_5.sqlite.thread_attachments",
        "state_5.sqlite.thread_spawn_edges",
        "queue_1.sqlite.queued_items",
        "queue_1.sqlite.queued_thread_revisions",
    ] {
        assert!(tables.iter().any(|x| x == t), "{t} in {tables:?}");
    }
    let b_before = dump::encode(&dbs.rows_of(&["b"]).unwrap().remove("b").unwrap());

    dbs.delete(&["a"]).unwrap();
    assert!(
        dbs.rows_of(&["a"]).unwrap()["a"].is_empty(),
        "nothing of a is left, triggers' rows included"
    );
    // b's rows are b's: its revision may move (Codex's own trigger), and the spawn edge
    // naming a as its child went with a; its other rows do not change.
    let own = |rows: Vec<dump::DumpedRow>| {
        let kept: Vec<_> = rows
            .into_iter()
            .filter(|r| r.table != "queued_thread_revisions" && r.table != "thread_spawn_edges")
            .collect();
        dump::encode(&kept)
    };
    let b_now = dbs.rows_of(&["b"]).unwrap().remove("b").unwrap();
    assert_eq!(own(b_now), own(dump::decode(&b_before).unwrap()));

    dbs.put_back(&["a"], &taken).unwrap();
    let back = dump::encode(&dbs.rows_of(&["a"]).unwrap().remove("a").unwrap());
    assert_eq!(
        String::from_utf8(back).unwrap(),
        String::from_utf8(dump::encode(&taken)).unwrap()
    );
    // Putting back twice changes nothing: recovery may repeat it.
    dbs.put_back(&["a"], &taken).unwrap();
    assert_eq!(
        dump::encode(&dbs.rows_of(&["a"]).unwrap().remove("a").unwrap()),
        dump::encode(&taken)
    );
    let projects: i64 = Connection::open(home.join("state_5.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM projects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(projects, 1);
    assert_eq!(
        all_rows(home),
        before,
        "every row of both threads is as it was"
    );
}

#[test]
fn rows_go_back_by_column_name_into_a_schema_that_moved_on() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let taken = home_with_a_taken_out(home);
    // A later Codex adds a column with a default and reorders nothing else.
    Connection::open(home.join("state_5.sqlite"))
        .unwrap()
        .execute_batch("ALTER TABLE threads ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
        .unwrap();
    let mut dbs = ThreadDatabases::open(home).unwrap();
    dbs.put_back(&["a"], &taken).unwrap();
    let (title, pinned): (String, i64) = Connection::open(home.join("state_5.sqlite"))
        .unwrap()
        .query_row(
            "SELECT title, pinned FROM threads WHERE id = 'a'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((title.as_str(), pinned), ("first", 0));
}

#[test]
fn a_needed_column_that_is_gone_refuses_with_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let taken = home_with_a_taken_out(home);
    let conn = Connection::open(home.join("state_5.sqlite")).unwrap();
    conn.execute_batch("ALTER TABLE threads DROP COLUMN score")
        .unwrap();
    drop(conn);
    let before = std::fs::read(home.join("state_5.sqlite")).unwrap();
    let queue_before = std::fs::read(home.join("queue_1.sqlite")).unwrap();
    let mut dbs = ThreadDatabases::open(home).unwrap();
    let err = dbs.put_back(&["a"], &taken).unwrap_err();
    assert!(
        format!("{err:#}").contains("threads.score is gone"),
        "{err:#}"
    );
    drop(dbs);
    assert_eq!(std::fs::read(home.join("state_5.sqlite")).unwrap(), before);
    assert_eq!(
        std::fs::read(home.join("queue_1.sqlite")).unwrap(),
        queue_before
    );
}

#[test]
fn a_row_of_someone_else_in_the_way_refuses_that_database_whole() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    make_home(home);
    let mut dbs = ThreadDatabases::open(home).unwrap();
    let taken = dbs.rows_of(&["a"]).unwrap().remove("a").unwrap();
    dbs.delete(&["a"]).unwrap();
    // Another attachment now holds the id a's attachment had.
    Connection::open(home.join("state_5.sqlite"))
        .unwrap()
        .execute(
            "INSERT INTO thread_attachments VALUES ('att1', 'b', 'other')",
            [],
        )
        .unwrap();
    let err = dbs.put_back(&["a"], &taken).unwrap_err();
    assert!(
        format!("{err:#}").contains("stand where rows must go back"),
        "{err:#}"
    );
    let threads_a: i64 = Connection::open(home.join("state_5.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM threads WHERE id = 'a'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(threads_a, 0, "the database's transaction rolled back whole");
}
