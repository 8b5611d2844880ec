//! `browse`: the home by weight in the terminal, as ncdu shows a disk. Sessions grouped by
//! project or month, drilled into, summarized, and marked; the marks become the plan
//! `cleanup` applies (`crate::browse::plan`), applied and taken back through codex-maint's
//! own commands (`crate::browse::runs`), and shown in a log pane. Nothing is written until
//! the user applies a plan; nothing is applied while Codex runs.
//!
//! It never draws unless stdin and stdout are a terminal: a script gets exit 2 and the
//! names of the commands made for it (`sessions`, `inspect`).
//!
//! Benchmark knob: with `CODEX_MAINT_BROWSE_BENCH_FRAMES=N` it draws into ratatui's
//! in-memory `TestBackend` (200x60, or `CODEX_MAINT_BROWSE_BENCH_SIZE=WxH`) instead of a
//! terminal: the first screen, then the heaviest group, scrolled one row per frame for N
//! frames; it reports the time to the first screen and each frame's time, and exits.

use anyhow::Result;
use crossterm::event::{self, Event, KeyEventKind};
use ratatui::Terminal;
use ratatui::backend::{Backend, TestBackend};
use serde_json::json;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::Context;
use crate::browse::keys::{self, Effect};
use crate::browse::model::{Pane, path_key};
use crate::browse::plan::plan_marks;
use crate::browse::runs::run_self;
use crate::browse::{Browser, view};
use crate::error::MaintError;
use crate::home::{CodexHome, processes};
use crate::report::Report;
use crate::survey::session_list::{SessionListing, SessionState};

pub const BENCH_FRAMES_ENV: &str = "CODEX_MAINT_BROWSE_BENCH_FRAMES";
pub const BENCH_SIZE_ENV: &str = "CODEX_MAINT_BROWSE_BENCH_SIZE";

#[derive(clap::Args)]
pub struct BrowseArgs {
    /// Group sessions by month of last activity instead of by project folder
    #[arg(long)]
    pub by_month: bool,
}

pub fn run(ctx: &Context, args: &BrowseArgs) -> Result<Report> {
    let frames = std::env::var(BENCH_FRAMES_ENV).ok();
    if let Some(frames) = frames {
        let frames = frames
            .parse()
            .map_err(|_| MaintError::usage(format!("{BENCH_FRAMES_ENV} is a number of frames")))?;
        return bench(ctx, args, frames);
    }
    if ctx.json {
        return Err(MaintError::usage(
            "browse is an interactive view, not a document: for JSON use `codex-maint sessions --json` or `codex-maint inspect --json`",
        )
        .into());
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(MaintError::usage(
            "browse is an interactive view and needs a terminal (stdin and stdout); without one, use `codex-maint sessions` to list sessions (--json for every field) or `codex-maint inspect` for the home's weight",
        )
        .into());
    }
    let home = ctx.locate_home()?;
    let mut browser = open(ctx, &home, args)?;
    let mut terminal = ratatui::try_init()?;
    let _ = crossterm::execute!(std::io::stdout(), event::EnableMouseCapture);
    let result = interact(ctx, &home, &mut browser, &mut terminal);
    let _ = crossterm::execute!(std::io::stdout(), event::DisableMouseCapture);
    ratatui::restore();
    result?;
    let mut report = Report::new("browse", "browse");
    report.raw_text = Some(match browser.runs.as_slice() {
        [] => "browse: nothing applied\n".to_string(),
        runs => format!(
            "browse: applied run{} {}; `codex-maint log` lists them, `codex-maint undo` takes the newest back\n",
            if runs.len() == 1 { "" } else { "s" },
            runs.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    report.data = json!({ "runs": browser.runs });
    Ok(report)
}

fn open(ctx: &Context, home: &CodexHome, args: &BrowseArgs) -> Result<Browser> {
    let listing = SessionListing::gather(home, &ctx.store_root)?;
    let handoffs = crate::policy::handoff_threads(&ctx.store_root)?;
    let mut b = Browser::new(home.display(), listing, handoffs, crate::clock::now_unix());
    if args.by_month {
        b.regroup(crate::browse::model::Grouping::Month);
    }
    b.codex_running = codex_running(home);
    Ok(b)
}

/// The processes that would make a change refuse, as `write_gate` judges them; not being
/// able to tell counts as running, as it does there.
fn codex_running(home: &CodexHome) -> Vec<String> {
    match processes::blocking(home) {
        Ok(found) => found.iter().map(processes::describe).collect(),
        Err(e) => vec![format!("cannot tell whether Codex is running ({e:#})")],
    }
}

fn draw<B: Backend>(terminal: &mut Terminal<B>, b: &mut Browser) -> Result<()>
where
    B::Error: Send + Sync + 'static,
{
    terminal.draw(|frame| {
        b.prepare(view::list_rows(view::body_area(frame.area())));
        view::draw(frame, b);
    })?;
    Ok(())
}

fn interact(
    ctx: &Context,
    home: &CodexHome,
    b: &mut Browser,
    terminal: &mut ratatui::DefaultTerminal,
) -> Result<()> {
    loop {
        draw(terminal, b)?;
        let page = view::list_rows(view::body_area(terminal.get_frame().area()));
        let effect = match event::read()? {
            Event::Key(k) if k.kind == KeyEventKind::Press => keys::on_key(b, k, page),
            Event::Mouse(m) => keys::on_mouse(b, m),
            _ => Effect::None,
        };
        if effect == Effect::Quit {
            return Ok(());
        }
        if effect != Effect::None {
            b.status = match effect {
                Effect::Plan => "planning: reading the home as cleanup does...".into(),
                Effect::Apply => {
                    "applying: backing up, then each action as a journaled op...".into()
                }
                Effect::Undo(_) => "taking back...".into(),
                _ => b.status.clone(),
            };
            draw(terminal, b)?;
            perform(ctx, home, b, effect);
        }
    }
}

/// Carries out what a key asked for that reads or changes the home.
pub fn perform(ctx: &Context, home: &CodexHome, b: &mut Browser, effect: Effect) {
    match effect {
        Effect::None | Effect::Quit => {}
        Effect::Summarize => keys::open_summary(b, &ctx.store_root.join("handoffs")),
        Effect::Plan => {
            b.codex_running = codex_running(home);
            let sessions = &b.listing.sessions;
            let thread_of = |path: &str| {
                sessions
                    .iter()
                    .find(|s| path_key(s) == path)
                    .and_then(|s| s.id.clone())
            };
            let active = |path: &str| {
                sessions
                    .iter()
                    .find(|s| path_key(s) == path)
                    .is_some_and(|s| s.state() == SessionState::Active)
            };
            match plan_marks(home, &ctx.store_root, &b.marks, thread_of, active) {
                Ok(plan) => {
                    b.status = plan.headline.clone();
                    b.plan = Some(plan);
                    b.panes.push(Pane::Plan);
                }
                Err(e) => b.status = crate::terminal_text::one_line(&format!("no plan: {e:#}")),
            }
        }
        Effect::Apply => {
            b.codex_running = codex_running(home);
            if !b.codex_running.is_empty() {
                b.status = "Codex is running: nothing was applied; close it first".into();
                return;
            }
            let Some(plan) = b.plan.take() else { return };
            if !plan.handoffs.is_empty() {
                let mut words = vec!["handoff".to_string()];
                words.extend(plan.handoffs.iter().cloned());
                log_run(b, run_self(&home.root, &ctx.store_root, &words));
            }
            if let Some(id) = &plan.plan_id {
                let words = ["cleanup", "--yes", "--plan", id].map(String::from);
                let result = run_self(&home.root, &ctx.store_root, &words);
                if let (0 | 4, Some(run)) = (result.exit_code, result.run_id) {
                    b.runs.push(run);
                }
                log_run(b, result);
            }
            b.marks.clear();
            after_a_run(ctx, home, b);
        }
        Effect::Undo(run) => {
            b.codex_running = codex_running(home);
            let mut words = vec!["undo".to_string()];
            if let Some(id) = run {
                words.extend(["--run".to_string(), id.to_string()]);
            }
            let result = run_self(&home.root, &ctx.store_root, &words);
            if result.exit_code == 0 && run.is_some() {
                b.runs.retain(|r| Some(*r) != run);
            }
            log_run(b, result);
            after_a_run(ctx, home, b);
        }
    }
}

fn log_run(b: &mut Browser, result: crate::browse::runs::RunResult) {
    b.status = format!(
        "{} (exit {}); the log pane has its report",
        result.lines.first().map_or("", String::as_str),
        result.exit_code
    );
    b.log.extend(result.lines);
    b.log.push(String::new());
}

/// The home as it is after a run, and the log in view.
fn after_a_run(ctx: &Context, home: &CodexHome, b: &mut Browser) {
    match (
        SessionListing::gather(home, &ctx.store_root),
        crate::policy::handoff_threads(&ctx.store_root),
    ) {
        (Ok(listing), Ok(handoffs)) => b.reload(listing, handoffs),
        (Err(e), _) | (_, Err(e)) => b.status = format!("cannot read the home again: {e:#}"),
    }
    b.panes.retain(|p| *p != Pane::Plan);
    if b.top_pane() != Some(&Pane::Log) {
        b.panes.push(Pane::Log);
    }
}

/// The benchmark knob (see the module's header): no terminal, nothing written.
fn bench(ctx: &Context, args: &BrowseArgs, frames: usize) -> Result<Report> {
    let started = Instant::now();
    let (width, height) = std::env::var(BENCH_SIZE_ENV)
        .ok()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .unwrap_or((200u16, 60u16));
    let home = ctx.locate_home()?;
    let mut b = open(ctx, &home, args)?;
    let mut terminal = Terminal::new(TestBackend::new(width, height))?;
    draw(&mut terminal, &mut b)?;
    let first_screen = started.elapsed();
    let page = view::list_rows(view::body_area(terminal.get_frame().area()));
    let down = event::KeyEvent::from(event::KeyCode::Down);
    keys::on_key(&mut b, event::KeyEvent::from(event::KeyCode::Enter), page);
    let mut times: Vec<Duration> = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        keys::on_key(&mut b, down, page);
        draw(&mut terminal, &mut b)?;
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len().max(1) as f64 + 0.0;
    let p99 = times
        .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
        .map_or(0.0, |d| ms(*d));
    let max = times.last().map_or(0.0, |d| ms(*d));
    let sessions: usize = b.groups.iter().map(|g| g.sessions.len()).sum();
    let mut report = Report::new("browse", "browse");
    let scrolled = if frames == 0 {
        "no scroll frames".to_string()
    } else {
        format!("{frames} scroll frames: mean {mean:.2} ms, p99 {p99:.2} ms, max {max:.2} ms")
    };
    report.raw_text = Some(format!(
        "browse bench: {sessions} sessions, {width}x{height}: first screen {:.0} ms; {scrolled}\n",
        ms(first_screen)
    ));
    report.data = json!({
        "sessions": sessions,
        "size": [width, height],
        "first_screen_ms": ms(first_screen),
        "frames": frames,
        "frame_ms_mean": mean,
        "frame_ms_p99": p99,
        "frame_ms_max": max,
    });
    Ok(report)
}
