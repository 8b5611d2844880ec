//! Compacted journals (issue 23, the catalog's growth): prune replaces a forgotten run's op
//! rows by one compressed record, and `log` reads the run as it did before, text and JSON;
//! a kill inside the compaction leaves the rows or the record, `verify` passes and the
//! next prune finishes; dry runs change no byte; an op of a forgotten run that an op in
//! force still depends on stays a row, so what is in force never changes.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;

use codex_maint::testkit::fingerprint::{EntryState, differences, tree_fingerprint};
use support::{Sandbox, mixed_specs, write_large_logs};

fn cleanup(sb: &Sandbox, only: &str) {
    let args = ["--only", only, "--large-log-mb", "1"];
    let plan = sb.ok_json(&[&["cleanup", "--dry-run"][..], &args[..]].concat());
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    sb.ok_json(&[&["cleanup", "--yes", "--plan", &id][..], &args[..]].concat());
}

fn catalog(sb: &Sandbox) -> rusqlite::Connection {
    rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap()
}

/// (op rows of the run, lines in its record)
fn rows_and_lines(sb: &Sandbox, run: i64) -> (i64, i64) {
    let conn = catalog(sb);
    let rows = conn
        .query_row("SELECT COUNT(*) FROM ops WHERE run_id = ?1", [run], |r| {
            r.get(0)
        })
        .unwrap();
    let lines = conn
        .query_row(
            "SELECT COALESCE(SUM(ops), 0) FROM forgotten_journals WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )
        .unwrap();
    (rows, lines)
}

fn verify_ok(sb: &Sandbox, when: &str) {
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{when}: verify: {doc:#}");
}

fn text(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// What `log` shows of run 2 and of one session it moved, as text and as JSON.
fn log_views(sb: &Sandbox, session: &str) -> Vec<(String, Value)> {
    let prefix = &session[..23];
    [
        &["log", "--run", "2"][..],
        &["log"],
        &["log", "--session", session],
        &["log", "--session", prefix],
    ]
    .iter()
    .map(|args| {
        let (mut shown, mut data) = (text(sb, args), sb.ok_json(args)["data"].clone());
        if args.len() == 1 {
            // The list also shows the runs made since (the forget, the prune): only runs
            // 1 and 2 are compared.
            shown = shown
                .lines()
                .filter(|l| l.starts_with("- run 1 ·") || l.starts_with("- run 2 ·"))
                .collect::<Vec<_>>()
                .join("\n");
            data = Value::Array(data["runs"].as_array().unwrap()[..2].to_vec());
        }
        (shown, data)
    })
    .collect()
}

fn store_bytes(sb: &Sandbox) -> BTreeMap<String, EntryState> {
    tree_fingerprint(&sb.store)
}

/// Run 1 rotates the logs (kept), run 2 archives sessions; run 2 is forgotten with the
/// compaction killed at `point`, so its rows are still there.
fn forgotten_with_compaction_killed_at(point: &str) -> (Sandbox, BTreeMap<String, EntryState>) {
    let sb = Sandbox::with_sessions(&mixed_specs(12), true);
    write_large_logs(&sb.home);
    let logs_before = tree_fingerprint(&sb.home.join("log"));
    cleanup(&sb, "logs");
    cleanup(&sb, "sessions");
    let status = sb
        .process()
        .args(["forget", "--run", "2", "--yes"])
        .env(codex_maint::failpoint::ENV_VAR, point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the failpoint {point} stops the forget");
    (sb, logs_before)
}

fn a_session_of_run_2(sb: &Sandbox) -> String {
    let log = sb.ok_json(&["log", "--run", "2"]);
    log["data"]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|op| op["detail"]["thread_id"].as_str())
        .expect("run 2 moved a session")
        .to_string()
}

#[test]
fn a_compacted_run_reads_in_log_exactly_as_before_and_a_killed_compaction_is_finished() {
    let (sb, logs_before) = forgotten_with_compaction_killed_at("compact-run");
    let (rows, lines) = rows_and_lines(&sb, 2);
    assert!(rows > 0, "the kill inside the transaction leaves the rows");
    assert_eq!(lines, 0, "and no record");
    verify_ok(&sb, "right after the kill inside the compaction");
    let session = a_session_of_run_2(&sb);
    let before = log_views(&sb, &session);
    assert!(before[0].0.contains("forgotten"), "{}", before[0].0);

    // The dry run says what the prune will compact and writes nothing.
    let bytes_before = store_bytes(&sb);
    let dry = sb.ok_json(&["prune", "--dry-run"]);
    // Run 2's last op has the highest id: it stays a row, so no new op takes the id of a
    // compacted one.
    assert_eq!(dry["data"]["compacts"]["lines"], rows - 1, "{dry:#}");
    let forget_dry = sb.ok_json(&["forget", "--keep-last", "0", "--dry-run"]);
    assert_eq!(forget_dry["data"]["compacts"]["lines"], rows - 1);
    let diffs = differences(&bytes_before, &store_bytes(&sb));
    assert!(diffs.is_empty(), "a dry run wrote:\n{}", diffs.join("\n"));

    let pruned = sb.ok_json(&["prune"]);
    assert_eq!(pruned["data"]["pruned"]["compacted"]["lines"], rows - 1);
    assert_eq!(
        rows_and_lines(&sb, 2),
        (1, rows - 1),
        "the next prune finishes"
    );
    verify_ok(&sb, "after the prune that compacted");
    let after = log_views(&sb, &session);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b.0, a.0, "view {i}: log text changed by the compaction");
        assert_eq!(b.1, a.1, "view {i}: log JSON changed by the compaction");
    }

    // A compacted run still refuses undo, and restore of one of its ops or sessions,
    // naming the forget.
    let op = before[0].1["ops"][0]["id"].as_i64().unwrap().to_string();
    for args in [
        &["undo", "--run", "2", "--yes"][..],
        &["restore", &op, "--yes"],
        &["restore", &session, "--yes"],
    ] {
        let (code, doc) = sb.json(args);
        assert_eq!(code, 3, "{args:?}: {doc:#}");
        assert!(doc.to_string().contains("forgotten"), "{args:?}: {doc:#}");
    }
    // The run kept undoes byte-exact: the logs come back.
    sb.ok_json(&["undo", "--run", "1", "--yes"]);
    let diffs = differences(&logs_before, &tree_fingerprint(&sb.home.join("log")));
    assert!(diffs.is_empty(), "undo of run 1:\n{}", diffs.join("\n"));
    verify_ok(&sb, "after the undo of the run kept");
}

#[test]
fn a_kill_after_the_compaction_commit_leaves_the_record_whole() {
    let (sb, _) = forgotten_with_compaction_killed_at("compact-committed");
    let (rows, lines) = rows_and_lines(&sb, 2);
    assert_eq!(rows, 1, "committed: the rows are gone but the highest op's");
    assert!(lines > 0, "and the record holds them");
    verify_ok(&sb, "right after the kill after the commit");
    let doc = sb.ok_json(&["prune"]);
    assert_eq!(doc["data"]["pruned"]["compacted"]["lines"], 0, "{doc:#}");
    assert_eq!(rows_and_lines(&sb, 2), (1, lines));
    let log = sb.ok_json(&["log", "--run", "2"]);
    assert_eq!(
        log["data"]["ops"].as_array().unwrap().len() as i64,
        lines + 1
    );
    let verify = sb.ok_json(&["verify"]);
    assert_eq!(
        verify["data"]["checked"]["compacted_journals"]["lines"],
        lines
    );

    // verify reads every record: one that lost a line is a problem naming its run.
    let conn = catalog(&sb);
    let frame: Vec<u8> = conn
        .query_row(
            "SELECT lines FROM forgotten_journals WHERE run_id = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let text = String::from_utf8(zstd::stream::decode_all(frame.as_slice()).unwrap()).unwrap();
    let shorter: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let frame = zstd::stream::encode_all(shorter.as_bytes(), 3).unwrap();
    conn.execute(
        "UPDATE forgotten_journals SET lines = ?1 WHERE run_id = 2",
        [frame],
    )
    .unwrap();
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
    assert!(
        doc["data"]["problems"]
            .to_string()
            .contains("compacted journal of run 2"),
        "{doc:#}"
    );
}

/// What `verify` checks: items of ops in force, and of those, items moved on since.
fn items_in_force(sb: &Sandbox) -> (i64, i64) {
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "verify: {doc:#}");
    let items = &doc["data"]["checked"]["items"];
    (
        items["checked"].as_i64().unwrap(),
        items["taken_over_by_codex"].as_i64().unwrap_or(0),
    )
}

/// Run 1 archives, run 2 compresses what run 1 archived. Run 2 forgotten: its ops are
/// what keeps run 1's out of force (they picked the items up where run 1 left them), so
/// they stay rows; with them deleted, run 1's archive ops would be in force again, their
/// items read as moved on since.
#[test]
fn an_op_that_keeps_an_earlier_op_out_of_force_stays_a_row_until_both_are_forgotten() {
    let sb = Sandbox::with_sessions(&mixed_specs(30), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let plan = sb.ok_json(&["cleanup", "--only", "compress", "--dry-run"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap();
    sb.ok_json(&["cleanup", "--yes", "--plan", id]);
    let compressions = rows_and_lines(&sb, 2).0;
    assert!(compressions > 0);
    let undoable_before = sb.ok_json(&["log"])["data"]["runs"][0]["op_counts"].clone();

    let before = items_in_force(&sb);
    assert_eq!(before.1, 0);
    let forgot = sb.ok_json(&["forget", "--run", "2", "--yes"]);
    // Run 1's archive ops stay out of force: with them back in, verify would read each
    // of their items as moved on since (taken over by Codex) instead of not checking it.
    let items = items_in_force(&sb);
    assert_eq!(
        items,
        (before.0 - compressions, 0),
        "in force before: {before:?}"
    );
    let compacted = &forgot["data"]["pruned"]["compacted"];
    assert!(
        compacted["kept_as_rows"].as_i64().unwrap() >= compressions,
        "{forgot:#}"
    );
    assert_eq!(rows_and_lines(&sb, 2).0, compressions, "run 2 stays rows");
    assert_eq!(
        sb.ok_json(&["log"])["data"]["runs"][0]["op_counts"],
        undoable_before
    );

    let forgot = sb.ok_json(&["forget", "--run", "1", "--yes"]);
    assert!(
        forgot["data"]["pruned"]["compacted"]["lines"]
            .as_i64()
            .unwrap()
            > compressions
    );
    assert_eq!(
        rows_and_lines(&sb, 2),
        (1, compressions - 1),
        "the highest op stays"
    );
    assert_eq!(rows_and_lines(&sb, 1).0, 0);
    verify_ok(&sb, "both forgotten and compacted");
    let runs = sb.ok_json(&["log"])["data"]["runs"].clone();
    assert_eq!(runs[0]["op_counts"], undoable_before, "{runs:#}");
}
