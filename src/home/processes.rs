//! Is Codex running? Codex processes (native binary, `node .../bin/codex`, the desktop app,
//! the app-server daemon) and, for inspect, dev servers: processes named like one (node,
//! vite, ...) that serve a TCP port. Nothing is ever signalled.

use serde::Serialize;
use std::path::{Path, PathBuf};
use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind};

use super::{CodexHome, DAEMON_PID_FILE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    CodexCli,
    CodexApp,
    CodexDaemon,
    DevServer,
}

#[derive(Debug, Clone, Serialize)]
pub struct FoundProcess {
    pub pid: u32,
    pub kind: ProcessKind,
    pub command: String,
    pub age_secs: u64,
    /// Whether it can be using this home: its `CODEX_HOME` (or `~/.codex`) is this home,
    /// or that cannot be told. Only those block a change.
    pub uses_this_home: bool,
    pub why: String,
    pub how_to_stop: String,
}

const DEV_SERVER_NAMES: &[&str] = &["node", "bun", "vite", "next", "webpack", "tsx", "deno"];

/// Every Codex process (and dev server, when asked); an error when the process table
/// cannot be read, because then "Codex is not running" cannot be claimed.
pub fn scan(home: &CodexHome, include_dev_servers: bool) -> anyhow::Result<Vec<FoundProcess>> {
    let mut system = System::new().map_err(|e| anyhow::anyhow!("cannot list processes: {e:?}"))?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing()
            .with_cmd(UpdateKind::Always)
            .with_exe(UpdateKind::Always)
            .with_environ(UpdateKind::Always),
    );
    let daemon_pid = daemon_pid(home);
    let listening = if include_dev_servers {
        super::listening_ports::listening_sockets()
    } else {
        Default::default()
    };
    let me = std::process::id();
    let mut found = Vec::new();
    for (pid, process) in system.processes() {
        let pid = pid.as_u32();
        if pid == me || process.thread_kind().is_some() {
            continue;
        }
        if matches!(
            process.status(),
            ProcessStatus::Zombie | ProcessStatus::Dead
        ) {
            continue;
        }
        let name = process.name().to_string_lossy().into_owned();
        let cmd: Vec<String> = process
            .cmd()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // A command line is readable for every process but one that is exiting (or a
        // kernel thread): such a process can no longer write anything.
        if cmd.is_empty() && process.environ().is_empty() {
            continue;
        }
        let exe = process.exe().map(Path::to_path_buf);
        let command = if cmd.is_empty() {
            name.clone()
        } else {
            cmd.join(" ")
        };
        let Some(kind) = classify(&name, exe.as_deref(), &cmd, daemon_pid == Some(pid)) else {
            continue;
        };
        let mut ports = Vec::new();
        if kind == ProcessKind::DevServer {
            if !include_dev_servers {
                continue;
            }
            ports = super::listening_ports::ports_of(pid, &listening);
            if ports.is_empty() {
                continue;
            }
        }
        let environ: Vec<String> = process
            .environ()
            .iter()
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        let uses_this_home = kind != ProcessKind::DevServer
            && process_uses_home(&environ, home, daemon_pid == Some(pid));
        let (why, how_to_stop) = explain(kind, uses_this_home, pid, &ports);
        found.push(FoundProcess {
            pid,
            kind,
            command: truncate(&command, 200),
            age_secs: process.run_time(),
            uses_this_home,
            why,
            how_to_stop,
        });
    }
    found.sort_by_key(|p| (p.kind == ProcessKind::DevServer, p.pid));
    Ok(found)
}

fn classify(
    name: &str,
    exe: Option<&Path>,
    cmd: &[String],
    is_daemon: bool,
) -> Option<ProcessKind> {
    let exe_name = exe
        .and_then(|e| e.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv0 = cmd.first().map(|a| base_name(a)).unwrap_or_default();
    let is_codex_binary = |n: &str| n == "codex" || n == "codex.exe";
    if is_daemon {
        return Some(ProcessKind::CodexDaemon);
    }
    if is_codex_binary(name) || is_codex_binary(&exe_name) || is_codex_binary(&argv0) {
        // The daemon's helper that keeps its pid file current opens no database and
        // outlives `codex app-server daemon stop` by half a minute or more: not a writer.
        if cmd.iter().any(|a| a == "pid-update-loop") {
            return None;
        }
        let daemon = cmd.iter().any(|a| a == "app-server") && cmd.iter().any(|a| a == "daemon");
        return Some(if daemon {
            ProcessKind::CodexDaemon
        } else {
            ProcessKind::CodexCli
        });
    }
    if name == "Codex"
        || exe_name == "Codex"
        || exe.is_some_and(|e| e.to_string_lossy().contains("Codex.app/"))
    {
        return Some(ProcessKind::CodexApp);
    }
    let is_node = matches!(name, "node" | "bun") || matches!(exe_name.as_str(), "node" | "bun");
    if is_node
        && cmd
            .iter()
            .skip(1)
            .take(2)
            .any(|a| a.ends_with("/bin/codex") || a.ends_with("codex.js"))
    {
        return Some(ProcessKind::CodexCli);
    }
    if DEV_SERVER_NAMES.contains(&name) || DEV_SERVER_NAMES.contains(&exe_name.as_str()) {
        return Some(ProcessKind::DevServer);
    }
    None
}

fn base_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A process whose environment we cannot read might be using this home, so it counts.
fn process_uses_home(environ: &[String], home: &CodexHome, is_this_homes_daemon: bool) -> bool {
    if is_this_homes_daemon || environ.is_empty() {
        return true;
    }
    let var = |key: &str| {
        environ
            .iter()
            .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    let their_home: Option<PathBuf> = match var("CODEX_HOME").filter(|v| !v.is_empty()) {
        Some(h) => Some(PathBuf::from(h)),
        None => var("HOME").map(|h| PathBuf::from(h).join(".codex")),
    };
    match their_home {
        Some(h) => super::same_file(&h, &home.root) || h == home.root,
        None => true,
    }
}

/// The daemon writes its pid as JSON (`{"pid": ..}`); older ones wrote a bare number.
fn daemon_pid(home: &CodexHome) -> Option<u32> {
    let text = crate::regular_file::read_to_string(&home.root.join(DAEMON_PID_FILE)).ok()?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(pid) = v.get("pid").and_then(|p| p.as_u64()) {
            return Some(pid as u32);
        }
        if let Some(pid) = v.as_u64() {
            return Some(pid as u32);
        }
    }
    text.trim().parse().ok()
}

fn explain(kind: ProcessKind, uses_this_home: bool, pid: u32, ports: &[u16]) -> (String, String) {
    let scope = if uses_this_home {
        "uses this Codex home"
    } else {
        "uses another Codex home"
    };
    match kind {
        ProcessKind::CodexCli => (
            format!("Codex CLI; {scope} and may write sessions and databases"),
            format!("finish or quit that Codex session (or `kill {pid}` yourself)"),
        ),
        ProcessKind::CodexApp => (
            format!("Codex desktop app; {scope} and keeps its databases open"),
            "quit the Codex app".into(),
        ),
        ProcessKind::CodexDaemon => (
            format!(
                "Codex app-server daemon; {scope}, stays after the TUI exits and keeps the databases open"
            ),
            "run `codex app-server daemon stop`".into(),
        ),
        ProcessKind::DevServer => (
            format!(
                "dev server serving port {}; may hold files in a worktree open",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("stop it where it was started (or `kill {pid}` yourself)"),
        ),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

/// Codex processes that block a change of this home.
pub fn blocking(home: &CodexHome) -> anyhow::Result<Vec<FoundProcess>> {
    Ok(scan(home, false)?
        .into_iter()
        .filter(|p| p.uses_this_home)
        .collect())
}

pub fn describe(p: &FoundProcess) -> String {
    format!(
        "pid {} ({:?}, running {}): {} — {}; to stop: {}",
        p.pid,
        p.kind,
        crate::clock::human_age(p.age_secs),
        p.command,
        p.why,
        p.how_to_stop
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_forms_are_recognised_and_codex_maint_is_not() {
        let cmd = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            classify("codex", None, &cmd("codex exec hi"), false),
            Some(ProcessKind::CodexCli)
        );
        assert_eq!(
            classify("codex", None, &cmd("codex app-server daemon run"), false),
            Some(ProcessKind::CodexDaemon)
        );
        assert_eq!(
            classify(
                "node",
                None,
                &cmd("node /usr/lib/node_modules/@openai/codex/bin/codex exec"),
                false
            ),
            Some(ProcessKind::CodexCli)
        );
        assert_eq!(
            classify("codex-maint", None, &cmd("codex-maint archive"), false),
            None
        );
        assert_eq!(
            classify(
                "codex",
                None,
                &cmd("codex app-server daemon pid-update-loop"),
                false
            ),
            None,
            "the pid-file helper writes no database"
        );
        assert_eq!(
            classify("vite", None, &cmd("vite dev"), false),
            Some(ProcessKind::DevServer)
        );
        assert_eq!(
            classify("sleep", None, &cmd("sleep 5"), true),
            Some(ProcessKind::CodexDaemon)
        );
    }

    #[test]
    fn another_homes_codex_does_not_block_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let home = CodexHome {
            root: dir.path().to_path_buf(),
        };
        let other = vec!["CODEX_HOME=/somewhere/else".to_string()];
        let same = vec![format!("CODEX_HOME={}", dir.path().display())];
        assert!(!process_uses_home(&other, &home, false));
        assert!(process_uses_home(&same, &home, false));
        assert!(
            process_uses_home(&[], &home, false),
            "unreadable environment counts as this home"
        );
    }
}
