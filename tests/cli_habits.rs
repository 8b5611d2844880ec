//! What a CLI user expects: completions and a man page out of the binary, a version that
//! names the catalog format, `--yes` accepted by undo, a bare non-interactive cleanup that
//! says what to run, a README that stands alone, and dev servers told apart by their ports.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use std::path::Path;
use support::*;

fn stdout_of(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_come_out_for_every_shell_and_name_the_commands() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = stdout_of(&sb, &["completions", shell]);
        for word in ["codex-maint", "restore", "skill", "--dry-run"] {
            assert!(script.contains(word), "{shell} completions name {word}");
        }
    }
    assert_eq!(
        sb.cmd()
            .args(["completions", "tcsh"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn the_man_page_is_roff_with_the_commands() {
    let sb = Sandbox::new();
    let page = stdout_of(&sb, &["man"]);
    assert!(page.contains(".TH codex-maint 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "{section}");
    }
    assert!(page.contains("cleanup") && page.contains("restore"));
}

#[test]
fn the_version_names_the_catalog_format_the_newest_migration() {
    let newest = std::fs::read_dir("migrations")
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.split('_').next()?.parse::<u32>().ok()
        })
        .max()
        .unwrap();
    let sb = Sandbox::new();
    let version = stdout_of(&sb, &["--version"]);
    assert_eq!(
        version.trim(),
        format!(
            "codex-maint {} (catalog format {newest})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn undo_accepts_yes() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(1, 30.0, 3000)], true);
    sb.ok_json(&["archive", &SessionSpec::aged(1, 30.0, 3000).id]);
    let doc = sb.ok_json(&["undo", "--yes"]);
    assert_eq!(doc["data"]["reverted"].as_array().unwrap().len(), 1);
}

#[test]
fn a_bare_cleanup_without_a_terminal_says_exactly_what_to_run() {
    let specs: Vec<SessionSpec> = (0..3).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let files = sb.home_files();
    let (code, doc) = sb.json(&["cleanup"]);
    assert_eq!(code, 3, "{doc:#}");
    let message = error_message(&doc);
    assert!(
        message.contains("codex-maint cleanup --dry-run"),
        "{message}"
    );
    assert!(
        message.contains("codex-maint cleanup --yes --plan"),
        "{message}"
    );
    assert!(!message.contains("rerun with --yes"), "{message}");
    assert_eq!(sb.home_files(), files);

    // The id it names is the one the dry run then saves.
    let plan = sb.ok_json(&["cleanup", "--dry-run"]);
    let id = plan["data"]["plan"]["id"].as_str().unwrap();
    assert!(message.contains(id), "{message} names plan {id}");
    let proposed = texts(&plan["sections"][1]["items"]);
    assert!(
        proposed.iter().any(|p| p.contains("will archive")),
        "a plan speaks of what will happen: {proposed:?}"
    );
    assert!(
        !proposed.iter().any(|p| p.contains(" archived ")),
        "{proposed:?}"
    );
}

#[test]
fn the_readme_stands_alone_and_promises_the_rust_version_cargo_states() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for outside in ["](http", "](/", "](../", "http://", "https://", "../"] {
        assert!(
            !readme.contains(outside),
            "README points outside the repository: {outside}"
        );
    }
    for link in readme.split("](").skip(1) {
        let target = link.split(')').next().unwrap();
        let file = target.split('#').next().unwrap();
        assert!(
            Path::new(file).exists(),
            "README links {target}, which is not in the repository"
        );
    }
    let cargo = std::fs::read_to_string("Cargo.toml").unwrap();
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml states rust-version")
        .trim_matches('"');
    assert!(
        readme.contains(&format!("Rust {msrv} or newer")),
        "README promises Rust {msrv}"
    );
    assert!(readme.contains("docs/safety.md"));
}

/// A symlink named `node` runs the program it points to under that name, as a dev server
/// would appear.
fn spawn_named_node(dir: &Path, program: &str, args: &[&str]) -> std::process::Child {
    let bin = dir.join("node-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let node = bin.join("node");
    let _ = std::fs::remove_file(&node);
    let target = ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{program} is installed"));
    std::os::unix::fs::symlink(target, &node).unwrap();
    std::process::Command::new(&node)
        .args(args)
        .spawn()
        .unwrap()
}

fn dev_server_pids(sb: &Sandbox) -> Vec<u64> {
    let doc = sb.ok_json(&["inspect"]);
    doc["data"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "dev_server")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_node_process_is_a_dev_server_only_when_it_serves_a_port() {
    let sb = Sandbox::with_sessions(&[SessionSpec::aged(1, 30.0, 3000)], true);
    let mut idle = spawn_named_node(sb.dir.path(), "sleep", &["30"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut serving = spawn_named_node(
        sb.dir.path(),
        "python3",
        &[
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ],
    );
    // The server needs a moment to bind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let found = dev_server_pids(&sb);
    let doc = sb.ok_json(&["inspect"]);
    for child in [&mut idle, &mut serving] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        !found.contains(&(idle.id() as u64)),
        "an idle node serves nothing: {found:?}"
    );
    assert!(
        found.contains(&(serving.id() as u64)),
        "a node serving port {port}: {found:?}"
    );
    let why = doc["data"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(serving.id() as u64))
        .map(|p| p["why"].as_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(why.contains(&port.to_string()), "{why}");
}

/// The binary as `sb.cmd()` runs it, with stdout (and, when asked, stderr) a pipe whose
/// reader is already gone, as `codex-maint … | head` leaves it once `head` has its lines.
fn run_into_a_closed_pipe(sb: &Sandbox, args: &[&str], stderr_too: bool) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("codex-maint"));
    cmd.env("HOME", sb.dir.path())
        .env("CODEX_HOME", &sb.home)
        .env("CODEX_MAINT_STORE", &sb.store)
        .env_remove(codex_maint::failpoint::ENV_VAR)
        .arg("--home")
        .arg(&sb.home)
        .arg("--store")
        .arg(&sb.store)
        .args(args)
        .stdin(std::process::Stdio::null());
    if stderr_too {
        cmd.stderr(writer.try_clone().unwrap());
    } else {
        cmd.stderr(std::process::Stdio::piped());
    }
    cmd.stdout(writer);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{args:?} into a closed pipe panicked: {stderr}"
    );
    out
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_and_never_cuts_its_work_short() {
    let specs: Vec<SessionSpec> = (0..3).map(|i| SessionSpec::aged(i, 30.0, 2500)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    for args in [
        &["inspect"][..],
        &["--json", "inspect"],
        &["man"],
        &["completions", "bash"],
    ] {
        let out = run_into_a_closed_pipe(&sb, args, false);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?} ends quietly: {out:?}");
    }
    // A writing command: its work is done before anything is printed.
    let out = run_into_a_closed_pipe(&sb, &["archive", "--older-than", "10d", "--yes"], true);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let active = sb.home.join("sessions");
    for spec in &specs {
        assert!(
            !codex_maint::testkit::fingerprint::tree_fingerprint(&active)
                .keys()
                .any(|k| k.contains(&spec.id)),
            "{} was archived",
            spec.id
        );
    }
    let (code, verify) = sb.json(&["verify"]);
    assert_eq!(code, 0, "the archive run finished whole: {verify:#}");
    // An error, with stdout and stderr both closed, keeps the exit code it earned.
    let out = run_into_a_closed_pipe(&sb, &["--json", "archive", "no-such-session"], true);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_ne!(out.status.code(), Some(101), "{out:?}");
}

#[test]
fn each_report_names_its_own_mode() {
    let specs: Vec<SessionSpec> = (0..2).map(|i| SessionSpec::aged(i, 30.0, 2500)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    for (args, mode) in [
        (&["repair", "--dry-run"][..], "repair"),
        (&["decompress", "--dry-run"], "decompress"),
        (&["archive", "--older-than", "10d", "--dry-run"], "archive"),
        (&["inspect"], "inspect"),
        (&["cleanup", "--dry-run"], "cleanup"),
    ] {
        let doc = sb.ok_json(args);
        assert_eq!(doc["mode"], mode, "{args:?}: {doc:#}");
        let text = String::from_utf8(sb.cmd().args(args).output().unwrap().stdout).unwrap();
        assert!(
            text.contains(&format!("Mode:\n- {mode}\n")),
            "{args:?}:\n{text}"
        );
    }
}
