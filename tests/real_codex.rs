//! Against the real Codex CLI: sessions written by `codex exec`, archived and undone by
//! codex-maint, must be listed, read and unarchived by Codex itself. Skipped, with a
//! message, when the CLI is not installed; `.ci/run` installs it so CI always runs this.

mod support;

use support::codex_cli::{self, AppServer};

fn thread_path(read: &serde_json::Value) -> String {
    read["thread"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn codex_lists_reads_and_unarchives_what_codex_maint_archived() {
    codex_cli::on_each_current(
        "codex_lists_reads_and_unarchives_what_codex_maint_archived",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server: _server,
                sb,
                home,
                ids,
            } = codex_cli::real_home(codex, &["first task", "second task", "third task"]);
            assert_eq!(home, sb.home);
            {
                let mut app = AppServer::start(&bin, &home);
                let active = app.list(false);
                for id in &ids {
                    assert!(
                        active.contains(id),
                        "Codex lists {id} before any change: {active:?}"
                    );
                }
            }
            let sessions_before =
                codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions"));

            let doc = sb.ok_json(&["archive", &ids[0], &ids[1][..13]]);
            assert_eq!(
                doc["data"]["archived"].as_array().unwrap().len(),
                2,
                "{doc:#}"
            );
            {
                let mut app = AppServer::start(&bin, &home);
                let archived = app.list(true);
                let active = app.list(false);
                for id in &ids[..2] {
                    assert!(
                        archived.contains(id),
                        "Codex lists {id} as archived: {archived:?}"
                    );
                    assert!(!active.contains(id), "Codex no longer lists {id} as active");
                    let read = app
                        .read(id)
                        .unwrap_or_else(|e| panic!("Codex reads archived {id}: {e}"));
                    assert!(
                        thread_path(&read).contains("/archived_sessions/"),
                        "{read:#}"
                    );
                }
                assert!(active.contains(&ids[2]));
            }
            codex_cli::assert_parity_ok(&bin, &home, "archive");
            assert_eq!(sb.json(&["verify"]).0, 0);

            let undo = sb.ok_json(&["undo"]);
            assert_eq!(undo["data"]["reverted"].as_array().unwrap().len(), 2);
            {
                let mut app = AppServer::start(&bin, &home);
                let active = app.list(false);
                assert!(app.list(true).is_empty(), "nothing is archived after undo");
                for id in &ids {
                    assert!(
                        active.contains(id),
                        "Codex lists {id} as active after undo: {active:?}"
                    );
                    let read = app
                        .read(id)
                        .unwrap_or_else(|e| panic!("Codex reads {id} after undo: {e}"));
                    assert!(thread_path(&read).contains("/sessions/"), "{read:#}");
                }
            }
            codex_cli::assert_parity_ok(&bin, &home, "undo");
            let sessions_after =
                codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions"));
            assert_eq!(
                sessions_before, sessions_after,
                "transcripts are back byte for byte, with their modes and mtimes"
            );

            // Codex's own unarchive works on a session codex-maint archived.
            sb.ok_json(&["archive", &ids[2]]);
            let out = codex_cli::codex(&bin, &home)
                .args(["unarchive", &ids[2]])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "codex unarchive: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            {
                let mut app = AppServer::start(&bin, &home);
                assert!(app.list(false).contains(&ids[2]));
                assert!(app.read(&ids[2]).is_ok());
            }
            codex_cli::assert_parity_ok(&bin, &home, "codex unarchive");

            // And Codex keeps working in the maintained home.
            let work = sb.dir.path().join("work");
            let fresh = codex_cli::exec(&bin, &home, &work, "a task after maintenance");
            let mut app = AppServer::start(&bin, &home);
            assert!(app.list(false).contains(&fresh));
            drop(app);
            codex_cli::assert_parity_ok(&bin, &home, "a new session in the maintained home");
        },
    );
}

#[test]
fn codex_keeps_working_after_a_cleanup_and_its_undo() {
    codex_cli::on_each_current(
        "codex_keeps_working_after_a_cleanup_and_its_undo",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server: _server,
                sb,
                home,
                ids,
            } = codex_cli::real_home(codex, &["alpha", "beta", "gamma"]);
            std::fs::create_dir_all(home.join("log")).unwrap();
            std::fs::write(
                home.join("log/codex-tui.log"),
                "old log line\n".repeat(200_000),
            )
            .unwrap();
            let rows_before = sb.thread_rows();
            let sessions_before =
                codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions"));

            let plan = sb.ok_json(&["cleanup", "--dry-run", "--large-log-mb", "1"]);
            let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
            let doc = sb.ok_json(&["cleanup", "--yes", "--plan", &id, "--large-log-mb", "1"]);
            let done = doc["data"]["done"].as_array().unwrap();
            assert_eq!(
                done.iter()
                    .filter(|d| d["action"]["category"] == "sessions")
                    .count(),
                3,
                "{doc:#}"
            );
            assert!(!home.join("log/codex-tui.log").exists());
            {
                let mut app = AppServer::start(&bin, &home);
                let archived = app.list(true);
                for id in &ids {
                    assert!(
                        archived.contains(id),
                        "{id} listed as archived after cleanup"
                    );
                    app.read(id)
                        .unwrap_or_else(|e| panic!("{id} readable after cleanup: {e}"));
                }
            }
            let work = sb.dir.path().join("work");
            let fresh = codex_cli::exec(&bin, &home, &work, "a task after cleanup");
            {
                let mut app = AppServer::start(&bin, &home);
                assert!(
                    app.list(false).contains(&fresh),
                    "Codex works in the cleaned home"
                );
            }
            codex_cli::assert_parity_ok(&bin, &home, "cleanup");
            assert_eq!(sb.json(&["verify"]).0, 0);

            sb.ok_json(&["undo", "--run", &doc["data"]["run_id"].to_string()]);
            let mut app = AppServer::start(&bin, &home);
            let active = app.list(false);
            for id in &ids {
                assert!(active.contains(id), "{id} active again after undo");
            }
            drop(app);
            assert!(home.join("log/codex-tui.log").exists());
            let rows_after: Vec<_> = sb
                .thread_rows()
                .into_iter()
                .filter(|r| ids.contains(&r.0))
                .collect();
            let rows_before: Vec<_> = rows_before
                .into_iter()
                .filter(|r| ids.contains(&r.0))
                .collect();
            assert_eq!(rows_before, rows_after, "the three rows are back exactly");
            codex_cli::assert_parity_ok(&bin, &home, "undo");
            let sessions_after =
                codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions"));
            for (k, v) in &sessions_before {
                assert_eq!(Some(v), sessions_after.get(k), "{k} is back byte for byte");
            }
        },
    );
}
