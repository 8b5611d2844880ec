//! `browse`: what it draws (snapshots at 80x24 and 200x60 of the home list, a group drilled
//! into and the plan pane, on a home with fixed dates and a fixed clock), that a protected
//! session cannot be marked, that marks plan only the marked sessions, that a title cannot
//! drive the terminal, and that without a terminal it draws nothing and exits 2.
//!
//! Snapshots live in tests/snapshots/browse/; `BROWSE_SNAPSHOTS=update` rewrites them
//! (then read the diff before committing it).

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use codex_maint::browse::keys::{Effect, on_key};
use codex_maint::browse::plan::plan_marks;
use codex_maint::browse::{Browser, model::path_key, view};
use codex_maint::home::CodexHome;
use codex_maint::survey::session_list::{SessionListing, SessionState};
use codex_maint::testkit::synthetic_home::SessionSpec;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::{Path, PathBuf};
use support::*;

/// The clock every snapshot is drawn at.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// Ids shaped as Codex's, each told apart by its first eight characters as real ones are.
fn id_for(n: u64) -> String {
    format!("{:08x}-0000-7000-8000-{n:012x}", 0x0195_a300 + n * 0x1_0101)
}

fn spec(n: u64, idle_days: i64, bytes: usize, cwd: &str) -> SessionSpec {
    let last_active = now() - Duration::days(idle_days) - Duration::hours(n as i64);
    SessionSpec {
        id: id_for(n),
        started: last_active - Duration::minutes(30),
        last_active,
        target_bytes: bytes,
        archived: false,
        pinned: false,
        cwd: cwd.to_string(),
    }
}

const HOSTILE_TITLE: &str = "fix \u{1b}[2J\u{1b}]0;owned\u{7} the build";

/// Three projects of different weights; one pinned session, one archived, one with a title
/// that holds escape sequences.
fn specs() -> Vec<SessionSpec> {
    let mut specs = vec![
        spec(1, 40, 90_000, "/work/api"),
        spec(2, 35, 60_000, "/work/api"),
        spec(3, 30, 30_000, "/work/api"),
        spec(4, 60, 40_000, "/work/web"),
        spec(5, 90, 20_000, "/work/web"),
        spec(6, 20, 10_000, "/work/notes"),
    ];
    specs[1].pinned = true;
    specs[4].archived = true;
    specs
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::with_sessions(&specs(), true);
    let conn = rusqlite::Connection::open(sb.home.join("state_5.sqlite")).unwrap();
    conn.execute(
        "UPDATE threads SET title = ?1 WHERE id = ?2",
        rusqlite::params![HOSTILE_TITLE, id_for(3)],
    )
    .unwrap();
    sb
}

fn browser(sb: &Sandbox) -> Browser {
    let home = CodexHome {
        root: sb.home.clone(),
    };
    let listing = SessionListing::gather(&home, &sb.store).unwrap();
    Browser::new(
        "~/.codex".into(),
        listing,
        Default::default(),
        now().timestamp(),
    )
}

fn render(b: &mut Browser, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| {
            b.prepare(view::list_rows(view::body_area(frame.area())));
            view::draw(frame, b);
        })
        .unwrap();
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            let mut line = String::new();
            for x in 0..width {
                line.push_str(buffer[(x, y)].symbol());
            }
            line.trim_end().to_string()
        })
        .collect()
}

fn key(b: &mut Browser, code: KeyCode) -> Effect {
    on_key(b, KeyEvent::from(code), 10)
}

fn snapshot(name: &str, lines: &[String]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/browse")
        .join(format!("{name}.txt"));
    let text = lines.join("\n") + "\n";
    if std::env::var("BROWSE_SNAPSHOTS").is_ok_and(|v| v == "update") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; BROWSE_SNAPSHOTS=update writes it", path.display()));
    assert_eq!(text, expected, "{name} differs from {}", path.display());
}

fn screen(lines: &[String]) -> String {
    lines.join("\n")
}

#[test]
fn the_home_list_shows_projects_heaviest_first_with_bars() {
    let sb = sandbox();
    for (w, h) in [(80, 24), (200, 60)] {
        let mut b = browser(&sb);
        let lines = render(&mut b, w, h);
        snapshot(&format!("home_{w}x{h}"), &lines);
        let text = screen(&lines);
        let api = text.find("/work/api").expect("the api project is listed");
        let web = text.find("/work/web").expect("the web project is listed");
        let notes = text
            .find("/work/notes")
            .expect("the notes project is listed");
        assert!(api < web && web < notes, "heaviest first:\n{text}");
        assert!(
            text.contains("[##########]"),
            "the heaviest has a full bar:\n{text}"
        );
        assert!(text.contains("read-only until you apply a plan"), "{text}");
        assert!(text.contains("?:help"), "keys are on screen:\n{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= w as usize));
    }
}

#[test]
fn a_drilled_in_group_shows_each_session_escaped_with_its_state_and_protection() {
    let sb = sandbox();
    for (w, h) in [(80, 24), (200, 60)] {
        let mut b = browser(&sb);
        render(&mut b, w, h);
        assert_eq!(key(&mut b, KeyCode::Enter), Effect::None);
        let lines = render(&mut b, w, h);
        snapshot(&format!("group_{w}x{h}"), &lines);
        let text = screen(&lines);
        assert!(
            text.contains("pinned"),
            "the pinned session says so:\n{text}"
        );
        assert!(text.contains(&id_for(1)[..8]), "{text}");
        // The title's escape sequences arrive as visible text, never as the ESC character.
        assert!(text.contains("fix \\x1b[2J"), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
}

#[test]
fn a_protected_session_cannot_be_marked_and_the_view_says_why() {
    let sb = sandbox();
    let mut b = browser(&sb);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Enter);
    render(&mut b, 80, 24);
    // /work/api, largest first: 1, then 2 (pinned), then 3.
    key(&mut b, KeyCode::Down);
    let pinned = path_key(b.current_session().unwrap());
    key(&mut b, KeyCode::Char(' '));
    assert!(
        !b.marks.contains_key(&pinned),
        "a pinned session was marked"
    );
    assert!(b.status.contains("protected: pinned"), "{}", b.status);
    let lines = render(&mut b, 80, 24);
    assert!(screen(&lines).contains("cannot mark it to archive: protected: pinned"));
    // An archived session cannot be archived again.
    let mut b = browser(&sb);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Down);
    key(&mut b, KeyCode::Enter);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Down);
    assert_eq!(b.current_session().unwrap().state(), SessionState::Archived);
    key(&mut b, KeyCode::Char('a'));
    assert!(b.marks.is_empty());
    assert!(b.status.contains("archived already"), "{}", b.status);
}

fn plan_of(b: &Browser, sb: &Sandbox) -> codex_maint::browse::plan::PlanView {
    let home = CodexHome {
        root: sb.home.clone(),
    };
    let sessions = &b.listing.sessions;
    let find = |p: &str| sessions.iter().find(|s| path_key(s) == p);
    plan_marks(
        &home,
        &sb.store,
        &b.marks,
        |p| find(p).and_then(|s| s.id.clone()),
        |p| find(p).is_some_and(|s| s.state() == SessionState::Active),
    )
    .unwrap()
}

#[test]
fn marks_plan_only_the_marked_sessions_and_the_plan_pane_shows_what_it_frees() {
    let sb = sandbox();
    for (w, h) in [(80, 24), (200, 60)] {
        let mut b = browser(&sb);
        render(&mut b, w, h);
        key(&mut b, KeyCode::Enter);
        render(&mut b, w, h);
        key(&mut b, KeyCode::Char(' ')); // session 1, to archive; the cursor moves on
        key(&mut b, KeyCode::Down); // past the pinned session 2
        key(&mut b, KeyCode::Char(' ')); // session 3
        assert_eq!(b.marks.len(), 2, "{}", b.status);
        assert_eq!(key(&mut b, KeyCode::Char('p')), Effect::Plan);
        let plan = plan_of(&b, &sb);
        let id = plan.plan_id.clone().expect("a plan with actions");
        assert_eq!(plan.actions.len(), 2, "{:#?}", plan.actions);
        for n in [1, 3] {
            assert!(
                plan.actions
                    .iter()
                    .any(|(_, path)| path.contains(&id_for(n))),
                "session {n} is planned: {:#?}",
                plan.actions
            );
        }
        // Session 4 and 6 are as idle, and a default cleanup would archive them; the marks
        // leave them alone.
        assert!(
            !plan
                .actions
                .iter()
                .any(|(_, p)| p.contains(&id_for(4)) || p.contains(&id_for(6)))
        );
        assert!(
            plan.actions
                .iter()
                .all(|(what, _)| what.starts_with("archive_session")),
            "{:#?}",
            plan.actions
        );
        b.plan = Some(plan);
        b.panes.push(codex_maint::browse::model::Pane::Plan);
        let lines: Vec<String> = render(&mut b, w, h)
            .into_iter()
            .map(|l| l.replace(&id, "<plan id>       "))
            .collect();
        snapshot(&format!("plan_{w}x{h}"), &lines);
        let text = screen(&lines);
        assert!(text.contains("frees"), "{text}");
        assert!(text.contains("y applies it"), "{text}");
    }
}

/// Marks session 1 with `first` and session 3 (past the pinned 2) with `archive`, and
/// returns the plan's op kind for each.
fn kinds_after_marks(sb: &Sandbox, first: char) -> (Option<String>, Option<String>, usize) {
    let mut b = browser(sb);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Enter);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Char(first)); // session 1
    key(&mut b, KeyCode::Down); // past the pinned one
    key(&mut b, KeyCode::Char('a')); // session 3
    assert_eq!(b.marks.len(), 2, "{}", b.status);
    let plan = plan_of(&b, sb);
    let kind_of = |n: u64| {
        plan.actions
            .iter()
            .find(|(_, p)| p.contains(&id_for(n)))
            .map(|(what, _)| what.split(' ').next().unwrap().to_string())
    };
    (kind_of(1), kind_of(3), plan.actions.len())
}

#[test]
fn a_compress_mark_compresses_its_session_and_an_archive_mark_beside_it_only_archives() {
    let sb = sandbox();
    // Evidence of a Codex that reads .jsonl.zst, so the compression gate is open.
    write_two_releases(&sb.home);
    let (first, third, actions) = kinds_after_marks(&sb, 'c');
    assert_eq!(first.as_deref(), Some("compress_session"));
    assert_eq!(third.as_deref(), Some("archive_session"));
    assert_eq!(actions, 2);
}

#[test]
fn a_retire_mark_retires_only_its_session_whatever_its_age() {
    let sb = sandbox();
    // Session 1 is idle far less than the retire age; the pick is the request.
    let (first, third, actions) = kinds_after_marks(&sb, 'r');
    assert_eq!(first.as_deref(), Some("retire_session"));
    assert_eq!(third.as_deref(), Some("archive_session"));
    assert_eq!(actions, 2);
}

#[test]
fn without_a_terminal_it_draws_nothing_and_names_the_commands_to_use() {
    let sb = sandbox();
    let out = sb.cmd().arg("browse").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\u{1b}'),
        "an escape sequence was written: {err:?}"
    );
    assert!(
        err.contains("codex-maint sessions") && err.contains("codex-maint inspect"),
        "{err}"
    );
    // Nor with --json: a view is not a document.
    let out = sb.cmd().args(["--json", "browse"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(error_message(&doc).contains("sessions --json"), "{doc:#}");
    assert!(
        !Path::new(&sb.store).exists(),
        "browse without a terminal made the store"
    );
}

#[test]
fn a_session_summary_shows_its_first_message_turns_size_and_handoff() {
    let sb = sandbox();
    let mut b = browser(&sb);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Enter);
    render(&mut b, 80, 24);
    assert_eq!(key(&mut b, KeyCode::Enter), Effect::Summarize);
    let handoffs = sb.store.join("handoffs");
    std::fs::create_dir_all(&handoffs).unwrap();
    std::fs::write(
        handoffs.join(format!("{}-20260601T000000Z.md", id_for(1))),
        "# Handoff\n## Goal\nship the \u{1b}[31mcache\n",
    )
    .unwrap();
    codex_maint::browse::keys::open_summary(&mut b, &handoffs);
    let lines = render(&mut b, 200, 60);
    let text = screen(&lines);
    let transcript = std::fs::read_to_string(specs()[0].path_in(&sb.home)).unwrap();
    let turns = transcript
        .lines()
        .filter(|l| l.contains("\"task_started\""))
        .count();
    assert!(turns > 1);
    assert!(text.contains(&format!("turns     {turns}")), "{text}");
    // The index's first_user_message, which the synthetic index sets to the title.
    let at = lines
        .iter()
        .position(|l| l.contains("first message"))
        .unwrap();
    assert!(
        lines[at + 1].contains(&format!("task for {}", &id_for(1)[..8])),
        "{text}"
    );
    assert!(text.contains("88.5 KiB"), "{text}");
    assert!(
        text.contains("## Goal") && text.contains("ship the \\x1b[31mcache"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn a_handoff_mark_plans_a_document_and_moves_nothing() {
    let sb = sandbox();
    let mut b = browser(&sb);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Enter);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Down); // the pinned session: a handoff moves nothing, so it may have one
    key(&mut b, KeyCode::Char('h'));
    assert_eq!(b.marks.len(), 1, "{}", b.status);
    let plan = plan_of(&b, &sb);
    assert_eq!(plan.handoffs, [id_for(2)]);
    assert!(
        plan.plan_id.is_none() && plan.actions.is_empty(),
        "{plan:#?}"
    );
    assert!(
        !sb.store.join("plans").exists(),
        "a plan was saved for no cleanup"
    );
}

/// The plan the marks saved is applied by `cleanup --yes --plan <id>` as any reviewed plan
/// is, planned again over the same picks: the marked sessions are done, and the other
/// idle ones are not even counted as unreviewed.
#[test]
fn cleanup_applies_a_plan_of_marks_by_its_id_over_the_same_picks() {
    let sb = sandbox();
    let mut b = browser(&sb);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Enter);
    render(&mut b, 80, 24);
    key(&mut b, KeyCode::Char(' '));
    key(&mut b, KeyCode::Down);
    key(&mut b, KeyCode::Char(' '));
    let plan = plan_of(&b, &sb);
    let id = plan.plan_id.expect("a plan");
    let (code, doc) = sb.json(&["cleanup", "--yes", "--plan", &id]);
    assert_eq!(code, 0, "{doc:#}");
    let done = doc["data"]["done"].as_array().unwrap();
    assert_eq!(done.len(), 2, "{doc:#}");
    let unreviewed = doc["data"]["not_in_reviewed_plan"].as_array().unwrap();
    assert!(unreviewed.is_empty(), "{unreviewed:#?}");
    for n in [1, 3] {
        assert!(!specs()[n as usize - 1].path_in(&sb.home).exists());
    }
    for n in [4, 6] {
        assert!(specs()[n as usize - 1].path_in(&sb.home).exists());
    }
}
