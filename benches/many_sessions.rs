//! codex-maint on homes of many sessions: does each command's peak memory stay bounded and
//! its time grow no faster than the home? The same generator builds two homes, one five
//! times the other (quick: 2,000 and 10,000 sessions; `CODEX_MAINT_BENCH=full`: 20,000 and
//! 100,000), with the full benchmark mix: long tail of sizes, a few huge transcripts,
//! pinned, current and archived sessions, a thread index Codex made and filled. Each
//! command runs as a child process; wall time and the peak RSS of its tree are measured.
//!
//! With the real Codex installed it also times Codex's own `thread/list` (the resume
//! picker's question) of active and archived threads before and after a policy archive,
//! checks every thread is still listed, and asks `codex doctor` for rollout/index parity
//! after each change.
//!
//! `CODEX_MAINT_BENCH_KIB_PER_SESSION` sets the transcript bytes per session (default 50:
//! what is measured here is the per-session cost; `benches/scale.rs` measures the bytes).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use codex_maint::testkit::heavy_home::HeavyHome;

mod support;
use support::codex_app::{self, AppServer, Listing};
use support::{Measured, bench_dir, best_of, measure, measure_cold, ours_in};

/// One command's figures at each of the two scales.
struct Row {
    workload: String,
    small: Measured,
    large: Measured,
}

struct CodexFigures {
    /// Active transcripts on disk when each listing ran.
    active_total_before: u64,
    active_total_after: u64,
    active_before: Listing,
    archived_before: Listing,
    active_after: Listing,
    archived_after: Listing,
    parity: Vec<(String, String)>,
}

struct Scale {
    sessions: u64,
    /// `browse` drawn headless: its own report of the first screen and the scroll frames.
    browse_frames: serde_json::Value,
    archived_by_policy: u64,
    compressed: u64,
    codex: Option<CodexFigures>,
}

fn main() {
    let full = std::env::var("CODEX_MAINT_BENCH").is_ok_and(|v| v == "full");
    let (small, large) = if full {
        (20_000, 100_000)
    } else {
        (2_000, 10_000)
    };
    let kib: u64 = std::env::var("CODEX_MAINT_BENCH_KIB_PER_SESSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let codex = codex_maint::testkit::installed_codex();
    if codex.is_none() {
        eprintln!("the real Codex is not installed: its listing and doctor are not measured");
    }
    let (small_rows, small_scale) = run_scale(small, kib, codex.as_deref());
    let (large_rows, large_scale) = run_scale(large, kib, codex.as_deref());
    let rows: Vec<Row> = small_rows
        .into_iter()
        .zip(large_rows)
        .map(|((workload, s), (_, l))| Row {
            workload,
            small: s,
            large: l,
        })
        .collect();
    report(&rows, &small_scale, &large_scale, kib);
}

fn run_scale(sessions: u64, kib: u64, codex: Option<&Path>) -> (Vec<(String, Measured)>, Scale) {
    let dir = bench_dir("codex-maint-many-");
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_codex-maint"));
    let ours = |args: &[&str]| ours_in(&bin, &home, &store, dir.path(), args);
    let started = Instant::now();
    if let Some(codex) = codex {
        codex_app::create_databases(codex, &home);
    }
    HeavyHome::at_scale(sessions, sessions * (kib << 10))
        .build(&home)
        .expect("the home is generated");
    eprintln!(
        "{sessions} sessions generated in {:.1} s at {}",
        started.elapsed().as_secs_f64(),
        home.display()
    );
    let mut rows = Vec::new();
    let mut parity = Vec::new();
    let mut check_parity = |when: &str| {
        if let Some(codex) = codex {
            parity.push((when.to_string(), codex_app::parity(codex, &home)));
        }
    };

    measure(&mut ours(&["inspect"]));
    rows.push(("inspect (warm)".into(), best_of(3, || ours(&["inspect"]))));
    rows.push((
        "sessions --sort size (warm)".into(),
        best_of(3, || ours(&["sessions", "--sort", "size"])),
    ));
    // What a person would type for the same question without codex-maint: every
    // transcript's size, largest first.
    let du_sort = format!(
        "du -a '{0}/sessions' '{0}/archived_sessions' | sort -rn | head -50",
        home.display()
    );
    rows.push((
        "du -a + sort -rn, the same question (warm)".into(),
        best_of(3, || support::sh(&du_sort)),
    ));

    // `browse` to its first screen, drawn into an in-memory terminal of 200x60 (its
    // benchmark knob): the whole process, listing the home included, as a person waits
    // for it. Then its own timing of scrolling the heaviest group a row a frame.
    let browse = |frames: &str| {
        let mut c = ours(&["browse"]);
        c.env("CODEX_MAINT_BROWSE_BENCH_FRAMES", frames);
        c
    };
    rows.push((
        "browse, to its first screen (warm)".into(),
        best_of(3, || browse("0")),
    ));
    let browse_frames = browse_frames(browse(BROWSE_FRAMES));

    let active_total_before = active_transcripts(&home);
    let listings_before = codex.map(|c| listings(c, &home));
    let (archive, _) = measure_cold(&mut ours(&["archive", "--older-than", "10d", "--yes"]));
    let archived_by_policy = count_archived_by_last_run(&bin, &home, &store, dir.path());
    rows.push(("archive --older-than 10d --yes (cold)".into(), archive));
    let active_total_after = active_transcripts(&home);
    let listings_after = codex.map(|c| listings(c, &home));
    check_parity("archive");
    rows.push(("verify (warm)".into(), measure(&mut ours(&["verify"]))));
    let (undo, _) = measure_cold(&mut ours(&["undo"]));
    rows.push(("undo of that archive (cold)".into(), undo));
    check_parity("undo");

    rows.push((
        "cleanup --dry-run --only sessions".into(),
        measure(&mut ours(&["cleanup", "--dry-run", "--only", "sessions"])),
    ));
    let plan = newest_plan(&store);
    rows.push((
        "cleanup --yes --plan <it> --only sessions".into(),
        measure(&mut ours(&[
            "cleanup", "--yes", "--plan", &plan, "--only", "sessions",
        ])),
    ));
    check_parity("cleanup");

    // The sessions just archived are the ones a compression cleanup frees space from.
    rows.push((
        "cleanup --dry-run --only compress".into(),
        measure(&mut ours(&["cleanup", "--dry-run", "--only", "compress"])),
    ));
    let plan = newest_plan(&store);
    let compressed = planned_actions(&store, &plan);
    rows.push((
        "cleanup --yes --plan <it> --only compress".into(),
        measure(&mut ours(&[
            "cleanup", "--yes", "--plan", &plan, "--only", "compress",
        ])),
    ));
    check_parity("compression");
    rows.push((
        "undo of that compression".into(),
        measure(&mut ours(&["undo"])),
    ));
    check_parity("undo of compression");

    rows.push(("undo of that cleanup".into(), measure(&mut ours(&["undo"]))));
    // An undo that finds nothing to take back also exits 0: the home must be whole again.
    assert_eq!(
        active_transcripts(&home),
        active_total_before,
        "the undo of the cleanup put every archived session back"
    );
    check_parity("undo of cleanup");

    let codex_figures = match (listings_before, listings_after) {
        (Some((ab, rb)), Some((aa, ra))) => Some(CodexFigures {
            active_total_before,
            active_total_after,
            active_before: ab,
            archived_before: rb,
            active_after: aa,
            archived_after: ra,
            parity,
        }),
        _ => None,
    };
    (
        rows,
        Scale {
            sessions,
            browse_frames,
            archived_by_policy,
            compressed,
            codex: codex_figures,
        },
    )
}

/// Frames `browse` draws scrolling, one row each.
const BROWSE_FRAMES: &str = "2000";

/// `browse`'s headless report of its frames: `data` of its `--json` report.
fn browse_frames(mut cmd: std::process::Command) -> serde_json::Value {
    let out = cmd.output().expect("browse runs");
    assert!(
        out.status.success(),
        "browse's benchmark run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("browse's report is JSON");
    doc["data"].clone()
}

/// Codex's listing of active then archived threads, from a fresh app-server each (the
/// first start of a home may fill Codex's own caches, so one listing runs before).
fn listings(codex: &Path, home: &Path) -> (Listing, Listing) {
    let _warm_up = AppServer::start(codex, home).list_all(false, 100);
    let active = AppServer::start(codex, home).list_all(false, 100);
    let archived = AppServer::start(codex, home).list_all(true, 100);
    (active, archived)
}

fn active_transcripts(home: &Path) -> u64 {
    walkdir::WalkDir::new(home.join("sessions"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count() as u64
}

fn count_archived_by_last_run(bin: &Path, home: &Path, store: &Path, sandbox: &Path) -> u64 {
    let out = ours_in(bin, home, store, sandbox, &["log"])
        .output()
        .expect("log runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    doc["data"]["runs"]
        .as_array()
        .and_then(|runs| runs.iter().rev().find(|r| r["command"] == "archive"))
        .and_then(|r| r["op_counts"]["applied"].as_u64())
        .unwrap_or(0)
}

/// The plan a dry run just saved (`<store>/plans/<id>.json`).
fn newest_plan(store: &Path) -> String {
    std::fs::read_dir(store.join("plans"))
        .expect("the dry run saved a plan")
        .flatten()
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .and_then(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .expect("a plan file")
}

/// How many actions a saved plan holds, counted as the file is read: a plan of 80,000
/// actions parsed whole grew this process past 160 MB, and Linux counts the memory a child
/// leaves at `exec` (its parent's) into the child's `ru_maxrss`: every command measured
/// after it then showed the same 163 MB peak.
fn planned_actions(store: &Path, plan: &str) -> u64 {
    #[derive(serde::Deserialize)]
    struct Counted {
        actions: Vec<serde::de::IgnoredAny>,
    }
    let file = std::fs::File::open(store.join("plans").join(format!("{plan}.json")))
        .expect("the saved plan is readable");
    let counted: Counted =
        serde_json::from_reader(std::io::BufReader::new(file)).expect("the saved plan is JSON");
    counted.actions.len() as u64
}

fn report(rows: &[Row], small: &Scale, large: &Scale, kib: u64) {
    let growth = large.sessions as f64 / small.sessions as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ncodex-maint at {} and {} sessions ({kib} KiB of transcript a session on average), {} cores\n",
        small.sessions,
        large.sessions,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(
        out,
        "| workload | {s} sessions | peak | {l} sessions | peak | time vs linear | peak < 100 MB | linear (<= 1.2x) |",
        s = small.sessions,
        l = large.sessions
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut json = Vec::new();
    for r in rows {
        let vs_linear = r.large.secs / (r.small.secs * growth).max(1e-9);
        let bounded = r.large.max_rss_mb < 100.0;
        let linear = vs_linear <= 1.2;
        let ok = r.small.ok && r.large.ok;
        let _ = writeln!(
            out,
            "| {} | {:.2} s | {:.0} MB | {:.2} s | {:.0} MB | {:.2}x | {} | {} |",
            r.workload,
            r.small.secs,
            r.small.max_rss_mb,
            r.large.secs,
            r.large.max_rss_mb,
            vs_linear,
            if !ok {
                "FAILED"
            } else if bounded {
                "met"
            } else {
                "MISSED"
            },
            if !ok {
                "FAILED"
            } else if linear {
                "met"
            } else {
                "MISSED"
            },
        );
        json.push(serde_json::json!({
            "workload": r.workload,
            "small": {"sessions": small.sessions, "secs": r.small.secs, "peak_mb": r.small.max_rss_mb, "ok": r.small.ok},
            "large": {"sessions": large.sessions, "secs": r.large.secs, "peak_mb": r.large.max_rss_mb, "ok": r.large.ok},
            "time_vs_linear": vs_linear,
        }));
    }
    for scale in [small, large] {
        let _ = writeln!(
            out,
            "\n{} sessions: the policy archive moved {}; the compression cleanup planned {} transcripts.",
            scale.sessions, scale.archived_by_policy, scale.compressed
        );
        let f = &scale.browse_frames;
        let _ = writeln!(
            out,
            "browse at {}: first screen {:.0} ms after start of its work; {} frames scrolling the heaviest group ({} sessions in all): mean {:.2} ms, p99 {:.2} ms, max {:.2} ms a frame.",
            f["size"],
            f["first_screen_ms"].as_f64().unwrap_or(f64::NAN),
            f["frames"],
            f["sessions"],
            f["frame_ms_mean"].as_f64().unwrap_or(f64::NAN),
            f["frame_ms_p99"].as_f64().unwrap_or(f64::NAN),
            f["frame_ms_max"].as_f64().unwrap_or(f64::NAN),
        );
        json.push(serde_json::json!({ "sessions": scale.sessions, "browse_frames": f }));
        let Some(c) = &scale.codex else {
            let _ = writeln!(
                out,
                "Codex's listing: not measured (no real Codex installed)."
            );
            continue;
        };
        let _ = writeln!(
            out,
            "| Codex `thread/list` (pages of 100) | before: threads | first page | all pages | after archive: threads | first page | all pages |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
        for (what, before, after) in [
            ("active", &c.active_before, &c.active_after),
            ("archived", &c.archived_before, &c.archived_after),
        ] {
            let _ = writeln!(
                out,
                "| {what} | {} | {:.2} s | {:.2} s | {} | {:.2} s | {:.2} s |",
                before.threads,
                before.first_page_secs,
                before.all_secs,
                after.threads,
                after.first_page_secs,
                after.all_secs
            );
        }
        let listed_before = c.active_before.threads + c.archived_before.threads;
        let listed_after = c.active_after.threads + c.archived_after.threads;
        // Codex stops a listing (and its doctor's file scan) after 10,000 rollout files, so
        // above that a listing is complete when it returns as many as the cap allows.
        let expected = |kind_total: u64| kind_total.min(codex_app::SCAN_CAP);
        let _ = writeln!(
            out,
            "Threads Codex listed: {listed_before} before, {listed_after} after, of {} ({}). `codex doctor` rollout/index parity: {}.",
            scale.sessions,
            if c.active_before.threads as u64 == expected(c.active_total_before)
                && c.archived_before.threads as u64
                    == expected(scale.sessions - c.active_total_before)
                && c.active_after.threads as u64 == expected(c.active_total_after)
                && c.archived_after.threads as u64
                    == expected(scale.sessions - c.active_total_after)
            {
                "every thread, up to Codex's own cap of 10,000 per listing"
            } else {
                "SOME MISSING"
            },
            c.parity
                .iter()
                .map(|(when, status)| format!("after {when}: {status}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        json.push(serde_json::json!({
            "sessions": scale.sessions,
            "archived_by_policy": scale.archived_by_policy,
            "codex_listing": {
                "active_before": [c.active_before.threads, c.active_before.first_page_secs, c.active_before.all_secs],
                "archived_before": [c.archived_before.threads, c.archived_before.first_page_secs, c.archived_before.all_secs],
                "active_after": [c.active_after.threads, c.active_after.first_page_secs, c.active_after.all_secs],
                "archived_after": [c.archived_after.threads, c.archived_after.first_page_secs, c.archived_after.all_secs],
            },
            "parity": c.parity.iter().map(|(w, s)| serde_json::json!({"after": w, "status": s})).collect::<Vec<_>>(),
        }));
    }
    print!("{out}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-many-sessions.json");
    if std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).is_ok() {
        eprintln!("figures written to {}", path.display());
    }
}
