//! Codex lists at most 10,000 files per folder (`MAX_SCAN_FILES` in Codex's
//! `rollout/src/list.rs`): every filtered listing, the resume picker's included, scans
//! files, not the database. In `sessions/` it walks the dated folders newest first and
//! stops, so the oldest sessions beyond the cap are not listed at all; in the flat
//! `archived_sessions/` it takes the first 10,000 names in raw directory order, so an
//! arbitrary subset of archived sessions, recent ones included, goes missing. `codex
//! doctor`'s parity check stops at 10,000 files over both folders ("scan cap reached").

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const CODEX_SCAN_CAP: u64 = 10_000;

/// What Codex no longer lists, folder by folder; `None` for a folder under the cap.
#[derive(Debug, Default, Serialize)]
pub struct ListingCap {
    pub cap: u64,
    pub sessions: Option<FolderOverCap>,
    pub archived_sessions: Option<FolderOverCap>,
}

#[derive(Debug, Serialize)]
pub struct FolderOverCap {
    pub folder: String,
    pub transcripts: u64,
    /// How many a listing leaves out: those beyond the cap.
    pub unlisted: u64,
    /// For `sessions/`: the newest dated folder (`YYYY/MM/DD`) with a session Codex no
    /// longer lists; every older one is left out too. `None` for `archived_sessions/`,
    /// whose left-out sessions are an arbitrary subset.
    pub unlisted_through: Option<String>,
    pub which: String,
}

/// Active transcripts counted by the dated folder they sit in, as Codex's walk sees them.
#[derive(Debug, Default)]
pub struct DatedCounts(BTreeMap<String, u64>);

impl DatedCounts {
    /// Counts `path` under its `YYYY/MM/DD` folder below `sessions_root`; a transcript
    /// anywhere else is not one Codex's dated walk reaches.
    pub fn add(&mut self, sessions_root: &Path, path: &Path) {
        let Ok(rel) = path.strip_prefix(sessions_root) else {
            return;
        };
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        if let [y, m, d, _file] = parts.as_slice() {
            *self.0.entry(format!("{y}/{m}/{d}")).or_default() += 1;
        }
    }
}

impl ListingCap {
    pub fn of(active: u64, archived: u64, dated: &DatedCounts) -> ListingCap {
        let sessions = (active >= CODEX_SCAN_CAP).then(|| {
            let unlisted = active - CODEX_SCAN_CAP;
            let through = newest_unlisted_day(dated);
            let which = match (&through, unlisted) {
                (_, 0) => "all listed, but at the cap: the next session pushes the oldest out of Codex's lists".to_string(),
                (Some(day), n) => format!(
                    "the {n} oldest are not listed (Codex walks the dated folders newest first and stops at {CODEX_SCAN_CAP}): sessions from {day} and before"
                ),
                (None, n) => format!("the {n} oldest are not listed (Codex walks the dated folders newest first and stops at {CODEX_SCAN_CAP})"),
            };
            FolderOverCap {
                folder: "sessions/".into(),
                transcripts: active,
                unlisted,
                unlisted_through: through,
                which,
            }
        });
        let archived_sessions = (archived >= CODEX_SCAN_CAP).then(|| {
            let unlisted = archived - CODEX_SCAN_CAP;
            FolderOverCap {
                folder: "archived_sessions/".into(),
                transcripts: archived,
                unlisted,
                unlisted_through: None,
                which: if unlisted == 0 {
                    "all listed, but at the cap: one more archived session and an arbitrary one drops out of the Archived list".into()
                } else {
                    format!(
                        "{unlisted} are not listed, an arbitrary subset, recent ones included (Codex takes the first {CODEX_SCAN_CAP} names in raw directory order)"
                    )
                },
            }
        });
        ListingCap {
            cap: CODEX_SCAN_CAP,
            sessions,
            archived_sessions,
        }
    }

    /// The warning lines, one per folder at or over the cap.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = [&self.sessions, &self.archived_sessions]
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "warning: {} holds {} transcripts; Codex lists at most {} per folder: {}",
                    f.folder, f.transcripts, self.cap, f.which
                )
            })
            .collect();
        if self.sessions.is_some() || self.archived_sessions.is_some() {
            lines.push(format!(
                "warning: codex doctor's parity check stops at {} files over both folders (\"scan cap reached\") and skips its stale-row checks",
                self.cap
            ));
        }
        lines
    }
}

/// Walking the days newest first, the day on which the cap is passed.
fn newest_unlisted_day(dated: &DatedCounts) -> Option<String> {
    let mut listed = 0u64;
    for (day, n) in dated.0.iter().rev() {
        listed += n;
        if listed > CODEX_SCAN_CAP {
            return Some(day.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_days_beyond_the_cap_are_named_and_a_folder_under_it_is_not() {
        let root = Path::new("/h/sessions");
        let mut dated = DatedCounts::default();
        for (day, n) in [
            ("2026/01/01", 5),
            ("2026/01/02", 9_000),
            ("2026/01/03", 1_000),
        ] {
            for i in 0..n {
                dated.add(root, &root.join(day).join(format!("rollout-{i}.jsonl")));
            }
        }
        dated.add(root, Path::new("/h/sessions/stray.jsonl"));
        let cap = ListingCap::of(10_005, 9_999, &dated);
        let s = cap.sessions.as_ref().unwrap();
        assert_eq!(
            (s.unlisted, s.unlisted_through.as_deref()),
            (5, Some("2026/01/01"))
        );
        assert!(cap.archived_sessions.is_none());
        let at_cap = ListingCap::of(9_999, 10_000, &dated);
        assert!(at_cap.sessions.is_none());
        assert_eq!(at_cap.archived_sessions.as_ref().unwrap().unlisted, 0);
        assert_eq!(at_cap.lines().len(), 2);
        assert!(ListingCap::of(9_999, 9_999, &dated).lines().is_empty());
    }
}
