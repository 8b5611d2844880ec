//! Prune collects the pack layer (issue 23): forgetting old backups frees pack bytes while
//! every kept backup still reads whole and the kept run undoes byte-exact; a pack more than
//! half unused is repacked and the old one goes; a prune killed anywhere (at each named
//! point of mark, condemn, repack and sweep, and at seeded moments) leaves a store that
//! verifies with every object still readable; dry runs change no byte; a retired session's
//! objects go only with `--include-retired`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use codex_maint::store::pack::{Chunker, ObjectId};
use codex_maint::testkit::fingerprint::{EntryState, tree_fingerprint};
use support::{Sandbox, mixed_specs, write_large_logs};

/// Fills `state_5.sqlite`'s table `pad` with `mb` MB of random bytes, replacing what it
/// held: pages no other backup shares.
fn pad(home: &Path, mb: usize) {
    let conn = rusqlite::Connection::open(home.join("state_5.sqlite")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS pad (b BLOB); DELETE FROM pad;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
         INSERT INTO pad SELECT randomblob(3000) FROM n;",
        mb * 1000 / 3
    ))
    .unwrap();
}

fn cleanup(sb: &Sandbox, only: &str) {
    let args = ["--only", only, "--large-log-mb", "1"];
    let plan = sb.ok_json(&[&["cleanup", "--dry-run"][..], &args[..]].concat());
    let id = plan["data"]["plan"]["id"].as_str().unwrap().to_string();
    sb.ok_json(&[&["cleanup", "--yes", "--plan", &id][..], &args[..]].concat());
}

/// Run 1 (logs) backs up a state database padded with 3 MB of its own; run 2 (sessions)
/// backs it up padded anew, so once run 1 is forgotten most of its pack is unused. An
/// object nothing names (a writer killed after its commit) sits in a pack of its own.
struct TwoBackups {
    sb: Sandbox,
    after_first: BTreeMap<String, EntryState>,
    rows_after_first: Vec<(String, String, i64, Option<i64>, i64)>,
    orphan: ObjectId,
}

fn two_backups() -> TwoBackups {
    let sb = Sandbox::with_sessions(&mixed_specs(12), true);
    write_large_logs(&sb.home);
    pad(&sb.home, 3);
    cleanup(&sb, "logs");
    let after_first = sb.home_files_except_databases();
    let rows_after_first = sb.thread_rows();
    pad(&sb.home, 3);
    cleanup(&sb, "sessions");
    let orphan = {
        let store = codex_maint::store::Store::open_for_write(&sb.store).unwrap();
        let mut writer = store.objects().writer().unwrap();
        let bytes: Vec<u8> = (0..200_000u32)
            .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
            .collect();
        let id = writer.put_bytes(&bytes, Chunker::Whole).unwrap();
        writer.commit().unwrap();
        id
    };
    TwoBackups {
        sb,
        after_first,
        rows_after_first,
        orphan,
    }
}

fn catalog(sb: &Sandbox) -> rusqlite::Connection {
    rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap()
}

fn count(sb: &Sandbox, sql: &str) -> i64 {
    catalog(sb).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn strings(sb: &Sandbox, sql: &str) -> BTreeSet<String> {
    let conn = catalog(sb);
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Pack files on disk, by id, with their bytes.
fn pack_files(store: &Path) -> BTreeMap<String, u64> {
    walkdir::WalkDir::new(store.join("packs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".pack")?.to_string();
            Some((id, e.metadata().unwrap().len()))
        })
        .collect()
}

fn verify_ok(sb: &Sandbox, when: &str) {
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{when}: verify: {doc:#}");
}

/// The backup objects of backups still recorded, each read back whole (by the pack
/// layer, which checks every chunk and the whole against their hashes).
fn kept_backup_objects_read(sb: &Sandbox, when: &str) -> usize {
    let catalog = codex_maint::store::open_read_only(&sb.store)
        .unwrap()
        .unwrap();
    let objects = codex_maint::store::pack::ObjectStore::new(&catalog, &sb.store);
    let rows: Vec<String> = {
        let mut stmt = catalog
            .connection()
            .prepare("SELECT o.object FROM backup_objects o JOIN backups b ON b.id = o.backup_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for id in &rows {
        let id: ObjectId = id.parse().unwrap();
        objects
            .read(&id)
            .unwrap_or_else(|e| panic!("{when}: backup object {id} cannot be read: {e:#}"));
    }
    rows.len()
}

fn run2_backup_objects(sb: &Sandbox) -> BTreeSet<String> {
    strings(
        sb,
        "SELECT o.object FROM backup_objects o JOIN backups b ON b.id = o.backup_id WHERE b.run_id = 2",
    )
}

/// After a finished prune: no condemned row, every pack file is a live pack row and back.
fn store_settled(sb: &Sandbox, when: &str) {
    assert_eq!(
        count(sb, "SELECT COUNT(*) FROM prune_condemned"),
        0,
        "{when}: the sweep is finished"
    );
    let live = strings(sb, "SELECT id FROM packs WHERE state = 'live'");
    let all = strings(sb, "SELECT id FROM packs");
    let files: BTreeSet<String> = pack_files(&sb.store).into_keys().collect();
    assert_eq!(live, all, "{when}: no condemned pack row is left");
    assert_eq!(files, live, "{when}: pack files and live pack rows agree");
}

fn forget_first(sb: &Sandbox) {
    sb.ok_json(&["forget", "--run", "1", "--yes", "--yes-delete-only-copies"]);
}

#[test]
fn forgetting_old_backups_frees_pack_bytes_repacks_and_the_kept_run_still_undoes() {
    let t = two_backups();
    let sb = &t.sb;
    let packs_before = pack_files(&sb.store);
    let bytes_before: u64 = packs_before.values().sum();
    let kept = run2_backup_objects(sb);
    assert!(
        !kept.is_empty(),
        "run 2's backup holds its databases as objects"
    );
    let chunks_before = count(sb, "SELECT COUNT(*) FROM chunks");

    forget_first(sb);

    let packs_after = pack_files(&sb.store);
    let bytes_after: u64 = packs_after.values().sum();
    assert!(
        bytes_after + 2_500_000 < bytes_before,
        "the 3 MB only run 1's backup held is freed: {bytes_before} -> {bytes_after}"
    );
    // Run 1's pack held run 2's unchanged pages too: it was repacked, so it is gone and a
    // new pack holds them.
    let gone: Vec<&String> = packs_before
        .keys()
        .filter(|id| !packs_after.contains_key(*id))
        .collect();
    let new: Vec<&String> = packs_after
        .keys()
        .filter(|id| !packs_before.contains_key(*id))
        .collect();
    assert!(
        gone.len() >= 2,
        "run 1's pack and the orphan's go: {gone:?}"
    );
    assert!(!new.is_empty(), "the repack wrote a pack: {packs_after:?}");
    assert!(count(sb, "SELECT COUNT(*) FROM chunks") < chunks_before);
    let orphan = t.orphan.to_hex();
    assert!(
        !strings(sb, "SELECT id FROM objects").contains(&orphan),
        "an object nothing names goes"
    );
    assert_eq!(run2_backup_objects(sb), kept, "run 2's backup is whole");
    assert_eq!(kept_backup_objects_read(sb, "after the prune"), kept.len());
    store_settled(sb, "after forget");
    verify_ok(sb, "after forget");

    // A second prune finds nothing more: what the first left is all in use.
    let doc = sb.ok_json(&["prune"]);
    assert_eq!(
        doc["data"]["pruned"]["removed"],
        serde_json::json!([]),
        "{doc:#}"
    );
    assert_eq!(pack_files(&sb.store), packs_after);

    sb.ok_json(&["undo"]);
    sb.assert_back_to(&t.after_first, &t.rows_after_first, "undo of run 2");
}

#[test]
fn prune_dry_run_reports_pack_bytes_and_changes_no_byte() {
    let t = two_backups();
    let sb = &t.sb;
    // The forget is recorded, its prune stopped before it marked anything.
    let status = sb
        .process()
        .args(["forget", "--run", "1", "--yes", "--yes-delete-only-copies"])
        .env(codex_maint::failpoint::ENV_VAR, "forget-recorded")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    let before = tree_fingerprint(&sb.store);
    let doc = sb.ok_json(&["prune", "--dry-run"]);
    let text = doc.to_string();
    let packs: u64 = doc["data"]["would_remove"]
        .as_array()
        .or_else(|| doc["data"]["items"].as_array())
        .unwrap_or_else(|| panic!("what prune would remove: {doc:#}"))
        .iter()
        .filter(|c| c["kind"] == "pack")
        .map(|c| c["bytes"].as_u64().unwrap())
        .sum();
    assert!(
        packs > 2_500_000,
        "pack bytes it would free: {packs} in {text}"
    );
    sb.ok_json(&["inspect"]);
    assert_eq!(
        tree_fingerprint(&sb.store),
        before,
        "a dry run changes no byte of the store"
    );
    sb.ok_json(&["prune"]);
    store_settled(sb, "after the real prune");
    verify_ok(sb, "after the real prune");
}

/// Prune stopped at each of its named points and at seeded moments: `verify` passes at
/// once and every kept backup's objects read whole; the next prune finishes, leaves pack
/// files and rows agreeing, and the kept run undoes byte-exact.
#[test]
fn a_prune_killed_anywhere_in_the_pack_layer_leaves_every_object_readable() {
    let seed = std::env::var("CODEX_MAINT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| codex_maint::clock::now_unix() as u64);
    eprintln!("CODEX_MAINT_KILL_SEED={seed}");
    let mut kills: Vec<(String, Option<u64>)> = [
        "prune-marked",
        "prune-decided",
        "pack-renamed",
        "prune-repack-written",
        "prune-repacked",
        "prune-swept@1",
        "prune-swept@2",
        "prune-swept@3",
    ]
    .iter()
    .map(|p| (p.to_string(), None))
    .collect();
    for i in 0..3u64 {
        let micros = (seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i.wrapping_mul(1442695040888963407))
            >> 33)
            % 400_000;
        kills.push(("sigkill".into(), Some(micros)));
    }
    let mut stopped = 0;
    for (point, after) in kills {
        let t = two_backups();
        let sb = &t.sb;
        let kept = run2_backup_objects(sb);
        let bytes_before: u64 = pack_files(&sb.store).values().sum();
        let mut cmd = sb.process();
        cmd.args(["forget", "--run", "1", "--yes", "--yes-delete-only-copies"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let status = support::run_and_stop(&mut cmd, &point, after);
        stopped += !status.success() as usize;
        let when = format!("right after the kill at {point} {after:?}");
        verify_ok(sb, &when);
        assert_eq!(run2_backup_objects(sb), kept, "{when}");
        kept_backup_objects_read(sb, &when);

        sb.ok_json(&["prune"]);
        let when = format!("after the prune that follows {point} {after:?}");
        verify_ok(sb, &when);
        store_settled(sb, &when);
        assert_eq!(run2_backup_objects(sb), kept, "{when}");
        kept_backup_objects_read(sb, &when);
        let bytes_after: u64 = pack_files(&sb.store).values().sum();
        if status.success() || after.is_none() {
            assert!(
                bytes_after + 2_500_000 < bytes_before,
                "{when}: the garbage is collected ({bytes_before} -> {bytes_after})"
            );
        }
        sb.ok_json(&["undo"]);
        sb.assert_back_to(
            &t.after_first,
            &t.rows_after_first,
            &format!("undo, {when}"),
        );
    }
    assert!(stopped >= 8, "every named point stops the run ({stopped})");
}

/// A retired session is the user's data: prune keeps its objects while its run is not
/// forgotten (and `forget` without `--include-retired` does not forget it); with the
/// flag its objects, their chunks and the pack that held them go.
#[test]
fn a_retired_sessions_objects_go_only_with_include_retired() {
    use codex_maint::ops::Run;
    use codex_maint::ops::session_retire::{self, lineage};
    use codex_maint::ops::thread_rows::ThreadDatabases;
    use codex_maint::testkit::synthetic_home::SessionSpec;

    let specs: Vec<SessionSpec> = (0..3).map(|i| SessionSpec::aged(i, 200.0, 3_000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let packs_before = pack_files(&sb.store);
    {
        let store = codex_maint::store::Store::open_for_write(&sb.store).unwrap();
        let run = Run::begin(&store, "test", &[], &sb.home, None).unwrap();
        let lineage = lineage::of_home(&sb.home).unwrap();
        let mut dbs = ThreadDatabases::open(&sb.home).unwrap();
        let one = vec![session_retire::plan_retire(
            &specs[0].path_in(&sb.home),
            &specs[0].id,
            None,
        )];
        let outcomes = session_retire::execute_batch(&run, one, &mut dbs, &lineage).unwrap();
        assert!(outcomes.iter().all(|o| o.done().is_some()), "{outcomes:?}");
        run.finish("done").unwrap();
    }
    let retired = strings(
        &sb,
        // A lean detail names the transcript's object `=hash_before`.
        "SELECT CASE json_extract(detail, '$.transcript.object') WHEN '=hash_before' THEN hash_before
                ELSE json_extract(detail, '$.transcript.object') END FROM ops WHERE kind = 'retire_session'
         UNION SELECT json_extract(detail, '$.rows_object') FROM ops WHERE kind = 'retire_session'",
    );
    assert_eq!(retired.len(), 2, "{retired:?}");
    let retire_packs: Vec<String> = pack_files(&sb.store)
        .into_keys()
        .filter(|id| !packs_before.contains_key(id))
        .collect();
    assert!(!retire_packs.is_empty());
    let run = count(
        &sb,
        "SELECT MAX(run_id) FROM ops WHERE kind = 'retire_session'",
    )
    .to_string();

    let doc = sb.ok_json(&["forget", "--run", &run, "--yes", "--yes-delete-only-copies"]);
    assert!(doc.to_string().contains("--include-retired"), "{doc:#}");
    sb.ok_json(&["prune"]);
    let objects = strings(&sb, "SELECT id FROM objects");

    assert!(
        retired.is_subset(&objects),
        "prune keeps a retired session's objects"
    );
    for id in &retire_packs {
        assert!(pack_files(&sb.store).contains_key(id), "its pack stays");
    }
    verify_ok(&sb, "after prune without the flag");

    sb.ok_json(&["forget", "--run", &run, "--yes", "--include-retired"]);
    let objects = strings(&sb, "SELECT id FROM objects");
    assert!(
        retired.is_disjoint(&objects),
        "with --include-retired its objects go: {objects:?}"
    );
    let files = pack_files(&sb.store);
    for id in &retire_packs {
        assert!(!files.contains_key(id), "the pack only it used goes");
    }
    assert_eq!(
        count(&sb, "SELECT COUNT(*) FROM chunks"),
        0,
        "no chunk is left unused"
    );
    store_settled(&sb, "after forget --include-retired");
    verify_ok(&sb, "after forget --include-retired");
}
