//! One writer per Codex home, whatever its store: two codex-maint runs with different stores
//! on one home never act on it at once, so neither rolls back what the other made.

mod support;

use fs2::FileExt;
use std::path::Path;
use std::process::{Command, Output};
use support::*;

/// The binary against `sb`'s home with the store `store`, as `Sandbox::cmd` sets it up.
fn writer(sb: &Sandbox, store: &Path, args: &[&str], wait_ms: &str) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("codex-maint"));
    cmd.env("HOME", sb.dir.path())
        .env("CODEX_HOME", &sb.home)
        .env("CODEX_MAINT_STORE", store)
        .env_remove(codex_maint::failpoint::ENV_VAR)
        .env("CODEX_MAINT_LOCK_WAIT_MS", wait_ms)
        .arg("--home")
        .arg(&sb.home)
        .arg("--store")
        .arg(store)
        .arg("--json")
        .args(args);
    cmd
}

fn message(out: &Output) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    error_message(&doc).to_string()
}

#[test]
fn two_writers_with_different_stores_on_one_home_never_lose_a_transcript() {
    let mut refusals = 0;
    for round in 0..20 {
        let sb = Sandbox::with_sessions(&mixed_specs(24), true);
        let hashes = session_hashes(&sb.home);
        let stores = [sb.store.clone(), sb.dir.path().join("second-store")];
        let args = ["archive", "--older-than", "10d", "--compress", "--yes"];
        // Both started before either is waited for; no wait for the lock, so whichever
        // comes second while the first still writes is refused at once.
        let children: Vec<_> = stores
            .iter()
            .map(|store| {
                writer(&sb, store, &args, "0")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
        for (out, code) in outs.iter().zip(&codes) {
            match code {
                0 => {}
                3 => {
                    refusals += 1;
                    let said = message(out);
                    assert!(
                        said.contains("is changing the Codex home")
                            && said.contains("nothing was changed"),
                        "round {round}: the refusal does not say why: {said}"
                    );
                    assert!(
                        said.contains("process ") && said.contains("codex-maint"),
                        "round {round}: the refusal does not name the other writer: {said}"
                    );
                }
                other => panic!(
                    "round {round}: exit {other}: {}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        assert!(
            codes.contains(&0),
            "round {round}: neither writer ran: {codes:?}"
        );
        assert_sessions_whole_and_consistent(&sb.home, &hashes);
        for store in &stores {
            let out = writer(&sb, store, &["verify"], "0").output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {round}: verify of {}: {}",
                store.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    eprintln!("two writers on one home: {refusals} of 20 rounds overlapped and one refused");
    assert!(
        refusals > 0,
        "in 20 rounds the two writers never overlapped: the race was not tested"
    );
}

#[test]
fn a_home_whose_folder_another_process_has_locked_is_not_written_but_a_dry_run_works() {
    let sb = Sandbox::with_sessions(&mixed_specs(12), true);
    // A store with one run in it, so undo, recover, restore and decompress have work to do
    // (a writer with nothing to do opens nothing).
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    let home_before = sb.home_files();
    let store_before = codex_maint::testkit::fingerprint::tree_fingerprint(&sb.store);

    let folder = std::fs::File::open(&sb.home).unwrap();
    folder.lock_exclusive().unwrap();
    let me = format!("process {}", std::process::id());
    let writers: Vec<Vec<&str>> = vec![
        vec!["undo"],
        vec!["recover"],
        vec!["decompress", "--yes"],
        vec!["skill", "--install"],
        vec!["archive", "--older-than", "1d", "--yes", "--min-age", "0d"],
        vec!["restore", "1"],
    ];
    for args in &writers {
        let (code, doc) = sb.json(args);
        assert_eq!(code, 3, "{args:?} ran under another's lock: {doc:#}");
        let said = error_message(&doc);
        assert!(
            said.contains(&me) && said.contains(&sb.home.display().to_string()),
            "{args:?} does not name the holder and the home: {said}"
        );
    }
    assert!(
        codex_maint::testkit::fingerprint::differences(&home_before, &sb.home_files()).is_empty(),
        "a refused writer changed the home"
    );
    assert_eq!(
        codex_maint::testkit::fingerprint::tree_fingerprint(&sb.store),
        store_before,
        "a refused writer changed the store"
    );
    for dry in [
        vec![
            "archive",
            "--older-than",
            "1d",
            "--min-age",
            "0d",
            "--dry-run",
        ],
        vec!["undo", "--dry-run"],
    ] {
        let (code, doc) = sb.json(&dry);
        assert_eq!(code, 0, "{dry:?} needs no lock: {doc:#}");
    }
    assert_eq!(sb.home_files(), home_before, "a dry run changed the home");

    FileExt::unlock(&folder).unwrap();
    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 0, "undo once the lock is gone: {doc:#}");
}

/// The race of two stores, replayed by hand: a compression is stopped after writing its
/// new file, and another writer puts the very same compressed bytes at the destination
/// before it is renamed there. Equal bytes are not the op's file: its rollback must leave
/// that destination, or the other writer, removing the plain transcript next, loses it.
#[test]
fn a_rollback_leaves_a_destination_it_did_not_create_even_with_the_same_bytes() {
    let sb = Sandbox::with_sessions(&mixed_specs(6), true);
    let out = sb
        .cmd()
        .env(codex_maint::failpoint::ENV_VAR, "recode-encoded")
        .args(["archive", "--older-than", "10d", "--compress", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint did not stop the run");
    let archive = sb.home.join("archived_sessions");
    let prefix_len = codex_maint::fs_atomic::TEMP_PREFIX.len() + 33;
    let mut placed = Vec::new();
    for e in std::fs::read_dir(&archive).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if codex_maint::fs_atomic::is_temp_file_name(&name) {
            let dst = archive.join(&name[prefix_len..]);
            std::fs::copy(e.path(), &dst).unwrap();
            placed.push((dst, std::fs::read(e.path()).unwrap()));
        }
    }
    assert!(
        !placed.is_empty(),
        "no new file was written before the stop"
    );
    let (code, doc) = sb.json(&["recover"]);
    assert_ne!(code, 0, "both copies cannot be settled silently: {doc:#}");
    for (dst, bytes) in &placed {
        assert_eq!(
            std::fs::read(dst).ok().as_ref(),
            Some(bytes),
            "recovery removed {}, which it did not create",
            dst.display()
        );
    }
}
