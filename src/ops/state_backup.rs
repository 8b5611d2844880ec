//! What a cleanup backs up before it changes anything (SPEC.md "Cleanup Policy"): config
//! and other top-level TOML/JSON, every database (through SQLite's online backup API, then
//! `integrity_check` on the copy), and memories, skills, plugins and automations. Never
//! `auth.json`. A database the same run moves whole into the store is not copied: the
//! blob its op stores holds its exact bytes, so copying and compressing it here as well
//! would only read a multi-GB log database twice; the manifest names it as held there.

use anyhow::Result;
use rusqlite::{Connection, OpenFlags};
use std::fs;
use std::path::{Path, PathBuf};

use crate::clock::system_time_ns;
use crate::error::MaintError;
use crate::fs_atomic::file_mode;
use crate::home::CodexHome;
use crate::store::Store;
use crate::store::backup::{self, BackupInfo, BackupSource, HeldInStore};

const STATE_DIRS: &[&str] = &["memories", "skills", "plugins", "automations"];

pub struct StateBackup {
    pub info: BackupInfo,
    pub databases_checked: Vec<String>,
}

/// Backs up the home's state before run `run_id` changes it; `moved_whole` are the
/// databases that run's `store-files` ops move whole into the store.
pub fn create(
    store: &Store,
    home: &CodexHome,
    run_id: Option<i64>,
    moved_whole: &[PathBuf],
) -> Result<StateBackup> {
    let dir = backup::new_dir(store)?;
    let made = (|| {
        let copies = tempfile::Builder::new()
            .prefix(".db-copies-")
            .tempdir_in(&dir)?;
        let (sources, databases_checked) = collect(home, copies.path(), moved_whole, run_id)?;
        let info = backup::create(store, &dir, &home.display(), &sources, run_id)?;
        Ok(StateBackup {
            info,
            databases_checked,
        })
    })();
    if made.is_err() {
        backup::discard_unrecorded(&dir);
    }
    made
}

fn collect(
    home: &CodexHome,
    copies: &Path,
    moved_whole: &[PathBuf],
    run_id: Option<i64>,
) -> Result<(Vec<BackupSource>, Vec<String>)> {
    let mut sources = Vec::new();
    let mut checked = Vec::new();
    let mut top: Vec<fs::DirEntry> = fs::read_dir(&home.root)?.filter_map(|e| e.ok()).collect();
    top.sort_by_key(|e| e.file_name());
    for e in top {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(e.path())?;
        if !meta.is_file() || name == crate::home::CREDENTIALS_FILE {
            continue;
        }
        let mtime_ns = meta.modified().map(system_time_ns).unwrap_or(0);
        let backed_up = [".sqlite", ".toml", ".json"]
            .iter()
            .any(|s| name.ends_with(s));
        // Each entry's name is recorded in the catalog and the manifest; a lossy one would
        // name a different file than the one the backup holds.
        if backed_up {
            crate::path_text::recorded(&e.path())?;
        }
        if name.ends_with(".sqlite") && moved_whole.contains(&e.path()) {
            sources.push(BackupSource {
                name,
                bytes_from: e.path(),
                mtime_ns,
                mode: file_mode(&meta),
                held_in_store: Some(HeldInStore {
                    run_id,
                    op_kind: super::OpKind::StoreFiles.to_string(),
                }),
                as_pages: false,
            });
        } else if name.ends_with(".sqlite") {
            let copy = copies.join(&name);
            copy_database(&e.path(), &copy)?;
            checked.push(name.clone());
            sources.push(BackupSource {
                name,
                bytes_from: copy,
                mtime_ns,
                mode: file_mode(&meta),
                held_in_store: None,
                as_pages: true,
            });
        } else if name.ends_with(".toml") || name.ends_with(".json") {
            sources.push(BackupSource {
                name,
                bytes_from: e.path(),
                mtime_ns,
                mode: file_mode(&meta),
                held_in_store: None,
                as_pages: false,
            });
        }
    }
    for dir in STATE_DIRS {
        let root = home.root.join(dir);
        if !root.is_dir() {
            continue;
        }
        for e in walkdir::WalkDir::new(&root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let e = e?;
            if !e.file_type().is_file() {
                continue;
            }
            let meta = e.metadata()?;
            sources.push(BackupSource {
                name: crate::path_text::recorded_string(e.path().strip_prefix(&home.root)?)?,
                bytes_from: e.path().to_path_buf(),
                mtime_ns: meta.modified().map(system_time_ns).unwrap_or(0),
                mode: file_mode(&meta),
                held_in_store: None,
                as_pages: false,
            });
        }
    }
    Ok((sources, checked))
}

/// A consistent copy through the online backup API, checked with `integrity_check`; a
/// database that cannot be copied or fails stops the cleanup (SPEC.md stop rule).
fn copy_database(src: &Path, dst: &Path) -> Result<()> {
    let refuse = |what: String, details: Vec<String>| -> anyhow::Error {
        MaintError::refused(
            format!("the database {} {what}; nothing was changed", src.display()),
            details,
        )
        .into()
    };
    // Read through `sqlite_read` so a refused or failed cleanup leaves no `-wal`/`-shm`
    // behind in the home; only a WAL too large to copy is read in place, because the
    // backup must hold its transactions too.
    let read = crate::home::sqlite_read::open(src)
        .map_err(|e| refuse(format!("cannot be opened ({e:#})"), vec![]))?;
    // The private copy is bound first so that it is dropped after the connection reading it.
    let (_private_copy, source) = match read.snapshot {
        crate::home::sqlite_read::Snapshot::MainFileOnly { .. } => (
            None,
            Connection::open_with_flags(
                src,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| refuse(format!("cannot be opened ({e})"), vec![]))?,
        ),
        _ => {
            let (conn, copy) = read.into_parts();
            (copy, conn)
        }
    };
    source.busy_timeout(std::time::Duration::from_secs(2))?;
    let mut copy = Connection::open(dst)?;
    rusqlite::backup::Backup::new(&source, &mut copy)
        .and_then(|b| b.run_to_completion(256, std::time::Duration::from_millis(5), None))
        .map_err(|e| refuse(format!("cannot be backed up ({e})"), vec![]))?;
    let problems =
        crate::sqlite_check::integrity_problems(&copy).unwrap_or_else(|e| vec![e.to_string()]);
    if !problems.is_empty() {
        return Err(refuse(
            "fails PRAGMA integrity_check".into(),
            problems.into_iter().take(10).collect(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn home_with_a_database(dir: &Path) -> (CodexHome, Connection) {
        let home = CodexHome {
            root: dir.join("home"),
        };
        fs::create_dir_all(&home.root).unwrap();
        fs::write(home.root.join("config.toml"), "model = \"x\"\n").unwrap();
        let db = Connection::open(home.root.join("state_5.sqlite")).unwrap();
        db.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);")
            .unwrap();
        let tx = db.unchecked_transaction().unwrap();
        for i in 0..4000 {
            tx.execute(
                "INSERT INTO t (body) VALUES (?1)",
                [format!("thread {i} {}", "y".repeat(i % 200))],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        (home, db)
    }

    #[test]
    fn a_second_backup_of_a_database_with_one_changed_row_costs_about_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let (home, db) = home_with_a_database(dir.path());
        let store = Store::open_for_write(&dir.path().join("store")).unwrap();
        create(&store, &home, None, &[]).unwrap();
        let first = store.objects().sizes().unwrap();
        db.execute("UPDATE t SET body = 'changed' WHERE id = 2000", [])
            .unwrap();
        let second = create(&store, &home, None, &[]).unwrap();
        let then = store.objects().sizes().unwrap();
        let db_size = fs::metadata(home.root.join("state_5.sqlite"))
            .unwrap()
            .len();
        assert!(db_size > 100 * 4096, "{db_size}");
        assert!(
            then.pack_bytes - first.pack_bytes < 3 * 4096,
            "{} bytes of packs for a second backup of a {db_size}-byte database with one row changed (the first took {})",
            then.pack_bytes - first.pack_bytes,
            first.pack_bytes
        );
        let rows: i64 = store
            .catalog
            .connection()
            .query_row("SELECT COUNT(*) FROM backup_objects", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
        let out = dir.path().join("out");
        backup::extract(&store, second.info.id, &out).unwrap();
        let body: String = Connection::open(out.join("state_5.sqlite"))
            .unwrap()
            .query_row("SELECT body FROM t WHERE id = 2000", [], |r| r.get(0))
            .unwrap();
        assert_eq!(body, "changed");
        assert!(
            backup::verify_all(&store.catalog, &store.root)
                .unwrap()
                .problems
                .is_empty()
        );
    }

    #[test]
    fn verify_proves_every_byte_of_a_database_held_as_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (home, _db) = home_with_a_database(dir.path());
        let store = Store::open_for_write(&dir.path().join("store")).unwrap();
        let made = create(&store, &home, None, &[]).unwrap();
        // One chunk's place moved by a byte: the pack decodes, the bytes are wrong.
        store
            .catalog
            .connection()
            .execute(
                "UPDATE chunks SET offset = offset + 1 WHERE id = (SELECT id FROM chunks LIMIT 1)",
                [],
            )
            .unwrap();
        let problems = backup::verify_all(&store.catalog, &store.root)
            .unwrap()
            .problems;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("backup {}: entry state_5.sqlite", made.info.id))),
            "{problems:?}"
        );
        assert!(backup::extract(&store, made.info.id, &dir.path().join("out")).is_err());
    }

    #[test]
    fn a_backup_of_a_newer_format_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let (home, _db) = home_with_a_database(dir.path());
        let store = Store::open_for_write(&dir.path().join("store")).unwrap();
        let made = create(&store, &home, None, &[]).unwrap();
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&made.info.manifest).unwrap()).unwrap();
        manifest["format"] = 3.into();
        fs::write(&made.info.manifest, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let err = backup::extract(&store, made.info.id, &dir.path().join("out")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("backup format 3") && text.contains("backup format 2"),
            "{text}"
        );
        assert!(!dir.path().join("out").exists());
    }

    #[test]
    fn a_backup_holds_state_and_databases_but_never_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let home = CodexHome {
            root: dir.path().join("home"),
        };
        fs::create_dir_all(home.root.join("memories")).unwrap();
        fs::write(home.root.join("config.toml"), "model = \"x\"\n").unwrap();
        fs::write(home.root.join("auth.json"), "{\"token\": \"secret\"}").unwrap();
        fs::write(home.root.join("memories/note.md"), "remember").unwrap();
        let db = Connection::open(home.root.join("state_5.sqlite")).unwrap();
        db.pragma_update(None, "journal_mode", "WAL").unwrap();
        db.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
            .unwrap();
        let store = Store::open_for_write(&dir.path().join("store")).unwrap();
        let made = create(&store, &home, None, &[]).unwrap();
        let info = made.info;
        let manifest: backup::Manifest =
            serde_json::from_slice(&fs::read(&info.manifest).unwrap()).unwrap();
        let names: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            vec!["config.toml", "state_5.sqlite", "memories/note.md"]
        );
        assert!(backup::check(&info.dir, &manifest).unwrap().is_empty());
        assert!(
            backup::verify_all(&store.catalog, &store.root)
                .unwrap()
                .problems
                .is_empty()
        );
        // The database is held as pages, not in the archive.
        let mut tar =
            tar::Archive::new(zstd::Decoder::new(File::open(&info.archive).unwrap()).unwrap());
        let in_archive: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(in_archive, vec!["config.toml", "memories/note.md"]);
        // One step gives the whole backup back; the database copy holds the row still in
        // the WAL.
        let out = dir.path().join("out");
        assert!(backup::extract(&store, info.id, &out).unwrap().is_empty());
        assert_eq!(fs::read(out.join("memories/note.md")).unwrap(), b"remember");
        let db_entry = manifest
            .entries
            .iter()
            .find(|e| e.path == "state_5.sqlite")
            .unwrap();
        assert_eq!(
            crate::content_hash::hash_file(&out.join("state_5.sqlite")).unwrap(),
            db_entry.hash
        );
        let n: i64 = Connection::open(out.join("state_5.sqlite"))
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 42);
        drop(db);
    }
}
