//! A reviewed plan is a contract: `cleanup --yes --plan <id>` refuses (exit 3) a plan file
//! edited after `cleanup --dry-run` saved it, naming the field, with the home and the store
//! byte for byte as they were; even an edit whose seal was made again by hand.

mod support;

use codex_maint::testkit::fingerprint::tree_fingerprint;
use serde_json::Value;
use std::path::PathBuf;
use support::*;

struct Reviewed {
    sb: Sandbox,
    id: String,
    file: PathBuf,
    /// The index, in the plan's actions, of the first session action.
    at: usize,
}

fn reviewed() -> Reviewed {
    let sb = Sandbox::with_sessions(&mixed_specs(8), true);
    std::fs::write(sb.home.join("config.toml"), "model = \"gpt-5\"\n").unwrap();
    std::fs::write(
        sb.home.join("auth.json"),
        "{\"OPENAI_API_KEY\": \"sk-test\"}",
    )
    .unwrap();
    let doc = sb.ok_json(&["cleanup", "--dry-run"]);
    let id = doc["data"]["plan"]["id"].as_str().unwrap().to_string();
    let file = sb.store.join("plans").join(format!("{id}.json"));
    let plan: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let at = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .position(|a| a["category"] == "sessions")
        .expect("the home has old sessions to archive");
    Reviewed { sb, id, file, at }
}

impl Reviewed {
    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut plan: Value = serde_json::from_slice(&std::fs::read(&self.file).unwrap()).unwrap();
        change(&mut plan["actions"][self.at]);
        std::fs::write(&self.file, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
    }

    /// Applies the plan; asserts it is refused naming `field`, with nothing changed.
    fn assert_refused_naming(&self, field: &str) {
        let home = self.sb.home_files();
        let store = tree_fingerprint(&self.sb.store);
        let (code, doc) = self.sb.json(&["cleanup", "--yes", "--plan", &self.id]);
        assert_eq!(code, 3, "{doc:#}");
        let named = format!("actions[{}].{field}", self.at);
        assert!(
            error_message(&doc).contains(&named),
            "the refusal names {named}: {doc:#}"
        );
        assert!(error_message(&doc).contains(&self.id), "{doc:#}");
        assert_eq!(home, self.sb.home_files(), "the home is unchanged");
        assert_eq!(
            store,
            tree_fingerprint(&self.sb.store),
            "the store is unchanged"
        );
    }
}

fn home_path(sb: &Sandbox, rel: &str) -> String {
    sb.home.join(rel).display().to_string()
}

#[test]
fn a_path_edited_to_codex_state_or_credentials_refuses_the_plan() {
    for name in ["state_5.sqlite", "auth.json", "config.toml"] {
        let r = reviewed();
        let target = home_path(&r.sb, name);
        r.edit(|a| a["path"] = target.into());
        r.assert_refused_naming("path");
        assert!(r.sb.home.join(name).is_file(), "{name} stayed in place");
    }
}

#[test]
fn a_path_outside_the_home_refuses_the_plan() {
    let r = reviewed();
    let outside = r.sb.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    let victim =
        outside.join("rollout-2026-01-01T00-00-00-01a20c2e-e45a-7d33-9558-2b68569b884c.jsonl");
    std::fs::write(&victim, "mine\n").unwrap();
    r.edit(|a| a["path"] = victim.display().to_string().into());
    r.assert_refused_naming("path");
    assert_eq!(std::fs::read(&victim).unwrap(), b"mine\n");
}

#[test]
fn a_changed_target_refuses_the_plan() {
    let r = reviewed();
    let elsewhere = home_path(&r.sb, "memories/rollout-moved.jsonl");
    r.edit(|a| a["target"] = elsewhere.into());
    r.assert_refused_naming("target");
}

#[test]
fn a_changed_kind_refuses_the_plan() {
    let r = reviewed();
    r.edit(|a| {
        a["kind"] = if a["kind"] == "archive_session" {
            "compress_session".into()
        } else {
            "archive_session".into()
        }
    });
    r.assert_refused_naming("kind");
}

#[test]
fn an_edit_sealed_again_by_hand_is_still_refused() {
    // The attacker recomputes the plain digest of the edited file and writes it as the
    // seal: the seal is keyed, so it does not match.
    let r = reviewed();
    let target = home_path(&r.sb, "auth.json");
    r.edit(|a| a["path"] = target.into());
    let seal = r.sb.store.join("plans").join(format!("{}.seal", r.id));
    let plain = blake3::hash(&std::fs::read(&r.file).unwrap());
    std::fs::write(&seal, plain.to_hex().as_str()).unwrap();
    r.assert_refused_naming("path");

    // Even with the key read and the keyed digest made again, the action is not one the
    // planner makes: the contract, not the seal, is what keeps auth.json in place.
    let key: [u8; 32] = std::fs::read(r.sb.store.join("plans/seal.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let keyed = blake3::keyed_hash(&key, &std::fs::read(&r.file).unwrap());
    std::fs::write(&seal, keyed.to_hex().as_str()).unwrap();
    r.assert_refused_naming("path");
    assert!(r.sb.home.join("auth.json").is_file());
}

#[test]
fn an_unedited_plan_still_applies_and_a_removed_seal_refuses() {
    let r = reviewed();
    let seal = r.sb.store.join("plans").join(format!("{}.seal", r.id));
    let kept = std::fs::read(&seal).unwrap();
    std::fs::remove_file(&seal).unwrap();
    let home = r.sb.home_files();
    let (code, doc) = r.sb.json(&["cleanup", "--yes", "--plan", &r.id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("seal"), "{doc:#}");
    assert_eq!(home, r.sb.home_files());

    std::fs::write(&seal, kept).unwrap();
    let (code, doc) = r.sb.json(&["cleanup", "--yes", "--plan", &r.id]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(!doc["data"]["done"].as_array().unwrap().is_empty());
}

#[test]
fn a_duplicated_action_refuses_the_plan() {
    let r = reviewed();
    let mut plan: Value = serde_json::from_slice(&std::fs::read(&r.file).unwrap()).unwrap();
    let twin = plan["actions"][r.at].clone();
    plan["actions"].as_array_mut().unwrap().push(twin);
    std::fs::write(&r.file, serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
    let home = r.sb.home_files();
    let (code, doc) = r.sb.json(&["cleanup", "--yes", "--plan", &r.id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        error_message(&doc).contains("two actions with id"),
        "{doc:#}"
    );
    assert_eq!(home, r.sb.home_files());
}
