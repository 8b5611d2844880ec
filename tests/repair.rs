//! `repair` makes Codex's thread index agree with the transcripts on disk: it heals a home
//! broken by a manual `mv` (SPEC.md's own procedure), as a journaled, undoable run, proposes
//! the same through `inspect`, and leaves anything ambiguous alone with the reason.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use std::path::Path;
use support::*;

fn old_specs() -> Vec<SessionSpec> {
    (0..5)
        .map(|i| SessionSpec::aged(i, 30.0, 1500 + i as usize * 100))
        .collect()
}

/// SPEC.md's manual archive: the file moves, the row stays as it was.
fn mv_to_archive(home: &Path, spec: &SessionSpec) -> std::path::PathBuf {
    let dst = home.join("archived_sessions").join(spec.file_name());
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::rename(spec.path_in(home), &dst).unwrap();
    dst
}

fn row_of(sb: &Sandbox, id: &str) -> (String, String, i64, Option<i64>, i64) {
    sb.thread_rows().into_iter().find(|r| r.0 == id).unwrap()
}

#[test]
fn a_manual_mv_is_healed_by_repair_and_undo_puts_the_rows_back() {
    let specs = old_specs();
    let sb = Sandbox::with_sessions(&specs, true);
    let moved: Vec<_> = specs[..3]
        .iter()
        .map(|s| mv_to_archive(&sb.home, s))
        .collect();

    let inspect = sb.ok_json(&["inspect"]);
    let fixes = inspect["data"]["thread_index"]["repair"]["fixes"]
        .as_array()
        .unwrap();
    assert_eq!(fixes.len(), 3, "{inspect:#}");
    let rows_broken = sb.thread_rows();
    assert!(
        texts(&inspect["sections"][1]["items"])
            .iter()
            .any(|t| t.contains("codex-maint repair")),
        "{inspect:#}"
    );

    // The one flag fix sits in Codex's WAL, not yet checkpointed: a dry run must leave the
    // database, its -wal and its -shm byte for byte as they are.
    write_with_pending_wal(
        &sb.home.join("state_5.sqlite"),
        &format!(
            "UPDATE threads SET archived = 1, archived_at = 9 WHERE id = '{}'",
            specs[3].id
        ),
    );
    assert!(sb.home.join("state_5.sqlite-wal").metadata().unwrap().len() > 0);
    let before = tree_fingerprint(&sb.home);
    let dry = sb.ok_json(&["repair", "--dry-run"]);
    assert_eq!(dry["data"]["fixes"].as_array().unwrap().len(), 4);
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(diffs.is_empty(), "a dry run changed:\n{}", diffs.join("\n"));
    assert!(!sb.store.exists(), "a dry run creates no store");

    let (code, unconfirmed) = sb.json(&["repair"]);
    assert_eq!(code, 3, "{unconfirmed:#}");

    let done = sb.ok_json(&["repair", "--yes"]);
    assert_eq!(done["data"]["repaired"].as_array().unwrap().len(), 4);
    for (spec, dst) in specs[..3].iter().zip(&moved) {
        let row = row_of(&sb, &spec.id);
        assert_eq!(Path::new(&row.1), dst.as_path(), "{row:?}");
        assert_eq!(row.2, 1, "archived as Codex's archive sets it: {row:?}");
        assert!(row.3.is_some(), "{row:?}");
    }
    for spec in &specs[3..] {
        let row = row_of(&sb, &spec.id);
        assert_eq!(Path::new(&row.1), spec.path_in(&sb.home), "{row:?}");
        assert_eq!((row.2, row.3), (0, None), "{row:?}");
    }
    assert_eq!(sb.json(&["verify"]).0, 0);
    let again = sb.ok_json(&["repair", "--dry-run"]);
    assert!(again["data"]["fixes"].as_array().unwrap().is_empty());

    sb.ok_json(&["undo"]);
    let rows_undone: Vec<_> = sb
        .thread_rows()
        .into_iter()
        .map(|r| (r.0, r.1, r.2, r.3))
        .collect();
    let mut rows_expected: Vec<_> = rows_broken
        .into_iter()
        .map(|r| (r.0, r.1, r.2, r.3))
        .collect();
    rows_expected[3].2 = 1;
    rows_expected[3].3 = Some(9);
    assert_eq!(rows_undone, rows_expected, "undo puts every row back");
    assert_eq!(sb.json(&["verify"]).0, 0);
}

#[test]
fn a_flag_that_disagrees_with_the_folder_is_set_as_unarchive_sets_it() {
    let specs = old_specs();
    let sb = Sandbox::with_sessions(&specs, true);
    rusqlite::Connection::open(sb.home.join("state_5.sqlite"))
        .unwrap()
        .execute(
            "UPDATE threads SET archived = 1, archived_at = 7 WHERE id = ?1",
            [&specs[0].id],
        )
        .unwrap();
    sb.ok_json(&["repair", "--yes"]);
    let row = row_of(&sb, &specs[0].id);
    assert_eq!(Path::new(&row.1), specs[0].path_in(&sb.home));
    assert_eq!((row.2, row.3), (0, None));
}

#[test]
fn ambiguous_rows_are_left_alone_with_the_reason_and_no_row_is_invented() {
    let specs = old_specs();
    let sb = Sandbox::with_sessions(&specs, true);
    // Two files with one id: the transcript moved and a copy left in sessions/ elsewhere.
    let twice = &specs[0];
    let original = twice.path_in(&sb.home);
    let copy = sb.home.join("sessions/2020/01/01").join(twice.file_name());
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&original, &copy).unwrap();
    mv_to_archive(&sb.home, twice);
    // A row pointing outside the home.
    let conn = rusqlite::Connection::open(sb.home.join("state_5.sqlite")).unwrap();
    conn.execute(
        "UPDATE threads SET rollout_path = '/nowhere/sessions/2026/01/01/x.jsonl' WHERE id = ?1",
        [&specs[1].id],
    )
    .unwrap();
    // A transcript whose first record cannot be read.
    let unreadable = mv_to_archive(&sb.home, &specs[2]);
    std::fs::write(&unreadable, b"not json\n").unwrap();
    // A transcript Codex has not indexed.
    conn.execute("DELETE FROM threads WHERE id = ?1", [&specs[3].id])
        .unwrap();
    drop(conn);
    let rows_before = sb.thread_rows();

    let before = tree_fingerprint(&sb.home);
    let doc = sb.ok_json(&["repair", "--yes"]);
    assert!(
        doc["data"]["fixes"].as_array().unwrap().is_empty(),
        "{doc:#}"
    );
    let left = doc["data"]["left_alone"].to_string();
    assert!(left.contains("2 files with this id"), "{left}");
    assert!(left.contains("outside the home"), "{left}");
    assert!(left.contains("no readable first record"), "{left}");
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(diffs.is_empty(), "repair changed:\n{}", diffs.join("\n"));
    assert_eq!(sb.thread_rows(), rows_before);
}

#[test]
fn repair_refuses_while_codex_runs_and_changes_nothing() {
    let specs = old_specs();
    let sb = Sandbox::with_sessions(&specs, true);
    mv_to_archive(&sb.home, &specs[0]);
    let mut codex = fake_codex(sb.dir.path(), &sb.home);
    let before = tree_fingerprint(&sb.home);
    let (code, doc) = sb.json(&["repair", "--yes"]);
    codex.kill().unwrap();
    codex.wait().unwrap();
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("Codex is running"), "{doc:#}");
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(
        diffs.is_empty(),
        "a refused repair changed:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn a_repair_killed_at_any_point_recovers_to_one_of_its_ends() {
    for point in ["op-prepared", "thread-row-updated", "op-applied"] {
        let specs = old_specs();
        let sb = Sandbox::with_sessions(&specs, true);
        let moved = mv_to_archive(&sb.home, &specs[0]);
        let broken = row_of(&sb, &specs[0].id);
        let out = sb
            .cmd()
            .env(codex_maint::failpoint::ENV_VAR, point)
            .args(["repair", "--yes"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the run was meant to abort");

        let doc = sb.ok_json(&["recover"]);
        let recovered = doc["data"]["recovered"].as_array().unwrap();
        for r in recovered {
            assert_ne!(r["result"]["outcome"], "stuck", "{point}: {r:#}");
        }
        let row = row_of(&sb, &specs[0].id);
        if point == "op-prepared" {
            assert_eq!(row, broken, "{point}: rolled back");
        } else {
            assert_eq!(
                Path::new(&row.1),
                moved.as_path(),
                "{point}: rolled forward"
            );
        }
        assert_eq!(sb.json(&["verify"]).0, 0, "{point}");
        sb.ok_json(&["repair", "--yes"]);
        assert_eq!(Path::new(&row_of(&sb, &specs[0].id).1), moved.as_path());
    }
}

/// Three rows healed by one repair run, for the undo tests.
fn repaired_three(
    sb: &Sandbox,
    specs: &[SessionSpec],
) -> Vec<(String, String, i64, Option<i64>, i64)> {
    for s in &specs[..3] {
        mv_to_archive(&sb.home, s);
    }
    let broken: Vec<_> = specs[..3].iter().map(|s| row_of(sb, &s.id)).collect();
    let done = sb.ok_json(&["repair", "--yes"]);
    assert_eq!(done["data"]["repaired"].as_array().unwrap().len(), 3);
    broken
}

#[test]
fn an_undo_of_many_repairs_is_refused_whole_when_one_row_changed_since() {
    let specs = old_specs();
    let sb = Sandbox::with_sessions(&specs, true);
    repaired_three(&sb, &specs);
    // Codex moved on: one repaired row was written again after the repair.
    write_with_pending_wal(
        &sb.home.join("state_5.sqlite"),
        &format!(
            "UPDATE threads SET archived_at = 12345 WHERE id = '{}'",
            specs[1].id
        ),
    );
    let rows_now = sb.thread_rows();
    let before = tree_fingerprint(&sb.home);
    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        doc.to_string().contains(&specs[1].id),
        "names the changed row: {doc:#}"
    );
    assert_eq!(sb.thread_rows(), rows_now, "no row was put back");
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(
        diffs.iter().all(|d| !d.contains("sessions")),
        "no transcript moved:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn an_undo_of_many_repairs_killed_at_any_point_recovers_to_one_of_its_ends() {
    for point in ["op-prepared", "thread-row-updated", "op-applied"] {
        let specs = old_specs();
        let sb = Sandbox::with_sessions(&specs, true);
        let broken = repaired_three(&sb, &specs);
        let healed: Vec<_> = specs[..3].iter().map(|s| row_of(&sb, &s.id)).collect();
        let out = sb
            .cmd()
            .env(codex_maint::failpoint::ENV_VAR, point)
            .args(["undo"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point}: the undo was meant to abort"
        );

        let doc = sb.ok_json(&["recover"]);
        for r in doc["data"]["recovered"].as_array().unwrap() {
            assert_ne!(r["result"]["outcome"], "stuck", "{point}: {r:#}");
        }
        let rows: Vec<_> = specs[..3].iter().map(|s| row_of(&sb, &s.id)).collect();
        if point == "op-prepared" {
            assert_eq!(
                rows, healed,
                "{point}: the undo rolled back, every row as repaired"
            );
        } else {
            assert_eq!(
                rows, broken,
                "{point}: the undo rolled forward, every row as it was"
            );
        }
        assert_eq!(sb.json(&["verify"]).0, 0, "{point}");
    }
}

/// Codex's index with one of its indexes no longer matching its table: every row still
/// reads, and `quick_check` passes, but `integrity_check` does not.
fn break_an_index_of_threads(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE INDEX threads_by_title ON threads(title);
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE INDEX threads_by_title ON threads(cwd)'
           WHERE name = 'threads_by_title';
         PRAGMA writable_schema = OFF;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    drop(conn);
    let conn = rusqlite::Connection::open(db).unwrap();
    let quick: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(quick, "ok", "the damage is one only the full check sees");
    let full: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_ne!(full, "ok");
}

#[test]
fn repair_refuses_a_thread_index_that_fails_its_integrity_check() {
    let specs = old_specs();
    let sb = Sandbox::with_sessions(&specs, true);
    let db = sb.home.join("state_5.sqlite");
    break_an_index_of_threads(&db);
    // Every row already agrees with its file, as the damaged index reads.
    let before = sb.home_files();
    for args in [&["repair", "--dry-run"][..], &["repair", "--yes"]] {
        let (code, doc) = sb.json(args);
        assert_eq!(code, 3, "{args:?}: {doc:#}");
        let message = error_message(&doc);
        assert!(
            message.contains(&db.display().to_string()) && message.contains("integrity"),
            "{args:?} names the database and the check: {message}"
        );
    }
    // And where a row does need a repair, nothing is written into the damaged index.
    mv_to_archive(&sb.home, &specs[0]);
    let moved = sb.home_files();
    let (code, doc) = sb.json(&["repair", "--yes"]);
    assert_eq!(code, 3, "{doc:#}");
    assert_eq!(moved, sb.home_files(), "nothing changed");
    assert_ne!(before, moved);
}
