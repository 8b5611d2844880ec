//! Schema migrations, applied in order inside one transaction each and recorded, so a
//! catalog written by any earlier version opens in this one.

use anyhow::{Context, Result};
use rusqlite::Connection;

/// `migrations/NNNN_name.sql`, in order. Compiled in so the binary never depends on the
/// source tree being beside it.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog",
        include_str!("../../migrations/0001_catalog.sql"),
    ),
    (
        2,
        "handoffs",
        include_str!("../../migrations/0002_handoffs.sql"),
    ),
    (3, "packs", include_str!("../../migrations/0003_packs.sql")),
    // 3 is the pack layer's; this one does not depend on it, so either lands first.
    (
        4,
        "retention",
        include_str!("../../migrations/0004_retention.sql"),
    ),
    (
        5,
        "ops_by_thread",
        include_str!("../../migrations/0005_ops_by_thread.sql"),
    ),
    (
        6,
        "forgotten_journals",
        include_str!("../../migrations/0006_forgotten_journals.sql"),
    ),
    (
        7,
        "ops_creating_dirs",
        include_str!("../../migrations/0007_ops_creating_dirs.sql"),
    ),
];

/// The catalog's format is the newest migration this binary knows: a catalog at a higher
/// number was written by a newer codex-maint.
pub const CATALOG_FORMAT: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub fn apply_pending(conn: &mut Connection) -> Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let done: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("applying migration {version:04}_{name}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, crate::clock::now_rfc3339()],
        )?;
        tx.commit()?;
        applied.push(*version);
    }
    Ok(applied)
}

pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_are_recorded() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply_pending(&mut conn).unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(apply_pending(&mut conn).unwrap().is_empty());
        let recorded: i64 = conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(recorded, latest_version());
    }

    #[test]
    fn the_folders_undo_tidies_are_read_through_their_index_not_a_scan_of_every_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply_pending(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                crate::store::catalog::CREATED_DIR_LISTS
            ))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("ops_creating_dirs")),
            "{plan:?}"
        );
    }
}
