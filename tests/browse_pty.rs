//! `browse` end to end: the real binary in a pseudo-terminal of 80x24, driven by keys as a
//! person would. It opens on a synthetic home, two sessions are marked and the plan
//! applied: they are archived, and only they; then `u` takes the run back and the home is
//! byte for byte as it was. Each step waits for the home or the store to show it, not for
//! the screen, which ratatui redraws only where it changed.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Expect, Session};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

fn spec(n: u64, age_days: f64, bytes: usize, cwd: &str) -> SessionSpec {
    let mut s = SessionSpec::aged(n, age_days, bytes);
    s.cwd = cwd.to_string();
    s
}

/// Waits until `done` holds, or fails the test saying what was awaited.
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send(session: &mut OsSession, keys: &str) {
    session.send(keys).unwrap();
    // One key at a time, as typed: each is drawn before the next arrives.
    std::thread::sleep(Duration::from_millis(300));
}

fn archived_names(home: &Path) -> Vec<String> {
    match std::fs::read_dir(home.join("archived_sessions")) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn marks_applied_in_the_terminal_archive_two_sessions_and_u_takes_them_back() {
    // No thread index: then every byte of the home, databases included, can be compared.
    let specs = vec![
        spec(1, 40.0, 90_000, "/work/api"),
        spec(2, 35.0, 60_000, "/work/api"),
        spec(3, 30.0, 30_000, "/work/api"),
        spec(4, 60.0, 40_000, "/work/web"),
    ];
    let sb = Sandbox::with_sessions(&specs, false);
    let before = tree_fingerprint(&sb.home);
    let marked: Vec<PathBuf> = specs[..2].iter().map(|s| s.path_in(&sb.home)).collect();

    let mut cmd = sb.process();
    cmd.arg("browse").env("TERM", "xterm-256color");
    let mut session = Session::spawn(cmd).expect("browse starts in a pty");
    session.get_process_mut().set_window_size(80, 24).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
        .expect("heaviest")
        .expect("the first screen is drawn");

    send(&mut session, "\r"); // the heaviest project, /work/api, its largest session first
    send(&mut session, " "); // session 1, to archive
    send(&mut session, " "); // session 2
    send(&mut session, "p");
    let plans = sb.store.join("plans");
    wait_for("the plan to be saved", Duration::from_secs(30), || {
        std::fs::read_dir(&plans).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
    });
    assert!(
        marked.iter().all(|p| p.exists()),
        "planning changed the home"
    );
    send(&mut session, "y");
    wait_for(
        "the two sessions to be archived",
        Duration::from_secs(60),
        || archived_names(&sb.home).len() == 2 && marked.iter().all(|p| !p.exists()),
    );
    let archived = archived_names(&sb.home);
    for s in &specs[..2] {
        assert!(archived.contains(&s.file_name()), "{archived:?}");
    }
    for s in &specs[2..] {
        assert!(
            s.path_in(&sb.home).exists(),
            "{} was not marked, yet it moved",
            s.file_name()
        );
    }

    send(&mut session, "u");
    send(&mut session, "y");
    wait_for("the run to be taken back", Duration::from_secs(60), || {
        differences(&before, &tree_fingerprint(&sb.home)).is_empty()
    });

    send(&mut session, "q"); // the log pane
    send(&mut session, "q"); // the group
    send(&mut session, "q"); // quits
    let status = session.get_process().wait().unwrap();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // Two runs in the journal: the cleanup and its undo.
    let log = sb.ok_json(&["log"]);
    let runs = log["data"]["runs"].as_array().expect("data.runs");
    let commands: Vec<&str> = runs.iter().filter_map(|r| r["command"].as_str()).collect();
    assert!(
        commands.contains(&"cleanup") && commands.contains(&"undo"),
        "{log:#}"
    );
}

#[test]
fn while_codex_runs_the_view_says_so_and_applying_changes_nothing() {
    let specs = vec![
        spec(1, 40.0, 90_000, "/work/api"),
        spec(2, 35.0, 60_000, "/work/api"),
    ];
    let sb = Sandbox::with_sessions(&specs, false);
    let mut codex = fake_codex(sb.dir.path(), &sb.home);
    let before = tree_fingerprint(&sb.home);

    let mut cmd = sb.process();
    cmd.arg("browse").env("TERM", "xterm-256color");
    let mut session = Session::spawn(cmd).expect("browse starts in a pty");
    session.get_process_mut().set_window_size(80, 24).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
        .expect("running,")
        .expect("the banner says Codex is running");
    send(&mut session, "\r");
    send(&mut session, " ");
    send(&mut session, "p");
    send(&mut session, "y");
    send(&mut session, "u");
    send(&mut session, "y");
    // Enough time for a run to have begun, had it been started.
    std::thread::sleep(Duration::from_secs(2));
    send(&mut session, "q");
    send(&mut session, "q");
    send(&mut session, "q");
    let status = session.get_process().wait().unwrap();
    codex.kill().unwrap();
    codex.wait().unwrap();
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let runs = match sb.json(&["log"]) {
        (0, doc) => doc["data"]["runs"].as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    };
    assert!(runs.is_empty(), "a run was made while Codex ran: {runs:?}");
}
