//! Archive then undo leaves the home identical: every file's bytes, mode and mtime, and
//! every thread row. Plus the guards a policy or an explicit id run must respect.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use support::*;

#[test]
fn archive_by_age_then_undo_restores_every_file_and_row() {
    let sb = Sandbox::with_sessions(&mixed_specs(40), true);
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();

    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let archived = doc["data"]["archived"].as_array().unwrap();
    // 40 sessions: 8 are 3 days old (recent), one is pinned; the other 31 go.
    assert_eq!(archived.len(), 31, "{doc:#}");
    let protected: Vec<&str> = doc["data"]["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["protection"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(protected.iter().filter(|r| **r == "recent").count(), 8);
    assert_eq!(protected.iter().filter(|r| **r == "pinned").count(), 1);
    for a in archived {
        let dst = std::path::Path::new(a["destination"].as_str().unwrap());
        assert!(dst.is_file());
        assert_eq!(dst.parent().unwrap(), sb.home.join("archived_sessions"));
        assert!(!std::path::Path::new(a["path"].as_str().unwrap()).exists());
    }
    let rows_mid = sb.thread_rows();
    let archived_rows = rows_mid.iter().filter(|r| r.2 == 1).count();
    assert_eq!(archived_rows, 31);
    for r in rows_mid.iter().filter(|r| r.2 == 1) {
        assert!(r.1.contains("/archived_sessions/"), "{r:?}");
        assert!(r.3.is_some(), "archived_at is set like Codex sets it");
    }
    assert_sessions_whole_and_consistent(&sb.home, &session_hashes(&sb.home));
    assert_eq!(sb.json(&["verify"]).0, 0);

    let undo = sb.ok_json(&["undo"]);
    assert_eq!(undo["data"]["reverted"].as_array().unwrap().len(), 31);
    let diffs = codex_maint::testkit::fingerprint::differences(
        &files_before,
        &sb.home_files_except_databases(),
    );
    assert!(
        diffs.is_empty(),
        "home differs after undo:\n{}",
        diffs.join("\n")
    );
    assert_eq!(
        rows_before,
        sb.thread_rows(),
        "thread rows differ after undo"
    );
    assert_eq!(sb.json(&["verify"]).0, 0);

    // Nothing is left to undo: a second undo is a no-op, not a redo.
    let again = sb.ok_json(&["undo"]);
    assert!(again["data"]["reverted"].as_array().unwrap().is_empty());
}

#[test]
fn explicit_ids_take_prefixes_and_lift_only_the_age_guard() {
    let specs = mixed_specs(12);
    let sb = Sandbox::with_sessions(&specs, true);
    let recent = &specs[0]; // 3 days old
    let pinned = &specs[7];
    let doc = sb.ok_json(&["archive", &recent.id[..24]]);
    assert_eq!(doc["data"]["archived"].as_array().unwrap().len(), 1);
    assert!(
        sb.home
            .join("archived_sessions")
            .join(recent.file_name())
            .is_file()
    );

    let before = sb.home_files();
    let (code, doc) = sb.json(&["archive", &pinned.id]);
    assert_eq!(
        code, 3,
        "a pinned session named explicitly is refused: {doc:#}"
    );
    assert!(
        doc["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("pinned")
    );
    assert_eq!(before, sb.home_files(), "a refusal changes nothing");
}

#[test]
fn unknown_and_ambiguous_ids_are_usage_errors_that_change_nothing() {
    let specs = mixed_specs(6);
    let sb = Sandbox::with_sessions(&specs, true);
    let before = sb.home_files();
    let (code, doc) = sb.json(&["archive", "ffffffff"]);
    assert_eq!(code, 2);
    assert!(error_message(&doc).contains("no session matches ffffffff"));
    // Every generated id starts with the same 8 hex digits.
    let (code, doc) = sb.json(&["archive", &specs[1].id[..8]]);
    assert_eq!(code, 2);
    assert!(error_message(&doc).contains("ambiguous"));
    assert_eq!(before, sb.home_files());
    assert!(
        !sb.store.join("catalog.sqlite").exists()
            || sb.ok_json(&["log"])["data"]["runs"]
                .as_array()
                .unwrap()
                .is_empty()
    );
}

#[test]
fn ambiguous_files_are_protected_and_never_moved() {
    let specs: Vec<SessionSpec> = (0..4).map(|i| SessionSpec::aged(i, 40.0, 2000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let day = specs[0].path_in(&sb.home).parent().unwrap().to_path_buf();
    // A truncated first line, a foreign name, and a symlink, all old enough by age.
    let truncated = specs[1].path_in(&sb.home);
    std::fs::write(&truncated, "{\"type\":\"session_me").unwrap();
    codex_maint::testkit::synthetic_home::set_mtime(&truncated, specs[1].last_active).unwrap();
    std::fs::write(day.join("notes.jsonl"), "{}\n").unwrap();
    let target = sb.dir.path().join("outside.jsonl");
    std::fs::write(&target, "{}\n").unwrap();
    let link_name = specs[2].file_name().replace(&specs[2].id[..8], "abcdef01");
    std::os::unix::fs::symlink(&target, day.join(link_name)).unwrap();

    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let moved: Vec<&str> = doc["data"]["archived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(moved.len(), 3, "{doc:#}");
    assert!(!moved.contains(&specs[1].id.as_str()));
    let reasons: Vec<String> = doc["data"]["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["protection"]["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "ambiguous").count(),
        3,
        "{doc:#}"
    );
    assert!(truncated.exists());
    assert!(target.exists() && std::fs::symlink_metadata(day.join("notes.jsonl")).is_ok());
}

#[test]
fn a_home_without_a_thread_index_gets_the_move_alone() {
    let specs: Vec<SessionSpec> = (0..5).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    let sb = Sandbox::with_sessions(&specs, false);
    let before = sb.home_files();
    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    assert_eq!(doc["data"]["archived"].as_array().unwrap().len(), 5);
    sb.ok_json(&["undo"]);
    assert!(codex_maint::testkit::fingerprint::differences(&before, &sb.home_files()).is_empty());
}

#[test]
fn restore_puts_back_one_item_and_undo_then_takes_the_rest() {
    let specs: Vec<SessionSpec> = (0..6).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let rows_before = sb.thread_rows();
    let before = sb.home_files_except_databases();
    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let first = &doc["data"]["archived"][0];
    let op = first["op_id"].as_i64().unwrap().to_string();
    sb.ok_json(&["restore", &op]);
    assert!(std::path::Path::new(first["path"].as_str().unwrap()).is_file());
    let (code, again) = sb.json(&["restore", &op]);
    assert_eq!(code, 3, "restoring twice is refused: {again:#}");
    let undo = sb.ok_json(&["undo", "--run", "1"]);
    assert_eq!(undo["data"]["reverted"].as_array().unwrap().len(), 5);
    assert_eq!(before, sb.home_files_except_databases());
    assert_eq!(rows_before, sb.thread_rows());
}

#[test]
fn undo_refuses_and_lists_every_conflict_changing_nothing() {
    let specs: Vec<SessionSpec> = (0..4).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let a = &doc["data"]["archived"];
    // One archived file edited, one original place re-occupied.
    std::fs::write(a[0]["destination"].as_str().unwrap(), "changed\n").unwrap();
    std::fs::write(a[1]["path"].as_str().unwrap(), "someone wrote here\n").unwrap();
    let mid = sb.home_files();
    let rows_mid = sb.thread_rows();
    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 3, "{doc:#}");
    let details: Vec<&str> = texts(&doc["error"]["details"]);
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(details.iter().any(|d| d.contains("changed since")));
    assert!(details.iter().any(|d| d.contains("occupied")));
    assert_eq!(mid, sb.home_files());
    assert_eq!(rows_mid, sb.thread_rows());
}

#[test]
fn dry_runs_change_nothing_and_create_no_store() {
    let sb = Sandbox::with_sessions(&mixed_specs(10), true);
    let before = sb.home_files();
    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--dry-run"]);
    assert!(!doc["data"]["candidates"].as_array().unwrap().is_empty());
    assert_eq!(before, sb.home_files());
    assert!(!sb.store.exists(), "a dry run creates no store");
}

#[test]
fn a_policy_run_without_a_terminal_needs_yes() {
    let sb = Sandbox::with_sessions(&mixed_specs(10), true);
    let before = sb.home_files();
    let (code, doc) = sb.json(&["archive", "--older-than", "10d"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("--yes"));
    assert_eq!(before, sb.home_files());
}
