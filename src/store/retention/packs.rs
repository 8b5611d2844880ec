//! The pack layer through prune's seam: objects still referenced hold their chunks;
//! packs none of whose chunks are used are condemned whole, packs more than half unused
//! are repacked, dictionaries no pack names go (docs/store-format.md "Forget and prune").

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;

use super::prune::{CollectableKind, Condemned, record_condemned};
use super::references::{OBJECT, ReferenceSource, References};
use crate::store::pack::ObjectStore;
use crate::store::pack::collect::{self, Collection};
use crate::store::{Catalog, Store};

/// The collectable kind of pack files (by id).
pub const PACK: &str = "pack";
/// The collectable kind of dictionaries (by id).
pub const DICTIONARY: &str = "dictionary";

/// Whether the catalog has the pack layer's tables (format 3 on).
pub fn knows_packs(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'objects'")?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Objects still referenced: those of backups not forgotten (manual ones included), and
/// any object an op of a run not forgotten names in a detail field ending in `object`
/// (both of a retired session's: `transcript.object`, `rows_object`), in any state, so a
/// prune never takes a retired session in force nor what recovery of a prepared op needs.
pub struct HeldObjects;

impl ReferenceSource for HeldObjects {
    fn add_to(
        &self,
        catalog: &Catalog,
        forgotten: &HashSet<i64>,
        refs: &mut References,
    ) -> Result<()> {
        let conn = catalog.connection();
        if !knows_packs(conn)? {
            return Ok(());
        }
        let mut stmt = conn.prepare(
            "SELECT b.run_id, o.object FROM backup_objects o JOIN backups b ON b.id = o.backup_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let run: Option<i64> = row.get(0)?;
            if !run.is_some_and(|r| forgotten.contains(&r)) {
                refs.hold(OBJECT, row.get::<_, String>(1)?);
            }
        }
        // Both objects of every retired session in force (`Catalog::retired_sessions`)
        // are named in its op's detail (`transcript.object`, `rows_object`), and its run
        // is not forgotten: the scan below holds them, along with any object another op
        // names. It reads each field as it is, so an op whose detail lacks one (written by
        // hand, or by an older binary) holds what it has and fails nothing.
        let mut stmt = conn.prepare(
            "SELECT run_id, detail, src, dst, hash_before FROM ops
             WHERE instr(detail, 'object\"') > 0",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if forgotten.contains(&row.get::<_, i64>(0)?) {
                continue;
            }
            // A lean detail names the transcript's object as `=hash_before`: expanded first.
            let detail = crate::store::catalog::full_detail(
                &row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?.as_deref(),
                row.get::<_, Option<String>>(4)?.as_deref(),
                row.get(1)?,
            );
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&detail) {
                super::references::hold_named_in_detail(&value, OBJECT, refs);
            }
        }
        Ok(())
    }
}

/// Packs: what the pack layer finds unused, given the objects held, is computed once per
/// prune (in `unheld`) and kept for the decision and the repack.
#[derive(Default)]
pub struct Packs {
    collection: RefCell<Option<Collection>>,
}

impl Packs {
    fn condemned(id: &str, path: &Path, bytes: u64) -> Condemned {
        Condemned {
            kind: PACK.into(),
            name: id.to_string(),
            path: path.to_path_buf(),
            bytes,
        }
    }
}

impl CollectableKind for Packs {
    fn kind(&self) -> &'static str {
        PACK
    }

    fn unheld(&self, root: &Path, catalog: &Catalog, refs: &References) -> Result<Vec<Condemned>> {
        let found = ObjectStore::new(catalog, root).collection(&refs.held(OBJECT))?;
        let mut out: Vec<Condemned> = found
            .empty_packs
            .iter()
            .map(|p| Self::condemned(&p.id, &p.path, p.size))
            .collect();
        out.extend(
            found
                .stray_packs
                .iter()
                .map(|(id, path, bytes)| Self::condemned(id, path, *bytes)),
        );
        *self.collection.borrow_mut() = Some(found);
        Ok(out)
    }

    fn drop_rows(&self, conn: &Connection, item: &Condemned) -> Result<()> {
        collect::condemn_pack(conn, &item.name)
    }

    fn swept_rows(&self, conn: &Connection, item: &Condemned) -> Result<()> {
        collect::drop_condemned_pack_rows(conn, &item.name)
    }

    /// A condemned pack a writer laid again byte for byte since is live again.
    fn held_again(&self, catalog: &Catalog, _: &References, item: &Condemned) -> Result<bool> {
        collect::pack_is_live(catalog.connection(), &item.name)
    }

    fn drop_unheld_rows(&self, conn: &Connection) -> Result<()> {
        match &*self.collection.borrow() {
            Some(found) => collect::drop_unused_rows(conn, found),
            None => Ok(()),
        }
    }

    /// Repacks the sparse packs: their chunks in use go into a new pack, and the same
    /// transaction that points the chunks' rows at it condemns the old packs.
    fn after_decide(&self, store: &Store) -> Result<Vec<Condemned>> {
        let found = self.collection.borrow();
        let Some(found) = found.as_ref().filter(|f| !f.sparse_packs.is_empty()) else {
            return Ok(Vec::new());
        };
        let items: Vec<Condemned> = found
            .sparse_packs
            .iter()
            .map(|p| Self::condemned(&p.id, &p.path, p.size))
            .collect();
        store
            .objects()
            .repack(&found.sparse_packs, &found.used, |tx| {
                for item in &items {
                    collect::condemn_pack(tx, &item.name)?;
                    record_condemned(tx, item)?;
                }
                Ok(())
            })?;
        crate::failpoint::hit("prune-repacked");
        Ok(items)
    }

    /// A repack frees a sparse pack's bytes less what its chunks in use take again.
    fn would_free_after_decide(&self) -> Vec<Condemned> {
        let found = self.collection.borrow();
        found
            .iter()
            .flat_map(|f| &f.sparse_packs)
            .map(|p| Self::condemned(&p.id, &p.path, p.size.saturating_sub(p.live_packed_bytes)))
            .collect()
    }
}

/// Dictionaries no pack names (the newest always stays: the next writer uses it).
pub struct Dictionaries;

impl CollectableKind for Dictionaries {
    fn kind(&self) -> &'static str {
        DICTIONARY
    }

    fn unheld(&self, root: &Path, catalog: &Catalog, _: &References) -> Result<Vec<Condemned>> {
        let found = ObjectStore::new(catalog, root).unused_dictionaries()?;
        Ok(found
            .into_iter()
            .map(|(id, path, bytes)| Condemned {
                kind: DICTIONARY.into(),
                name: id,
                path,
                bytes,
            })
            .collect())
    }

    fn drop_rows(&self, conn: &Connection, item: &Condemned) -> Result<()> {
        if !collect::dictionary_in_use(conn, &item.name)? {
            conn.prepare_cached("DELETE FROM dictionaries WHERE id = ?1")?
                .execute([&item.name])?;
        }
        Ok(())
    }

    fn held_again(&self, catalog: &Catalog, _: &References, item: &Condemned) -> Result<bool> {
        let conn = catalog.connection();
        Ok(collect::dictionary_in_use(conn, &item.name)?
            || conn
                .prepare_cached("SELECT 1 FROM dictionaries WHERE id = ?1")?
                .query_row([&item.name], |_| Ok(()))
                .optional()?
                .is_some())
    }
}
