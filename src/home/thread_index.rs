//! Codex's thread index: the `threads` table of the newest `state_N.sqlite` (CODEX-LAYOUT.md).
//! Found by looking, never assumed: an index without the columns we rely on is reported
//! as not understood, and transcript moves refuse rather than leave Codex inconsistent.

use anyhow::Result;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

use super::{CodexHome, is_state_db_name, sqlite_read};

/// Columns a transcript move reads or writes; without them we cannot keep Codex consistent.
pub const REQUIRED_COLUMNS: &[&str] = &["id", "rollout_path", "archived", "archived_at"];

#[derive(Debug, Clone)]
pub enum IndexState {
    /// No `state_*.sqlite`: an older Codex that indexes by scanning; moves need no row update.
    Absent,
    Understood(ThreadIndex),
    NotUnderstood {
        path: PathBuf,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct ThreadIndex {
    pub path: PathBuf,
    pub generation: u32,
    columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadRow {
    pub id: String,
    pub rollout_path: String,
    pub archived: i64,
    pub archived_at: Option<i64>,
    pub is_pinned: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub title: Option<String>,
    pub cwd: Option<String>,
    pub source: Option<String>,
    pub git_branch: Option<String>,
    pub git_sha: Option<String>,
}

/// The home's thread index, if it has one, for a command that changes transcripts or rows:
/// an index it does not understand refuses (exit 3), since acting anyway would leave Codex
/// inconsistent.
pub fn require_understood(home: &CodexHome) -> anyhow::Result<Option<ThreadIndex>> {
    match detect(home) {
        IndexState::NotUnderstood { path, reason } => Err(crate::error::MaintError::refused(
            format!(
                "Codex's thread index {} is not understood ({reason}); changing transcripts or rows would leave Codex inconsistent, so nothing was changed",
                path.display()
            ),
            vec![],
        )
        .into()),
        IndexState::Understood(index) => Ok(Some(index)),
        IndexState::Absent => Ok(None),
    }
}

pub fn detect(home: &CodexHome) -> IndexState {
    let mut candidates: Vec<(u32, PathBuf)> = match std::fs::read_dir(&home.root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if !is_state_db_name(&name) {
                    return None;
                }
                let n = name["state_".len()..name.len() - ".sqlite".len()]
                    .parse()
                    .ok()?;
                Some((n, e.path()))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let Some((generation, path)) = candidates.into_iter().next() else {
        return IndexState::Absent;
    };
    match sqlite_read::open(&path).and_then(|db| columns_of(&db.conn)) {
        Err(e) => IndexState::NotUnderstood {
            path,
            reason: format!("cannot be read: {e:#}"),
        },
        Ok(cols) if cols.is_empty() => IndexState::NotUnderstood {
            path,
            reason: "has no threads table".into(),
        },
        Ok(cols) => {
            let missing: Vec<&str> = REQUIRED_COLUMNS
                .iter()
                .copied()
                .filter(|c| !cols.iter().any(|have| have == c))
                .collect();
            if missing.is_empty() {
                IndexState::Understood(ThreadIndex {
                    path,
                    generation,
                    columns: cols,
                })
            } else {
                IndexState::NotUnderstood {
                    path,
                    reason: format!("its threads table lacks the columns {}", missing.join(", ")),
                }
            }
        }
    }
}

fn columns_of(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('threads')")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl ThreadIndex {
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }

    fn select_list(&self) -> String {
        let optional = |name: &str, fallback: &str| {
            if self.has_column(name) {
                name.to_string()
            } else {
                format!("{fallback} AS {name}")
            }
        };
        [
            "id".to_string(),
            "rollout_path".to_string(),
            "archived".to_string(),
            "archived_at".to_string(),
            optional("is_pinned", "0"),
            optional("created_at", "NULL"),
            optional("updated_at", "NULL"),
            optional("title", "NULL"),
            optional("cwd", "NULL"),
            optional("source", "NULL"),
            optional("git_branch", "NULL"),
            optional("git_sha", "NULL"),
        ]
        .join(", ")
    }

    /// Every row, keyed by lowercase id, read without writing to the home.
    pub fn read_all(&self) -> Result<HashMap<String, ThreadRow>> {
        let db = sqlite_read::open(&self.path)?;
        self.rows_from(&db.conn, None)
    }

    /// Every row through a connection the caller already holds (a writer, during a run).
    pub fn read_all_with(&self, conn: &Connection) -> Result<HashMap<String, ThreadRow>> {
        self.rows_from(conn, None)
    }

    pub fn row(&self, conn: &Connection, id: &str) -> Result<Option<ThreadRow>> {
        Ok(self.rows_from(conn, Some(&[id]))?.into_values().next())
    }

    /// The rows of `ids` only (Codex writes ids lowercase, as they are looked up here): a
    /// run over a home of 100,000 threads reads its rows a slice at a time instead of all.
    pub fn rows_of(&self, conn: &Connection, ids: &[&str]) -> Result<HashMap<String, ThreadRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.rows_from(conn, Some(ids))
    }

    /// Every row, one at a time, without collecting them.
    pub fn for_each_row(&self, conn: &Connection, mut each: impl FnMut(ThreadRow)) -> Result<()> {
        let sql = format!("SELECT {} FROM threads", self.select_list());
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            each(row_from(r)?);
        }
        Ok(())
    }

    fn rows_from(
        &self,
        conn: &Connection,
        only: Option<&[&str]>,
    ) -> Result<HashMap<String, ThreadRow>> {
        let sql = match only {
            Some(ids) => format!(
                "SELECT {} FROM threads WHERE id IN ({})",
                self.select_list(),
                vec!["?"; ids.len()].join(", ")
            ),
            None => format!("SELECT {} FROM threads", self.select_list()),
        };
        let mut stmt = conn.prepare(&sql)?;
        let map_row = row_from;
        let rows = match only {
            Some(ids) => stmt
                .query_map(rusqlite::params_from_iter(ids.iter()), map_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
            None => stmt
                .query_map([], map_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows.into_iter().map(|r| (r.id.clone(), r)).collect())
    }
}

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ThreadRow> {
    Ok(ThreadRow {
        id: r.get::<_, String>(0)?.to_ascii_lowercase(),
        rollout_path: r.get(1)?,
        archived: r.get(2)?,
        archived_at: r.get(3)?,
        is_pinned: r.get::<_, Option<i64>>(4)?.unwrap_or(0) != 0,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        title: r.get(7)?,
        cwd: r.get(8)?,
        source: r.get(9)?,
        git_branch: r.get(10)?,
        git_sha: r.get(11)?,
    })
}
