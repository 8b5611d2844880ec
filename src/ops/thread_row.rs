//! The part of a Codex thread row a transcript move changes, and the guarded writes that
//! change it: a row is only ever moved from the state we recorded to the state we planned.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

use crate::error::MaintError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowState {
    pub rollout_path: String,
    pub archived: i64,
    pub archived_at: Option<i64>,
}

pub fn read(conn: &Connection, thread_id: &str) -> Result<Option<RowState>> {
    // Cached: a run reads thousands of rows, and parsing the statement each time was a
    // visible part of it.
    Ok(conn
        .prepare_cached("SELECT rollout_path, archived, archived_at FROM threads WHERE id = ?1")?
        .query_row([thread_id], |r| {
            Ok(RowState {
                rollout_path: r.get(0)?,
                archived: r.get(1)?,
                archived_at: r.get(2)?,
            })
        })
        .optional()?)
}

/// A read-write connection to Codex's thread index, held for a whole run.
pub struct IndexWriter {
    conn: Connection,
    path: std::path::PathBuf,
}

impl IndexWriter {
    pub fn open(path: &Path) -> Result<IndexWriter> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the thread index {}", path.display()))?;
        conn.busy_timeout(Duration::from_millis(1500))?;
        Ok(IndexWriter {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Before the first change: the index must pass `quick_check` and accept a write lock,
    /// otherwise the run refuses with nothing changed.
    pub fn preflight(&self, path: &Path) -> Result<()> {
        let check: Result<String, _> = self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match check {
            Ok(ok) if ok == "ok" => {}
            Ok(problem) => {
                return Err(MaintError::refused(
                    format!("the thread index {} fails its integrity check ({problem}); nothing was changed", path.display()),
                    vec![problem],
                )
                .into());
            }
            Err(e) => {
                return Err(MaintError::refused(
                    format!(
                        "the thread index {} cannot be read ({e}); nothing was changed",
                        path.display()
                    ),
                    vec![],
                )
                .into());
            }
        }
        let probe = self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
        if let Err(e) = probe {
            return Err(MaintError::refused(
                format!(
                    "the thread index {} is locked by another process ({e}); close Codex and try again. Nothing was changed",
                    path.display()
                ),
                vec![],
            )
            .into());
        }
        Ok(())
    }

    /// Sets each row from `from` to `to` in one transaction. A row in neither state means
    /// someone else changed it: nothing is written and the conflict is returned.
    pub fn transition(&mut self, changes: &[(&str, &RowState, &RowState)]) -> Result<()> {
        self.transition_rows(changes).with_context(|| {
            format!(
                "updating {} row(s) of the thread index {}",
                changes.len(),
                self.path.display()
            )
        })
    }

    fn transition_rows(&mut self, changes: &[(&str, &RowState, &RowState)]) -> Result<()> {
        // Rows already where they should be need no write lock: a step rolled back because
        // another process held the index (Codex writing) never changed them, and settling it
        // must not wait on that same lock.
        let mut already = true;
        for (id, _, to) in changes {
            if read(&self.conn, id)?.as_ref() != Some(*to) {
                already = false;
                break;
            }
        }
        if already {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (id, from, to) in changes {
            let now = read(&tx, id)?;
            match now {
                Some(ref row) if row == *to => continue,
                Some(ref row) if row == *from => {
                    tx.prepare_cached(
                        "UPDATE threads SET rollout_path = ?2, archived = ?3, archived_at = ?4 WHERE id = ?1",
                    )?
                    .execute(params![id, to.rollout_path, to.archived, to.archived_at])?;
                }
                other => {
                    return Err(MaintError::refused(
                        format!("thread {id}'s row changed outside codex-maint (now {other:?}); nothing was changed"),
                        vec![id.to_string()],
                    )
                    .into());
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}
