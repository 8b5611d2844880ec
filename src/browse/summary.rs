//! One session as a person reviews it before choosing: what it was about, where, how
//! long, how heavy, why cleanup would keep it, and its handoff document when it has one.
//! Every text from the transcript or the index is escaped (`terminal_text::one_line`).

use std::path::Path;

use crate::clock::{human_age, human_bytes};
use crate::home::transcript::TranscriptReader;
use crate::policy::Protection;
use crate::survey::session_list::ListedSession;
use crate::terminal_text::one_line;

/// Lines of a handoff document shown; the rest is in the file.
const HANDOFF_LINES: usize = 40;
/// A transcript is read this far for its turns; a longer one says "at least".
const TURNS_READ_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone)]
pub struct Summary {
    pub lines: Vec<String>,
}

impl Summary {
    pub fn of(
        s: &ListedSession,
        protection: Option<&Option<Protection>>,
        handoff_dir: &Path,
        now: i64,
    ) -> Summary {
        let mut lines = Vec::new();
        let text = |t: Option<&str>| t.map_or("-".to_string(), one_line);
        lines.push(format!("session   {}", text(s.id.as_deref())));
        lines.push(format!("title     {}", text(s.title().map(|(t, _)| t))));
        lines.push(format!("project   {}", text(s.cwd())));
        lines.push(format!(
            "file      {}",
            one_line(&s.file.path.display().to_string())
        ));
        lines.push(format!(
            "size      {}   state {}   idle {}",
            human_bytes(s.file.size),
            s.state().as_str(),
            human_age(s.age_secs(now))
        ));
        lines.push(format!("turns     {}", turns(&s.file.path)));
        lines.push(format!(
            "cleanup   {}",
            match protection {
                Some(Some(p)) => format!("keeps it: {}", p.explain()),
                Some(None) => "may act on it".to_string(),
                None => "not judged yet".to_string(),
            }
        ));
        lines.push(String::new());
        lines.push("first message".to_string());
        lines.push(format!("  {}", text(s.first_message())));
        lines.push(String::new());
        match s
            .id
            .as_deref()
            .and_then(|id| newest_handoff(handoff_dir, id))
        {
            Some((path, doc)) => {
                lines.push(format!(
                    "handoff   {}",
                    one_line(&path.display().to_string())
                ));
                let mut shown = doc.lines();
                lines.extend(
                    shown
                        .by_ref()
                        .take(HANDOFF_LINES)
                        .map(|l| format!("  {}", one_line(l))),
                );
                if shown.next().is_some() {
                    lines.push("  ...".to_string());
                }
            }
            None => lines.push("handoff   none (h marks it for one)".to_string()),
        }
        Summary { lines }
    }
}

/// Turns as `handoff` counts them: Codex records a `task_started` event as each begins.
fn turns(path: &Path) -> String {
    let Ok(mut reader) = TranscriptReader::open(path) else {
        return "unreadable".to_string();
    };
    let mut turns = 0u64;
    while reader.stats.bytes < TURNS_READ_BYTES {
        match reader.next_record() {
            Ok(Some(record)) => {
                turns += u64::from(
                    record["type"] == "event_msg" && record["payload"]["type"] == "task_started",
                )
            }
            Ok(None) => return turns.to_string(),
            Err(_) => return format!("{turns} before a read error"),
        }
    }
    format!("at least {turns}")
}

/// The newest handoff `handoff` wrote for `id` in its default folder (`<id>-<stamp>.md`).
fn newest_handoff(dir: &Path, id: &str) -> Option<(std::path::PathBuf, String)> {
    let prefix = format!("{id}-");
    let newest = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".md"))
        })
        .max()?;
    let file = crate::regular_file::open(&newest).ok()?;
    let mut doc = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 64 << 10), &mut doc).ok()?;
    Some((newest, String::from_utf8_lossy(&doc).into_owned()))
}
