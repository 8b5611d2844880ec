//! Keys: what each does to the browser, and what it asks of the command that runs it
//! (a plan, a run, a look at Codex's processes). Nothing here writes anything.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::marks::{Mark, refusal};
use super::model::{Browser, Grouping, Pane, path_key};
use super::summary::Summary;

/// What the command must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    /// Plan the marks and show the plan pane.
    Plan,
    /// Apply the plan shown (its id), and write the handoffs it lists.
    Apply,
    /// Take back this run (`None`: the newest run with changes in force, as `undo` does).
    Undo(Option<i64>),
    /// Show one session's summary (it reads the transcript).
    Summarize,
}

/// A question `y` answers and any other key declines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    Undo(Option<i64>),
}

/// The keys, as the help pane and the footer show them.
pub const HELP: &[(&str, &str)] = &[
    ("Up/Down k/j", "move; PgUp/PgDn, Home/End jump"),
    ("Enter Right l", "open a group; on a session, its summary"),
    ("Left Backspace", "back"),
    ("space", "mark the session to archive, or unmark it"),
    (
        "a c r h",
        "mark to archive, compress, retire (out of Codex's view, restorable), or write a handoff",
    ),
    ("g", "group by project or by month"),
    ("p", "the plan for the marks: what it does and frees"),
    ("y", "in the plan: apply it (journaled, like cleanup)"),
    ("L", "the log of runs made here"),
    ("u", "take back the last run (as codex-maint undo)"),
    ("?", "this help"),
    ("q Esc", "close a pane; q on the list quits"),
];

pub fn on_mouse(b: &mut Browser, m: MouseEvent) -> Effect {
    match m.kind {
        MouseEventKind::ScrollDown => move_cursor(b, 3),
        MouseEventKind::ScrollUp => move_cursor(b, -3),
        _ => {}
    }
    Effect::None
}

pub fn on_key(b: &mut Browser, key: KeyEvent, page: usize) -> Effect {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Effect::Quit;
    }
    if let Some(question) = b.asking.take() {
        if key.code == KeyCode::Char('y') {
            let Question::Undo(run) = question;
            return Effect::Undo(run);
        }
        b.status = "not taken back".into();
        return Effect::None;
    }
    if let Some(pane) = b.top_pane().cloned() {
        return on_pane_key(b, pane, key);
    }
    let page = page.max(1) as isize;
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc if b.open_group.is_none() => return Effect::Quit,
        KeyCode::Char('q') | KeyCode::Esc | KeyCode::Left | KeyCode::Backspace => {
            b.open_group = None
        }
        KeyCode::Up | KeyCode::Char('k') => move_cursor(b, -1),
        KeyCode::Down | KeyCode::Char('j') => move_cursor(b, 1),
        KeyCode::PageUp => move_cursor(b, -page),
        KeyCode::PageDown => move_cursor(b, page),
        KeyCode::Home => move_cursor(b, isize::MIN / 2),
        KeyCode::End => move_cursor(b, isize::MAX / 2),
        KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => match b.open_group {
            None if !b.groups.is_empty() => {
                b.open_group = Some(b.groups_cursor.at);
                b.sessions_cursor = Default::default();
            }
            Some(_) if b.current_session().is_some() => return Effect::Summarize,
            _ => {}
        },
        KeyCode::Char('g') => {
            let next = match b.grouping {
                Grouping::Project => Grouping::Month,
                Grouping::Month => Grouping::Project,
            };
            b.regroup(next);
            b.status = format!("grouped by {}", next.as_str());
        }
        KeyCode::Char(' ') => toggle_mark(b, None),
        KeyCode::Char(c) if Mark::of_key(c).is_some() => toggle_mark(b, Mark::of_key(c)),
        KeyCode::Char('p') => return plan_or_say(b),
        KeyCode::Char('L') => b.panes.push(Pane::Log),
        KeyCode::Char('u') => ask_undo(b),
        KeyCode::Char('?') => b.panes.push(Pane::Help),
        _ => {}
    }
    Effect::None
}

fn on_pane_key(b: &mut Browser, pane: Pane, key: KeyEvent) -> Effect {
    match (pane, key.code) {
        (_, KeyCode::Esc | KeyCode::Char('q') | KeyCode::Left | KeyCode::Backspace) => {
            b.panes.pop();
        }
        (Pane::Plan, KeyCode::Char('y')) => {
            if !b.codex_running.is_empty() {
                b.status =
                    "Codex is running: nothing is applied while it runs; close it first".into();
                return Effect::None;
            }
            if b.plan.as_ref().is_some_and(|p| !p.is_empty()) {
                return Effect::Apply;
            }
            b.status = "the plan does nothing: no marked session may be acted on".into();
        }
        (Pane::Log, KeyCode::Char('u')) => ask_undo(b),
        (_, KeyCode::Char('?')) => b.panes.push(Pane::Help),
        _ => {}
    }
    Effect::None
}

fn plan_or_say(b: &mut Browser) -> Effect {
    if b.marks.is_empty() {
        b.status = "nothing marked: space, a, c or h marks the session under the cursor".into();
        return Effect::None;
    }
    Effect::Plan
}

fn ask_undo(b: &mut Browser) {
    if !b.codex_running.is_empty() {
        b.status = "Codex is running: nothing is taken back while it runs; close it first".into();
        return;
    }
    let run = b.runs.last().copied();
    b.status = match run {
        Some(id) => format!("take back run {id}? y: yes, any other key: no"),
        None => "take back the newest run with changes in force (as codex-maint undo)? y: yes, any other key: no".into(),
    };
    b.asking = Some(Question::Undo(run));
}

fn move_cursor(b: &mut Browser, delta: isize) {
    match b.open_group {
        None => {
            let len = b.groups.len();
            b.groups_cursor.move_by(delta, len)
        }
        Some(_) => {
            let len = b.open_sessions().len();
            b.sessions_cursor.move_by(delta, len)
        }
    }
}

/// Marks the session under the cursor (space: for archiving, or unmarks it), unless the
/// mark is refused: then the status line says why.
fn toggle_mark(b: &mut Browser, wanted: Option<Mark>) {
    let Some(s) = b.current_session() else {
        b.status = "open a group first (Enter): marks are on sessions".into();
        return;
    };
    let key = path_key(s);
    let existing = b.marks.get(&key).copied();
    let mark = match (wanted, existing) {
        (None, Some(_)) => {
            b.marks.remove(&key);
            b.status = "unmarked".into();
            return;
        }
        (Some(m), Some(e)) if m == e => {
            b.marks.remove(&key);
            b.status = "unmarked".into();
            return;
        }
        (Some(m), _) => m,
        (None, None) => Mark::Cleanup(crate::cleanup::SessionMark::Archive),
    };
    let has_handoff = s.id.as_deref().is_some_and(|id| b.handoffs.contains(id));
    match refusal(s, mark, b.protection_of(s), has_handoff) {
        Some(why) => b.status = format!("cannot mark it to {}: {why}", mark.word()),
        None => {
            b.marks.insert(key, mark);
            let (n, bytes) = b.marked_weight();
            b.status = format!(
                "marked to {}; {n} marked ({}); p shows the plan",
                mark.word(),
                crate::clock::human_bytes(bytes)
            );
            move_cursor(b, 1);
        }
    }
}

/// Opens the summary pane for the session under the cursor.
pub fn open_summary(b: &mut Browser, handoff_dir: &std::path::Path) {
    if let Some(s) = b.current_session() {
        b.summary = Some(Summary::of(s, b.protection_of(s), handoff_dir, b.now));
        b.panes.push(Pane::Summary);
    }
}
