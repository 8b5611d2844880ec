//! Real runs of archive, cleanup and their undos are SIGKILLed at random moments (not only
//! at named failure points). After `recover` no temporary file of ours is left in the home
//! or the store, every session is whole and exactly once, and undo gives back the start.
//! `CODEX_MAINT_KILL_ROUNDS` sets the rounds per scenario (default 6); the seed of each run
//! is printed so a failure can be replayed with `CODEX_MAINT_KILL_SEED`.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// xorshift64*: enough to spread kill times, with no dependency.
struct Moments(u64);

impl Moments {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("CODEX_MAINT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

fn rounds() -> usize {
    std::env::var("CODEX_MAINT_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// Heavy enough that a run takes a while: many sessions, a log to rotate.
fn home() -> Sandbox {
    let specs: Vec<SessionSpec> = (0..60)
        .map(|i| SessionSpec::aged(i, 30.0, 4000 + (i as usize * 577) % 20_000))
        .collect();
    let sb = Sandbox::with_sessions(&specs, true);
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    std::fs::write(
        sb.home.join("log/codex-tui.log"),
        "line of log\n".repeat(400_000),
    )
    .unwrap();
    sb
}

/// Starts the binary as `Sandbox::cmd` would, SIGKILLs it after `after`, and returns
/// whether it was still running then.
fn kill_after(sb: &Sandbox, args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("codex-maint"))
        .env("HOME", sb.dir.path())
        .env("CODEX_HOME", &sb.home)
        .env("CODEX_MAINT_STORE", &sb.store)
        .env_remove(codex_maint::failpoint::ENV_VAR)
        .env("CODEX_MAINT_LOCK_WAIT_MS", "500")
        .arg("--home")
        .arg(&sb.home)
        .arg("--store")
        .arg(&sb.store)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

fn temporary_files(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(codex_maint::fs_atomic::TEMP_PREFIX)
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

/// `recover` settles everything, leaves no temporary file anywhere, and the home holds
/// every session once and whole.
fn recover_cleanly(sb: &Sandbox, hashes: &std::collections::BTreeMap<String, String>, what: &str) {
    let doc = sb.ok_json(&["recover"]);
    for r in doc["data"]["recovered"].as_array().unwrap() {
        assert_ne!(r["result"]["outcome"], "stuck", "{what}: {r:#}");
    }
    let left: Vec<String> = temporary_files(&sb.home)
        .into_iter()
        .chain(temporary_files(&sb.store))
        .collect();
    assert!(left.is_empty(), "{what}: temporary files left: {left:#?}");
    assert_sessions_whole_and_consistent(&sb.home, hashes);
    let (code, verify) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{what}: verify after recovery: {verify:#}");
}

/// Takes back everything run 1 still has in force, then checks the home is the start.
fn undo_to_the_start(
    sb: &Sandbox,
    files_before: &std::collections::BTreeMap<
        String,
        codex_maint::testkit::fingerprint::EntryState,
    >,
    rows_before: &[(String, String, i64, Option<i64>, i64)],
    what: &str,
) {
    let runs = sb.ok_json(&["log"])["data"]["runs"].clone();
    if !runs.as_array().unwrap().is_empty() {
        let (code, doc) = sb.json(&["undo", "--run", "1"]);
        assert_eq!(code, 0, "{what}: undo after recovery: {doc:#}");
    }
    let diffs = codex_maint::testkit::fingerprint::differences(
        files_before,
        &sb.home_files_except_databases(),
    );
    assert!(
        diffs.is_empty(),
        "{what}: after undo:\n{}",
        diffs.join("\n")
    );
    assert_eq!(rows_before, sb.thread_rows(), "{what}: rows after undo");
}

/// The arguments of `mutate` for `sb`: a cleanup applies the plan a dry run just saved.
fn full_args(sb: &Sandbox, mutate: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = mutate.iter().map(|s| s.to_string()).collect();
    if mutate[0] == "cleanup" {
        let plan =
            sb.ok_json(&["cleanup", "--dry-run", "--large-log-mb", "1"])["data"]["plan"]["id"]
                .as_str()
                .unwrap()
                .to_string();
        args.extend(["--plan".to_string(), plan]);
    }
    args
}

/// How long the run to be killed takes uninterrupted on this machine, so the kill
/// moments spread over the whole of it whatever the machine's speed.
fn full_duration(mutate: &[&str], kill_undo: bool) -> Duration {
    let sb = home();
    let args = full_args(&sb, mutate);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if kill_undo {
        sb.ok_json(&args);
    }
    let started = Instant::now();
    if kill_undo {
        sb.ok_json(&["undo", "--run", "1"]);
    } else {
        sb.ok_json(&args);
    }
    started.elapsed()
}

fn scenario(name: &str, mutate: &[&str], kill_undo: bool) {
    let seed = seed();
    let full = full_duration(mutate, kill_undo);
    eprintln!("{name}: CODEX_MAINT_KILL_SEED={seed}, a whole run takes {full:?}");
    let mut moments = Moments(seed);
    let mut killed = 0;
    for round in 0..rounds() {
        let sb = home();
        let hashes = session_hashes(&sb.home);
        let files_before = sb.home_files_except_databases();
        let rows_before = sb.thread_rows();
        let args = full_args(&sb, mutate);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let at = Duration::from_micros(moments.below(full.as_micros() as u64));
        let what = format!("{name} round {round}, killed after {at:?}");
        if kill_undo {
            sb.ok_json(&args);
            killed += kill_after(&sb, &["undo", "--run", "1"], at) as usize;
        } else {
            killed += kill_after(&sb, &args, at) as usize;
        }
        recover_cleanly(&sb, &hashes, &what);
        undo_to_the_start(&sb, &files_before, &rows_before, &what);
    }
    eprintln!("{name}: {killed} of {} runs were killed mid-way", rounds());
    assert!(
        killed > 0,
        "{name}: no run was still going when killed, though every moment was inside a whole run's time"
    );
}

#[test]
fn archive_killed_at_random_moments() {
    scenario(
        "archive",
        &["archive", "--older-than", "10d", "--yes"],
        false,
    );
}

#[test]
fn undo_of_an_archive_killed_at_random_moments() {
    scenario(
        "undo of archive",
        &["archive", "--older-than", "10d", "--yes"],
        true,
    );
}

#[test]
fn cleanup_killed_at_random_moments() {
    scenario(
        "cleanup",
        &["cleanup", "--yes", "--large-log-mb", "1"],
        false,
    );
}

#[test]
fn undo_of_a_cleanup_killed_at_random_moments() {
    scenario(
        "undo of cleanup",
        &["cleanup", "--yes", "--large-log-mb", "1"],
        true,
    );
}
