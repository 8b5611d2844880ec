//! What a database holds, reduced to one digest per table: the proof that a vacuum changed
//! no row. Each table's digest is the count of its rows and the sum of one hash per row,
//! so it does not depend on the order rows are read in, nor on the rowids VACUUM may renumber
//! in a table without an INTEGER PRIMARY KEY (its declared columns are what is hashed). Rows
//! stream through one statement at a time: memory stays flat on a 1 GB log database.

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    pub table: String,
    pub rows: u64,
    pub digest: String,
}

/// Every table of a database, and its schema, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowsDigest {
    pub tables: Vec<TableDigest>,
}

/// The name the schema's own rows go under. Their `rootpage` is left out: a vacuum moves
/// tables to other pages without changing what they hold.
const SCHEMA: &str = "(schema)";

impl RowsDigest {
    pub fn of(conn: &Connection) -> Result<RowsDigest> {
        let mut tables = vec![digest_query(
            conn,
            SCHEMA,
            "SELECT type, name, tbl_name, sql FROM sqlite_schema",
        )?];
        let names: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_stat%'
                 AND COALESCE(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for name in names {
            let sql = format!("SELECT * FROM \"{}\"", name.replace('"', "\"\""));
            tables.push(digest_query(conn, &name, &sql)?);
        }
        Ok(RowsDigest { tables })
    }

    /// The rows the database file `db` holds now, read without writing a byte beside it;
    /// `None` when its WAL is too large to read that way (its rows cannot be told without
    /// opening it for writing). `facts` says what the file is (a write changes them).
    ///
    /// Each database is read once per process while it stays the same file: a catalog
    /// holding a reclaim of the log database from every weekly cleanup would otherwise have
    /// `verify` read a gigabyte once per op.
    pub fn of_file_now<F: Eq + std::hash::Hash>(
        db: &Path,
        facts: impl Fn() -> Option<F>,
    ) -> Result<Option<RowsDigest>> {
        static READ: OnceLock<Mutex<HashMap<(PathBuf, u64), RowsDigest>>> = OnceLock::new();
        let read_before = READ.get_or_init(Default::default);
        let key = |f: &F| {
            use std::hash::Hasher;
            let mut h = std::hash::DefaultHasher::new();
            f.hash(&mut h);
            (db.to_path_buf(), h.finish())
        };
        let before = facts();
        if let Some(f) = &before
            && let Some(known) = read_before
                .lock()
                .ok()
                .and_then(|m| m.get(&key(f)).cloned())
        {
            return Ok(Some(known));
        }
        let read = crate::sqlite_read::open(db)?;
        if matches!(
            read.snapshot,
            crate::sqlite_read::Snapshot::MainFileOnly { .. }
        ) {
            return Ok(None);
        }
        let rows = RowsDigest::of(&read.conn)?;
        if let Some(f) = before
            && facts().as_ref() == Some(&f)
            && let Ok(mut m) = read_before.lock()
        {
            m.insert(key(&f), rows.clone());
        }
        Ok(Some(rows))
    }

    pub fn rows(&self) -> u64 {
        self.tables
            .iter()
            .filter(|t| t.table != SCHEMA)
            .map(|t| t.rows)
            .sum()
    }

    /// The tables whose rows differ between `self` and `now`, named for a report.
    pub fn differences(&self, now: &RowsDigest) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            match now.tables.iter().find(|n| n.table == t.table) {
                None => out.push(format!("{} is gone", t.table)),
                Some(n) if n.rows != t.rows => {
                    out.push(format!("{}: {} rows, {} before", t.table, n.rows, t.rows))
                }
                Some(n) if n.digest != t.digest => out.push(format!(
                    "{}: the same {} rows count, other values",
                    t.table, n.rows
                )),
                Some(_) => {}
            }
        }
        for n in &now.tables {
            if !self.tables.iter().any(|t| t.table == n.table) {
                out.push(format!("{} is new ({} rows)", n.table, n.rows));
            }
        }
        out
    }
}

fn digest_query(conn: &Connection, table: &str, sql: &str) -> Result<TableDigest> {
    let mut stmt = conn
        .prepare(sql)
        .with_context(|| format!("reading table {table}"))?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut sum = [0u64; 4];
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        let mut h = blake3::Hasher::new();
        for i in 0..columns {
            hash_value(&mut h, row.get_ref(i)?);
        }
        let bytes = h.finalize();
        for (lane, chunk) in sum.iter_mut().zip(bytes.as_bytes().chunks_exact(8)) {
            *lane = lane.wrapping_add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        count += 1;
    }
    Ok(TableDigest {
        table: table.to_string(),
        rows: count,
        digest: sum.iter().map(|l| format!("{l:016x}")).collect(),
    })
}

/// Each value with its type and length, so no two rows hash alike by their bytes running
/// into one another.
fn hash_value(h: &mut blake3::Hasher, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => {
            h.update(b"n");
        }
        ValueRef::Integer(i) => {
            h.update(b"i");
            h.update(&i.to_le_bytes());
        }
        ValueRef::Real(f) => {
            h.update(b"r");
            h.update(&f.to_bits().to_le_bytes());
        }
        ValueRef::Text(t) => {
            h.update(b"t");
            h.update(&(t.len() as u64).to_le_bytes());
            h.update(t);
        }
        ValueRef::Blob(b) => {
            h.update(b"b");
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_value_or_row_changes_the_digest_and_order_does_not() {
        let a = Connection::open_in_memory().unwrap();
        a.execute_batch(
            "CREATE TABLE t(x, y); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL);",
        )
        .unwrap();
        let b = Connection::open_in_memory().unwrap();
        b.execute_batch(
            "CREATE TABLE t(x, y); INSERT INTO t VALUES (3, NULL), (2, 'b'), (1, 'a');",
        )
        .unwrap();
        let before = RowsDigest::of(&a).unwrap();
        assert_eq!(before, RowsDigest::of(&b).unwrap());
        assert_eq!(before.rows(), 3);
        b.execute("UPDATE t SET y = 'c' WHERE x = 2", []).unwrap();
        let changed = RowsDigest::of(&b).unwrap();
        assert_eq!(
            before.differences(&changed),
            ["t: the same 3 rows count, other values"]
        );
        b.execute("DELETE FROM t WHERE x = 2", []).unwrap();
        assert_eq!(
            before.differences(&RowsDigest::of(&b).unwrap()),
            ["t: 2 rows, 3 before"]
        );
        // Values that run into one another are told apart.
        a.execute_batch("CREATE TABLE u(p, q); INSERT INTO u VALUES ('ab', 'c');")
            .unwrap();
        b.execute_batch("CREATE TABLE u(p, q); INSERT INTO u VALUES ('a', 'bc');")
            .unwrap();
        let (da, db) = (RowsDigest::of(&a).unwrap(), RowsDigest::of(&b).unwrap());
        let ua = da.tables.iter().find(|t| t.table == "u").unwrap();
        let ub = db.tables.iter().find(|t| t.table == "u").unwrap();
        assert_ne!(ua.digest, ub.digest);
    }

    #[test]
    fn a_file_is_read_again_only_once_it_is_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("logs_2.sqlite");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE logs(x); INSERT INTO logs VALUES (1);")
            .unwrap();
        let first = RowsDigest::of_file_now(&db, || Some(1)).unwrap().unwrap();
        conn.execute("INSERT INTO logs VALUES (2)", []).unwrap();
        // The same facts: the same file as far as anyone can tell, not read again.
        assert_eq!(
            RowsDigest::of_file_now(&db, || Some(1)).unwrap().unwrap(),
            first
        );
        let now = RowsDigest::of_file_now(&db, || Some(2)).unwrap().unwrap();
        assert_eq!(now.rows(), 2);
    }
}
