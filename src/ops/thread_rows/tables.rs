//! Which tables of Codex's databases hold rows of a thread, found from each database's own
//! schema rather than from one version's list: Codex adds tables between releases (0.171
//! added `session_model_ids`), and a retire that missed one would leave rows behind, or
//! lose them on the way back. A column that names a thread in a way this module does not
//! understand makes the whole set refuse, so nothing is taken half.

use anyhow::{Context, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

use crate::error::MaintError;

/// Columns whose value is the id of the thread a row belongs to. `id` is one only in
/// `threads` itself.
const KEY_COLUMNS: &[&str] = &[
    "thread_id",
    "session_id",
    "parent_thread_id",
    "child_thread_id",
];

/// Columns that name a thread or a session without making the row the thread's: a cursor
/// (`last_checked_thread_id`), a section, a source kind, or a parent the lineage check
/// handles (`attached_thread_parent_id`, read from the `threads` row itself).
const UNDERSTOOD_OTHER_COLUMNS: &[&str] = &[
    "last_checked_thread_id",
    "thread_section_id",
    "thread_source",
    "attached_thread_parent_id",
];

/// Tables Codex's own tooling keeps, never a thread's.
fn is_bookkeeping(table: &str) -> bool {
    table.starts_with("sqlite_") || table == "_sqlx_migrations"
}

/// One table holding rows of threads: a row is the thread's when any key column holds its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadTable {
    /// The database's file name in the home, e.g. `state_5.sqlite`.
    pub database: String,
    pub table: String,
    pub key_columns: Vec<String>,
    /// Every column, in the table's order.
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// NOT NULL without a default: a row put back must bring a value for it.
    pub required: bool,
}

/// The databases Codex keeps at the top of its home: `<name>_<version>.sqlite`.
pub fn codex_databases(home: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(home) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("listing {}", home.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".sqlite") else {
            continue;
        };
        let versioned = stem
            .rsplit_once('_')
            .is_some_and(|(base, v)| !base.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
        if versioned && entry.file_type()?.is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The thread tables of one database, or a refusal naming the column not understood.
pub fn discover(conn: &Connection, database: &str) -> Result<Vec<ThreadTable>> {
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names.retain(|t| !is_bookkeeping(t));
    let mut tables = Vec::new();
    let mut not_understood = Vec::new();
    for table in names {
        let columns = columns_of(conn, &table)?;
        let mut keys = Vec::new();
        for column in &columns {
            let name = column.name.as_str();
            if KEY_COLUMNS.contains(&name) || (table == "threads" && name == "id") {
                keys.push(name.to_string());
            } else if names_a_thread(name) && !UNDERSTOOD_OTHER_COLUMNS.contains(&name) {
                not_understood.push(format!("{database} {table}.{name}"));
            }
        }
        if !keys.is_empty() {
            tables.push(ThreadTable {
                database: database.to_string(),
                table,
                key_columns: keys,
                columns,
            });
        }
    }
    if !not_understood.is_empty() {
        return Err(MaintError::refused(
            format!(
                "Codex's databases hold thread references codex-maint does not understand ({}); a session cannot be taken out whole, so nothing was changed",
                not_understood.join(", ")
            ),
            not_understood,
        )
        .into());
    }
    Ok(tables)
}

/// An identifier of a thread or session, by its name (`…thread…_id`, `…session…_ids`); a
/// count such as `max_thread_count` names none.
fn names_a_thread(column: &str) -> bool {
    let lower = column.to_ascii_lowercase();
    (lower.contains("thread") || lower.contains("session"))
        && (lower.ends_with("_id") || lower.ends_with("_ids"))
}

pub fn columns_of(conn: &Connection, table: &str) -> Result<Vec<Column>> {
    let mut stmt =
        conn.prepare("SELECT name, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")?;
    let columns = stmt
        .query_map([table], |r| {
            let not_null: i64 = r.get(1)?;
            let default: Option<String> = r.get(2)?;
            let pk: i64 = r.get(3)?;
            Ok(Column {
                name: r.get(0)?,
                // An INTEGER PRIMARY KEY takes a value of its own when none is given.
                required: not_null != 0 && default.is_none() && pk == 0,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(columns)
}

/// SQL text for an identifier, whatever it holds.
pub fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    #[test]
    fn tables_are_found_by_their_thread_columns_whatever_their_names() {
        let conn = db("CREATE TABLE threads (id TEXT PRIMARY KEY, title TEXT NOT NULL, thread_section_id TEXT);
             CREATE TABLE brand_new_table (thread_id TEXT, x INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE edges (parent_thread_id TEXT, child_thread_id TEXT PRIMARY KEY);
             CREATE TABLE unrelated (a TEXT, max_thread_count INTEGER);
             CREATE TABLE _sqlx_migrations (version INTEGER);");
        let found = discover(&conn, "state_9.sqlite").unwrap();
        let names: Vec<(&str, Vec<&str>)> = found
            .iter()
            .map(|t| {
                (
                    t.table.as_str(),
                    t.key_columns.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("brand_new_table", vec!["thread_id"]),
                ("edges", vec!["parent_thread_id", "child_thread_id"]),
                ("threads", vec!["id"]),
            ]
        );
        let threads = found.iter().find(|t| t.table == "threads").unwrap();
        assert!(
            threads
                .columns
                .iter()
                .any(|c| c.name == "title" && c.required)
        );
        assert!(
            threads
                .columns
                .iter()
                .any(|c| c.name == "id" && !c.required)
        );
    }

    #[test]
    fn a_thread_column_not_understood_refuses_naming_it() {
        let conn = db("CREATE TABLE threads (id TEXT PRIMARY KEY);
             CREATE TABLE mirrors (source_thread_id TEXT);");
        let err = discover(&conn, "state_9.sqlite").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("state_9.sqlite mirrors.source_thread_id"),
            "{text}"
        );
        assert_eq!(
            crate::error::exit_kind_of(&err),
            crate::error::ExitKind::Refused
        );
    }

    #[test]
    fn only_versioned_databases_at_the_top_of_the_home_count() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "state_5.sqlite",
            "logs_2.sqlite",
            "notes.sqlite",
            "state_5.sqlite-wal",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("goals_1.sqlite")).unwrap();
        let found: Vec<String> = codex_databases(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["logs_2.sqlite", "state_5.sqlite"]);
    }
}
