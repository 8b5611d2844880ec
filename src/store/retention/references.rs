//! Mark: what the store must keep. Each `ReferenceSource` adds the names it holds on to,
//! per collectable kind, given the runs that are (or would be) forgotten.

use anyhow::Result;
use std::collections::{HashMap, HashSet};

use crate::store::Catalog;

/// The collectable kind of blobs (`blobs/ab/<hash>.zst`, named by hash).
pub const BLOB: &str = "blob";
/// The collectable kind of backups (`backups/<stamp>/`, named by the backup's id).
pub const BACKUP: &str = "backup";

/// Objects of the pack layer (by id), which hold their chunks and so their packs.
pub const OBJECT: &str = "object";

/// Names held, by collectable kind.
#[derive(Debug, Default)]
pub struct References {
    held: HashMap<&'static str, HashSet<String>>,
}

impl References {
    pub fn hold(&mut self, kind: &'static str, name: impl Into<String>) {
        self.held.entry(kind).or_default().insert(name.into());
    }

    /// Every name held of `kind`.
    pub fn held(&self, kind: &str) -> HashSet<String> {
        self.held.get(kind).cloned().unwrap_or_default()
    }

    pub fn holds(&self, kind: &str, name: &str) -> bool {
        self.held
            .get(kind)
            .is_some_and(|names| names.contains(name))
    }
}

/// Something in the catalog that keeps stored things alive.
pub trait ReferenceSource {
    /// Adds what it holds, counting runs in `forgotten` as gone.
    fn add_to(
        &self,
        catalog: &Catalog,
        forgotten: &HashSet<i64>,
        refs: &mut References,
    ) -> Result<()>;
}

/// Every op of a run not forgotten, whatever its state: its `blob` column and every blob
/// its detail names (`blob`, `before_blob`, `files[].blob`, ...). A prepared op keeps its
/// blobs too, so a prune can never take what recovery needs. Keyed on the field name
/// ending in `blob`, not on the kind, so a kind added later is covered without a list.
pub struct OpBlobs;

impl ReferenceSource for OpBlobs {
    fn add_to(
        &self,
        catalog: &Catalog,
        forgotten: &HashSet<i64>,
        refs: &mut References,
    ) -> Result<()> {
        // Only rows that can name a blob are parsed: a session move (most ops) names none.
        let mut stmt = catalog.connection().prepare(
            "SELECT run_id, blob, detail, src, dst, hash_before FROM ops
             WHERE blob IS NOT NULL OR instr(detail, 'blob\"') > 0",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let run: i64 = row.get(0)?;
            if forgotten.contains(&run) {
                continue;
            }
            if let Some(blob) = row.get::<_, Option<String>>(1)? {
                refs.hold(BLOB, blob);
            }
            let detail = crate::store::catalog::full_detail(
                &row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?.as_deref(),
                row.get::<_, Option<String>>(5)?.as_deref(),
                row.get(2)?,
            );
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&detail) {
                hold_named_in_detail(&value, BLOB, refs);
            }
        }
        Ok(())
    }
}

/// Holds, as `kind`, every string in an op's detail under a key ending with `kind` (a
/// `blob`, a `transcript.object`, a `rows_object`), wherever in the detail it sits.
pub(super) fn hold_named_in_detail(
    value: &serde_json::Value,
    kind: &'static str,
    refs: &mut References,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match v {
                    serde_json::Value::String(s) if key.ends_with(kind) => refs.hold(kind, s),
                    _ => hold_named_in_detail(v, kind, refs),
                }
            }
        }
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|v| hold_named_in_detail(v, kind, refs)),
        _ => {}
    }
}

/// Backups of runs not forgotten, and manual ones (no run): kept whole. An entry held in
/// the store names its blob by hash, so every entry's hash is held as a blob too.
pub struct KeptBackups;

impl ReferenceSource for KeptBackups {
    fn add_to(
        &self,
        catalog: &Catalog,
        forgotten: &HashSet<i64>,
        refs: &mut References,
    ) -> Result<()> {
        let conn = catalog.connection();
        let mut stmt = conn.prepare("SELECT id, run_id FROM backups")?;
        let backups: Vec<(i64, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut entries =
            conn.prepare_cached("SELECT hash FROM backup_entries WHERE backup_id = ?1")?;
        for (id, run) in backups {
            if run.is_some_and(|r| forgotten.contains(&r)) {
                continue;
            }
            refs.hold(BACKUP, id.to_string());
            let hashes = entries.query_map([id], |r| r.get::<_, String>(0))?;
            for h in hashes {
                refs.hold(BLOB, h?);
            }
        }
        Ok(())
    }
}

/// The sources in force: op blobs, kept backups, and the pack layer's objects those and
/// retired sessions name (`packs::HeldObjects`).
pub fn sources() -> Vec<Box<dyn ReferenceSource>> {
    vec![
        Box::new(OpBlobs),
        Box::new(KeptBackups),
        Box::new(super::packs::HeldObjects),
    ]
}

/// Everything held, with the runs in `forgotten` counted as gone.
pub fn mark(catalog: &Catalog, forgotten: &HashSet<i64>) -> Result<References> {
    let mut refs = References::default();
    for source in sources() {
        source.add_to(catalog, forgotten, &mut refs)?;
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_named_like_a_blob_is_held_wherever_it_sits() {
        let mut refs = References::default();
        let detail = serde_json::json!({
            "before_blob": "a", "after_blob": "b",
            "files": [{"path": "/x", "blob": "c"}, {"path": "/y", "blob": null}],
            "thread_id": "d"
        });
        hold_named_in_detail(&detail, BLOB, &mut refs);
        for held in ["a", "b", "c"] {
            assert!(refs.holds(BLOB, held), "{held}");
        }
        assert!(!refs.holds(BLOB, "d"));
        assert!(!refs.holds(BACKUP, "a"));
    }
}
