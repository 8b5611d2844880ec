//! codex-maint at a heavy user's scale, against the plain tools a user would use instead,
//! in the same run. Each workload and its baseline run as child processes; wall time and
//! peak memory (max RSS of the process tree, from `wait4`) are measured for both.
//!
//! `cargo bench --bench scale` runs the quick shape (2,000 sessions, ~0.4 GB);
//! `CODEX_MAINT_BENCH=full cargo bench --bench scale` the full one (20,000 sessions, ~4 GB).
//! `CODEX_MAINT_BENCH_DIR` chooses where the home is generated (default: the temp folder).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use codex_maint::testkit::heavy_home::HeavyHome;
use codex_maint::testkit::synthetic_home::{SessionSpec, write_transcript};

mod support;
use support::{
    Measured, bench_dir, best_of, find_or_install_b3sum, measure, measure_cold, ours_in, sh,
};

/// The target of a row that only puts another row in context.
const CONTEXT: &str = "(context)";

struct Row {
    workload: String,
    ours: Measured,
    baseline_name: String,
    baseline: Measured,
    target: String,
    pass: bool,
}

/// Real Codex makes its databases (thread index with its full schema, log database) on
/// first use; any command does it, even one that then fails, as archiving an unknown id
/// does. The generator then fills those, so `codex archive` accepts the home it benchmarks.
fn let_codex_create_its_databases(codex: &Path, home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    let _ = Command::new(codex)
        .args(["archive", "00000000-0000-7000-8000-000000000000"])
        .env("CODEX_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        home.join("state_5.sqlite").exists(),
        "the real Codex did not create its thread index in {}",
        home.display()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter here.
    let full = std::env::var("CODEX_MAINT_BENCH").is_ok_and(|v| v == "full");
    let shape = if full {
        HeavyHome::full()
    } else {
        HeavyHome::quick()
    };
    let dir = bench_dir("codex-maint-bench-");
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_codex-maint"));
    let ours = |args: &[&str]| ours_in(&bin, &home, &store, dir.path(), args);

    let t = Instant::now();
    let codex = codex_maint::testkit::installed_codex();
    if let Some(codex) = &codex {
        let_codex_create_its_databases(codex, &home);
    }
    let specs = shape.build(&home).unwrap();
    let big = SessionSpec {
        target_bytes: 200 << 20,
        ..SessionSpec::aged(9_999_999, 40.0, 0)
    };
    write_transcript(&home, &big).unwrap();
    let total: u64 =
        specs.iter().map(|s| s.target_bytes as u64).sum::<u64>() + big.target_bytes as u64;
    eprintln!(
        "generated {} sessions ({:.2} GB of transcripts) plus logs and releases in {:.1} s at {}",
        specs.len() + 1,
        total as f64 / 1e9,
        t.elapsed().as_secs_f64(),
        home.display()
    );
    let h = home.display().to_string();
    let mut rows: Vec<Row> = Vec::new();

    // 1. inspect vs the seed's inspection: du of every top-level entry, its three finds and
    //    its process listing; then the same plus `PRAGMA integrity_check` of every database,
    //    as the seed also runs. inspect runs quick_check (the full check is `--deep`'s and
    //    cleanup's). Read-only (immutable) so the home is not changed for what follows.
    let seed = format!(
        "du -sh \"{h}\"/* >/dev/null; find \"{h}/sessions\" -type f -name '*.jsonl' -size +10M -print >/dev/null; \
         find \"{h}/log\" -type f -size +50M -print >/dev/null; find \"{h}/worktrees\" -mindepth 1 -maxdepth 1 -type d -mtime +10 -print >/dev/null 2>&1; \
         ps aux >/dev/null; true"
    );
    measure(&mut sh(&seed));
    measure(&mut ours(&["inspect"]));
    let b = best_of(3, || sh(&seed));
    let o = best_of(3, || ours(&["inspect"]));
    rows.push(Row {
        workload: "inspect".into(),
        pass: o.secs <= 1.5 * b.secs && o.max_rss_mb < 100.0,
        ours: o,
        baseline_name: "du -sh * + 3 finds + ps aux".into(),
        baseline: b,
        target: "<= 1.5x time".into(),
    });
    if Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let seed_with_checks = format!(
            "{seed}; for db in \"{h}\"/*.sqlite; do sqlite3 \"file:$db?immutable=1\" 'PRAGMA integrity_check;' >/dev/null; done"
        );
        let b = best_of(3, || sh(&seed_with_checks));
        let o = best_of(3, || ours(&["inspect"]));
        rows.push(Row {
            workload: "inspect".into(),
            pass: o.secs <= 0.5 * b.secs && o.max_rss_mb < 100.0,
            ours: o,
            baseline_name: "the same + sqlite3 integrity_check of every database".into(),
            baseline: b,
            target: "<= 0.5x time".into(),
        });
    }

    // The sessions an `archive --older-than 30d` moves: old, not yet archived, not pinned.
    let moving: Vec<&SessionSpec> = specs
        .iter()
        .filter(|s| {
            !s.archived
                && !s.pinned
                && s.last_active < chrono::Utc::now() - chrono::Duration::days(30)
        })
        .collect();
    let moving_bytes: u64 = moving
        .iter()
        .map(|s| std::fs::metadata(s.path_in(&home)).unwrap().len())
        .sum();
    let list = dir.path().join("moving.list");
    let mut names = String::new();
    for s in &moving {
        names.push_str(&s.path_in(&home).display().to_string());
        names.push('\0');
    }
    std::fs::write(&list, names).unwrap();
    let read_once = format!("xargs -0 cat < \"{}\" > /dev/null", list.display());
    let (read, cold) = measure_cold(&mut sh(&read_once));
    let cache = if cold {
        "cold cache"
    } else {
        "warm cache: could not drop caches"
    };

    // 2. archive --older-than, and verify while everything is archived, then undo.
    // Cold, as its baseline: the `cat` just above has put every byte it will read in the
    // page cache.
    let (archive, _) = measure_cold(&mut ours(&[
        "archive",
        "--older-than",
        "30d",
        "--yes",
        "--handoff-min-mb",
        "1000000",
    ]));
    let archived_count = std::fs::read_dir(home.join("archived_sessions"))
        .unwrap()
        .count();
    rows.push(Row {
        workload: format!(
            "archive --older-than 30d ({} sessions, {:.2} GB)",
            moving.len(),
            moving_bytes as f64 / 1e9
        ),
        pass: archive.ok
            && archive.secs <= 1.3 * read.secs.max(0.001)
            && archive.max_rss_mb < 100.0,
        ours: archive,
        baseline_name: format!("read the bytes once (cat, {cache})"),
        baseline: Measured {
            secs: read.secs,
            max_rss_mb: read.max_rss_mb,
            ok: read.ok,
        },
        target: "<= 1.3x read-once".into(),
    });

    let archived_list = dir.path().join("archived.list");
    let mut archived_names = String::new();
    for s in &moving {
        archived_names.push_str(
            &home
                .join("archived_sessions")
                .join(s.file_name())
                .display()
                .to_string(),
        );
        archived_names.push('\0');
    }
    std::fs::write(&archived_list, archived_names).unwrap();
    if let Some(b3) = find_or_install_b3sum() {
        let b3sum = format!(
            "xargs -0 \"{}\" < \"{}\" > /dev/null",
            b3.display(),
            archived_list.display()
        );
        measure(&mut sh(&b3sum));
        let b = best_of(3, || sh(&b3sum));
        let o = best_of(3, || ours(&["verify"]));
        let (ours_tp, base_tp) = (moving_bytes as f64 / o.secs, moving_bytes as f64 / b.secs);
        rows.push(Row {
            workload: "verify".into(),
            pass: o.ok && ours_tp >= 0.8 * base_tp && o.max_rss_mb < 100.0,
            ours: o,
            // Both warm and best of three: this compares hashing throughput, not the disk.
            baseline_name: "b3sum over the same files (warm cache)".into(),
            baseline: b,
            target: ">= 0.8x throughput".into(),
        });
    } else {
        eprintln!("SKIPPED verify vs b3sum: b3sum is not installed and could not be built");
    }

    let (undo, _) = measure_cold(&mut ours(&["undo"]));
    rows.push(Row {
        workload: "undo of that archive".into(),
        pass: undo.ok && undo.secs <= 1.3 * read.secs.max(0.001) && undo.max_rss_mb < 100.0,
        ours: undo,
        baseline_name: format!("read the bytes once (cat, {cache})"),
        baseline: Measured {
            secs: read.secs,
            max_rss_mb: read.max_rss_mb,
            ok: true,
        },
        target: "<= 1.3x read-once".into(),
    });

    // The same moves as a user would script them: mv plus a sqlite3 UPDATE per session.
    let db = home.join("state_5.sqlite");
    let mut forward = String::from("set -e\n");
    let mut backward = String::from("set -e\n");
    for s in &moving {
        let src = s.path_in(&home);
        let dst = home.join("archived_sessions").join(s.file_name());
        let _ = writeln!(
            forward,
            "mv '{}' '{}' && sqlite3 '{}' \"UPDATE threads SET rollout_path='{}', archived=1, archived_at=strftime('%s','now') WHERE id='{}'\"",
            src.display(),
            dst.display(),
            db.display(),
            dst.display(),
            s.id
        );
        let _ = writeln!(
            backward,
            "mv '{}' '{}' && sqlite3 '{}' \"UPDATE threads SET rollout_path='{}', archived=0, archived_at=NULL WHERE id='{}'\"",
            dst.display(),
            src.display(),
            db.display(),
            src.display(),
            s.id
        );
    }
    let fwd = dir.path().join("mv-archive.sh");
    let bwd = dir.path().join("mv-unarchive.sh");
    std::fs::write(&fwd, forward).unwrap();
    std::fs::write(&bwd, backward).unwrap();
    let (mv_forward, _) = measure_cold(&mut sh(&format!("bash \"{}\"", fwd.display())));
    let (mv_backward, _) = measure_cold(&mut sh(&format!("bash \"{}\"", bwd.display())));
    let archive_row = rows
        .iter()
        .position(|r| r.workload.starts_with("archive"))
        .unwrap();
    let undo_row = rows
        .iter()
        .position(|r| r.workload.starts_with("undo"))
        .unwrap();
    let extra_archive = Row {
        workload: "archive (same moves)".into(),
        pass: rows[archive_row].ours.secs < mv_forward.secs,
        ours: Measured {
            ..clone_m(&rows[archive_row].ours)
        },
        baseline_name: "shell loop: mv + sqlite3 UPDATE".into(),
        baseline: mv_forward,
        target: "faster".into(),
    };
    let extra_undo = Row {
        workload: "undo (same moves)".into(),
        pass: rows[undo_row].ours.secs < mv_backward.secs,
        ours: clone_m(&rows[undo_row].ours),
        baseline_name: "the mv loop reversed".into(),
        baseline: mv_backward,
        target: "faster".into(),
    };
    rows.push(extra_archive);
    rows.push(extra_undo);

    // Per-session `codex archive` on a sample, scaled to the whole set.
    if let Some(codex) = &codex {
        let sample: Vec<&&SessionSpec> = moving.iter().take(20).collect();
        let mut script = String::from("set -e\n");
        let mut restore = String::from("set -e\n");
        for s in &sample {
            let _ = writeln!(
                script,
                "CODEX_HOME='{h}' '{}' archive {} >/dev/null 2>&1",
                codex.display(),
                s.id
            );
            let _ = writeln!(
                restore,
                "CODEX_HOME='{h}' '{}' unarchive {} >/dev/null 2>&1",
                codex.display(),
                s.id
            );
        }
        let (m, _) = measure_cold(&mut sh(&script));
        let restored = measure(&mut sh(&restore));
        assert!(
            m.ok && restored.ok,
            "the real `codex archive`/`unarchive` failed on the generated home; its figure would be meaningless"
        );
        let scale = moving.len() as f64 / sample.len() as f64;
        let scaled = Measured {
            secs: m.secs * scale,
            max_rss_mb: m.max_rss_mb,
            ok: m.ok,
        };
        let o = clone_m(&rows[archive_row].ours);
        rows.push(Row {
            workload: "archive (same moves)".into(),
            pass: o.secs * 10.0 < scaled.secs,
            ours: o,
            baseline_name: format!(
                "`codex archive <id>` per session ({} sampled, x{scale:.0})",
                sample.len()
            ),
            baseline: scaled,
            target: "far ahead (10x)".into(),
        });
    } else {
        eprintln!(
            "SKIPPED codex archive baseline: the real Codex CLI is not installed (run .ci/run or set CODEX_BIN)"
        );
    }

    // 3. Log and release rotation into the store vs tar | zstd -3 of the same items.
    let old = [
        "0.160.0-x86_64-unknown-linux-musl",
        "0.165.0-x86_64-unknown-linux-musl",
    ];
    let tar = format!(
        "tar -C \"{h}\" -cf - log/codex-tui.log logs_2.sqlite packages/app-server-daemon/releases/{} packages/app-server-daemon/releases/{} | zstd -3 -q -c > \"{}/baseline.tar.zst\"",
        old[0],
        old[1],
        dir.path().display()
    );
    let (b, _) = measure_cold(&mut sh(&tar));
    let plan_out = Command::new(&bin)
        .arg("--home")
        .arg(&home)
        .arg("--store")
        .arg(&store)
        .arg("--json")
        .args([
            "cleanup",
            "--dry-run",
            "--only",
            "logs,releases",
            "--large-log-mb",
            "1",
        ])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan_out.stdout).unwrap();
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    let o = measure(&mut ours(&[
        "cleanup",
        "--yes",
        "--plan",
        &id,
        "--only",
        "logs,releases",
        "--large-log-mb",
        "1",
    ]));
    rows.push(Row {
        workload: "rotate log, log db, 2 old releases into the store".into(),
        pass: o.ok && o.secs <= 1.5 * b.secs && o.max_rss_mb < 100.0,
        ours: o,
        baseline_name: "tar | zstd -3".into(),
        baseline: b,
        target: "<= 1.5x, peak < 100 MB".into(),
    });
    measure(&mut ours(&["undo"]));

    // 4. A handoff of a 200 MB transcript, in bounded memory.
    let big_path = big.path_in(&home);
    let (read_big, big_cold) = measure_cold(&mut sh(&format!(
        "cat \"{}\" > /dev/null",
        big_path.display()
    )));
    let o = measure(&mut ours(&["handoff", &big.id, "--stdout"]));
    rows.push(Row {
        workload: "handoff of a 200 MB transcript".into(),
        pass: o.ok && o.max_rss_mb < 100.0,
        ours: o,
        baseline_name: format!(
            "cat (read once, {})",
            if big_cold { "cold cache" } else { "warm cache" }
        ),
        baseline: read_big,
        target: "peak < 100 MB".into(),
    });

    report(&rows, &shape, total, archived_count);
}

fn clone_m(m: &Measured) -> Measured {
    Measured {
        secs: m.secs,
        max_rss_mb: m.max_rss_mb,
        ok: m.ok,
    }
}

fn report(rows: &[Row], shape: &HeavyHome, total: u64, archived_after: usize) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ncodex-maint benchmark: {} sessions, {:.2} GB of transcripts, {cores} cores ({} archived sessions during the run)\n",
        shape.sessions,
        total as f64 / 1e9,
        archived_after
    );
    let _ = writeln!(
        out,
        "| workload | codex-maint | peak | baseline | baseline time | baseline peak | ratio | target | result |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let mut json = Vec::new();
    for r in rows {
        let ratio = r.ours.secs / r.baseline.secs.max(1e-9);
        let _ = writeln!(
            out,
            "| {} | {:.2} s | {:.0} MB | {} | {:.2} s | {:.0} MB | {:.2}x | {} | {} |",
            r.workload,
            r.ours.secs,
            r.ours.max_rss_mb,
            r.baseline_name,
            r.baseline.secs,
            r.baseline.max_rss_mb,
            ratio,
            r.target,
            if !r.ours.ok {
                "FAILED"
            } else if r.target == CONTEXT {
                "-"
            } else if r.pass {
                "met"
            } else {
                "MISSED"
            }
        );
        json.push(serde_json::json!({
            "workload": r.workload, "ours_secs": r.ours.secs, "ours_peak_mb": r.ours.max_rss_mb,
            "baseline": r.baseline_name, "baseline_secs": r.baseline.secs, "baseline_peak_mb": r.baseline.max_rss_mb,
            "ratio": ratio, "target": r.target,
            "met": (r.target != CONTEXT).then_some(r.pass && r.ours.ok),
        }));
    }
    print!("{out}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale.json");
    if let Ok(mut f) = std::fs::File::create(&path) {
        let _ = f.write_all(serde_json::to_string_pretty(&json).unwrap().as_bytes());
        eprintln!("figures written to {}", path.display());
    }
}
