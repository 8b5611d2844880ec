//! A year of weekly scheduled cleanups (issue 23): a growing home, its store measured each
//! week by kind, without a budget and with `keep_within = "90d"`; `verify` after every
//! week; then `forget --keep-within 90d` + prune of the unbounded year, timed with its
//! peak memory.
//!
//! `cargo bench --bench store_year` runs the quick shape (2,000 sessions, 40 new a week);
//! `CODEX_MAINT_BENCH=full` the (20,000 sessions, 400 new a week).
//! `CODEX_MAINT_BENCH_WEEKS` shortens the year; `CODEX_MAINT_BENCH_DIR` picks the folder.
//! Simulated time: after each week every run in the catalog is moved 7 days back, so the
//! policy's window sees a year pass. The catalog is read as op rows and the lines of forgotten
//! runs compacted by prune (`forgotten_journals`); B/line is over both.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use codex_maint::testkit::heavy_home::HeavyHome;
use codex_maint::testkit::synthetic_home::{SessionSpec, insert_row, write_transcript};

mod support;
use support::{bench_dir, measure, ours_in};

struct Shape {
    sessions: u64,
    new_per_week: u64,
    log_bytes_per_week: u64,
    log_rows_per_week: u64,
}

fn shape() -> Shape {
    if std::env::var("CODEX_MAINT_BENCH").is_ok_and(|v| v == "full") {
        Shape {
            sessions: 20_000,
            new_per_week: 400,
            log_bytes_per_week: 40 << 20,
            log_rows_per_week: 60_000,
        }
    } else {
        Shape {
            sessions: 2_000,
            new_per_week: 40,
            log_bytes_per_week: 4 << 20,
            log_rows_per_week: 6_000,
        }
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> serde_json::Value {
    let out = cmd.output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    doc
}

/// A week of use: new sessions (old enough to archive by the next run), a new log and new
/// log rows where the last run rotated them.
fn a_week_passes(home: &Path, shape: &Shape, week: u64) {
    let index = rusqlite::Connection::open(home.join("state_5.sqlite")).unwrap();
    index.execute_batch("BEGIN").unwrap();
    for i in 0..shape.new_per_week {
        let n = 1_000_000 + week * 10_000 + i;
        let spec = SessionSpec::aged(
            n,
            31.0 + (i % 20) as f64,
            6_000 + (i as usize * 977) % 30_000,
        );
        write_transcript(home, &spec).unwrap();
        insert_row(&index, home, &spec).unwrap();
    }
    index.execute_batch("COMMIT").unwrap();
    std::fs::create_dir_all(home.join("log")).unwrap();
    let mut log = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("log/codex-tui.log"))
            .unwrap(),
    );
    let mut written = 0;
    let mut n = week * 1_000_003;
    while written < shape.log_bytes_per_week {
        let line = format!(
            "2026-W{week:02} INFO codex_core::exec: command {n} finished exit_code={} duration_ms={}\n",
            n % 3,
            n % 997
        );
        log.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        n += 7919;
    }
    log.flush().unwrap();
    let logs = rusqlite::Connection::open(home.join("logs_2.sqlite")).unwrap();
    logs.execute_batch(
        "CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,
             ts_nanos INTEGER NOT NULL DEFAULT 0, level TEXT NOT NULL, target TEXT NOT NULL,
             feedback_log_body TEXT, thread_id TEXT, estimated_bytes INTEGER NOT NULL DEFAULT 0);",
    )
    .unwrap();
    logs.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO logs (ts, level, target, feedback_log_body, estimated_bytes)
         SELECT i, 'INFO', 'codex_core::exec', printf('week %d row %d %.200c', ?2, i, 'l'), 250 FROM n",
        rusqlite::params![shape.log_rows_per_week as i64, week as i64],
    )
    .unwrap();
}

/// Every run recorded so far happened a week earlier than it says: the window moves on.
fn a_week_back(store: &Path) {
    let catalog = rusqlite::Connection::open(store.join("catalog.sqlite")).unwrap();
    catalog
        .execute(
            "UPDATE runs SET started_at = strftime('%Y-%m-%dT%H:%M:%SZ', started_at, '-7 days')",
            [],
        )
        .unwrap();
}

fn write_policy(store: &Path, keep_within: Option<&str>) {
    let path = store.join("policy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("unattended = []", "unattended = [\"sessions\", \"logs\"]")
        .replace("large_log_mb = 50", "large_log_mb = 1");
    let cut = text.find("[store]").unwrap();
    let budget = match keep_within {
        Some(w) => format!("[store]\nkeep_within = \"{w}\"\ndelete_only_copies = true\n"),
        None => "[store]\n".to_string(),
    };
    std::fs::write(&path, format!("{}{budget}", &text[..cut])).unwrap();
}

/// What the newest backup's databases would cost as a per-backup tar at zstd -3 (today's
/// format before page objects): each database the backup holds as an object, read back
/// whole and compressed alone.
fn newest_backup_as_tar(store: &Path) -> u64 {
    let catalog = codex_maint::store::open_read_only(store).unwrap().unwrap();
    let objects = codex_maint::store::pack::ObjectStore::new(&catalog, store);
    let ids: Vec<String> = catalog
        .connection()
        .prepare(
            "SELECT object FROM backup_objects WHERE backup_id = (SELECT MAX(id) FROM backups)",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids.iter()
        .map(|id| {
            let bytes = objects.read(&id.parse().unwrap()).unwrap();
            zstd::bulk::compress(&bytes, 3).unwrap().len() as u64
        })
        .sum()
}

/// Op rows, and lines held in forgotten runs' compacted journals.
fn journal_lines(store: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(store.join("catalog.sqlite")).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get(0)).unwrap();
    (
        count("SELECT COUNT(*) FROM ops"),
        count("SELECT COALESCE(SUM(ops), 0) FROM forgotten_journals"),
    )
}

/// The compacted records' bytes, and the catalog's free pages (freed rows later rows reuse).
fn catalog_space(store: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open(store.join("catalog.sqlite")).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    (
        count("SELECT COALESCE(SUM(length(lines)), 0) FROM forgotten_journals"),
        count("PRAGMA freelist_count") * count("PRAGMA page_size"),
    )
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let shape = shape();
    let weeks: u64 = std::env::var("CODEX_MAINT_BENCH_WEEKS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(52);
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_codex-maint"));
    let mut unbounded = None;
    for keep_within in [None, Some("90d")] {
        let dir = bench_dir("codex-maint-store-year-");
        let home = dir.path().join("home");
        let store = dir.path().join("store");
        let ours = |args: &[&str]| ours_in(&bin, &home, &store, dir.path(), args);
        let heavy = HeavyHome {
            log_bytes: shape.log_bytes_per_week,
            release_bytes: 1 << 20,
            ..HeavyHome::at_scale(shape.sessions, shape.sessions * 12_000)
        };
        heavy.build(&home).unwrap();
        run_ok(&mut ours(&["automation", "--init"]), "automation --init");
        write_policy(&store, keep_within);
        run_ok(
            &mut ours(&["automation", "--approve"]),
            "automation --approve",
        );
        let label = keep_within.map_or("no budget".to_string(), |w| format!("keep_within = {w}"));
        println!(
            "\n## {label}: {} sessions, {} new a week",
            shape.sessions, shape.new_per_week
        );
        println!(
            "| week | store MB | backups | as tars | blobs | catalog | plans | reports | other | op rows | compacted lines | records KB | free pages MB | catalog B/line | cleanup s | verify s |"
        );
        println!(
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        // Backups as they would be as one tar.zst each, for the weeks whose backups are
        // still in the store (all of them without a budget).
        let mut as_tars = 0u64;
        for week in 1..=weeks {
            if week > 1 {
                a_week_passes(&home, &shape, week);
            }
            let t = Instant::now();
            let policy = store.join("policy.toml");
            run_ok(
                &mut ours(&[
                    "cleanup",
                    "--unattended",
                    "--policy",
                    policy.to_str().unwrap(),
                ]),
                &format!("week {week}: scheduled cleanup"),
            );
            let cleanup_secs = t.elapsed().as_secs_f64();
            a_week_back(&store);
            let t = Instant::now();
            let verified = run_ok(&mut ours(&["verify"]), &format!("week {week}: verify"));
            assert_eq!(verified["data"]["ok"], true, "week {week}: {verified:#}");
            let verify_secs = t.elapsed().as_secs_f64();
            let s = codex_maint::store::retention::sizes::measure(&store);
            as_tars += newest_backup_as_tar(&store);
            let (ops, compacted) = journal_lines(&store);
            let (records, free) = catalog_space(&store);
            println!(
                "| {week} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {ops} | {compacted} | {:.0} | {:.2} | {:.0} | {cleanup_secs:.1} | {verify_secs:.1} |",
                mb(s.total),
                mb(s.backups),
                mb(as_tars),
                mb(s.blobs),
                mb(s.catalog),
                mb(s.plans),
                mb(s.reports),
                mb(s.other),
                records as f64 / 1e3,
                mb(free),
                s.catalog as f64 / (ops + compacted).max(1) as f64,
            );
            std::io::stdout().flush().unwrap();
        }
        if keep_within.is_none() {
            unbounded = Some(dir);
        } else {
            drop(dir);
        }
    }
    // Forget + prune of the unbounded year, as a user would after choosing a window.
    let dir = unbounded.expect("the unbounded year ran");
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let before = codex_maint::store::retention::sizes::measure(&store).total;
    let m = measure(&mut ours_in(
        &bin,
        &home,
        &store,
        dir.path(),
        &[
            "forget",
            "--keep-within",
            "90d",
            "--yes-delete-only-copies",
            "--yes",
        ],
    ));
    let after = codex_maint::store::retention::sizes::measure(&store).total;
    let (rows, compacted) = journal_lines(&store);
    let verified = run_ok(
        &mut ours_in(&bin, &home, &store, dir.path(), &["verify"]),
        "verify after forget",
    );
    println!(
        "\nforget --keep-within 90d + prune of {weeks} weeks: {:.2} s, {:.0} MB peak, store {:.1} MB -> {:.1} MB ({rows} op rows, {compacted} lines compacted), verify ok: {} (targets: < 10 s, < 100 MB)",
        m.secs,
        m.max_rss_mb,
        mb(before),
        mb(after),
        verified["data"]["ok"]
    );
    assert!(m.ok, "forget failed");
}
