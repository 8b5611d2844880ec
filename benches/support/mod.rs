//! What the benchmarks share: running a workload or its baseline as a child process and
//! measuring its wall time and peak memory, cold or warm, and the plain tools compared.
#![allow(dead_code)]

pub mod codex_app;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct Measured {
    pub secs: f64,
    pub max_rss_mb: f64,
    pub ok: bool,
}

/// Runs `cmd`, waits with `wait4`, and returns wall time and the tree's peak RSS.
// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn measure(cmd: &mut Command) -> Measured {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, zero is a valid value; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        eprintln!(
            "  (exit {}) {}",
            libc::WEXITSTATUS(status),
            err.lines().take(3).collect::<Vec<_>>().join(" | ")
        );
    }
    Measured {
        secs,
        max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        ok,
    }
}

/// Empties the page cache so a measurement reads from disk, as a run over sessions idle
/// for weeks does. Needs root; without it the figures are warm-cache ones, and say so.
pub fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// `measure`, from a cold cache when possible; the flag says whether it was cold.
pub fn measure_cold(cmd: &mut Command) -> (Measured, bool) {
    let cold = drop_caches();
    (measure(cmd), cold)
}

pub fn sh(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script);
    c
}

/// The fastest of `n` runs: the figure least disturbed by the rest of the machine.
pub fn best_of(n: usize, mut make: impl FnMut() -> Command) -> Measured {
    let mut best: Option<Measured> = None;
    for _ in 0..n {
        let m = measure(&mut make());
        if best.as_ref().is_none_or(|b| m.secs < b.secs) {
            best = Some(m);
        }
    }
    best.expect("n > 0")
}

/// b3sum from PATH, else built once into `target/bench-tools` from crates.io.
pub fn find_or_install_b3sum() -> Option<PathBuf> {
    if Command::new("b3sum")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(PathBuf::from("b3sum"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-tools");
    let bin = root.join("bin/b3sum");
    if !bin.exists() {
        eprintln!("installing b3sum into {} (once) ...", root.display());
        let ok = Command::new("cargo")
            .args(["install", "b3sum", "--locked", "--quiet", "--root"])
            .arg(&root)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    Some(bin)
}

/// A fresh folder for a benchmark's homes, under `$CODEX_MAINT_BENCH_DIR` (default: the temp
/// folder), removed when dropped.
pub fn bench_dir(prefix: &str) -> tempfile::TempDir {
    let base = std::env::var_os("CODEX_MAINT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .unwrap()
}

/// codex-maint on `home` and `store`, with `--json`, and a `HOME` inside the bench folder
/// so nothing reaches the machine's own home.
pub fn ours_in(bin: &Path, home: &Path, store: &Path, sandbox: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--home")
        .arg(home)
        .arg("--store")
        .arg(store)
        .arg("--json")
        .args(args)
        .env("HOME", sandbox);
    c
}
