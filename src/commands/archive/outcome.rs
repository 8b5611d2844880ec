//! What an archive run tells: the kept sessions as a tally, the archived ones counted with
//! the largest listed, every one streamed to --json, and the check after the run.

use anyhow::Result;

use super::relative_to;
use crate::clock::human_bytes;
use crate::home::CodexHome;
use crate::home::sessions::SessionFile;
use crate::ops::thread_row::{self, IndexWriter};
use crate::policy::{Protection, SessionLine};
use crate::report::{self, Largest, LongList, LongListWriter, Report};

/// Items a text report lists one by one; the rest are counted (every one is in --json).
pub(super) const SHOWN_IN_TEXT: usize = 20;

pub(super) fn more_in_json(more: u64) -> String {
    format!("... and {more} more (every one is in --json)")
}

/// What was kept and why, as the text view tells it, built as the sessions are judged:
/// the age heuristic as one count, the other reasons item by item up to a cap.
#[derive(Default)]
pub(super) struct ProtectedTally {
    recent: u64,
    others_shown: Vec<String>,
    others_more: u64,
}

impl ProtectedTally {
    pub(super) fn add(&mut self, line: SessionLine) {
        if matches!(line.protection, Some(Protection::Recent(_))) {
            self.recent += 1;
        } else if self.others_shown.len() < SHOWN_IN_TEXT {
            self.others_shown.push(line.kept_because());
        } else {
            self.others_more += 1;
        }
    }

    pub(super) fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.recent > 0 {
            out.push(format!(
                "{} recent sessions, younger than the minimum age",
                self.recent
            ));
        }
        out.extend(self.others_shown.iter().cloned());
        if self.others_more > 0 {
            out.push(format!(
                "... and {} more protected sessions (all in --json)",
                self.others_more
            ));
        }
        out
    }
}

/// The sessions archived so far: counted, the largest kept for the text view, every one
/// written to disk for --json and for the check after the run.
pub(super) struct DoneTally {
    pub(super) lines: LongListWriter,
    shown: Largest,
    pub(super) count: u64,
    pub(super) bytes: u64,
}

impl DoneTally {
    pub(super) fn new() -> Result<DoneTally> {
        Ok(DoneTally {
            lines: LongListWriter::new()?,
            shown: Largest::new(SHOWN_IN_TEXT),
            count: 0,
            bytes: 0,
        })
    }

    pub(super) fn add(
        &mut self,
        file: &SessionFile,
        dst: &std::path::Path,
        age: u64,
        op_id: i64,
        stored: Option<u64>,
    ) -> Result<()> {
        self.lines.push(&line(file, Some(dst), age, Some(op_id)))?;
        self.count += 1;
        self.bytes += file.size;
        self.shown.offer(file.size, || match stored {
            Some(stored) => format!(
                "archived and compressed {} ({} -> {}) (op {op_id})",
                file.id().unwrap_or("?"),
                human_bytes(file.size),
                human_bytes(stored)
            ),
            None => format!(
                "archived {} ({}) (op {op_id})",
                file.id().unwrap_or("?"),
                human_bytes(file.size)
            ),
        });
        Ok(())
    }

    pub(super) fn shown_lines(&mut self) -> Vec<String> {
        std::mem::replace(&mut self.shown, Largest::new(0)).into_lines(more_in_json)
    }
}

pub(super) fn line(
    file: &SessionFile,
    destination: Option<&std::path::Path>,
    age: u64,
    op_id: Option<i64>,
) -> SessionLine {
    SessionLine {
        id: file.id().unwrap_or("?").to_string(),
        path: file.path.display().to_string(),
        size: file.size,
        last_active_secs: age,
        protection: None,
        op_id,
        destination: destination.map(|d| d.display().to_string()),
    }
}

/// SPEC.md "Validation": each moved transcript is where the manifest says, its source is
/// free, and its thread row points at it. Read back from the run's list on disk, one at a
/// time.
pub(super) fn verify_moves(
    home: &CodexHome,
    done: &LongList,
    count: u64,
    writer: Option<&IndexWriter>,
    report: &mut Report,
) -> Result<()> {
    let mut bad = Vec::new();
    for item in done.items()? {
        let item = item?;
        let text = |key: &str| item[key].as_str().unwrap_or_default().to_string();
        let (id, path, dst) = (text("id"), text("path"), text("destination"));
        let dst_is_file = std::path::Path::new(&dst).is_file();
        if !dst_is_file {
            bad.push(format!("{dst} is missing"));
        }
        if std::path::Path::new(&path).exists() {
            bad.push(format!("{path} still exists"));
        }
        if let Some(w) = writer {
            match thread_row::read(w.connection(), &id) {
                Ok(Some(row))
                    if row.archived == 1
                        // The row names the destination as spelled: no second stat of it.
                        && ((dst_is_file && row.rollout_path == dst)
                            || crate::home::same_file(
                            std::path::Path::new(&row.rollout_path),
                            std::path::Path::new(&dst),
                        )) => {}
                other => bad.push(format!("thread {id}'s row is {other:?}")),
            }
        }
    }
    if bad.is_empty() {
        report.push(
            report::VERIFICATION,
            format!(
                "{count} moved transcripts present in {}/ with their source paths free{}",
                relative_to(home, &home.archived_sessions_dir()),
                if writer.is_some() {
                    ", each thread row archived = 1 and pointing at it"
                } else {
                    " (no thread index in this home)"
                }
            ),
        );
    } else {
        report.exit_code = crate::error::ExitKind::VerifyFailed.code();
        report.extend(
            report::VERIFICATION,
            bad.into_iter().map(|b| format!("FAILED: {b}")),
        );
    }
    Ok(())
}
