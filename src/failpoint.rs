//! Named crash points for the crash-safety tests. The tests set `CODEX_MAINT_FAILPOINT` to a
//! point's name and the process aborts there, the way a power cut or `kill -9` would stop
//! it; recovery must then leave every item whole and exactly once.
//!
//! Only a build with the `test-hooks` feature (what `cargo test` builds) reads the variable:
//! in any other build `hit` is empty and inlined away, so no user can abort a real run by
//! setting it.

/// The points are named in every build so the code that passes them reads the same; only
/// the `test-hooks` build acts on them.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn hit(_name: &str) {}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn armed_for(_name: &str) -> bool {
    false
}

/// Runs the test's action armed at `name`, about `path`; nothing in a normal build.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn act(_name: &str, _path: &std::path::Path) {}

#[cfg(feature = "test-hooks")]
pub use armed::{ACTION_POINT_VAR, ACTION_RUN_VAR, ENV_VAR, PAUSE_VAR, act, armed_for, hit};

#[cfg(feature = "test-hooks")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    pub const ENV_VAR: &str = "CODEX_MAINT_FAILPOINT";

    /// `name` aborts at the first pass, `name@N` at the N-th, so a test can stop a batch
    /// half-way through.
    fn armed() -> Option<&'static (String, u64)> {
        static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let spec = std::env::var(ENV_VAR).ok().filter(|v| !v.is_empty())?;
                Some(match spec.split_once('@') {
                    Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                    None => (spec, 1),
                })
            })
            .as_ref()
    }

    static PASSES: AtomicU64 = AtomicU64::new(0);

    /// Aborts the process at the armed point. `abort` rather than `exit` so no destructor,
    /// buffered write or SQLite cleanup runs: the test sees what a crash leaves.
    pub fn hit(name: &str) {
        pause_if_asked(name);
        let Some((armed_name, nth)) = armed() else {
            return;
        };
        if armed_name == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            eprintln!("codex-maint: failpoint {name} hit, aborting");
            std::process::abort();
        }
    }

    pub const ACTION_POINT_VAR: &str = "CODEX_MAINT_ACTION_POINT";
    pub const ACTION_RUN_VAR: &str = "CODEX_MAINT_ACTION_RUN";

    /// Not a crash but something running beside codex-maint at a chosen instant (Codex
    /// appending to a transcript, say): at each pass of the point named by
    /// `CODEX_MAINT_ACTION_POINT`, the shell command in `CODEX_MAINT_ACTION_RUN` is run to its
    /// end, with the path at hand in `CODEX_MAINT_ACTION_PATH`, and the run then goes on.
    pub fn act(name: &str, path: &std::path::Path) {
        if std::env::var(ACTION_POINT_VAR).ok().as_deref() != Some(name) {
            return;
        }
        let Ok(command) = std::env::var(ACTION_RUN_VAR) else {
            return;
        };
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("CODEX_MAINT_ACTION_PATH", path)
            .stdin(std::process::Stdio::null())
            .status();
        eprintln!(
            "codex-maint: action at {name} on {}: {status:?}",
            path.display()
        );
    }

    pub const PAUSE_VAR: &str = "CODEX_MAINT_PAUSE_AT";

    /// `CODEX_MAINT_PAUSE_AT=name=FILE` holds the run at the first pass of `name`: it
    /// creates FILE and waits (up to a minute) until the test removes it, so a test can act
    /// beside the run at that instant (take Codex's index lock mid-run, say).
    fn pause_if_asked(name: &str) {
        static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let Ok(spec) = std::env::var(PAUSE_VAR) else {
            return;
        };
        let Some((point, file)) = spec.split_once('=') else {
            return;
        };
        if point != name || PAUSED.swap(true, Ordering::SeqCst) {
            return;
        }
        let file = std::path::Path::new(file);
        if std::fs::write(file, b"paused").is_err() {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while file.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// True when the test armed `name`: for faults that are not crashes (a backup damaged
    /// between writing and checking), where the caller injects the fault itself.
    pub fn armed_for(name: &str) -> bool {
        armed().is_some_and(|(armed_name, _)| armed_name == name)
    }
}

/// The points a session archive or undo passes, in protocol order; the crash test walks
/// every one of them.
pub const SESSION_MOVE_POINTS: &[&str] = &[
    "op-prepared",
    "move-renamed",
    "file-moved",
    "thread-row-updated",
    "op-applied",
    "run-finishing",
];

/// Points only a move across filesystems or a write into the blob store passes; their
/// own tests cover them.
/// The points a database's reclaim, or its undo, passes besides the journal's own.
pub const RECLAIM_POINTS: &[&str] = &[
    "reclaim-kept",
    "reclaim-vacuumed",
    "reclaim-put-back-written",
];

pub const OTHER_POINTS: &[&str] = &[
    "move-copied-temp",
    "move-before-source-removed",
    "blob-temp-written",
    "restore-temp-written",
];

/// Points a retire or the restore of a retired session passes.
pub const RETIRE_POINTS: &[&str] = &[
    "retire-objects-stored",
    "retire-rows-taken",
    "retire-source-removed",
    "restore-transcript-written",
];
