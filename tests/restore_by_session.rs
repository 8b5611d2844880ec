//! `restore <session>` puts a session back where Codex had it before codex-maint last moved
//! it (an archive, or a cleanup's archive), thread row included; `restore <op id>` still
//! works; `log --session` lists every op that touched a session.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use support::*;

fn four_old_sessions() -> (Sandbox, Vec<SessionSpec>) {
    let specs: Vec<SessionSpec> = (1..=4).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    (Sandbox::with_sessions(&specs, true), specs)
}

/// The thread row of one session: (rollout_path, archived).
fn row(sb: &Sandbox, id: &str) -> (String, i64) {
    let r = sb
        .thread_rows()
        .into_iter()
        .find(|r| r.0 == id)
        .unwrap_or_else(|| panic!("a row for {id}"));
    (r.1, r.2)
}

#[test]
fn restore_by_prefix_brings_back_one_archived_session_with_its_row() {
    let (sb, specs) = four_old_sessions();
    let (a, b) = (&specs[0], &specs[1]);
    let rows_before = sb.thread_rows();
    let original = a.path_in(&sb.home);
    sb.ok_json(&["archive", &a.id, &b.id]);
    assert!(!original.exists());

    let prefix = &a.id[..18];
    let doc = sb.ok_json(&["restore", prefix]);
    assert_eq!(doc["data"]["session"], a.id.as_str());
    assert_eq!(doc["data"]["reverted"].as_array().unwrap().len(), 1);
    assert!(original.is_file(), "back where Codex had it");
    let before = rows_before.iter().find(|r| r.0 == a.id).unwrap();
    assert_eq!(row(&sb, &a.id), (before.1.clone(), before.2));
    assert!(
        row(&sb, &b.id).0.contains("/archived_sessions/"),
        "the other session stays archived"
    );
    assert_sessions_whole_and_consistent(&sb.home, &session_hashes(&sb.home));
    assert_eq!(sb.json(&["verify"]).0, 0);

    let again = sb.ok_json(&["restore", &a.id]);
    assert!(
        again["data"]["reverted"].as_array().unwrap().is_empty(),
        "nothing left to restore: {again:#}"
    );
    assert!(original.is_file());

    let log = sb.ok_json(&["log", "--session", prefix]);
    assert_eq!(log["data"]["session"], a.id.as_str());
    let kinds: Vec<&str> = log["data"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["archive_session", "unarchive_session"]);
}

#[test]
fn restore_brings_back_a_session_a_cleanup_archived() {
    let (sb, specs) = four_old_sessions();
    let target = &specs[2];
    let original = target.path_in(&sb.home);
    let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "sessions"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    let done = sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
    assert!(!original.exists(), "cleanup archived it: {plan:#} {done:#}");

    let dry = sb.ok_json(&["restore", &target.id, "--dry-run"]);
    assert!(!original.exists(), "a dry run moves nothing: {dry:#}");
    let proposed = texts(&dry["sections"][1]["items"]);
    assert!(
        proposed.iter().all(|p| p.starts_with("will take back")),
        "{proposed:?}"
    );

    sb.ok_json(&["restore", &target.id, "--yes"]);
    assert!(original.is_file());
    let (path, archived) = row(&sb, &target.id);
    assert_eq!((path.as_str(), archived), (original.to_str().unwrap(), 0));
    for other in specs.iter().filter(|s| s.id != target.id) {
        assert!(
            !other.path_in(&sb.home).exists(),
            "only the one named moves"
        );
    }
    assert_eq!(sb.json(&["verify"]).0, 0);
}

#[test]
fn an_op_id_still_restores_that_op() {
    let (sb, specs) = four_old_sessions();
    let doc = sb.ok_json(&["archive", &specs[3].id]);
    let run = doc["data"]["run_id"].as_i64().unwrap();
    let log = sb.ok_json(&["log", "--run", &run.to_string()]);
    let op = log["data"]["ops"][0]["id"].as_i64().unwrap();
    sb.ok_json(&["restore", &op.to_string()]);
    assert!(specs[3].path_in(&sb.home).is_file());
}

#[test]
fn an_undo_of_an_undo_is_a_move_restore_takes_back() {
    let (sb, specs) = four_old_sessions();
    let original = specs[0].path_in(&sb.home);
    sb.ok_json(&["archive", &specs[0].id]);
    let undo = sb.ok_json(&["undo"]);
    let undo_run = undo["data"]["run_id"].as_i64().unwrap();
    assert!(original.is_file());
    assert!(
        sb.ok_json(&["restore", &specs[0].id])["data"]["reverted"]
            .as_array()
            .unwrap()
            .is_empty(),
        "after an undo the session is where Codex had it"
    );
    sb.ok_json(&["undo", "--run", &undo_run.to_string()]);
    assert!(!original.exists(), "undoing the undo archived it again");
    sb.ok_json(&["restore", &specs[0].id]);
    assert!(original.is_file());
}

#[test]
fn unknown_and_ambiguous_sessions_are_usage_errors() {
    let (sb, specs) = four_old_sessions();
    sb.ok_json(&["archive", &specs[0].id, &specs[1].id]);
    let files = sb.home_files();

    let (code, doc) = sb.json(&["restore", "ffffffff-ffff"]);
    assert_eq!(code, 2, "{doc:#}");
    let (code, doc) = sb.json(&["restore", "01950000-0000"]);
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["error"]["details"].as_array().unwrap().len(), 2);
    let (code, _) = sb.json(&["log", "--session", "01950000-0000"]);
    assert_eq!(code, 2);
    let (code, _) = sb.json(&["restore", " "]);
    assert_eq!(code, 2, "a blank name is no session");
    assert_eq!(sb.home_files(), files, "nothing moved");
}
