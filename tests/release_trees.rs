//! Trees come back exactly: an old daemon release, here a real npm-installed Codex package
//! (its `node_modules/.bin/codex` is a symlink, as in every npm install), moved into the
//! store by cleanup's releases category and taken back by undo, returns byte for byte,
//! with every mode, link target and nanosecond mtime (files, folders, links, the release
//! folder itself); and a restore that fails leaves no temporary folder behind.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use support::*;

const OLD: &str = "0.160.0-x86_64-unknown-linux-musl";
const CURRENT: &str = "0.169.0-x86_64-unknown-linux-musl";

/// The npm install of Codex `.ci/run` made, or `None` (a failure when Codex is required).
fn npm_install() -> Option<PathBuf> {
    let binary = codex_maint::testkit::installed_codex_version(codex_maint::testkit::CODEX_VERSION);
    if binary.is_none() && std::env::var_os("CODEX_MAINT_REQUIRE_CODEX").is_some() {
        panic!("CODEX_MAINT_REQUIRE_CODEX is set but Codex is not installed");
    }
    // <prefix>/node_modules/@openai/<pkg>/vendor/<triple>/bin/codex
    let binary = binary?;
    let prefix = binary
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))?
        .parent()?
        .to_path_buf();
    Some(prefix)
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    };
    utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Copies the install into `dst`, every entry with its own odd nanosecond mtime (links
/// and folders too, folders last so filling them does not move their times).
fn copy_tree(src: &Path, dst: &Path) {
    let mut folders = Vec::new();
    for (n, e) in walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .enumerate()
    {
        let e = e.unwrap();
        let to = dst.join(e.path().strip_prefix(src).unwrap());
        let ft = e.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            std::fs::set_permissions(&to, e.metadata().unwrap().permissions()).unwrap();
            folders.push((to, n));
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &to).unwrap();
            set_mtime(&to, 1_700_000_000 + n as i64, 123_456_789 + n as i64);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
            set_mtime(&to, 1_700_000_000 + n as i64, 987_654_321 - n as i64);
        }
    }
    for (folder, n) in folders.iter().rev() {
        set_mtime(folder, 1_690_000_000 + *n as i64, 555_555_555 + *n as i64);
    }
}

/// Every entry of a tree, the tree itself included: kind, mode, size, mtime in ns (of
/// folders and links too), link target and content hash.
fn exact_tree(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
            } else if m.is_file() {
                plain_hash(e.path())
            } else {
                String::new()
            };
            (
                e.path().strip_prefix(root).unwrap().display().to_string(),
                format!(
                    "{:o} {} {}.{:09} {what}",
                    m.mode(),
                    if m.is_dir() { 0 } else { m.size() },
                    m.mtime(),
                    m.mtime_nsec()
                ),
            )
        })
        .collect()
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(codex_maint::fs_atomic::TEMP_PREFIX))
        .collect()
}

struct Releases {
    sb: Sandbox,
    dir: PathBuf,
    old: PathBuf,
}

/// A home whose old release is a copy of the tree at `install`.
fn home_with_release(install: &Path) -> Releases {
    let sb = Sandbox::with_sessions(&[], true);
    let dir = sb.home.join("packages/app-server-daemon/releases");
    let old = dir.join(OLD);
    copy_tree(install, &old);
    let links: Vec<_> = walkdir::WalkDir::new(&old)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.path_is_symlink())
        .collect();
    assert!(
        !links.is_empty(),
        "a real npm install holds symlinks (node_modules/.bin)"
    );
    std::fs::create_dir_all(dir.join(CURRENT).join("bin")).unwrap();
    std::fs::write(dir.join(CURRENT).join("bin/codex"), "current\n").unwrap();
    std::os::unix::fs::symlink(
        format!("releases/{CURRENT}"),
        sb.home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
    Releases { sb, dir, old }
}

fn clean_up_releases(sb: &Sandbox) {
    let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "releases"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap();
    let (code, doc) = sb.json(&["cleanup", "--yes", "--plan", id, "--only", "releases"]);
    assert_eq!(code, 0, "{doc:#}");
}

#[test]
fn an_npm_installed_release_with_symlinks_comes_back_exactly() {
    let Some(install) = npm_install() else {
        return;
    };
    let r = home_with_release(&install);
    let before = exact_tree(&r.old);
    let home_before = r.sb.home_files();

    clean_up_releases(&r.sb);
    assert!(!r.old.exists(), "the old release moved into the store");
    let (code, doc) = r.sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");

    let (code, doc) = r.sb.json(&["undo"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(temporaries(&r.dir), Vec::<String>::new());
    let after = exact_tree(&r.old);
    for (path, was) in &before {
        assert_eq!(after.get(path), Some(was), "{path}");
    }
    assert_eq!(before, after);
    assert_eq!(home_before, r.sb.home_files());
    let (code, doc) = r.sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
}

#[test]
fn a_restore_that_fails_leaves_no_temporary_folder() {
    // A small package of the same shape: what is tested here is the failure, not the size.
    let package = tempfile::tempdir().unwrap();
    let bin = package.path().join("node_modules/.bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(package.path().join("node_modules/codex/bin")).unwrap();
    std::fs::write(
        package.path().join("node_modules/codex/bin/codex.js"),
        "run()\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../codex/bin/codex.js", bin.join("codex")).unwrap();
    let r = home_with_release(package.path());
    clean_up_releases(&r.sb);
    // The journal's digest no longer names the stored tree: the restored copy cannot
    // match it, so the restore must fail, and clean up after itself.
    let catalog = rusqlite::Connection::open(r.sb.store.join("catalog.sqlite")).unwrap();
    let changed = catalog
        .execute(
            "UPDATE ops SET detail = json_set(detail, '$.digest', 'not-what-was-stored') WHERE kind = 'store_dir'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(catalog);
    let (code, doc) = r.sb.json(&["undo"]);
    assert_eq!(code, 1, "{doc:#}");
    assert!(error_message(&doc).contains("does not match"), "{doc:#}");
    assert_eq!(temporaries(&r.dir), Vec::<String>::new());
    assert!(!r.old.exists());
    let catalog = rusqlite::Connection::open(r.sb.store.join("catalog.sqlite")).unwrap();
    let prepared: i64 = catalog
        .query_row(
            "SELECT COUNT(*) FROM ops WHERE state = 'prepared'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(prepared, 0, "the failed restore settled its own op");
}
