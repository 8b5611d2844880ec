//! Against the real Codex CLI: `restore <session>` after a codex-maint archive and after a
//! cleanup puts the session back where Codex lists and reads it as active, the others
//! untouched, and Codex's doctor finds rollouts and index in agreement. Skipped, with a
//! message, when the CLI is not installed; `.ci/run` installs it so CI always runs this.

mod support;

use support::codex_cli::{self, AppServer};

#[test]
fn codex_lists_a_restored_session_as_active_again() {
    codex_cli::on_each_current("codex_lists_a_restored_session_as_active_again", |codex| {
        let codex_cli::RealHome {
            bin,
            server: _server,
            sb,
            home,
            ids,
        } = codex_cli::real_home(codex, &["one", "two", "three"]);
        sb.ok_json(&["archive", &ids[0]]);
        let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "sessions"]);
        let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
        sb.ok_json(&["cleanup", "--yes", "--plan", &id]);
        {
            let mut app = AppServer::start(&bin, &home);
            let archived = app.list(true);
            assert!(ids.iter().all(|id| archived.contains(id)), "{archived:?}");
        }

        sb.ok_json(&["restore", &ids[0][..13]]);
        sb.ok_json(&["restore", &ids[1]]);
        {
            let mut app = AppServer::start(&bin, &home);
            let active = app.list(false);
            let archived = app.list(true);
            for id in &ids[..2] {
                assert!(active.contains(id), "{id} is active again: {active:?}");
                let read = app.read(id).unwrap_or_else(|e| panic!("{id}: {e}"));
                assert!(
                    read["thread"]["path"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("/sessions/"),
                    "{read:#}"
                );
            }
            assert!(archived.contains(&ids[2]), "the third stays archived");
        }
        assert_eq!(sb.json(&["verify"]).0, 0);
        let parity = codex_cli::rollout_db_parity(&bin, &home);
        assert_eq!(parity["status"], "ok", "{parity:#}");
    });
}
