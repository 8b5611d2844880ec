//! The home's SQLite databases: found, checked for integrity without taking Codex's locks,
//! and (for log databases) counted, each on its own core.

use std::path::{Path, PathBuf};

use super::model::{DatabaseReport, FreePages, LogDatabase};
use crate::home::CodexHome;
use crate::home::sqlite_read::{self, wal_path};
use crate::sqlite_check::{self, IntegrityCheck};

/// How thoroughly `gather` checks the databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseDepth {
    /// `inspect`: `quick_check` everywhere, which reads every page and checks its
    /// structure but does not cross-check each index against its table. That cross-check
    /// was most of inspect's time (0.36 s of the thread index of 20,000 threads against
    /// 0.03 s); `inspect --deep` and `cleanup`, before and after it acts, run it.
    Survey,
    /// `inspect --deep` and `cleanup`: the full `integrity_check` everywhere.
    Full,
}

/// Every `*.sqlite` directly in the home: where Codex keeps its databases.
pub(super) fn top_level_databases(home: &CodexHome) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(&home.root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    e.file_type().is_ok_and(|t| t.is_file())
                        && e.file_name().to_string_lossy().ends_with(".sqlite")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(wal_path(db))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn is_log_database(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("logs_"))
}

const NOT_CHECKED_WHILE_WRITTEN: &str = "not checked: Codex is writing it";

/// Size and mtime of a database and its WAL: what a writer changes.
fn on_disk_state(db: &Path) -> [Option<(u64, std::time::SystemTime)>; 2] {
    [db.to_path_buf(), wal_path(db)].map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)))
    })
}

/// An `immutable` read ignores Codex's locks, so a checkpoint landing while it reads looks
/// like damage: a database that changed meanwhile was not checked, and is not called damaged.
fn discount_if_written_meanwhile(
    report: &mut DatabaseReport,
    before: [Option<(u64, std::time::SystemTime)>; 2],
    after: [Option<(u64, std::time::SystemTime)>; 2],
) {
    if report.integrity != "ok" && before != after {
        report.integrity = NOT_CHECKED_WHILE_WRITTEN.into();
        report.problems =
            vec!["it changed while being read; check again once Codex is closed".into()];
    }
}

/// Checks one database and, for a log database, counts its rows on the same connection
/// (opening one with a pending WAL means copying it, so it is opened once).
pub(super) fn check_database(
    path: &Path,
    depth: DatabaseDepth,
    large_log_bytes: u64,
) -> (DatabaseReport, Option<LogDatabase>) {
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let wal_bytes = wal_bytes(path);
    let is_log = is_log_database(path);
    let check = if depth == DatabaseDepth::Survey {
        IntegrityCheck::QuickCheck
    } else {
        IntegrityCheck::IntegrityCheck
    };
    let mut report = DatabaseReport {
        path: path.display().to_string(),
        bytes,
        wal_bytes,
        integrity: "unreadable".into(),
        check,
        problems: Vec::new(),
        snapshot: None,
        free_pages: None,
    };
    let mut rows = None;
    let state_before = on_disk_state(path);
    match sqlite_read::open(path) {
        Err(e) => report.problems.push(format!("{e:#}")),
        Ok(db) => {
            report.snapshot = Some(db.snapshot.clone());
            match sqlite_check::problems(&db.conn, check) {
                Ok(p) if p.is_empty() => report.integrity = "ok".into(),
                Ok(p) => {
                    report.integrity = "failed".into();
                    report.problems = p.into_iter().take(10).collect();
                }
                Err(e) => report.problems.push(format!("{e:#}")),
            }
            discount_if_written_meanwhile(&mut report, state_before, on_disk_state(path));
            report.free_pages = free_pages(&db.conn);
            if is_log {
                rows = db
                    .conn
                    .query_row("SELECT COUNT(*) FROM logs", [], |r| r.get(0))
                    .ok();
            }
        }
    }
    let log = is_log.then(|| LogDatabase {
        path: report.path.clone(),
        bytes,
        wal_bytes,
        rows,
        over_threshold: bytes + wal_bytes >= large_log_bytes,
    });
    (report, log)
}

/// The database's freelist, from its header through a read-only connection.
fn free_pages(conn: &rusqlite::Connection) -> Option<FreePages> {
    let pragma = |name: &str| -> Option<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .ok()
            .and_then(|n| u64::try_from(n).ok())
    };
    let (freelist_count, page_size) = (pragma("freelist_count")?, pragma("page_size")?);
    Some(FreePages {
        freelist_count,
        page_size,
        bytes: freelist_count * page_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> DatabaseReport {
        DatabaseReport {
            path: "state_5.sqlite".into(),
            bytes: 4096,
            wal_bytes: 0,
            integrity: "failed".into(),
            check: IntegrityCheck::IntegrityCheck,
            problems: vec!["page 3 is never used".into()],
            snapshot: None,
            free_pages: None,
        }
    }

    #[test]
    fn a_failure_while_the_database_changed_is_not_called_damage() {
        let t = std::time::SystemTime::UNIX_EPOCH;
        let before = [Some((4096, t)), None];
        let written = [Some((4096, t)), Some((8272, t))];

        let mut caught_mid_write = failed();
        discount_if_written_meanwhile(&mut caught_mid_write, before, written);
        assert_eq!(caught_mid_write.integrity, NOT_CHECKED_WHILE_WRITTEN);

        let mut really_damaged = failed();
        discount_if_written_meanwhile(&mut really_damaged, before, before);
        assert_eq!(really_damaged.integrity, "failed");
        assert_eq!(really_damaged.problems, failed().problems);

        let mut fine = DatabaseReport {
            integrity: "ok".into(),
            problems: Vec::new(),
            ..failed()
        };
        discount_if_written_meanwhile(&mut fine, before, written);
        assert_eq!(fine.integrity, "ok");
    }
}
