//! Log rotation alone: `cleanup --only logs,releases` moving a plain-text log, the log
//! database and two old daemon releases into the store, against `tar | zstd -3 -T0` over
//! the same files, alternated in the same process tree, each repeated and the best taken
//! (the machine is shared, so the fastest run is the least disturbed one). Between runs,
//! `undo` puts the items back, so every run sees the same home.
//!
//! `cargo bench --bench rotation` uses the full shape's items (a 300 MB log, 200 MB
//! releases); `CODEX_MAINT_BENCH=quick` the quick shape's; `CODEX_MAINT_ROTATION_RUNS` sets
//! the repetitions (default 3); `CODEX_MAINT_BENCH_DIR` where the home is built.

use std::path::PathBuf;
use std::process::Command;

use codex_maint::testkit::heavy_home::HeavyHome;

mod support;
use support::{Measured, bench_dir, drop_caches, measure, ours_in, sh};

const OLD_RELEASES: [&str; 2] = [
    "0.160.0-x86_64-unknown-linux-musl",
    "0.165.0-x86_64-unknown-linux-musl",
];

/// CPU seconds (user + system) of every child and grandchild waited for so far: a figure
/// a shared machine disturbs less than wall time.
fn children_cpu_secs() -> f64 {
    // SAFETY: rusage is plain data, zero is a valid value; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// `measure`, plus the CPU seconds the run and its children used.
fn measure_with_cpu(cmd: &mut Command) -> (Measured, f64) {
    let before = children_cpu_secs();
    let m = measure(cmd);
    (m, children_cpu_secs() - before)
}

fn keep_best(best: &mut Option<Measured>, m: Measured) {
    assert!(m.ok, "a measured run failed");
    if best.as_ref().is_none_or(|b| m.secs < b.secs) {
        *best = Some(m);
    }
}

fn main() {
    let quick = std::env::var("CODEX_MAINT_BENCH").is_ok_and(|v| v == "quick");
    let items = if quick {
        HeavyHome::quick()
    } else {
        HeavyHome::full()
    };
    let shape = HeavyHome {
        sessions: 0,
        total_bytes: 0,
        old_sessions: 0,
        ..items
    };
    let runs: usize = std::env::var("CODEX_MAINT_ROTATION_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = bench_dir("codex-maint-rotation-");
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_codex-maint"));
    let ours = |args: &[&str]| ours_in(&bin, &home, &store, dir.path(), args);
    shape.build(&home).unwrap();

    let tar = format!(
        "tar -C \"{h}\" -cf - log/codex-tui.log logs_2.sqlite packages/app-server-daemon/releases/{} packages/app-server-daemon/releases/{} | zstd -3 -T0 -q -c > \"{}/baseline.tar.zst\"",
        OLD_RELEASES[0],
        OLD_RELEASES[1],
        dir.path().display(),
        h = home.display()
    );
    let rotate = ["--only", "logs,releases", "--large-log-mb", "1"];
    let cold = drop_caches();
    let mut baseline = None;
    let mut rotation = None;
    let (mut baseline_cpu, mut rotation_cpu) = (f64::MAX, f64::MAX);
    for run in 0..runs {
        drop_caches();
        let (b, b_cpu) = measure_with_cpu(&mut sh(&tar));
        let _ = std::fs::remove_file(dir.path().join("baseline.tar.zst"));
        let plan_out = ours(&[&["cleanup", "--dry-run"][..], &rotate[..]].concat())
            .output()
            .unwrap();
        let plan: serde_json::Value = serde_json::from_slice(&plan_out.stdout).unwrap();
        let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
        drop_caches();
        let (o, o_cpu) = measure_with_cpu(&mut ours(
            &[&["cleanup", "--yes", "--plan", &id][..], &rotate[..]].concat(),
        ));
        eprintln!(
            "run {run}: cleanup {:.2} s ({o_cpu:.2} s CPU, {:.0} MB peak), tar | zstd -3 -T0 {:.2} s ({b_cpu:.2} s CPU, {:.0} MB peak)",
            o.secs, o.max_rss_mb, b.secs, b.max_rss_mb
        );
        baseline_cpu = baseline_cpu.min(b_cpu);
        rotation_cpu = rotation_cpu.min(o_cpu);
        keep_best(&mut baseline, b);
        keep_best(&mut rotation, o);
        let undone = Command::new(&bin)
            .arg("--home")
            .arg(&home)
            .arg("--store")
            .arg(&store)
            .args(["undo", "--yes"])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            undone.status.success(),
            "undo failed: {}",
            String::from_utf8_lossy(&undone.stderr)
        );
    }
    let (o, b) = (rotation.unwrap(), baseline.unwrap());
    println!(
        "\nrotation of a {} MB log, the log database and 2 old {} MB releases, best of {runs} ({} cache):\n\
         | workload | time | peak | baseline | baseline time | baseline peak | ratio | target |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         | cleanup --only logs,releases | {:.2} s | {:.0} MB | tar | zstd -3 -T0 | {:.2} s | {:.0} MB | {:.2}x | <= 1.5x, peak < 100 MB: {} |",
        items.log_bytes >> 20,
        items.release_bytes >> 20,
        if cold { "cold" } else { "warm" },
        o.secs,
        o.max_rss_mb,
        b.secs,
        b.max_rss_mb,
        o.secs / b.secs.max(1e-9),
        if o.secs <= 1.5 * b.secs && o.max_rss_mb < 100.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "CPU (user + system, least of {runs}): cleanup {rotation_cpu:.2} s, tar | zstd -3 -T0 {baseline_cpu:.2} s, {:.2}x",
        rotation_cpu / baseline_cpu.max(1e-9)
    );
}
