use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_write(&dir.path().join("store")).unwrap();
    (dir, store)
}

#[test]
fn an_object_round_trips() {
    let (_dir, store) = store();
    let objects = store.objects();
    let mut w = objects.writer().unwrap();
    let id = w.put_bytes(b"hello\n", Chunker::CdcLines).unwrap();
    w.commit().unwrap();
    assert_eq!(objects.read(&id).unwrap(), b"hello\n");
}
