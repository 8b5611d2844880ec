//! The home the SIGKILL harness kills commands in: an item of every cleanup category, an
//! old daemon release that holds symlinks the way an npm-installed package does, and, for
//! `repair`, an index a manual `mv` left disagreeing with the transcripts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codex_maint::testkit::fingerprint::{EntryState, tree_fingerprint_filtered};
use codex_maint::testkit::synthetic_home::SessionSpec;

use super::{
    Sandbox, add_worktree, age_tree, git, init_repo, write_large_logs, write_with_pending_wal,
};

pub struct KillHome {
    pub sb: Sandbox,
    /// The main repository, outside the home, whose worktree lives in the home.
    pub repo: PathBuf,
    pub specs: Vec<SessionSpec>,
}

/// The session `restore` brings back: the largest old one, so its restore takes longest.
pub const RESTORED_SESSION: u64 = 1;

const OLD_RELEASE: &str = "0.160.0-x86_64-unknown-linux-musl";
const CURRENT_RELEASE: &str = "0.169.0-x86_64-unknown-linux-musl";

fn specs() -> Vec<SessionSpec> {
    (0..40u64)
        .map(|i| {
            let (age, bytes) = match i {
                RESTORED_SESSION => (40.0, 1_500_000),
                _ if i % 8 == 0 => (3.0, 5_000 + i as usize * 311),
                _ => (15.0 + i as f64, 4_000 + (i as usize * 7_919) % 120_000),
            };
            let mut s = SessionSpec::aged(i, age, bytes);
            // Archived long ago: what cleanup's `compress` category picks up.
            s.archived = i % 8 == 5;
            s.pinned = i == 7;
            s
        })
        .collect()
}

/// An old release laid out as npm installs a package: the launcher script, the native
/// binary under `vendor/`, `node_modules/.bin` links to the launcher, and a relative link
/// at the top.
fn write_release(dir: &Path, version: &str) {
    let pkg = dir.join("node_modules/@openai/codex");
    let vendor = pkg.join("vendor/x86_64-unknown-linux-musl/codex");
    std::fs::create_dir_all(&vendor).unwrap();
    std::fs::create_dir_all(dir.join("node_modules/.bin")).unwrap();
    std::fs::create_dir_all(pkg.join("bin")).unwrap();
    std::fs::write(
        pkg.join("package.json"),
        format!("{{\"name\": \"@openai/codex\", \"version\": \"{version}\", \"bin\": {{\"codex\": \"bin/codex.js\"}}}}\n"),
    )
    .unwrap();
    std::fs::write(
        pkg.join("bin/codex.js"),
        "#!/usr/bin/env node\nrequire('../lib/launch.js');\n",
    )
    .unwrap();
    std::fs::write(
        vendor.join("codex"),
        format!("\x7fELF native codex {version}\n").repeat(60_000),
    )
    .unwrap();
    for exe in [pkg.join("bin/codex.js"), vendor.join("codex")] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::symlink(
        "../@openai/codex/bin/codex.js",
        dir.join("node_modules/.bin/codex"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex",
        dir.join("codex"),
    )
    .unwrap();
    // A link that dangles inside the package, as npm leaves for an optional dependency
    // that was not installed on this platform.
    std::os::unix::fs::symlink(
        "../@openai/codex-darwin-arm64/bin/codex",
        dir.join("node_modules/.bin/codex-darwin"),
    )
    .unwrap();
}

/// Sessions (old, recent, pinned, archived long ago), a clean old worktree, a 3.6 MB log,
/// a log database with a pending WAL, an old release holding symlinks beside the current
/// one, and a config naming a project that no longer exists. With `broken_index`, three
/// transcripts were moved by hand and one row's flag disagrees with its folder.
pub fn build(broken_index: bool) -> KillHome {
    let specs = specs();
    let sb = Sandbox::with_sessions(&specs, true);
    let home = sb.home.clone();
    let repo = sb.dir.path().join("repo");
    init_repo(&repo);
    let worktree = home.join("worktrees/a1/repo");
    add_worktree(&repo, "clean", &worktree);
    age_tree(&worktree, 20);
    write_large_logs(&home);
    write_thread_history_with_free_pages(&home);
    let releases = home.join("packages/app-server-daemon/releases");
    for v in [OLD_RELEASE, CURRENT_RELEASE] {
        write_release(&releases.join(v), v);
    }
    age_tree(&releases, 30);
    std::os::unix::fs::symlink(
        format!("releases/{CURRENT_RELEASE}"),
        home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "# my settings\nmodel = \"gpt-5\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
            repo.display(),
            sb.dir.path().join("deleted-project").display()
        ),
    )
    .unwrap();
    if broken_index {
        break_index(&home, &specs);
    }
    KillHome { sb, repo, specs }
}

/// A thread history as Codex leaves it after `codex delete` of a large session: 12 MB on
/// disk, 10 MB of it free pages, what cleanup's `reclaim` gives back.
fn write_thread_history_with_free_pages(home: &Path) {
    let conn = rusqlite::Connection::open(home.join("thread_history_1.sqlite")).unwrap();
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;
         CREATE TABLE thread_items (thread_id TEXT NOT NULL, ordinal INTEGER NOT NULL, item_json TEXT NOT NULL, PRIMARY KEY (thread_id, ordinal));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO thread_items SELECT 'thread-' || (i % 6), i, printf('{\"text\":\"%.4000c\"}', 'a') FROM n;
         DELETE FROM thread_items WHERE thread_id <> 'thread-1';",
    )
    .unwrap();
}

/// SPEC.md's manual archive, which leaves the rows behind, and a flag set by hand.
fn break_index(home: &Path, specs: &[SessionSpec]) {
    let old_live: Vec<&SessionSpec> = specs
        .iter()
        .filter(|s| !s.archived && s.last_active < chrono::Utc::now() - chrono::Duration::days(10))
        .collect();
    for spec in &old_live[..3] {
        let dst = home.join("archived_sessions").join(spec.file_name());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::rename(spec.path_in(home), dst).unwrap();
    }
    write_with_pending_wal(
        &home.join("state_5.sqlite"),
        &format!(
            "UPDATE threads SET archived = 1, archived_at = 9 WHERE id = '{}'",
            old_live[3].id
        ),
    );
}

/// What "the home is back exactly" compares: every entry but Codex's thread index (whose
/// pages SQLite rewrites even when every row is back; its rows are compared instead) and
/// SQLite's shared-memory index files (rebuilt by any reader), the thread rows, and the
/// worktree registrations git keeps outside the home.
#[derive(PartialEq, Debug)]
pub struct HomeState {
    pub files: BTreeMap<String, EntryState>,
    pub rows: Vec<(String, String, i64, Option<i64>, i64)>,
    pub worktrees: String,
}

impl KillHome {
    pub fn state(&self) -> HomeState {
        HomeState {
            // An empty `-wal` is what any reader of a WAL database leaves when it is killed
            // before it closes: it holds no frame, and SQLite reads it as no WAL at all.
            files: tree_fingerprint_filtered(&self.sb.home, |rel| {
                let empty_wal = rel.ends_with("-wal")
                    && std::fs::metadata(self.sb.home.join(rel)).is_ok_and(|m| m.len() == 0);
                !rel.starts_with("state_5.sqlite") && !rel.ends_with("-shm") && !empty_wal
            }),
            rows: self.sb.thread_rows(),
            worktrees: git(&self.repo, &["worktree", "list", "--porcelain"]),
        }
    }
}
