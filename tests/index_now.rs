//! Undo, restore and verify act on Codex's thread index as it is now: a home may gain an
//! index after codex-maint moved its sessions (an older Codex wrote them, a newer one started
//! later and indexed them where they were), and a row may move under codex-maint's feet.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::{SessionSpec, create_index, insert_row};
use std::path::{Path, PathBuf};
use support::*;

/// Where a session's transcript is now, in either folder, plain or compressed.
fn place_of(home: &Path, spec: &SessionSpec) -> PathBuf {
    let mut places = Vec::new();
    for archived in [false, true] {
        let plain = SessionSpec {
            archived,
            ..spec.clone()
        }
        .path_in(home);
        let zst = PathBuf::from(format!("{}.zst", plain.display()));
        places.extend([plain, zst]);
    }
    let found: Vec<PathBuf> = places.into_iter().filter(|p| p.is_file()).collect();
    assert_eq!(found.len(), 1, "session {} is at {found:?}", spec.id);
    found.into_iter().next().unwrap()
}

/// What a Codex starting for the first time in this home does: build the index and add a
/// row for every transcript where it finds it, archived when it is in `archived_sessions/`.
fn index_as_codex_builds_it(home: &Path, specs: &[SessionSpec]) {
    let conn = create_index(home).unwrap();
    for spec in specs {
        let place = place_of(home, spec);
        let archived = place.parent().unwrap().ends_with("archived_sessions");
        let as_found = SessionSpec {
            archived,
            ..spec.clone()
        };
        insert_row(&conn, home, &as_found).unwrap();
        conn.execute(
            "UPDATE threads SET rollout_path = ?2 WHERE id = ?1",
            rusqlite::params![spec.id, place.display().to_string()],
        )
        .unwrap();
    }
}

/// Every row names the file where it is and carries the flag of its folder, as Codex's
/// archive and unarchive leave it.
fn assert_rows_follow_files(home: &Path, specs: &[SessionSpec]) {
    let rows = thread_rows(home);
    assert_eq!(rows.len(), specs.len());
    for spec in specs {
        let place = place_of(home, spec);
        let row = rows.iter().find(|r| r.0 == spec.id).unwrap();
        assert_eq!(Path::new(&row.1), place, "{row:?}");
        let archived = place.parent().unwrap().ends_with("archived_sessions");
        assert_eq!(row.2, archived as i64, "{row:?}");
        assert_eq!(
            row.3.is_some(),
            archived,
            "archived_at as Codex sets it: {row:?}"
        );
    }
}

fn archived_specs(specs: &[SessionSpec], home: &Path) -> Vec<SessionSpec> {
    specs
        .iter()
        .filter(|s| {
            place_of(home, s)
                .parent()
                .unwrap()
                .ends_with("archived_sessions")
        })
        .cloned()
        .collect()
}

#[test]
fn undo_carries_the_rows_a_later_codex_made_back_with_the_files() {
    let specs = mixed_specs(12);
    let sb = Sandbox::with_sessions(&specs, false);
    let moved = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    assert!(moved["data"]["archived"].as_array().unwrap().len() > 4);
    index_as_codex_builds_it(&sb.home, &specs);
    assert!(!archived_specs(&specs, &sb.home).is_empty());
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(
        code, 0,
        "rows Codex made where the files are agree: {doc:#}"
    );

    sb.ok_json(&["undo"]);
    assert!(archived_specs(&specs, &sb.home).is_empty());
    assert_rows_follow_files(&sb.home, &specs);
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");

    // The undo recorded the rows it changed, so undoing it puts them back exactly.
    let rows_after_undo = sb.thread_rows();
    sb.ok_json(&["undo"]);
    assert_rows_follow_files(&sb.home, &specs);
    sb.ok_json(&["undo"]);
    assert_eq!(
        rows_after_undo
            .iter()
            .map(|r| (&r.0, &r.1, r.2, r.3))
            .collect::<Vec<_>>(),
        sb.thread_rows()
            .iter()
            .map(|r| (&r.0, &r.1, r.2, r.3))
            .collect::<Vec<_>>()
    );
}

#[test]
fn restore_of_one_session_carries_its_new_row() {
    let specs = mixed_specs(8);
    let sb = Sandbox::with_sessions(&specs, false);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    index_as_codex_builds_it(&sb.home, &specs);
    let one = archived_specs(&specs, &sb.home).remove(0);
    sb.ok_json(&["restore", &one.id]);
    assert!(one.path_in(&sb.home).is_file());
    assert_rows_follow_files(&sb.home, &specs);
    assert_eq!(sb.json(&["verify"]).0, 0);
}

#[test]
fn undo_of_a_compressed_archive_carries_the_new_rows() {
    let specs = mixed_specs(10);
    let sb = Sandbox::with_sessions(&specs, false);
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    index_as_codex_builds_it(&sb.home, &specs);
    assert!(
        archived_specs(&specs, &sb.home)
            .iter()
            .all(|s| place_of(&sb.home, s).to_string_lossy().ends_with(".zst"))
    );
    assert_eq!(sb.json(&["verify"]).0, 0);
    sb.ok_json(&["undo"]);
    assert!(archived_specs(&specs, &sb.home).is_empty());
    assert_rows_follow_files(&sb.home, &specs);
    assert_eq!(sb.json(&["verify"]).0, 0);
}

#[test]
fn undo_refuses_a_row_that_names_another_file_and_changes_nothing() {
    let specs = mixed_specs(8);
    let sb = Sandbox::with_sessions(&specs, false);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    index_as_codex_builds_it(&sb.home, &specs);
    let strayed = archived_specs(&specs, &sb.home).remove(0);
    rusqlite::Connection::open(sb.home.join("state_5.sqlite"))
        .unwrap()
        .execute(
            "UPDATE threads SET rollout_path = '/elsewhere/rollout.jsonl' WHERE id = ?1",
            [&strayed.id],
        )
        .unwrap();

    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
    assert!(
        doc.to_string().contains("/elsewhere/rollout.jsonl"),
        "{doc:#}"
    );

    let before = tree_fingerprint(&sb.home);
    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(doc.to_string().contains(&strayed.id), "{doc:#}");
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(
        diffs.is_empty(),
        "a refused undo changed:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn verify_reports_a_row_whose_flag_moved_after_the_archive() {
    let sb = Sandbox::with_sessions(&mixed_specs(8), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    assert_eq!(sb.json(&["verify"]).0, 0);
    rusqlite::Connection::open(sb.home.join("state_5.sqlite"))
        .unwrap()
        .execute(
            "UPDATE threads SET archived = 0, archived_at = NULL WHERE archived = 1",
            [],
        )
        .unwrap();
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
    assert!(doc.to_string().contains("says archived 0"), "{doc:#}");
}

#[test]
fn verify_reports_a_missing_row_once_an_index_exists() {
    let specs = mixed_specs(8);
    let sb = Sandbox::with_sessions(&specs, false);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    index_as_codex_builds_it(&sb.home, &specs);
    let gone = archived_specs(&specs, &sb.home).remove(0);
    rusqlite::Connection::open(sb.home.join("state_5.sqlite"))
        .unwrap()
        .execute("DELETE FROM threads WHERE id = ?1", [&gone.id])
        .unwrap();
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
    assert!(doc.to_string().contains("has no row"), "{doc:#}");
}

#[test]
fn recovery_carries_the_rows_a_later_codex_made_with_the_files() {
    let specs: Vec<SessionSpec> = (0..6)
        .map(|i| SessionSpec::aged(i, 30.0, 2000 + i as usize * 300))
        .collect();
    for point in ["file-moved@3", "thread-row-updated", "op-applied"] {
        let sb = Sandbox::with_sessions(&specs, false);
        let out = sb
            .cmd()
            .env(codex_maint::failpoint::ENV_VAR, point)
            .args(["archive", "--older-than", "10d", "--yes"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the run was meant to abort");
        index_as_codex_builds_it(&sb.home, &specs);

        let doc = sb.ok_json(&["recover"]);
        for r in doc["data"]["recovered"].as_array().unwrap() {
            assert_ne!(r["result"]["outcome"], "stuck", "{point}: {r:#}");
        }
        assert_rows_follow_files(&sb.home, &specs);
        let (code, doc) = sb.json(&["verify"]);
        assert_eq!(code, 0, "{point}: {doc:#}");
        sb.ok_json(&["undo"]);
        assert!(archived_specs(&specs, &sb.home).is_empty(), "{point}");
        assert_rows_follow_files(&sb.home, &specs);
    }
}

#[test]
fn a_dry_run_undo_reads_the_new_index_without_writing_a_byte() {
    let specs = mixed_specs(8);
    let sb = Sandbox::with_sessions(&specs, false);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    index_as_codex_builds_it(&sb.home, &specs);
    let one = archived_specs(&specs, &sb.home).remove(0);
    // Codex's last write still in its WAL: a read-write open would checkpoint it on close.
    write_with_pending_wal(
        &sb.home.join("state_5.sqlite"),
        &format!(
            "UPDATE threads SET title = 'renamed' WHERE id = '{}'",
            one.id
        ),
    );
    assert!(sb.home.join("state_5.sqlite-wal").metadata().unwrap().len() > 0);
    let before = tree_fingerprint(&sb.home);
    let dry = sb.ok_json(&["undo", "--dry-run"]);
    assert!(!dry["data"]["reverts_ops"].as_array().unwrap().is_empty());
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(diffs.is_empty(), "a dry run changed:\n{}", diffs.join("\n"));
    sb.ok_json(&["undo"]);
    assert_rows_follow_files(&sb.home, &specs);
}

#[test]
fn undo_carries_a_row_codex_moved_to_another_spelling_of_the_same_file() {
    let specs = mixed_specs(8);
    let sb = Sandbox::with_sessions(&specs, true);
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    let one = archived_specs(&specs, &sb.home).remove(0);
    let compressed = place_of(&sb.home, &one);
    assert!(compressed.to_string_lossy().ends_with(".zst"));
    // Codex resolves a row naming the plain path to its .zst twin and may write either.
    let plain_spelling = compressed.with_extension("");
    rusqlite::Connection::open(sb.home.join("state_5.sqlite"))
        .unwrap()
        .execute(
            "UPDATE threads SET rollout_path = ?2 WHERE id = ?1",
            rusqlite::params![one.id, plain_spelling.display().to_string()],
        )
        .unwrap();
    assert_eq!(sb.json(&["verify"]).0, 0, "the row still names the file");
    sb.ok_json(&["undo"]);
    assert!(archived_specs(&specs, &sb.home).is_empty());
    assert_rows_follow_files(&sb.home, &specs);
    assert_eq!(sb.json(&["verify"]).0, 0);
}
