//! What prune needs of the pack layer (docs/store-format.md "Forget and prune"): given the
//! objects still referenced, which objects and chunks nothing uses, which packs hold no
//! chunk in use (condemned whole) or mostly unused ones (repacked), which dictionaries no
//! pack names; and the repack itself. Deciding and sweeping stay with `retention::prune`.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Transaction};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::reader::ObjectReader;
use super::{ObjectStore, PackLimits};

/// A pack as prune sees it.
#[derive(Debug, Clone)]
pub struct PackUse {
    pub seq: i64,
    pub id: String,
    pub path: PathBuf,
    pub size: u64,
    /// Plain bytes of its blocks, and of the chunks in them still in use.
    pub plain_bytes: u64,
    pub live_plain_bytes: u64,
    /// Its compressed bytes that hold chunks in use (each chunk's share of its block).
    pub live_packed_bytes: u64,
}

/// The pack layer's garbage, read only.
#[derive(Debug, Default)]
pub struct Collection {
    /// Objects no source references.
    pub unheld_objects: Vec<String>,
    /// Chunks no held object uses.
    pub dead_chunks: Vec<[u8; 32]>,
    /// Chunks in use, and whether a text object (cdc-lines, whole) uses them: a repack
    /// compresses them as their writer did.
    pub used: HashMap<[u8; 32], bool>,
    /// Live packs none of whose chunks is in use.
    pub empty_packs: Vec<PackUse>,
    /// Live packs more than half of whose plain bytes are unused.
    pub sparse_packs: Vec<PackUse>,
    /// Pack files under `packs/` no row names (a writer killed before its commit).
    pub stray_packs: Vec<(String, PathBuf, u64)>,
    /// Dictionaries no pack names, the newest excepted (it is what the next writer uses).
    pub unused_dictionaries: Vec<(String, PathBuf, u64)>,
}

impl ObjectStore<'_> {
    /// What nothing uses, given the ids of the objects still referenced.
    pub fn collection(&self, held: &HashSet<String>) -> Result<Collection> {
        let mut out = Collection::default();
        if !self.has_tables()? {
            return Ok(out);
        }
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, chunker, chunk_list FROM objects")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: String = row.get(0)?;
            if !held.contains(&id) {
                out.unheld_objects.push(id);
                continue;
            }
            let text = row.get::<_, String>(1)? != super::Chunker::SqlitePage.as_str();
            let list = zstd::stream::decode_all(&row.get::<_, Vec<u8>>(2)?[..])
                .with_context(|| format!("object {id}: its chunk list cannot be decoded"))?;
            for chunk in list.chunks_exact(32) {
                let used = out
                    .used
                    .entry(chunk.try_into().expect("32 bytes"))
                    .or_default();
                *used |= text;
            }
        }
        let mut packs: HashMap<i64, PackUse> = HashMap::new();
        let mut stmt = conn.prepare(
            "SELECT p.seq, p.id, p.size, COALESCE(SUM(b.plain_length), 0)
             FROM packs p LEFT JOIN blocks b ON b.pack = p.seq
             WHERE p.state = 'live' GROUP BY p.seq",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })? {
            let (seq, id, size, plain) = row?;
            packs.insert(
                seq,
                PackUse {
                    seq,
                    path: self.pack_path(&id),
                    id,
                    size: size as u64,
                    plain_bytes: plain as u64,
                    live_plain_bytes: 0,
                    live_packed_bytes: 0,
                },
            );
        }
        let mut stmt = conn.prepare(
            "SELECT c.id, c.pack, c.length, b.length, b.plain_length
             FROM chunks c JOIN blocks b ON b.pack = c.pack AND b.number = c.block",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: [u8; 32] = row
                .get::<_, Vec<u8>>(0)?
                .as_slice()
                .try_into()
                .context("a chunk id is 32 bytes")?;
            if !out.used.contains_key(&id) {
                out.dead_chunks.push(id);
                continue;
            }
            if let Some(pack) = packs.get_mut(&row.get(1)?) {
                let (length, block_len, block_plain): (i64, i64, i64) =
                    (row.get(2)?, row.get(3)?, row.get(4)?);
                pack.live_plain_bytes += length as u64;
                pack.live_packed_bytes += share(length, block_len, block_plain);
            }
        }
        let mut packs: Vec<PackUse> = packs.into_values().collect();
        packs.sort_by_key(|p| p.seq);
        for pack in packs {
            if pack.live_plain_bytes == 0 {
                out.empty_packs.push(pack);
            } else if pack.live_plain_bytes * 2 < pack.plain_bytes {
                out.sparse_packs.push(pack);
            }
        }
        out.stray_packs = self.stray_packs()?;
        out.unused_dictionaries = self.unused_dictionaries()?;
        Ok(out)
    }

    fn stray_packs(&self) -> Result<Vec<(String, PathBuf, u64)>> {
        let known: HashSet<String> = self
            .conn()
            .prepare("SELECT id FROM packs")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(self.packs_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(id) = name.strip_suffix(".pack") else {
                    continue;
                };
                if id.len() == 64 && !known.contains(id) {
                    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push((id.to_string(), file.path(), bytes));
                }
            }
        }
        Ok(out)
    }

    pub fn unused_dictionaries(&self) -> Result<Vec<(String, PathBuf, u64)>> {
        let mut stmt = self.conn().prepare(
            "SELECT d.id, d.size FROM dictionaries d
             WHERE d.seq < (SELECT MAX(seq) FROM dictionaries)
               AND NOT EXISTS (SELECT 1 FROM packs p WHERE p.dictionary = d.id)",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, size) = row?;
            out.push((id.clone(), self.dict_path(&id), size as u64));
        }
        Ok(out)
    }

    /// Writes the chunks in use of `packs` into new packs; the writer's one commit points
    /// their rows at the new packs and runs `condemn` (which marks the old packs) in the
    /// same transaction. Killed before that commit, the new pack files are strays and the
    /// old packs still hold every chunk; after it, the old packs are condemned.
    pub fn repack(
        &self,
        packs: &[PackUse],
        used: &HashMap<[u8; 32], bool>,
        condemn: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut writer = self.writer_with(PackLimits::default())?;
        let mut reader = ObjectReader::new(self);
        for pack in packs {
            let chunks: Vec<Vec<u8>> = self
                .conn()
                .prepare("SELECT id FROM chunks WHERE pack = ?1 ORDER BY block, offset")?
                .query_map([pack.seq], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in chunks {
                let id: [u8; 32] = id.as_slice().try_into().context("a chunk id is 32 bytes")?;
                let Some(&text) = used.get(&id) else { continue };
                let bytes = reader
                    .chunk(&id)
                    .with_context(|| format!("repacking pack {}", pack.id))?;
                writer.put_chunk(id, &bytes, text)?;
            }
        }
        crate::failpoint::hit("prune-repack-written");
        writer.commit_with(condemn)
    }
}

/// A chunk's share of its block's compressed bytes: its plain length over the block's.
pub fn share(length: i64, block_length: i64, block_plain: i64) -> u64 {
    if block_plain <= 0 {
        return 0;
    }
    (length as u128 * block_length as u128 / block_plain as u128) as u64
}

/// Marks a pack condemned and drops its chunk rows (a chunk in it reads as absent from
/// now on, so a writer lays it again). Idempotent.
pub fn condemn_pack(conn: &Connection, pack_id: &str) -> Result<()> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM packs WHERE id = ?1")?
        .query_row([pack_id], |r| r.get(0))
        .optional()?;
    if let Some(seq) = seq {
        conn.prepare_cached("UPDATE packs SET state = 'condemned' WHERE seq = ?1")?
            .execute([seq])?;
        conn.prepare_cached("DELETE FROM chunks WHERE pack = ?1")?
            .execute([seq])?;
    }
    Ok(())
}

/// After a condemned pack's file is gone: its rows go. A pack a writer made live again
/// (the same bytes laid again) keeps them; the sweep checks that before deleting.
pub fn drop_condemned_pack_rows(conn: &Connection, pack_id: &str) -> Result<()> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM packs WHERE id = ?1 AND state = 'condemned'")?
        .query_row([pack_id], |r| r.get(0))
        .optional()?;
    if let Some(seq) = seq {
        for sql in [
            "DELETE FROM chunks WHERE pack = ?1",
            "DELETE FROM blocks WHERE pack = ?1",
            "DELETE FROM packs WHERE seq = ?1",
        ] {
            conn.prepare_cached(sql)?.execute([seq])?;
        }
    }
    Ok(())
}

/// Whether the pack is live in the catalog (a condemned one written again since is).
pub fn pack_is_live(conn: &Connection, pack_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM packs WHERE id = ?1 AND state = 'live'")?
        .query_row([pack_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Whether any pack (live or condemned) names the dictionary.
pub fn dictionary_in_use(conn: &Connection, dict_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM packs WHERE dictionary = ?1 LIMIT 1")?
        .query_row([dict_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Drops unheld objects' rows and unused chunks' rows, inside prune's decision.
pub fn drop_unused_rows(conn: &Connection, collection: &Collection) -> Result<()> {
    for id in &collection.unheld_objects {
        conn.prepare_cached("DELETE FROM backup_objects WHERE object = ?1")?
            .execute([id])?;
        conn.prepare_cached("DELETE FROM objects WHERE id = ?1")?
            .execute([id])?;
    }
    for id in &collection.dead_chunks {
        conn.prepare_cached("DELETE FROM chunks WHERE id = ?1")?
            .execute([&id[..]])?;
    }
    Ok(())
}

/// Bytes of pack blocks that hold the given objects' chunks, each distinct chunk counted
/// once across calls (`seen`): `inspect`'s split of the packs by what uses them.
pub fn packed_bytes_of(
    conn: &Connection,
    objects: impl IntoIterator<Item = String>,
    seen: &mut HashSet<[u8; 32]>,
) -> Result<u64> {
    let mut total = 0;
    let mut list_of = conn.prepare_cached("SELECT chunk_list FROM objects WHERE id = ?1")?;
    let mut place = conn.prepare_cached(
        "SELECT c.length, b.length, b.plain_length FROM chunks c
         JOIN blocks b ON b.pack = c.pack AND b.number = c.block WHERE c.id = ?1",
    )?;
    for object in objects {
        let Some(list) = list_of
            .query_row([&object], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
        else {
            continue;
        };
        let list = zstd::stream::decode_all(&list[..])?;
        for chunk in list.chunks_exact(32) {
            let id: [u8; 32] = chunk.try_into().expect("32 bytes");
            if !seen.insert(id) {
                continue;
            }
            if let Some((l, bl, bp)) = place
                .query_row([&id[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
            {
                total += share(l, bl, bp);
            }
        }
    }
    Ok(total)
}
