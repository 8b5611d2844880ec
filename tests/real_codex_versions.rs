//! Against real Codex CLIs of several versions in one home, as real homes are written
//! (CODEX-LAYOUT.md, "Homes written by older Codex versions"): an index that appears
//! between two codex-maint runs, a home broken by SPEC.md's manual `mv`, and a home written
//! by the versions in turn (0.100 without any database, 0.136, 0.140, 0.160, then each
//! current one up to the one under test). Each test runs on every current Codex; after
//! every change that Codex lists every session where expected and its doctor finds the
//! transcripts and the index in agreement. Skipped, with a message, when a CLI is missing;
//! `.ci/run` installs them all.

mod support;

use std::path::{Path, PathBuf};
use support::codex_cli::{self, AppServer, assert_listed, assert_parity_ok};

/// Runs `codex-maint undo` until no run has changes left.
fn undo_everything(sb: &support::Sandbox) {
    for _ in 0..10 {
        let doc = sb.ok_json(&["undo"]);
        if doc["data"]["reverted"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            return;
        }
    }
    panic!("undo kept finding changes to take back");
}

/// SPEC.md's manual archive: the file moves into `archived_sessions/`, the row stays.
fn mv_to_archive(home: &Path, id: &str) -> PathBuf {
    let from = codex_cli::transcript_of(home, id);
    let to = home
        .join("archived_sessions")
        .join(from.file_name().unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::rename(&from, &to).unwrap();
    to
}

#[test]
fn undo_after_a_newer_codex_built_the_index_leaves_codex_listing_every_session() {
    let test = "undo_after_a_newer_codex_built_the_index_leaves_codex_listing_every_session";
    let Some(old) = codex_cli::require_version(test, "0.100.0") else {
        return;
    };
    codex_cli::on_each_current(test, |codex| {
        let bin = &codex.bin;
        let version = codex.version;
        let server = support::model_server::ModelServer::start();
        let sb = support::Sandbox::new();
        let (home, ids) = codex_cli::build_home(
            &old,
            &server.config_toml(),
            sb.dir.path(),
            &["first task", "second task", "third task", "fourth task"],
        );
        assert!(
            !home.join("state_5.sqlite").exists(),
            "Codex 0.100 writes no thread index"
        );

        let doc = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
        assert_eq!(
            doc["data"]["archived"].as_array().unwrap().len(),
            4,
            "{doc:#}"
        );

        // The upgrade: the current Codex starts, builds its index, and indexes them as archived.
        assert_listed(bin, &home, &[], &ids, &format!("{version} first started"));
        assert!(home.join("state_5.sqlite").exists());
        assert_parity_ok(bin, &home, &format!("{version} built its index"));
        let (code, verify) = sb.json(&["verify"]);
        assert_eq!(code, 0, "{verify:#}");

        let undo = sb.ok_json(&["undo"]);
        assert_eq!(undo["data"]["reverted"].as_array().unwrap().len(), 4);
        assert_listed(bin, &home, &ids, &[], "undo");
        assert_parity_ok(bin, &home, "undo");
        let (code, verify) = sb.json(&["verify"]);
        assert_eq!(code, 0, "{verify:#}");
        {
            let mut app = AppServer::start(bin, &home);
            for id in &ids {
                app.read(id)
                    .unwrap_or_else(|e| panic!("Codex reads {id} after undo: {e}"));
            }
        }

        // Redo and undo again, now with the rows recorded: still consistent each time.
        let redo_run = undo["data"]["run_id"].as_i64().unwrap().to_string();
        sb.ok_json(&["undo", "--run", &redo_run]);
        assert_listed(bin, &home, &[], &ids, "redo");
        assert_parity_ok(bin, &home, "redo");
        drop(server);
    });
}

#[test]
fn repair_heals_a_home_broken_by_a_manual_mv() {
    codex_cli::on_each_current("repair_heals_a_home_broken_by_a_manual_mv", |codex| {
        let codex_cli::RealHome {
            bin,
            server: _server,
            sb,
            home,
            ids,
        } = codex_cli::real_home(codex, &["first task", "second task", "third task"]);
        let moved = mv_to_archive(&home, &ids[0]);
        let parity = codex_cli::rollout_db_parity(&bin, &home);
        assert_ne!(
            parity["status"], "ok",
            "a manual mv breaks parity: {parity:#}"
        );

        let inspect = sb.ok_json(&["inspect"]);
        let fixes = inspect["data"]["thread_index"]["repair"]["fixes"]
            .as_array()
            .unwrap();
        assert_eq!(fixes.len(), 1, "{inspect:#}");

        let done = sb.ok_json(&["repair", "--yes"]);
        assert_eq!(done["data"]["repaired"].as_array().unwrap().len(), 1);
        assert_parity_ok(&bin, &home, "repair");
        assert_listed(&bin, &home, &ids[1..], &ids[..1], "repair");
        {
            let mut app = AppServer::start(&bin, &home);
            let read = app.read(&ids[0]).expect("Codex reads the repaired thread");
            assert_eq!(
                read["thread"]["path"].as_str().map(PathBuf::from),
                Some(moved.clone()),
                "{read:#}"
            );
        }
        assert_eq!(sb.json(&["verify"]).0, 0);

        // Codex's own unarchive works on the repaired thread.
        let out = codex_cli::codex(&bin, &home)
            .args(["unarchive", &ids[0]])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "codex unarchive: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_listed(&bin, &home, &ids, &[], "codex unarchive");
        assert_parity_ok(&bin, &home, "codex unarchive");
    });
}

#[test]
fn a_home_written_by_many_versions_stays_consistent_through_every_command() {
    let test = "a_home_written_by_many_versions_stays_consistent_through_every_command";
    let mut older = Vec::new();
    for version in ["0.100.0", "0.136.0", "0.140.0", "0.160.0"] {
        let Some(bin) = codex_cli::require_version(test, version) else {
            return;
        };
        older.push(bin);
    }
    codex_cli::on_each_current(test, |codex| {
        let current = &codex.bin;
        // Then every current release up to this one: on 0.171 the home is one 0.169 wrote
        // too, which 0.171 migrates in place (state_5 migrations 63-64).
        let mut writers = older.clone();
        for earlier in codex_maint::testkit::CURRENT_CODEX_VERSIONS
            .into_iter()
            .take_while(|v| *v != codex.version)
        {
            let Some(bin) = codex_cli::require_version(test, earlier) else {
                return;
            };
            writers.push(bin);
        }
        writers.push(current.clone());

        let server = support::model_server::ModelServer::start();
        let sb = support::Sandbox::new();
        let home = sb.home.clone();
        let work = sb.dir.path().join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(home.join("config.toml"), server.config_toml()).unwrap();
        // Oldest first, each writing two sessions, as a user upgrading over time would. (0.40's
        // npm package ships no native binary, so 0.100 is the oldest that can be run here.)
        let mut ids = Vec::new();
        for (n, bin) in writers.iter().enumerate() {
            for k in 0..2 {
                ids.push(codex_cli::exec(
                    bin,
                    &home,
                    &work,
                    &format!("task {k} by writer {n}"),
                ));
            }
        }
        codex_cli::age_transcripts(&home, 40);
        assert_parity_ok(current, &home, "the versions wrote the home");
        assert_listed(current, &home, &ids, &[], "the versions wrote the home");

        let inspect = sb.ok_json(&["inspect"]);
        assert_eq!(inspect["data"]["thread_index"]["state"], "understood");
        assert!(
            inspect["data"]["thread_index"]["repair"].is_null(),
            "nothing to repair in a consistent home: {inspect:#}"
        );

        let archived = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
        assert_eq!(
            archived["data"]["archived"].as_array().unwrap().len(),
            ids.len(),
            "{archived:#}"
        );
        assert_parity_ok(current, &home, "archive");
        assert_listed(current, &home, &[], &ids, "archive");

        let plan = sb.ok_json(&["cleanup", "--dry-run"]);
        let plan_id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
        sb.ok_json(&["cleanup", "--yes", "--plan", &plan_id]);
        assert_parity_ok(current, &home, "cleanup");
        assert_listed(current, &home, &[], &ids, "cleanup");
        assert_eq!(sb.json(&["verify"]).0, 0);

        undo_everything(&sb);
        assert_parity_ok(current, &home, "undo");
        assert_listed(current, &home, &ids, &[], "undo");
        assert_eq!(sb.json(&["verify"]).0, 0);

        // SPEC.md's manual procedure on one of each writer's sessions, then repair.
        let by_hand: Vec<String> = ids.iter().step_by(2).cloned().collect();
        for id in &by_hand {
            mv_to_archive(&home, id);
        }
        let repaired = sb.ok_json(&["repair", "--yes"]);
        assert_eq!(
            repaired["data"]["repaired"].as_array().unwrap().len(),
            by_hand.len(),
            "{repaired:#}"
        );
        let still_active: Vec<String> = ids
            .iter()
            .filter(|id| !by_hand.contains(id))
            .cloned()
            .collect();
        assert_parity_ok(current, &home, "repair");
        assert_listed(current, &home, &still_active, &by_hand, "repair");
        assert_eq!(sb.json(&["verify"]).0, 0);
        drop(server);
    });
}

#[test]
fn several_repairs_are_taken_back_together_and_a_new_repair_leaves_codex_in_parity() {
    codex_cli::on_each_current("several_repairs_are_taken_back_together", |codex| {
        let codex_cli::RealHome {
            bin,
            server: _server,
            sb,
            home,
            ids,
        } = codex_cli::real_home(codex, &["first task", "second task", "third task"]);
        for id in &ids[..2] {
            mv_to_archive(&home, id);
        }
        let broken = sb.thread_rows();
        let done = sb.ok_json(&["repair", "--yes"]);
        assert_eq!(done["data"]["repaired"].as_array().unwrap().len(), 2);
        assert_parity_ok(&bin, &home, "repair of two rows");

        // Codex leaves its index with a pending WAL; the dry run must not checkpoint it.
        let before = codex_maint::testkit::fingerprint::tree_fingerprint(&home);
        sb.ok_json(&["undo", "--dry-run"]);
        let diffs = codex_maint::testkit::fingerprint::differences(
            &before,
            &codex_maint::testkit::fingerprint::tree_fingerprint(&home),
        );
        assert!(diffs.is_empty(), "a dry run changed:\n{}", diffs.join("\n"));

        let undone = sb.ok_json(&["undo"]);
        assert_eq!(undone["data"]["reverted"].as_array().unwrap().len(), 2);
        assert_eq!(
            sb.thread_rows(),
            broken,
            "both rows back as the mv left them"
        );

        sb.ok_json(&["repair", "--yes"]);
        assert_parity_ok(&bin, &home, "repair after the undo");
        assert_listed(&bin, &home, &ids[2..], &ids[..2], "repair after the undo");
        assert_eq!(sb.json(&["verify"]).0, 0);
    });
}
