//! A thread's rows as the store keeps them: each row by column name, each value typed as
//! SQLite held it, so that a row goes back by name into whatever schema Codex has by then,
//! and two dumps compare equal exactly when the rows are the same.

use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    /// Hex, so that a dump is text whatever a blob holds.
    Blob(String),
}

impl RowValue {
    pub fn read(value: ValueRef<'_>) -> RowValue {
        match value {
            ValueRef::Null => RowValue::Null,
            ValueRef::Integer(i) => RowValue::Integer(i),
            ValueRef::Real(r) => RowValue::Real(r),
            // Codex writes UTF-8; anything else is kept byte for byte as a blob would be,
            // under its own tag so that it goes back as text.
            ValueRef::Text(t) => match std::str::from_utf8(t) {
                Ok(s) => RowValue::Text(s.to_string()),
                Err(_) => RowValue::Blob(hex(t)),
            },
            ValueRef::Blob(b) => RowValue::Blob(hex(b)),
        }
    }

    pub fn to_sql(&self) -> rusqlite::types::Value {
        use rusqlite::types::Value;
        match self {
            RowValue::Null => Value::Null,
            RowValue::Integer(i) => Value::Integer(*i),
            RowValue::Real(r) => Value::Real(*r),
            RowValue::Text(t) => Value::Text(t.clone()),
            RowValue::Blob(h) => Value::Blob(unhex(h)),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, RowValue::Null)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// One row of one table of one of Codex's databases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DumpedRow {
    pub database: String,
    pub table: String,
    pub columns: BTreeMap<String, RowValue>,
}

impl DumpedRow {
    /// The row's text in a dump: also what two rows are compared by.
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("a row always serializes")
    }

    /// The row restricted to `names`: how it compares with a row read under today's schema.
    pub fn projected(&self, names: &[String]) -> BTreeMap<String, RowValue> {
        self.columns
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

/// A thread's rows as one text, in a fixed order whatever order the databases gave them.
pub fn encode(rows: &[DumpedRow]) -> Vec<u8> {
    let mut lines: Vec<String> = rows.iter().map(DumpedRow::line).collect();
    lines.sort();
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text.into_bytes()
}

pub fn decode(bytes: &[u8]) -> anyhow::Result<Vec<DumpedRow>> {
    let text = std::str::from_utf8(bytes)?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sqlite_value_comes_back_as_it_was() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a, b, c, d, e)")
            .unwrap();
        conn.execute(
            "INSERT INTO t VALUES (NULL, -7, 0.1, 'text \u{1b}[31m', x'00ff10')",
            [],
        )
        .unwrap();
        let row: Vec<RowValue> = conn
            .query_row("SELECT * FROM t", [], |r| {
                Ok((0..5)
                    .map(|i| RowValue::read(r.get_ref(i).unwrap()))
                    .collect())
            })
            .unwrap();
        let dumped = DumpedRow {
            database: "x_1.sqlite".into(),
            table: "t".into(),
            columns: ["a", "b", "c", "d", "e"]
                .iter()
                .map(|s| s.to_string())
                .zip(row.clone())
                .collect(),
        };
        let back = decode(&encode(std::slice::from_ref(&dumped))).unwrap();
        assert_eq!(back, vec![dumped]);
        let conn2 = rusqlite::Connection::open_in_memory().unwrap();
        conn2
            .execute_batch("CREATE TABLE t (a, b, c, d, e)")
            .unwrap();
        let values: Vec<rusqlite::types::Value> = row.iter().map(RowValue::to_sql).collect();
        conn2
            .execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params_from_iter(values),
            )
            .unwrap();
        let same: i64 = conn2
            .query_row(
                "SELECT count(*) FROM t WHERE a IS NULL AND b = -7 AND c = 0.1 AND d = 'text \u{1b}[31m' AND e = x'00ff10' AND typeof(c) = 'real' AND typeof(e) = 'blob'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(same, 1);
    }

    #[test]
    fn a_dump_does_not_depend_on_the_order_rows_were_read() {
        let row = |v: i64| DumpedRow {
            database: "d".into(),
            table: "t".into(),
            columns: [("a".to_string(), RowValue::Integer(v))].into(),
        };
        assert_eq!(encode(&[row(1), row(2)]), encode(&[row(2), row(1)]));
    }
}
