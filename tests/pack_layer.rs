//! The pack layer (docs/store-format.md "Packs and chunks"): objects round trip across
//! chunkers and packs, equal bytes are stored once, damage is found by `read` and by
//! `verify`, a newer pack format is refused, a crash leaves no row naming a missing file,
//! and the dictionary is trained when due and named by the packs that use it.

use std::path::{Path, PathBuf};

use codex_maint::error::MaintError;
use codex_maint::store::Store;
use codex_maint::store::pack::{Chunker, ObjectId, PackLimits};

/// Small blocks and packs, so a few objects fill several of each.
fn small() -> PackLimits {
    PackLimits {
        block_bytes: 16 << 10,
        pack_bytes: 64 << 10,
        ..PackLimits::default()
    }
}

fn open(root: &Path) -> Store {
    Store::open_for_write(root).unwrap()
}

/// A transcript-like file: a shared opening (as Codex's base instructions are), then
/// `lines` records particular to `seed`.
fn transcript(seed: u64, lines: usize) -> Vec<u8> {
    let mut out = format!(
        "{{\"type\":\"session_meta\",\"payload\":{{\"id\":\"{seed}\",\"base_instructions\":\"{}\"}}}}\n",
        "You are Codex, a coding agent. Follow the user's instructions carefully. ".repeat(200)
    )
    .into_bytes();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(
            format!(
                "{{\"type\":\"response_item\",\"turn\":{i},\"payload\":{{\"output\":\"exit code {} files {:x} {:x}\"}}}}\n",
                x % 7,
                x,
                x >> 11
            )
            .as_bytes(),
        );
    }
    out
}

/// A real SQLite database of `rows` rows (4 KiB pages), as Codex's own are.
fn database(path: &Path, rows: usize) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 4096; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO t (body) VALUES (?1)",
            [format!("row {i} {}", "x".repeat(i % 300))],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    std::fs::read(path).unwrap()
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .catalog
        .connection()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn pack_files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root.join("packs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn many_objects_round_trip_across_chunkers_and_packs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    let objects = store.objects();
    let db = database(&dir.path().join("a.sqlite"), 3000);
    let mut originals: Vec<Vec<u8>> = vec![Vec::new(), b"{}".to_vec(), db.clone()];
    originals.extend((0..30).map(|s| transcript(s, 50 + 40 * s as usize)));
    let mut w = objects.writer_with(small()).unwrap();
    let mut ids = Vec::new();
    for (i, bytes) in originals.iter().enumerate() {
        let chunker = match i {
            0 | 1 => Chunker::Whole,
            2 => Chunker::SqlitePage,
            _ => Chunker::CdcLines,
        };
        // Half through the streaming path, half from memory: the same object either way.
        let id = if i % 2 == 0 {
            w.put_reader(&mut &bytes[..], chunker).unwrap()
        } else {
            w.put_bytes(bytes, chunker).unwrap()
        };
        assert_eq!(id, ObjectId::of(bytes));
        ids.push(id);
    }
    w.commit().unwrap();
    let sizes = objects.sizes().unwrap();
    assert!(sizes.packs > 3, "{sizes:?}");
    assert_eq!(sizes.objects, originals.len() as u64);
    assert_eq!(
        sizes.pack_bytes,
        pack_files(&dir.path().join("store"))
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum::<u64>()
    );
    for (id, bytes) in ids.iter().zip(&originals) {
        assert!(objects.contains(id).unwrap());
        assert_eq!(&objects.read(id).unwrap(), bytes, "object {id}");
        let mut streamed = Vec::new();
        assert_eq!(
            objects.read_to(id, &mut streamed).unwrap(),
            bytes.len() as u64
        );
        assert_eq!(&streamed, bytes);
    }
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
    // A store opened again reads the same.
    drop(objects);
    drop(store);
    let store = open(&dir.path().join("store"));
    assert_eq!(store.objects().read(&ids[2]).unwrap(), db);
    assert!(
        !store
            .objects()
            .contains(&ObjectId::of(b"never stored"))
            .unwrap()
    );
    assert!(
        store
            .objects()
            .read(&ObjectId::of(b"never stored"))
            .is_err()
    );
}

#[test]
fn equal_bytes_are_stored_once_and_a_changed_page_costs_about_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    let objects = store.objects();
    let text = transcript(7, 3000);
    let mut w = objects.writer().unwrap();
    w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    let before = objects.sizes().unwrap();

    let mut w = objects.writer().unwrap();
    w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    let after = objects.sizes().unwrap();
    assert_eq!(
        after.chunks, before.chunks,
        "the same bytes again add no chunk"
    );
    assert_eq!(after.packs, before.packs, "nor a pack");
    assert_eq!(after.pack_bytes, before.pack_bytes, "nor a byte");

    // A database, then the same database with one row changed in place.
    let path = dir.path().join("state.sqlite");
    let first = database(&path, 5000);
    let mut w = objects.writer().unwrap();
    w.put_bytes(&first, Chunker::SqlitePage).unwrap();
    w.commit().unwrap();
    let pages = first.len() as u64 / 4096;
    let with_first = objects.sizes().unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE t SET body = 'changed' WHERE id = 2500", [])
        .unwrap();
    drop(conn);
    let second = std::fs::read(&path).unwrap();
    assert_eq!(second.len(), first.len());
    let mut w = objects.writer().unwrap();
    let id = w.put_bytes(&second, Chunker::SqlitePage).unwrap();
    w.commit().unwrap();
    let now = objects.sizes().unwrap();
    let added = now.chunks - with_first.chunks;
    let added_bytes = now.pack_bytes - with_first.pack_bytes;
    let first_bytes = with_first.pack_bytes - after.pack_bytes;
    assert!(pages > 100, "{pages}");
    // The changed page, and page 1 (its change counter moves on every write).
    assert!(
        added <= 3,
        "{added} new chunks for one changed row of {pages} pages"
    );
    assert!(
        added_bytes < 3 * 4096 && added_bytes * 10 < first_bytes,
        "{added_bytes} bytes of packs for one changed page; the first copy took {first_bytes}"
    );
    assert_eq!(objects.read(&id).unwrap(), second);
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
}

#[test]
fn a_flipped_byte_in_a_pack_is_found_by_read_and_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let text = transcript(3, 400);
    let mut w = objects.writer().unwrap();
    let id = w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    let packs = pack_files(&root);
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    // Inside the first block, past the 44-byte header and the frame's own header.
    bytes[44 + 40] ^= 0x20;
    std::fs::write(&packs[0], &bytes).unwrap();
    let err = objects.read(&id).unwrap_err();
    assert!(format!("{err:#}").contains("damaged"), "{err:#}");
    let problems = objects.verify_all().unwrap();
    let pack_id = packs[0].file_stem().unwrap().to_string_lossy().into_owned();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&pack_id) && p.contains("altered")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains(&id.to_string())),
        "{problems:?}"
    );
    let (code, out) = cli_verify(dir.path(), &root);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains(&pack_id), "{out}");
}

#[test]
fn bytes_that_decode_but_are_not_the_chunk_are_found_by_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store"));
    let objects = store.objects();
    let mut w = objects.writer().unwrap();
    let id = w
        .put_bytes(&transcript(4, 2000), Chunker::CdcLines)
        .unwrap();
    w.commit().unwrap();
    // The pack is intact; the catalog places a chunk one byte off, so zstd decodes the
    // block without complaint and only the hashes can tell.
    store
        .catalog
        .connection()
        .execute(
            "UPDATE chunks SET offset = offset + 1 WHERE id = (SELECT id FROM chunks LIMIT 1)",
            [],
        )
        .unwrap();
    let err = objects.read(&id).unwrap_err();
    assert!(format!("{err:#}").contains("does not"), "{err:#}");
    assert!(!objects.verify_all().unwrap().is_empty());
}

#[test]
fn a_pack_of_a_higher_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let mut w = objects.writer().unwrap();
    let id = w.put_bytes(&transcript(1, 100), Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    let pack = &pack_files(&root)[0];
    let mut bytes = std::fs::read(pack).unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(pack, &bytes).unwrap();
    let err = objects.read(&id).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("pack format 2") && text.contains("pack format 1"),
        "{text}"
    );
    let refused = err.chain().any(|c| {
        c.downcast_ref::<MaintError>()
            .is_some_and(|m| m.kind == codex_maint::error::ExitKind::Refused)
    });
    assert!(refused, "{text}");
    let problems = objects.verify_all().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("pack format 2")),
        "{problems:?}"
    );
}

#[test]
fn a_writer_dropped_before_commit_leaves_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let mut w = objects.writer_with(small()).unwrap();
    let id = w
        .put_bytes(&transcript(9, 2000), Chunker::CdcLines)
        .unwrap();
    drop(w);
    for table in ["packs", "blocks", "chunks", "objects"] {
        assert_eq!(
            count(&store, &format!("SELECT COUNT(*) FROM {table}")),
            0,
            "{table}"
        );
    }
    assert!(!objects.contains(&id).unwrap());
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
    // Packs already closed stay as files no row names (prune's to remove); none half-written.
    assert!(
        pack_files(&root)
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "pack"))
    );
}

const CHILD_STORE: &str = "PACK_LAYER_CHILD_STORE";

/// Run by `killed_between_pack_rename_and_catalog_commit` in a child process, which the
/// failpoint aborts after its packs are renamed into place and before the catalog commit.
#[test]
#[ignore]
fn child_writes_until_killed() {
    let Some(root) = std::env::var_os(CHILD_STORE) else {
        return;
    };
    let store = open(Path::new(&root));
    let objects = store.objects();
    let mut w = objects.writer_with(small()).unwrap();
    for s in 0..5 {
        w.put_bytes(&transcript(s, 1500), Chunker::CdcLines)
            .unwrap();
    }
    w.commit().unwrap();
    panic!("the failpoint should have stopped this process");
}

#[test]
fn killed_between_pack_rename_and_catalog_commit_the_store_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // A store with one object already, which must stay whole.
    let kept = {
        let store = open(&root);
        let objects = store.objects();
        let mut w = objects.writer().unwrap();
        let id = w.put_bytes(b"kept\n", Chunker::Whole).unwrap();
        w.commit().unwrap();
        id
    };
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_STORE, &root)
        .env("CODEX_MAINT_FAILPOINT", "packs-written")
        .status()
        .unwrap();
    assert!(!status.success());
    let store = open(&root);
    let objects = store.objects();
    assert!(
        pack_files(&root).len() > 2,
        "the child renamed its packs before it was killed"
    );
    assert_eq!(count(&store, "SELECT COUNT(*) FROM packs"), 1);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM objects"), 1);
    assert_eq!(objects.read(&kept).unwrap(), b"kept\n");
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
    drop(objects);
    drop(store);
    let (code, out) = cli_verify(dir.path(), &root);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 objects decoded"), "{out}");
}

/// `codex-maint verify` on the store at `root`: its exit code and its report.
fn cli_verify(sandbox: &Path, root: &Path) -> (i32, String) {
    let out = assert_cmd::Command::cargo_bin("codex-maint")
        .unwrap()
        .arg("--home")
        .arg(sandbox.join("home"))
        .arg("--store")
        .arg(root)
        .arg("verify")
        .env("HOME", sandbox)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_dictionary_is_trained_at_the_threshold_and_named_by_the_packs_that_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let threshold = PackLimits::default().dictionary_threshold;
    let mut w = objects.writer().unwrap();
    for s in 0..threshold - 1 {
        w.put_bytes(&transcript(s, 60), Chunker::CdcLines).unwrap();
    }
    w.commit().unwrap();
    let w = objects.writer().unwrap();
    assert_eq!(w.dictionary(), None, "one short of the threshold");
    drop(w);
    assert_eq!(objects.sizes().unwrap().dictionaries, 0);

    let mut w = objects.writer().unwrap();
    w.put_bytes(&transcript(threshold, 60), Chunker::CdcLines)
        .unwrap();
    w.commit().unwrap();
    let mut w = objects.writer().unwrap();
    let dict = w.dictionary().expect("trained at the threshold");
    assert_eq!(objects.sizes().unwrap().dictionaries, 1);
    assert!(root.join("dicts").join(format!("{dict}.dict")).is_file());
    let text = transcript(10_000, 60);
    let id = w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    let named: Vec<Option<String>> = store
        .catalog
        .connection()
        .prepare("SELECT dictionary FROM packs ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(named.last().unwrap().as_deref(), Some(dict.as_str()));
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM blocks WHERE dictionary = 1"),
        1
    );
    assert_eq!(objects.read(&id).unwrap(), text);
    // The same number of transcripts again is not yet due; more than double is.
    let w = objects.writer().unwrap();
    assert_eq!(w.dictionary().as_deref(), Some(dict.as_str()));
    drop(w);
    let mut w = objects.writer().unwrap();
    for s in 0..threshold + 1 {
        w.put_bytes(&transcript(20_000 + s, 60), Chunker::CdcLines)
            .unwrap();
    }
    w.commit().unwrap();
    let w = objects.writer().unwrap();
    assert_ne!(
        w.dictionary().as_deref(),
        Some(dict.as_str()),
        "trained again"
    );
    drop(w);
    assert_eq!(objects.sizes().unwrap().dictionaries, 2);
    assert_eq!(
        objects.read(&id).unwrap(),
        text,
        "the old dictionary still reads its packs"
    );
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
}

#[test]
fn a_missing_dictionary_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let limits = PackLimits {
        dictionary_threshold: 5,
        ..PackLimits::default()
    };
    let mut w = objects.writer_with(limits).unwrap();
    for s in 0..5 {
        w.put_bytes(&transcript(s, 200), Chunker::CdcLines).unwrap();
    }
    w.commit().unwrap();
    let mut w = objects.writer_with(limits).unwrap();
    let dict = w.dictionary().expect("trained");
    let id = w
        .put_bytes(&transcript(99, 200), Chunker::CdcLines)
        .unwrap();
    w.commit().unwrap();
    drop(objects);
    std::fs::remove_file(root.join("dicts").join(format!("{dict}.dict"))).unwrap();
    // A fresh view: nothing cached from before the file went.
    let objects = store.objects();
    let problems = objects.verify_all().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("dictionary {dict}")) && p.contains("missing")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains(&id.to_string())),
        "{problems:?}"
    );
    assert!(objects.read(&id).is_err());
}

#[test]
fn a_chunk_in_a_condemned_pack_is_written_again_and_reads_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let text = transcript(5, 800);
    let mut w = objects.writer().unwrap();
    w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    let old = pack_files(&root);
    // A prune marked the pack unused and was stopped before it deleted the file.
    store
        .catalog
        .connection()
        .execute("UPDATE packs SET state = 'condemned'", [])
        .unwrap();
    let mut w = objects.writer().unwrap();
    let id = w.put_bytes(&text, Chunker::CdcLines).unwrap();
    // Something new beside it, so the new pack is not the old one byte for byte.
    w.put_bytes(b"new\n", Chunker::Whole).unwrap();
    w.commit().unwrap();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM packs WHERE state = 'live'"),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM chunks c JOIN packs p ON p.seq = c.pack WHERE p.state = 'condemned'"
        ),
        0,
        "every chunk row moved to the new pack"
    );
    // The sweep deletes the condemned file; the object still reads whole.
    std::fs::remove_file(&old[0]).unwrap();
    assert_eq!(objects.read(&id).unwrap(), text);
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
}

#[test]
fn the_same_pack_written_again_after_a_prune_condemned_it_is_live_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = open(&root);
    let objects = store.objects();
    let text = transcript(6, 800);
    let mut w = objects.writer().unwrap();
    w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    store
        .catalog
        .connection()
        .execute("UPDATE packs SET state = 'condemned'", [])
        .unwrap();
    let mut w = objects.writer().unwrap();
    let id = w.put_bytes(&text, Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) FROM packs"), 1);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM packs WHERE state = 'live'"),
        1
    );
    assert_eq!(objects.read(&id).unwrap(), text);
    assert_eq!(objects.verify_all().unwrap(), Vec::<String>::new());
}
