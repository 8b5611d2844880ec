//! Handoff documents: every section filled from the transcript, the restart prompt naming
//! goal and next step, no secret of any kind surviving, bounded length, written atomically
//! and recorded so cleanup may archive the session.

mod support;

use codex_maint::testkit::synthetic_home::{SessionSpec, set_mtime, write_transcript};
use serde_json::json;
use std::io::Write;
use support::codex_cli;
use support::*;

const SECRETS: &[&str] = &[
    "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX123",
    "sk-abcdefghijklmnopqrstuvwxyz012345",
    "AKIAIOSFODNN7EXAMPLE",
    "hunter2hunter2",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU",
    "zz-auth-json-opaque-value-777",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
];

fn assert_no_secret(doc: &str) {
    for s in SECRETS {
        assert!(!doc.contains(s), "secret {s} reached the handoff:\n{doc}");
    }
}

fn write_auth(home: &std::path::Path) {
    std::fs::write(
        home.join("auth.json"),
        r#"{"tokens": {"access_token": "zz-auth-json-opaque-value-777"}}"#,
    )
    .unwrap();
}

fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc
        .find(&format!("## {title}\n"))
        .unwrap_or_else(|| panic!("no {title} in\n{doc}"));
    let rest = &doc[start + title.len() + 4..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn a_real_codex_session_becomes_a_complete_handoff_without_secrets() {
    codex_cli::on_each_current(
        "a_real_codex_session_becomes_a_complete_handoff_without_secrets",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server: _server,
                sb,
                home,
                ids,
            } = codex_cli::real_home(
                codex,
                &["Build the parser for the config format. RUN: echo building && mkdir -p out"],
            );
            write_auth(&home);
            let id = &ids[0];
            let work = sb.dir.path().join("work");
            for prompt in [
                "Now run the tests. RUN: cargo-missing-tool --check",
                "My key is sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX123, keep it. RUN: echo password=hunter2hunter2 AKIAIOSFODNN7EXAMPLE zz-auth-json-opaque-value-777",
            ] {
                let out = codex_cli::codex(&bin, &home)
                    .current_dir(&work)
                    .args(["exec", "--skip-git-repo-check", "resume", id, prompt])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "resume: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let doc = sb.ok_json(&["handoff", &id[..13]]);
            let written = &doc["data"]["handoffs"][0];
            assert!(written["sections_missing"].as_array().unwrap().is_empty());
            assert!(written["redactions"].as_u64().unwrap() >= 3);
            let text = std::fs::read_to_string(written["path"].as_str().unwrap()).unwrap();
            assert_no_secret(&text);
            assert!(
                section(&text, "Goal").contains("Build the parser for the config format"),
                "{text}"
            );
            assert!(section(&text, "Goal").contains("Now run the tests"));
            assert!(section(&text, "Current State").contains("Last answer: Done."));
            assert!(
                section(&text, "Current State").contains("Turns: 3"),
                "{text}"
            );
            assert!(section(&text, "Decisions").contains("I decided to keep it simple"));
            assert!(
                section(&text, "Files And Artifacts")
                    .contains(&format!("Working directory: {}", work.display()))
            );
            assert!(
                section(&text, "Files And Artifacts").contains("Touched: out"),
                "{text}"
            );
            let commands = section(&text, "Commands And Results");
            let failing = commands
                .find("cargo-missing-tool --check` -> FAILED, exit 127")
                .expect("the failing command with its exit code");
            let passing = commands
                .find("echo building && mkdir -p out` -> exit 0")
                .expect("the passing command");
            assert!(failing < passing, "failing commands first:\n{commands}");
            assert!(
                section(&text, "Risks Or Blockers")
                    .contains("cargo-missing-tool --check` last failed with exit 127")
            );
            let prompt = section(&text, "Restart Prompt");
            assert!(
                prompt.contains("Goal: Build the parser")
                    && prompt.contains("Next step: make `cargo-missing-tool --check` succeed"),
                "{prompt}"
            );
            // Recorded, and the home untouched.
            assert!(
                sb.ok_json(&["log"])["data"]["runs"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "a handoff is not a change of the home"
            );
        },
    );
}

/// A transcript with secrets in every place a record can carry text.
fn secretive_session(sb: &Sandbox) -> SessionSpec {
    let spec = SessionSpec::aged(1, 30.0, 2000);
    codex_maint::testkit::synthetic_home::build(&sb.home, std::slice::from_ref(&spec), true)
        .unwrap();
    write_auth(&sb.home);
    let path = spec.path_in(&sb.home);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let rec = |t: &str, p: serde_json::Value| {
        json!({"timestamp": "2026-01-01T00:00:00Z", "type": t, "payload": p}).to_string()
    };
    let lines = [
        rec(
            "response_item",
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": format!("use {} and {}", SECRETS[0], SECRETS[1])}]}),
        ),
        rec(
            "response_item",
            json!({"type": "function_call", "name": "exec_command", "call_id": "s1",
            "arguments": json!({"cmd": format!("curl -H 'Authorization: Bearer {}' https://x && export DB_PASSWORD={}", SECRETS[4], SECRETS[3])}).to_string()}),
        ),
        rec(
            "response_item",
            json!({"type": "function_call_output", "call_id": "s1",
            "output": format!("Process exited with code 0\n-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n{} {}", SECRETS[6], SECRETS[2], SECRETS[5])}),
        ),
        rec(
            "response_item",
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text",
            "text": format!("I decided to store AWS key {} and token {} in the vault. Next step: rotate them.", SECRETS[2], SECRETS[5])}]}),
        ),
        rec(
            "event_msg",
            json!({"type": "task_complete", "last_agent_message": format!("Rotated {} and password: {}", SECRETS[0], SECRETS[3])}),
        ),
    ];
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    set_mtime(&path, spec.last_active).unwrap();
    spec
}

#[test]
fn every_kind_of_planted_secret_is_redacted_wherever_it_appears() {
    let sb = Sandbox::new();
    let spec = secretive_session(&sb);
    let out = sb
        .cmd()
        .args(["handoff", &spec.id, "--stdout"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc = String::from_utf8(out.stdout).unwrap();
    assert_no_secret(&doc);
    assert!(doc.contains("[REDACTED]"));
    assert!(section(&doc, "Decisions").contains("I decided to store AWS key [REDACTED]"));
    assert!(
        section(&doc, "Current State").contains("What remains: Next step: rotate them"),
        "{doc}"
    );
    // --stdout writes nothing and records nothing.
    assert!(!sb.store.exists());
}

#[test]
fn a_long_session_is_kept_until_its_handoff_then_cleanup_may_archive_it() {
    let long = SessionSpec::aged(3, 30.0, 2_500_000);
    let small = SessionSpec::aged(4, 30.0, 5_000);
    let sb = Sandbox::with_sessions(&[long.clone(), small], true);
    let plan = sb.ok_json(&["cleanup", "--dry-run"]);
    let kept = plan["data"]["plan"]["kept"].as_array().unwrap();
    assert!(
        kept.iter()
            .any(|k| k["path"].as_str().unwrap().contains(&long.id)
                && k["reason"].as_str().unwrap().starts_with("needs_handoff")),
        "{kept:#?}"
    );
    assert_eq!(plan["data"]["plan"]["actions"].as_array().unwrap().len(), 1);

    let listed = sb.ok_json(&["handoff", "--candidates", "--dry-run"]);
    let candidates = listed["data"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0]["thread_id"], long.id);
    assert!(
        candidates[0]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("large")
    );

    let made = sb.ok_json(&["handoff", "--candidates"]);
    let path = made["data"]["handoffs"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(path.starts_with(sb.store.join("handoffs").to_str().unwrap()));
    let text = std::fs::read_to_string(&path).unwrap();
    for required in ["## Goal", "## Current State", "## Restart Prompt"] {
        assert!(text.contains(required));
    }
    // The generator's session ran 25+ commands: the document says it was shortened.
    assert!(text.contains("more commands are not listed"), "{text}");
    assert!(text.len() < 16_000, "bounded: {} bytes", text.len());

    let plan = sb.ok_json(&["cleanup", "--dry-run"]);
    let actions = plan["data"]["plan"]["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["path"].as_str().unwrap().contains(&long.id)),
        "with a handoff it may be archived"
    );
    assert!(sb.ok_json(&["handoff", "--candidates", "--dry-run"])["data"]["candidates"][0]["has_handoff"].as_bool().unwrap());
}

#[test]
fn out_puts_documents_where_asked_and_never_over_an_existing_file() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(5, 20.0, 4000)], true);
    let out = sb.dir.path().join("my-handoffs");
    let id = codex_maint::testkit::synthetic_home::id_for(5);
    let first = sb.ok_json(&["handoff", &id, "--out", out.to_str().unwrap()]);
    let second = sb.ok_json(&["handoff", &id, "--out", out.to_str().unwrap()]);
    let (a, b) = (
        first["data"]["handoffs"][0]["path"].as_str().unwrap(),
        second["data"]["handoffs"][0]["path"].as_str().unwrap(),
    );
    assert_ne!(a, b);
    assert!(std::path::Path::new(a).exists() && std::path::Path::new(b).exists());
    assert_eq!(sb.json(&["handoff", "ffffffff"]).0, 2);
    assert_eq!(sb.json(&["handoff"]).0, 2);
    let _ = write_transcript;
}
