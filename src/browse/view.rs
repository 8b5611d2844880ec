//! Drawing the browser: a header with the home's weight and whether anything can be
//! changed now, the list (groups, or one group's sessions) with size bars, a status line,
//! the keys, and the pane open over the list. Bars are plain ASCII, so they read the same
//! over any SSH session; every text from a transcript is escaped before it is laid out.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::keys::HELP;
use super::model::{Browser, Pane, path_key, shown_label};
use crate::clock::{human_age, human_bytes};
use crate::terminal_text::{clip_end, clip_start, one_line, pad, width};

const KEYS_LINE: &str =
    "Enter:open Left:back a/c/r/h:mark p:plan g:group L:log u:undo ?:help q:quit";

pub fn draw(frame: &mut Frame, b: &Browser) {
    let [header, banner, body, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let sessions: usize = b.groups.iter().map(|g| g.sessions.len()).sum();
    frame.render_widget(
        Paragraph::new(clip_end(
            &format!(
                "codex-maint browse  {}  {} sessions  {}  by {}",
                one_line(&b.home),
                sessions,
                human_bytes(b.total_bytes),
                b.grouping.as_str()
            ),
            header.width as usize,
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        header,
    );
    frame.render_widget(
        Paragraph::new(banner_text(b, banner.width as usize)),
        banner,
    );
    match b.open_group {
        None => draw_groups(frame, b, body),
        Some(_) => draw_sessions(frame, b, body),
    }
    frame.render_widget(
        Paragraph::new(clip_end(&b.status, status.width as usize)),
        status,
    );
    frame.render_widget(
        Paragraph::new(clip_end(KEYS_LINE, keys.width as usize))
            .style(Style::default().add_modifier(Modifier::DIM)),
        keys,
    );
    if let Some(pane) = b.top_pane() {
        draw_pane(frame, b, pane, body);
    }
}

/// Whether a change is possible now, and what is marked.
fn banner_text(b: &Browser, columns: usize) -> String {
    let state = if b.codex_running.is_empty() {
        "read-only until you apply a plan".to_string()
    } else {
        format!(
            "Codex is running, so nothing can be applied: {}",
            b.codex_running.join("; ")
        )
    };
    let (n, bytes) = b.marked_weight();
    let marked = if n == 0 {
        String::new()
    } else {
        format!("  |  {n} marked ({})", human_bytes(bytes))
    };
    clip_end(&one_line(&format!("{state}{marked}")), columns)
}

/// Rows that fit in a bordered list of this area.
pub fn list_rows(area: Rect) -> usize {
    area.height.saturating_sub(2) as usize
}

/// The body's area for a frame of this size (as `draw` lays it out).
pub fn body_area(frame_area: Rect) -> Rect {
    let [_, _, body, _, _] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame_area);
    body
}

fn bar(bytes: u64, largest: u64, cells: usize) -> String {
    let filled = if largest == 0 {
        0
    } else {
        ((bytes as u128 * cells as u128).div_ceil(largest as u128) as usize).min(cells)
    };
    format!("[{}{}]", "#".repeat(filled), " ".repeat(cells - filled))
}

fn draw_groups(frame: &mut Frame, b: &Browser, area: Rect) {
    let rows = list_rows(area);
    let mut cursor = b.groups_cursor;
    cursor.follow(rows);
    let inner = area.width.saturating_sub(2) as usize;
    let largest = b.groups.first().map_or(0, |g| g.bytes);
    let lines: Vec<Line> = b
        .groups
        .iter()
        .enumerate()
        .skip(cursor.top)
        .take(rows)
        .map(|(i, g)| {
            let pct = (g.bytes as u128 * 100)
                .checked_div(b.total_bytes as u128)
                .unwrap_or(0);
            let head = format!(
                "{:>10} {:>3}% {} {:>7} ",
                human_bytes(g.bytes),
                pct,
                bar(g.bytes, largest, 10),
                g.sessions.len()
            );
            let counts = match (g.archived, g.compressed) {
                (0, 0) => String::new(),
                (a, 0) => format!("  ({a} archived)"),
                (0, z) => format!("  ({z} compressed)"),
                (a, z) => format!("  ({a} archived, {z} compressed)"),
            };
            let room = inner.saturating_sub(width(&head));
            let label = one_line(shown_label(&g.label));
            let text = format!(
                "{head}{}",
                clip_end(
                    &format!("{}{counts}", clip_start(&label, room.max(8))),
                    room
                )
            );
            styled(text, i == cursor.at)
        })
        .collect();
    let title = format!(" sessions by {}, heaviest first ", b.grouping.as_str());
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn styled(text: String, selected: bool) -> Line<'static> {
    let style = if selected {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        Style::default()
    };
    Line::styled(text, style)
}

fn draw_sessions(frame: &mut Frame, b: &Browser, area: Rect) {
    let Some(group) = b.open_group.and_then(|g| b.groups.get(g)) else {
        return;
    };
    let sessions = b.open_sessions();
    let rows = list_rows(area);
    let mut cursor = b.sessions_cursor;
    cursor.follow(rows);
    let inner = area.width.saturating_sub(2) as usize;
    let wide = inner >= 120;
    let largest = sessions.first().map_or(0, |s| s.file.size);
    // As wide as the longest prefix shown, so the columns line up.
    let id_width = sessions
        .iter()
        .skip(cursor.top)
        .take(rows)
        .filter_map(|s| s.id.as_deref())
        .map(|id| width(&one_line(b.prefixes.of(id))))
        .max()
        .unwrap_or(8);
    let lines: Vec<Line> = sessions
        .iter()
        .enumerate()
        .skip(cursor.top)
        .take(rows)
        .map(|(i, s)| {
            let tag = b.marks.get(&path_key(s)).map_or(' ', |m| m.tag());
            let id =
                s.id.as_deref()
                    .map_or("?".to_string(), |id| one_line(b.prefixes.of(id)));
            let kept = match b.protection_of(s) {
                Some(Some(p)) => p.label(),
                Some(None) => "-",
                None => "",
            };
            let mut head = format!(
                "{tag} {} {:>10} {} {:>7} {} {} ",
                pad(&id, id_width),
                human_bytes(s.file.size),
                bar(s.file.size, largest, if wide { 12 } else { 6 }),
                human_age(s.age_secs(b.now)),
                pad(s.state().as_str(), 10),
                pad(&clip_end(kept, 8), 8)
            );
            if wide {
                let project = s
                    .cwd()
                    .map_or("-".to_string(), |c| clip_start(&one_line(c), 24));
                head.push_str(&pad(&project, 24));
                head.push(' ');
            }
            let title = s.title().map_or("-".to_string(), |(t, _)| one_line(t));
            let room = inner.saturating_sub(width(&head));
            styled(format!("{head}{}", clip_end(&title, room)), i == cursor.at)
        })
        .collect();
    let title = format!(
        " {} : {} sessions, {} ",
        clip_start(
            &one_line(shown_label(&group.label)),
            inner.saturating_sub(30).max(10)
        ),
        sessions.len(),
        human_bytes(group.bytes)
    );
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_pane(frame: &mut Frame, b: &Browser, pane: &Pane, body: Rect) {
    let (title, lines): (&str, Vec<String>) = match pane {
        Pane::Help => (
            " keys ",
            HELP.iter()
                .map(|(k, what)| format!("{} {what}", pad(k, 16)))
                .collect(),
        ),
        Pane::Summary => (
            " session ",
            b.summary
                .as_ref()
                .map(|s| s.lines.clone())
                .unwrap_or_default(),
        ),
        Pane::Plan => (
            " plan: y applies it, Esc goes back ",
            plan_lines(b, body.width.saturating_sub(2) as usize),
        ),
        Pane::Log => (
            " log: u takes back the last run, Esc goes back ",
            if b.log.is_empty() {
                vec!["no run yet from this browser".to_string()]
            } else {
                // The newest lines, where the eye lands.
                let room = list_rows(body);
                b.log[b.log.len().saturating_sub(room)..].to_vec()
            },
        ),
    };
    let inner = body.width.saturating_sub(2) as usize;
    let text: Vec<Line> = lines
        .into_iter()
        .map(|l| Line::raw(clip_end(&l, inner)))
        .collect();
    frame.render_widget(Clear, body);
    frame.render_widget(
        Paragraph::new(text)
            .block(Block::default().borders(Borders::ALL).title(title))
            .wrap(Wrap { trim: false }),
        body,
    );
}

fn plan_lines(b: &Browser, columns: usize) -> Vec<String> {
    let Some(plan) = &b.plan else {
        return vec!["no plan".to_string()];
    };
    let mut lines = vec![plan.headline.clone()];
    if !b.codex_running.is_empty() {
        lines.push("Codex is running: the plan cannot be applied until it is closed".to_string());
    }
    lines.extend(plan.frees.iter().map(|f| format!("  {f}")));
    if !plan.actions.is_empty() {
        lines.push(format!("will do ({}):", plan.actions.len()));
        // The end of a path names the session; its start is the same for every row.
        lines.extend(plan.actions.iter().map(|(what, path)| {
            let head = format!("  {what} ");
            let room = columns.saturating_sub(width(&head));
            format!("{head}{}", clip_start(path, room))
        }));
    }
    if !plan.handoffs.is_empty() {
        lines.push(format!(
            "handoff documents to write ({}):",
            plan.handoffs.len()
        ));
        lines.extend(plan.handoffs.iter().map(|t| format!("  {}", one_line(t))));
    }
    if !plan.kept.is_empty() {
        lines.push(format!("kept ({}):", plan.kept.len()));
        lines.extend(plan.kept.iter().map(|k| format!("  {k}")));
    }
    lines.push("the run is journaled and backed up first, as cleanup's is; u takes it back".into());
    lines
}
