//! Every row a thread has in Codex's databases: found from the schema (`tables`), kept as
//! typed rows by column name (`dump`), taken out and put back (`ThreadDatabases`). This is
//! what `codex delete` removes, done so that it can be given back.

pub mod dump;
pub mod tables;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use crate::error::MaintError;
pub use dump::{DumpedRow, RowValue};
use tables::{ThreadTable, quoted};

/// How many times the rows of a set of threads are read again and corrected after a write:
/// Codex's triggers write rows of their own (`queued_items` bumps its thread's revision),
/// and each round settles one more level of them.
const SETTLING_ROUNDS: usize = 4;

const WAL_HEADER_BYTES: u64 = 32;

/// Codex's databases of one home, open for writing, with the thread tables of each.
pub struct ThreadDatabases {
    databases: Vec<OpenDatabase>,
}

struct OpenDatabase {
    name: String,
    conn: Connection,
    tables: Vec<ThreadTable>,
    /// A WAL was beside it when opened: unless this run writes the database, what is
    /// pending in it stays there, as Codex left it, rather than folded in by our closing.
    had_wal: bool,
    wrote: bool,
}

impl Drop for OpenDatabase {
    fn drop(&mut self) {
        if !self.had_wal || self.wrote {
            // Checkpointed on close and the WAL removed, as Codex's own clean exit leaves
            // it: a database this run changed is folded whole, whatever was pending.
            let _ = self.conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                false,
            );
        }
    }
}

impl ThreadDatabases {
    /// Opens each database and finds its thread tables; refuses, with nothing changed, when
    /// a table is not understood or a database cannot take a write lock (Codex writing).
    pub fn open(home: &Path) -> Result<ThreadDatabases> {
        let mut databases = Vec::new();
        for path in tables::codex_databases(home)? {
            drop(
                crate::regular_file::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?,
            );
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .context("a Codex database name")?
                .to_string();
            // Frames pending, not just the 32-byte header an opened WAL starts with.
            let had_wal = std::fs::metadata(crate::sqlite_read::wal_path(&path))
                .is_ok_and(|m| m.len() > WAL_HEADER_BYTES);
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("opening {}", path.display()))?;
            conn.busy_timeout(Duration::from_millis(1500))?;
            // A pending WAL is left as Codex left it: closing the last connection would
            // otherwise fold it into the database, rewriting a file whose rows this run may
            // not even touch. Codex checkpoints it itself. (See `OpenDatabase`'s drop.)
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // Rows are taken and put back table by table; the checks that matter are made on
            // the whole set, in one transaction per database.
            conn.pragma_update(None, "foreign_keys", "OFF")?;
            let tables = tables::discover(&conn, &name)?;
            if tables.is_empty() {
                continue;
            }
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
                return Err(MaintError::refused(
                    format!(
                        "{} is locked by another process ({e}); close Codex and try again. Nothing was changed",
                        path.display()
                    ),
                    vec![path.display().to_string()],
                )
                .into());
            }
            databases.push(OpenDatabase {
                name,
                conn,
                tables,
                had_wal,
                wrote: false,
            });
        }
        Ok(ThreadDatabases { databases })
    }

    /// The tables a dump is taken from, as `database.table` names: the op records them.
    pub fn table_names(&self) -> Vec<String> {
        self.databases
            .iter()
            .flat_map(|d| {
                d.tables
                    .iter()
                    .map(|t| format!("{}.{}", t.database, t.table))
            })
            .collect()
    }

    /// Every row of each thread in `ids`, by thread. A row naming two of them (a spawn
    /// edge between a parent and its child) belongs to the first key column that does.
    pub fn rows_of(&self, ids: &[&str]) -> Result<HashMap<String, Vec<DumpedRow>>> {
        let wanted: BTreeSet<&str> = ids.iter().copied().collect();
        let mut by_thread: HashMap<String, Vec<DumpedRow>> =
            ids.iter().map(|id| (id.to_string(), Vec::new())).collect();
        for db in &self.databases {
            for table in &db.tables {
                for row in read_rows(&db.conn, table, ids)? {
                    let owner = table
                        .key_columns
                        .iter()
                        .find_map(|k| match row.columns.get(k) {
                            Some(RowValue::Text(v)) if wanted.contains(v.as_str()) => {
                                Some(v.clone())
                            }
                            _ => None,
                        });
                    if let Some(owner) = owner {
                        by_thread.entry(owner).or_default().push(row);
                    }
                }
            }
        }
        Ok(by_thread)
    }

    /// Takes every row of the threads in `ids` out, one transaction per database; rows
    /// Codex's triggers write on the way are taken too.
    pub fn delete(&mut self, ids: &[&str]) -> Result<()> {
        let ids_json = serde_json::to_string(ids)?;
        for db in &mut self.databases {
            // A database that holds none of these rows is not written at all: not even an
            // empty transaction, which would leave a WAL Codex did not.
            let mut holds_any = false;
            for table in &db.tables {
                let count: i64 = db.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {}",
                        quoted(&table.table),
                        matching(table)
                    ),
                    [&ids_json],
                    |r| r.get(0),
                )?;
                holds_any |= count > 0;
            }
            if !holds_any {
                continue;
            }
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .with_context(|| format!("writing {}", db.name))?;
            let mut settled = false;
            for _ in 0..SETTLING_ROUNDS {
                let mut left = 0;
                for table in &db.tables {
                    left += tx.execute(
                        &format!(
                            "DELETE FROM {} WHERE {}",
                            quoted(&table.table),
                            matching(table)
                        ),
                        [&ids_json],
                    )?;
                }
                if left == 0 {
                    settled = true;
                    break;
                }
            }
            db.wrote = true;
            if !settled {
                anyhow::bail!(
                    "{}: Codex's triggers keep writing rows of the threads taken out; nothing was changed in it",
                    db.name
                );
            }
            tx.commit()
                .with_context(|| format!("committing {}", db.name))?;
        }
        Ok(())
    }

    /// Why `rows` cannot go back into the databases as they are now; empty when they can. A
    /// column a row holds a value for must still exist, and a column added since that needs
    /// a value must have a default.
    pub fn misfits(&self, rows: &[DumpedRow]) -> Vec<String> {
        let mut problems = BTreeSet::new();
        for row in rows {
            let Some(table) = self.table(&row.database, &row.table) else {
                problems.insert(format!(
                    "{} has no table {} any more",
                    row.database, row.table
                ));
                continue;
            };
            for (name, value) in &row.columns {
                if !value.is_null() && !table.columns.iter().any(|c| &c.name == name) {
                    problems.insert(format!(
                        "{} {}.{} is gone, and a row to put back holds a value for it",
                        row.database, row.table, name
                    ));
                }
            }
            for column in table.columns.iter().filter(|c| c.required) {
                if !row.columns.contains_key(&column.name) {
                    problems.insert(format!(
                        "{} {}.{} is new, needs a value, and has no default",
                        row.database, row.table, column.name
                    ));
                }
            }
        }
        problems.into_iter().collect()
    }

    /// Puts `rows` (the rows of the threads `ids`) back by column name, one transaction per
    /// database, so that afterwards the threads' rows are exactly these. Rows already there
    /// are left; a row written by a trigger on the way is taken out again; a row that was
    /// there before and is in the way of one to put back is someone else's (Codex's), and
    /// makes the database's transaction roll back with the reason.
    pub fn put_back(&mut self, ids: &[&str], rows: &[DumpedRow]) -> Result<()> {
        let misfits = self.misfits(rows);
        if !misfits.is_empty() {
            return Err(MaintError::refused(
                format!(
                    "the rows cannot go back into Codex's databases as they are now: {}; nothing was changed",
                    misfits.join("; ")
                ),
                misfits,
            )
            .into());
        }
        let ids_json = serde_json::to_string(ids)?;
        for db in &mut self.databases {
            let mine: Vec<&DumpedRow> = rows.iter().filter(|r| r.database == db.name).collect();
            if mine.is_empty() {
                continue;
            }
            let tx = db
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .with_context(|| format!("writing {}", db.name))?;
            put_back_in(&tx, &db.tables, &ids_json, &mine)
                .with_context(|| format!("putting rows back into {}", db.name))?;
            db.wrote = true;
            tx.commit()
                .with_context(|| format!("committing {}", db.name))?;
        }
        Ok(())
    }

    fn table(&self, database: &str, table: &str) -> Option<&ThreadTable> {
        self.databases
            .iter()
            .filter(|d| d.name == database)
            .flat_map(|d| d.tables.iter())
            .find(|t| t.table == table)
    }
}

/// `WHERE` text matching rows whose key columns name any id of the JSON array `?1`.
fn matching(table: &ThreadTable) -> String {
    table
        .key_columns
        .iter()
        .map(|k| format!("{} IN (SELECT value FROM json_each(?1))", quoted(k)))
        .collect::<Vec<_>>()
        .join(" OR ")
}

fn read_rows(conn: &Connection, table: &ThreadTable, ids: &[&str]) -> Result<Vec<DumpedRow>> {
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let select = names
        .iter()
        .map(|n| quoted(n))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {select} FROM {} WHERE {}",
        quoted(&table.table),
        matching(table)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let ids_json = serde_json::to_string(ids)?;
    let rows = stmt
        .query_map([&ids_json], |r| {
            let mut columns = BTreeMap::new();
            for (i, name) in names.iter().enumerate() {
                columns.insert(name.clone(), RowValue::read(r.get_ref(i)?));
            }
            Ok(DumpedRow {
                database: table.database.clone(),
                table: table.table.clone(),
                columns,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

type Projected = BTreeMap<String, RowValue>;

fn put_back_in(
    tx: &Connection,
    tables: &[ThreadTable],
    ids_json: &str,
    rows: &[&DumpedRow],
) -> Result<()> {
    let ids: Vec<String> = serde_json::from_str(ids_json)?;
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut wanted: HashMap<&str, Vec<Projected>> = HashMap::new();
    for row in rows {
        let table = tables
            .iter()
            .find(|t| t.table == row.table)
            .context("a row's table was checked to exist")?;
        let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        wanted
            .entry(table.table.as_str())
            .or_default()
            .push(row.projected(&names));
    }
    // Rows are compared on the columns the dump and today's schema share: a column added
    // since holds its default, which the dump knows nothing of.
    let now_of = |table: &ThreadTable| -> Result<Vec<Projected>> {
        let shared: Vec<String> = wanted
            .get(table.table.as_str())
            .and_then(|w| w.first())
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        Ok(read_rows(tx, table, &id_refs)?
            .into_iter()
            .map(|r| r.projected(&shared))
            .collect())
    };
    // What was there before this transaction is not ours to take out.
    let mut before: HashMap<&str, Vec<Projected>> = HashMap::new();
    for table in tables
        .iter()
        .filter(|t| wanted.contains_key(t.table.as_str()))
    {
        before.insert(table.table.as_str(), now_of(table)?);
    }
    for _ in 0..SETTLING_ROUNDS {
        let mut changed = false;
        let mut blocked = Vec::new();
        for table in tables {
            let Some(want) = wanted.get(table.table.as_str()) else {
                // A trigger may still write into a table the dump has no rows of.
                continue;
            };
            let was = &before[table.table.as_str()];
            let now = now_of(table)?;
            for extra in now.iter().filter(|r| !want.contains(r) && !was.contains(r)) {
                delete_row(tx, table, extra)?;
                changed = true;
            }
            let now = now_of(table)?;
            for missing in want.iter().filter(|r| !now.contains(r)) {
                match insert_row(tx, table, missing) {
                    Ok(()) => changed = true,
                    Err(e) => blocked.push(format!("{}: {e}", table.table)),
                }
            }
        }
        if !changed && blocked.is_empty() {
            return Ok(());
        }
        if !changed {
            return Err(MaintError::refused(
                format!(
                    "rows already in Codex's database stand where rows must go back ({}); nothing was changed in it",
                    blocked.join("; ")
                ),
                blocked,
            )
            .into());
        }
    }
    anyhow::bail!("Codex's triggers keep rewriting the rows put back; nothing was changed in it")
}

fn insert_row(tx: &Connection, table: &ThreadTable, row: &Projected) -> rusqlite::Result<()> {
    let names: Vec<&String> = row.keys().collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quoted(&table.table),
        names
            .iter()
            .map(|n| quoted(n))
            .collect::<Vec<_>>()
            .join(", "),
        (1..=names.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let values: Vec<rusqlite::types::Value> = row.values().map(RowValue::to_sql).collect();
    tx.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(values))
        .map(|_| ())
}

/// Deletes one row found by every one of its values (`IS`, so that NULLs match).
fn delete_row(tx: &Connection, table: &ThreadTable, row: &Projected) -> rusqlite::Result<()> {
    let names: Vec<&String> = row.keys().collect();
    let sql = format!(
        "DELETE FROM {} WHERE rowid IN (SELECT rowid FROM {} WHERE {} LIMIT 1)",
        quoted(&table.table),
        quoted(&table.table),
        names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{} IS ?{}", quoted(n), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let values: Vec<rusqlite::types::Value> = row.values().map(RowValue::to_sql).collect();
    tx.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(values))
        .map(|_| ())
}
