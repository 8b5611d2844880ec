//! Compressed transcripts (`.jsonl.zst`): archive --compress, cleanup's `compress`, the way
//! back (`decompress`), undo to the byte, the gate on old Codex versions, a crash at every
//! step, and `.zst` files seen as transcripts everywhere.

mod support;

use codex_maint::testkit::fingerprint::{differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use std::path::{Path, PathBuf};
use support::*;

fn zst_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl.zst"))
        .map(|e| e.path().to_path_buf())
        .collect()
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".codex-maint-tmp-")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

fn decoded(path: &Path) -> Vec<u8> {
    zstd::stream::decode_all(std::fs::File::open(path).unwrap()).unwrap()
}

/// Every `.jsonl` of `before` (by file name) is, in `sb`'s home now, a `.jsonl.zst` that
/// decodes to the same bytes, or still the same plain file.
fn assert_same_transcripts(before: &std::collections::BTreeMap<String, Vec<u8>>, home: &Path) {
    let now = plain_contents(home);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>(),
        "the same sessions are there"
    );
    for (name, bytes) in before {
        assert!(now[name] == *bytes, "{name} decodes to other bytes");
    }
}

/// File name (without `.zst`) -> plain bytes, for every transcript in the home.
fn plain_contents(home: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(home)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(plain) = name.strip_suffix(".zst") {
                Some((plain.to_string(), decoded(e.path())))
            } else if name.ends_with(".jsonl") && name.starts_with("rollout-") {
                Some((name, std::fs::read(e.path()).unwrap()))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn archive_compress_then_undo_gives_back_every_byte_mode_mtime_and_row() {
    let sb = Sandbox::with_sessions(&mixed_specs(24), true);
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();
    let plain_before = plain_contents(&sb.home);

    let everything_before = tree_fingerprint(&sb.home);
    let dry = sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--dry-run"]);
    assert!(
        differences(&everything_before, &tree_fingerprint(&sb.home)).is_empty(),
        "a dry run changes nothing, databases and their -wal/-shm included"
    );
    assert!(!sb.store.exists(), "a dry run creates no store");

    let doc = sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    let archived = doc["data"]["archived"].as_array().unwrap();
    assert!(archived.len() > 10, "{doc:#}");
    assert_eq!(
        archived.len(),
        dry["data"]["candidates"].as_array().unwrap().len(),
        "the run does what its dry run said"
    );
    for a in archived {
        let dst = Path::new(a["destination"].as_str().unwrap());
        assert!(dst.to_string_lossy().ends_with(".jsonl.zst"), "{dst:?}");
        assert_eq!(dst.parent().unwrap(), sb.home.join("archived_sessions"));
        let src = Path::new(a["path"].as_str().unwrap());
        assert!(!src.exists());
        let before = files_before
            .get(&src.strip_prefix(&sb.home).unwrap().display().to_string())
            .unwrap();
        let meta = std::fs::metadata(dst).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o7777, before.mode & 0o7777);
        let mtime_ns = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert_eq!(
            mtime_ns, before.mtime_ns,
            "the compressed file keeps the transcript's mtime"
        );
    }
    assert_eq!(zst_files(&sb.home).len(), archived.len());
    assert_same_transcripts(&plain_before, &sb.home);
    for r in sb.thread_rows().iter().filter(|r| r.2 == 1) {
        assert!(
            r.1.ends_with(".jsonl.zst") && r.1.contains("/archived_sessions/"),
            "{r:?}"
        );
        assert!(Path::new(&r.1).is_file(), "{r:?}");
    }
    let (code, verify) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{verify:#}");
    assert!(temp_files(&sb.home).is_empty());

    sb.ok_json(&["undo"]);
    sb.assert_back_to(&files_before, &rows_before, "undo");
    assert_eq!(sb.json(&["verify"]).0, 0);
}

#[test]
fn cleanup_compresses_idle_archived_transcripts_and_undo_restores_them() {
    let sb = Sandbox::with_sessions(&mixed_specs(30), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();
    let plain_before = plain_contents(&sb.home);
    let archived_bytes: u64 = std::fs::read_dir(sb.home.join("archived_sessions"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();

    let inspect = sb.ok_json(&["inspect"]);
    let survey = &inspect["data"]["compression"];
    assert_eq!(survey["gate"]["allowed"], true, "{survey:#}");
    let estimate = &survey["estimate"];
    assert!(
        estimate["sampled_files"].as_u64().unwrap() > 0,
        "{survey:#}"
    );
    assert!(
        estimate["method"].as_str().unwrap().contains("measured"),
        "inspect says how it estimated: {survey:#}"
    );
    let freed = estimate["estimated_freed_bytes"].as_u64().unwrap();
    assert!(freed > 0 && freed < archived_bytes, "{survey:#}");
    assert!(
        texts(&inspect["sections"][1]["items"])
            .iter()
            .any(|p| p.contains("cleanup --dry-run --only compress")),
        "inspect proposes it: {inspect:#}"
    );

    let everything_before = tree_fingerprint(&sb.home);
    let plan = sb.ok_json(&["cleanup", "--only", "compress", "--dry-run"]);
    assert!(
        differences(&everything_before, &tree_fingerprint(&sb.home)).is_empty(),
        "a dry run changes nothing, databases and their -wal/-shm included"
    );
    assert_eq!(
        plan["data"]["compression_gate"]["allowed"], true,
        "{plan:#}"
    );
    let actions = plan["data"]["plan"]["actions"].as_array().unwrap();
    assert!(!actions.is_empty(), "{plan:#}");
    assert_eq!(
        actions.len() as u64,
        survey["candidates"]["count"].as_u64().unwrap(),
        "inspect and cleanup agree on the candidates"
    );
    assert!(actions.iter().all(|a| a["kind"] == "compress_session"));
    let id = plan["data"]["plan"]["id"].as_str().unwrap();

    let done = sb.ok_json(&["cleanup", "--yes", "--plan", id]);
    assert_eq!(
        done["data"]["done"].as_array().unwrap().len(),
        actions.len(),
        "{done:#}"
    );
    assert!(
        done["data"]["verification_problems"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let archived_after: u64 = std::fs::read_dir(sb.home.join("archived_sessions"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        archived_after * 2 < archived_bytes,
        "most of the archived bytes are freed: {archived_bytes} -> {archived_after}"
    );
    assert_same_transcripts(&plain_before, &sb.home);
    assert_eq!(sb.json(&["verify"]).0, 0);

    sb.ok_json(&["undo"]);
    sb.assert_back_to(&files_before, &rows_before, "undo");
}

#[test]
fn decompress_turns_every_compressed_transcript_back_and_is_undoable() {
    let sb = Sandbox::with_sessions(&mixed_specs(16), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    let compressed_home = sb.home_files_except_databases();
    let rows_compressed = sb.thread_rows();
    let plain_before = plain_contents(&sb.home);
    assert!(!zst_files(&sb.home).is_empty());

    let everything_before = tree_fingerprint(&sb.home);
    let dry = sb.ok_json(&["decompress", "--dry-run"]);
    assert!(differences(&everything_before, &tree_fingerprint(&sb.home)).is_empty());
    assert!(differences(&compressed_home, &sb.home_files_except_databases()).is_empty());
    assert_eq!(
        dry["data"]["candidates"].as_array().unwrap().len(),
        zst_files(&sb.home).len()
    );

    sb.ok_json(&["decompress", "--yes"]);
    assert!(zst_files(&sb.home).is_empty());
    assert_same_transcripts(&plain_before, &sb.home);
    for r in sb.thread_rows() {
        assert!(r.1.ends_with(".jsonl"), "{r:?}");
        assert!(Path::new(&r.1).is_file(), "{r:?}");
    }
    assert_eq!(sb.json(&["verify"]).0, 0);

    sb.ok_json(&["undo"]);
    assert_same_transcripts(&plain_before, &sb.home);
    assert_eq!(rows_compressed, sb.thread_rows());
    assert_eq!(
        zst_files(&sb.home).len(),
        dry["data"]["candidates"].as_array().unwrap().len()
    );
}

#[test]
fn the_gate_refuses_when_a_recent_transcript_was_written_by_codex_older_than_0_137() {
    let specs = mixed_specs(12);
    let sb = Sandbox::with_sessions(&specs, true);
    // A session written three days ago by Codex 0.136.
    let recent = &specs[0];
    let path = recent.path_in(&sb.home);
    let text = std::fs::read_to_string(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(
        &path,
        text.replacen(
            "\"cli_version\":\"0.169.0\"",
            "\"cli_version\":\"0.136.0\"",
            1,
        ),
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let before = sb.home_files();

    let (code, doc) = sb.json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    assert_eq!(code, 3, "{doc:#}");
    let message = error_message(&doc);
    assert!(message.contains("0.136.0"), "{message}");
    assert!(
        message.contains(&recent.file_name()),
        "names where: {message}"
    );
    let (code, doc) = sb.json(&["cleanup", "--only", "compress", "--dry-run"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(error_message(&doc).contains("0.136.0"));
    assert!(differences(&before, &sb.home_files()).is_empty());
    assert!(
        !sb.store.join("catalog.sqlite").exists()
            || sb.json(&["log"]).1["data"]["runs"]
                .as_array()
                .is_none_or(|r| r.is_empty())
    );

    let inspect = sb.ok_json(&["inspect"]);
    let gate = &inspect["data"]["compression"]["gate"];
    assert_eq!(gate["allowed"], false, "{inspect:#}");
    assert!(
        gate["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["version"] == "0.136.0" && e["source"] == "recent_transcript"),
        "{gate:#}"
    );
    // What compression would free is shown, but neither counted nor proposed.
    let frees = &inspect["data"]["frees"];
    assert_eq!(frees["compress"]["allowed"], false);
    assert!(frees["compress"]["estimated_frees"].as_u64().unwrap() > 0);
    assert_eq!(frees["cleanup_total"], frees["logs_and_releases"]["frees"]);
    assert_eq!(
        frees["next_command"], "codex-maint cleanup --dry-run --only sessions",
        "{frees:#}"
    );
    assert!(
        texts(&inspect["sections"][6]["items"])
            .iter()
            .any(|r| r.contains("could be compressed, but not now")),
        "{inspect:#}"
    );
}

#[test]
fn compressed_transcripts_are_sessions_to_inspect_archive_and_handoff() {
    let specs = mixed_specs(6);
    let sb = Sandbox::with_sessions(&specs, false);
    // As Codex leaves one it unarchived: compressed, in its dated folder.
    let old = &specs[5];
    let plain = old.path_in(&sb.home);
    let packed = PathBuf::from(format!("{}.zst", plain.display()));
    let bytes = std::fs::read(&plain).unwrap();
    std::fs::write(&packed, zstd::stream::encode_all(&bytes[..], 3).unwrap()).unwrap();
    let mtime = std::fs::metadata(&plain).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&packed)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::remove_file(&plain).unwrap();

    let inspect = sb.ok_json(&["inspect"]);
    let active = &inspect["data"]["sessions"]["active"];
    assert_eq!(active["count"], 6, "{inspect:#}");
    assert_eq!(active["compressed"], 1, "{inspect:#}");
    assert_eq!(
        active["uncompressed_bytes"].as_u64().unwrap() - active["bytes"].as_u64().unwrap(),
        bytes.len() as u64 - std::fs::metadata(&packed).unwrap().len()
    );

    let handoff = sb.ok_json(&["handoff", &old.id]);
    let doc_path = handoff["data"]["handoffs"][0]["path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(Path::new(&doc_path).is_file(), "{handoff:#}");
    assert!(
        std::fs::read_to_string(&doc_path)
            .unwrap()
            .contains("## Restart Prompt")
    );

    let archived = sb.ok_json(&["archive", &old.id]);
    let dst = archived["data"]["archived"][0]["destination"]
        .as_str()
        .unwrap();
    assert!(
        dst.ends_with(".jsonl.zst"),
        "a compressed transcript archives as .zst: {dst}"
    );
    assert_eq!(
        std::fs::read(dst).unwrap(),
        zstd::stream::encode_all(&bytes[..], 3).unwrap()
    );
    assert_eq!(sb.json(&["verify"]).0, 0);
    sb.ok_json(&["undo"]);
    assert!(packed.is_file());
}

#[test]
fn a_plain_file_and_its_compressed_twin_are_both_kept_and_reported() {
    let specs = mixed_specs(6);
    let sb = Sandbox::with_sessions(&specs, true);
    let old = &specs[5];
    let plain = old.path_in(&sb.home);
    let packed = PathBuf::from(format!("{}.zst", plain.display()));
    std::fs::write(
        &packed,
        zstd::stream::encode_all(&std::fs::read(&plain).unwrap()[..], 3).unwrap(),
    )
    .unwrap();
    let before = sb.home_files_except_databases();

    let (code, doc) = sb.json(&["archive", &old.id]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        doc["error"]["details"].to_string().contains("ambiguous"),
        "{doc:#}"
    );
    let policy_run = sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
    assert!(
        policy_run["data"]["protected"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["path"].as_str().unwrap().contains(&old.id))
            .count()
            == 2,
        "both copies are kept: {policy_run:#}"
    );
    assert!(plain.is_file() && packed.is_file());
    sb.ok_json(&["undo"]);
    assert!(differences(&before, &sb.home_files_except_databases()).is_empty());
}

/// Every step of a compression and of its undo, crashed: recovery leaves each transcript
/// whole and exactly once (plain or compressed), its row matching, no temporary file, and
/// undo then gives back the original home.
#[test]
fn a_crash_at_every_step_of_compress_and_its_undo_recovers() {
    let points = [
        "op-prepared",
        "recode-encoded",
        "recode-renamed",
        "thread-row-updated",
        "recode-source-removed",
        "op-applied",
        "run-finishing",
    ];
    for point in points {
        for phase in ["compress", "undo"] {
            let sb = Sandbox::with_sessions(&mixed_specs(14), true);
            let files_before = sb.home_files_except_databases();
            let rows_before = sb.thread_rows();
            let plain_before = plain_contents(&sb.home);
            if phase == "undo" {
                sb.ok_json(&["archive", "--older-than", "10d", "--compress", "--yes"]);
            }
            let args: &[&str] = if phase == "compress" {
                &["archive", "--older-than", "10d", "--compress", "--yes"]
            } else {
                &["undo"]
            };
            // Per-file points fire once per transcript (the second pass is mid-batch), the
            // others once per batch, and compress and undo each run one batch here.
            let per_file = point == "recode-renamed" || point == "recode-source-removed";
            let nth = if per_file { 2 } else { 1 };
            let out = sb
                .cmd()
                .env(codex_maint::failpoint::ENV_VAR, format!("{point}@{nth}"))
                .arg("--json")
                .args(args)
                .output()
                .unwrap();
            if point != "run-finishing" && point != "op-applied" {
                assert!(
                    !out.status.success(),
                    "{phase} at {point} should have crashed"
                );
            }
            let recovered = sb.ok_json(&["recover"]);
            assert!(
                !recovered.to_string().contains("stuck"),
                "{phase}/{point}: {recovered:#}"
            );
            assert!(
                temp_files(&sb.home).is_empty(),
                "{phase}/{point}: temporary files left"
            );
            assert_same_transcripts(&plain_before, &sb.home);
            assert_eq!(sb.json(&["verify"]).0, 0, "{phase}/{point}");
            // Undo everything still in force, newest first, until nothing is left.
            for _ in 0..3 {
                sb.ok_json(&["undo"]);
            }
            sb.assert_back_to(&files_before, &rows_before, &format!("{phase}/{point}"));
        }
    }
}

#[test]
fn a_large_transcript_is_compressed_with_workers_and_round_trips() {
    let spec = SessionSpec::aged(40, 40.0, 40 << 20);
    // A recent session is the evidence that a Codex which reads .zst uses this home.
    let recent = SessionSpec::aged(41, 2.0, 10_000);
    let sb = Sandbox::with_sessions(&[spec.clone(), recent], true);
    let plain_before = plain_contents(&sb.home);
    let files_before = sb.home_files_except_databases();
    sb.ok_json(&["archive", &spec.id, "--compress"]);
    assert_same_transcripts(&plain_before, &sb.home);
    assert_eq!(sb.json(&["verify"]).0, 0);
    sb.ok_json(&["undo"]);
    assert!(differences(&files_before, &sb.home_files_except_databases()).is_empty());
}

#[test]
fn restore_by_session_takes_a_compressed_session_back_one_move_at_a_time() {
    let specs = mixed_specs(12);
    let sb = Sandbox::with_sessions(&specs, true);
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();
    let old = &specs[6];
    let plain = old.path_in(&sb.home);

    sb.ok_json(&["archive", &old.id, "--compress"]);
    assert!(!plain.exists());
    sb.ok_json(&["restore", &old.id]);
    assert!(
        plain.is_file(),
        "archive --compress is one move: one restore takes it back"
    );
    assert!(differences(&files_before, &sb.home_files_except_databases()).is_empty());
    assert_eq!(rows_before, sb.thread_rows());

    // Archived plain, then compressed where it lies: two moves, two restores.
    let archived_plain = archive_then_compress_where_it_lies(&sb, old);
    sb.ok_json(&["restore", &old.id]);
    assert!(
        archived_plain.is_file(),
        "first the compression is taken back"
    );
    sb.ok_json(&["restore", &old.id]);
    assert!(plain.is_file(), "then the archive");
    assert_eq!(rows_before, sb.thread_rows());
}

#[test]
fn an_undo_after_the_undo_of_a_compression_takes_back_the_archive_it_compressed() {
    let specs = mixed_specs(12);
    let sb = Sandbox::with_sessions(&specs, true);
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();
    let old = &specs[6];
    let plain = old.path_in(&sb.home);

    let archived_plain = archive_then_compress_where_it_lies(&sb, old);

    sb.ok_json(&["undo"]);
    assert!(
        archived_plain.is_file(),
        "the first undo takes back the compression"
    );
    assert_eq!(sb.json(&["verify"]).0, 0);
    let second = sb.ok_json(&["undo"]);
    assert!(
        plain.is_file(),
        "the second undo takes back the archive: {second:#}"
    );
    assert!(differences(&files_before, &sb.home_files_except_databases()).is_empty());
    assert_eq!(rows_before, sb.thread_rows());
    assert_eq!(sb.json(&["verify"]).0, 0);
}

/// `archive` of one session, then a reviewed `cleanup --only compress` that compresses it
/// in `archived_sessions/`; the plain archived path, which no longer exists.
fn archive_then_compress_where_it_lies(sb: &Sandbox, spec: &SessionSpec) -> PathBuf {
    sb.ok_json(&["archive", &spec.id]);
    let plan = sb.ok_json(&["cleanup", "--only", "compress", "--dry-run"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap();
    sb.ok_json(&["cleanup", "--yes", "--plan", id]);
    let archived_plain = sb.home.join("archived_sessions").join(spec.file_name());
    assert!(!archived_plain.exists(), "{plan:#}");
    archived_plain
}
