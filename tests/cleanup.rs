//! `cleanup` end to end on a heavy home: the plan a careful person would make, applied
//! only as reviewed, shrinking the home by what it moved; `verify` passes; `undo` restores
//! every byte, mode, mtime, thread row and worktree registration. Each stop rule refuses.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::*;

struct Heavy {
    sb: Sandbox,
    repo: PathBuf,
    clean_wt: PathBuf,
    dirty_wt: PathBuf,
    dead_project: PathBuf,
}

/// Sessions (3 recent, 1 pinned), a clean old worktree and a dirty one, a 3 MB log, a
/// 1.5 MB log database with a pending WAL, an old and a current daemon release, and a
/// config with a live, a dead and a foreign project path.
fn heavy() -> Heavy {
    let sb = Sandbox::with_sessions(&mixed_specs(15), true);
    let home = sb.home.clone();
    let repo = sb.dir.path().join("repo");
    init_repo(&repo);
    let clean_wt = home.join("worktrees/a1/repo");
    let dirty_wt = home.join("worktrees/a2/repo");
    add_worktree(&repo, "clean", &clean_wt);
    add_worktree(&repo, "dirty", &dirty_wt);
    std::fs::write(dirty_wt.join("wip.txt"), "unsaved work\n").unwrap();
    age_tree(&clean_wt, 20);
    age_tree(&dirty_wt, 20);
    write_large_logs(&home);
    write_two_releases(&home);
    let dead_project = sb.dir.path().join("deleted-project");
    std::fs::write(
        home.join("config.toml"),
        format!(
            "# my settings, keep this comment\nmodel = \"gpt-5\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n\n# the old one\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n\n[projects.'C:\\Users\\me\\repo']\ntrust_level = \"trusted\"\n\n[some_future_table]\nknob = 3 # unknown to us\n",
            repo.display(),
            dead_project.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(home.join("memories")).unwrap();
    std::fs::write(home.join("memories/notes.md"), "remember this\n").unwrap();
    std::fs::write(
        home.join("auth.json"),
        "{\"OPENAI_API_KEY\": \"sk-test-never-copied\"}",
    )
    .unwrap();
    Heavy {
        sb,
        repo,
        clean_wt,
        dirty_wt,
        dead_project,
    }
}

const ARGS: &[&str] = &["--large-log-mb", "1"];

fn dry_run(sb: &Sandbox) -> Value {
    let mut args = vec!["cleanup", "--dry-run"];
    args.extend(ARGS);
    sb.ok_json(&args)
}

fn apply(sb: &Sandbox, plan: &str) -> (i32, Value) {
    let mut args = vec!["cleanup", "--yes", "--plan", plan];
    args.extend(ARGS);
    sb.json(&args)
}

fn worktree_list(repo: &Path) -> String {
    git(repo, &["worktree", "list", "--porcelain"])
}

fn kinds(plan: &Value) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["category"].as_str().unwrap().to_string(),
                a["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    k.sort();
    k
}

#[test]
fn the_plan_is_what_a_careful_person_would_do() {
    let h = heavy();
    let doc = dry_run(&h.sb);
    let plan = &doc["data"]["plan"];
    let k = kinds(plan);
    let count = |c: &str| k.iter().filter(|(cat, _)| cat == c).count();
    // 15 sessions: 3 recent (3 days old), 1 pinned -> 11 archived.
    assert_eq!(count("sessions"), 11, "{k:?}");
    assert!(k.contains(&("logs".into(), "codex-tui.log".into())));
    assert!(k.contains(&("logs".into(), "logs_2.sqlite".into())));
    assert!(k.contains(&("worktrees".into(), "repo".into())));
    assert_eq!(count("worktrees"), 1, "only the clean one");
    assert!(k.contains(&(
        "releases".into(),
        "0.160.0-x86_64-unknown-linux-musl".into()
    )));
    assert_eq!(count("releases"), 1);
    assert_eq!(count("projects"), 1);
    let prune = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["category"] == "projects")
        .unwrap();
    assert_eq!(
        prune["projects"],
        serde_json::json!([h.dead_project.display().to_string()])
    );
    let kept: Vec<String> = plan["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{}|{}|{}",
                k["category"].as_str().unwrap(),
                k["path"].as_str().unwrap(),
                k["reason"].as_str().unwrap()
            )
        })
        .collect();
    let kept_has = |cat: &str, path_part: &str, reason_part: &str| {
        kept.iter().any(|k| {
            k.starts_with(cat)
                && k.contains(path_part)
                && k.split('|').nth(2).unwrap().contains(reason_part)
        })
    };
    assert!(kept_has("worktrees", "a2/repo", "dirty"), "{kept:#?}");
    assert!(kept_has("releases", "0.169.0", "current"));
    assert!(kept_has("projects", "C:\\Users", "Windows"));
    assert!(kept_has("sessions", "", "pinned"));
    assert_eq!(kept.iter().filter(|k| k.contains("|recent")).count(), 3);
    // A dry run changes nothing in the home.
    let text = String::from_utf8(
        h.sb.cmd()
            .args(["cleanup", "--dry-run", "--large-log-mb", "1"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains(&format!("plan {}", plan["id"].as_str().unwrap())));
    assert!(h.clean_wt.exists() && h.sb.home.join("log/codex-tui.log").exists());
}

#[test]
fn applying_the_reviewed_plan_then_undo_restores_everything() {
    let h = heavy();
    let sb = &h.sb;
    let files_before = sb.home_files_except_databases();
    let all_before = tree_fingerprint(&sb.home);
    let rows_before = sb.thread_rows();
    let worktrees_before = worktree_list(&h.repo);
    let plan = dry_run(sb)["data"]["plan"].clone();
    let id = plan["id"].as_str().unwrap();

    let (code, doc) = apply(sb, id);
    assert_eq!(code, 0, "{doc:#}");
    let d = &doc["data"];
    assert_eq!(
        d["done"].as_array().unwrap().len(),
        plan["actions"].as_array().unwrap().len()
    );
    assert!(d["verification_problems"].as_array().unwrap().is_empty());
    // Backup exists, holds config and databases, never auth.json.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(d["backup"]["manifest"].as_str().unwrap()).unwrap())
            .unwrap();
    let names: Vec<&str> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for want in [
        "config.toml",
        "state_5.sqlite",
        "logs_2.sqlite",
        "memories/notes.md",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("auth")));
    // The home shrank by what moved out of it.
    let sizes: Vec<&Value> = d["sizes"].as_array().unwrap().iter().collect();
    let size = |c: &str| {
        sizes
            .iter()
            .find(|s| s["category"] == c)
            .map(|s| (s["before"].as_u64().unwrap(), s["after"].as_u64().unwrap()))
            .unwrap()
    };
    assert!(size("logs").1 == 0 && size("logs").0 > 2 << 20, "{sizes:?}");
    assert!(size("releases").1 < size("releases").0);
    assert!(size("home").1 < size("home").0);
    // Each item where it should be.
    let home = &sb.home;
    assert!(
        !home.join("log/codex-tui.log").exists() && home.join("log").is_dir(),
        "the log path is free, the folder stays"
    );
    assert!(!home.join("logs_2.sqlite").exists() && !home.join("logs_2.sqlite-wal").exists());
    assert!(
        !home
            .join("packages/app-server-daemon/releases/0.160.0-x86_64-unknown-linux-musl")
            .exists()
    );
    assert!(
        home.join("packages/app-server-daemon/releases/0.169.0-x86_64-unknown-linux-musl")
            .exists()
    );
    let moved_wt = home.join("archived_worktrees/a1/repo");
    assert!(moved_wt.join("README").exists() && !h.clean_wt.exists());
    assert!(
        worktree_list(&h.repo).contains(moved_wt.to_str().unwrap()),
        "git follows the move"
    );
    assert!(
        h.dirty_wt.join("wip.txt").exists(),
        "the dirty worktree was not touched"
    );
    let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(
        !config.contains("deleted-project")
            && config.contains("# my settings, keep this comment")
            && config.contains("knob = 3 # unknown to us")
    );
    assert!(config.contains("C:\\Users\\me\\repo"));
    assert_eq!(sb.json(&["verify"]).0, 0);

    let undo = sb.ok_json(&["undo"]);
    assert_eq!(
        undo["data"]["reverted"].as_array().unwrap().len(),
        plan["actions"].as_array().unwrap().len()
    );
    let diffs = differences(&files_before, &sb.home_files_except_databases());
    assert!(diffs.is_empty(), "after undo:\n{}", diffs.join("\n"));
    // Databases too: the log database comes back byte for byte with its WAL.
    let all_after = tree_fingerprint(&sb.home);
    for name in ["logs_2.sqlite", "logs_2.sqlite-wal"] {
        assert_eq!(all_before.get(name), all_after.get(name), "{name}");
    }
    assert_eq!(rows_before, sb.thread_rows());
    assert_eq!(
        worktrees_before,
        worktree_list(&h.repo),
        "worktree registrations are back"
    );
    assert_eq!(sb.json(&["verify"]).0, 0);
}

/// The log database this cleanup moves whole is not copied into the backup: the manifest
/// names it as held in the store, under the hash of the blob that run's op stored, and
/// undoing the run brings it back byte for byte, WAL and all, readable.
#[test]
fn a_database_moved_whole_is_backed_up_by_its_own_blob_and_undo_brings_it_back() {
    let h = heavy();
    let sb = &h.sb;
    let all_before = tree_fingerprint(&sb.home);
    let only = ["--only", "logs", "--large-log-mb", "1"];
    let plan = sb.ok_json(&[&["cleanup", "--dry-run"][..], &only[..]].concat());
    let id = plan["data"]["plan"]["id"].as_str().unwrap();
    let (code, doc) = sb.json(&[&["cleanup", "--yes", "--plan", id][..], &only[..]].concat());
    assert_eq!(code, 0, "{doc:#}");
    let d = &doc["data"];

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(d["backup"]["manifest"].as_str().unwrap()).unwrap())
            .unwrap();
    let entry = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "logs_2.sqlite")
        .expect("the log database is named in the manifest");
    assert_eq!(entry["held_in_store"]["run_id"], d["run_id"], "{entry:#}");
    assert_eq!(entry["held_in_store"]["op_kind"], "store_files");
    let archive = std::fs::File::open(d["backup"]["archive"].as_str().unwrap()).unwrap();
    let mut tar = tar::Archive::new(zstd::Decoder::new(archive).unwrap());
    let archived: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    // Every other database is held as pages in the store's packs (backup format 2).
    let state = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "state_5.sqlite")
        .expect("the thread index is backed up");
    assert_eq!(state["object"], state["hash"], "{state:#}");
    assert!(
        !archived.contains(&"state_5.sqlite".to_string()),
        "{archived:?}"
    );
    assert!(
        !archived.iter().any(|n| n.starts_with("logs_2")),
        "{archived:?}"
    );

    // The op that moved it stored exactly the bytes the manifest names.
    let op = d["done"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["action"]["path"]
                .as_str()
                .unwrap()
                .ends_with("logs_2.sqlite")
        })
        .unwrap()["op_id"]
        .as_i64()
        .unwrap();
    let hash = entry["hash"].as_str().unwrap();
    assert!(
        sb.store
            .join("blobs")
            .join(&hash[..2])
            .join(format!("{hash}.zst"))
            .is_file()
    );
    let backups = doc["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "Backups and manifests")
        .unwrap();
    let said = texts(&backups["items"]);
    assert!(
        said.iter()
            .any(|l| l.starts_with("logs_2.sqlite: not copied into backup")
                && l.contains(&format!("op {op}, blob {hash}"))),
        "{said:#?}"
    );
    assert_eq!(sb.json(&["verify"]).0, 0);

    sb.ok_json(&["undo", "--run", &d["run_id"].to_string()]);
    let all_after = tree_fingerprint(&sb.home);
    for name in ["logs_2.sqlite", "logs_2.sqlite-wal"] {
        assert!(all_before.contains_key(name), "{name}");
        assert_eq!(all_before.get(name), all_after.get(name), "{name}");
    }
    let rows: i64 = rusqlite::Connection::open(sb.home.join("logs_2.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM logs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 6000, "the rows still in the WAL came back too");
}

#[test]
fn only_what_was_reviewed_and_still_holds_is_done() {
    let h = heavy();
    let sb = &h.sb;
    let plan = dry_run(sb)["data"]["plan"].clone();
    // After review: the log is written to (its action no longer holds) and a new old
    // session appears (not reviewed).
    let log = sb.home.join("log/codex-tui.log");
    std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::write(&log, "line of log\n".repeat(300_001)).unwrap();
    let newcomer = SessionSpec::aged(99, 40.0, 3000);
    codex_maint::testkit::synthetic_home::write_transcript(&sb.home, &newcomer).unwrap();
    let conn = rusqlite::Connection::open(sb.home.join("state_5.sqlite")).unwrap();
    codex_maint::testkit::synthetic_home::insert_row(&conn, &sb.home, &newcomer).unwrap();
    drop(conn);

    let (code, doc) = apply(sb, plan["id"].as_str().unwrap());
    assert_eq!(code, 0, "{doc:#}");
    let skipped = doc["data"]["skipped_no_longer_hold"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("codex-tui.log")
    );
    let unreviewed = doc["data"]["not_in_reviewed_plan"].as_array().unwrap();
    assert!(
        unreviewed
            .iter()
            .any(|a| a["path"].as_str().unwrap().contains(&newcomer.id))
    );
    assert!(log.exists(), "the changed log stayed");
    assert!(
        newcomer.path_in(&sb.home).exists(),
        "the unreviewed session stayed"
    );
}

#[test]
fn an_unreviewed_plan_is_refused() {
    let h = heavy();
    let before = h.sb.home_files();
    let (code, doc) = h.sb.json(&["cleanup", "--yes", "--large-log-mb", "1"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("--plan"));
    let (code, doc) = apply(&h.sb, "0123456789abcdef");
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("no reviewed plan"));
    // Without a terminal and without --yes, nothing is assumed.
    let (code, _) = h.sb.json(&["cleanup", "--large-log-mb", "1"]);
    assert_eq!(code, 3);
    assert_eq!(before, h.sb.home_files());
}

#[test]
fn a_running_codex_stops_cleanup_before_anything() {
    let h = heavy();
    let plan = dry_run(&h.sb)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = h.sb.home_files();
    let mut codex = fake_codex(h.sb.dir.path(), &h.sb.home);
    let (code, doc) = apply(&h.sb, &plan);
    codex.kill().unwrap();
    codex.wait().unwrap();
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("Codex is running"));
    assert_eq!(before, h.sb.home_files());
    assert!(
        !h.sb.store.join("backups").exists(),
        "not even a backup was taken"
    );
}

#[test]
fn a_database_failing_integrity_stops_cleanup_before_any_change() {
    let h = heavy();
    let plan = dry_run(&h.sb)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(h.sb.home.join("goals_1.sqlite"), vec![0x42u8; 8192]).unwrap();
    let before = h.sb.home_files();
    let (code, doc) = apply(&h.sb, &plan);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("goals_1.sqlite"));
    assert_eq!(before, h.sb.home_files());
    assert_no_backup_folder_left(&h.sb);
}

/// A backup that failed is no backup: no folder of it is left under `backups/`.
fn assert_no_backup_folder_left(sb: &Sandbox) {
    let left: Vec<_> = std::fs::read_dir(sb.store.join("backups"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed backup left {left:?}");
}

#[test]
fn a_failed_backup_check_stops_cleanup_before_any_change() {
    let h = heavy();
    let plan = dry_run(&h.sb)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = h.sb.home_files();
    let out =
        h.sb.cmd()
            .env(codex_maint::failpoint::ENV_VAR, "backup-corrupt")
            .args([
                "--json",
                "cleanup",
                "--yes",
                "--plan",
                &plan,
                "--large-log-mb",
                "1",
            ])
            .output()
            .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("backup"));
    assert_eq!(before, h.sb.home_files());
    assert_no_backup_folder_left(&h.sb);
    let log = h.sb.ok_json(&["log", "--run", "1"]);
    assert!(
        log["data"]["ops"].as_array().unwrap().is_empty(),
        "no op ran"
    );
}

#[test]
fn only_narrows_the_categories() {
    let h = heavy();
    let doc = h.sb.ok_json(&[
        "cleanup",
        "--dry-run",
        "--large-log-mb",
        "1",
        "--only",
        "logs,projects",
    ]);
    let cats: std::collections::BTreeSet<String> = doc["data"]["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["category"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cats.into_iter().collect::<Vec<_>>(),
        vec!["logs".to_string(), "projects".to_string()]
    );
    assert_eq!(
        h.sb.json(&["cleanup", "--dry-run", "--only", "everything"])
            .0,
        2
    );
}

/// Crashes a cleanup inside each kind of op in turn (sessions are one batch, then the log
/// file, the log database, the old release, the worktree, the config edit), recovers, and
/// checks verify passes and undo brings back every file, row and registration.
#[test]
fn a_cleanup_killed_inside_any_op_recovers_and_undoes_exactly() {
    let mut points: Vec<String> = Vec::new();
    for n in 1..=6 {
        points.push(format!("op-prepared@{n}"));
        points.push(format!("op-applied@{n}"));
    }
    // The idle sessions are archived straight into their compressed form (recodes), the
    // other categories' items move whole (file-moved).
    for n in 1..=5 {
        points.push(format!("file-moved@{n}"));
    }
    points.push("recode-encoded".into());
    for n in [1, 5] {
        points.push(format!("recode-renamed@{n}"));
        points.push(format!("recode-source-removed@{n}"));
    }
    for n in 1..=5 {
        points.push(format!("blob-temp-written@{n}"));
    }
    points.push("run-finishing".into());
    for point in points {
        let h = heavy();
        let sb = &h.sb;
        let files_before = sb.home_files_except_databases();
        let rows_before = sb.thread_rows();
        let worktrees_before = worktree_list(&h.repo);
        let hashes = session_hashes(&sb.home);
        let plan = dry_run(sb)["data"]["plan"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let out = sb
            .cmd()
            .env(codex_maint::failpoint::ENV_VAR, &point)
            .args(["cleanup", "--yes", "--plan", &plan, "--large-log-mb", "1"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{point} was never reached: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        let rec = sb.ok_json(&["recover"]);
        for r in rec["data"]["recovered"].as_array().unwrap() {
            assert_ne!(r["result"]["outcome"], "stuck", "{point}: {r:#}");
        }
        assert_sessions_whole_and_consistent(&sb.home, &hashes);
        let (code, doc) = sb.json(&["verify"]);
        assert_eq!(code, 0, "{point}: verify after recovery: {doc:#}");
        let (code, doc) = sb.json(&["undo", "--run", "1"]);
        assert_eq!(code, 0, "{point}: undo: {doc:#}");
        let diffs = differences(&files_before, &sb.home_files_except_databases());
        assert!(
            diffs.is_empty(),
            "{point}: after undo:\n{}",
            diffs.join("\n")
        );
        assert_eq!(rows_before, sb.thread_rows(), "{point}");
        assert_eq!(worktrees_before, worktree_list(&h.repo), "{point}");
    }
}

/// A config.toml broken by hand before cleanup, whether before the review or between the
/// review and the apply: it is never edited, the rest of the plan is done, and its
/// breakage is said as the user's, not as a failure of the run (exit 0, no problem).
#[test]
fn a_config_broken_before_cleanup_is_left_alone_and_not_blamed_on_the_run() {
    let broken = "model = \"gpt-5\"\n[projects.\"/never/closed\"\ntrust_level = \n";
    for broken_before_review in [true, false] {
        let h = heavy();
        let sb = &h.sb;
        let config = sb.home.join("config.toml");
        if broken_before_review {
            std::fs::write(&config, broken).unwrap();
        }
        let plan = dry_run(sb)["data"]["plan"].clone();
        let edits_config = plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["category"] == "projects");
        assert_eq!(edits_config, !broken_before_review, "{plan:#}");
        if !broken_before_review {
            std::fs::write(&config, broken).unwrap();
        }
        let config_before = std::fs::metadata(&config).unwrap();

        let (code, doc) = apply(sb, plan["id"].as_str().unwrap());
        let when = if broken_before_review {
            "broken before the review"
        } else {
            "broken after the review"
        };
        assert_eq!(code, 0, "{when}: {doc:#}");
        assert_eq!(std::fs::read_to_string(&config).unwrap(), broken, "{when}");
        assert_eq!(
            std::fs::metadata(&config).unwrap().modified().unwrap(),
            config_before.modified().unwrap(),
            "{when}: config.toml untouched"
        );
        assert_eq!(
            doc["data"]["verification_problems"],
            serde_json::json!([]),
            "{when}: {doc:#}"
        );
        assert!(
            doc["data"]["done"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["action"]["category"] == "sessions"),
            "{when}: the rest of the plan is done: {doc:#}"
        );
        let sections = serde_json::to_string(&doc["sections"]).unwrap();
        assert!(
            sections.contains("config.toml did not parse before this cleanup"),
            "{when}: said as the user's to fix: {sections}"
        );
        assert!(!sections.contains("config.toml parses: FAILED"), "{when}");
    }
}
