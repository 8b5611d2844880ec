//! Compressing archived transcripts, against `zstd` itself in the same run.
//!
//! 1. A ratio/speed table per zstd level, measured on transcripts the real Codex wrote
//!    (sessions whose turns run real commands, so their tool output is real text); the
//!    corpus is built once into `target/bench-corpus` with the real CLI and a stand-in model.
//! 2. On the benchmark home's archived transcripts: `cleanup --only compress` against
//!    `zstd -T0 -<level>` over a copy of the same files (bytes freed, throughput, peak memory),
//!    then `verify` against `zstd -dc | b3sum` over the compressed files.
//! 3. One huge transcript (256 MB quick, 2 GB full): time and peak memory against `zstd -T0`.
//!
//! `cargo bench --bench compression` (quick) or `CODEX_MAINT_BENCH=full cargo bench --bench
//! compression`. Needs the real Codex CLI (.ci/run installs it) and `zstd` on PATH.

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use codex_maint::testkit::heavy_home::HeavyHome;
use codex_maint::testkit::synthetic_home::{SessionSpec, write_transcript};
use codex_maint::zstd_stream::{self, EncodeSettings};

#[path = "../tests/support/model_server.rs"]
mod model_server;
mod support;

use support::{Measured, bench_dir, best_of, find_or_install_b3sum, measure, ours_in, sh};

/// Commands whose output fills the corpus's tool calls: source code, listings, history.
fn corpus_commands() -> Vec<String> {
    let mut commands = vec![
        "ls -la /usr/bin".to_string(),
        "ls -laR /usr/share/doc | head -3000".to_string(),
        format!("git -C {} log --stat -n 60", env!("CARGO_MANIFEST_DIR")),
        "ps aux".to_string(),
        format!(
            "cargo tree --manifest-path {}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ),
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&src)
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    commands.extend(files.iter().map(|f| format!("cat {}", f.display())));
    commands
}

/// Real transcripts: `sessions` sessions of `turns` turns each, every turn running one of
/// `corpus_commands` through Codex's own exec tool. Built once, then reused.
fn real_corpus(codex: &Path, sessions: usize, turns: usize) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-corpus");
    let home = root.join("home");
    let done = root.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&home).unwrap();
        let work = root.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let server = model_server::ModelServer::start();
        std::fs::write(home.join("config.toml"), server.config_toml()).unwrap();
        let commands = corpus_commands();
        eprintln!(
            "building the real-transcript corpus in {} (once) ...",
            root.display()
        );
        let mut k = 0;
        for _ in 0..sessions {
            let mut id: Option<String> = None;
            for _ in 0..turns {
                let prompt = format!("RUN: {}", commands[k % commands.len()]);
                k += 1;
                let mut cmd = Command::new(codex);
                cmd.env("CODEX_HOME", &home)
                    .env_remove("OPENAI_API_KEY")
                    .current_dir(&work)
                    .stdin(Stdio::null());
                match &id {
                    None => cmd.args(["exec", "--skip-git-repo-check", &prompt]),
                    Some(id) => cmd.args(["exec", "--skip-git-repo-check", "resume", id, &prompt]),
                };
                let out = cmd.output().unwrap();
                let text = String::from_utf8_lossy(&out.stderr).into_owned()
                    + &String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "codex exec failed:\n{text}");
                if id.is_none() {
                    id = text
                        .lines()
                        .find_map(|l| l.strip_prefix("session id: "))
                        .map(|s| s.trim().to_string());
                }
            }
        }
        std::fs::write(&done, "").unwrap();
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(home.join("sessions"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

struct LevelRow {
    label: String,
    ratio: f64,
    mb_per_s: f64,
}

/// Compresses every file in memory on all cores (one file per thread, as codex-maint does
/// for transcripts under 32 MB), best of three, and reports ratio and throughput.
fn measure_level(files: &[PathBuf], settings: EncodeSettings, label: String) -> LevelRow {
    let mut best = f64::MAX;
    let mut totals = (0u64, 0u64);
    for _ in 0..3 {
        let started = Instant::now();
        let sizes: Vec<(u64, u64)> = files
            .par_iter()
            .map(|f| zstd_stream::measure_ratio(f, settings, u64::MAX).unwrap())
            .collect();
        best = best.min(started.elapsed().as_secs_f64());
        totals = sizes.iter().fold((0, 0), |(a, b), (p, c)| (a + p, b + c));
    }
    LevelRow {
        label,
        ratio: totals.1 as f64 / totals.0 as f64,
        mb_per_s: totals.0 as f64 / 1e6 / best,
    }
}

fn ratio_line(name: &str, ours: &Measured, theirs: &Measured, their_name: &str) -> String {
    format!(
        "| {name} | {:.2} s, {:.0} MB | {their_name}: {:.2} s, {:.0} MB | {:.2}x |",
        ours.secs,
        ours.max_rss_mb,
        theirs.secs,
        theirs.max_rss_mb,
        theirs.secs / ours.secs
    )
}

fn main() {
    let full = std::env::var("CODEX_MAINT_BENCH").is_ok_and(|v| v == "full");
    let Some(codex) = codex_maint::testkit::installed_codex() else {
        eprintln!("the real Codex CLI is not installed: run .ci/run (it installs it) first");
        std::process::exit(2);
    };
    assert!(
        Command::new("zstd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "zstd is needed on PATH for the baselines"
    );
    let b3sum = find_or_install_b3sum().expect("b3sum for the verify baseline");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = String::new();
    let mut say = |line: String| {
        println!("{line}");
        out.push_str(&line);
        out.push('\n');
    };

    let level = zstd_stream::DEFAULT_LEVEL;

    // 2. The benchmark home's archived transcripts.
    let dir = bench_dir("codex-maint-bench-zst-");
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_codex-maint"));
    let ours = |args: &[&str]| ours_in(&bin, &home, &store, dir.path(), args);
    let shape = if full {
        HeavyHome::full()
    } else {
        HeavyHome::quick()
    };
    shape.build(&home).unwrap();
    let archived = home.join("archived_sessions");
    assert!(
        measure(&mut ours(&[
            "archive",
            "--older-than",
            "10d",
            "--yes",
            "--handoff-min-mb",
            "1000000"
        ]))
        .ok,
        "setting up: archive"
    );
    let copy = dir.path().join("baseline");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&archived)
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    // The plan decides which transcripts are compressed (archived, idle 7 days, nothing
    // protecting them); zstd gets exactly those, as a list of names in the copy.
    let plan = ours(&["cleanup", "--only", "compress", "--dry-run"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let plan_id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    let names: Vec<String> = plan["data"]["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            Path::new(a["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let plain_count = names.len();
    let plain_bytes: u64 = names
        .iter()
        .map(|n| std::fs::metadata(archived.join(n)).unwrap().len())
        .sum();
    let list = dir.path().join("compressing.list");
    std::fs::write(
        &list,
        names.iter().map(|n| format!("{n}\0")).collect::<String>(),
    )
    .unwrap();
    let warm = format!(
        "cat \"{}\"/* \"{}\"/* > /dev/null",
        archived.display(),
        copy.display()
    );
    measure(&mut sh(&warm));
    let zstd_cmd = format!(
        "cd \"{}\" && xargs -0 zstd -T0 -{level} -q --rm < \"{}\"",
        copy.display(),
        list.display()
    );
    let baseline = measure(&mut sh(&zstd_cmd));
    let compress = measure(&mut ours(&["cleanup", "--yes", "--plan", &plan_id]));
    assert!(compress.ok, "cleanup --only compress");
    let stored_size = |dir: &Path| -> u64 {
        names
            .iter()
            .map(|n| {
                std::fs::metadata(dir.join(format!("{n}.zst")))
                    .unwrap()
                    .len()
            })
            .sum()
    };
    let stored_bytes = stored_size(&archived);
    let zstd_bytes = stored_size(&copy);
    say(format!(
        "\n## {} archived transcripts of the benchmark home ({}), level {level}, {cores} cores\n",
        plain_count,
        if full { "full" } else { "quick" }
    ));
    say("| workload | codex-maint | baseline | throughput ratio |".into());
    say("| --- | --- | --- | --- |".into());
    say(ratio_line(
        &format!(
            "cleanup --only compress: {:.0} MB -> {:.0} MB ({:.1}% freed; zstd alone {:.0} MB)",
            plain_bytes as f64 / 1e6,
            stored_bytes as f64 / 1e6,
            (1.0 - stored_bytes as f64 / plain_bytes as f64) * 100.0,
            zstd_bytes as f64 / 1e6
        ),
        &compress,
        &baseline,
        &format!("zstd -T0 -{level} over a copy, warm"),
    ));
    measure(&mut sh(&warm));
    let verify = best_of(3, || ours(&["verify"]));
    let decode = best_of(3, || {
        sh(&format!(
            "cd \"{}\" && find . -name '*.zst' -print0 | xargs -0 zstd -dc -q | {} > /dev/null",
            copy.display(),
            b3sum.display()
        ))
    });
    say(ratio_line(
        "verify (decodes and hashes every compressed transcript)",
        &verify,
        &decode,
        "zstd -dc | b3sum, warm",
    ));
    let undo = measure(&mut ours(&["undo"]));
    assert!(undo.ok, "undo");
    say(format!(
        "| undo (decode back to plain, {} MB) | {:.2} s, {:.0} MB | | |",
        plain_bytes / 1_000_000,
        undo.secs,
        undo.max_rss_mb
    ));

    // 2b. One huge transcript.
    let big_bytes: usize = if full { 2 << 30 } else { 256 << 20 };
    let big_home = dir.path().join("big-home");
    let big = SessionSpec {
        target_bytes: big_bytes,
        ..SessionSpec::aged(7_777_777, 40.0, 0)
    };
    let recent = SessionSpec::aged(7_777_778, 1.0, 20_000);
    // No thread index: the row rules are not what this measures.
    codex_maint::testkit::synthetic_home::build(&big_home, &[recent], false).unwrap();
    let big_path = write_transcript(&big_home, &big).unwrap();
    let big_copy = dir.path().join("big-copy.jsonl");
    std::fs::copy(&big_path, &big_copy).unwrap();
    let big_store = dir.path().join("big-store");
    measure(&mut sh(&format!(
        "cat \"{}\" \"{}\" > /dev/null",
        big_path.display(),
        big_copy.display()
    )));
    let theirs = measure(&mut sh(&format!(
        "zstd -T0 -{level} -q -f \"{}\" -o \"{}.zst\"",
        big_copy.display(),
        big_copy.display()
    )));
    let mine = measure(
        Command::new(&bin)
            .arg("--home")
            .arg(&big_home)
            .arg("--store")
            .arg(&big_store)
            .args(["archive", &big.id, "--compress", "--yes"])
            .env("HOME", dir.path()),
    );
    assert!(mine.ok, "archive --compress of the huge transcript");
    say(ratio_line(
        &format!(
            "archive --compress of one {} MB transcript",
            big_bytes >> 20
        ),
        &mine,
        &theirs,
        &format!("zstd -T0 -{level}, warm"),
    ));

    // 3. The level table on real transcripts, last: its level-19 contexts grow this
    // process, and a child forked after that would inherit the high-water mark of its RSS.
    let corpus = real_corpus(&codex, 16, 8);
    let corpus_bytes: u64 = corpus
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    say(format!(
        "## Level table: {} real transcripts, {:.1} MB, {cores} cores\n",
        corpus.len(),
        corpus_bytes as f64 / 1e6
    ));
    say("| level | stored / plain | freed | MB/s (plain, all cores) |".into());
    say("| --- | --- | --- | --- |".into());
    let mut settings: Vec<(String, EncodeSettings)> = [1, 3, 6, 9, 10, 12, 15, 19]
        .iter()
        .map(|&level| {
            (
                level.to_string(),
                EncodeSettings {
                    level,
                    ..Default::default()
                },
            )
        })
        .collect();
    settings.push((
        "10 + long window 2^27".into(),
        EncodeSettings {
            level: 10,
            long_window_log: Some(27),
            ..Default::default()
        },
    ));
    for (label, s) in settings {
        let row = measure_level(&corpus, s, label);
        say(format!(
            "| {} | {:.3} | {:.1}% | {:.0} |",
            row.label,
            row.ratio,
            (1.0 - row.ratio) * 100.0,
            row.mb_per_s
        ));
    }
    let report = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-compression.md");
    std::fs::write(&report, out).unwrap();
    eprintln!("written to {}", report.display());
}
