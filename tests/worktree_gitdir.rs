//! Undoing a worktree move puts back, outside the home, the `gitdir` file git keeps for
//! the worktree in its main repository: git rewrites it on each move, and undo gives it
//! back its recorded mtime (to the nanosecond) and mode once git has written the same
//! bytes again.

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::fs::PermissionsExt as _;
use support::*;

fn state(path: &std::path::Path) -> (Vec<u8>, u32, i64, i64) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        m.mode(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

#[test]
fn undo_of_a_worktree_move_restores_the_gitdir_file_with_its_mtime_and_mode() {
    let sb = Sandbox::with_sessions(&[], true);
    let repo = sb.dir.path().join("repo");
    init_repo(&repo);
    let worktree = sb.home.join("worktrees/a1/repo");
    add_worktree(&repo, "old-work", &worktree);
    age_tree(&worktree, 20);
    let gitdir = repo.join(".git/worktrees/repo/gitdir");
    assert!(gitdir.is_file(), "git keeps {}", gitdir.display());
    std::fs::set_permissions(&gitdir, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&gitdir)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789))
        .unwrap();
    let before = state(&gitdir);

    let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "worktrees"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap();
    let (code, doc) = sb.json(&["cleanup", "--yes", "--plan", id, "--only", "worktrees"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(!worktree.exists(), "the worktree moved: {doc:#}");
    assert_ne!(state(&gitdir), before, "git rewrote its gitdir file");

    let (code, doc) = sb.json(&["undo"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(worktree.is_dir());
    assert_eq!(state(&gitdir), before);
    let (code, doc) = sb.json(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
}
