//! automation: the contract is printed and nothing is written unless asked; the generated
//! scheduler entries parse; an install is journaled and undone; a scheduled run inspects
//! always and cleans up only what an approved, unchanged policy opts into.

mod support;

use codex_maint::testkit::fingerprint::tree_fingerprint;
use serde_json::Value;
use std::path::Path;
use support::*;

fn schedule(sb: &Sandbox, kind: &str) -> Value {
    sb.ok_json(&["automation", "--print-schedule", kind])["data"]["schedule"].clone()
}

#[test]
fn without_install_nothing_is_written_anywhere() {
    let sb = Sandbox::with_sessions(&mixed_specs(3), true);
    let before = tree_fingerprint(sb.dir.path());
    for args in [
        vec!["automation"],
        vec!["automation", "--print-schedule", "systemd"],
        vec!["automation", "--print-schedule", "launchd"],
        vec!["automation", "--print-schedule", "cron"],
    ] {
        let doc = sb.ok_json(&args);
        assert_eq!(doc["data"]["scheduled"], false);
        let verification = doc["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["title"] == "Verification")
            .unwrap();
        assert!(
            verification["items"][0]
                .as_str()
                .unwrap()
                .starts_with("Scheduled: NO"),
            "{verification:#}"
        );
    }
    let text = String::from_utf8(
        sb.cmd()
            .args(["automation", "--print-schedule", "cron"])
            .output()
            .unwrap()
            .stderr,
    )
    .unwrap();
    assert!(text.contains("Nothing was scheduled"));
    assert_eq!(
        before,
        tree_fingerprint(sb.dir.path()),
        "printing writes nothing, not even the store"
    );
    // --install without --yes, and without a terminal, is refused.
    sb.ok_json(&["automation", "--init"]);
    let (code, _) = sb.json(&["automation", "--print-schedule", "systemd", "--install"]);
    assert_eq!(code, 3);
    assert!(!sb.dir.path().join(".config/systemd").exists());
}

#[test]
fn the_systemd_units_pass_systemd_analyze() {
    let sb = Sandbox::with_sessions(&mixed_specs(1), true);
    let s = schedule(&sb, "systemd");
    let dir = sb.dir.path().join("units");
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for f in s["files"].as_array().unwrap() {
        let p = dir.join(Path::new(f["path"].as_str().unwrap()).file_name().unwrap());
        std::fs::write(&p, f["contents"].as_str().unwrap()).unwrap();
        paths.push(p);
    }
    let timer = std::fs::read_to_string(&paths[1]).unwrap();
    assert!(timer.contains("OnCalendar=Mon *-*-* 09:30:00"), "{timer}");
    match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED systemd-analyze verify: systemd-analyze is not installed"
            );
        }
    }
}

#[test]
fn the_launchd_plist_is_well_formed_xml_with_the_schedule() {
    let sb = Sandbox::with_sessions(&mixed_specs(1), true);
    let s = schedule(&sb, "launchd");
    let plist = s["files"][0]["contents"].as_str().unwrap();
    let mut reader = quick_xml::Reader::from_str(plist);
    let mut texts = Vec::new();
    let mut depth = 0i32;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(_) => depth += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Text(t) => texts.push(t.into_inner().into_owned()),
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element closed");
    for want in [
        "dev.codex-maint",
        "ProgramArguments",
        "--unattended",
        "StartCalendarInterval",
        "Weekday",
        "Hour",
        "9",
        "Minute",
        "30",
    ] {
        assert!(
            texts.iter().any(|t| t == want),
            "{want} missing from {texts:?}"
        );
    }
}

#[test]
fn the_crontab_line_has_valid_fields_and_the_unattended_command() {
    let sb = Sandbox::with_sessions(&mixed_specs(1), true);
    let s = schedule(&sb, "cron");
    let contents = s["files"][0]["contents"].as_str().unwrap();
    let line = contents.lines().find(|l| !l.starts_with('#')).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (lo, hi)) in fields.iter().take(5).zip(ranges) {
        if *field != "*" {
            let n: u32 = field
                .parse()
                .unwrap_or_else(|_| panic!("field {field} in {line}"));
            assert!((lo..=hi).contains(&n), "{field} out of range in {line}");
        }
    }
    assert_eq!(&fields[..5], &["30", "9", "*", "*", "1"]);
    assert!(fields[5].ends_with("codex-maint"), "{line}");
    assert!(line.ends_with("--unattended"));
}

#[test]
fn install_is_journaled_never_enabled_and_undo_removes_it() {
    let sb = Sandbox::with_sessions(&mixed_specs(1), true);
    sb.ok_json(&["automation", "--init"]);
    let doc = sb.ok_json(&[
        "automation",
        "--print-schedule",
        "systemd",
        "--install",
        "--yes",
    ]);
    let unit_dir = sb.dir.path().join(".config/systemd/user");
    for name in ["codex-maint.service", "codex-maint.timer"] {
        assert!(unit_dir.join(name).is_file(), "{name} written");
    }
    assert_eq!(doc["data"]["scheduled"], false);
    let text: Vec<&str> = doc["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["items"].as_array().unwrap())
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("Scheduled: NOT YET") && t.contains("systemctl --user")),
        "{text:#?}"
    );
    // A second install never replaces what is there.
    assert_eq!(
        sb.json(&[
            "automation",
            "--print-schedule",
            "systemd",
            "--install",
            "--yes"
        ])
        .0,
        3
    );
    assert_eq!(sb.json(&["verify"]).0, 0);
    sb.ok_json(&["undo", "--run", &doc["data"]["run_id"].to_string()]);
    assert!(
        !unit_dir.join("codex-maint.service").exists()
            && !unit_dir.join("codex-maint.timer").exists()
    );
    assert_eq!(sb.json(&["verify"]).0, 0);
}

fn set_unattended(sb: &Sandbox, categories: &str) {
    let path = sb.store.join("policy.toml");
    let text: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("unattended =") {
                format!("unattended = [{categories}]")
            } else if l.starts_with("large_log_mb =") {
                "large_log_mb = 1".to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains(&format!("unattended = [{categories}]"))
    );
}

fn scheduled_run(sb: &Sandbox) -> (i32, String) {
    let out = sb
        .cmd()
        .args([
            "cleanup",
            "--policy",
            sb.store.join("policy.toml").to_str().unwrap(),
            "--unattended",
        ])
        .output()
        .unwrap();
    let latest = std::fs::read_to_string(sb.store.join("reports/latest.txt")).unwrap_or_default();
    (out.status.code().unwrap_or(-1), latest)
}

#[test]
fn a_scheduled_run_inspects_always_and_cleans_only_what_an_approved_policy_allows() {
    let sb = Sandbox::with_sessions(&mixed_specs(8), true);
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    std::fs::write(sb.home.join("log/codex-tui.log"), "x".repeat(2 << 20)).unwrap();
    sb.ok_json(&["automation", "--init"]);
    let before = sb.home_files();

    // Default policy: inspect only, report filed where the user will look.
    let (code, report) = scheduled_run(&sb);
    assert_eq!(code, 0);
    assert!(
        report.contains("Mode:\n- inspect") && report.contains("inspect only"),
        "{report}"
    );
    assert_eq!(before, sb.home_files());

    // Opted in to logs, but not approved: still inspect only.
    set_unattended(&sb, "\"logs\"");
    let (code, report) = scheduled_run(&sb);
    assert_eq!(code, 0);
    assert!(report.contains("not approved"), "{report}");
    assert_eq!(before, sb.home_files());

    // Approved, but Codex is running: refused, reported, nothing changed.
    sb.ok_json(&["automation", "--approve"]);
    let mut codex = fake_codex(sb.dir.path(), &sb.home);
    let (code, report) = scheduled_run(&sb);
    codex.kill().unwrap();
    codex.wait().unwrap();
    assert_eq!(code, 3);
    assert!(report.contains("Codex is running"), "{report}");
    assert_eq!(before, sb.home_files());

    // Approved and Codex closed: the log is rotated, backed up, journaled; sessions untouched.
    let (code, report) = scheduled_run(&sb);
    assert_eq!(code, 0, "{report}");
    assert!(!sb.home.join("log/codex-tui.log").exists());
    assert!(report.contains("backup 1:"), "{report}");
    let runs = sb.ok_json(&["log"])["data"]["runs"].clone();
    assert_eq!(
        runs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["command"] == "cleanup")
            .count(),
        1
    );
    let session_files: Vec<&String> = before
        .keys()
        .filter(|k| k.starts_with("sessions/"))
        .collect();
    let now = sb.home_files();
    assert!(
        session_files.iter().all(|k| now.contains_key(*k)),
        "sessions are not in the policy's categories"
    );

    // Edited after approval: back to inspect only.
    sb.ok_json(&["undo"]);
    set_unattended(&sb, "\"logs\", \"sessions\"");
    let (_, report) = scheduled_run(&sb);
    assert!(report.contains("not approved"), "{report}");
    assert!(sb.home.join("log/codex-tui.log").exists());
}

#[test]
fn printed_entries_go_to_stdout_alone_and_the_notes_to_stderr() {
    let sb = Sandbox::with_sessions(&mixed_specs(1), true);
    for kind in ["launchd", "systemd", "cron"] {
        let files = schedule(&sb, kind)["files"].clone();
        let out = sb
            .cmd()
            .args(["automation", "--print-schedule", kind])
            .output()
            .unwrap();
        assert!(out.status.success(), "{kind}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let contents: Vec<&str> = files
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["contents"].as_str().unwrap())
            .collect();
        assert_eq!(
            stdout,
            contents.join("\n"),
            "{kind}: stdout is the entries only"
        );
        for f in files.as_array().unwrap() {
            assert!(
                stderr.contains(f["path"].as_str().unwrap()),
                "{kind}: {stderr}"
            );
        }
        assert!(stderr.contains("Nothing was scheduled"), "{kind}: {stderr}");
    }
    let plist = String::from_utf8(
        sb.cmd()
            .args(["automation", "--print-schedule", "launchd"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(plist.starts_with("<?xml"), "{plist}");
}
