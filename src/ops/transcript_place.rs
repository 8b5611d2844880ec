//! Where a session op may act: on a file with a Codex transcript's name
//! (`rollout-<time>-<id>.jsonl`, or `.jsonl.zst`) inside `sessions/` or directly in
//! `archived_sessions/`. Checked by the ops themselves, whatever planned them, so that no
//! caller (an edited plan, a recorded op, a future command) can make a session move or
//! recode touch Codex's index, credentials or config.

use std::path::{Component, Path};

use crate::error::MaintError;
use crate::home::sessions::parse_rollout_name;
use crate::home::{ARCHIVED_SESSIONS_DIR, SESSIONS_DIR};

/// `sessions/YYYY/MM/DD/<name>`: the deepest place Codex writes a transcript.
const SESSIONS_DEPTH: usize = 5;

/// Refuses (exit 3) a path a session op must not act on, naming it.
pub fn ensure(home: &Path, paths: &[&Path]) -> anyhow::Result<()> {
    for path in paths {
        if !is_transcript_place(home, path) {
            return Err(MaintError::refused(
                format!(
                    "{} is not a Codex transcript inside {SESSIONS_DIR}/ or {ARCHIVED_SESSIONS_DIR}/ of {}: a session op acts only on those; nothing was changed",
                    path.display(),
                    home.display()
                ),
                vec![path.display().to_string()],
            )
            .into());
        }
    }
    Ok(())
}

fn is_transcript_place(home: &Path, path: &Path) -> bool {
    let Ok(inside) = path.strip_prefix(home) else {
        return false;
    };
    let parts: Vec<&str> = inside
        .components()
        .map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    let named = parts
        .last()
        .is_some_and(|name| parse_rollout_name(name).is_some());
    named
        && match parts.first() {
            Some(&SESSIONS_DIR) => parts.len() <= SESSIONS_DEPTH,
            Some(&ARCHIVED_SESSIONS_DIR) => parts.len() == 2,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "rollout-2026-01-02T03-04-05-01a20c2e-e45a-7d33-9558-2b68569b884c.jsonl";

    #[test]
    fn only_transcript_names_in_the_session_folders_pass() {
        let home = Path::new("/h");
        for ok in [
            format!("sessions/2026/01/02/{NAME}"),
            format!("archived_sessions/{NAME}"),
            format!("archived_sessions/{NAME}.zst"),
        ] {
            assert!(is_transcript_place(home, &home.join(&ok)), "{ok}");
        }
        for bad in [
            "state_5.sqlite".to_string(),
            "auth.json".into(),
            "config.toml".into(),
            format!("memories/{NAME}"),
            format!("archived_sessions/x/{NAME}"),
            format!("sessions/2026/../../{NAME}"),
            format!("sessions/2026/01/02/03/{NAME}"),
            "sessions/2026/01/02/notes.jsonl".into(),
        ] {
            assert!(!is_transcript_place(home, &home.join(&bad)), "{bad}");
        }
        assert!(!is_transcript_place(
            home,
            &Path::new("/elsewhere/sessions").join(NAME)
        ));
        assert!(ensure(home, &[&home.join("auth.json")]).is_err());
    }

    /// The ops refuse by themselves, whoever plans them: a move or a recode of Codex's
    /// index, credentials or config is refused before anything is journaled or touched.
    #[test]
    fn session_ops_refuse_what_is_not_a_transcript_whoever_calls_them() {
        use crate::ops::session_move::{self, MoveDetail, PlannedMove};
        use crate::ops::{OpKind, transcript_compress};
        use crate::testkit::fingerprint::tree_fingerprint;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let spec = crate::testkit::synthetic_home::SessionSpec::aged(1, 30.0, 4000);
        crate::testkit::synthetic_home::build(&home, std::slice::from_ref(&spec), true).unwrap();
        std::fs::write(home.join("auth.json"), "{}").unwrap();
        std::fs::write(home.join("config.toml"), "model = \"x\"\n").unwrap();
        let store = crate::store::Store::open_for_write(&dir.path().join("store")).unwrap();
        let run = crate::ops::Run::begin(&store, "test", &[], &home, None).unwrap();
        let before = tree_fingerprint(&home);
        for name in ["state_5.sqlite", "auth.json", "config.toml"] {
            let src = home.join(name);
            let dst = home.join(ARCHIVED_SESSIONS_DIR).join(name);
            let moved = session_move::execute_batch(
                &run,
                vec![PlannedMove {
                    kind: OpKind::ArchiveSession,
                    src: src.clone(),
                    dst: dst.clone(),
                    detail: MoveDetail::default(),
                    reverts_op: None,
                    known_hash: None,
                }],
                None,
            );
            assert!(
                moved
                    .unwrap_err()
                    .to_string()
                    .contains("not a Codex transcript")
            );
            let file = crate::home::sessions::SessionFile::from_path(
                &src,
                crate::home::sessions::SessionLocation::Archived,
                &home.join(ARCHIVED_SESSIONS_DIR),
            )
            .unwrap();
            let plan = transcript_compress::plan_compress_in_place(
                &file,
                None,
                None,
                crate::zstd_stream::EncodeSettings::default(),
            );
            let recoded = transcript_compress::execute_batch(&run, vec![plan], None);
            assert!(
                recoded
                    .unwrap_err()
                    .to_string()
                    .contains("not a Codex transcript")
            );
        }
        assert_eq!(before, tree_fingerprint(&home));
        assert!(
            store
                .catalog
                .ops_in_state(crate::store::OpState::Prepared)
                .unwrap()
                .is_empty()
        );
    }
}
