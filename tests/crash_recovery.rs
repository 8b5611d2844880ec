//! The binary is aborted at every named failure point of the journal protocol, during an
//! archive and during an undo; recovery must then leave every session exactly once, whole,
//! with its thread row matching where it is, and a later undo must still reach the start.

mod support;

use codex_maint::failpoint::{ENV_VAR, SESSION_MOVE_POINTS};
use codex_maint::testkit::synthetic_home::SessionSpec;
use support::*;

fn specs() -> Vec<SessionSpec> {
    (0..6)
        .map(|i| SessionSpec::aged(i, 30.0, 2000 + i as usize * 300))
        .collect()
}

/// Every point, plus the middle of a batch (some files moved, some not).
fn points() -> Vec<String> {
    let mut all: Vec<String> = SESSION_MOVE_POINTS.iter().map(|p| p.to_string()).collect();
    all.push("file-moved@3".into());
    all.push("move-renamed@4".into());
    all
}

fn crash(sb: &Sandbox, point: &str, args: &[&str]) {
    let out = sb.cmd().env(ENV_VAR, point).args(args).output().unwrap();
    assert!(
        !out.status.success(),
        "{point}: the run was meant to abort: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failpoint"),
        "{point} was never reached"
    );
}

#[test]
fn an_archive_killed_at_any_point_recovers_to_a_consistent_home() {
    for point in points() {
        let sb = Sandbox::with_sessions(&specs(), true);
        let hashes = session_hashes(&sb.home);
        let files_before = sb.home_files_except_databases();
        let rows_before = sb.thread_rows();
        crash(&sb, &point, &["archive", "--older-than", "10d", "--yes"]);

        let doc = sb.ok_json(&["recover"]);
        for r in doc["data"]["recovered"].as_array().unwrap() {
            assert_ne!(r["result"]["outcome"], "stuck", "{point}: {r:#}");
        }
        assert_sessions_whole_and_consistent(&sb.home, &hashes);
        assert_eq!(sb.json(&["verify"]).0, 0, "{point}: verify after recovery");

        // Whatever was applied can be taken back to the exact start.
        let log = sb.ok_json(&["log"]);
        if log["data"]["runs"][0]["op_counts"]["applied"]
            .as_i64()
            .unwrap()
            > 0
        {
            sb.ok_json(&["undo", "--run", "1"]);
        }
        assert_eq!(
            files_before,
            sb.home_files_except_databases(),
            "{point}: files after undo"
        );
        assert_eq!(rows_before, sb.thread_rows(), "{point}: rows after undo");
    }
}

#[test]
fn an_undo_killed_at_any_point_recovers_and_can_be_finished() {
    for point in points() {
        let sb = Sandbox::with_sessions(&specs(), true);
        let hashes = session_hashes(&sb.home);
        let files_before = sb.home_files_except_databases();
        let rows_before = sb.thread_rows();
        sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
        crash(&sb, &point, &["undo"]);

        // The next writing command recovers first, then finishes the undo.
        let doc = sb.ok_json(&["undo", "--run", "1"]);
        assert!(
            doc["sections"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i.as_str().unwrap().contains("recovered interrupted op")))
                || point == "run-finishing"
                || point == "op-applied",
            "{point}: recovery is reported: {doc:#}"
        );
        assert_sessions_whole_and_consistent(&sb.home, &hashes);
        assert_eq!(
            files_before,
            sb.home_files_except_databases(),
            "{point}: files after finishing the undo"
        );
        assert_eq!(
            rows_before,
            sb.thread_rows(),
            "{point}: rows after finishing the undo"
        );
        assert_eq!(sb.json(&["verify"]).0, 0);
    }
}
