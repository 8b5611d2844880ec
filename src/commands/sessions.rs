//! `sessions`: the home's sessions as people know them, one row each: what it was about,
//! where it ran, its weight, when it was last used, its state, and why a cleanup would keep
//! it. Sorted and filtered here; read from the survey's listing, and nothing is written
//! anywhere (not the home, its databases' `-wal`/`-shm`, nor the store), which
//! `tests/sessions.rs` proves.

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use std::cmp::Reverse;

use super::Context;
use crate::arg_values::age_secs;
use crate::clock::{human_age, human_bytes, now_unix};
use crate::home::sessions::SessionLocation;
use crate::policy::Protection;
use crate::report::{LongListWriter, Report};
use crate::survey::id_prefixes::IdPrefixes;
use crate::survey::session_list::{
    self, ListedSession, Need, SessionListing, SessionState, TitleSource,
};
use crate::terminal_text::{clip_end, clip_start, one_line, pad};

/// Rows a person reads before the rest is counted; `--json` gives them all.
const TEXT_ROWS: usize = 50;
const PROJECT_COLUMNS: usize = 30;
const TITLE_COLUMNS: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// Largest first
    Size,
    /// Longest idle first
    Age,
    /// By project folder, then largest first
    Project,
}

impl SortKey {
    fn as_str(self) -> &'static str {
        match self {
            SortKey::Size => "size",
            SortKey::Age => "age",
            SortKey::Project => "project",
        }
    }
}

#[derive(clap::Args)]
pub struct SessionsArgs {
    /// Order of the rows: size (largest first), age (longest idle first), project (by folder)
    #[arg(long, value_enum, value_name = "KEY", default_value = "size")]
    pub sort: SortKey,
    /// Only sessions whose project folder (cwd) contains this text
    #[arg(long, value_name = "TEXT")]
    pub project: Option<String>,
    /// Only sessions in this state (compressed: stored as .jsonl.zst, active or archived;
    /// retired: in the store, out of Codex's view)
    #[arg(long, value_enum, value_name = "STATE")]
    pub state: Option<SessionState>,
    /// Only sessions idle at least this long, e.g. 30d
    #[arg(long = "older-than", value_name = "AGE", value_parser = age_secs)]
    pub older_than_secs: Option<u64>,
    /// Only sessions last active less than this long ago, e.g. 2w
    #[arg(long = "newer-than", value_name = "AGE", value_parser = age_secs)]
    pub newer_than_secs: Option<u64>,
    /// Only sessions whose title or first message contains this text, in any case
    #[arg(long = "match", value_name = "TEXT")]
    pub text: Option<String>,
    /// Show at most N rows (default: 50 in the text view, every row with --json)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl SessionsArgs {
    /// What the filters and the order need of each transcript beyond its file.
    fn need(&self) -> Need {
        Need {
            folder: self.project.is_some() || self.sort == SortKey::Project,
            title: self.text.is_some(),
            judging: false,
        }
    }

    fn keeps_by_file(&self, s: &ListedSession, now: i64) -> bool {
        let age = s.age_secs(now);
        self.state.is_none_or(|state| s.state() == state)
            && self.older_than_secs.is_none_or(|min| age >= min)
            && self.newer_than_secs.is_none_or(|max| age < max)
    }

    fn keeps_by_content(&self, s: &ListedSession, needle: Option<&str>) -> bool {
        let project_ok = self
            .project
            .as_deref()
            .is_none_or(|p| s.cwd().is_some_and(|cwd| cwd.contains(p)));
        let text_ok = needle.is_none_or(|n| {
            let has = |t: Option<&str>| t.is_some_and(|t| t.to_lowercase().contains(n));
            has(s.title().map(|(t, _)| t)) || has(s.first_message())
        });
        project_ok && text_ok
    }

    /// Every key ends with the path, so no two sessions compare equal and an unstable sort
    /// gives the one order a stable sort would, without a scratch copy of half the rows.
    fn sort(&self, sessions: &mut [ListedSession]) {
        match self.sort {
            SortKey::Size => sessions.sort_unstable_by(|a, b| {
                (Reverse(a.file.size), a.file.path.as_os_str())
                    .cmp(&(Reverse(b.file.size), b.file.path.as_os_str()))
            }),
            SortKey::Age => sessions.sort_unstable_by(|a, b| {
                (a.last_activity, a.file.path.as_os_str())
                    .cmp(&(b.last_activity, b.file.path.as_os_str()))
            }),
            // Sessions without a known folder come last.
            SortKey::Project => sessions.sort_unstable_by(|a, b| {
                (
                    a.cwd().is_none(),
                    a.cwd(),
                    Reverse(a.file.size),
                    &a.file.path,
                )
                    .cmp(&(
                        b.cwd().is_none(),
                        b.cwd(),
                        Reverse(b.file.size),
                        &b.file.path,
                    ))
            }),
        }
    }
}

/// One row of `--json`: every field the listing knows.
#[derive(Serialize)]
struct SessionRow<'a> {
    id: Option<&'a str>,
    id_prefix: Option<String>,
    title: Option<&'a str>,
    title_from: Option<TitleSource>,
    first_message: Option<&'a str>,
    cwd: Option<&'a str>,
    bytes: u64,
    last_activity: String,
    last_activity_age_secs: u64,
    state: SessionState,
    location: SessionLocation,
    protection: Option<Protection>,
    path: String,
}

pub fn run(ctx: &Context, args: &SessionsArgs) -> Result<Report> {
    let home = ctx.locate_home()?;
    let mut listing = SessionListing::gather(&home, &ctx.store_root)?;
    let now = now_unix();
    let mut sessions = std::mem::take(&mut listing.sessions);
    let total = sessions.len();
    let total_bytes: u64 = sessions.iter().map(|s| s.file.size).sum();
    let prefixes = IdPrefixes::new(&sessions);

    sessions.retain(|s| args.keeps_by_file(s, now));
    session_list::fill(&mut sessions, args.need());
    let needle = args.text.as_deref().map(str::to_lowercase);
    sessions.retain(|s| args.keeps_by_content(s, needle.as_deref()));
    args.sort(&mut sessions);
    let matched = sessions.len();
    let matched_bytes: u64 = sessions.iter().map(|s| s.file.size).sum();
    let limit = args.limit.or((!ctx.json).then_some(TEXT_ROWS));
    let shown = limit.map_or(matched, |n| n.min(matched));
    let shown_sessions = &mut sessions[..shown];

    let retired = retired_rows(ctx, args, needle.as_deref())?;
    let mut report = Report::new("sessions", "sessions");
    report.data = json!({
        "retired": retired,
        "home": home.display(),
        "thread_index": listing.index_state,
        "total": total,
        "total_bytes": total_bytes,
        "matched": matched,
        "matched_bytes": matched_bytes,
        "shown": shown,
        "sort": args.sort.as_str(),
        "problems": listing.problems,
        "sessions": [],
    });
    let everything = Need {
        folder: true,
        title: true,
        judging: true,
    };
    if ctx.json {
        // Streamed: 100,000 rows are read, judged and written a slice at a time.
        let mut list = LongListWriter::new()?;
        for slice in shown_sessions.chunks_mut(1024) {
            session_list::fill(slice, everything);
            let kept = listing.protections(slice)?;
            for (s, protection) in slice.iter_mut().zip(kept) {
                list.push(&row_of(&prefixes, s, protection, now))?;
                s.meta = None;
            }
        }
        report.attach_list("sessions", list.finish()?);
        return Ok(report);
    }
    session_list::fill(shown_sessions, everything);
    let mut text = String::new();
    let matching = if matched == total {
        String::new()
    } else {
        format!("; {matched} match ({})", human_bytes(matched_bytes))
    };
    text.push_str(&format!(
        "{total} sessions in {} ({}){matching}; sorted by {}\n",
        one_line(&home.display()),
        human_bytes(total_bytes),
        args.sort.as_str()
    ));
    if listing.index_state != "understood" {
        text.push_str("Codex's thread index is not read here: titles and folders come from the transcripts.\n");
    }
    let kept = listing.protections(shown_sessions)?;
    text.push_str(&table(&prefixes, shown_sessions, &kept, now));
    if matched > shown {
        text.push_str(&format!(
            "... and {} more ({}): --limit N shows more, --json gives every row\n",
            matched - shown,
            human_bytes(sessions[shown..].iter().map(|s| s.file.size).sum())
        ));
    }
    text.push_str(&retired_text(&retired, args, limit));
    report.raw_text = Some(text);
    if !listing.problems.is_empty() {
        let notes: String = listing
            .problems
            .iter()
            .map(|p| format!("codex-maint: note: {}\n", one_line(p)))
            .collect();
        report.raw_notes = Some(notes);
    }
    Ok(report)
}

fn row_of<'a>(
    prefixes: &IdPrefixes,
    s: &'a ListedSession,
    protection: Option<Protection>,
    now: i64,
) -> SessionRow<'a> {
    let title = s.title();
    SessionRow {
        id: s.id.as_deref(),
        id_prefix: s.id.as_deref().map(|id| prefixes.of(id).to_string()),
        title: title.map(|(t, _)| t),
        title_from: title.map(|(_, from)| from),
        first_message: s.first_message(),
        cwd: s.cwd(),
        bytes: s.file.size,
        last_activity: chrono::DateTime::from_timestamp(s.last_activity, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        last_activity_age_secs: s.age_secs(now),
        state: s.state(),
        location: s.file.location,
        protection,
        path: s.file.path.display().to_string(),
    }
}

/// The rows as aligned columns. Every text that came from a transcript or the index goes
/// through `one_line` first: a title must never be able to drive the terminal.
fn table(
    prefixes: &IdPrefixes,
    shown: &[ListedSession],
    kept: &[Option<Protection>],
    now: i64,
) -> String {
    if shown.is_empty() {
        return "No session matches.\n".to_string();
    }
    let user_home = crate::home::home_dir().map(|p| p.display().to_string());
    let cells: Vec<[String; 7]> = shown
        .iter()
        .zip(kept)
        .map(|(s, protection)| {
            let id = s.id.as_deref().map_or("?", |id| prefixes.of(id));
            let project = s.cwd().map_or("-".to_string(), |cwd| {
                let short = match user_home.as_deref().and_then(|h| cwd.strip_prefix(h)) {
                    Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("~{rest}"),
                    _ => cwd.to_string(),
                };
                clip_start(&one_line(&short), PROJECT_COLUMNS)
            });
            [
                one_line(id),
                human_bytes(s.file.size),
                human_age(s.age_secs(now)),
                s.state().as_str().to_string(),
                protection
                    .as_ref()
                    .map_or("-".to_string(), |p| p.label().to_string()),
                project,
                s.title().map_or("-".to_string(), |(t, _)| {
                    clip_end(&one_line(t), TITLE_COLUMNS)
                }),
            ]
        })
        .collect();
    let headers = ["ID", "SIZE", "IDLE", "STATE", "KEPT", "PROJECT", "TITLE"];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(crate::terminal_text::width(cell));
        }
    }
    let line = |row: &[String]| -> String {
        let mut out = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else if i == 1 {
                // Sizes are right-aligned, so their units line up.
                out.push_str(&format!("{cell:>width$}  ", width = widths[i]));
            } else {
                out.push_str(&pad(cell, widths[i]));
                out.push_str("  ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&headers.map(str::to_string));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// A session retired into the store, as `sessions` lists it: from the journal, since its
/// transcript and rows are no longer in the home.
#[derive(Serialize)]
struct RetiredRow {
    id: String,
    title: Option<String>,
    project: Option<String>,
    size_bytes: u64,
    state: &'static str,
    retired_at: Option<String>,
    op_id: i64,
}

/// The retired sessions the filters keep (all states, or `--state retired`); none when the
/// state asked for is another, or there is no store.
fn retired_rows(
    ctx: &Context,
    args: &SessionsArgs,
    needle: Option<&str>,
) -> Result<Vec<RetiredRow>> {
    if args.state.is_some_and(|s| s != SessionState::Retired) {
        return Ok(Vec::new());
    }
    let Some(catalog) = crate::store::open_read_only(&ctx.store_root)? else {
        return Ok(Vec::new());
    };
    let mut rows: Vec<RetiredRow> = catalog
        .retired_sessions()?
        .into_iter()
        .filter(|r| {
            let project_ok = args
                .project
                .as_deref()
                .is_none_or(|p| r.cwd.as_deref().is_some_and(|c| c.contains(p)));
            let text_ok = needle.is_none_or(|n| {
                r.title
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(n))
            });
            project_ok && text_ok
        })
        .map(|r| RetiredRow {
            id: r.thread_id,
            title: r.title,
            project: r.cwd,
            size_bytes: r.bytes.max(0) as u64,
            state: SessionState::Retired.as_str(),
            retired_at: r.retired_at,
            op_id: r.op_id,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.size_bytes
            .cmp(&a.size_bytes)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(rows)
}

/// The retired sessions in the text view: listed under `--state retired`, else counted.
fn retired_text(rows: &[RetiredRow], args: &SessionsArgs, limit: Option<usize>) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let bytes: u64 = rows.iter().map(|r| r.size_bytes).sum();
    let mut text = format!(
        "{} sessions retired into the store ({}); `codex-maint restore <id>` brings one back{}\n",
        rows.len(),
        human_bytes(bytes),
        if args.state == Some(SessionState::Retired) {
            ":"
        } else {
            "; `--state retired` lists them"
        }
    );
    if args.state == Some(SessionState::Retired) {
        for r in rows.iter().take(limit.unwrap_or(usize::MAX)) {
            text.push_str(&format!(
                "  {}  {:>9}  retired {}  {}  {}\n",
                &r.id[..r.id.len().min(13)],
                human_bytes(r.size_bytes),
                r.retired_at
                    .as_deref()
                    .map_or("-", |t| &t[..t.len().min(10)]),
                pad(
                    &clip_start(
                        &one_line(r.project.as_deref().unwrap_or("-")),
                        PROJECT_COLUMNS
                    ),
                    PROJECT_COLUMNS
                ),
                clip_end(&one_line(r.title.as_deref().unwrap_or("-")), TITLE_COLUMNS),
            ));
        }
    }
    text
}
