//! Writing objects: each file is cut into chunks, each chunk the store does not hold yet is
//! laid into the open block, full blocks are compressed into the open pack, full packs
//! are renamed into place as they close. The catalog learns of all of it in one
//! transaction at `commit`, after every pack is whole on disk: a writer dropped (or a
//! process killed) before that leaves at most pack files no row names, for `prune`.

use anyhow::{Context, Result};
use rusqlite::params;
use std::collections::HashSet;
use std::io::Read;

use super::chunker::{Chunker, Cutter};
use super::pack_file::{FinishedPack, PACK_FORMAT, PackBuilder};
use super::{ObjectId, ObjectStore, PAGE_LEVEL, PackLimits};
use crate::failpoint;

struct PendingObject {
    id: ObjectId,
    length: u64,
    chunker: Chunker,
    chunk_list: Vec<u8>,
}

/// The block being filled: chunks' plain bytes end to end, and where each lies.
#[derive(Default)]
struct OpenBlock {
    plain: Vec<u8>,
    chunks: Vec<([u8; 32], u32, u32)>,
    text: bool,
}

pub struct ObjectWriter<'s> {
    /// Its own view of the store, so a writer may outlive the `objects()` it came from.
    store: ObjectStore<'s>,
    limits: PackLimits,
    dictionary: Option<super::dictionary::Dictionary>,
    text_compressor: zstd::bulk::Compressor<'static>,
    page_compressor: zstd::bulk::Compressor<'static>,
    block: OpenBlock,
    pack: Option<PackBuilder>,
    finished: Vec<FinishedPack>,
    /// Chunks laid into this writer's packs, not yet in the catalog.
    written: HashSet<[u8; 32]>,
    objects: Vec<PendingObject>,
    object_ids: HashSet<ObjectId>,
}

impl<'s> ObjectWriter<'s> {
    pub(super) fn new(store: ObjectStore<'s>, limits: PackLimits) -> Result<Self> {
        let dictionary = super::dictionary::latest(&store)?;
        let mut text_compressor = match &dictionary {
            Some((_, bytes)) => zstd::bulk::Compressor::with_dictionary(limits.text_level, bytes)?,
            None => zstd::bulk::Compressor::new(limits.text_level)?,
        };
        // The window spans the whole block at every level, so a session's records can
        // match those of every other session in its block (levels under 12 would stop at
        // 4 MiB).
        text_compressor.set_parameter(zstd::zstd_safe::CParameter::WindowLog(window_log(
            limits.block_bytes,
        )))?;
        // Level 12's own match tables for an 8 MiB block take about 43 MB, which put
        // retiring 74,736 sessions over its 100 MB budget. Capped at 2^21 hash and 2^22
        // chain entries they take about 13 MB; on the transcripts the real Codex wrote
        // (benches/cold_tier.rs's corpus, in 8 MiB blocks) the output grew 0.17%.
        // Fast levels search smaller tables of their own (level 3: 2^17 hash entries),
        // which the caps would enlarge; the store writes at level 12.
        if limits.text_level >= 10 {
            text_compressor.set_parameter(zstd::zstd_safe::CParameter::HashLog(TEXT_HASH_LOG))?;
            text_compressor.set_parameter(zstd::zstd_safe::CParameter::ChainLog(TEXT_CHAIN_LOG))?;
        }
        Ok(ObjectWriter {
            store,
            limits,
            dictionary,
            text_compressor,
            page_compressor: zstd::bulk::Compressor::new(PAGE_LEVEL)?,
            block: OpenBlock::default(),
            pack: None,
            finished: Vec::new(),
            written: HashSet::new(),
            objects: Vec::new(),
            object_ids: HashSet::new(),
        })
    }

    /// The dictionary this writer's text blocks are compressed with, if any.
    pub fn dictionary(&self) -> Option<String> {
        self.dictionary
            .as_ref()
            .map(|(id, _)| blake3::Hash::from_bytes(*id).to_hex().to_string())
    }

    pub fn put_bytes(&mut self, bytes: &[u8], chunker: Chunker) -> Result<ObjectId> {
        let mut source = bytes;
        self.put_reader(&mut source, chunker)
    }

    /// Stores what `r` gives, reading it once in pieces: only one chunk, the open block
    /// and this writer's indexes are held, whatever the stream's length.
    pub fn put_reader(&mut self, r: &mut dyn Read, chunker: Chunker) -> Result<ObjectId> {
        let mut cutter = Cutter::new(chunker, r);
        let mut whole = blake3::Hasher::new();
        let mut length = 0u64;
        let mut list = Vec::new();
        let mut chunk_count = 0u64;
        while let Some(chunk) = cutter
            .next_chunk()
            .context("reading what is to be stored")?
        {
            whole.update(chunk);
            length += chunk.len() as u64;
            let id = *blake3::hash(chunk).as_bytes();
            list.extend_from_slice(&id);
            chunk_count += 1;
            if self.written.contains(&id) || self.catalog_has_chunk(&id)? {
                continue;
            }
            let chunk = chunk.to_vec();
            self.add_chunk(id, &chunk, chunker.is_text())?;
        }
        let id = ObjectId(*whole.finalize().as_bytes());
        if self.object_ids.insert(id) {
            let chunk_list = zstd::bulk::compress(&list, 3)?;
            debug_assert_eq!(list.len() as u64, chunk_count * 32);
            self.objects.push(PendingObject {
                id,
                length,
                chunker,
                chunk_list,
            });
        }
        Ok(id)
    }

    /// Lays a chunk whatever the catalog holds (a repack moves chunks out of a pack that
    /// is still live); its row moves to the new pack at commit.
    pub fn put_chunk(&mut self, id: [u8; 32], chunk: &[u8], text: bool) -> Result<()> {
        if self.written.contains(&id) {
            return Ok(());
        }
        self.add_chunk(id, chunk, text)
    }

    /// Whether the catalog holds the chunk in a live pack. One in a condemned pack (a
    /// prune marked it unused and is to delete its file) counts as absent: it is written
    /// again, and its row moves to the new pack at commit.
    fn catalog_has_chunk(&self, id: &[u8; 32]) -> Result<bool> {
        use rusqlite::OptionalExtension;
        Ok(self
            .store
            .conn()
            .prepare_cached(
                "SELECT 1 FROM chunks c JOIN packs p ON p.seq = c.pack
                 WHERE c.id = ?1 AND p.state = 'live'",
            )?
            .query_row([&id[..]], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn add_chunk(&mut self, id: [u8; 32], chunk: &[u8], text: bool) -> Result<()> {
        let fits = self.block.plain.len() + chunk.len() <= self.limits.block_bytes;
        if !self.block.plain.is_empty() && (!fits || self.block.text != text) {
            self.close_block()?;
        }
        self.block.text = text;
        let offset = self.block.plain.len() as u32;
        self.block.plain.extend_from_slice(chunk);
        self.block.chunks.push((id, offset, chunk.len() as u32));
        self.written.insert(id);
        Ok(())
    }

    fn close_block(&mut self) -> Result<()> {
        if self.block.plain.is_empty() {
            return Ok(());
        }
        let block = std::mem::take(&mut self.block);
        let with_dictionary = block.text && self.dictionary.is_some();
        let frame = if block.text {
            self.text_compressor.compress(&block.plain)?
        } else {
            self.page_compressor.compress(&block.plain)?
        };
        if self.pack.is_none() {
            let dict = self.dictionary.as_ref().map(|(id, _)| *id);
            self.pack = Some(PackBuilder::create(&self.store.packs_dir(), dict)?);
        }
        let pack = self.pack.as_mut().expect("opened above");
        pack.add_block(
            &frame,
            block.plain.len() as u64,
            with_dictionary,
            block.chunks,
        )?;
        if pack.size() >= self.limits.pack_bytes {
            self.close_pack()?;
        }
        Ok(())
    }

    fn close_pack(&mut self) -> Result<()> {
        if let Some(pack) = self.pack.take() {
            let finished = pack.finish(&self.store.packs_dir())?;
            failpoint::hit("pack-renamed");
            self.finished.push(finished);
        }
        Ok(())
    }

    /// Closes the last block and pack, then records every pack, chunk and object in one
    /// catalog transaction. Objects are readable once this returns.
    pub fn commit(self) -> Result<()> {
        self.commit_with(|_| Ok(()))
    }

    /// `commit`, with `also` run in the same transaction (a repack condemns the packs it
    /// emptied there, so no instant sees a chunk in two places or in none).
    pub fn commit_with(
        mut self,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        self.close_block()?;
        self.close_pack()?;
        failpoint::hit("packs-written");
        let conn = self.store.conn();
        let tx = conn.unchecked_transaction()?;
        let now = crate::clock::now_rfc3339();
        for pack in &self.finished {
            let dict = pack
                .dictionary
                .map(|d| blake3::Hash::from_bytes(d).to_hex().to_string());
            // The same chunks laid the same way make the same pack, byte for byte: one a
            // prune condemned and has not deleted yet is live again.
            let seq: i64 = tx
                .prepare_cached(
                    "INSERT INTO packs (id, size, format, dictionary, created_at, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'live')
                     ON CONFLICT (id) DO UPDATE SET state = 'live'
                     RETURNING seq",
                )?
                .query_row(
                    params![pack.id, pack.size as i64, PACK_FORMAT, dict, now],
                    |r| r.get(0),
                )?;
            // Read back from the file renamed into place: what the catalog records is what
            // the pack on disk says of itself.
            let path = self.store.pack_path(&pack.id);
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("reading back {}", path.display()))?;
            let index = super::pack_file::read_index(&mut file, &path)?;
            for (number, b) in index.blocks.iter().enumerate() {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO blocks (pack, number, offset, length, plain_length, dictionary)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    seq,
                    number as i64,
                    b.offset as i64,
                    b.length as i64,
                    b.plain_length as i64,
                    b.dictionary
                ])?;
            }
            for c in &index.chunks {
                let id = blake3::Hash::from_hex(&c.id)?;
                tx.prepare_cached(
                    "INSERT INTO chunks (id, pack, block, offset, length)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (id) DO UPDATE SET pack = excluded.pack,
                         block = excluded.block, offset = excluded.offset,
                         length = excluded.length",
                )?
                .execute(params![
                    &id.as_bytes()[..],
                    seq,
                    c.block,
                    c.offset,
                    c.length
                ])?;
            }
        }
        for o in &self.objects {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO objects (id, length, chunker, chunk_list, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                o.id,
                o.length as i64,
                o.chunker.as_str(),
                o.chunk_list,
                now
            ])?;
        }
        also(&tx)?;
        tx.commit().with_context(|| {
            "recording new packs in the catalog (the pack files stay on disk unreferenced; `prune` removes them)"
        })?;
        Ok(())
    }
}

const TEXT_HASH_LOG: u32 = 21;
const TEXT_CHAIN_LOG: u32 = 22;

/// The smallest window that holds a whole block (zstd's bounds: 2^10 to 2^27, the most
/// any zstd decoder accepts by default).
fn window_log(block_bytes: usize) -> u32 {
    let mut log = 10;
    while (1usize << log) < block_bytes && log < 27 {
        log += 1;
    }
    log
}
