//! The catalog is never silently new: a store that lost its catalog (deleted, emptied, or
//! left without tables) is refused by every command, a store is created whole or not at
//! all, and `--store` naming a file is refused; an empty folder is a store not started yet.

mod support;

use codex_maint::testkit::fingerprint::tree_fingerprint;
use support::*;

/// Every command, readers and dry runs included: each must refuse a store without history.
fn every_command() -> Vec<Vec<&'static str>> {
    vec![
        vec!["verify"],
        vec!["log"],
        vec!["undo"],
        vec!["undo", "--dry-run"],
        vec!["restore", "1"],
        vec!["recover"],
        vec!["archive", "--older-than", "10d", "--yes"],
        vec!["archive", "--older-than", "10d", "--dry-run"],
        vec!["cleanup", "--dry-run"],
    ]
}

/// A store that holds only session moves: no stored copies, no backups, nothing but the
/// catalog to tell what was done.
fn store_of_session_moves_only() -> Sandbox {
    let sb = Sandbox::with_sessions(&mixed_specs(10), true);
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    assert!(!sb.store.join("blobs").exists() && !sb.store.join("backups").exists());
    sb
}

fn assert_every_command_refuses(sb: &Sandbox, says: &str, case: &str) {
    let home_before = sb.home_files();
    let store_before = tree_fingerprint(&sb.store);
    for args in every_command() {
        let (code, doc) = sb.json(&args);
        let message = error_message(&doc);
        assert_eq!(code, 3, "{case}: {args:?} was not refused: {doc:#}");
        for must in [
            says,
            "nothing was changed",
            "start over",
            "move the folder aside",
        ] {
            assert!(
                message.contains(must),
                "{case}: {args:?} does not say {must:?}: {message}"
            );
        }
    }
    assert_eq!(sb.home_files(), home_before, "{case}: the home changed");
    assert_eq!(
        tree_fingerprint(&sb.store),
        store_before,
        "{case}: the store changed (a fresh catalog was started?)"
    );
}

#[test]
fn a_deleted_catalog_of_a_store_of_session_moves_is_refused_by_every_command() {
    let sb = store_of_session_moves_only();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sb.store.join(format!("catalog.sqlite{suffix}")));
    }
    assert_every_command_refuses(&sb, "catalog.sqlite is missing", "deleted catalog");
}

#[test]
fn an_emptied_catalog_is_refused_by_every_command() {
    let sb = store_of_session_moves_only();
    std::fs::write(sb.store.join("catalog.sqlite"), b"").unwrap();
    assert_every_command_refuses(&sb, "catalog.sqlite is empty", "0-byte catalog");
}

#[test]
fn a_catalog_without_tables_is_refused_by_every_command() {
    let sb = store_of_session_moves_only();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sb.store.join(format!("catalog.sqlite{suffix}")));
    }
    let conn = rusqlite::Connection::open(sb.store.join("catalog.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 7).unwrap();
    drop(conn);
    assert_every_command_refuses(&sb, "has no tables", "catalog without tables");
}

#[test]
fn a_store_path_naming_a_file_is_refused_by_every_command() {
    let mut sb = Sandbox::with_sessions(&mixed_specs(6), true);
    let file = sb.dir.path().join("not-a-folder");
    std::fs::write(&file, "mine").unwrap();
    for (store, says) in [
        (file.clone(), "is a file, not a folder"),
        (file.join("store"), "a folder above it is a file"),
    ] {
        sb.store = store;
        for args in every_command() {
            let (code, doc) = sb.json(&args);
            let message = error_message(&doc);
            assert_eq!(
                code,
                3,
                "{args:?} with --store {}: {doc:#}",
                sb.store.display()
            );
            assert!(message.contains(says), "{args:?}: {message}");
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

/// A folder the user made for the store, empty or holding only what a dry run and the
/// policy write, is a store not started yet: readers say nothing was changed, and the
/// first writer starts the catalog there.
#[test]
fn an_empty_folder_is_a_store_not_started_yet() {
    let sb = Sandbox::with_sessions(&mixed_specs(10), true);
    std::fs::create_dir(&sb.store).unwrap();
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
    let (code, doc) = sb.json(&["log"]);
    assert_eq!(code, 0, "{doc:#}");
    sb.ok_json(&["cleanup", "--dry-run"]);
    assert!(sb.store.join("plans").is_dir());
    assert!(
        !sb.store.join("catalog.sqlite").exists(),
        "a dry run started a catalog"
    );
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
    let names: Vec<String> = std::fs::read_dir(&sb.store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(codex_maint::fs_atomic::TEMP_PREFIX)),
        "the catalog's building folder was left: {names:?}"
    );
    sb.ok_json(&["undo"]);
}

/// A crash while the store is being created leaves no store folder at all, never one
/// without a catalog: the next command finds "nothing changed yet" and starts it.
#[test]
fn a_crash_while_creating_the_store_leaves_no_store_folder() {
    let sb = Sandbox::with_sessions(&mixed_specs(10), true);
    let hashes = session_hashes(&sb.home);
    let out = sb
        .cmd()
        .env(codex_maint::failpoint::ENV_VAR, "store-built")
        .args(["archive", "--older-than", "10d", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint did not stop the run");
    assert!(
        !sb.store.exists(),
        "a crash left a store folder: {:?}",
        std::fs::read_dir(&sb.store).map(|d| d.count())
    );
    assert_sessions_whole_and_consistent(&sb.home, &hashes);
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
    let builds = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(sb.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                codex_maint::fs_atomic::is_temp_file_name(&name) && name.ends_with("-maint-store")
            })
            .map(|e| e.path())
            .collect()
    };
    let left = builds();
    assert_eq!(
        left.len(),
        1,
        "the crash left its half-built store beside: {left:?}"
    );
    // A build another codex-maint is making right now holds a lock on its folder: it stays.
    let live = sb.dir.path().join(format!(
        "{}{}-maint-store",
        codex_maint::fs_atomic::TEMP_PREFIX,
        "0123456789abcdef0123456789abcdef"
    ));
    std::fs::create_dir(&live).unwrap();
    let live_lock = std::fs::File::open(&live).unwrap();
    fs2::FileExt::lock_exclusive(&live_lock).unwrap();
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(
        builds(),
        vec![live.clone()],
        "the abandoned build goes, the one in progress stays"
    );
    drop(live_lock);
}

/// The same crash in a folder the user made for the store leaves only the build inside it,
/// which the next writing command removes once no process holds it.
#[test]
fn a_crash_while_creating_the_catalog_in_an_empty_folder_leaves_nothing_after_the_next_run() {
    let sb = Sandbox::with_sessions(&mixed_specs(10), true);
    std::fs::create_dir_all(&sb.store).unwrap();
    let out = sb
        .cmd()
        .env(codex_maint::failpoint::ENV_VAR, "store-built")
        .args(["archive", "--older-than", "10d", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the failpoint did not stop the run");
    let builds = || -> Vec<String> {
        std::fs::read_dir(&sb.store)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| codex_maint::fs_atomic::is_temp_file_name(n))
            .collect()
    };
    assert_eq!(builds().len(), 1, "{:?}", builds());
    sb.ok_json(&["archive", "--older-than", "10d", "--yes"]);
    assert!(
        builds().is_empty(),
        "the abandoned build was left: {:?}",
        builds()
    );
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
}
