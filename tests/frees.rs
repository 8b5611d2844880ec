//! Every report says what it frees: `inspect` opens with what a default cleanup would give
//! back, step by step, and proposes the one command that does it; `cleanup --dry-run` gives
//! the same figures per category; an applied cleanup reports the home's bytes before and
//! after as a walk of the home measures them.

mod support;

use codex_maint::clock::human_bytes;
use codex_maint::testkit::fingerprint::tree_fingerprint;
use codex_maint::testkit::synthetic_home::SessionSpec;
use serde_json::Value;
use std::path::Path;
use support::*;

/// The home's size as the survey defines it: every entry under it, symlinks not followed,
/// counted by its allocated blocks.
fn walked_disk_bytes(home: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(home)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

fn items<'a>(doc: &'a Value, title: &str) -> Vec<&'a str> {
    let section = doc["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == title)
        .unwrap_or_else(|| panic!("no section {title}"));
    texts(&section["items"])
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// 12 idle sessions of 150 kB (archived and compressed by a default cleanup), 2 recent
/// ones, 2 archived ones idle long enough to compress; a 3.6 MB log and a log database
/// over 1 MB; an old and a current daemon release; a database with pages on its freelist.
fn heavy() -> (Sandbox, u64) {
    let mut specs: Vec<SessionSpec> = (0..12)
        .map(|i| SessionSpec::aged(i, 20.0 + i as f64, 150_000))
        .collect();
    specs.extend((12..14).map(|i| SessionSpec::aged(i, 1.0, 5_000)));
    specs.extend((14..16).map(|i| SessionSpec {
        archived: true,
        ..SessionSpec::aged(i, 15.0, 120_000)
    }));
    let sb = Sandbox::with_sessions(&specs, true);
    let home = &sb.home;
    write_large_logs(home);
    write_two_releases(home);
    // Rows written then deleted leave their pages on the freelist (no auto_vacuum).
    let goals = home.join("goals_1.sqlite");
    let conn = rusqlite::Connection::open(&goals).unwrap();
    conn.execute_batch(
        "CREATE TABLE goals (id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO goals (body) SELECT printf('%.300c', 'g') FROM n;
         DELETE FROM goals WHERE id > 100;",
    )
    .unwrap();
    let free: u64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
        * conn
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64;
    drop(conn);
    assert!(free > 0);
    (sb, free)
}

const FLAGS: &[&str] = &["--large-log-mb", "1"];

#[test]
fn inspect_says_what_cleanup_frees_and_the_applied_cleanup_measures_it() {
    let (sb, free_pages) = heavy();
    let home = &sb.home;
    let untouched = tree_fingerprint(home);
    let mut args = vec!["inspect"];
    args.extend(FLAGS);
    let doc = sb.ok_json(&args);
    assert_eq!(untouched, tree_fingerprint(home), "inspect changed nothing");
    let d = &doc["data"];
    let f = &d["frees"];

    // The figures are the survey's own, step by step.
    assert_eq!(u(&f["home_bytes"]), u(&d["total"]["disk_bytes"]));
    assert_eq!(u(&f["archive"]["sessions"]), 12);
    assert_eq!(u(&f["archive"]["frees"]), 0, "a move frees nothing");
    assert_eq!(u(&f["compress"]["transcripts"]), 14, "{f:#}");
    assert_eq!(
        u(&f["compress"]["plain_bytes"]),
        u(&d["sessions"]["archive_candidates"]["bytes"])
            + u(&d["compression"]["candidates"]["plain_bytes"])
    );
    let compress_frees = u(&f["compress"]["estimated_frees"]);
    assert!(
        compress_frees > 0 && compress_frees < u(&f["compress"]["plain_bytes"]),
        "{f:#}"
    );
    assert!(
        f["compress"]["method"]
            .as_str()
            .unwrap()
            .starts_with("measured by compressing")
    );
    let logs: u64 = d["logs"]["large_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| u(&l["bytes"]))
        .sum::<u64>()
        + d["logs"]["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| u(&x["bytes"]) + u(&x["wal_bytes"]))
            .sum::<u64>();
    let logs_and_releases = u(&f["logs_and_releases"]["frees"]);
    assert_eq!(
        logs_and_releases,
        logs + u(&d["releases"]["old_bytes"]),
        "{f:#}"
    );
    assert_eq!(
        u(&f["database_free_pages"]["bytes"]),
        free_pages,
        "freelist_count * page_size, read from the databases"
    );
    assert_eq!(
        u(&f["cleanup_total"]),
        logs_and_releases + compress_frees,
        "free pages are not what cleanup frees"
    );
    assert_eq!(
        f["next_command"],
        "codex-maint cleanup --dry-run --only sessions,compress,logs,releases"
    );

    // The text says the same, first thing.
    let observed = items(&doc, "Observed hot spots");
    assert_eq!(
        observed[0],
        format!(
            "a default cleanup would free about {} of the home's {} on disk:",
            human_bytes(u(&f["cleanup_total"])),
            human_bytes(u(&f["home_bytes"]))
        )
    );
    assert!(
        observed[1].contains("archive: moves 12 idle sessions") && observed[1].ends_with("frees 0")
    );
    assert!(
        observed[2].starts_with(&format!(
            "  compress: frees about {}",
            human_bytes(compress_frees)
        )) && observed[2].contains("estimated from a sample (measured by compressing"),
        "{observed:#?}"
    );
    // No session is idle half a year and the folder holds far fewer than the cap.
    assert!(
        observed[3].starts_with("  retire: no archived session is idle past the retire age"),
        "{observed:#?}"
    );
    assert_eq!(u(&f["retire"]["sessions"]), 0);
    assert!(observed[4].starts_with(&format!(
        "  logs and releases: frees {}",
        human_bytes(logs_and_releases)
    )));
    assert!(
        observed[5].starts_with(&format!(
            "  database free pages: {}",
            human_bytes(free_pages)
        )) && observed[5].ends_with(
            "reclaim: frees 0 (none of thread history or logs has at least 25% and 8.0 MiB free)"
        ),
        "{observed:#?}"
    );
    let proposed = items(&doc, "Proposed actions");
    assert!(
        proposed[0].starts_with(
            "codex-maint cleanup --dry-run --only sessions,compress,logs,releases: the one command"
        ),
        "{proposed:#?}"
    );

    // The dry run it proposes gives the same figures, per category.
    let mut dry_args: Vec<&str> = f["next_command"]
        .as_str()
        .unwrap()
        .split(' ')
        .skip(1)
        .collect();
    dry_args.extend(FLAGS);
    let dry = sb.ok_json(&dry_args);
    let pf = &dry["data"]["frees"];
    let category = |c: &str| {
        pf["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["category"] == c)
            .unwrap_or_else(|| panic!("no {c} in {pf:#}"))
            .clone()
    };
    assert_eq!(
        u(&category("logs")["frees"]) + u(&category("releases")["frees"]),
        logs_and_releases,
        "exact: what moves into the store"
    );
    assert_eq!(category("logs")["how"], "exact");
    assert_eq!(category("sessions")["how"], "estimated");
    assert_eq!(
        u(&category("sessions")["frees"]) + u(&category("compress")["frees"]),
        compress_frees,
        "the same sample, the same estimate"
    );
    assert_eq!(u(&pf["total"]), u(&f["cleanup_total"]));
    let plan_lines = items(&dry, "Proposed actions");
    assert!(
        plan_lines.iter().any(|l| l
            .starts_with("sessions: will archive and compress 12 idle sessions")
            && l.contains("frees about")),
        "{plan_lines:#?}"
    );
    assert!(plan_lines.iter().any(|l| l.starts_with("logs: 2 actions")
        && l.ends_with(&format!(
            "frees {}",
            human_bytes(u(&category("logs")["frees"]))
        ))));
    assert!(plan_lines.iter().any(|l| l.contains(&format!(
        "frees about {} in all",
        human_bytes(u(&pf["total"]))
    ))));

    // Applied: the home's bytes before and after, as a walk of the home measures them.
    let walked_before = walked_disk_bytes(home);
    let id = dry["data"]["plan"]["id"].as_str().unwrap();
    let mut apply_args = vec!["cleanup", "--yes", "--plan", id];
    apply_args.extend(FLAGS);
    let done = sb.ok_json(&apply_args);
    let walked_after = walked_disk_bytes(home);
    let hb = &done["data"]["home_bytes"];
    assert_eq!(u(&hb["before"]), walked_before, "{hb:#}");
    assert_eq!(u(&hb["after"]), walked_after, "{hb:#}");
    let freed = hb["freed"].as_i64().unwrap();
    assert_eq!(freed, walked_before as i64 - walked_after as i64);
    assert!(
        items(&done, "Completed actions")
            .iter()
            .any(|l| l.starts_with(&format!(
                "the home: {} before, {} after: {} freed, measured",
                human_bytes(walked_before),
                human_bytes(walked_after),
                human_bytes(freed as u64)
            ))),
        "{:#?}",
        items(&done, "Completed actions")
    );
    // The exact part left the home; the estimated part landed near its estimate.
    let estimate = u(&pf["total"]) as i64;
    assert!(
        (freed - estimate).abs() < estimate / 10 + (256 << 10),
        "measured {freed}, estimated {estimate}"
    );
}

#[test]
fn a_log_over_its_threshold_leads_to_proposing_cleanup() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(0, 1.0, 3000)], true);
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    std::fs::write(sb.home.join("log/codex-tui.log"), vec![b'l'; 60 << 20]).unwrap();
    let untouched = tree_fingerprint(&sb.home);
    let doc = sb.ok_json(&["inspect"]);
    assert_eq!(
        untouched,
        tree_fingerprint(&sb.home),
        "inspect changed nothing"
    );
    let f = &doc["data"]["frees"];
    assert_eq!(u(&f["logs_and_releases"]["frees"]), 60 << 20);
    assert_eq!(f["categories"], serde_json::json!(["logs"]));
    let proposed = items(&doc, "Proposed actions");
    assert!(
        proposed.iter().any(
            |p| p.starts_with("codex-maint cleanup --dry-run --only logs: ")
                && p.contains("freeing about 60.0 MiB")
        ),
        "{proposed:#?}"
    );
    assert!(
        items(&doc, "Observed hot spots")[4].starts_with("  logs and releases: frees 60.0 MiB")
    );
}

/// Sessions idle past the retire age are counted in the headline as what retire frees,
/// exactly (their transcripts leave the home), and the proposed command includes retire.
#[test]
fn inspect_counts_what_retire_frees() {
    let mut specs: Vec<SessionSpec> = (0..4)
        .map(|i| SessionSpec::aged(i, 200.0, 30_000))
        .collect();
    for s in specs.iter_mut().take(2) {
        s.archived = true;
    }
    let sb = Sandbox::with_sessions(&specs, true);
    let doc = sb.ok_json(&["inspect"]);
    let f = &doc["data"]["frees"];
    assert_eq!(u(&f["retire"]["sessions"]), 4, "{f:#}");
    assert_eq!(u(&f["retire"]["by_age"]), 4);
    let observed = items(&doc, "Observed hot spots");
    assert!(
        observed[3].starts_with("  retire: frees ") && observed[3].contains("4 sessions"),
        "{observed:#?}"
    );
    assert!(
        f["next_command"].as_str().unwrap().contains("retire"),
        "{f:#}"
    );
    // What a default cleanup retires (archived, and the sessions it archives) is what
    // inspect counted.
    let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "sessions,retire"]);
    let retired = plan["data"]["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "retire_session")
        .count();
    assert_eq!(retired, 4);
}
