//! What the browser holds: the home's sessions in groups (by project or by month), where
//! the cursor is, which sessions are marked and for what, and the panes open over the list.
//! The sessions are kept sorted so that each group is one contiguous run of them: the rows
//! on screen are then one slice, whose titles and protections are read only when shown.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use super::marks::Mark;
use super::plan::PlanView;
use super::summary::Summary;
use crate::policy::Protection;
use crate::survey::id_prefixes::IdPrefixes;
use crate::survey::session_list::{self, ListedSession, Need, SessionListing, SessionState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Project,
    Month,
}

impl Grouping {
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Project => "project",
            Grouping::Month => "month",
        }
    }
}

/// One project folder or month: a run of the sorted sessions.
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub sessions: Range<usize>,
    pub bytes: u64,
    pub archived: usize,
    pub compressed: usize,
}

/// What covers the list, topmost last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pane {
    Summary,
    Plan,
    Log,
    Help,
}

/// A list's cursor and the first row shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    pub at: usize,
    pub top: usize,
}

impl Cursor {
    pub fn move_by(&mut self, delta: isize, len: usize) {
        if len == 0 {
            *self = Cursor::default();
            return;
        }
        self.at = (self.at as isize + delta).clamp(0, len as isize - 1) as usize;
    }

    /// Scrolls so the cursor is among the `rows` shown.
    pub fn follow(&mut self, rows: usize) {
        let rows = rows.max(1);
        if self.at < self.top {
            self.top = self.at;
        } else if self.at >= self.top + rows {
            self.top = self.at + 1 - rows;
        }
    }
}

pub struct Browser {
    pub home: String,
    pub listing: SessionListing,
    /// The shortest unique prefix of each id, as `sessions` shows them.
    pub prefixes: IdPrefixes,
    pub now: i64,
    pub grouping: Grouping,
    pub groups: Vec<Group>,
    pub total_bytes: u64,
    pub groups_cursor: Cursor,
    /// The group drilled into, and the cursor in its sessions.
    pub open_group: Option<usize>,
    pub sessions_cursor: Cursor,
    /// Why a default cleanup keeps each session judged so far (by path); judged when shown.
    pub protections: HashMap<String, Option<Protection>>,
    /// Marked sessions, by path.
    pub marks: BTreeMap<String, Mark>,
    /// Threads with a handoff on record.
    pub handoffs: std::collections::HashSet<String>,
    pub panes: Vec<Pane>,
    pub summary: Option<Summary>,
    pub plan: Option<PlanView>,
    pub log: Vec<String>,
    /// Runs applied from this browser, newest last: what `u` takes back first.
    pub runs: Vec<i64>,
    /// The processes that make every change refuse, as `write_gate` names them; empty when
    /// Codex is closed.
    pub codex_running: Vec<String>,
    /// One line under the list: what the last key did, or why it did nothing.
    pub status: String,
    /// A question `y` answers (taking back a run).
    pub asking: Option<super::keys::Question>,
}

impl Browser {
    pub fn new(
        home: String,
        listing: SessionListing,
        handoffs: std::collections::HashSet<String>,
        now: i64,
    ) -> Browser {
        let mut b = Browser {
            home,
            prefixes: IdPrefixes::new(&listing.sessions),
            listing,
            now,
            grouping: Grouping::Project,
            groups: Vec::new(),
            total_bytes: 0,
            groups_cursor: Cursor::default(),
            open_group: None,
            sessions_cursor: Cursor::default(),
            protections: HashMap::new(),
            marks: BTreeMap::new(),
            handoffs,
            panes: Vec::new(),
            summary: None,
            plan: None,
            log: Vec::new(),
            runs: Vec::new(),
            codex_running: Vec::new(),
            status: String::new(),
            asking: None,
        };
        b.regroup(Grouping::Project);
        b
    }

    /// A fresh look at the home (after a run), keeping the grouping, marks that still name
    /// a transcript, and the log.
    pub fn reload(&mut self, listing: SessionListing, handoffs: std::collections::HashSet<String>) {
        self.prefixes = IdPrefixes::new(&listing.sessions);
        self.listing = listing;
        self.handoffs = handoffs;
        self.protections.clear();
        let open = self
            .open_group
            .and_then(|g| self.groups.get(g))
            .map(|g| g.label.clone());
        self.regroup(self.grouping);
        self.open_group = open.and_then(|label| self.groups.iter().position(|g| g.label == label));
        let present: std::collections::HashSet<String> = self
            .listing
            .sessions
            .iter()
            .map(|s| s.file.path.display().to_string())
            .collect();
        self.marks.retain(|path, _| present.contains(path));
    }

    pub fn regroup(&mut self, grouping: Grouping) {
        self.grouping = grouping;
        let sessions = &mut self.listing.sessions;
        if grouping == Grouping::Project {
            session_list::fill(
                sessions,
                Need {
                    folder: true,
                    ..Need::default()
                },
            );
        }
        // Compared without building a label per comparison (100,000 sessions make
        // millions of them), and paths as bytes rather than component by component.
        match grouping {
            Grouping::Project => sessions.sort_unstable_by(|a, b| {
                (
                    a.cwd().is_none(),
                    a.cwd(),
                    Reverse(a.file.size),
                    a.file.path.as_os_str(),
                )
                    .cmp(&(
                        b.cwd().is_none(),
                        b.cwd(),
                        Reverse(b.file.size),
                        b.file.path.as_os_str(),
                    ))
            }),
            Grouping::Month => sessions.sort_unstable_by(|a, b| {
                (month_of(a), Reverse(a.file.size), a.file.path.as_os_str()).cmp(&(
                    month_of(b),
                    Reverse(b.file.size),
                    b.file.path.as_os_str(),
                ))
            }),
        }
        let mut groups: Vec<Group> = Vec::new();
        for (i, s) in sessions.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| &sessions[p]);
            match groups.last_mut() {
                Some(g) if previous.is_some_and(|p| same_group(p, s, grouping)) => {
                    g.sessions.end = i + 1
                }
                _ => groups.push(Group {
                    label: group_key(s, grouping),
                    sessions: i..i + 1,
                    bytes: 0,
                    archived: 0,
                    compressed: 0,
                }),
            }
            let g = groups.last_mut().expect("pushed above");
            g.bytes += s.file.size;
            match s.state() {
                SessionState::Archived => g.archived += 1,
                SessionState::Compressed => g.compressed += 1,
                // A listing of the home holds no retired session: those are in the store.
                SessionState::Active | SessionState::Retired => {}
            }
        }
        groups.sort_by(|a, b| (Reverse(a.bytes), &a.label).cmp(&(Reverse(b.bytes), &b.label)));
        self.total_bytes = groups.iter().map(|g| g.bytes).sum();
        self.groups = groups;
        self.groups_cursor = Cursor::default();
        self.open_group = None;
        self.sessions_cursor = Cursor::default();
    }

    /// The sessions of the open group, largest first.
    pub fn open_sessions(&self) -> &[ListedSession] {
        match self.open_group.and_then(|g| self.groups.get(g)) {
            Some(g) => &self.listing.sessions[g.sessions.clone()],
            None => &[],
        }
    }

    /// The session under the cursor, when a group is open.
    pub fn current_session(&self) -> Option<&ListedSession> {
        self.open_sessions().get(self.sessions_cursor.at)
    }

    /// Reads what the `rows` shown need (titles, first records) and judges them, so that
    /// a home of 100,000 sessions opens without reading 100,000 transcripts.
    pub fn prepare(&mut self, rows: usize) {
        let Some(group) = self.open_group.and_then(|g| self.groups.get(g)) else {
            return;
        };
        self.sessions_cursor.follow(rows);
        let start = group.sessions.start + self.sessions_cursor.top;
        let end = (start + rows).min(group.sessions.end);
        self.judge(start..end);
    }

    /// Fills and judges the sessions in `range` not judged yet.
    pub fn judge(&mut self, range: Range<usize>) {
        let shown = &mut self.listing.sessions[range.clone()];
        if shown
            .iter()
            .all(|s| self.protections.contains_key(&path_key(s)))
        {
            return;
        }
        session_list::fill(
            shown,
            Need {
                folder: true,
                title: true,
                judging: true,
            },
        );
        let shown = &self.listing.sessions[range];
        match self.listing.protections(shown) {
            Ok(kept) => {
                for (s, p) in shown.iter().zip(kept) {
                    self.protections.insert(path_key(s), p);
                }
            }
            Err(e) => self.status = format!("cannot judge these sessions: {e:#}"),
        }
    }

    pub fn protection_of(&self, s: &ListedSession) -> Option<&Option<Protection>> {
        self.protections.get(&path_key(s))
    }

    pub fn top_pane(&self) -> Option<&Pane> {
        self.panes.last()
    }

    /// Bytes and count of the marked sessions.
    pub fn marked_weight(&self) -> (usize, u64) {
        if self.marks.is_empty() {
            return (0, 0);
        }
        let bytes = self
            .listing
            .sessions
            .iter()
            .filter(|s| {
                s.file
                    .path
                    .to_str()
                    .is_some_and(|p| self.marks.contains_key(p))
            })
            .map(|s| s.file.size)
            .sum();
        (self.marks.len(), bytes)
    }
}

pub fn path_key(s: &ListedSession) -> String {
    s.file.path.display().to_string()
}

/// Months since year 0 of the session's last activity: the order of the month groups.
fn month_of(s: &ListedSession) -> i64 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp(s.last_activity, 0).map_or(i64::MIN, |t| {
        i64::from(t.year()) * 12 + i64::from(t.month0())
    })
}

fn same_group(a: &ListedSession, b: &ListedSession, grouping: Grouping) -> bool {
    match grouping {
        Grouping::Project => a.cwd() == b.cwd(),
        Grouping::Month => month_of(a) == month_of(b),
    }
}

fn group_key(s: &ListedSession, grouping: Grouping) -> String {
    match grouping {
        // Sessions without a known folder sort last.
        Grouping::Project => s
            .cwd()
            .map_or("\u{10ffff}(no project folder)".into(), str::to_string),
        Grouping::Month => chrono::DateTime::from_timestamp(s.last_activity, 0)
            .map_or("unknown".into(), |t| t.format("%Y-%m").to_string()),
    }
}

/// A group's label as shown: without the sort marker of "no folder".
pub fn shown_label(label: &str) -> &str {
    label.trim_start_matches('\u{10ffff}')
}
