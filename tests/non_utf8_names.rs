//! Names that are not UTF-8 (issue 13, item 10): codex-maint records paths as text, so an
//! item that is, sits in, or holds such a name is kept and reported, never recorded under a
//! different name. Each test compares the home by its raw name bytes, so a mangled name
//! cannot pass for the original.
#![cfg(unix)]

mod support;

use codex_maint::testkit::fingerprint::{EntryState, differences, tree_fingerprint};
use codex_maint::testkit::synthetic_home::SessionSpec;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn raw(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Every entry under `root` by its exact name bytes: kind, mode, file bytes and mtime.
/// Folder mtimes are left out, as in `tree_fingerprint`.
fn raw_fingerprint(root: &Path) -> BTreeMap<Vec<u8>, (bool, u32, Option<String>, i64)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().as_os_str().as_bytes();
            let file = meta.is_file();
            (
                rel.to_vec(),
                (
                    file,
                    meta.permissions().mode(),
                    file.then(|| codex_maint::content_hash::hash_file(e.path()).unwrap()),
                    if file {
                        codex_maint::clock::system_time_ns(meta.modified().unwrap())
                    } else {
                        0
                    },
                ),
            )
        })
        .collect()
}

/// `git` with paths passed as bytes, which `support::git` (taking `&str`) cannot.
fn git_raw(dir: &Path, args: &[&OsStr]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn add_worktree_raw(repo: &Path, branch: &str, path: &Path) {
    git_raw(
        repo,
        &[
            OsStr::new("worktree"),
            OsStr::new("add"),
            OsStr::new("-q"),
            OsStr::new("-b"),
            OsStr::new(branch),
            path.as_os_str(),
        ],
    );
}

struct Home {
    sb: Sandbox,
    /// Items cleanup would handle, were it not for a name that is not UTF-8.
    odd: Vec<PathBuf>,
    /// Of those, the ones kept for that reason alone: a worktree whose own folder has such
    /// a name is already kept because git's registration of it cannot be matched, and a
    /// session in such a day folder is not in the dated folder its name implies.
    kept_as_not_utf8: Vec<PathBuf>,
    /// Their twins with plain names, which cleanup does handle.
    plain: Vec<PathBuf>,
}

/// In every place cleanup reaches, one item with a name that is not UTF-8 (or holding one)
/// beside one without: an old session in a day folder so named, large logs, worktrees (the
/// folder's name, and a file inside), old daemon releases (the folder's name, and a file
/// inside).
fn home_with_odd_names() -> Home {
    let specs = [
        SessionSpec::aged(0, 2.0, 2000),
        SessionSpec::aged(1, 30.0, 2000),
    ];
    let sb = Sandbox::with_sessions(&specs, true);
    let home = sb.home.clone();
    let session = specs[1].path_in(&home);
    let odd_day = session.parent().unwrap().with_file_name(raw(b"\xff"));
    std::fs::create_dir_all(&odd_day).unwrap();
    let odd_session = odd_day.join(session.file_name().unwrap());
    std::fs::rename(&session, &odd_session).unwrap();
    std::fs::create_dir_all(home.join("log")).unwrap();
    let log = "line of log\n".repeat(200_000);
    let odd_log = home.join(raw(b"log/codex-tui-\xff.log"));
    std::fs::write(&odd_log, &log).unwrap();
    std::fs::write(home.join("log/codex-tui.log"), &log).unwrap();

    let repo = sb.dir.path().join("repo");
    init_repo(&repo);
    let odd_repo = sb.dir.path().join("odd-repo");
    init_repo(&odd_repo);
    std::fs::write(odd_repo.join(raw(b"caf\xe9.txt")), "bytes\n").unwrap();
    git(&odd_repo, &["add", "."]);
    git(
        &odd_repo,
        &["commit", "-q", "-m", "a name that is not UTF-8"],
    );
    let plain_wt = home.join("worktrees/a1/repo");
    let odd_folder_wt = home.join(raw(b"worktrees/\xfe2/repo"));
    let odd_inside_wt = home.join("worktrees/a3/repo");
    add_worktree(&repo, "plain", &plain_wt);
    add_worktree_raw(&repo, "odd-folder", &odd_folder_wt);
    add_worktree_raw(&odd_repo, "odd-inside", &odd_inside_wt);
    for wt in [&plain_wt, &odd_folder_wt, &odd_inside_wt] {
        age_tree(wt, 20);
    }

    let releases = home.join("packages/app-server-daemon/releases");
    let release = |name: &[u8], inner: &[u8]| -> PathBuf {
        let dir = releases.join(raw(name));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin").join(raw(inner)), "binary\n".repeat(50_000)).unwrap();
        dir
    };
    let plain_release = release(b"0.160.0-x86_64-unknown-linux-musl", b"codex");
    let odd_named_release = release(b"0.150.0-\xff-unknown-linux-musl", b"codex");
    let odd_inside_release = release(b"0.155.0-x86_64-unknown-linux-musl", b"codex-\xfe");
    release(b"0.169.0-x86_64-unknown-linux-musl", b"codex");
    std::os::unix::fs::symlink(
        "releases/0.169.0-x86_64-unknown-linux-musl",
        home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
    Home {
        sb,
        kept_as_not_utf8: vec![
            odd_log.clone(),
            odd_inside_wt.clone(),
            odd_named_release.clone(),
            odd_inside_release.clone(),
        ],
        odd: vec![
            odd_session,
            odd_log,
            odd_folder_wt,
            odd_inside_wt,
            odd_named_release,
            odd_inside_release,
        ],
        plain: vec![home.join("log/codex-tui.log"), plain_wt, plain_release],
    }
}

const ARGS: &[&str] = &[
    "--large-log-mb",
    "1",
    "--only",
    "sessions,logs,worktrees,releases",
];

fn kept(plan: &Value) -> Vec<(String, String)> {
    plan["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["path"].as_str().unwrap().to_string(),
                k["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn cleanup_keeps_every_item_it_cannot_name_exactly_and_undo_gives_back_every_byte() {
    let h = home_with_odd_names();
    let sb = &h.sb;
    let raw_before = raw_fingerprint(&sb.home);
    let odd_before: Vec<_> = h.odd.iter().map(|p| raw_fingerprint_of(p)).collect();

    let mut dry = vec!["cleanup", "--dry-run"];
    dry.extend(ARGS);
    let plan = sb.ok_json(&dry)["data"]["plan"].clone();
    let planned: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    for p in &h.plain {
        assert!(
            planned.contains(&p.to_str().unwrap()),
            "{} is planned: {planned:?}",
            p.display()
        );
    }
    assert_eq!(planned.len(), h.plain.len(), "{planned:#?}");
    let kept = kept(&plan);
    for odd in &h.odd {
        let shown = odd.display().to_string();
        let as_not_utf8 = h.kept_as_not_utf8.contains(odd);
        assert!(
            kept.iter()
                .any(|(path, why)| *path == shown && (!as_not_utf8 || why.contains("is not UTF-8"))),
            "{shown} is kept (as not UTF-8: {as_not_utf8}): {kept:#?}"
        );
    }

    let id = plan["id"].as_str().unwrap();
    let mut apply = vec!["cleanup", "--yes", "--plan", id];
    apply.extend(ARGS);
    let done = sb.ok_json(&apply);
    let run = done["data"]["run_id"].to_string();
    for p in &h.plain {
        assert!(!p.exists(), "{} was handled", p.display());
    }
    for (odd, before) in h.odd.iter().zip(&odd_before) {
        assert_eq!(
            &raw_fingerprint_of(odd),
            before,
            "{} is exactly as it was",
            odd.display()
        );
    }
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");

    sb.ok_json(&["undo", "--run", &run]);
    let raw_after = raw_fingerprint(&sb.home);
    let changed: Vec<String> = raw_before
        .iter()
        .filter(|(name, state)| raw_after.get(*name) != Some(state))
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
        .chain(
            raw_after
                .keys()
                .filter(|name| !raw_before.contains_key(*name))
                .map(|name| format!("new: {}", String::from_utf8_lossy(name))),
        )
        .filter(|name| !name.contains(".sqlite") && !name.contains(".git"))
        .collect();
    assert!(
        changed.is_empty(),
        "differs after undo, by name bytes: {changed:#?}"
    );
}

/// One item's entries (itself included) by exact name bytes.
fn raw_fingerprint_of(item: &Path) -> BTreeMap<Vec<u8>, (bool, u32, Option<String>, i64)> {
    let mut map = raw_fingerprint(item);
    if item.is_file() {
        let parent = raw_fingerprint(item.parent().unwrap());
        let name = item.file_name().unwrap().as_bytes().to_vec();
        map.insert(name.clone(), parent[&name].clone());
    }
    map
}

/// A home whose own folder's name is not UTF-8: every session in it is such a path, and
/// Codex's thread index cannot name them either. Archive and cleanup refuse before
/// recording anything, naming the path.
#[test]
fn a_home_whose_own_name_is_not_utf8_is_refused_before_anything_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(raw(b"codex-\xff-home"));
    let store = dir.path().join("maint-store");
    let specs: Vec<SessionSpec> = (0..2).map(|i| SessionSpec::aged(i, 30.0, 2000)).collect();
    codex_maint::testkit::synthetic_home::build(&home, &specs, true).unwrap();
    std::fs::create_dir_all(home.join("log")).unwrap();
    std::fs::write(
        home.join("log/codex-tui.log"),
        "line of log\n".repeat(200_000),
    )
    .unwrap();
    let sb = Sandbox { dir, home, store };
    let before: BTreeMap<String, EntryState> = tree_fingerprint(&sb.home);
    let raw_before = raw_fingerprint(&sb.home);

    let mut dry = vec!["cleanup", "--dry-run"];
    dry.extend(ARGS);
    let id = sb.ok_json(&dry)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut apply = vec!["cleanup", "--yes", "--plan", &id];
    apply.extend(ARGS);
    // Archive refuses first because the index's row cannot name the transcript's path (the
    // thread index holds text); cleanup's logs have no row, so the path itself is refused.
    let (code, doc) = sb.json(&["archive", &specs[0].id]);
    assert_eq!(code, 3, "{doc:#}");
    let (code, doc) = sb.json(&apply);
    let message = error_message(&doc);
    assert_eq!(code, 3, "{doc:#}");
    assert!(
        message.contains("codex-\u{fffd}-home") && message.contains("is not valid UTF-8"),
        "{message}"
    );
    let diffs = differences(&before, &tree_fingerprint(&sb.home));
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert_eq!(raw_before, raw_fingerprint(&sb.home));
    let (_, log) = sb.json(&["log"]);
    assert_eq!(
        log["data"]["runs"].as_array().map_or(0, Vec::len),
        0,
        "no run was recorded: {log:#}"
    );
}
