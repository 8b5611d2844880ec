//! Against the real Codex CLI (0.169 and 0.171): Codex resuming a session while
//! codex-maint compresses it, and Codex's own unarchive, resume and delete after a run.
//! Whichever way the race goes, the new turn is in the thread's final transcript, Codex's
//! doctor finds files and index in agreement, and `thread/read` returns the turn; what
//! Codex itself changed is the user's, which verify reports as information and undo leaves.

mod support;

use codex_maint::failpoint::{ACTION_POINT_VAR, ACTION_RUN_VAR};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::Sandbox;
use support::codex_cli::{self, AppServer, assert_parity_ok};
use support::model_server::ModelServer;

use codex_maint::testkit::CURRENT_CODEX_VERSIONS as VERSIONS;

struct Home {
    bin: PathBuf,
    _server: ModelServer,
    sb: Sandbox,
    home: PathBuf,
    work: PathBuf,
    ids: Vec<String>,
}

fn home_for(test: &str, version: &str, sessions: usize) -> Option<Home> {
    let bin = codex_cli::require_version(test, version)?;
    let server = ModelServer::start();
    let sb = Sandbox::new();
    let prompts: Vec<String> = (0..sessions).map(|i| format!("task number {i}")).collect();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let (home, ids) = codex_cli::build_home(&bin, &server.config_toml(), sb.dir.path(), &prompts);
    let work = sb.dir.path().join("work");
    // A session of today: the evidence that the Codex using this home reads `.zst`.
    codex_cli::exec(&bin, &home, &work, "fresh task");
    Some(Home {
        bin,
        _server: server,
        sb,
        home,
        work,
        ids,
    })
}

fn resume(h: &Home, id: &str, prompt: &str) -> Command {
    let mut cmd = codex_cli::codex(&h.bin, &h.home);
    cmd.current_dir(&h.work)
        .args(["exec", "--skip-git-repo-check", "resume", id, prompt])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn plain_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    if path.extension().is_some_and(|e| e == "zst") {
        String::from_utf8_lossy(&zstd::decode_all(&bytes[..]).unwrap_or_default()).into_owned()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The file the thread's row names (or its compressed twin), decoded.
fn row_transcript(home: &Path, id: &str) -> String {
    let conn = rusqlite::Connection::open(home.join("state_5.sqlite")).unwrap();
    let named: String = conn
        .query_row(
            "SELECT rollout_path FROM threads WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let named = PathBuf::from(named);
    let twin = PathBuf::from(format!("{}.zst", named.display()));
    let plain = PathBuf::from(named.to_string_lossy().trim_end_matches(".zst").to_string());
    [named, twin, plain]
        .iter()
        .find(|p| p.is_file())
        .map(|p| plain_text(p))
        .unwrap_or_else(|| panic!("the row of {id} names no existing file"))
}

fn assert_turn_kept(h: &Home, id: &str, marker: &str, when: &str) {
    assert!(
        row_transcript(&h.home, id).contains(marker),
        "{when}: the new turn is in the transcript the row names"
    );
    assert_parity_ok(&h.bin, &h.home, when);
    let mut app = AppServer::start(&h.bin, &h.home);
    let read: Value = app
        .read(id)
        .unwrap_or_else(|e| panic!("{when}: thread/read {id}: {e}"));
    assert!(
        read["thread"]["turns"].to_string().contains(marker),
        "{when}: thread/read returns the new turn"
    );
}

fn archive_compress(h: &Home, action: Option<&str>) -> std::process::Output {
    let mut cmd = h.sb.cmd();
    if let Some(action) = action {
        cmd.env(ACTION_POINT_VAR, "before-source-removed")
            .env(ACTION_RUN_VAR, action);
    }
    cmd.args([
        "--json",
        "archive",
        "--older-than",
        "10d",
        "--compress",
        "--yes",
    ])
    .output()
    .unwrap()
}

fn after_the_race(h: &Home, id: &str, marker: &str, when: &str) {
    assert_turn_kept(h, id, marker, when);
    let (code, doc) = h.sb.json(&["verify"]);
    assert_eq!(code, 0, "{when}: verify: {doc:#}");
    let (code, doc) = h.sb.json(&["undo"]);
    assert_eq!(code, 0, "{when}: undo: {doc:#}");
    assert_turn_kept(h, id, marker, &format!("{when}, then undo"));
}

/// Deterministic: Codex resumes the thread after its checks for running Codex passed, at
/// two instants: once the transcript is encoded (the row still names the plain file, so
/// Codex appends to it) and right before the plain file would be removed (the row already
/// names the archive, so Codex refuses to resume it, or, if it resumed, keeps its turn).
#[test]
fn a_resume_while_the_transcript_is_compressed_keeps_its_turn() {
    for version in VERSIONS {
        for point in ["source-encoded", "before-source-removed"] {
            let Some(h) = home_for("a_resume_while_the_transcript_is_compressed", version, 2)
            else {
                break;
            };
            let id = h.ids[0].clone();
            let marker = format!("resumed-at-{point}-{}", version.replace('.', "-"));
            let exit_file = h.sb.dir.path().join("resume.exit");
            let resume_cmd = format!(
                "case \"$CODEX_MAINT_ACTION_PATH\" in *{id}*) cd '{}' && CODEX_HOME='{}' RUST_LOG=error '{}' exec --skip-git-repo-check resume {id} '{marker}' </dev/null >/dev/null 2>&1; echo $? > '{}';; esac",
                h.work.display(),
                h.home.display(),
                h.bin.display(),
                exit_file.display()
            );
            let mut cmd = h.sb.cmd();
            let out = cmd
                .env(ACTION_POINT_VAR, point)
                .env(ACTION_RUN_VAR, &resume_cmd)
                .args([
                    "--json",
                    "archive",
                    "--older-than",
                    "10d",
                    "--compress",
                    "--yes",
                ])
                .output()
                .unwrap();
            let when = format!("{version}, resume at {point}");
            assert!(
                out.status.success(),
                "{when}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            let resumed = std::fs::read_to_string(&exit_file).unwrap();
            if point == "source-encoded" {
                assert_eq!(resumed.trim(), "0", "{when}: Codex resumed the thread");
                assert_turn_kept(&h, &id, &marker, &when);
                assert!(
                    String::from_utf8_lossy(&out.stdout).contains("left as Codex wrote it"),
                    "{when}: the report says the item was left to Codex"
                );
            }
            if resumed.trim() == "0" {
                after_the_race(&h, &id, &marker, &when);
            } else {
                let (code, doc) = h.sb.json(&["verify"]);
                assert_eq!(code, 0, "{when}: verify: {doc:#}");
                assert_parity_ok(&h.bin, &h.home, &when);
            }
        }
    }
}

/// Both started together, several times with shifted starts, so either can come first.
/// An archive that saw Codex running refuses (exit 3) and is run again after it.
#[test]
fn a_resume_racing_archive_compress_keeps_its_turn_whichever_wins() {
    for version in VERSIONS {
        for (k, delay_ms) in [0u64, 250, 300, 350].into_iter().enumerate() {
            let Some(h) = home_for("a_resume_racing_archive_compress", version, 3) else {
                break;
            };
            let id = h.ids[k % 3].clone();
            let marker = format!("raced-{}-{k}", version.replace('.', "-"));
            let (archived, resumed) = std::thread::scope(|scope| {
                let archiving = scope.spawn(|| archive_compress(&h, None));
                std::thread::sleep(Duration::from_millis(delay_ms));
                let resumed = resume(&h, &id, &marker).output().unwrap();
                (archiving.join().unwrap(), resumed)
            });
            let when = format!("{version}, race {k}");
            // Which way the race went, for whoever reads the test's output.
            eprintln!(
                "{when}: archive exit {:?}, resume exit {:?}, left to Codex: {}",
                archived.status.code(),
                resumed.status.code(),
                String::from_utf8_lossy(&archived.stdout).contains("left as Codex wrote it")
            );
            match archived.status.code() {
                Some(0) => {}
                Some(3) => {
                    let again = archive_compress(&h, None);
                    assert!(again.status.success(), "{when}: archive again");
                }
                other => panic!(
                    "{when}: archive exit {other:?}: {}{}",
                    String::from_utf8_lossy(&archived.stdout),
                    String::from_utf8_lossy(&archived.stderr)
                ),
            }
            if !resumed.status.success() {
                // The archive came first: Codex refuses to resume an archived session, or
                // finds the file it looked up gone before it wrote; either way it wrote no
                // turn, so there is none to keep.
                let said = String::from_utf8_lossy(&resumed.stderr);
                assert!(
                    said.contains("is archived") || said.contains("No such file"),
                    "{when}: codex exec resume: {}",
                    String::from_utf8_lossy(&resumed.stderr)
                );
                assert_eq!(h.sb.json(&["verify"]).0, 0, "{when}: verify");
                assert_parity_ok(&h.bin, &h.home, &when);
                continue;
            }
            after_the_race(&h, &id, &marker, &when);
        }
    }
}

/// Codex unarchives and resumes one session codex-maint archived and compressed, and
/// deletes another: both are taken over by Codex; undo takes back the third.
#[test]
fn codex_unarchive_resume_and_delete_after_a_run_are_the_users() {
    for version in VERSIONS {
        let Some(h) = home_for("codex_unarchive_resume_and_delete_after_a_run", version, 3) else {
            continue;
        };
        h.sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
        let run = |args: &[&str]| {
            let out = codex_cli::codex(&h.bin, &h.home)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{version}: codex {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["unarchive", &h.ids[0]]);
        let marker = format!("after-unarchive-{}", version.replace('.', "-"));
        let out = resume(&h, &h.ids[0], &marker).output().unwrap();
        assert!(out.status.success(), "{version}: resume");
        run(&["delete", "--force", &h.ids[1]]);
        assert_parity_ok(&h.bin, &h.home, "codex's own changes");

        let (code, doc) = h.sb.json(&["verify"]);
        assert_eq!(code, 0, "{version}: verify: {doc:#}");
        let taken = doc["data"]["checked"]["taken_over_by_codex"].to_string();
        assert!(
            taken.contains(&h.ids[0]) && taken.contains(&h.ids[1]),
            "{version}: both listed as taken over by Codex: {doc:#}"
        );
        let (code, doc) = h.sb.json(&["undo"]);
        assert_eq!(code, 0, "{version}: undo: {doc:#}");
        assert!(
            doc.to_string().contains("taken over by Codex"),
            "{version}: undo lists what it left: {doc:#}"
        );
        assert_parity_ok(&h.bin, &h.home, "undo of the rest");
        codex_cli::assert_listed(
            &h.bin,
            &h.home,
            &[h.ids[0].clone(), h.ids[2].clone()],
            &[],
            "undo",
        );
        assert_turn_kept(&h, &h.ids[0], &marker, &format!("{version}, after undo"));
    }
}
