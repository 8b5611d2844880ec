//! A store on a real filesystem that fills up or turns read-only (issue 13, item 8): each
//! test mounts a small tmpfs for the store. As root that is a plain `mount`; otherwise the
//! test runs itself again inside `unshare --user --map-root-user --mount`. Where neither
//! works the test says so, and fails when CI requires every test to run.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// Set in the copy of the test binary that runs inside the mount namespace.
const INSIDE_NAMESPACE: &str = "CODEX_MAINT_TEST_IN_MOUNT_NAMESPACE";

/// A tmpfs mounted on a folder for one test, unmounted when dropped (even on a panic), so
/// a failed test never leaves a mount behind.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        run_mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ],
            dir,
        )
        .unwrap_or_else(|e| panic!("mounting a tmpfs on {}: {e}", dir.display()));
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn remount(&self, options: &str) {
        // With the type and source named: inside a user namespace, util-linux otherwise
        // passes the mount's old options back and the kernel refuses them.
        run_mount(
            &["-t", "tmpfs", "-o", &format!("remount,{options}"), "tmpfs"],
            &self.dir,
        )
        .unwrap_or_else(|e| panic!("remounting {} {options}: {e}", self.dir.display()));
    }

    /// Bytes in use, as the filesystem counts them.
    fn used_bytes(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.dir).unwrap();
        (s.f_blocks - s.f_bfree) * s.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn run_mount(args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn mounting_works_here() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    let probe = tempfile::tempdir().unwrap();
    let ok = run_mount(&["-t", "tmpfs", "-o", "size=64k", "tmpfs"], probe.path()).is_ok();
    if ok {
        let _ = Command::new("umount").arg(probe.path()).status();
    }
    ok
}

fn namespace_works() -> bool {
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `body` where it can mount a tmpfs: here when this process may, else in a copy of
/// this test binary inside a fresh user and mount namespace.
fn with_mounts(test: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE_NAMESPACE).is_some() || mounting_works_here() {
        body();
        return;
    }
    if !namespace_works() {
        let why = "this machine lets the test neither mount a tmpfs (not root) nor enter a user and mount namespace (`unshare --user --map-root-user --mount` fails)";
        if std::env::var_os("CODEX_MAINT_REQUIRE_CODEX").is_some() {
            panic!("{test}: CODEX_MAINT_REQUIRE_CODEX is set, but {why}");
        }
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
        return;
    }
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(INSIDE_NAMESPACE, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed inside its mount namespace");
}

/// Text that zstd cannot shrink below half: hex of a fixed pseudo-random stream, so the
/// blob sizes, and where the store fills, are the same on every run.
fn incompressible_log(bytes: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let mut out = String::with_capacity(bytes + 80);
    while out.len() < bytes {
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(&format!("{:02x}", x as u8));
        }
        out.push('\n');
    }
    out
}

/// A home with sessions, a thread index holding a pending WAL (as Codex leaves it), and
/// two large logs: one of about 700 KB and one of about 600 KB once compressed.
fn home_with_two_logs() -> Sandbox {
    let specs: Vec<SessionSpec> = (0..2).map(|i| SessionSpec::aged(i, 2.0, 2000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    write_with_pending_wal(
        &sb.home.join("state_5.sqlite"),
        "CREATE TABLE IF NOT EXISTS pending(x); INSERT INTO pending VALUES (1);",
    );
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    std::fs::write(
        sb.home.join("log/codex-tui.log"),
        incompressible_log(1_400_000, 7),
    )
    .unwrap();
    std::fs::write(
        sb.home.join("log/codex-tui.log.1"),
        incompressible_log(1_200_000, 11),
    )
    .unwrap();
    sb
}

const ONLY_LOGS: &[&str] = &["--only", "logs", "--large-log-mb", "1"];

fn reviewed_cleanup(sb: &Sandbox) -> std::process::Output {
    let mut dry = vec!["cleanup", "--dry-run"];
    dry.extend(ONLY_LOGS);
    let plan = sb.ok_json(&dry)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut apply = vec!["cleanup", "--yes", "--plan", &plan];
    apply.extend(ONLY_LOGS);
    sb.cmd().args(&apply).output().unwrap()
}

fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Our temporary files anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(codex_maint::fs_atomic::TEMP_PREFIX)
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Bytes the files under `dir` take, each rounded up to whole 4 KiB pages as tmpfs counts.
fn file_pages_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

#[test]
fn a_store_that_fills_mid_cleanup_says_where_and_what_and_recovers_to_the_original_home() {
    with_mounts(
        "a_store_that_fills_mid_cleanup_says_where_and_what_and_recovers_to_the_original_home",
        || {
            let sb = home_with_two_logs();
            // Room for the backup, the catalog and the first log's blob (about 700 KB: the
            // logs are hex, which zstd halves), not for the second's: at 1 MiB the catalog of
            // format 7 and its write-ahead log left no room for the first.
            let store = Tmpfs::mount(&sb.store, "1200k");
            let home_before = tree_fingerprint(&sb.home);

            let out = reviewed_cleanup(&sb);
            let text = said(&out);
            assert_eq!(out.status.code(), Some(1), "{text}");
            for must in [
                sb.store.display().to_string(),
                "stopped after 1 actions".into(),
                "codex-maint recover".into(),
                "nothing after the failed step was done".into(),
            ] {
                assert!(text.contains(&must), "does not say {must:?}:\n{text}");
            }
            assert!(
                text.contains("No space left on device") || text.contains("disk is full"),
                "does not say the disk is full:\n{text}"
            );
            assert!(
                temp_files(&sb.store).is_empty(),
                "the half-written blob was removed at once, not left to fill the disk: {:?}",
                temp_files(&sb.store)
            );
            assert!(
                !sb.home.join("log/codex-tui.log").exists(),
                "the first log was rotated before the store filled"
            );
            assert_eq!(
                tree_fingerprint(&sb.home.join("log"))
                    .get("codex-tui.log.1")
                    .and_then(|e| e.hash.clone()),
                home_before
                    .get("log/codex-tui.log.1")
                    .and_then(|e| e.hash.clone()),
                "the log the store had no room for is untouched"
            );

            let prepared: i64 = rusqlite::Connection::open_with_flags(
                sb.store.join("catalog.sqlite"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM ops WHERE state = 'prepared'",
                [],
                |r| r.get(0),
            )
            .unwrap();
            assert_eq!(prepared, 0, "the failed step was left for `recover`");

            // Still full: recovery either settles the step or says where it needs room.
            let full = sb.cmd().arg("recover").output().unwrap();
            if !full.status.success() {
                let text = said(&full);
                assert!(
                    text.contains(&sb.store.join("catalog.sqlite").display().to_string())
                        && text.contains("room"),
                    "{text}"
                );
            }
            store.remount("size=16m");
            sb.ok_json(&["recover"]);
            assert!(
                temp_files(&sb.store).is_empty(),
                "{:?}",
                temp_files(&sb.store)
            );
            assert!(
                temp_files(&sb.home).is_empty(),
                "{:?}",
                temp_files(&sb.home)
            );
            let used = store.used_bytes();
            let files = file_pages_bytes(&sb.store);
            assert!(
                used <= files + 64 * 1024,
                "the store's disk holds {used} bytes, its files only {files}: space was not given back"
            );
            eprintln!("store after recover: {used} bytes in use, {files} in its files");
            let catalog = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
            for e in walkdir::WalkDir::new(sb.store.join("blobs")) {
                let e = e.unwrap();
                if !e.file_type().is_file() {
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let hash = name.strip_suffix(".zst").unwrap_or(&name);
                let known: i64 = catalog
                    .query_row("SELECT COUNT(*) FROM blobs WHERE hash = ?1", [hash], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(
                    known,
                    1,
                    "{} is not a blob the catalog knows",
                    e.path().display()
                );
            }
            drop(catalog);

            sb.ok_json(&["undo"]);
            let diffs = differences(&home_before, &tree_fingerprint(&sb.home));
            assert!(
                diffs.is_empty(),
                "home differs after undo:\n{}",
                diffs.join("\n")
            );
        },
    );
}

#[test]
fn a_read_only_store_is_read_by_verify_and_refused_by_writers_naming_it() {
    with_mounts(
        "a_read_only_store_is_read_by_verify_and_refused_by_writers_naming_it",
        || {
            let sb = home_with_two_logs();
            let store = Tmpfs::mount(&sb.store, "16m");
            let out = reviewed_cleanup(&sb);
            assert!(out.status.success(), "{}", said(&out));
            // The catalog as a killed reader or writer leaves it: a WAL beside it.
            write_with_pending_wal(
                &sb.store.join("catalog.sqlite"),
                "UPDATE runs SET status = status;",
            );
            store.remount("ro");
            let home_before = tree_fingerprint(&sb.home);
            let store_before = tree_fingerprint(&sb.store);

            let (code, doc) = sb.json(&["verify"]);
            assert_eq!(code, 0, "verify reads a read-only store: {doc:#}");
            let (code, doc) = sb.json(&["undo", "--dry-run"]);
            assert_eq!(code, 0, "{doc:#}");
            let (code, doc) = sb.json(&["cleanup", "--dry-run"]);
            assert_eq!(code, 0, "a dry run works on a read-only store: {doc:#}");

            for writer in [&["undo"][..], &["recover"], &["undo", "--yes"]] {
                let (code, doc) = sb.json(writer);
                let message = error_message(&doc);
                assert_eq!(code, 3, "{writer:?}: {doc:#}");
                for must in [
                    sb.store.display().to_string(),
                    "read-only".into(),
                    "nothing was changed".into(),
                ] {
                    assert!(
                        message.contains(&must),
                        "{writer:?} does not say {must:?}: {message}"
                    );
                }
            }
            for (what, before, after) in [
                ("home", home_before, tree_fingerprint(&sb.home)),
                ("store", store_before, tree_fingerprint(&sb.store)),
            ] {
                let diffs = differences(&before, &after);
                assert!(diffs.is_empty(), "{what} changed:\n{}", diffs.join("\n"));
            }
        },
    );
}

/// Fills the filesystem under `dir` with one file, to the last byte it takes.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            break;
        }
    }
    for _ in 0..64 {
        if file.write_all(&[0x5a; 512]).is_err() {
            break;
        }
    }
    filler
}

#[test]
fn undo_of_a_rotation_into_a_full_home_names_the_path_and_leaves_no_temporary() {
    with_mounts(
        "undo_of_a_rotation_into_a_full_home_names_the_path_and_leaves_no_temporary",
        || {
            let sb = Sandbox::new();
            let _home_disk = Tmpfs::mount(&sb.home, "8m");
            let specs: Vec<SessionSpec> = (0..2).map(|i| SessionSpec::aged(i, 2.0, 2000)).collect();
            codex_maint::testkit::synthetic_home::build(&sb.home, &specs, true).unwrap();
            std::fs::create_dir_all(sb.home.join("log")).unwrap();
            std::fs::write(
                sb.home.join("log/codex-tui.log"),
                incompressible_log(1_400_000, 7),
            )
            .unwrap();
            let home_before = tree_fingerprint(&sb.home);
            let out = reviewed_cleanup(&sb);
            assert_eq!(out.status.code(), Some(0), "{}", said(&out));
            assert!(!sb.home.join("log/codex-tui.log").exists());

            let filler = fill(&sb.home);
            let out = sb.cmd().arg("undo").output().unwrap();
            let text = said(&out);
            assert_eq!(out.status.code(), Some(1), "{text}");
            let log = sb.home.join("log/codex-tui.log");
            assert!(
                text.contains(&log.display().to_string()),
                "names the path it could not write:\n{text}"
            );
            assert!(
                text.contains("No space left on device") || text.contains("disk is full"),
                "says the disk is full:\n{text}"
            );
            assert!(
                temp_files(&sb.home).is_empty(),
                "the half-written copy was removed before exit: {:?}",
                temp_files(&sb.home)
            );
            assert!(!log.exists(), "nothing half-restored in its place");
            let catalog = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
            let unsettled: i64 = catalog
                .query_row(
                    "SELECT COUNT(*) FROM ops WHERE state = 'prepared'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            drop(catalog);
            assert_eq!(
                unsettled, 0,
                "the failed step was rolled back by the undo itself, not left for recover"
            );
            let (code, verify) = sb.json(&["verify"]);
            assert_eq!(code, 0, "the rotation is still whole in force: {verify:#}");

            std::fs::remove_file(&filler).unwrap();
            sb.ok_json(&["undo"]);
            let diffs = differences(&home_before, &tree_fingerprint(&sb.home));
            assert!(
                diffs.is_empty(),
                "home differs after undo:\n{}",
                diffs.join("\n")
            );
            assert_eq!(sb.json(&["verify"]).0, 0);
        },
    );
}

#[test]
fn a_database_half_put_back_into_a_full_home_is_taken_away_again() {
    with_mounts(
        "a_database_half_put_back_into_a_full_home_is_taken_away_again",
        || {
            let sb = Sandbox::new();
            let _home_disk = Tmpfs::mount(&sb.home, "8m");
            let specs: Vec<SessionSpec> = (0..2).map(|i| SessionSpec::aged(i, 2.0, 2000)).collect();
            codex_maint::testkit::synthetic_home::build(&sb.home, &specs, true).unwrap();
            // The rows sit in the WAL: the main file is small, the WAL is most of the item.
            let db = sb.home.join("logs_2.sqlite");
            write_with_pending_wal(
                &db,
                "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts INTEGER, level TEXT, target TEXT, feedback_log_body TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
                 INSERT INTO logs (ts, level, target, feedback_log_body) SELECT i, 'INFO', 'codex', printf('%.200c', 'x') FROM n;",
            );
            let main_bytes = std::fs::metadata(&db).unwrap().len();
            let wal = sb.home.join("logs_2.sqlite-wal");
            assert!(std::fs::metadata(&wal).unwrap().len() > main_bytes + (256 << 10));
            let home_before = tree_fingerprint(&sb.home);
            let out = reviewed_cleanup(&sb);
            assert_eq!(out.status.code(), Some(0), "{}", said(&out));
            assert!(!db.exists(), "the log database was moved whole");

            // Room for the main file, not for its WAL.
            let filler = fill(&sb.home);
            let filled = std::fs::metadata(&filler).unwrap().len();
            let room = main_bytes.div_ceil(4096) * 4096 + (64 << 10);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&filler)
                .unwrap()
                .set_len(filled - room)
                .unwrap();
            let out = sb.cmd().arg("undo").output().unwrap();
            let text = said(&out);
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert!(text.contains(&wal.display().to_string()), "{text}");
            assert!(
                !db.exists() && !wal.exists(),
                "the main file put back before the WAL failed is taken away again"
            );
            assert!(
                temp_files(&sb.home).is_empty(),
                "{:?}",
                temp_files(&sb.home)
            );
            let (code, verify) = sb.json(&["verify"]);
            assert_eq!(code, 0, "the rotation is still whole in force: {verify:#}");

            std::fs::remove_file(&filler).unwrap();
            sb.ok_json(&["undo"]);
            let diffs = differences(&home_before, &tree_fingerprint(&sb.home));
            assert!(diffs.is_empty(), "after undo:\n{}", diffs.join("\n"));
        },
    );
}
