//! A change the user made with Codex itself is theirs: after `codex unarchive` (the file
//! moved to its dated folder, the row naming it) and `codex delete` (file and row gone) of
//! sessions codex-maint archived and compressed, verify reports them as taken over by Codex
//! (exit 0) and undo takes back the rest, leaving them. A file gone while its row still
//! names it is damage, and stays a problem.

mod support;

use codex_maint::testkit::synthetic_home::{SessionSpec, id_for};
use std::path::{Path, PathBuf};
use support::*;

fn specs() -> Vec<SessionSpec> {
    (0..4)
        .map(|i| SessionSpec::aged(i, 30.0, 2500 + i as usize * 100))
        .collect()
}

fn transcript(home: &Path, id: &str) -> PathBuf {
    walkdir::WalkDir::new(home)
        .into_iter()
        .flatten()
        .map(|e| e.into_path())
        .find(|p| p.is_file() && p.to_string_lossy().contains(id))
        .unwrap_or_else(|| panic!("no transcript of {id}"))
}

fn index(sb: &Sandbox) -> rusqlite::Connection {
    rusqlite::Connection::open(sb.home.join("state_5.sqlite")).unwrap()
}

/// What `codex unarchive` does to a compressed transcript: plain again, in a dated folder
/// of `sessions/`, the row naming it and no longer archived.
fn unarchive_like_codex(sb: &Sandbox, id: &str) -> PathBuf {
    let zst = transcript(&sb.home, id);
    let name = zst
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".zst", "");
    let to = sb.home.join("sessions/2026/12/01").join(name);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let plain = zstd::decode_all(&std::fs::read(&zst).unwrap()[..]).unwrap();
    std::fs::write(&to, plain).unwrap();
    std::fs::remove_file(&zst).unwrap();
    index(sb)
        .execute(
            "UPDATE threads SET rollout_path = ?2, archived = 0, archived_at = NULL WHERE id = ?1",
            rusqlite::params![id, to.display().to_string()],
        )
        .unwrap();
    to
}

fn delete_like_codex(sb: &Sandbox, id: &str) {
    std::fs::remove_file(transcript(&sb.home, id)).unwrap();
    index(sb)
        .execute("DELETE FROM threads WHERE id = ?1", [id])
        .unwrap();
}

#[test]
fn items_codex_unarchived_or_deleted_are_information_and_undo_takes_back_the_rest() {
    let sb = Sandbox::with_sessions(&specs(), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    let unarchived = unarchive_like_codex(&sb, &id_for(0));
    let unarchived_bytes = std::fs::read(&unarchived).unwrap();
    delete_like_codex(&sb, &id_for(1));

    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
    let taken = doc["data"]["checked"]["taken_over_by_codex"]
        .as_array()
        .unwrap();
    assert_eq!(taken.len(), 2, "{doc:#}");
    let text = doc.to_string();
    assert!(
        text.contains(&id_for(0)) && text.contains(&id_for(1)),
        "{doc:#}"
    );

    let (code, undone) = sb.json(&["undo"]);
    assert_eq!(code, 0, "{undone:#}");
    assert!(
        undone.to_string().contains("taken over by Codex"),
        "undo lists what it left: {undone:#}"
    );
    assert_eq!(std::fs::read(&unarchived).unwrap(), unarchived_bytes);
    for back in [2, 3].map(id_for) {
        let p = transcript(&sb.home, &back);
        assert!(
            p.to_string_lossy().contains("/sessions/") && p.extension().unwrap() == "jsonl",
            "{} is back",
            p.display()
        );
    }
    assert!(
        walkdir::WalkDir::new(&sb.home)
            .into_iter()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains(&id_for(1))),
        "the deleted thread stays deleted"
    );
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
}

#[test]
fn a_transcript_gone_while_its_row_still_names_it_is_a_problem() {
    let sb = Sandbox::with_sessions(&specs(), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    std::fs::remove_file(transcript(&sb.home, &id_for(2))).unwrap();
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 4, "{doc:#}");
    assert!(
        doc["data"]["checked"]["taken_over_by_codex"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (code, _) = sb.json(&["undo"]);
    assert_eq!(code, 3, "undo refuses over damage");
}
