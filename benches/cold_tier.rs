//! The cold tier's bytes and speed: transcripts held as packed objects (chunked, deduped,
//! compressed in blocks with a dictionary trained on the store's own sessions) against the
//! same files as `.jsonl.zst` (the compress tier's encoder) and plain.
//!
//! 1. Real transcripts: N sessions (240 quick) written by the real Codex CLI against the
//!    stand-in model server, with varied commands and turn counts; built once into
//!    `target/bench-corpus-cold`.
//! 2. Generated transcripts (`testkit::synthetic_home`), the same comparison.
//! 3. Reading one ~50 KB object back from a store holding 100,000 objects.
//! 4. 52 weekly backups of a changing thread index: pages in packs against a separate
//!    zstd -3 copy per backup (issue 23).
//!
//! `cargo bench --bench cold_tier`. Needs the real Codex CLI (.ci/run installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use codex_maint::store::Store;
use codex_maint::store::pack::{Chunker, ObjectId, PackLimits};
use codex_maint::testkit::synthetic_home::{SessionSpec, write_transcript};
use codex_maint::zstd_stream::{self, EncodeSettings, NewFileMeta};

#[path = "../tests/support/model_server.rs"]
mod model_server;
mod support;

/// Commands whose output fills the corpus's tool calls: listings, history, source files.
fn corpus_commands() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut commands = vec![
        "ls -la /usr/bin | head -400".to_string(),
        "ls -laR /usr/share/doc | head -1500".to_string(),
        format!("git -C {root} log --stat -n 30"),
        format!("git -C {root} log --oneline -n 200"),
        "ps aux".to_string(),
        "env | sort | head -40".to_string(),
        "df -h".to_string(),
        format!("grep -rn 'pub fn' {root}/src | head -300"),
    ];
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(Path::new(root).join("src"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    commands.extend(files.iter().map(|f| format!("cat {}", f.display())));
    commands
}

/// Runs one session of `turns` turns in `home`, each turn one command through Codex's own
/// exec tool, against a model server of its own (the stand-in stops after ten minutes).
fn one_session(codex: &Path, home: &Path, work: &Path, prompts: &[String]) {
    let server = model_server::ModelServer::start();
    std::fs::write(home.join("config.toml"), server.config_toml()).unwrap();
    let mut id: Option<String> = None;
    for prompt in prompts {
        let mut cmd = Command::new(codex);
        cmd.env("CODEX_HOME", home)
            .env_remove("OPENAI_API_KEY")
            .current_dir(work)
            .stdin(Stdio::null());
        match &id {
            None => cmd.args(["exec", "--skip-git-repo-check", prompt]),
            Some(id) => cmd.args(["exec", "--skip-git-repo-check", "resume", id, prompt]),
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

/// Real transcripts, built once: `sessions` sessions on three homes at once, turn counts 1
/// to 6 and commands varied by a fixed sequence, so reruns give the same corpus shape.
fn real_corpus(codex: &Path, sessions: usize) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-corpus-cold");
    let done = root.join("complete");
    const HOMES: usize = 3;
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&root);
        eprintln!(
            "building the real-transcript corpus in {} (once) ...",
            root.display()
        );
        let commands = corpus_commands();
        std::thread::scope(|scope| {
            for h in 0..HOMES {
                let root = &root;
                let commands = &commands;
                scope.spawn(move || {
                    let home = root.join(format!("home{h}"));
                    let work = root.join(format!("work{h}"));
                    std::fs::create_dir_all(&home).unwrap();
                    std::fs::create_dir_all(&work).unwrap();
                    for s in (h..sessions).step_by(HOMES) {
                        let turns = 1 + (s * 7 + 3) % 6;
                        let prompts: Vec<String> = (0..turns)
                            .map(|t| {
                                let k = (s * 13 + t * 29) % commands.len();
                                match t % 3 {
                                    0 => format!("RUN: {}", commands[k]),
                                    1 => format!("Please look at this. RUN: {}", commands[k]),
                                    _ => format!(
                                        "Session {s} turn {t}: summarise what you found so far."
                                    ),
                                }
                            })
                            .collect();
                        one_session(codex, &home, &work, &prompts);
                        if s % 30 == 0 {
                            eprintln!("  session {s} of {sessions}");
                        }
                    }
                });
            }
        });
        std::fs::write(&done, "").unwrap();
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

/// Bytes of `files` as `.jsonl.zst`, written by the compress tier's own encoder at its
/// default settings.
fn as_jsonl_zst(files: &[PathBuf], scratch: &Path) -> u64 {
    std::fs::create_dir_all(scratch).unwrap();
    let mut total = 0;
    for (i, f) in files.iter().enumerate() {
        let dst = scratch.join(format!("{i}.jsonl.zst"));
        let hashed =
            zstd_stream::encode_file(f, &dst, EncodeSettings::default(), NewFileMeta::default())
                .unwrap();
        total += hashed.stored_len;
        std::fs::remove_file(&dst).unwrap();
    }
    total
}

struct Packed {
    bytes: u64,
    dictionary_bytes: u64,
    catalog_bytes: u64,
    secs: f64,
}

/// Stores `files` as cdc-lines objects in a new store, `batch` per writer (as retire runs
/// commit), at `level`, and reads every one back against its file.
fn as_packs(files: &[PathBuf], root: &Path, level: i32, batch: usize) -> Packed {
    let _ = std::fs::remove_dir_all(root);
    let store = Store::open_for_write(root).unwrap();
    let empty_catalog = catalog_bytes(&store);
    let objects = store.objects();
    let block_bytes = std::env::var("CODEX_MAINT_BENCH_BLOCK_KB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(PackLimits::default().block_bytes, |kb| kb << 10);
    let limits = PackLimits {
        text_level: level,
        block_bytes,
        ..PackLimits::default()
    };
    let started = Instant::now();
    let mut ids = Vec::new();
    for group in files.chunks(batch) {
        let mut w = objects.writer_with(limits).unwrap();
        for f in group {
            let mut file = std::fs::File::open(f).unwrap();
            ids.push(w.put_reader(&mut file, Chunker::CdcLines).unwrap());
        }
        w.commit().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    for (id, f) in ids.iter().zip(files) {
        assert_eq!(objects.read(id).unwrap(), std::fs::read(f).unwrap());
    }
    let sizes = objects.sizes().unwrap();
    let catalog_bytes = catalog_bytes(&store) - empty_catalog;
    Packed {
        bytes: sizes.pack_bytes + sizes.dictionary_bytes,
        dictionary_bytes: sizes.dictionary_bytes,
        catalog_bytes,
        secs,
    }
}

/// The catalog's bytes once its write-ahead log is folded in.
fn catalog_bytes(store: &Store) -> u64 {
    let conn = store.catalog.connection();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    (pages * size) as u64
}

fn plain_bytes(files: &[PathBuf]) -> u64 {
    files.iter().map(|f| f.metadata().unwrap().len()).sum()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The comparison for one corpus, a row per pack level.
fn compare(
    label: &str,
    files: &[PathBuf],
    scratch: &Path,
    levels: &[i32],
    say: &mut dyn FnMut(String),
) {
    let plain = plain_bytes(files);
    let zst = as_jsonl_zst(files, &scratch.join("zst"));
    say(format!(
        "{label}: {} transcripts, {:.1} MB plain, {:.2} MB as .jsonl.zst (level {}, {:.1}x)",
        files.len(),
        mb(plain),
        mb(zst),
        zstd_stream::DEFAULT_LEVEL,
        plain as f64 / zst as f64
    ));
    // A retire commits its objects `BATCH` sessions at a time, and a block closes at each
    // commit: a large retire fills 8 MiB blocks, a small weekly one (50 here) leaves
    // shorter blocks with less to match across sessions. Both are measured.
    let runs = [
        (codex_maint::ops::session_retire::BATCH, levels),
        (50, &[PackLimits::default().text_level][..]),
    ];
    for (batch, levels) in runs {
        for &level in levels {
            pack_row(files, scratch, level, batch, zst, plain, say);
        }
    }
}

fn pack_row(
    files: &[PathBuf],
    scratch: &Path,
    level: i32,
    batch: usize,
    zst: u64,
    plain: u64,
    say: &mut dyn FnMut(String),
) {
    let packed = as_packs(
        files,
        &scratch.join(format!("store-{level}-{batch}")),
        level,
        batch,
    );
    say(format!(
        "  packs at level {level:>2}, {batch} sessions a commit: {:.2} MB (dictionary {:.2} MB) = {:.1}x smaller than .jsonl.zst, {:.1}x than plain; {:.1} MB/s into the store; catalog grew {:.2} MB",
        mb(packed.bytes),
        mb(packed.dictionary_bytes),
        zst as f64 / packed.bytes as f64,
        plain as f64 / packed.bytes as f64,
        mb(plain) / packed.secs,
        mb(packed.catalog_bytes),
    ));
}

/// Generated transcripts of the testkit, as many as the real ones and of similar sizes.
fn generated_corpus(dir: &Path, like: &[PathBuf]) -> Vec<PathBuf> {
    let home = dir.join("generated");
    like.iter()
        .enumerate()
        .map(|(n, f)| {
            let bytes = f.metadata().unwrap().len() as usize;
            let spec = SessionSpec::aged(n as u64, 30.0 + n as f64, bytes.max(4096));
            write_transcript(&home, &spec).unwrap()
        })
        .collect()
}

/// A store of `count` objects of about 50 KB, built from the real transcripts with a
/// unique first line each (fast level: this measures finding and decoding one object, not
/// compression); then the time to read one back, over `probes` objects.
fn read_at_scale(
    real: &[PathBuf],
    root: &Path,
    count: usize,
    probes: usize,
    say: &mut dyn FnMut(String),
) {
    let _ = std::fs::remove_dir_all(root);
    let bodies: Vec<Vec<u8>> = real
        .iter()
        .map(|f| {
            let mut b = std::fs::read(f).unwrap();
            b.truncate(50_000);
            b
        })
        .collect();
    let make = |k: usize| {
        let mut bytes = format!("{{\"object\":{k}}}\n").into_bytes();
        bytes.extend_from_slice(&bodies[k % bodies.len()]);
        bytes
    };
    let started = Instant::now();
    {
        let store = Store::open_for_write(root).unwrap();
        let objects = store.objects();
        let limits = PackLimits {
            text_level: 3,
            ..PackLimits::default()
        };
        for start in (0..count).step_by(5000) {
            let mut w = objects.writer_with(limits).unwrap();
            for k in start..(start + 5000).min(count) {
                w.put_bytes(&make(k), Chunker::CdcLines).unwrap();
            }
            w.commit().unwrap();
        }
    }
    let built = started.elapsed().as_secs_f64();
    let store = Store::open_for_write(root).unwrap();
    let objects = store.objects();
    let sizes = objects.sizes().unwrap();
    let mut times = Vec::new();
    for p in 0..probes {
        let k = (p * 7919 + 13) % count;
        let expected = make(k);
        let id = ObjectId::of(&expected);
        // A fresh view each time: no block or dictionary left cached by the last read.
        let objects = store.objects();
        let t = Instant::now();
        let got = objects.read(&id).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(got, expected);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let catalog = catalog_bytes(&store);
    say(format!(
        "read one ~50 KB object among {} objects ({} chunks, {} packs, catalog {:.1} MB, built in {built:.0} s): median {:.2} ms, max {:.2} ms over {probes} reads",
        sizes.objects,
        sizes.chunks,
        sizes.packs,
        mb(catalog),
        times[times.len() / 2],
        times[times.len() - 1]
    ));
}

/// Issue 23's weekly backups: a thread index of `rows` rows, changed each week (rows among
/// the newest tenth updated, 2% added), backed up `weeks` times. Each backup as its own zstd -3
/// copy (what `state.tar.zst` costs a database) against the pack bytes each adds as pages.
fn weekly_backups(dir: &Path, rows: usize, weeks: usize, say: &mut dyn FnMut(String)) {
    let db_path = dir.join("state_5.sqlite");
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    conn.execute_batch(
        "CREATE TABLE threads (id INTEGER PRIMARY KEY, title TEXT, preview TEXT, updated_at INTEGER);",
    )
    .unwrap();
    let fill = |from: usize, to: usize| {
        let tx = conn.unchecked_transaction().unwrap();
        for i in from..to {
            tx.execute(
                "INSERT INTO threads (title, preview, updated_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    format!("Fix the build of module {i}"),
                    format!(
                        "{} {i}",
                        "The user asked to look at the failing test and ".repeat(1 + i % 5)
                    ),
                    i as i64
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    };
    fill(0, rows);
    let store = Store::open_for_write(&dir.join("backup-store")).unwrap();
    let objects = store.objects();
    let (mut tars, mut packs, mut plain) = (0u64, 0u64, 0u64);
    let mut total = rows;
    for week in 0..weeks {
        if week > 0 {
            let tx = conn.unchecked_transaction().unwrap();
            for k in 0..rows / 10 {
                // Recent threads are the ones that change.
                let id = total - (k * 7919 + week) % (rows / 10);
                tx.execute(
                    "UPDATE threads SET updated_at = updated_at + 1 WHERE id = ?1",
                    [id as i64],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            fill(total, total + rows / 50);
            total += rows / 50;
        }
        let bytes = std::fs::read(&db_path).unwrap();
        plain += bytes.len() as u64;
        tars += zstd::bulk::compress(&bytes, 3).unwrap().len() as u64;
        let before = objects.sizes().unwrap().pack_bytes;
        let mut w = objects.writer().unwrap();
        w.put_bytes(&bytes, Chunker::SqlitePage).unwrap();
        w.commit().unwrap();
        packs += objects.sizes().unwrap().pack_bytes - before;
        if week + 1 == 12 || week + 1 == weeks {
            say(format!(
                "{} weekly backups of a thread index of {rows} rows and more ({:.1} MB plain in all; rows among the newest tenth updated and 2% added each week): {:.2} MB as separate zstd -3 copies, {:.2} MB as pages in packs ({:.1}x less)",
                week + 1,
                mb(plain),
                mb(tars),
                mb(packs),
                tars as f64 / packs as f64
            ));
        }
    }
    assert!(objects.verify_all().unwrap().is_empty());
}

fn main() {
    let Some(codex) = codex_maint::testkit::installed_codex() else {
        eprintln!("the real Codex CLI is not installed: run .ci/run (it installs it) first");
        std::process::exit(2);
    };
    let sessions: usize = std::env::var("CODEX_MAINT_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let real = real_corpus(&codex, sessions);
    let objects_at_scale: usize = std::env::var("CODEX_MAINT_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let levels: Vec<i32> = std::env::var("CODEX_MAINT_BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_else(|| vec![19, 15, 12, 9, 6, 3]);
    let dir = support::bench_dir("codex-maint-bench-cold-");
    let mut out = String::new();
    let mut say = |line: String| {
        println!("{line}");
        out.push_str(&line);
        out.push('\n');
    };
    if std::env::var("CODEX_MAINT_BENCH_ONLY").is_ok_and(|v| v == "backups") {
        weekly_backups(dir.path(), 20_000, 52, &mut say);
        return;
    }
    weekly_backups(dir.path(), 20_000, 52, &mut say);
    compare(
        "real (Codex CLI)",
        &real,
        &dir.path().join("real"),
        &levels,
        &mut say,
    );
    if std::env::var("CODEX_MAINT_BENCH_ONLY").is_ok_and(|v| v == "real") {
        return;
    }
    let generated = generated_corpus(dir.path(), &real);
    compare(
        "generated (testkit)",
        &generated,
        &dir.path().join("gen"),
        &levels,
        &mut say,
    );
    read_at_scale(
        &real,
        &dir.path().join("scale"),
        objects_at_scale,
        200,
        &mut say,
    );
    std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-cold-tier.txt"),
        out,
    )
    .unwrap();
}
