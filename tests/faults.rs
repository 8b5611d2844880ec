//! Bad input and faults (issue 13), as a table: each case damages a home or a store that
//! has real history, runs one command, and names the exit code and a fragment of what it
//! must say. Every case then proves that nothing in the home or the store changed, byte
//! for byte, databases and their `-wal`/`-shm` included. Each would fail on the code
//! before the issue: it either changed something or answered differently.

mod support;

use codex_maint::testkit::fingerprint::{EntryState, differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::*;

/// A home with three old sessions and one recent, a 3 MB log; run 1 archived session 0
/// (op 1), run 2 is a cleanup (sessions and logs) that archived the other old ones, rotated
/// the log into the store and took a backup.
struct Fixture {
    sb: Sandbox,
    specs: Vec<SessionSpec>,
    codex: Option<std::process::Child>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut c) = self.codex.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Fixture {
    fn catalog_path(&self) -> PathBuf {
        self.sb.store.join("catalog.sqlite")
    }

    /// Edits the catalog as an attacker or a broken disk would; checkpointed, so the edit
    /// is in the main file like any finished run's.
    fn edit_catalog(&self, sql: &str) {
        let conn = Connection::open(self.catalog_path()).unwrap();
        conn.execute_batch(sql).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
    }

    fn op_of_kind(&self, kind: &str) -> i64 {
        let conn = Connection::open(self.catalog_path()).unwrap();
        conn.query_row(
            "SELECT id FROM ops WHERE kind = ?1 ORDER BY id LIMIT 1",
            [kind],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn outside(&self) -> PathBuf {
        let dir = self.sb.dir.path().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn overwrite_catalog(&self, bytes: &[u8]) {
        std::fs::write(self.catalog_path(), bytes).unwrap();
    }

    /// Replaces `name` in the home by a symlink to a copy of it outside the home.
    fn symlink_out(&self, name: &str) -> PathBuf {
        let real = self.sb.home.join(name);
        let moved = self.outside().join(name);
        std::fs::rename(&real, &moved).unwrap();
        std::os::unix::fs::symlink(&moved, &real).unwrap();
        moved
    }
}

fn fixture() -> Fixture {
    let specs: Vec<SessionSpec> = (0..4)
        .map(|i| SessionSpec::aged(i, if i == 3 { 2.0 } else { 30.0 }, 3000))
        .collect();
    let sb = Sandbox::with_sessions(&specs, true);
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    std::fs::write(
        sb.home.join("log/codex-tui.log"),
        "line of log\n".repeat(300_000),
    )
    .unwrap();
    sb.ok_json(&["archive", &specs[0].id]);
    // Not `compress`: op 1's transcript must stay where op 1 left it.
    let only = ["--only", "sessions,logs", "--large-log-mb", "1"];
    let mut dry = vec!["cleanup", "--dry-run"];
    dry.extend(only);
    let plan = sb.ok_json(&dry)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut apply = vec!["cleanup", "--yes", "--plan", &plan];
    apply.extend(only);
    sb.ok_json(&apply);
    Fixture {
        sb,
        specs,
        codex: None,
    }
}

struct Case {
    name: &'static str,
    /// Damages the fixture and returns the command to run.
    setup: fn(&mut Fixture) -> Vec<String>,
    exit: i32,
    says: &'static str,
    /// A fragment that must not appear (a leftover reported as data, a raw error).
    never_says: Option<&'static str>,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The thread index with a committed transaction left in its WAL, as Codex leaves it.
fn pending_wal_in_index(f: &mut Fixture) {
    write_with_pending_wal(
        &f.sb.home.join("state_5.sqlite"),
        "CREATE TABLE IF NOT EXISTS pending(x); INSERT INTO pending VALUES (1);",
    );
    assert!(
        std::fs::metadata(f.sb.home.join("state_5.sqlite-wal"))
            .unwrap()
            .len()
            > 0
    );
}

fn cases() -> Vec<Case> {
    vec![
        // 1. Dry runs open nothing read-write.
        Case {
            name: "undo --dry-run of the cleanup leaves the index's pending WAL alone",
            setup: |f| {
                pending_wal_in_index(f);
                args(&["undo", "--dry-run"])
            },
            exit: 0,
            says: "no files changed",
            never_says: None,
        },
        Case {
            name: "undo --dry-run of the archive leaves the index's pending WAL alone",
            setup: |f| {
                pending_wal_in_index(f);
                args(&["undo", "--run", "1", "--dry-run"])
            },
            exit: 0,
            says: "no files changed",
            never_says: None,
        },
        Case {
            name: "restore --dry-run leaves the index's pending WAL alone",
            setup: |f| {
                pending_wal_in_index(f);
                args(&["restore", "1", "--dry-run"])
            },
            exit: 0,
            says: "no files changed",
            never_says: None,
        },
        Case {
            name: "restore --dry-run leaves the catalog's own pending WAL alone",
            setup: |f| {
                write_with_pending_wal(&f.catalog_path(), "UPDATE runs SET status = status;");
                args(&["restore", "1", "--dry-run"])
            },
            exit: 0,
            says: "no files changed",
            never_says: None,
        },
        Case {
            name: "undo --dry-run takes no lock (creates no lock file)",
            setup: |f| {
                std::fs::remove_file(f.sb.store.join("lock")).unwrap();
                args(&["undo", "--dry-run"])
            },
            exit: 0,
            says: "no files changed",
            never_says: None,
        },
        // 2. Paths from the catalog, and symlinked folders, are checked at the write.
        Case {
            name: "restore of an op whose source was edited to outside the home",
            setup: |f| {
                let to = f.outside().join("stolen.jsonl");
                f.edit_catalog(&format!(
                    "UPDATE ops SET src = '{}' WHERE id = 1",
                    to.display()
                ));
                args(&["restore", "1"])
            },
            exit: 3,
            says: "outside the Codex home",
            never_says: None,
        },
        Case {
            name: "restore --dry-run of the same edited op refuses too",
            setup: |f| {
                let to = f.outside().join("stolen.jsonl");
                f.edit_catalog(&format!(
                    "UPDATE ops SET src = '{}' WHERE id = 1",
                    to.display()
                ));
                args(&["restore", "1", "--dry-run"])
            },
            exit: 3,
            says: "outside the Codex home",
            never_says: None,
        },
        Case {
            name: "undo of an op whose source climbs out with sessions/../..",
            setup: |f| {
                let to = f.sb.home.join("sessions/../../escaped.jsonl");
                f.edit_catalog(&format!(
                    "UPDATE ops SET src = '{}' WHERE id = 1",
                    to.display()
                ));
                args(&["undo", "--run", "1"])
            },
            exit: 3,
            says: "..",
            never_says: None,
        },
        Case {
            name: "undo --dry-run of the op that climbs out refuses too",
            setup: |f| {
                let to = f.sb.home.join("sessions/../../escaped.jsonl");
                f.edit_catalog(&format!(
                    "UPDATE ops SET src = '{}' WHERE id = 1",
                    to.display()
                ));
                args(&["undo", "--run", "1", "--dry-run"])
            },
            exit: 3,
            says: "..",
            never_says: None,
        },
        Case {
            name: "restore of a rotated log whose recorded path was edited to outside the home",
            setup: |f| {
                let op = f.op_of_kind("store_files");
                let to = f.outside().join("codex-tui.log");
                f.edit_catalog(&format!(
                    "UPDATE ops SET detail = json_set(detail, '$.files[0].path', '{}') WHERE id = {op}",
                    to.display()
                ));
                args(&["restore", &op.to_string()])
            },
            exit: 3,
            says: "outside the Codex home",
            never_says: None,
        },
        Case {
            name: "undo when archived_sessions/ became a symlink to a folder outside",
            setup: |f| {
                f.symlink_out("archived_sessions");
                args(&["undo", "--run", "1"])
            },
            exit: 3,
            says: "symlink",
            never_says: None,
        },
        Case {
            name: "archive into an archived_sessions/ that is a symlink to a folder outside",
            setup: |f| {
                f.symlink_out("archived_sessions");
                args(&["archive", &f.specs[3].id])
            },
            exit: 3,
            says: "symlink",
            never_says: None,
        },
        Case {
            name: "archive by age when sessions/ is a symlink to a folder outside",
            setup: |f| {
                f.symlink_out("sessions");
                args(&["archive", "--older-than", "1d", "--yes"])
            },
            exit: 0,
            says: "is a symlink",
            never_says: None,
        },
        Case {
            name: "recover of an interrupted op whose source points outside the home",
            setup: |f| {
                let to = f.outside().join("stolen.jsonl");
                f.edit_catalog(&format!(
                    "UPDATE ops SET state = 'prepared', src = '{}' WHERE id = 1",
                    to.display()
                ));
                args(&["recover"])
            },
            exit: 4,
            says: "outside the Codex home",
            never_says: None,
        },
        // 3. A damaged, emptied or newer catalog is refused, naming the file.
        Case {
            name: "undo with an empty catalog beside stored blobs",
            setup: |f| {
                f.overwrite_catalog(b"");
                args(&["undo"])
            },
            exit: 3,
            says: "catalog.sqlite is empty",
            never_says: None,
        },
        Case {
            name: "archive with an empty catalog beside stored blobs",
            setup: |f| {
                f.overwrite_catalog(b"");
                args(&["archive", &f.specs[3].id])
            },
            exit: 3,
            says: "catalog.sqlite is empty",
            never_says: None,
        },
        Case {
            name: "log with an empty catalog beside stored blobs",
            setup: |f| {
                f.overwrite_catalog(b"");
                args(&["log"])
            },
            exit: 3,
            says: "catalog.sqlite is empty",
            never_says: None,
        },
        Case {
            name: "recover with an empty catalog beside stored blobs",
            setup: |f| {
                f.overwrite_catalog(b"");
                args(&["recover"])
            },
            exit: 3,
            says: "catalog.sqlite is empty",
            never_says: None,
        },
        Case {
            name: "verify with an empty catalog beside stored blobs",
            setup: |f| {
                f.overwrite_catalog(b"");
                args(&["verify"])
            },
            exit: 3,
            says: "catalog.sqlite is empty",
            never_says: None,
        },
        Case {
            name: "archive with the catalog deleted but blobs and backups kept",
            setup: |f| {
                std::fs::remove_file(f.catalog_path()).unwrap();
                args(&["archive", &f.specs[3].id])
            },
            exit: 3,
            says: "catalog.sqlite is missing",
            never_says: None,
        },
        Case {
            name: "undo with a catalog truncated to 4 KiB",
            setup: |f| {
                let bytes = std::fs::read(f.catalog_path()).unwrap();
                f.overwrite_catalog(&bytes[..4096]);
                args(&["undo"])
            },
            exit: 3,
            says: "catalog.sqlite",
            never_says: None,
        },
        Case {
            name: "log with a catalog truncated to 4 KiB",
            setup: |f| {
                let bytes = std::fs::read(f.catalog_path()).unwrap();
                f.overwrite_catalog(&bytes[..4096]);
                args(&["log"])
            },
            exit: 3,
            says: "catalog.sqlite",
            never_says: None,
        },
        Case {
            name: "verify with a catalog truncated to 4 KiB",
            setup: |f| {
                let bytes = std::fs::read(f.catalog_path()).unwrap();
                f.overwrite_catalog(&bytes[..4096]);
                args(&["verify"])
            },
            exit: 3,
            says: "catalog.sqlite",
            never_says: None,
        },
        Case {
            name: "undo with a catalog full of garbage",
            setup: |f| {
                f.overwrite_catalog(&[0x5a; 8192]);
                args(&["undo"])
            },
            exit: 3,
            says: "catalog.sqlite cannot be read",
            never_says: None,
        },
        Case {
            name: "recover with a catalog full of garbage",
            setup: |f| {
                f.overwrite_catalog(&[0x5a; 8192]);
                args(&["recover"])
            },
            exit: 3,
            says: "catalog.sqlite cannot be read",
            never_says: None,
        },
        Case {
            name: "log with a catalog full of garbage",
            setup: |f| {
                f.overwrite_catalog(&[0x5a; 8192]);
                args(&["log"])
            },
            exit: 3,
            says: "catalog.sqlite cannot be read",
            never_says: None,
        },
        Case {
            name: "undo with a catalog written by a newer codex-maint",
            setup: |f| {
                f.edit_catalog(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
                );
                args(&["undo"])
            },
            exit: 3,
            says: "has format 99",
            never_says: None,
        },
        Case {
            name: "log with a catalog written by a newer codex-maint",
            setup: |f| {
                f.edit_catalog(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
                );
                args(&["log"])
            },
            exit: 3,
            says: "knows formats up to 7",
            never_says: None,
        },
        // 4. Our own temporary files are never data.
        Case {
            name: "inspect does not report a leftover temporary file as a large log",
            setup: |f| {
                std::fs::write(
                    f.sb.home.join(format!(
                        "log/{}0123456789abcdef0123456789abcdef-codex-tui.log.1",
                        codex_maint::fs_atomic::TEMP_PREFIX
                    )),
                    "x".repeat(2 << 20),
                )
                .unwrap();
                args(&["inspect", "--large-log-mb", "1"])
            },
            exit: 0,
            says: "\"exit_code\": 0",
            never_says: Some(codex_maint::fs_atomic::TEMP_PREFIX),
        },
        Case {
            name: "cleanup --dry-run does not plan a leftover temporary file",
            setup: |f| {
                std::fs::write(
                    f.sb.home.join(format!(
                        "log/{}0123456789abcdef0123456789abcdef-codex-tui.log.1",
                        codex_maint::fs_atomic::TEMP_PREFIX
                    )),
                    "x".repeat(2 << 20),
                )
                .unwrap();
                args(&["cleanup", "--dry-run", "--large-log-mb", "1"])
            },
            exit: 0,
            says: "plan",
            never_says: Some(codex_maint::fs_atomic::TEMP_PREFIX),
        },
        // 8. Codex running is checked before recovery can write anything.
        Case {
            name: "automation --install while Codex runs refuses before recovery",
            setup: |f| {
                f.sb.ok_json(&["automation", "--init"]);
                f.codex = Some(fake_codex(f.sb.dir.path(), &f.sb.home));
                args(&[
                    "automation",
                    "--print-schedule",
                    "systemd",
                    "--install",
                    "--yes",
                ])
            },
            exit: 3,
            says: "Codex is running",
            never_says: None,
        },
    ]
}

/// The store's state, less the reviewed plans a `cleanup --dry-run` exists to write.
fn store_state(store: &Path) -> BTreeMap<String, EntryState> {
    let mut state = tree_fingerprint(store);
    state.retain(|k, _| !k.starts_with("plans"));
    state
}

#[test]
fn every_fault_is_answered_as_named_and_changes_nothing() {
    let table = cases();
    assert!(table.len() >= 30, "the issue asks for at least 30 cases");
    let mut failures = Vec::new();
    for case in table {
        let mut f = fixture();
        let cmd = (case.setup)(&mut f);
        let home_before = tree_fingerprint(&f.sb.home);
        let store_before = store_state(&f.sb.store);
        let outside_before = tree_fingerprint(&f.sb.dir.path().join("outside"));
        let out = f.sb.cmd().arg("--json").args(&cmd).output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut wrong = Vec::new();
        if code != case.exit {
            wrong.push(format!("exit {code}, expected {}", case.exit));
        }
        if !said.contains(case.says) {
            wrong.push(format!("does not say {:?}", case.says));
        }
        if let Some(never) = case.never_says
            && said.contains(never)
        {
            wrong.push(format!("says {never:?}"));
        }
        for (what, before, after) in [
            ("home", home_before, tree_fingerprint(&f.sb.home)),
            ("store", store_before, store_state(&f.sb.store)),
            (
                "outside",
                outside_before,
                tree_fingerprint(&f.sb.dir.path().join("outside")),
            ),
        ] {
            let diffs = differences(&before, &after);
            if !diffs.is_empty() {
                wrong.push(format!("{what} changed: {}", diffs.join("; ")));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} ({cmd:?}): {}\n  output: {}",
                case.name,
                wrong.join(", "),
                said.chars().take(600).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Item 4 of the issue: a crash during the undo of a cleanup, while a log is written back
/// from its blob, leaves a temporary copy beside it; `recover` removes it by name and the
/// undo then finishes, with the log whole.
#[test]
fn recover_removes_temporary_files_a_killed_undo_left_in_the_home_and_the_store() {
    let f = fixture();
    let log = f.sb.home.join("log/codex-tui.log");
    let out =
        f.sb.cmd()
            .env(codex_maint::failpoint::ENV_VAR, "restore-temp-written")
            .args(["undo", "--run", "2"])
            .output()
            .unwrap();
    assert!(!out.status.success(), "the failpoint was not reached");
    let temps = |dir: &Path| -> Vec<PathBuf> {
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
    };
    assert_eq!(
        temps(&f.sb.home).len(),
        1,
        "the crash left its copy in log/"
    );
    let stray_blob = f.sb.store.join(format!(
        "blobs/{}0123456789abcdef0123456789abcdef-blob",
        codex_maint::fs_atomic::TEMP_PREFIX
    ));
    std::fs::write(&stray_blob, "half a blob").unwrap();

    f.sb.ok_json(&["recover"]);
    assert!(temps(&f.sb.home).is_empty(), "{:?}", temps(&f.sb.home));
    assert!(temps(&f.sb.store).is_empty(), "{:?}", temps(&f.sb.store));
    assert_eq!(f.sb.json(&["verify"]).0, 0);
    f.sb.ok_json(&["undo", "--run", "2"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "line of log\n".repeat(300_000)
    );
}

#[test]
fn the_lock_and_every_blob_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.sb.store.join("lock")), 0o600);
    for e in walkdir::WalkDir::new(f.sb.store.join("blobs")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            assert_eq!(mode(e.path()), 0o600, "{}", e.path().display());
        }
    }
}

/// Item 5 of the issue: pruning a dead project from a `config.toml` that is a symlink (to a
/// dotfiles checkout) edits the file it points at and keeps the link; undo puts the old
/// bytes back into that same file.
#[test]
fn a_symlinked_config_stays_a_symlink_through_prune_and_undo() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(0, 2.0, 2000)], true);
    let dotfiles = sb.dir.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("config.toml");
    let original = format!(
        "# mine\nmodel = \"gpt-5\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
        sb.dir.path().join("deleted-project").display()
    );
    std::fs::write(&target, &original).unwrap();
    let link = sb.home.join("config.toml");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let plan = sb.ok_json(&["cleanup", "--dry-run"])["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = sb.ok_json(&["cleanup", "--yes", "--plan", &plan]);
    let run = doc["data"]["run_id"].to_string();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let edited = std::fs::read_to_string(&target).unwrap();
    assert!(
        !edited.contains("deleted-project") && edited.contains("# mine"),
        "{edited}"
    );

    sb.ok_json(&["undo", "--run", &run]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), original);
}

/// Item 10 of the issue: `--policy` no longer silently drops a threshold typed beside it.
#[test]
fn a_threshold_flag_wins_over_the_policy_file() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(0, 2.0, 2000)], true);
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    std::fs::write(
        sb.home.join("log/codex-tui.log"),
        "line of log\n".repeat(300_000),
    )
    .unwrap();
    sb.ok_json(&["automation", "--init"]);
    let policy = sb.store.join("policy.toml");
    assert!(policy.is_file());
    let planned = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["cleanup", "--dry-run", "--policy", policy.to_str().unwrap()];
        args.extend(extra);
        sb.ok_json(&args)["data"]["plan"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!planned(&[]).iter().any(|p| p.ends_with("codex-tui.log")));
    assert!(
        planned(&["--large-log-mb", "1"])
            .iter()
            .any(|p| p.ends_with("codex-tui.log"))
    );
}

#[test]
fn the_cleanup_report_says_where_each_threshold_came_from() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(0, 2.0, 2000)], true);
    sb.ok_json(&["automation", "--init"]);
    let policy = sb.store.join("policy.toml");
    let doc = sb.ok_json(&[
        "cleanup",
        "--dry-run",
        "--policy",
        policy.to_str().unwrap(),
        "--large-log-mb",
        "1",
    ]);
    let source = |name: &str| -> (String, String) {
        let s = doc["data"]["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no setting {name} in {}", doc["data"]["settings"]));
        (
            s["value"].as_str().unwrap().to_string(),
            s["source"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(source("large_log_mb"), ("1".into(), "flag".into()));
    assert_eq!(source("handoff_min_mb").1, "policy");
    assert_eq!(source("min_age").1, "policy");
    assert_eq!(source("compress_min_age").1, "default");

    let plain = sb.ok_json(&["cleanup", "--dry-run"]);
    assert!(
        plain["data"]["settings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["source"] == "default")
    );
}
