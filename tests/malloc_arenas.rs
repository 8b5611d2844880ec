//! The one `unsafe` call in the product, `mallopt(M_ARENA_MAX, 2)` in `main`, must take
//! effect: a run whose reader pool has many threads (inspect reads every transcript's first
//! record on 16 or more threads) ends with at most two malloc arenas, where glibc would
//! otherwise give each allocating thread its own, up to eight per core.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use support::Sandbox;

#[test]
fn a_run_with_many_reader_threads_keeps_to_two_malloc_arenas() {
    let specs: Vec<SessionSpec> = (0..600)
        .map(|n| SessionSpec::aged(n, 20.0 + n as f64 / 100.0, 2_000))
        .collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let out = sb
        .cmd()
        .env("CODEX_MAINT_MALLOC_STATS", "1")
        .args(["--json", "inspect"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let arenas = stderr
        .lines()
        .filter(|l| l.starts_with("Arena ") && l.ends_with(':'))
        .count();
    assert!(
        (1..=2).contains(&arenas),
        "expected glibc's statistics for 1 or 2 arenas, found {arenas}:\n{stderr}"
    );
}
