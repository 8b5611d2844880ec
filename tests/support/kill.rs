//! Random SIGKILL of every writing command, shared by `tests/kill_anywhere.rs` (a few
//! seeded kills a command on each run) and `benches/kill.rs` (at least 100 a command).
//!
//! A round builds a fresh home (`kill_home`), runs the command's setup uninterrupted,
//! starts the command and kills it, either with SIGKILL after a seeded random delay within
//! the time a whole run takes, or by aborting it at a named failure point. Then: `recover`
//! settles everything (nothing stuck, no temporary of ours left in the home or the store,
//! every session whole and exactly once), `verify` exits 0, `undo` repeated until nothing
//! is left gives back the home as it was before the setup, byte for byte, and, where
//! sampled, the real Codex's `doctor` finds its rollouts and its index agree.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::kill_home::{self, KillHome, RESTORED_SESSION};
use super::{assert_sessions_whole_and_consistent, session_hashes};

/// A writing command to kill, after the uninterrupted runs that set it up. `@plan` stands
/// for the id of the plan a dry run saves just before; `@session` for an archived session.
pub struct Scenario {
    pub name: &'static str,
    pub setup: &'static [&'static [&'static str]],
    pub killed: &'static [&'static str],
    pub broken_index: bool,
}

const ARCHIVE: &[&str] = &["archive", "--older-than", "10d", "--yes"];
const ARCHIVE_COMPRESS: &[&str] = &["archive", "--older-than", "10d", "--compress", "--yes"];
/// Sessions idle 30 days or more are retired, the younger ones archived: every category
/// of the kill home has actions.
const CLEANUP: &[&str] = &[
    "cleanup",
    "--yes",
    "--large-log-mb",
    "1",
    "--retire-min-age",
    "30d",
    "--plan",
    "@plan",
];
const REPAIR: &[&str] = &["repair", "--yes"];
const DECOMPRESS: &[&str] = &["decompress", "--yes"];
const RESTORE: &[&str] = &["restore", "@session"];
const UNDO: &[&str] = &["undo"];
/// Every archived session of the kill home is idle beyond 10 days, so each is retired.
const RETIRE: &[&str] = &[
    "cleanup",
    "--yes",
    "--only",
    "retire",
    "--retire-min-age",
    "10d",
    "--plan",
    "@plan",
];
const RESTORE_RETIRED: &[&str] = &["restore", "@session"];

/// `cleanup --only` each category: where one category's undo fails, the others are still
/// killed and checked on their own (the benchmark runs these; the test the whole cleanup).
macro_rules! cleanup_only {
    ($category:literal) => {
        &[
            "cleanup",
            "--yes",
            "--large-log-mb",
            "1",
            "--only",
            $category,
            "--plan",
            "@plan",
        ]
    };
}

pub const ONE_CATEGORY: &[Scenario] = &[
    Scenario {
        name: "cleanup --only sessions",
        setup: &[],
        killed: cleanup_only!("sessions"),
        broken_index: false,
    },
    Scenario {
        name: "cleanup --only compress",
        setup: &[],
        killed: cleanup_only!("compress"),
        broken_index: false,
    },
    Scenario {
        name: "cleanup --only logs",
        setup: &[],
        killed: cleanup_only!("logs"),
        broken_index: false,
    },
    Scenario {
        name: "cleanup --only worktrees",
        setup: &[],
        killed: cleanup_only!("worktrees"),
        broken_index: false,
    },
    Scenario {
        name: "cleanup --only releases",
        setup: &[],
        killed: cleanup_only!("releases"),
        broken_index: false,
    },
    Scenario {
        name: "cleanup --only projects",
        setup: &[],
        killed: cleanup_only!("projects"),
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only sessions",
        setup: &[cleanup_only!("sessions")],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only compress",
        setup: &[cleanup_only!("compress")],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only logs",
        setup: &[cleanup_only!("logs")],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only worktrees",
        setup: &[cleanup_only!("worktrees")],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only releases",
        setup: &[cleanup_only!("releases")],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only projects",
        setup: &[cleanup_only!("projects")],
        killed: UNDO,
        broken_index: false,
    },
];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "archive",
        setup: &[],
        killed: ARCHIVE,
        broken_index: false,
    },
    Scenario {
        name: "archive --compress",
        setup: &[],
        killed: ARCHIVE_COMPRESS,
        broken_index: false,
    },
    Scenario {
        name: "cleanup (every category)",
        setup: &[],
        killed: CLEANUP,
        broken_index: false,
    },
    Scenario {
        name: "repair",
        setup: &[],
        killed: REPAIR,
        broken_index: true,
    },
    Scenario {
        name: "decompress",
        setup: &[ARCHIVE_COMPRESS],
        killed: DECOMPRESS,
        broken_index: false,
    },
    Scenario {
        name: "restore <id>",
        setup: &[ARCHIVE_COMPRESS],
        killed: RESTORE,
        broken_index: false,
    },
    Scenario {
        name: "undo of archive",
        setup: &[ARCHIVE],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of archive --compress",
        setup: &[ARCHIVE_COMPRESS],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup",
        setup: &[CLEANUP],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of repair",
        setup: &[REPAIR],
        killed: UNDO,
        broken_index: true,
    },
    Scenario {
        name: "undo of decompress",
        setup: &[ARCHIVE_COMPRESS, DECOMPRESS],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "undo of restore",
        setup: &[ARCHIVE_COMPRESS, RESTORE],
        killed: UNDO,
        broken_index: false,
    },
    Scenario {
        name: "cleanup --only retire",
        setup: &[ARCHIVE_COMPRESS],
        killed: RETIRE,
        broken_index: false,
    },
    Scenario {
        name: "restore of a retired session",
        setup: &[ARCHIVE_COMPRESS, RETIRE],
        killed: RESTORE_RETIRED,
        broken_index: false,
    },
    Scenario {
        name: "undo of cleanup --only retire",
        setup: &[ARCHIVE_COMPRESS, RETIRE],
        killed: UNDO,
        broken_index: false,
    },
];

pub fn scenario(name: &str) -> &'static Scenario {
    SCENARIOS
        .iter()
        .chain(ONE_CATEGORY)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

/// The points a transcript's compression or decompression passes.
const RECODE_POINTS: &[&str] = &["recode-encoded", "recode-renamed", "recode-source-removed"];

/// Every named failure point: where one is never reached the run finishes and the round
/// checks an uninterrupted run instead.
pub fn failpoints() -> Vec<&'static str> {
    codex_maint::failpoint::SESSION_MOVE_POINTS
        .iter()
        .chain(codex_maint::failpoint::OTHER_POINTS)
        .chain(codex_maint::failpoint::RECLAIM_POINTS)
        .chain(RECODE_POINTS)
        .chain(codex_maint::failpoint::RETIRE_POINTS)
        .copied()
        .collect()
}

/// xorshift64*: enough to spread kill moments, with no dependency.
pub struct Moments(u64);

impl Moments {
    pub fn new(seed: u64) -> Moments {
        Moments(seed | 1)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// `CODEX_MAINT_KILL_SEED` replays a run; otherwise the clock picks one, printed.
pub fn seed() -> u64 {
    std::env::var("CODEX_MAINT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[derive(Clone, Debug)]
pub enum Kill {
    After(Duration),
    At(String),
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::After(d) => write!(f, "SIGKILL after {d:?}"),
            Kill::At(p) => write!(f, "failpoint {p}"),
        }
    }
}

/// What one round found. Each check is `None` where it was not made.
#[derive(Default, Debug)]
pub struct Round {
    /// The command was still running when killed (or stopped at its failure point).
    pub killed: bool,
    pub recovered: Option<bool>,
    pub verify_ok: Option<bool>,
    pub undone_exact: Option<bool>,
    pub parity_ok: Option<bool>,
    pub failures: Vec<String>,
}

impl Round {
    fn check(&mut self, what: &str, result: Result<(), String>) -> Option<bool> {
        if let Err(e) = &result {
            self.failures.push(format!("{what}: {e}"));
        }
        Some(result.is_ok())
    }
}

/// Codex's doctor, and its verdict on the home before any change: after the undo the
/// verdict must be "ok" again, or (for a home whose index was broken on purpose) the same
/// as before.
pub struct Doctor {
    pub bin: PathBuf,
    before: BTreeMap<bool, String>,
}

impl Doctor {
    pub fn new(bin: PathBuf) -> Doctor {
        let mut before = BTreeMap::new();
        for broken in [false, true] {
            let h = kill_home::build(broken);
            before.insert(broken, parity_status(&bin, &h.sb.home));
        }
        Doctor { bin, before }
    }

    fn expected(&self, broken: bool) -> &str {
        &self.before[&broken]
    }
}

fn parity_status(bin: &Path, home: &Path) -> String {
    let parity = super::codex_cli::rollout_db_parity(bin, home);
    parity["status"].as_str().unwrap_or("missing").to_string()
}

/// Runs codex-maint with `--json` on the round's home; an error names what went wrong
/// instead of panicking, so a benchmark can count it.
fn run(h: &KillHome, args: &[&str]) -> Result<(i32, Value), String> {
    let out =
        h.sb.cmd()
            .arg("--json")
            .args(args)
            .output()
            .map_err(|e| format!("{args:?}: {e}"))?;
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{args:?} exit {code}, stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((code, doc))
}

fn run_ok(h: &KillHome, args: &[&str]) -> Result<Value, String> {
    match run(h, args)? {
        (0, doc) => Ok(doc),
        (code, doc) => Err(format!("{args:?} exit {code}: {}", brief(&doc))),
    }
}

/// The part of a report that says what went wrong, short enough for a table's footnote.
fn brief(doc: &Value) -> String {
    let mut said = Vec::new();
    if let Some(m) = doc["error"]["message"].as_str() {
        said.push(m.to_string());
    }
    for key in ["problems", "conflicts", "verification_problems"] {
        if let Some(list) = doc["data"][key].as_array().filter(|l| !l.is_empty()) {
            said.push(format!("{key}: {}", Value::Array(list.clone())));
        }
    }
    if said.is_empty() {
        said.push(doc["sections"].to_string());
    }
    let text = said.join("; ");
    text.chars().take(600).collect()
}

/// The arguments with `@plan` and `@session` filled in for this home.
fn resolve(h: &KillHome, args: &[&str]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in args {
        out.push(match *a {
            "@plan" => {
                // The dry run reviews what the apply is asked for: one category, or all.
                let only = args
                    .iter()
                    .position(|a| *a == "--only")
                    .map(|i| args[i + 1]);
                let mut dry = vec!["cleanup", "--dry-run"];
                let mut rest = args[1..].iter();
                while let Some(a) = rest.next() {
                    match *a {
                        "--yes" => {}
                        "--plan" => {
                            rest.next();
                        }
                        other => dry.push(other),
                    }
                }
                let doc = run_ok(h, &dry)?;
                let plan = &doc["data"]["plan"];
                let mut categories: Vec<&str> = plan["actions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x["category"].as_str()).collect())
                    .unwrap_or_default();
                categories.sort();
                categories.dedup();
                let mut wanted = match only {
                    Some(c) => vec![c],
                    None => codex_maint::cleanup::CATEGORIES.to_vec(),
                };
                wanted.sort();
                // The harness's own precondition: a cleanup that skips a category would
                // leave that category's ops unkilled.
                assert_eq!(
                    categories, wanted,
                    "the kill home's plan covers every category asked for: {plan:#}"
                );
                plan["id"].as_str().unwrap().to_string()
            }
            "@session" => h.specs[RESTORED_SESSION as usize].id.clone(),
            other => other.to_string(),
        });
    }
    Ok(out)
}

/// Builds a home and runs the setup: the home as it was before anything ran, and the
/// killed command's arguments.
fn prepare(sc: &Scenario) -> Result<(KillHome, kill_home::HomeState, Vec<String>), String> {
    let h = kill_home::build(sc.broken_index);
    let before = h.state();
    for step in sc.setup {
        let args = resolve(&h, step)?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&h, &args).map_err(|e| format!("setup: {e}"))?;
    }
    let args = resolve(&h, sc.killed)?;
    Ok((h, before, args))
}

/// How long the command takes uninterrupted here, so kill moments spread over all of it
/// whatever the machine's speed: the shorter of two runs, as the first may pay for a cold
/// page cache. A run that fails unkilled is said, with the time it took to fail.
pub fn whole_run(sc: &Scenario) -> (Duration, Result<(), String>) {
    let mut times = Vec::new();
    for _ in 0..2 {
        let (h, _, args) = match prepare(sc) {
            Ok(p) => p,
            Err(e) => return (Duration::ZERO, Err(e)),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let outcome = run_ok(&h, &args);
        times.push(started.elapsed());
        if let Err(e) = outcome {
            return (started.elapsed(), Err(format!("uninterrupted run: {e}")));
        }
    }
    (times.into_iter().min().unwrap(), Ok(()))
}

/// Starts the command as `Sandbox::cmd` would and stops it as `kill` says; true when it
/// was stopped before it finished.
fn start_and_kill(h: &KillHome, args: &[String], kill: &Kill) -> bool {
    let mut cmd = h.sb.process();
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    match kill {
        Kill::At(point) => {
            use std::os::unix::process::ExitStatusExt;
            let status = cmd
                .env(codex_maint::failpoint::ENV_VAR, point)
                .status()
                .unwrap();
            // A failure point aborts; a run that failed on its own was not stopped by it.
            status.signal() == Some(libc::SIGABRT)
        }
        Kill::After(after) => {
            let mut child = cmd.spawn().unwrap();
            let deadline = Instant::now() + *after;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return false;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            let killed = child.try_wait().unwrap().is_none();
            child.kill().unwrap();
            child.wait().unwrap();
            killed
        }
    }
}

fn temporaries(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(codex_maint::fs_atomic::TEMP_PREFIX)
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

fn no_temporaries(h: &KillHome) -> Result<(), String> {
    let left: Vec<String> = temporaries(&h.sb.home)
        .into_iter()
        .chain(temporaries(&h.sb.store))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("temporaries left: {left:?}"))
    }
}

/// Every session once and whole; where the index agreed with the files at the start, it
/// agrees now.
fn sessions_whole(
    h: &KillHome,
    hashes: &BTreeMap<String, String>,
    index_agreed: bool,
) -> Result<(), String> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if index_agreed {
            assert_sessions_whole_and_consistent(&h.sb.home, hashes);
        } else {
            let now = session_hashes(&h.sb.home);
            for (id, hash) in hashes {
                assert_eq!(now.get(id), Some(hash), "session {id} lost or not whole");
            }
        }
    }));
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn recover(
    h: &KillHome,
    hashes: &BTreeMap<String, String>,
    index_agreed: bool,
) -> Result<(), String> {
    let doc = run_ok(h, &["recover"])?;
    if let Some(stuck) = doc["data"]["recovered"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["result"]["outcome"] == "stuck")
    {
        return Err(format!("stuck: {stuck}"));
    }
    no_temporaries(h)?;
    sessions_whole(h, hashes, index_agreed)
}

/// `undo` again and again until it says nothing is left, then the home against `before`.
fn undo_to_the_end(h: &KillHome, before: &kill_home::HomeState) -> Result<(), String> {
    let mut undos = 0;
    loop {
        let doc = run_ok(h, &["undo"])?;
        let said = doc["sections"].to_string();
        if said.contains("nothing: ") {
            break;
        }
        undos += 1;
        if undos > 8 {
            return Err(format!(
                "undo still finds something after {undos} runs: {said}"
            ));
        }
    }
    no_temporaries(h)?;
    let after = h.state();
    let mut diffs = codex_maint::testkit::fingerprint::differences(&before.files, &after.files);
    if before.rows != after.rows {
        diffs.push("thread rows differ".into());
    }
    if before.worktrees != after.worktrees {
        diffs.push(format!(
            "worktree registrations differ: {:?} -> {:?}",
            before.worktrees, after.worktrees
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// One round: build, set up, kill as `kill` says, then check everything. `doctor` is
/// `Some` when this round is one of those checked with Codex's own doctor.
pub fn round(sc: &Scenario, kill: &Kill, doctor: Option<&Doctor>) -> Round {
    let mut r = Round::default();
    let (h, before, args) = match prepare(sc) {
        Ok(p) => p,
        Err(e) => {
            r.failures.push(e);
            return r;
        }
    };
    let hashes: BTreeMap<String, String> = session_hashes(&h.sb.home);
    r.killed = start_and_kill(&h, &args, kill);
    r.recovered = r.check("recover", recover(&h, &hashes, !sc.broken_index));
    r.verify_ok = r.check(
        "verify",
        run(&h, &["verify"]).and_then(|(code, doc)| match code {
            0 => Ok(()),
            _ => Err(format!("exit {code}: {}", brief(&doc))),
        }),
    );
    r.undone_exact = r.check("undo to the end", undo_to_the_end(&h, &before));
    if let Some(d) = doctor {
        let expected = d.expected(sc.broken_index);
        let now = parity_status(&d.bin, &h.sb.home);
        r.parity_ok = r.check(
            "doctor parity",
            if now == expected {
                Ok(())
            } else {
                Err(format!(
                    "state.rollout_db_parity {now}, before any change {expected}"
                ))
            },
        );
    }
    r
}
