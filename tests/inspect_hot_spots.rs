//! A home with every kind of weight and risk planted in it: inspect must find each with
//! the right reason, and claim nothing that was not planted.

mod support;

use codex_maint::testkit::synthetic_home::{SessionSpec, insert_row, set_mtime};
use serde_json::Value;
use std::path::Path;
use support::*;

fn find<'a>(items: &'a Value, key: &str, suffix: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[key].as_str().unwrap_or_default().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {items:#}"))
}

#[test]
fn every_planted_hot_spot_is_found_with_its_reason_and_nothing_else() {
    // Sessions: 6 old, 2 recent, 1 pinned (old), 1 large (old), 1 truncated at the tail.
    let mut specs: Vec<SessionSpec> = (0..6).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    specs.extend((6..8).map(|i| SessionSpec::aged(i, 2.0, 3000)));
    specs.push(SessionSpec {
        pinned: true,
        ..SessionSpec::aged(8, 40.0, 3000)
    });
    specs.push(SessionSpec::aged(9, 50.0, 2_200_000));
    let sb = Sandbox::with_sessions(&specs, true);
    let home = &sb.home;
    let truncated = specs[5].path_in(home);
    let mut bytes = std::fs::read(&truncated).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&truncated, bytes).unwrap();
    set_mtime(&truncated, specs[5].last_active).unwrap();

    // Index drift: a row whose transcript is gone, a transcript with no row.
    let conn = rusqlite::Connection::open(home.join("state_5.sqlite")).unwrap();
    let ghost = SessionSpec::aged(20, 30.0, 100);
    insert_row(&conn, home, &ghost).unwrap();
    drop(conn);
    let orphan = SessionSpec::aged(21, 30.0, 2000);
    codex_maint::testkit::synthetic_home::write_transcript(home, &orphan).unwrap();

    // Worktrees: clean and registered (old), dirty and registered, unregistered.
    let repo = sb.dir.path().join("repo");
    init_repo(&repo);
    let clean = home.join("worktrees/a1/repo");
    let dirty = home.join("worktrees/a2/repo");
    add_worktree(&repo, "clean", &clean);
    add_worktree(&repo, "dirty", &dirty);
    std::fs::write(dirty.join("scratch.txt"), "work in progress\n").unwrap();
    let stray = home.join("worktrees/a3/repo");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(
        stray.join(".git"),
        format!("gitdir: {}/.git/worktrees/gone\n", repo.display()),
    )
    .unwrap();
    age_tree(&clean, 20);

    // An oversized log, old daemon releases, config with dead, live and foreign projects.
    std::fs::create_dir_all(home.join("log")).unwrap();
    std::fs::write(home.join("log/codex-tui.log"), vec![b'x'; 3 << 20]).unwrap();
    let releases = home.join("packages/app-server-daemon/releases");
    for v in [
        "0.160.0-x86_64-unknown-linux-musl",
        "0.169.0-x86_64-unknown-linux-musl",
    ] {
        std::fs::create_dir_all(releases.join(v).join("bin")).unwrap();
        std::fs::write(releases.join(v).join("bin/codex"), vec![0u8; 200_000]).unwrap();
    }
    std::os::unix::fs::symlink(
        "releases/0.169.0-x86_64-unknown-linux-musl",
        home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
    let live_project = sb.dir.path().join("repo");
    let dead_project = sb.dir.path().join("deleted-project");
    std::fs::write(
        home.join("config.toml"),
        format!(
            "# my settings\nmodel = \"gpt-5\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n\n[projects.'C:\\Users\\me\\repo']\ntrust_level = \"trusted\"\n",
            live_project.display(),
            dead_project.display()
        ),
    )
    .unwrap();
    // Findings: a broken symlink, a symlink loop, a non-UTF-8 name, a corrupt database.
    std::os::unix::fs::symlink(sb.dir.path().join("nowhere"), home.join("dangling")).unwrap();
    std::os::unix::fs::symlink(home.join("loop-b"), home.join("loop-a")).unwrap();
    std::os::unix::fs::symlink(home.join("loop-a"), home.join("loop-b")).unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(
        home.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name")),
        "x",
    )
    .unwrap();
    std::fs::write(home.join("goals_1.sqlite"), vec![0x42u8; 8192]).unwrap();
    // Auth, present and never read.
    std::fs::write(
        home.join("auth.json"),
        "{\"OPENAI_API_KEY\": \"sk-never-read\"}",
    )
    .unwrap();

    // A running Codex using this home.
    let mut codex = fake_codex(sb.dir.path(), home);

    let before = codex_maint::testkit::fingerprint::tree_fingerprint(home);
    let doc = sb.ok_json(&["inspect", "--large-session-mb", "1", "--large-log-mb", "2"]);
    codex.kill().unwrap();
    codex.wait().unwrap();
    assert_eq!(
        before,
        codex_maint::testkit::fingerprint::tree_fingerprint(home),
        "inspect changed nothing"
    );
    let d = &doc["data"];

    // Sessions and their policy.
    assert_eq!(d["sessions"]["active"]["count"], 11);
    let large = d["sessions"]["large"].as_array().unwrap();
    assert_eq!(large.len(), 1);
    assert!(large[0]["path"].as_str().unwrap().contains(&specs[9].id));
    let protected = &d["sessions"]["protected"];
    assert_eq!(protected["recent"]["count"], 2);
    assert_eq!(protected["pinned"]["count"], 1);
    // The orphan (no row) is ambiguous; the truncated one still has a whole first line.
    assert_eq!(protected["ambiguous"]["count"], 1, "{protected:#}");
    // The 2.2 MB one is long: kept until it has a handoff.
    assert_eq!(protected["needs_handoff"]["count"], 1, "{protected:#}");
    assert_eq!(
        protected.as_object().unwrap().len(),
        4,
        "no other reasons: {protected:#}"
    );
    assert_eq!(d["sessions"]["archive_candidates"]["count"], 6);

    // Index drift, exactly as planted.
    let ix = &d["thread_index"];
    assert_eq!(ix["rows_missing_transcript"].as_array().unwrap().len(), 1);
    assert_eq!(ix["rows_missing_transcript"][0]["id"], ghost.id);
    assert_eq!(ix["transcripts_without_row"].as_array().unwrap().len(), 1);
    assert!(
        ix["archived_rows_under_sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Worktrees.
    let wts = &d["worktrees"];
    assert_eq!(wts.as_array().unwrap().len(), 3);
    let c = find(wts, "path", "a1/repo");
    assert_eq!(
        (
            c["registration"].as_str(),
            c["status"].as_str(),
            c["old"].as_bool()
        ),
        (Some("registered"), Some("clean"), Some(true))
    );
    let w = find(wts, "path", "a2/repo");
    assert_eq!(
        (
            w["registration"].as_str(),
            w["status"].as_str(),
            w["old"].as_bool()
        ),
        (Some("registered"), Some("dirty"), Some(false))
    );
    assert_eq!(find(wts, "path", "a3/repo")["registration"], "unregistered");

    // Logs, releases, config.
    let logs = d["logs"]["large_files"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("log/codex-tui.log")
    );
    assert_eq!(
        d["releases"]["current"],
        "0.169.0-x86_64-unknown-linux-musl"
    );
    let old: Vec<&Value> = d["releases"]["releases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["is_current"] == false)
        .collect();
    assert_eq!(old.len(), 1);
    assert!(old[0]["name"].as_str().unwrap().starts_with("0.160.0"));
    assert!(d["releases"]["old_bytes"].as_u64().unwrap() >= 200_000);
    assert_eq!(d["config"]["parses"], true);
    let states: Vec<(&str, &str)> = d["config"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(live_project.to_str().unwrap(), "exists")));
    assert!(states.contains(&(dead_project.to_str().unwrap(), "missing")));
    assert!(states.contains(&("C:\\Users\\me\\repo", "ambiguous")));

    // Databases: the corrupt one fails, Codex's index passes.
    assert_eq!(
        find(&d["databases"], "path", "goals_1.sqlite")["integrity"],
        "unreadable"
    );
    assert_eq!(
        find(&d["databases"], "path", "state_5.sqlite")["integrity"],
        "ok"
    );

    // Processes: the running Codex, named with its pid, and flagged.
    assert_eq!(d["codex_running"], true);
    assert!(
        d["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == codex.id() && p["kind"] == "codex_cli")
    );

    // Findings: exactly the planted ones.
    let mut problems: Vec<String> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let name = Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            format!("{name}: {}", f["problem"].as_str().unwrap())
        })
        .collect();
    problems.sort();
    let name_of = |p: std::path::PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let mut expected = vec![
        "bad-\u{fffd}-name: name is not valid UTF-8".to_string(),
        "dangling: broken symlink".to_string(),
        "loop-a: symlink loop".to_string(),
        "loop-b: symlink loop".to_string(),
        format!(
            "{}: transcript ends mid-record (truncated last line)",
            name_of(truncated.clone())
        ),
    ];
    expected.sort();
    assert_eq!(problems, expected);
    assert!(
        d["not_touched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("auth.json: credentials"))
    );

    // The text view leads with Codex running and names the hot spots.
    let text = String::from_utf8(
        sb.cmd()
            .args(["inspect", "--large-session-mb", "1", "--large-log-mb", "2"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains("Backups and manifests:\n- not created because this was inspect-only"));
    assert!(text.contains("log/codex-tui.log"));
    assert!(!text.contains("sk-never-read"));
}

/// inspect checks every database with `quick_check` rather than the full
/// `integrity_check` (the cross-check of each index was most of its time); a damaged page
/// must still be found, and `inspect --deep` and cleanup, which acts, run the full check.
#[test]
fn a_damaged_log_database_is_found_by_the_lighter_check() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(0, 30.0, 3000)], true);
    let db = sb.home.join("logs_2.sqlite");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE logs (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO logs (ts, body) SELECT i, printf('%.200c', 'x') FROM n;",
        )
        .unwrap();
    }
    let healthy = sb.ok_json(&["inspect"]);
    let report = find(&healthy["data"]["databases"], "path", "logs_2.sqlite");
    assert_eq!(report["check"], "quick_check");
    assert_eq!(report["integrity"], "ok");
    assert_eq!(
        find(&healthy["data"]["databases"], "path", "state_5.sqlite")["check"],
        "quick_check"
    );
    let deep = sb.ok_json(&["inspect", "--deep"]);
    for name in ["logs_2.sqlite", "state_5.sqlite"] {
        let report = find(&deep["data"]["databases"], "path", name);
        assert_eq!(report["check"], "integrity_check", "{name}");
        assert_eq!(report["integrity"], "ok", "{name}");
    }

    // Scribble over the middle of the table's b-tree: a leaf page's cells.
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    let middle = (bytes.len() / page / 2) * page;
    for b in &mut bytes[middle + 8..middle + 400] {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes).unwrap();
    let damaged = sb.ok_json(&["inspect"]);
    let report = find(&damaged["data"]["databases"], "path", "logs_2.sqlite");
    assert_eq!(report["integrity"], "failed", "{report:#}");
    assert!(!report["problems"].as_array().unwrap().is_empty());
}
