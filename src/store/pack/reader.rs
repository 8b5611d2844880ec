//! Reading objects back: the chunk list from the catalog, each chunk's block located
//! through the catalog (never a pack's index), each needed block decoded once, every
//! chunk and then the whole checked against their hashes.

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use super::pack_file::{Header, read_at};
use super::{ObjectId, ObjectStore};

/// Decoded blocks kept at once: an object's chunks sit in neighbouring blocks, and a
/// deduped chunk may point back to an older one; four 1 MiB blocks bound the memory.
const BLOCKS_KEPT: usize = 4;

#[derive(Debug, Clone)]
struct ChunkPlace {
    pack_seq: i64,
    pack_id: String,
    dictionary: Option<String>,
    block: i64,
    offset: usize,
    length: usize,
    block_offset: u64,
    block_length: u64,
    block_plain: usize,
    block_uses_dictionary: bool,
}

type BlockKey = (i64, i64);

pub struct ObjectReader<'s> {
    store: &'s ObjectStore<'s>,
    files: HashMap<i64, File>,
    /// Decoded blocks by (pack, block number), least recently used first.
    blocks: Vec<(BlockKey, Arc<Vec<u8>>)>,
}

pub struct ObjectMeta {
    pub length: u64,
    pub chunks: Vec<[u8; 32]>,
}

impl<'s> ObjectReader<'s> {
    pub fn new(store: &'s ObjectStore<'s>) -> Self {
        ObjectReader {
            store,
            files: HashMap::new(),
            blocks: Vec::new(),
        }
    }

    pub fn meta(&self, id: &ObjectId) -> Result<ObjectMeta> {
        let row: Option<(i64, Vec<u8>)> = if self.store.has_tables()? {
            self.store
                .conn()
                .prepare_cached("SELECT length, chunk_list FROM objects WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
        } else {
            None
        };
        let Some((length, list)) = row else {
            bail!("object {id} is not in the store");
        };
        let list = zstd::stream::decode_all(&list[..])
            .with_context(|| format!("object {id}: its chunk list cannot be decoded"))?;
        if list.len() % 32 != 0 {
            bail!("object {id}: its chunk list is not a list of 32-byte ids");
        }
        Ok(ObjectMeta {
            length: length as u64,
            chunks: list
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect(),
        })
    }

    pub fn read_to(&mut self, id: &ObjectId, out: &mut dyn Write) -> Result<u64> {
        let meta = self.meta(id)?;
        let mut whole = blake3::Hasher::new();
        let mut written = 0u64;
        for chunk_id in &meta.chunks {
            let bytes = self
                .chunk(chunk_id)
                .with_context(|| format!("reading object {id}"))?;
            whole.update(&bytes);
            written += bytes.len() as u64;
            out.write_all(&bytes)?;
        }
        if written != meta.length || whole.finalize().as_bytes() != &id.0 {
            bail!(
                "object {id} does not decode to its id ({written} bytes read, {} recorded): the store is damaged",
                meta.length
            );
        }
        Ok(written)
    }

    /// One chunk's bytes, checked against its id.
    pub fn chunk(&mut self, chunk_id: &[u8; 32]) -> Result<Vec<u8>> {
        let hex = blake3::Hash::from_bytes(*chunk_id).to_hex();
        let place = self
            .place(chunk_id)?
            .ok_or_else(|| anyhow!("chunk {hex} is not in the catalog"))?;
        let block = self.block(&place)?;
        let bytes = block
            .get(place.offset..place.offset + place.length)
            .ok_or_else(|| {
                anyhow!(
                    "chunk {hex} lies outside its block in pack {}",
                    place.pack_id
                )
            })?;
        if blake3::hash(bytes).as_bytes() != chunk_id {
            bail!(
                "chunk {hex} in pack {} (block {}) does not match its hash: the pack is damaged",
                place.pack_id,
                place.block
            );
        }
        Ok(bytes.to_vec())
    }

    fn place(&self, chunk_id: &[u8; 32]) -> Result<Option<ChunkPlace>> {
        Ok(self
            .store
            .conn()
            .prepare_cached(
                "SELECT c.pack, p.id, p.dictionary, c.block, c.offset, c.length,
                        b.offset, b.length, b.plain_length, b.dictionary
                 FROM chunks c JOIN packs p ON p.seq = c.pack
                      JOIN blocks b ON b.pack = c.pack AND b.number = c.block
                 WHERE c.id = ?1",
            )?
            .query_row([&chunk_id[..]], |r| {
                Ok(ChunkPlace {
                    pack_seq: r.get(0)?,
                    pack_id: r.get(1)?,
                    dictionary: r.get(2)?,
                    block: r.get(3)?,
                    offset: r.get::<_, i64>(4)? as usize,
                    length: r.get::<_, i64>(5)? as usize,
                    block_offset: r.get::<_, i64>(6)? as u64,
                    block_length: r.get::<_, i64>(7)? as u64,
                    block_plain: r.get::<_, i64>(8)? as usize,
                    block_uses_dictionary: r.get(9)?,
                })
            })
            .optional()?)
    }

    fn block(&mut self, place: &ChunkPlace) -> Result<Arc<Vec<u8>>> {
        let key = (place.pack_seq, place.block);
        if let Some(i) = self.blocks.iter().position(|(k, _)| *k == key) {
            let hit = self.blocks.remove(i);
            let bytes = hit.1.clone();
            self.blocks.push(hit);
            return Ok(bytes);
        }
        let file = self.pack_file(place)?;
        let frame = read_at(file, place.block_offset, place.block_length)
            .with_context(|| format!("reading block {} of pack {}", place.block, place.pack_id))?;
        let plain = if place.block_uses_dictionary {
            let dict_id = place.dictionary.as_deref().ok_or_else(|| {
                anyhow!(
                    "pack {} has a block compressed with a dictionary but names none",
                    place.pack_id
                )
            })?;
            let dict = self.store.dictionaries.get(self.store, dict_id)?;
            zstd::bulk::Decompressor::with_dictionary(&dict)?.decompress(&frame, place.block_plain)
        } else {
            zstd::bulk::Decompressor::new()?.decompress(&frame, place.block_plain)
        }
        .with_context(|| {
            format!(
                "decoding block {} of pack {}: the pack is damaged",
                place.block, place.pack_id
            )
        })?;
        let plain = Arc::new(plain);
        if self.blocks.len() >= BLOCKS_KEPT {
            self.blocks.remove(0);
        }
        self.blocks.push((key, plain.clone()));
        Ok(plain)
    }

    /// The pack's file, opened once per reader, its header checked (format, dictionary).
    fn pack_file(&mut self, place: &ChunkPlace) -> Result<&File> {
        if !self.files.contains_key(&place.pack_seq) {
            let path = self.store.pack_path(&place.pack_id);
            let mut file = File::open(&path)
                .with_context(|| format!("opening pack {} (missing?)", path.display()))?;
            let header = Header::read(&mut file, &path)?;
            let named = header
                .dictionary
                .map(|d| blake3::Hash::from_bytes(d).to_hex().to_string());
            if named != place.dictionary {
                bail!(
                    "pack {}: its header names dictionary {:?}, the catalog {:?}",
                    place.pack_id,
                    named,
                    place.dictionary
                );
            }
            self.files.insert(place.pack_seq, file);
        }
        Ok(&self.files[&place.pack_seq])
    }
}
