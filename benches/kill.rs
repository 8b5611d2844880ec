//! Random SIGKILL of every writing command, at least 100 kills each: the benchmark-sized
//! run of the harness `tests/kill_anywhere.rs` runs a few rounds of on each test run (the
//! code is `tests/support/kill.rs`, shared). Each command is first aborted at every named
//! failure point (first, second and fifth pass), then SIGKILLed at seeded random moments
//! within the time a whole run takes until 100 runs were stopped mid-way. After each:
//! `recover`, `verify`, undo to the end, the home compared byte for byte, no temporary
//! left, and Codex's own doctor (every round) on its rollouts and index.
//!
//! `cargo bench --bench kill` prints a table. `CODEX_MAINT_KILL_SEED` replays a run,
//! `CODEX_MAINT_KILL_TARGET` sets the kills per command (default 100),
//! `CODEX_MAINT_KILL_ONLY` picks commands (comma-separated names as the table shows them),
//! `CODEX_MAINT_KILL_JOBS` the commands run at once (default 2).

#[path = "../tests/support/mod.rs"]
mod test_support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use test_support::kill::{self, Doctor, Kill, Moments, Scenario};

fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Row {
    rounds: usize,
    kills: usize,
    recovered: usize,
    verify_ok: usize,
    undone_exact: usize,
    parity_ok: usize,
    parity_checked: usize,
    failures: Vec<String>,
    whole: Duration,
    took: Duration,
}

fn tally(row: &mut Row, name: &str, seed: u64, kill: &Kill, r: kill::Round) {
    row.rounds += 1;
    row.kills += r.killed as usize;
    row.recovered += (r.recovered == Some(true)) as usize;
    row.verify_ok += (r.verify_ok == Some(true)) as usize;
    row.undone_exact += (r.undone_exact == Some(true)) as usize;
    row.parity_checked += r.parity_ok.is_some() as usize;
    row.parity_ok += (r.parity_ok == Some(true)) as usize;
    for f in r.failures {
        row.failures.push(format!(
            "{name} (CODEX_MAINT_KILL_SEED={seed}, {kill}): {f}"
        ));
    }
}

fn bench(sc: &Scenario, seed: u64, target: usize, doctor: Option<&Doctor>) -> Row {
    let started = Instant::now();
    let mut row = Row::default();
    let (whole, uninterrupted) = kill::whole_run(sc);
    row.whole = whole;
    if let Err(e) = uninterrupted {
        row.failures.push(format!("{}: {e}", sc.name));
    }
    // A point the command never passes once is not tried at later passes.
    let mut points = kill::failpoints();
    for pass in [1, 2, 5] {
        let mut reached = Vec::new();
        for point in points {
            let k = Kill::At(format!("{point}@{pass}"));
            let r = kill::round(sc, &k, doctor);
            if r.killed {
                reached.push(point);
            }
            tally(&mut row, sc.name, seed, &k, r);
        }
        points = reached;
    }
    let mut moments = Moments::new(seed);
    // Enough random rounds that, with the failure points, `target` runs were stopped
    // mid-way; bounded, for a command that mostly finishes before its moment.
    let limit = row.rounds + 3 * target;
    while row.kills < target && row.rounds < limit {
        let k = Kill::After(Duration::from_micros(
            moments.below(whole.as_micros().max(1) as u64),
        ));
        let r = kill::round(sc, &k, doctor);
        tally(&mut row, sc.name, seed, &k, r);
    }
    row.took = started.elapsed();
    row
}

/// A failure without what differs between rounds (the moment, the temporary folder, ids
/// and sizes), so the same fault met many times reads as one kind.
fn kind_of(failure: &str) -> String {
    let (name, rest) = failure.split_once(" (").unwrap_or(("", failure));
    let rest = rest.split_once("): ").map_or(rest, |(_, r)| r);
    let mut out = format!("{name}: ");
    let mut last_digit = false;
    for word in rest.split(' ') {
        let word = if word.contains("/tmp") || word.contains("/dev/shm") {
            word.rsplit('/').next().unwrap_or(word)
        } else {
            word
        };
        for c in word.chars() {
            if c.is_ascii_digit() {
                if !last_digit {
                    out.push('N');
                }
                last_digit = true;
            } else {
                out.push(c);
                last_digit = false;
            }
        }
        out.push(' ');
    }
    out.chars().take(300).collect()
}

fn line(name: &str, r: &Row) -> String {
    format!(
        "| {name:<28} | {:>5} | {:>6} | {:>9} | {:>9} | {:>14} | {:>9} | {:>8} | {:>7.0?} | {:>7.0?} |",
        r.kills,
        r.rounds,
        r.recovered,
        r.verify_ok,
        r.undone_exact,
        format!("{}/{}", r.parity_ok, r.parity_checked),
        r.failures.len(),
        r.whole,
        r.took,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seed = kill::seed();
    let target = env_count("CODEX_MAINT_KILL_TARGET", 100);
    let jobs = env_count("CODEX_MAINT_KILL_JOBS", 2).max(1);
    let only: Option<Vec<String>> = std::env::var("CODEX_MAINT_KILL_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let queue: Vec<&Scenario> = kill::SCENARIOS
        .iter()
        .chain(kill::ONE_CATEGORY)
        .filter(|s| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name)))
        .collect();
    let doctor = codex_maint::testkit::installed_codex().map(Doctor::new);
    println!(
        "kill benchmark: CODEX_MAINT_KILL_SEED={seed}, {target} kills a command, {jobs} at once, doctor: {}",
        doctor
            .as_ref()
            .map_or("not installed, parity not checked".into(), |d| d
                .bin
                .display()
                .to_string())
    );
    let header = "| command                      | kills | rounds | recovered | verify ok | undone exact | parity ok | failures | whole run | took |\n|---|---|---|---|---|---|---|---|---|---|";
    println!("{header}");
    let next = Mutex::new(queue.iter().enumerate());
    let rows: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let Some((i, sc)) = next.lock().unwrap().next() else {
                        return;
                    };
                    let row = bench(sc, seed, target, doctor.as_ref());
                    println!("{}", line(sc.name, &row));
                    rows.lock().unwrap().push((i, row));
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by_key(|(i, _)| *i);
    println!("\n{header}");
    for (i, row) in &rows {
        println!("{}", line(queue[*i].name, row));
    }
    let failed: Vec<&String> = rows.iter().flat_map(|(_, r)| &r.failures).collect();
    println!("\n{} failures, by kind:", failed.len());
    let mut kinds: std::collections::BTreeMap<String, (usize, &String)> = Default::default();
    for f in &failed {
        kinds.entry(kind_of(f)).or_insert((0, f)).0 += 1;
    }
    for (kind, (n, example)) in &kinds {
        println!("- {n} x {kind}\n  e.g. {example}");
    }
    println!("\nevery failure:");
    for f in failed {
        println!("- {f}");
    }
}
