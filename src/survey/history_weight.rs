//! The weight of Codex's thread history (`thread_history_N.sqlite`, a second copy of what
//! every session said) by the state of each thread in the index: archiving frees none of
//! it, so a home whose sessions are archived and compressed still carries this.
//!
//! Per thread, the bytes of its items' JSON (`octet_length`, which SQLite answers from each
//! record's header without reading the text), joined to the thread's row as the survey
//! already holds it: one grouped read, memory flat in the number of threads.

use rusqlite::Connection;
use serde::Serialize;
use std::path::{Path, PathBuf};

use super::model::CountBytes;
use crate::home::survey_rows::SurveyRows;

#[derive(Debug, Default, Serialize)]
pub struct HistoryWeight {
    pub path: String,
    /// The file and its `-wal`.
    pub file_bytes: u64,
    /// Threads and the bytes of their items' JSON, by the state of their row.
    pub active: CountBytes,
    pub archived: CountBytes,
    /// Threads with items but no row in the index (or no index to ask).
    pub without_row: CountBytes,
    /// Sessions retired into the store (out of Codex's view, rows included): filled in
    /// where the store is read, `None` until then.
    pub retired_in_store: Option<CountBytes>,
    /// Why the weight could not be read, when it could not.
    pub unreadable: Option<String>,
}

impl HistoryWeight {
    pub fn line(&self) -> String {
        use crate::clock::human_bytes;
        let part = |what: &str, c: &CountBytes| {
            format!("{what} {} ({} threads)", human_bytes(c.bytes), c.count)
        };
        if let Some(why) = &self.unreadable {
            return format!(
                "{} ({}): its weight by state could not be read ({why})",
                self.path,
                human_bytes(self.file_bytes)
            );
        }
        let mut parts = vec![
            part("active", &self.active),
            part("archived", &self.archived),
        ];
        if self.without_row.count > 0 {
            parts.push(part("without a thread row", &self.without_row));
        }
        if let Some(retired) = &self.retired_in_store {
            parts.push(part("retired, held in the store", retired));
        }
        format!(
            "{} ({} on disk): items of {}; archiving frees none of it",
            Path::new(&self.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            human_bytes(self.file_bytes),
            parts.join(", ")
        )
    }
}

/// The thread history among the home's databases: `thread_history_N.sqlite`, the newest
/// generation when there are several.
pub fn find(databases: &[PathBuf]) -> Option<&PathBuf> {
    databases.iter().rev().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("thread_history_"))
            .and_then(|n| n.strip_suffix(".sqlite"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

pub fn weigh(path: &Path, rows: Option<&SurveyRows>) -> HistoryWeight {
    let mut weight = HistoryWeight {
        path: path.display().to_string(),
        file_bytes: [path.to_path_buf(), crate::sqlite_read::wal_path(path)]
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum(),
        ..Default::default()
    };
    let read = crate::sqlite_read::open(path)
        .and_then(|db| add_up(&db.conn, rows, &mut weight).map_err(Into::into));
    if let Err(e) = read {
        weight.unreadable = Some(format!("{e:#}"));
    }
    weight
}

fn add_up(
    conn: &Connection,
    rows: Option<&SurveyRows>,
    weight: &mut HistoryWeight,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT thread_id, SUM(octet_length(item_json)) FROM thread_items GROUP BY thread_id",
    )?;
    let mut found = stmt.query([])?;
    while let Some(r) = found.next()? {
        let id: String = r.get(0)?;
        let bytes = r.get::<_, Option<i64>>(1)?.unwrap_or(0).max(0) as u64;
        let bucket = match rows.and_then(|rows| rows.get(&id)) {
            Some(row) if row.archived != 0 => &mut weight.archived,
            Some(_) => &mut weight.active,
            None => &mut weight.without_row,
        };
        bucket.count += 1;
        bucket.bytes += bytes;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_thread_history_database_is_weighed() {
        let dbs: Vec<PathBuf> = ["logs_2.sqlite", "state_5.sqlite", "thread_history_1.sqlite"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(find(&dbs), Some(&PathBuf::from("thread_history_1.sqlite")));
        assert_eq!(find(&dbs[..2]), None);
    }
}
