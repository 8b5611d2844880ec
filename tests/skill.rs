//! The Codex skill that drives codex-maint: printed as the repository keeps it, naming only
//! commands, flags and JSON fields the binary has; installed as a journaled run that undo
//! takes back, never over a skill of the user's, never while Codex runs, and a dry run
//! changes nothing.

mod support;

use codex_maint::testkit::fingerprint::tree_fingerprint;
use codex_maint::testkit::synthetic_home::SessionSpec;
use serde_json::Value;
use std::collections::BTreeSet;
use support::*;

const SKILL_FILE: &str = "skills/codex-maint/SKILL.md";

fn repository_skill() -> String {
    std::fs::read_to_string(SKILL_FILE).unwrap()
}

/// Old sessions to archive, and an old daemon release beside the current one.
fn sandbox() -> Sandbox {
    let specs: Vec<SessionSpec> = (0..4).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let releases = sb.home.join("packages/app-server-daemon/releases");
    for version in ["0.160.0", "0.169.0"] {
        std::fs::create_dir_all(releases.join(version).join("bin")).unwrap();
        std::fs::write(releases.join(version).join("bin/codex"), version).unwrap();
    }
    std::os::unix::fs::symlink(
        "releases/0.169.0",
        sb.home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
    sb
}

#[test]
fn print_gives_the_repository_skill_with_its_front_matter() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["skill", "--print"]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, repository_skill());

    let front = printed
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map(|(front, _)| front)
        .expect("front matter between --- lines");
    assert!(front.lines().any(|l| l == "name: codex-maint"), "{front}");
    let description = front
        .lines()
        .find_map(|l| l.strip_prefix("description: "))
        .expect("a description");
    assert!(description.contains("Use") || description.contains("when"));
    assert!(
        description.contains("Do not use"),
        "says when not to use it"
    );

    let doc = sb.ok_json(&["skill", "--print"]);
    assert_eq!(doc["data"]["name"], "codex-maint");
    assert_eq!(doc["data"]["text"], repository_skill());
}

#[test]
fn the_skill_keeps_the_stop_rules_and_never_skips_a_confirmation() {
    let skill = repository_skill();
    for step in [
        "inspect --json",
        "cleanup --dry-run --json",
        "cleanup --yes --plan",
        "verify",
        "undo",
        "## Stop rules",
        "Codex is running",
        "dirty",
        "integrity",
        "delete",
        "cannot be identified",
    ] {
        assert!(skill.contains(step), "the skill covers {step}");
    }
    assert!(skill.contains("Wait for a yes"));
    let lower = skill.to_lowercase();
    for shortcut in [
        "without asking",
        "skip the confirmation",
        "skip confirmation",
    ] {
        assert!(!lower.contains(shortcut), "the skill never says {shortcut}");
    }
}

/// Each `codex-maint SUB ...` line of the skill: the subcommand exists and each `--flag` on
/// the line is one its help lists.
#[test]
fn every_command_and_flag_the_skill_names_exists() {
    let sb = Sandbox::new();
    let skill = repository_skill();
    let mut checked = 0;
    for line in skill.lines() {
        let Some(rest) = line.trim().strip_prefix("codex-maint ") else {
            continue;
        };
        let rest = rest.split('#').next().unwrap();
        let words: Vec<&str> = rest.split_whitespace().collect();
        let sub = words[0];
        let help = sb.cmd().args([sub, "--help"]).output().unwrap();
        assert!(help.status.success(), "`codex-maint {sub}` exists");
        let help = String::from_utf8(help.stdout).unwrap();
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "`codex-maint {sub}` has {flag}:\n{help}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 8, "the skill shows its commands ({checked})");
}

fn has_path(doc: &Value, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    let key = first.trim_end_matches("[]");
    let Some(next) = doc.get(key) else {
        return false;
    };
    if first.ends_with("[]") {
        let items = next.as_array().expect("an array");
        return rest.is_empty() || items.iter().any(|i| has_path(i, rest));
    }
    has_path(next, rest)
}

/// Every `data.…` field the skill tells the agent to read is in the JSON of the command
/// that step runs, on a home with something to do.
#[test]
fn every_json_field_the_skill_names_is_in_the_output() {
    let sb = sandbox();
    let mut docs = vec![sb.ok_json(&["inspect"])];
    let plan = sb.ok_json(&["cleanup", "--dry-run"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    docs.push(plan);
    docs.push(sb.ok_json(&["cleanup", "--yes", "--plan", &id]));
    docs.push(sb.ok_json(&["verify"]));
    docs.push(sb.ok_json(&["log"]));

    let skill = repository_skill();
    let fields: BTreeSet<String> = skill
        .split(|c: char| !(c.is_ascii_alphanumeric() || "._[]".contains(c)))
        .filter(|w| w.starts_with("data."))
        .map(|w| w.trim_end_matches('.').to_string())
        .collect();
    assert!(fields.len() >= 20, "{fields:?}");
    for field in &fields {
        let path: Vec<String> = field.split('.').map(String::from).collect();
        assert!(
            docs.iter().any(|d| has_path(d, &path)),
            "no command the skill runs outputs {field}"
        );
    }
}

#[test]
fn install_is_journaled_and_undo_removes_it() {
    let sb = sandbox();
    let installed = sb.home.join(SKILL_FILE);
    let doc = sb.ok_json(&["skill", "--install"]);
    let run = doc["data"]["run_id"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        repository_skill()
    );

    let log = sb.ok_json(&["log", "--run", &run.to_string()]);
    assert_eq!(log["data"]["run"]["command"], "skill");
    assert_eq!(log["data"]["ops"][0]["kind"], "write_file");
    assert_eq!(
        log["data"]["ops"][0]["dst"],
        installed.display().to_string()
    );
    assert_eq!(sb.json(&["verify"]).0, 0);

    let again = sb.json(&["skill", "--install"]);
    assert_eq!(again.0, 3, "a second install refuses: {:#}", again.1);

    sb.ok_json(&["undo"]);
    assert!(!installed.exists(), "undo took the skill back");
    assert_eq!(sb.json(&["verify"]).0, 0);

    sb.ok_json(&["skill", "--install"]);
    assert!(installed.exists(), "installs again once taken back");
}

#[test]
fn a_skill_of_the_users_is_never_replaced() {
    let sb = sandbox();
    let folder = sb.home.join("skills/codex-maint");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.md"), "mine\n").unwrap();
    let before = tree_fingerprint(&sb.home);

    let (code, doc) = sb.json(&["skill", "--install"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("already exists"), "{doc:#}");
    assert_eq!(tree_fingerprint(&sb.home), before);
    assert!(!folder.join("SKILL.md").exists());

    std::fs::remove_file(folder.join("notes.md")).unwrap();
    std::fs::write(
        folder.join("SKILL.md"),
        "---\nname: codex-maint\n---\nmine\n",
    )
    .unwrap();
    let (code, _) = sb.json(&["skill", "--install"]);
    assert_eq!(code, 3);
    assert_eq!(
        std::fs::read_to_string(folder.join("SKILL.md")).unwrap(),
        "---\nname: codex-maint\n---\nmine\n"
    );
}

#[test]
fn a_dry_run_changes_nothing_in_the_home_or_the_store() {
    let sb = sandbox();
    let before = tree_fingerprint(&sb.home);
    let doc = sb.ok_json(&["skill", "--install", "--dry-run"]);
    assert_eq!(doc["data"]["dry_run"], true);
    assert_eq!(doc["data"]["installed"], false);
    let proposed = texts(&doc["sections"][1]["items"]);
    assert!(
        proposed.iter().any(|p| p.starts_with("will write")),
        "{proposed:?}"
    );
    assert_eq!(tree_fingerprint(&sb.home), before);
    assert!(!sb.store.exists(), "no store was created");
}

#[test]
fn install_refuses_while_codex_runs() {
    let sb = sandbox();
    let mut codex = fake_codex(sb.dir.path(), &sb.home);
    let (code, doc) = sb.json(&["skill", "--install"]);
    let _ = codex.kill();
    let _ = codex.wait();
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("Codex is running"), "{doc:#}");
    assert!(!sb.home.join(SKILL_FILE).exists());
}
