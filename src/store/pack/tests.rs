use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_write(&dir.path().join("store")).unwrap();
    (dir, store)
}

#[test]
fn a_writer_outlives_the_view_it_came_from() {
    let (_dir, store) = store();
    // The journal's callers write `store.objects().writer()` in one expression.
    let mut w = store.objects().writer().unwrap();
    let id = w.put_bytes(b"hello\n", Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    assert_eq!(store.objects().read(&id).unwrap(), b"hello\n");
    assert_eq!(store.objects().length(&id).unwrap(), Some(6));
}

#[test]
fn object_ids_read_and_print_as_hex_everywhere() {
    let id = ObjectId::of(b"x");
    let hex = id.to_string();
    assert_eq!(hex.len(), 64);
    assert_eq!(hex.parse::<ObjectId>().unwrap(), id);
    assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
    let back: ObjectId = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
    assert_eq!(back, id);
    assert!("xyz".parse::<ObjectId>().is_err());
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let text: String = conn.query_row("SELECT ?1", [id], |r| r.get(0)).unwrap();
    assert_eq!(text, hex);
    let read: ObjectId = conn.query_row("SELECT ?1", [&hex], |r| r.get(0)).unwrap();
    assert_eq!(read, id);
}

#[test]
fn a_store_without_pack_tables_holds_no_objects() {
    // A catalog of format 2, read without migrating (verify, dry runs).
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let catalog = Catalog::new(conn);
    let dir = tempfile::tempdir().unwrap();
    let objects = ObjectStore::new(&catalog, dir.path());
    assert!(!objects.contains(&ObjectId::of(b"x")).unwrap());
    assert!(objects.verify_all().unwrap().is_empty());
    assert_eq!(objects.sizes().unwrap(), PackSizes::default());
}
