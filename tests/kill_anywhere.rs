//! Every writing command (archive, archive --compress, cleanup of every category, repair,
//! decompress, restore, and the undo of each) is killed at seeded random moments within
//! the time a whole run takes, and aborted at named failure points; after each kill
//! `recover`, `verify` and undo to the end give back the home as it was, byte for byte,
//! with no temporary left, and Codex's own doctor finds its index and rollouts agree.
//! The harness is `tests/support/kill.rs`, shared with `benches/kill.rs` (100+ kills a
//! command). `CODEX_MAINT_KILL_ROUNDS` sets the random kills per command (default 3) and
//! `CODEX_MAINT_KILL_POINTS` the failure points (default 2, picked by the seed); the seed
//! is printed, and `CODEX_MAINT_KILL_SEED` replays it.

mod support;

use support::codex_cli;
use support::kill::{self, Doctor, Kill, Moments};

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn killed_anywhere(name: &str) {
    let sc = kill::scenario(name);
    let seed = kill::seed();
    let (whole, uninterrupted) = kill::whole_run(sc);
    if let Err(e) = uninterrupted {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: CODEX_MAINT_KILL_SEED={seed}, a whole run takes {whole:?}");
    let mut moments = Moments::new(seed);
    let mut kills: Vec<Kill> = (0..count("CODEX_MAINT_KILL_ROUNDS", 3))
        .map(|_| {
            Kill::After(std::time::Duration::from_micros(
                moments.below(whole.as_micros() as u64),
            ))
        })
        .collect();
    let points = kill::failpoints();
    for _ in 0..count("CODEX_MAINT_KILL_POINTS", 2) {
        let point = points[moments.below(points.len() as u64) as usize];
        kills.push(Kill::At(format!("{point}@{}", 1 + moments.below(2))));
    }
    // Doctor is slow: it checks the last round only.
    let doctor =
        codex_cli::require_version(name, codex_maint::testkit::CODEX_VERSION).map(Doctor::new);
    let mut killed = 0;
    let mut failures = Vec::new();
    let last = kills.len() - 1;
    for (i, k) in kills.iter().enumerate() {
        let r = kill::round(sc, k, doctor.as_ref().filter(|_| i == last));
        killed += r.killed as usize;
        for f in r.failures {
            failures.push(format!("{name}, seed {seed}, {k}: {f}"));
        }
    }
    eprintln!("{name}: {killed} of {} runs stopped mid-way", kills.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        killed > 0,
        "{name}: no run was stopped mid-way, though every moment was inside a whole run's time"
    );
}

#[test]
fn archive() {
    killed_anywhere("archive");
}

#[test]
fn archive_compress() {
    killed_anywhere("archive --compress");
}

#[test]
fn cleanup_of_every_category() {
    killed_anywhere("cleanup (every category)");
}

#[test]
fn repair() {
    killed_anywhere("repair");
}

#[test]
fn decompress() {
    killed_anywhere("decompress");
}

#[test]
fn restore() {
    killed_anywhere("restore <id>");
}

#[test]
fn undo_of_archive() {
    killed_anywhere("undo of archive");
}

#[test]
fn undo_of_archive_compress() {
    killed_anywhere("undo of archive --compress");
}

#[test]
fn undo_of_cleanup() {
    killed_anywhere("undo of cleanup");
}

#[test]
fn undo_of_repair() {
    killed_anywhere("undo of repair");
}

#[test]
fn undo_of_decompress() {
    killed_anywhere("undo of decompress");
}

#[test]
fn undo_of_restore() {
    killed_anywhere("undo of restore");
}

/// The harness itself: the home's plan covers every cleanup category (`resolve` asserts it
/// when it fills in `@plan`), its old release holds the symlinks an npm-installed package
/// has, and Codex's doctor finds the untouched home's rollouts and index agree, so the
/// parity each round checks is "ok".
#[test]
fn the_kill_home_has_an_item_of_every_category_and_a_release_with_symlinks() {
    let h = support::kill_home::build(false);
    let links: Vec<_> =
        walkdir::WalkDir::new(h.sb.home.join("packages/app-server-daemon/releases"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.path_is_symlink())
            .collect();
    assert!(links.len() >= 6, "{links:?}");
    let doc = h.sb.ok_json(&[
        "cleanup",
        "--dry-run",
        "--large-log-mb",
        "1",
        "--retire-min-age",
        "30d",
    ]);
    let mut categories: Vec<&str> = doc["data"]["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["category"].as_str().unwrap())
        .collect();
    categories.sort();
    categories.dedup();
    let mut all = codex_maint::cleanup::CATEGORIES.to_vec();
    all.sort();
    assert_eq!(categories, all);
    if let Some(bin) = codex_cli::require_version("kill home", codex_maint::testkit::CODEX_VERSION)
    {
        codex_cli::assert_parity_ok(&bin, &h.sb.home, "building the kill home");
    }
}

/// An undo of a worktree's move stopped after git moved it back but before the folders the
/// move had made were tidied: recovery rolls it forward, and tidies them then.
#[test]
fn undo_of_a_worktree_move_killed_after_git_moved_it_leaves_no_folder_behind() {
    let sc = kill::scenario("undo of cleanup --only worktrees");
    let k = Kill::At("file-moved@1".into());
    let r = kill::round(sc, &k, None);
    assert!(r.killed, "the undo never reached {k}");
    assert!(r.failures.is_empty(), "{}", r.failures.join("\n"));
}

#[test]
fn cleanup_retire() {
    killed_anywhere("cleanup --only retire");
}

#[test]
fn restore_of_a_retired_session() {
    killed_anywhere("restore of a retired session");
}

#[test]
fn undo_of_cleanup_retire() {
    killed_anywhere("undo of cleanup --only retire");
}
