//! Undo and verify of a run far larger than one page of the catalog: a few thousand
//! archived sessions read 64 ops at a time, so every step crosses many page boundaries.

mod support;

use codex_maint::testkit::synthetic_home::{SessionSpec, set_mtime};
use std::path::PathBuf;
use support::*;

const SESSIONS: u64 = 2_500;

fn paged_json(sb: &Sandbox, args: &[&str]) -> (i32, serde_json::Value) {
    let out = sb
        .cmd()
        .env("CODEX_MAINT_PAGE_SIZE", "64")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), doc)
}

fn section<'a>(doc: &'a serde_json::Value, title: &str) -> Vec<&'a str> {
    let sections = doc["sections"].as_array().unwrap();
    let s = sections.iter().find(|s| s["title"] == title).unwrap();
    texts(&s["items"])
}

/// The place the run's first op (`seq` 1, so on the last page an undo reads) moved its
/// session to.
fn first_archived(sb: &Sandbox) -> PathBuf {
    let catalog =
        rusqlite::Connection::open(sb.store.join(codex_maint::store::CATALOG_FILE)).unwrap();
    let dst: String = catalog
        .query_row(
            "SELECT dst FROM ops WHERE run_id = 1 AND seq = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    PathBuf::from(dst)
}

#[test]
fn thousands_archived_are_verified_and_undone_page_by_page_back_to_the_exact_home() {
    let specs: Vec<SessionSpec> = (0..SESSIONS)
        .map(|i| SessionSpec::aged(i, 20.0 + (i % 50) as f64, 300 + (i as usize * 37) % 900))
        .collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();

    let archived = sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    assert_eq!(
        archived["data"]["archived"].as_array().unwrap().len() as u64,
        SESSIONS
    );
    let (code, verify) = paged_json(&sb, &["verify"]);
    assert_eq!(code, 0, "{verify:#}");
    assert_eq!(verify["data"]["checked"]["items"]["checked"], SESSIONS);

    // A dry run lists every op, newest first, in --json; the text keeps the largest.
    let (code, dry) = paged_json(&sb, &["undo", "--dry-run"]);
    assert_eq!(code, 0, "{dry:#}");
    let ids: Vec<i64> = dry["data"]["reverts_ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, SESSIONS);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let proposed = section(&dry, "Proposed actions");
    assert_eq!(proposed.len(), 21, "{proposed:?}");
    assert!(
        proposed[20].starts_with(&format!("... and {} more", SESSIONS - 20)),
        "{proposed:?}"
    );

    // A conflict on the last page refuses the whole undo before anything moves.
    let first = first_archived(&sb);
    let bytes = std::fs::read(&first).unwrap();
    let mtime = std::fs::metadata(&first).unwrap().modified().unwrap();
    std::fs::write(&first, [&bytes[..], b"{}\n"].concat()).unwrap();
    let home_before_refusal = sb.home_files();
    let (code, refused) = paged_json(&sb, &["undo"]);
    assert_eq!(code, 3, "{refused:#}");
    let message = error_message(&refused);
    assert!(message.contains("nothing was changed"), "{message}");
    assert!(
        refused.to_string().contains(&first.display().to_string()),
        "{refused:#}"
    );
    let diffs =
        codex_maint::testkit::fingerprint::differences(&home_before_refusal, &sb.home_files());
    assert!(
        diffs.is_empty(),
        "the refused undo changed:\n{}",
        diffs.join("\n")
    );

    std::fs::write(&first, &bytes).unwrap();
    set_mtime(&first, mtime.into()).unwrap();
    let (code, undo) = paged_json(&sb, &["undo"]);
    assert_eq!(code, 0, "{undo:#}");
    let reverted = undo["data"]["reverted"].as_array().unwrap();
    assert_eq!(reverted.len() as u64, SESSIONS);
    let taken_back: Vec<i64> = reverted
        .iter()
        .map(|r| r["reverts_op"].as_i64().unwrap())
        .collect();
    assert_eq!(
        taken_back, ids,
        "the run takes back what the dry run listed"
    );
    let completed = section(&undo, "Completed actions");
    assert_eq!(completed.len(), 21, "{completed:?}");
    let run_id = undo["data"]["run_id"].as_i64().unwrap();
    assert!(
        completed[20].contains(&format!("`codex-maint log --run {run_id}`")),
        "{completed:?}"
    );
    sb.assert_back_to(&files_before, &rows_before, "after a paged undo");

    let (code, verify) = paged_json(&sb, &["verify"]);
    assert_eq!(code, 0, "{verify:#}");
    let again = sb.ok_json(&["undo"]);
    assert!(again["data"]["reverted"].as_array().unwrap().is_empty());
}

#[test]
fn a_short_undo_lists_every_item_as_it_always_did() {
    let specs: Vec<SessionSpec> = (0..30).map(|i| SessionSpec::aged(i, 30.0, 500)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let (code, undo) = paged_json(&sb, &["undo"]);
    assert_eq!(code, 0, "{undo:#}");
    let completed = section(&undo, "Completed actions");
    assert_eq!(completed.len(), 30);
    assert!(
        completed.iter().all(|l| l.starts_with("took back op ")),
        "{completed:?}"
    );
}
