//! The cold tier's bytes and speed: transcripts held as packed objects (chunked, deduped,
//! compressed in blocks with a dictionary trained on the store's own sessions) against the
//! same files as `.jsonl.zst` (the compress tier's encoder) and plain.
//!
//! 1. Real transcripts: N sessions (240 quick) written by the real Codex CLI against the
//!    stand-in model server, with varied commands and turn counts; built once into
//!    `target/bench-corpus-cold`.
//! 2. Generated transcripts (`testkit::synthetic_home`), the same comparison.
//! 3. Reading one ~50 KB object back from a store holding 100,000 objects.
//!
//! `cargo bench --bench cold_tier`. Needs the real Codex CLI (.ci/run installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "../tests/support/model_server.rs"]
mod model_server;

/// Commands whose output fills the corpus's tool calls: listings, history, source files.
fn corpus_commands() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut commands = vec![
        "ls -la /usr/bin | head -400".to_string(),
        "ls -laR /usr/share/doc | head -1500".to_string(),
        format!("git -C {root} log --stat -n 30"),
        format!("git -C {root} log --oneline -n 200"),
        "ps aux".to_string(),
        "env | sort | head -40".to_string(),
        "df -h".to_string(),
        format!("grep -rn 'pub fn' {root}/src | head -300"),
    ];
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(Path::new(root).join("src"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    commands.extend(files.iter().map(|f| format!("cat {}", f.display())));
    commands
}

/// Runs one session of `turns` turns in `home`, each turn one command through Codex's own
/// exec tool, against a model server of its own (the stand-in stops after ten minutes).
fn one_session(codex: &Path, home: &Path, work: &Path, prompts: &[String]) {
    let server = model_server::ModelServer::start();
    std::fs::write(home.join("config.toml"), server.config_toml()).unwrap();
    let mut id: Option<String> = None;
    for prompt in prompts {
        let mut cmd = Command::new(codex);
        cmd.env("CODEX_HOME", home)
            .env_remove("OPENAI_API_KEY")
            .current_dir(work)
            .stdin(Stdio::null());
        match &id {
            None => cmd.args(["exec", "--skip-git-repo-check", prompt]),
            Some(id) => cmd.args(["exec", "--skip-git-repo-check", "resume", id, prompt]),
        };
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "codex exec failed:\n{text}");
        if id.is_none() {
            id = text
                .lines()
                .find_map(|l| l.strip_prefix("session id: "))
                .map(|s| s.trim().to_string());
        }
    }
}

/// Real transcripts, built once: `sessions` sessions on three homes at once, turn counts 1
/// to 6 and commands varied by a fixed sequence, so reruns give the same corpus shape.
fn real_corpus(codex: &Path, sessions: usize) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-corpus-cold");
    let done = root.join("complete");
    const HOMES: usize = 3;
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&root);
        eprintln!(
            "building the real-transcript corpus in {} (once) ...",
            root.display()
        );
        let commands = corpus_commands();
        std::thread::scope(|scope| {
            for h in 0..HOMES {
                let root = &root;
                let commands = &commands;
                scope.spawn(move || {
                    let home = root.join(format!("home{h}"));
                    let work = root.join(format!("work{h}"));
                    std::fs::create_dir_all(&home).unwrap();
                    std::fs::create_dir_all(&work).unwrap();
                    for s in (h..sessions).step_by(HOMES) {
                        let turns = 1 + (s * 7 + 3) % 6;
                        let prompts: Vec<String> = (0..turns)
                            .map(|t| {
                                let k = (s * 13 + t * 29) % commands.len();
                                match t % 3 {
                                    0 => format!("RUN: {}", commands[k]),
                                    1 => format!("Please look at this. RUN: {}", commands[k]),
                                    _ => format!(
                                        "Session {s} turn {t}: summarise what you found so far."
                                    ),
                                }
                            })
                            .collect();
                        one_session(codex, &home, &work, &prompts);
                        if s % 30 == 0 {
                            eprintln!("  session {s} of {sessions}");
                        }
                    }
                });
            }
        });
        std::fs::write(&done, "").unwrap();
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

fn main() {
    let Some(codex) = codex_maint::testkit::installed_codex() else {
        eprintln!("the real Codex CLI is not installed: run .ci/run (it installs it) first");
        std::process::exit(2);
    };
    let sessions: usize = std::env::var("CODEX_MAINT_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(240);
    let real = real_corpus(&codex, sessions);
    println!("real corpus: {} transcripts", real.len());
}
