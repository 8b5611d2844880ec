//! Against the real Codex CLI: sessions written by `codex exec`, archived and undone by
//! codex-maint, must be listed, read and unarchived by Codex itself. Skipped, with a
//! message, when the CLI is not installed; `.ci/run` installs it so CI always runs this.

mod support;

use support::codex_cli::{self, AppServer};
use support::model_server::ModelServer;
use support::*;

fn thread_path(read: &serde_json::Value) -> String {
    read["thread"]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn codex_lists_reads_and_unarchives_what_codex_maint_archived() {
    let Some(bin) =
        codex_cli::require("codex_lists_reads_and_unarchives_what_codex_maint_archived")
    else {
        return;
    };
    let server = ModelServer::start();
    let sb = Sandbox::new();
    let (home, ids) = codex_cli::build_home(
        &bin,
        &server.config_toml(),
        sb.dir.path(),
        &["first task", "second task", "third task"],
    );
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

    // And Codex keeps working in the maintained home.
    let work = sb.dir.path().join("work");
    let fresh = codex_cli::exec(&bin, &home, &work, "a task after maintenance");
    let mut app = AppServer::start(&bin, &home);
    assert!(app.list(false).contains(&fresh));
}
