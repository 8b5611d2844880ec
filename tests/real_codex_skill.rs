//! Against the real Codex CLI: the skill `codex-maint skill --install` writes is one Codex
//! lists as the user's, and after `undo` Codex no longer lists it; Codex's own doctor finds
//! its rollouts and thread index in agreement throughout. Skipped, with a message, when the
//! CLI is not installed; `.ci/run` installs it so CI always runs this.

mod support;

use serde_json::json;
use std::path::Path;
use support::codex_cli::{self, AppServer};

/// Each skill Codex's app-server lists for this home: (name, scope, path).
fn listed_skills(bin: &Path, home: &Path) -> Vec<(String, String, String)> {
    let mut app = AppServer::start(bin, home);
    let result = app.request("skills/list", json!({})).expect("skills/list");
    result["data"]
        .as_array()
        .expect("skills/list data")
        .iter()
        .flat_map(|entry| entry["skills"].as_array().cloned().unwrap_or_default())
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("name"), text("scope"), text("path"))
        })
        .collect()
}

#[test]
fn codex_lists_the_installed_skill_as_the_users_and_not_after_undo() {
    codex_cli::on_each_current(
        "codex_lists_the_installed_skill_as_the_users_and_not_after_undo",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server: _server,
                sb,
                home,
                ids: _,
            } = codex_cli::real_home(codex, &["a task before the skill"]);
            let ours = |skills: &[(String, String, String)]| {
                skills
                    .iter()
                    .filter(|(name, _, _)| name == "codex-maint")
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert!(ours(&listed_skills(&bin, &home)).is_empty());

            let doc = sb.ok_json(&["skill", "--install"]);
            let run = doc["data"]["run_id"].as_i64().unwrap();
            let listed = ours(&listed_skills(&bin, &home));
            assert_eq!(listed.len(), 1, "{listed:?}");
            let (_, scope, path) = &listed[0];
            assert_eq!(scope, "user");
            assert!(
                codex_maint::home::same_file(
                    Path::new(path),
                    &home.join("skills/codex-maint/SKILL.md")
                ),
                "{path}"
            );
            assert_eq!(codex_cli::rollout_db_parity(&bin, &home)["status"], "ok");

            sb.ok_json(&["undo", "--run", &run.to_string(), "--yes"]);
            assert!(ours(&listed_skills(&bin, &home)).is_empty());
            assert_eq!(sb.json(&["verify"]).0, 0);
            let parity = codex_cli::rollout_db_parity(&bin, &home);
            assert_eq!(parity["status"], "ok", "{parity:#}");
        },
    );
}
