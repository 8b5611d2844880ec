//! The zstd dictionary transcript blocks are compressed with, trained on the store's own
//! transcripts: sessions share most of their `session_meta` (the 21 KB base instructions)
//! and their record shapes, which per-block compression alone cannot see. Kept in
//! `dicts/<blake3>.dict`, written like a pack, never removed while a pack names it.

use anyhow::{Context, Result, bail};
use rusqlite::{OptionalExtension, params};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::ObjectStore;
use super::reader::ObjectReader;

/// zstd's recommended size for a dictionary of many small samples.
const DICTIONARY_BYTES: usize = 112 << 10;
/// The transcripts sampled, newest first.
const SAMPLED_OBJECTS: i64 = 1000;
/// Sample bytes in all: zstd's trainer wants about 100 times the dictionary's size.
const SAMPLE_BUDGET: usize = 100 * DICTIONARY_BYTES;
/// Below this the trainer has too little to find anything.
const MIN_SAMPLE_BYTES: usize = 16 << 10;

/// Dictionaries read from disk, checked once against their names.
#[derive(Default)]
pub struct Cache(RefCell<HashMap<String, Arc<Vec<u8>>>>);

impl Cache {
    pub fn get(&self, store: &ObjectStore<'_>, id: &str) -> Result<Arc<Vec<u8>>> {
        if let Some(bytes) = self.0.borrow().get(id) {
            return Ok(bytes.clone());
        }
        let bytes = Arc::new(load(store, id)?);
        self.0.borrow_mut().insert(id.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// A dictionary's bytes, checked against its name.
pub fn load(store: &ObjectStore<'_>, id: &str) -> Result<Vec<u8>> {
    let path = store.dict_path(id);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "dictionary {id} is missing or unreadable ({})",
            path.display()
        )
    })?;
    if blake3::hash(&bytes).to_hex().as_str() != id {
        bail!(
            "dictionary {id} ({}) does not match its name: it was altered",
            path.display()
        );
    }
    Ok(bytes)
}

/// A dictionary's id (its BLAKE3) and bytes.
pub type Dictionary = ([u8; 32], Arc<Vec<u8>>);

/// The newest dictionary, which new packs are compressed with.
pub fn latest(store: &ObjectStore<'_>) -> Result<Option<Dictionary>> {
    let id: Option<String> = store
        .conn()
        .query_row(
            "SELECT id FROM dictionaries ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let bytes = store.dictionaries.get(store, &id)?;
    Ok(Some((*blake3::Hash::from_hex(&id)?.as_bytes(), bytes)))
}

/// Trains a dictionary when the store holds `threshold` transcripts and has none, or when
/// the transcripts stored since the last one outnumber those it was trained on.
pub fn train_if_due(store: &ObjectStore<'_>, threshold: u64) -> Result<Option<String>> {
    let conn = store.conn();
    let transcripts: i64 = conn.query_row(
        "SELECT COUNT(*) FROM objects WHERE chunker = 'cdc-lines'",
        [],
        |r| r.get(0),
    )?;
    let last: Option<i64> = conn
        .query_row(
            "SELECT trained_on FROM dictionaries ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let due = match last {
        None => transcripts as u64 >= threshold,
        Some(trained_on) => transcripts - trained_on > trained_on,
    };
    if !due {
        return Ok(None);
    }
    let samples = samples(store)?;
    let total: usize = samples.iter().map(Vec::len).sum();
    if total < MIN_SAMPLE_BYTES {
        return Ok(None);
    }
    let size = DICTIONARY_BYTES.min(total / 10);
    // A trainer that finds nothing to learn (samples too alike or too few) leaves the
    // store without a dictionary this time; blocks are then compressed without one.
    let Ok(dict) = zstd::dict::from_samples(&samples, size) else {
        return Ok(None);
    };
    let id = blake3::hash(&dict).to_hex().to_string();
    super::write_whole(&store.dict_path(&id), |f| {
        use std::io::Write;
        Ok(f.write_all(&dict)?)
    })?;
    conn.execute(
        "INSERT OR IGNORE INTO dictionaries (id, size, trained_on, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, dict.len() as i64, transcripts, crate::clock::now_rfc3339()],
    )?;
    Ok(Some(id))
}

/// The first chunks of the newest transcripts, an equal share of the budget each: a
/// transcript's opening (its `session_meta`) is what sessions share most.
fn samples(store: &ObjectStore<'_>) -> Result<Vec<Vec<u8>>> {
    let ids: Vec<super::ObjectId> = store
        .conn()
        .prepare("SELECT id FROM objects WHERE chunker = 'cdc-lines' ORDER BY rowid DESC LIMIT ?1")?
        .query_map([SAMPLED_OBJECTS], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let share = (SAMPLE_BUDGET / ids.len()).max(16 << 10);
    let mut reader = ObjectReader::new(store);
    let mut samples = Vec::new();
    for id in &ids {
        let mut taken = 0;
        for chunk in reader.meta(id)?.chunks {
            if taken >= share {
                break;
            }
            let bytes = reader.chunk(&chunk)?;
            taken += bytes.len();
            samples.push(bytes);
        }
    }
    Ok(samples)
}
