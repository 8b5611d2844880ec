//! `forget` and `prune` (issue 23): dry runs change no byte of the store; the only copy of
//! a log and a retired session each need their own yes; a forgotten run stays in `log`
//! and refuses undo; a prune killed anywhere leaves a store that verifies, and every run
//! not forgotten still undoes byte-exact; a prune and a cleanup never write at once.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use codex_maint::testkit::fingerprint::{EntryState, tree_fingerprint};
use support::{Sandbox, error_message, mixed_specs, write_large_logs};

/// Run 1 rotates the logs into the store (their blobs are the only copies), run 2
/// archives sessions; each cleanup takes a backup and leaves its applied plan.
struct TwoRuns {
    sb: Sandbox,
    /// The home after run 1, before run 2: what undoing run 2 gives back.
    after_first: BTreeMap<String, EntryState>,
    rows_after_first: Vec<(String, String, i64, Option<i64>, i64)>,
}

fn cleanup(sb: &Sandbox, only: &str) -> Value {
    let args = ["--only", only, "--large-log-mb", "1"];
    let plan = sb.ok_json(&[&["cleanup", "--dry-run"][..], &args[..]].concat());
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    sb.ok_json(&[&["cleanup", "--yes", "--plan", &id][..], &args[..]].concat())
}

fn two_runs() -> TwoRuns {
    let sb = Sandbox::with_sessions(&mixed_specs(12), true);
    write_large_logs(&sb.home);
    cleanup(&sb, "logs");
    let after_first = sb.home_files_except_databases();
    let rows_after_first = sb.thread_rows();
    cleanup(&sb, "sessions");
    TwoRuns {
        sb,
        after_first,
        rows_after_first,
    }
}

fn store_bytes(sb: &Sandbox) -> BTreeMap<String, EntryState> {
    tree_fingerprint(&sb.store)
}

fn blob_files(store: &Path) -> usize {
    walkdir::WalkDir::new(store.join("blobs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count()
}

fn verify_ok(sb: &Sandbox, when: &str) {
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{when}: verify: {doc:#}");
}

#[test]
fn dry_runs_change_no_byte_of_the_store() {
    let t = two_runs();
    let before = store_bytes(&t.sb);
    for args in [
        &["forget", "--keep-last", "1", "--dry-run"][..],
        &[
            "forget",
            "--keep-last",
            "1",
            "--yes-delete-only-copies",
            "--dry-run",
        ],
        &["forget", "--run", "1", "--dry-run"],
        &["prune", "--dry-run"],
        &["inspect"],
    ] {
        let (code, doc) = t.sb.json(args);
        assert_eq!(code, 0, "{args:?}: {doc:#}");
        let after = store_bytes(&t.sb);
        let diffs = codex_maint::testkit::fingerprint::differences(&before, &after);
        assert!(
            diffs.is_empty(),
            "{args:?} changed the store:\n{}",
            diffs.join("\n")
        );
    }
    let inspect = t.sb.ok_json(&["inspect"]);
    let store = &inspect["data"]["store"];
    assert!(store["sizes"]["backups"].as_u64().unwrap() > 0, "{store:#}");
    assert!(store["sizes"]["blobs"].as_u64().unwrap() > 0, "{store:#}");
    assert!(store["sizes"]["catalog"].as_u64().unwrap() > 0, "{store:#}");
    assert_eq!(store["sizes"]["retired_sessions"], 0);
    // The two cleanups' plans were applied: prune would remove them.
    assert!(store["prune_would_free"].as_u64().unwrap() > 0, "{store:#}");
    assert_eq!(t.sb.json(&["forget", "--run", "99", "--dry-run"]).0, 2);
    // What the dry run lists: run 1 can no longer be undone and its logs are only copies.
    let doc = t.sb.ok_json(&[
        "forget",
        "--keep-last",
        "1",
        "--yes-delete-only-copies",
        "--dry-run",
    ]);
    let forget = doc["data"]["plan"]["forget"].as_array().unwrap();
    assert_eq!(forget.len(), 1, "{doc:#}");
    assert_eq!(forget[0]["run_id"], 1);
    let only: Vec<&str> = forget[0]["only_copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        only.iter().any(|p| p.ends_with("codex-tui.log")),
        "{only:?}"
    );
    assert!(
        doc["data"]["frees"]["bytes"].as_u64().unwrap() > 0,
        "{doc:#}"
    );
}

#[test]
fn the_only_copy_of_a_log_needs_its_own_yes_and_a_forgotten_run_stays_in_log_but_refuses_undo() {
    let t = two_runs();
    let sb = &t.sb;
    let blobs_before = blob_files(&sb.store);
    assert!(blobs_before > 0);

    let doc = sb.ok_json(&["forget", "--keep-last", "1", "--yes"]);
    let skipped = doc["data"]["plan"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{doc:#}");
    assert_eq!(skipped[0]["run_id"], 1);
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("only copy") && reason.contains("--yes-delete-only-copies"),
        "{reason}"
    );
    assert_eq!(
        blob_files(&sb.store),
        blobs_before,
        "nothing freed without the yes"
    );

    let doc = sb.ok_json(&[
        "forget",
        "--keep-last",
        "1",
        "--yes-delete-only-copies",
        "--yes",
    ]);
    assert_eq!(doc["data"]["plan"]["forget"][0]["run_id"], 1, "{doc:#}");
    assert!(
        blob_files(&sb.store) < blobs_before,
        "the log blobs are freed"
    );
    verify_ok(sb, "after forget");

    let log = sb.ok_json(&["log"]);
    let run1 = log["data"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == 1)
        .unwrap();
    assert!(run1["forgotten_at"].is_string(), "{run1:#}");
    let text = String::from_utf8(sb.cmd().arg("log").output().unwrap().stdout).unwrap();
    assert!(text.contains("forgotten"), "{text}");

    let (code, doc) = sb.json(&["undo", "--run", "1"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("forgotten"), "{doc:#}");
    let op = sb.ok_json(&["log", "--run", "1"])["data"]["ops"][0]["id"]
        .as_i64()
        .unwrap();
    let (code, doc) = sb.json(&["restore", &op.to_string()]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("forgotten"), "{doc:#}");

    // The run kept still undoes exactly.
    sb.ok_json(&["undo"]);
    sb.assert_back_to(&t.after_first, &t.rows_after_first, "undo of run 2");
    verify_ok(sb, "after undo");
}

/// The rule is keyed on the op kind's text, so it holds before retire exists: a run with
/// a retired session in force is never forgotten without `--include-retired`.
#[test]
fn a_retired_session_is_never_forgotten_without_its_own_flag() {
    let t = two_runs();
    let sb = &t.sb;
    let retire_run = {
        let conn = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (command, args, home, started_at, finished_at, status)
               VALUES ('retire', '[]', '/h', '2020-01-01T00:00:00Z', '2020-01-01T00:00:01Z', 'done');
             INSERT INTO ops (run_id, seq, kind, state, src, dst, detail, prepared_at, finished_at)
               VALUES (last_insert_rowid(), 1, 'retire_session', 'applied', '/h/sessions/r.jsonl',
                       'store:/h/sessions/r.jsonl', '{}', '2020-01-01T00:00:00Z', '2020-01-01T00:00:01Z');",
        )
        .unwrap();
        conn.query_row("SELECT MAX(id) FROM runs", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let run = retire_run.to_string();
    for args in [
        &["forget", "--run", &run, "--yes", "--yes-delete-only-copies"][..],
        &[
            "forget",
            "--keep-within",
            "1d",
            "--yes",
            "--yes-delete-only-copies",
        ],
    ] {
        let doc = sb.ok_json(args);
        let skipped = &doc["data"]["plan"]["skipped"];
        let mine = skipped
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["run_id"] == retire_run)
            .unwrap_or_else(|| panic!("{args:?}: the retire run is not kept: {doc:#}"));
        assert!(
            mine["reason"]
                .as_str()
                .unwrap()
                .contains("--include-retired")
        );
        assert!(!forgotten(sb).contains(&retire_run), "{args:?}");
    }
    sb.ok_json(&["forget", "--run", &run, "--yes", "--include-retired"]);
    assert!(forgotten(sb).contains(&retire_run));
}

fn forgotten(sb: &Sandbox) -> Vec<i64> {
    let conn = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
    let mut stmt = conn.prepare("SELECT run_id FROM forgotten_runs").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Prune aborted at each of its points (the decision recorded, after each removal) and
/// killed at seeded moments: `verify` passes right after, the next prune finishes the
/// sweep, and the run kept undoes byte-exact.
#[test]
fn a_prune_killed_anywhere_leaves_a_store_that_verifies_and_the_kept_run_undoes() {
    let seed = std::env::var("CODEX_MAINT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| codex_maint::clock::now_unix() as u64);
    eprintln!("CODEX_MAINT_KILL_SEED={seed}");
    let mut kills: Vec<(String, Option<u64>)> = [
        "forget-recorded",
        "prune-decided",
        "prune-swept@1",
        "prune-swept@2",
        "prune-swept@4",
    ]
    .iter()
    .map(|p| (p.to_string(), None))
    .collect();
    for i in 0..2 {
        let micros = (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i * 1442695040888963407)
            >> 33)
            % 60_000;
        kills.push(("sigkill".into(), Some(micros)));
    }
    let mut stopped = 0;
    for (point, after) in kills {
        let t = two_runs();
        let sb = &t.sb;
        let mut cmd = sb.process();
        cmd.args([
            "forget",
            "--keep-last",
            "1",
            "--yes",
            "--yes-delete-only-copies",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let status = support::run_and_stop(&mut cmd, &point, after);
        stopped += !status.success() as usize;
        verify_ok(sb, &format!("right after the kill at {point} {after:?}"));
        let doc = sb.ok_json(&["prune"]);
        verify_ok(sb, &format!("after the prune that follows {point}"));
        assert_eq!(doc["data"]["pruned"]["kept_again"], 0, "{doc:#}");
        let conn = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
        let condemned: i64 = conn
            .query_row("SELECT COUNT(*) FROM prune_condemned", [], |r| r.get(0))
            .unwrap();
        assert_eq!(condemned, 0, "{point}: the sweep is finished");
        let backups: i64 = conn
            .query_row("SELECT COUNT(*) FROM backups", [], |r| r.get(0))
            .unwrap();
        let folders = sb.store.join("backups").read_dir().unwrap().count() as i64;
        assert_eq!(
            backups, folders,
            "{point}: every backup folder has its row, and no more"
        );
        sb.ok_json(&["undo"]);
        sb.assert_back_to(
            &t.after_first,
            &t.rows_after_first,
            &format!("undo after {point}"),
        );
    }
    assert!(stopped >= 5, "every failpoint stops the run ({stopped})");
}

/// Prune holds the store (and the home) while it sweeps: a cleanup that starts then is
/// refused with the reason, and the prune finishes.
#[test]
fn a_cleanup_during_a_prune_is_refused_with_the_reason() {
    let sb = &Sandbox::with_sessions(&mixed_specs(12), true);
    write_large_logs(&sb.home);
    cleanup(sb, "logs");
    let only = ["--only", "sessions", "--large-log-mb", "1"];
    let plan =
        sb.ok_json(&[&["cleanup", "--dry-run"][..], &only[..]].concat())["data"]["plan"]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let marker = sb.dir.path().join("paused");
    let mut prune = sb
        .process()
        .args(["prune"])
        .env(
            codex_maint::failpoint::PAUSE_VAR,
            format!("prune-decided={}", marker.display()),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(marker.exists(), "prune reached its decision");
    let (code, doc) = sb.json(&[&["cleanup", "--yes", "--plan", &plan][..], &only[..]].concat());
    std::fs::remove_file(&marker).unwrap();
    assert!(prune.wait().unwrap().success());
    assert_eq!(code, 3, "{doc:#}");
    let why = error_message(&doc);
    assert!(
        why.contains("prune") && why.contains("nothing was changed"),
        "{doc:#}"
    );
    verify_ok(sb, "after both");
}

fn scheduled_run(sb: &Sandbox) -> (i32, String, Value) {
    let out = sb
        .cmd()
        .args([
            "cleanup",
            "--policy",
            sb.store.join("policy.toml").to_str().unwrap(),
            "--unattended",
        ])
        .output()
        .unwrap();
    let text = std::fs::read_to_string(sb.store.join("reports/latest.txt")).unwrap_or_default();
    let json = std::fs::read(sb.store.join("reports/latest.json")).unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        text,
        serde_json::from_slice(&json).unwrap_or(Value::Null),
    )
}

fn set_policy(sb: &Sandbox, store_section: &str) {
    let path = sb.store.join("policy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("unattended = []", "unattended = [\"logs\"]")
        .replace("large_log_mb = 50", "large_log_mb = 1");
    let cut = text.find("[store]").unwrap();
    std::fs::write(&path, format!("{}[store]\n{store_section}\n", &text[..cut])).unwrap();
    sb.ok_json(&["automation", "--approve"]);
}

fn age_run(sb: &Sandbox, run: i64, days: i64) {
    let conn = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
    let then = (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    conn.execute(
        "UPDATE runs SET started_at = ?1 WHERE id = ?2",
        rusqlite::params![then, run],
    )
    .unwrap();
}

/// The policy's budget: runs past `keep_within` are forgotten by the scheduled run, which
/// says so; the only copy of a log goes only when the policy says yes; `max_store_bytes`
/// forgets the oldest runs but never the newest, and says when it cannot get under.
#[test]
fn the_scheduled_run_keeps_the_store_inside_the_policy_and_says_what_it_dropped() {
    let sb = Sandbox::with_sessions(&mixed_specs(8), true);
    sb.ok_json(&["automation", "--init"]);
    let rotate_a_log = |tag: &str| {
        std::fs::create_dir_all(sb.home.join("log")).unwrap();
        std::fs::write(sb.home.join("log/codex-tui.log"), tag.repeat(2 << 20)).unwrap();
    };

    set_policy(&sb, "keep_within = \"30d\"\ndelete_only_copies = false");
    rotate_a_log("a");
    let (code, report, _) = scheduled_run(&sb);
    assert_eq!(code, 0, "{report}");
    let first = 1;
    age_run(&sb, first, 60);
    rotate_a_log("b");
    let (code, report, doc) = scheduled_run(&sb);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains(&format!("store budget kept run {first}")) && report.contains("only copy"),
        "{report}"
    );
    assert!(forgotten(&sb).is_empty(), "{doc:#}");

    set_policy(&sb, "keep_within = \"30d\"\ndelete_only_copies = true");
    rotate_a_log("c");
    let (code, report, doc) = scheduled_run(&sb);
    assert_eq!(code, 0, "{report}");
    assert_eq!(forgotten(&sb), vec![first], "{doc:#}");
    assert!(
        report.contains(&format!("store budget: forgot run {first}")),
        "{report}"
    );
    let freed = doc["data"]["store_budget"]["pruned"]["removed"]
        .as_array()
        .unwrap();
    assert!(freed.iter().any(|c| c["kind"] == "backup"), "{doc:#}");
    assert!(freed.iter().any(|c| c["kind"] == "blob"), "{doc:#}");
    verify_ok(&sb, "after the budget");

    set_policy(&sb, "max_store_bytes = 1\ndelete_only_copies = true");
    rotate_a_log("d");
    let (code, report, doc) = scheduled_run(&sb);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("still over max_store_bytes"), "{report}");
    let newest = sb.ok_json(&["log"])["data"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["command"] == "cleanup")
        .map(|r| r["id"].as_i64().unwrap())
        .max()
        .unwrap();
    let gone = forgotten(&sb);
    assert!(
        !gone.contains(&newest),
        "the newest run is kept: {gone:?} {doc:#}"
    );
    assert!(
        gone.len() >= 3,
        "every older cleanup is forgotten: {gone:?}"
    );
    verify_ok(&sb, "after the byte budget");
    sb.ok_json(&["undo"]);
    assert!(
        sb.home.join("log/codex-tui.log").exists(),
        "the newest run still undoes"
    );
}
