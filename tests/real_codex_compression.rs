//! Against the real Codex CLI: transcripts codex-maint compressed (`.jsonl.zst`) are still
//! Codex's own. Each current Codex lists them as archived, reads every turn, unarchives them, and
//! its doctor finds the index and the files in agreement; undo gives back the exact home.
//! Codex 0.136, which cannot read them, is what the gate is for: a session it wrote
//! recently makes codex-maint refuse, and it indeed fails on a compressed transcript.

mod support;

use serde_json::Value;
use std::path::Path;
use support::codex_cli::{self, AppServer, assert_parity_ok};

fn turns(read: &Value) -> Vec<Value> {
    read["thread"]["turns"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn codex_lists_reads_and_unarchives_what_codex_maint_compressed() {
    codex_cli::on_each_current(
        "codex_lists_reads_and_unarchives_what_codex_maint_compressed",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server,
                sb,
                home,
                ids,
            } = codex_cli::real_home(codex, &["first task", "second task", "third task"]);
            // A session of today: the evidence that the Codex using this home reads .zst.
            let fresh = codex_cli::exec(&bin, &home, &sb.dir.path().join("work"), "fresh task");
            let mut turns_before = Vec::new();
            {
                let mut app = AppServer::start(&bin, &home);
                for id in &ids {
                    let read = app.read(id).unwrap_or_else(|e| panic!("read {id}: {e}"));
                    assert!(!turns(&read).is_empty(), "{read:#}");
                    turns_before.push(turns(&read));
                }
            }
            let before =
                codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions"));
            let rows_before = sb.thread_rows();

            let doc = sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
            let archived = doc["data"]["archived"].as_array().unwrap();
            assert_eq!(archived.len(), 3, "{doc:#}");
            for a in archived {
                assert!(
                    a["destination"].as_str().unwrap().ends_with(".jsonl.zst"),
                    "{a:#}"
                );
            }
            assert_parity_ok(&bin, &home, "archive --compress");
            {
                let mut app = AppServer::start(&bin, &home);
                let listed = app.list(true);
                let active = app.list(false);
                for (id, expected) in ids.iter().zip(&turns_before) {
                    assert!(
                        listed.contains(id),
                        "Codex lists {id} as archived: {listed:?}"
                    );
                    let read = app
                        .read(id)
                        .unwrap_or_else(|e| panic!("Codex reads compressed {id}: {e}"));
                    // Codex names a transcript by its plain path whichever form is on disk; on disk
                    // there is only the compressed one.
                    let named = read["thread"]["path"].as_str().unwrap_or_default();
                    assert!(named.contains("/archived_sessions/"), "{read:#}");
                    let plain = Path::new(named.strip_suffix(".zst").unwrap_or(named));
                    assert!(!plain.exists(), "{}", plain.display());
                    assert!(Path::new(&format!("{}.zst", plain.display())).is_file());
                    assert_eq!(&turns(&read), expected, "every turn of {id} reads the same");
                }
                assert!(active.contains(&fresh));
            }
            assert_eq!(sb.json(&["verify"]).0, 0);

            sb.ok_json(&["undo"]);
            assert_parity_ok(&bin, &home, "undo");
            let diffs = codex_maint::testkit::fingerprint::differences(
                &before,
                &codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions")),
            );
            assert!(
                diffs.is_empty(),
                "sessions differ after undo:\n{}",
                diffs.join("\n")
            );
            assert!(
                !home.join("archived_sessions").exists()
                    || std::fs::read_dir(home.join("archived_sessions"))
                        .unwrap()
                        .next()
                        .is_none()
            );
            assert_eq!(rows_before, sb.thread_rows(), "rows are back to the byte");
            {
                let mut app = AppServer::start(&bin, &home);
                let active = app.list(false);
                for id in &ids {
                    assert!(
                        active.contains(id),
                        "Codex lists {id} after undo: {active:?}"
                    );
                }
            }

            // Compressed again, then taken back by Codex itself.
            sb.ok_json(&["archive", &ids[0], "--compress"]);
            let out = codex_cli::codex(&bin, &home)
                .args(["unarchive", &ids[0]])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "codex unarchive of a compressed session: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_parity_ok(&bin, &home, "codex unarchive");
            {
                let mut app = AppServer::start(&bin, &home);
                assert!(app.list(false).contains(&ids[0]));
                let read = app.read(&ids[0]).expect("Codex reads what it unarchived");
                assert_eq!(turns(&read), turns_before[0]);
            }
            // Codex moved the file on its own: the user's change, reported as information.
            let (code, doc) = sb.json(&["verify"]);
            assert_eq!(code, 0, "{doc:#}");
            assert_eq!(
                doc["data"]["checked"]["taken_over_by_codex"]
                    .as_array()
                    .map(Vec::len),
                Some(1),
                "verify lists the session Codex unarchived as taken over: {doc:#}"
            );
            drop(server);
        },
    );
}

#[test]
fn codex_0_136_cannot_read_compressed_transcripts_and_the_gate_refuses_its_home() {
    let test = "codex_0_136_cannot_read_compressed_transcripts_and_the_gate_refuses_its_home";
    let Some(old) = codex_cli::require_version(test, "0.136.0") else {
        return;
    };
    codex_cli::on_each_current(test, |codex| {
        let bin = &codex.bin;
        let server = support::model_server::ModelServer::start();
        let sb = support::Sandbox::new();
        let (home, ids) = codex_cli::build_home(
            bin,
            &server.config_toml(),
            sb.dir.path(),
            &["first task", "second task"],
        );
        // A session of today by the current Codex: the gate opens, and codex-maint compresses.
        codex_cli::exec(bin, &home, &sb.dir.path().join("work"), "fresh task");
        sb.ok_json(&["archive", &ids[0], "--compress"]);
        assert_parity_ok(bin, &home, "archive --compress");

        // Codex 0.136 cannot read what 0.137 and later can.
        {
            let mut app = AppServer::start(&old, &home);
            let read = app.read(&ids[0]);
            let readable = read.as_ref().map(|r| !turns(r).is_empty()).unwrap_or(false);
            assert!(
                !readable,
                "Codex 0.136 read a compressed transcript: {read:?}"
            );
        }

        // `decompress` is the way back: its dry run changes nothing, then 0.136 reads the
        // session again; undone, it is compressed again; Codex's doctor agrees at each step.
        let everything = codex_maint::testkit::fingerprint::tree_fingerprint(&home);
        sb.ok_json(&["decompress", "--dry-run"]);
        assert!(
            codex_maint::testkit::fingerprint::differences(
                &everything,
                &codex_maint::testkit::fingerprint::tree_fingerprint(&home)
            )
            .is_empty(),
            "decompress --dry-run changes nothing, databases and their -wal/-shm included"
        );
        let back = sb.ok_json(&["decompress", "--yes"]);
        assert_eq!(
            back["data"]["decompressed"].as_array().unwrap().len(),
            1,
            "{back:#}"
        );
        assert_parity_ok(bin, &home, "decompress");
        let old_reads = |what: &str| {
            let mut app = AppServer::start(&old, &home);
            let read = app.read(&ids[0]);
            let readable = read.as_ref().map(|r| !turns(r).is_empty()).unwrap_or(false);
            assert!(readable, "Codex 0.136 reads the session {what}: {read:?}");
        };
        old_reads("once decompressed");
        sb.ok_json(&["undo"]);
        assert_parity_ok(bin, &home, "undo of decompress");
        assert_eq!(sb.json(&["verify"]).0, 0);
        sb.ok_json(&["decompress", "--yes"]);
        assert_parity_ok(bin, &home, "decompress again");
        old_reads("decompressed again");

        // Now 0.136 writes a session today: the gate names it and refuses.
        let by_old = codex_cli::exec(&old, &home, &sb.dir.path().join("work"), "old codex task");
        let before = codex_maint::testkit::fingerprint::tree_fingerprint(&home);
        let (code, doc) = sb.json(&["archive", &ids[1], "--compress"]);
        assert_eq!(code, 3, "{doc:#}");
        let message = support::error_message(&doc);
        assert!(message.contains("0.136.0"), "{message}");
        assert!(message.contains(&by_old), "names the transcript: {message}");
        let (code, doc) = sb.json(&["cleanup", "--only", "compress", "--dry-run"]);
        assert_eq!(code, 3, "{doc:#}");
        let diffs = codex_maint::testkit::fingerprint::differences(
            &before,
            &codex_maint::testkit::fingerprint::tree_fingerprint(&home),
        );
        assert!(
            diffs.is_empty(),
            "a refusal changes nothing:\n{}",
            diffs.join("\n")
        );
        let inspect = sb.ok_json(&["inspect"]);
        assert_eq!(inspect["data"]["compression"]["gate"]["allowed"], false);
        assert_parity_ok(bin, &home, "the refusals");
        drop(server);
    });
}

/// codex-maint holds zstd's match table to 2^20 entries for inputs over 256 KiB; the frame
/// it writes then must still be one Codex reads, turn for turn.
#[test]
fn codex_reads_a_transcript_compressed_above_the_match_table_cap() {
    // A prompt of about 520 KB, which Codex records in the transcript more than once.
    let long_prompt: String = (0..6_000)
        .map(|i| {
            format!(
                "step {i}: read src/module_{}.rs, check that fn handler_{} returns {} for input {}\n",
                i % 97,
                i * 7919 % 1_009,
                i * 31 % 257,
                i * 104_729 % 65_521
            )
        })
        .collect();
    codex_cli::on_each_current(
        "codex_reads_a_transcript_compressed_above_the_match_table_cap",
        |codex| {
            let codex_cli::RealHome {
                bin,
                server,
                sb,
                home,
                ids,
            } = codex_cli::real_home(codex, &[long_prompt.as_str()]);
            let id = &ids[0];
            let transcript = codex_cli::transcript_of(&home, id);
            let plain_size = std::fs::metadata(&transcript).unwrap().len();
            assert!(
                plain_size > 512 << 10,
                "the transcript must be where zstd alone would use a larger table: {plain_size} bytes"
            );
            // A session of today: the evidence that the Codex using this home reads .zst.
            codex_cli::exec(&bin, &home, &sb.dir.path().join("work"), "fresh task");
            let turns_before = {
                let mut app = AppServer::start(&bin, &home);
                turns(&app.read(id).unwrap_or_else(|e| panic!("read {id}: {e}")))
            };
            assert!(!turns_before.is_empty());
            let before =
                codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions"));

            sb.ok_json(&["archive", id, "--compress"]);
            let compressed = home.join("archived_sessions").join(format!(
                "{}.zst",
                transcript.file_name().unwrap().to_string_lossy()
            ));
            let stored_size = std::fs::metadata(&compressed).unwrap().len();
            assert!(
                stored_size < plain_size / 4,
                "{stored_size} of {plain_size}"
            );
            assert_parity_ok(&bin, &home, "archive --compress of a long transcript");
            {
                let mut app = AppServer::start(&bin, &home);
                let read = app
                    .read(id)
                    .unwrap_or_else(|e| panic!("Codex reads the compressed {id}: {e}"));
                assert_eq!(turns(&read), turns_before, "every turn reads the same");
            }
            assert_eq!(sb.json(&["verify"]).0, 0);

            sb.ok_json(&["undo"]);
            assert_parity_ok(&bin, &home, "undo");
            let diffs = codex_maint::testkit::fingerprint::differences(
                &before,
                &codex_maint::testkit::fingerprint::tree_fingerprint(&home.join("sessions")),
            );
            assert!(diffs.is_empty(), "after undo:\n{}", diffs.join("\n"));
            drop(server);
        },
    );
}
