//! `sessions`: the listing people choose by. Titles and folders come from Codex's index, or
//! from the transcripts (plain or `.jsonl.zst`) on a home without one; every sort and
//! filter does what it says; a title can never drive the terminal; and nothing is written,
//! not even a database's `-wal`/`-shm`, nor the store.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::{SessionSpec, set_mtime};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

fn spec(n: u64, age_days: f64, bytes: usize, cwd: &str, archived: bool) -> SessionSpec {
    let mut s = SessionSpec::aged(n, age_days, bytes);
    s.cwd = cwd.to_string();
    s.archived = archived;
    s
}

/// Replaces a transcript by its `.jsonl.zst` form, with the same mtime.
fn compress(home: &Path, s: &SessionSpec) -> PathBuf {
    let plain = s.path_in(home);
    let bytes = std::fs::read(&plain).unwrap();
    let zst = plain.with_file_name(format!("{}.zst", s.file_name()));
    std::fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    set_mtime(&zst, s.last_active).unwrap();
    std::fs::remove_file(&plain).unwrap();
    zst
}

fn rows(doc: &Value) -> &Vec<Value> {
    doc["data"]["sessions"].as_array().expect("data.sessions[]")
}

fn ids(doc: &Value) -> Vec<String> {
    rows(doc)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn row<'a>(doc: &'a Value, id: &str) -> &'a Value {
    rows(doc)
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no row for {id}: {doc:#}"))
}

fn text_of(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.cmd().arg("sessions").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sessions {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn set_in_index(home: &Path, sql: &str, params: &[&dyn rusqlite::ToSql]) {
    let conn = rusqlite::Connection::open(home.join("state_5.sqlite")).unwrap();
    assert_eq!(conn.execute(sql, params).unwrap(), 1, "{sql}");
}

#[test]
fn a_home_without_a_thread_index_is_listed_from_its_transcripts() {
    let specs = [
        spec(1, 30.0, 60_000, "/work/alpha", false),
        spec(2, 3.0, 30_000, "/work/beta", false),
        spec(3, 60.0, 10_000, "/work/gamma", true),
    ];
    let sb = Sandbox::with_sessions(&specs, false);
    let doc = sb.ok_json(&["sessions"]);
    assert_eq!(doc["data"]["thread_index"], "absent");
    assert_eq!(doc["data"]["total"], 3);
    assert_eq!(ids(&doc), of(&specs, &[1, 2, 3]));
    for (s, state, protection) in [
        (&specs[0], "active", Value::Null),
        (&specs[1], "active", Value::from("recent")),
        (&specs[2], "archived", Value::Null),
    ] {
        let r = row(&doc, &s.id);
        // The first user message that is not harness context (`<environment_context>`).
        assert_eq!(r["title"], format!("Please fix the build in {}", s.cwd));
        assert_eq!(r["title_from"], "transcript");
        assert_eq!(r["cwd"], s.cwd.as_str());
        assert_eq!(r["state"], state);
        assert_eq!(r["protection"]["reason"], protection, "{r:#}");
        let path = s.path_in(&sb.home);
        assert_eq!(r["path"], path.display().to_string());
        assert_eq!(r["bytes"], std::fs::metadata(&path).unwrap().len());
    }
    // Synthetic ids share their first 8 characters: each is shown as long as it takes.
    let prefix = row(&doc, &specs[0].id)["id_prefix"].as_str().unwrap();
    assert!(
        prefix.len() > 8 && specs[0].id.starts_with(prefix),
        "{prefix}"
    );
    assert!(!specs[1].id.starts_with(prefix));

    let text = text_of(&sb, &[]);
    assert!(
        text.contains("Please fix the build in /work/alpha"),
        "{text}"
    );
    assert!(text.contains(prefix), "{text}");
    assert!(text.contains("recent"), "{text}");
    assert!(text.contains("titles and folders come from the transcripts"));
}

#[test]
fn compressed_transcripts_are_listed_as_compressed_and_read_for_their_titles() {
    let specs = [
        spec(1, 40.0, 60_000, "/work/alpha", true),
        spec(2, 45.0, 50_000, "/work/beta", false),
        spec(3, 50.0, 40_000, "/work/gamma", true),
    ];
    let sb = Sandbox::with_sessions(&specs, false);
    let archived_zst = compress(&sb.home, &specs[0]);
    let active_zst = compress(&sb.home, &specs[1]);
    let doc = sb.ok_json(&["sessions"]);
    for (s, path, location) in [
        (&specs[0], &archived_zst, "archived"),
        (&specs[1], &active_zst, "active"),
    ] {
        let r = row(&doc, &s.id);
        assert_eq!(r["state"], "compressed");
        assert_eq!(r["location"], location);
        assert_eq!(r["path"], path.display().to_string());
        assert_eq!(r["bytes"], std::fs::metadata(path).unwrap().len());
        assert_eq!(r["title"], format!("Please fix the build in {}", s.cwd));
        assert_eq!(r["cwd"], s.cwd.as_str());
    }
    // A compressed archived transcript has nothing left for a cleanup to do.
    assert_eq!(row(&doc, &specs[0].id)["protection"], Value::Null);
    let mut compressed = ids(&sb.ok_json(&["sessions", "--state", "compressed"]));
    compressed.sort();
    let mut expected = vec![specs[0].id.clone(), specs[1].id.clone()];
    expected.sort();
    assert_eq!(compressed, expected);
    let archived = sb.ok_json(&["sessions", "--state", "archived"]);
    assert_eq!(ids(&archived), of(&specs, &[3]));
    let text = text_of(&sb, &["--state", "compressed"]);
    assert!(text.contains("compressed"), "{text}");
    assert!(
        text.contains("Please fix the build in /work/beta"),
        "{text}"
    );
    assert!(!text.contains("/work/gamma"), "{text}");

    // With an index, the title is Codex's own.
    let sb = Sandbox::with_sessions(&specs, true);
    compress(&sb.home, &specs[0]);
    let doc = sb.ok_json(&["sessions", "--state", "compressed"]);
    assert_eq!(ids(&doc), of(&specs, &[1]));
    assert_eq!(
        row(&doc, &specs[0].id)["title"],
        format!("task for {}", &specs[0].id[..8])
    );
    assert_eq!(row(&doc, &specs[0].id)["title_from"], "thread_title");
}

/// An erase-screen, a window-title change with BEL, a colour, a C1 CSI, DEL, a bidi
/// override and a line break.
const HOSTILE: &str =
    "\u{1b}[2J\u{1b}]0;pwned\u{7}red \u{1b}[31mALERT\u{9b}1m\u{7f}\u{202e}exe.txt\r\nnext line";

fn assert_nothing_drives_the_terminal(bytes: &[u8]) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        })
        .collect();
    assert!(bad.is_empty(), "control characters {bad:?} in:\n{text}");
}

#[test]
fn a_title_never_drives_the_terminal_and_json_keeps_it_as_it_is() {
    let specs = [
        spec(1, 30.0, 60_000, "/work/alpha", false),
        spec(2, 30.0, 50_000, "/work/beta", false),
        spec(3, 30.0, 40_000, "/work/gamma", false),
    ];
    let sb = Sandbox::with_sessions(&specs, true);
    let home = &sb.home;
    set_in_index(
        home,
        "UPDATE threads SET title = ?1 WHERE id = ?2",
        &[&HOSTILE, &specs[0].id],
    );
    set_in_index(
        home,
        "UPDATE threads SET title = '', first_user_message = ?1 WHERE id = ?2",
        &[&HOSTILE, &specs[1].id],
    );
    let hostile_cwd = format!("/work/{HOSTILE}");
    set_in_index(
        home,
        "UPDATE threads SET cwd = ?1 WHERE id = ?2",
        &[&hostile_cwd, &specs[2].id],
    );
    for args in [&[][..], &["--sort", "project"], &["--match", "alert"]] {
        let out = sb.cmd().arg("sessions").args(args).output().unwrap();
        assert!(out.status.success());
        assert_nothing_drives_the_terminal(&out.stdout);
        assert_nothing_drives_the_terminal(&out.stderr);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("\\x1b[2J"), "escaped, visible: {text}");
    }
    let doc = sb.ok_json(&["sessions"]);
    assert_eq!(row(&doc, &specs[0].id)["title"], HOSTILE);
    assert_eq!(row(&doc, &specs[1].id)["title"], HOSTILE);
    assert_eq!(row(&doc, &specs[1].id)["title_from"], "first_user_message");
    assert_eq!(row(&doc, &specs[2].id)["cwd"], hostile_cwd.as_str());
    let matched = sb.ok_json(&["sessions", "--match", "ALERT"]);
    assert_eq!(ids(&matched), of(&specs, &[1, 2]));

    // Without an index the same text arrives through a transcript: its folder and request.
    let sb = Sandbox::with_sessions(&[spec(4, 30.0, 20_000, &hostile_cwd, false)], false);
    let out = sb.cmd().arg("sessions").output().unwrap();
    assert!(out.status.success());
    assert_nothing_drives_the_terminal(&out.stdout);
    let doc = sb.ok_json(&["sessions"]);
    assert_eq!(
        rows(&doc)[0]["title"],
        format!("Please fix the build in {hostile_cwd}")
    );
    assert_eq!(rows(&doc)[0]["cwd"], hostile_cwd.as_str());
}

/// Six sessions of distinct sizes, ages, folders and states; one titled by hand.
fn sorted_home() -> (Sandbox, Vec<SessionSpec>) {
    let specs = vec![
        spec(1, 40.0, 50_000, "/work/alpha", false),
        spec(2, 5.0, 30_000, "/work/beta", false),
        spec(3, 90.0, 10_000, "/work/alpha/sub", true),
        spec(4, 20.0, 70_000, "/work/gamma", true),
        spec(5, 12.0, 20_000, "/work/delta", false),
        spec(6, 60.0, 90_000, "/work/beta", true),
    ];
    let sb = Sandbox::with_sessions(&specs, true);
    set_in_index(
        &sb.home,
        "UPDATE threads SET title = 'Refactor the PARSER', first_user_message = 'refactor it' WHERE id = ?1",
        &[&specs[1].id],
    );
    let zst = compress(&sb.home, &specs[3]);
    set_in_index(
        &sb.home,
        "UPDATE threads SET rollout_path = ?1 WHERE id = ?2",
        &[&zst.display().to_string(), &specs[3].id],
    );
    (sb, specs)
}

fn of(specs: &[SessionSpec], ns: &[usize]) -> Vec<String> {
    ns.iter().map(|&n| specs[n - 1].id.clone()).collect()
}

#[test]
fn each_sort_orders_the_rows_it_names() {
    let (sb, specs) = sorted_home();
    let by_size = sb.ok_json(&["sessions"]);
    let bytes: Vec<u64> = rows(&by_size)
        .iter()
        .map(|r| r["bytes"].as_u64().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    assert_eq!(ids(&by_size)[0], specs[5].id, "the largest first");
    assert_eq!(
        ids(&by_size),
        ids(&sb.ok_json(&["sessions", "--sort", "size"]))
    );

    let by_age = sb.ok_json(&["sessions", "--sort", "age"]);
    assert_eq!(
        ids(&by_age),
        of(&specs, &[3, 6, 1, 4, 5, 2]),
        "longest idle first"
    );
    let ages: Vec<u64> = rows(&by_age)
        .iter()
        .map(|r| r["last_activity_age_secs"].as_u64().unwrap())
        .collect();
    assert!(ages.windows(2).all(|w| w[0] >= w[1]), "{ages:?}");

    let by_project = sb.ok_json(&["sessions", "--sort", "project"]);
    let cwds: Vec<&str> = rows(&by_project)
        .iter()
        .map(|r| r["cwd"].as_str().unwrap())
        .collect();
    assert_eq!(
        cwds,
        [
            "/work/alpha",
            "/work/alpha/sub",
            "/work/beta",
            "/work/beta",
            "/work/delta",
            "/work/gamma"
        ]
    );
    assert_eq!(
        ids(&by_project)[2],
        specs[5].id,
        "within a folder, largest first"
    );

    let text = text_of(&sb, &["--sort", "age"]);
    let first_row = text.lines().nth(2).unwrap();
    let prefix = row(&by_age, &specs[2].id)["id_prefix"].as_str().unwrap();
    assert!(first_row.starts_with(prefix), "{text}");
}

#[test]
fn each_filter_keeps_only_what_it_names() {
    let (sb, specs) = sorted_home();
    let listed = |args: &[&str]| {
        let mut all = vec!["sessions"];
        all.extend_from_slice(args);
        let mut got = ids(&sb.ok_json(&all));
        got.sort();
        got
    };
    let expect = |ns: &[usize]| {
        let mut want = of(&specs, ns);
        want.sort();
        want
    };
    assert_eq!(listed(&["--project", "alpha"]), expect(&[1, 3]));
    assert_eq!(listed(&["--project", "/work/beta"]), expect(&[2, 6]));
    assert_eq!(listed(&["--state", "active"]), expect(&[1, 2, 5]));
    assert_eq!(listed(&["--state", "archived"]), expect(&[3, 6]));
    assert_eq!(listed(&["--state", "compressed"]), expect(&[4]));
    assert_eq!(listed(&["--older-than", "30d"]), expect(&[1, 3, 6]));
    assert_eq!(listed(&["--newer-than", "10d"]), expect(&[2]));
    assert_eq!(
        listed(&["--older-than", "10d", "--newer-than", "1month"]),
        expect(&[4, 5])
    );
    assert_eq!(listed(&["--match", "parser"]), expect(&[2]));
    // Codex's titles here are "task for <id>", save the one retitled: any case matches.
    assert_eq!(listed(&["--match", "TASK FOR"]), expect(&[1, 3, 4, 5, 6]));
    assert_eq!(
        listed(&["--project", "beta", "--state", "archived"]),
        expect(&[6])
    );
    assert!(listed(&["--match", "nothing like this"]).is_empty());

    let limited = sb.ok_json(&["sessions", "--limit", "2"]);
    assert_eq!(rows(&limited).len(), 2);
    assert_eq!(limited["data"]["matched"], 6);
    let all = sb.ok_json(&["sessions"]);
    assert_eq!(rows(&all).len(), 6, "--json gives every row");
    let text = text_of(&sb, &["--limit", "2"]);
    assert_eq!(
        text.lines().filter(|l| l.contains("/work/")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("... and 4 more"), "{text}");
    let text = text_of(&sb, &["--match", "nothing like this"]);
    assert!(text.contains("No session matches"), "{text}");

    let bad = sb
        .cmd()
        .args(["sessions", "--older-than", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let bad = sb
        .cmd()
        .args(["sessions", "--state", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn listing_writes_nothing_not_even_a_databases_wal_or_shm_nor_the_store() {
    let (sb, specs) = sorted_home();
    let index = sb.home.join("state_5.sqlite");
    // A title Codex wrote that still sits in the WAL: read through a private copy.
    write_with_pending_wal(
        &index,
        &format!(
            "UPDATE threads SET title = 'only in the wal' WHERE id = '{}';",
            specs[0].id
        ),
    );
    for side in ["-wal", "-shm"] {
        let mut name = index.as_os_str().to_owned();
        name.push(side);
        assert!(
            std::fs::metadata(&name).is_ok_and(|m| m.len() > 0),
            "{side} is there to be kept"
        );
    }
    let before = tree_fingerprint(&sb.home);
    let doc = sb.ok_json(&["sessions"]);
    assert_eq!(row(&doc, &specs[0].id)["title"], "only in the wal");
    for args in [
        &[][..],
        &["--sort", "project"],
        &["--match", "wal", "--state", "active"],
        &["--older-than", "1d", "--sort", "age"],
    ] {
        text_of(&sb, args);
        let mut json_args = vec!["sessions"];
        json_args.extend_from_slice(args);
        sb.ok_json(&json_args);
    }
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(
        diffs.is_empty(),
        "sessions changed the home:\n{}",
        diffs.join("\n")
    );
    assert!(!sb.store.exists(), "sessions created the store");
}

#[test]
fn a_fifo_named_like_a_transcript_is_listed_never_opened() {
    let specs = [spec(1, 30.0, 20_000, "/work/alpha", false)];
    let sb = Sandbox::with_sessions(&specs, false);
    let fifo = specs[0]
        .path_in(&sb.home)
        .with_file_name(specs[0].file_name().replace("-0000-", "-0001-"));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = sb
        .cmd()
        .args(["--json", "sessions"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert!(out.status.success(), "no hang, no failure");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = rows(&doc)
        .iter()
        .find(|r| r["path"] == fifo.display().to_string())
        .expect("the FIFO is listed");
    assert_eq!(listed["protection"]["reason"], "ambiguous", "{listed:#}");
    assert_eq!(listed["title"], Value::Null);
}

/// On a home each current Codex wrote itself: its index's titles and folders, and the
/// same first request read from its transcripts once the index is gone.
#[test]
fn a_home_real_codex_wrote_is_listed_by_what_each_session_asked() {
    support::codex_cli::on_each_current(
        "a_home_real_codex_wrote_is_listed_by_what_each_session_asked",
        |codex| {
            let prompts = ["rename the parser module", "explain the flaky test"];
            let real = support::codex_cli::real_home(codex, &prompts);
            let sb = &real.sb;
            let before = tree_fingerprint(&sb.home);
            let doc = sb.ok_json(&["sessions"]);
            assert_eq!(doc["data"]["thread_index"], "understood", "{doc:#}");
            assert_eq!(rows(&doc).len(), 2, "{doc:#}");
            for (id, prompt) in real.ids.iter().zip(prompts) {
                let r = row(&doc, id);
                assert!(
                    r["title"].as_str().is_some_and(|t| t.contains(prompt)),
                    "{r:#}"
                );
                assert!(r["cwd"].as_str().is_some_and(|c| !c.is_empty()), "{r:#}");
                assert_eq!(r["state"], "active");
            }
            let matched = sb.ok_json(&["sessions", "--match", "FLAKY"]);
            assert_eq!(ids(&matched), [real.ids[1].clone()]);
            text_of(sb, &[]);
            let diffs = differences(&before, &tree_fingerprint(&sb.home));
            assert!(
                diffs.is_empty(),
                "sessions changed the home:\n{}",
                diffs.join("\n")
            );
            assert!(!sb.store.exists());
            support::codex_cli::assert_parity_ok(&real.bin, &sb.home, "sessions");

            for entry in std::fs::read_dir(&sb.home).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("state_") {
                    std::fs::remove_file(&path).unwrap();
                }
            }
            let doc = sb.ok_json(&["sessions"]);
            assert_eq!(doc["data"]["thread_index"], "absent");
            for (id, prompt) in real.ids.iter().zip(prompts) {
                let r = row(&doc, id);
                assert_eq!(r["title"], prompt, "{r:#}");
                assert_eq!(r["title_from"], "transcript");
            }
        },
    );
}

/// A retired session is no longer in the home, but `sessions` still names it, from the
/// store's journal: with its title and project, so a person can find it to restore it.
#[test]
fn retired_sessions_are_listed_from_the_store() {
    let mut specs: Vec<SessionSpec> = (0..3).map(|i| SessionSpec::aged(i, 200.0, 4_000)).collect();
    specs[0].archived = true;
    let sb = Sandbox::with_sessions(&specs, true);
    let args = ["cleanup", "--only", "retire"];
    let plan = sb.ok_json(&[&args[..], &["--dry-run"]].concat())["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    sb.ok_json(&[&args[..], &["--plan", &plan, "--yes"]].concat());
    let doc = sb.ok_json(&["sessions", "--state", "retired"]);
    let retired = doc["data"]["retired"].as_array().unwrap();
    assert_eq!(retired.len(), 1, "{doc:#}");
    assert_eq!(retired[0]["id"], specs[0].id.as_str());
    assert_eq!(retired[0]["state"], "retired");
    assert_eq!(
        doc["data"]["matched"], 0,
        "no transcript in the home is retired"
    );
    let out = sb.cmd().args(["sessions"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 sessions retired into the store"), "{text}");
    let listed = sb
        .cmd()
        .args(["sessions", "--state", "retired"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&specs[0].id[..13]));
}
