//! The pages under docs/ that are made rather than written: the command reference, from the
//! clap definitions, and the recorded `browse` session, drawn by the view's own code on a
//! synthetic home at a fixed clock. Each test fails when its committed page differs from
//! what the code makes now; `UPDATE_DOCS=1` (docs/record-browse.sh for the recording)
//! writes the page instead. The README's test command is checked against `.ci/run`, and
//! the frame the README shows against the recording.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use codex_maint::browse::keys::{Effect, on_key};
use codex_maint::browse::{Browser, view};
use codex_maint::commands::Context;
use codex_maint::commands::browse::perform;
use codex_maint::home::CodexHome;
use codex_maint::survey::session_list::SessionListing;
use codex_maint::testkit::synthetic_home::SessionSpec;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::PathBuf;
use support::*;

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Compares a made page with the committed one, or writes it under `UPDATE_DOCS=1`.
fn committed_or_updated(relative: &str, made: &str, how: &str) {
    let path = repo_file(relative);
    if std::env::var("UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, made).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{relative}: {e}; `{how}` writes it"));
    if committed != made {
        let first = committed
            .lines()
            .zip(made.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(made.lines().count()));
        panic!(
            "{relative} is stale from line {}: committed {:?}, made {:?}; run `{how}` and commit it",
            first + 1,
            committed.lines().nth(first),
            made.lines().nth(first)
        );
    }
}

#[test]
fn the_command_reference_is_the_parser_s_own() {
    let page = codex_maint::cli::reference_markdown();
    let first = page.lines().next().unwrap();
    assert!(
        first.contains("Generated") && first.contains(codex_maint::cli::reference::REGENERATE),
        "{first}"
    );
    // Every command `--help` lists has its section, with its arguments.
    for command in [
        "inspect", "sessions", "browse", "cleanup", "undo", "restore", "verify",
    ] {
        assert!(page.contains(&format!("\n## {command}\n")), "{command}");
    }
    assert!(page.contains("`--plan <ID>`"), "cleanup's --plan is listed");
    committed_or_updated(
        "docs/commands.md",
        &page,
        codex_maint::cli::reference::REGENERATE,
    );
}

#[test]
fn the_readme_s_test_command_is_the_one_ci_runs() {
    let ci = std::fs::read_to_string(repo_file(".ci/run")).unwrap();
    let test_command = ci
        .lines()
        .find(|l| l.starts_with("cargo test"))
        .expect(".ci/run runs cargo test");
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    assert!(
        readme
            .lines()
            .any(|l| l.split(" #").next().unwrap().trim() == test_command),
        "README shows `{test_command}` on a line of its own (a comment may follow), as .ci/run runs it"
    );
    assert!(
        readme.contains("cargo run --release -- inspect"),
        "README opens with the first command a newcomer runs"
    );
}

/// The clock every frame is drawn at.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// Ids shaped as Codex's, each told apart by its first eight characters.
fn id_for(n: u64) -> String {
    format!("{:08x}-0000-7000-8000-{n:012x}", 0x0196_a300 + n * 0x1_0101)
}

/// A small home as a person's looks: four projects, titles people gave their sessions, one
/// pinned and one archived.
const SESSIONS: &[(u64, i64, usize, &str, &str)] = &[
    (
        1,
        42,
        96_000,
        "/home/dev/shop-api",
        "Fix the flaky checkout test",
    ),
    (
        2,
        38,
        71_000,
        "/home/dev/shop-api",
        "Rate-limit POST /orders",
    ),
    (
        3,
        33,
        52_000,
        "/home/dev/shop-api",
        "Upgrade to Postgres 16",
    ),
    (
        4,
        12,
        18_000,
        "/home/dev/shop-api",
        "Review the refund webhook",
    ),
    (
        5,
        61,
        64_000,
        "/home/dev/web",
        "Port the cart page to React 19",
    ),
    (6, 95, 22_000, "/home/dev/web", "Why is the bundle 4 MB?"),
    (7, 27, 30_000, "/home/dev/dotfiles", "Tmux and zsh clean-up"),
    (
        8,
        3,
        8_000,
        "/home/dev/notes",
        "Summarise the Q3 incident notes",
    ),
];

fn recorded_home() -> Sandbox {
    let specs: Vec<SessionSpec> = SESSIONS
        .iter()
        .map(|&(n, idle_days, bytes, cwd, _)| {
            let last_active = now() - Duration::days(idle_days) - Duration::hours(n as i64);
            SessionSpec {
                id: id_for(n),
                started: last_active - Duration::minutes(40),
                last_active,
                target_bytes: bytes,
                archived: n == 6,
                pinned: n == 2,
                cwd: cwd.to_string(),
            }
        })
        .collect();
    let sb = Sandbox::with_sessions(&specs, true);
    // A Codex that reads .jsonl.zst was seen, so a compress mark may be planned.
    write_two_releases(&sb.home);
    let conn = rusqlite::Connection::open(sb.home.join("state_5.sqlite")).unwrap();
    for &(n, _, _, _, title) in SESSIONS {
        conn.execute(
            "UPDATE threads SET title = ?1, first_user_message = ?1 WHERE id = ?2",
            rusqlite::params![title, id_for(n)],
        )
        .unwrap();
    }
    sb
}

const WIDTH: u16 = 80;
const HEIGHT: u16 = 24;

fn frame(b: &mut Browser) -> String {
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    terminal
        .draw(|frame| {
            b.prepare(view::list_rows(view::body_area(frame.area())));
            view::draw(frame, b);
        })
        .unwrap();
    let buffer = terminal.backend().buffer();
    (0..HEIGHT)
        .map(|y| {
            let line: String = (0..WIDTH).map(|x| buffer[(x, y)].symbol()).collect();
            line.trim_end().to_string() + "\n"
        })
        .collect()
}

/// The recording: keys pressed on a fresh view, and the screens they lead to. The plan is
/// made by the command's own `perform`, as a key press at a terminal makes it.
fn browse_session() -> String {
    let sb = recorded_home();
    let home = CodexHome {
        root: sb.home.clone(),
    };
    let ctx = Context {
        home_flag: Some(sb.home.clone()),
        store_root: sb.store.clone(),
        json: false,
        argv: Vec::new(),
    };
    let listing = SessionListing::gather(&home, &sb.store).unwrap();
    let mut b = Browser::new(
        "~/.codex".into(),
        listing,
        Default::default(),
        now().timestamp(),
    );
    let page = usize::from(HEIGHT);
    let press = |b: &mut Browser, code: KeyCode| {
        let effect = on_key(b, KeyEvent::from(code), page);
        if effect != Effect::None {
            perform(&ctx, &home, b, effect);
        }
    };
    let mut out = String::new();
    let show = |out: &mut String, title: &str, keys: &str, screen: String| {
        out.push_str(&format!("\n## {title}\n\n{keys}\n\n```text\n{screen}```\n"));
    };
    show(
        &mut out,
        "The home by weight",
        "`codex-maint browse`: projects, heaviest first, with their share of the home.",
        frame(&mut b),
    );
    press(&mut b, KeyCode::Enter);
    show(
        &mut out,
        "One project's sessions",
        "`Enter` on the heaviest project: its sessions by title, size, idle time and state; \
         the pinned one says so and cannot be marked.",
        frame(&mut b),
    );
    press(&mut b, KeyCode::Char('c'));
    press(&mut b, KeyCode::Down);
    press(&mut b, KeyCode::Char('a'));
    show(
        &mut out,
        "Two sessions marked",
        "`c` marks the first to be archived and compressed; `Down` passes the pinned one; \
         `a` marks the next to be archived.",
        frame(&mut b),
    );
    press(&mut b, KeyCode::Char('p'));
    let plan_id = b
        .plan
        .as_ref()
        .and_then(|p| p.plan_id.clone())
        .expect("the marks make a plan");
    // The id hashes the sandbox's paths, so it is the one thing that differs between runs.
    let plan_frame = frame(&mut b).replace(&plan_id, &format!("{:<16}", "<plan id>"));
    show(
        &mut out,
        "The plan",
        "`p`: the marks as cleanup's own reviewed plan, what each category frees, and the \
         total. `y` would apply it as `cleanup --yes --plan <id>` does (backed up, journaled), \
         show the run in the log pane, and `u` would take it back.",
        plan_frame,
    );
    format!(
        "<!-- Recorded by docs/record-browse.sh (`UPDATE_DOCS=1 cargo test --test \
         docs_reference browse`): the view's own drawing code on a synthetic home at a fixed \
         clock, 80x24; edit the recorder in tests/docs_reference.rs, not this file. -->\n\n\
         # A recorded `browse` session\n\n\
         Four screens of `codex-maint browse` on a home of eight sessions in four projects, as \
         a terminal of 80 columns and 24 rows shows them. Nothing in the home changes until \
         `y` applies a plan.\n{out}"
    )
}

#[test]
fn the_recorded_browse_session_is_what_browse_draws_now() {
    let recording = browse_session();
    assert!(recording.contains("shop-api"), "{recording}");
    assert!(recording.contains("pinned"), "{recording}");
    assert!(recording.contains("y applies it"), "{recording}");
    committed_or_updated(
        "docs/browse-session.md",
        &recording,
        "docs/record-browse.sh",
    );
    // The README shows the first screen as it is recorded.
    let first_screen = recording
        .split("```text\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    assert!(
        readme.contains(first_screen),
        "README's browse screen differs from docs/browse-session.md's first; copy it over"
    );
}
