//! `verify` of the pack layer: every dictionary against its name, every live pack's bytes
//! against its name and its header, footer and index against the catalog, and every
//! object decoded to its id. Only reads.

use anyhow::Result;
use std::collections::HashMap;
use std::fs::File;

use super::pack_file::{self, Header};
use super::reader::ObjectReader;
use super::{ObjectId, ObjectStore};

/// Objects read per catalog query, keyed on the last id seen.
const PAGE: i64 = 1000;

pub fn verify_all(store: &ObjectStore<'_>) -> Result<Vec<String>> {
    if !store.has_tables()? {
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    check_dictionaries(store, &mut problems)?;
    check_packs(store, &mut problems)?;
    check_objects(store, &mut problems)?;
    Ok(problems)
}

fn check_dictionaries(store: &ObjectStore<'_>, problems: &mut Vec<String>) -> Result<()> {
    let rows: Vec<(String, i64)> = store
        .conn()
        .prepare("SELECT id, size FROM dictionaries ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, size) in rows {
        match super::dictionary::load(store, &id) {
            Ok(bytes) if bytes.len() as i64 == size => {}
            Ok(bytes) => problems.push(format!(
                "dictionary {id}: {} bytes, the catalog records {size}",
                bytes.len()
            )),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    Ok(())
}

struct PackRow {
    seq: i64,
    id: String,
    size: i64,
    dictionary: Option<String>,
    dictionary_known: bool,
}

fn check_packs(store: &ObjectStore<'_>, problems: &mut Vec<String>) -> Result<()> {
    let rows: Vec<PackRow> = store
        .conn()
        .prepare(
            "SELECT p.seq, p.id, p.size, p.dictionary, d.id IS NOT NULL
             FROM packs p LEFT JOIN dictionaries d ON d.id = p.dictionary
             WHERE p.state = 'live' ORDER BY p.seq",
        )?
        .query_map([], |r| {
            Ok(PackRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                size: r.get(2)?,
                dictionary: r.get(3)?,
                dictionary_known: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for row in rows {
        if let Err(e) = check_pack(store, &row, problems) {
            problems.push(format!("pack {}: {e:#}", row.id));
        }
    }
    Ok(())
}

fn check_pack(store: &ObjectStore<'_>, row: &PackRow, problems: &mut Vec<String>) -> Result<()> {
    let path = store.pack_path(&row.id);
    let mut file = File::open(&path)
        .map_err(|e| anyhow::anyhow!("missing or unreadable ({}: {e})", path.display()))?;
    let size = file.metadata()?.len();
    if size as i64 != row.size {
        problems.push(format!(
            "pack {}: {size} bytes, the catalog records {}",
            row.id, row.size
        ));
    }
    let hash = crate::content_hash::hash_reader(&mut file)?;
    if hash != row.id {
        problems.push(format!(
            "pack {}: its bytes were altered (hash differs)",
            row.id
        ));
    }
    let header = Header::read(&mut file, &path)?;
    let named = header
        .dictionary
        .map(|d| blake3::Hash::from_bytes(d).to_hex().to_string());
    if named != row.dictionary {
        problems.push(format!(
            "pack {}: its header names dictionary {named:?}, the catalog {:?}",
            row.id, row.dictionary
        ));
    }
    if let Some(dict) = &row.dictionary
        && !row.dictionary_known
    {
        problems.push(format!(
            "pack {} names dictionary {dict}, which the catalog does not hold",
            row.id
        ));
    }
    let index = pack_file::read_index(&mut file, &path)?;
    let blocks: Vec<(u64, u64, u64, bool)> = store
        .conn()
        .prepare_cached(
            "SELECT offset, length, plain_length, dictionary FROM blocks WHERE pack = ?1 ORDER BY number",
        )?
        .query_map([row.seq], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get(3)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let indexed: Vec<(u64, u64, u64, bool)> = index
        .blocks
        .iter()
        .map(|b| (b.offset, b.length, b.plain_length, b.dictionary))
        .collect();
    if blocks != indexed {
        problems.push(format!(
            "pack {}: its index's blocks differ from the catalog's",
            row.id
        ));
    }
    let in_index: HashMap<&str, (u32, u32, u32)> = index
        .chunks
        .iter()
        .map(|c| (c.id.as_str(), (c.block, c.offset, c.length)))
        .collect();
    let mut stmt = store
        .conn()
        .prepare_cached("SELECT id, block, offset, length FROM chunks WHERE pack = ?1")?;
    let mut rows = stmt.query([row.seq])?;
    let mut mismatched = 0;
    while let Some(r) = rows.next()? {
        let id: Vec<u8> = r.get(0)?;
        let id = ObjectId(id.as_slice().try_into().unwrap_or([0; 32])).to_hex();
        let place = (
            r.get::<_, u32>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, u32>(3)?,
        );
        if in_index.get(id.as_str()) != Some(&place) {
            mismatched += 1;
        }
    }
    if mismatched > 0 {
        problems.push(format!(
            "pack {}: {mismatched} chunks the catalog places in it are not where its index says",
            row.id
        ));
    }
    Ok(())
}

fn check_objects(store: &ObjectStore<'_>, problems: &mut Vec<String>) -> Result<()> {
    let mut reader = ObjectReader::for_every_object(store);
    // In the order they were stored, which is the order their chunks were laid in blocks:
    // in the order of their ids (random) nearly every object needed a block decoded again.
    let mut after = 0i64;
    loop {
        let page: Vec<(i64, String)> = store
            .conn()
            .prepare_cached(
                "SELECT rowid, id FROM objects WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )?
            .query_map(rusqlite::params![after, PAGE], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (_, text) in page {
            let result = text
                .parse::<ObjectId>()
                .and_then(|id| reader.read_to(&id, &mut std::io::sink()));
            if let Err(e) = result {
                problems.push(format!("object {text}: {e:#}"));
            }
        }
    }
    Ok(())
}
