//! Only regular files are opened: a FIFO, a unix socket and a symlink named like a
//! transcript, and a FIFO as `config.toml` and as a log, make every command finish (a
//! hang fails the test through its timeout), report the item, and leave it as it was.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// Far longer than any of these commands takes on this home; a hang stops here.
const NO_HANG: Duration = Duration::from_secs(60);

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "{path:?}");
}

struct Odd {
    sb: Sandbox,
    fifo: PathBuf,
    socket: PathBuf,
    link: PathBuf,
    _listener: std::os::unix::net::UnixListener,
}

/// A home of old sessions, and beside them, in the dated folder of an old session, a
/// FIFO, a socket and a symlink with transcript names; a FIFO config.toml and log.
fn odd_home() -> Odd {
    let specs: Vec<SessionSpec> = (0..4).map(|i| SessionSpec::aged(i, 30.0, 3000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let dated = specs[0].path_in(&sb.home).parent().unwrap().to_path_buf();
    // The first session's name with another thread's id: same dated folder.
    let name = |n: u64| {
        specs[0]
            .file_name()
            .replace(&specs[0].id, &SessionSpec::aged(100 + n, 30.0, 10).id)
    };
    let fifo = dated.join(name(0));
    mkfifo(&fifo);
    let socket = dated.join(name(1));
    // A socket's path must fit in sun_path: bound under a short name, then moved in.
    let short = tempfile::tempdir().unwrap();
    let listener = std::os::unix::net::UnixListener::bind(short.path().join("s")).unwrap();
    std::fs::rename(short.path().join("s"), &socket).unwrap();
    let link = dated.join(name(2));
    std::os::unix::fs::symlink(specs[1].path_in(&sb.home), &link).unwrap();
    let _ = std::fs::remove_file(sb.home.join("config.toml"));
    mkfifo(&sb.home.join("config.toml"));
    std::fs::create_dir_all(sb.home.join("log")).unwrap();
    mkfifo(&sb.home.join("log/codex-tui.log"));
    // An old daemon release holding a FIFO: storing it would have tar open the FIFO.
    let releases = sb.home.join("packages/app-server-daemon/releases");
    for v in [
        "0.160.0-x86_64-unknown-linux-musl",
        "0.169.0-x86_64-unknown-linux-musl",
    ] {
        std::fs::create_dir_all(releases.join(v).join("bin")).unwrap();
        std::fs::write(releases.join(v).join("bin/codex"), "binary\n").unwrap();
    }
    mkfifo(&releases.join("0.160.0-x86_64-unknown-linux-musl/bin/pipe"));
    std::os::unix::fs::symlink(
        "releases/0.169.0-x86_64-unknown-linux-musl",
        sb.home.join("packages/app-server-daemon/current"),
    )
    .unwrap();
    Odd {
        sb,
        fifo,
        socket,
        link,
        _listener: listener,
    }
}

impl Odd {
    fn old_release_pipe(&self) -> PathBuf {
        self.sb
            .home
            .join("packages/app-server-daemon/releases/0.160.0-x86_64-unknown-linux-musl/bin/pipe")
    }

    fn run(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self
            .sb
            .cmd()
            .arg("--json")
            .args(args)
            .timeout(NO_HANG)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        assert_ne!(code, -1, "{args:?} did not finish within {NO_HANG:?}");
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: {e}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, doc)
    }

    fn odd_ones(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        [
            &self.fifo,
            &self.socket,
            &self.link,
            &self.sb.home.join("config.toml"),
            &self.sb.home.join("log/codex-tui.log"),
            &self.old_release_pipe(),
        ]
        .iter()
        .map(|p| (p.to_path_buf(), std::fs::symlink_metadata(p).unwrap()))
        .collect()
    }

    fn assert_untouched(&self, before: &[(PathBuf, std::fs::Metadata)]) {
        use std::os::unix::fs::MetadataExt as _;
        for (path, was) in before {
            let now = std::fs::symlink_metadata(path)
                .unwrap_or_else(|e| panic!("{} is gone: {e}", path.display()));
            assert_eq!(
                (now.ino(), now.mode(), now.mtime_nsec(), now.mtime()),
                (was.ino(), was.mode(), was.mtime_nsec(), was.mtime()),
                "{} changed",
                path.display()
            );
        }
    }
}

/// Whether `doc` mentions `path` with a reason saying it is not a regular file / a link.
fn reports(doc: &serde_json::Value, path: &Path, why: &str) -> bool {
    let name = path.file_name().unwrap().to_str().unwrap();
    let text = doc.to_string();
    text.split(name).skip(1).any(|after| {
        after
            .split(name)
            .next()
            .unwrap_or_default()
            .chars()
            .take(400)
            .collect::<String>()
            .contains(why)
    })
}

#[test]
fn inspect_archive_and_cleanup_finish_and_keep_what_is_not_a_regular_file() {
    let odd = odd_home();
    let before = odd.odd_ones();

    let (code, doc) = odd.run(&["inspect"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        reports(&doc, &odd.fifo, "not a regular file (a FIFO)"),
        "{doc:#}"
    );
    assert!(
        reports(&doc, &odd.socket, "not a regular file (a socket)"),
        "{doc:#}"
    );
    odd.assert_untouched(&before);

    let (code, doc) = odd.run(&["cleanup", "--dry-run"]);
    assert_eq!(code, 0, "{doc:#}");
    for (path, why) in [
        (&odd.fifo, "not a regular file (a FIFO)"),
        (&odd.socket, "not a regular file (a socket)"),
        (&odd.link, "symlink"),
    ] {
        assert!(
            reports(&doc, path, why),
            "{} kept with '{why}': {doc:#}",
            path.display()
        );
    }
    assert!(
        reports(
            &doc,
            &odd.sb.home.join("config.toml"),
            "not a regular file (a FIFO)"
        ),
        "{doc:#}"
    );
    assert!(
        reports(&doc, &odd.old_release_pipe(), "not a regular file"),
        "the old release is kept: {doc:#}"
    );
    odd.assert_untouched(&before);
    let id = doc["data"]["plan"]["id"].as_str().unwrap().to_string();

    let (code, doc) = odd.run(&["cleanup", "--yes", "--plan", &id]);
    assert!(code == 0 || code == 4, "{doc:#}");
    assert!(
        !doc["data"]["done"].as_array().unwrap().is_empty(),
        "{doc:#}"
    );
    odd.assert_untouched(&before);

    let (code, doc) = odd.run(&["undo"]);
    assert_eq!(code, 0, "{doc:#}");
    let (code, doc) = odd.run(&["archive", "--older-than", "10d", "--yes"]);
    assert_eq!(code, 0, "{doc:#}");
    assert!(
        reports(&doc, &odd.fifo, "not a regular file (a FIFO)"),
        "{doc:#}"
    );
    odd.assert_untouched(&before);
    let (code, doc) = odd.run(&["verify"]);
    assert_eq!(code, 0, "{doc:#}");
}
