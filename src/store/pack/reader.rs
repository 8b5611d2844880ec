//! Reading objects back: the chunk list from the catalog, each chunk's block located
//! through the catalog (never a pack's index), each needed block decoded once, every
//! chunk and then the whole checked against their hashes.

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;

use super::pack_file::{Header, read_at};
use super::{ObjectId, ObjectStore};

/// Decoded blocks kept at once: an object's chunks sit in one block or two neighbours,
/// and a deduped chunk may point back to an older one; two 8 MiB blocks bound the memory.
const BLOCKS_KEPT: usize = 2;
/// Chunks located per catalog round: how far ahead a read looks to decode each block once.
const CHUNKS_LOOKED_UP: usize = 256;

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
    /// Decode each block whole on first use, for a reader that goes through every object.
    whole_blocks: bool,
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
            whole_blocks: false,
        }
    }

    /// A reader for every object in turn (`verify`). Objects are laid one after another in
    /// a block, so decoding only as far as each one's chunks decoded each block again from
    /// its start for every object in it: verify at 74,736 retired sessions took 97-242 s.
    pub fn for_every_object(store: &'s ObjectStore<'s>) -> Self {
        ObjectReader {
            whole_blocks: true,
            ..ObjectReader::new(store)
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
        for group in meta.chunks.chunks(CHUNKS_LOOKED_UP) {
            let places = group
                .iter()
                .map(|c| self.located(c))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("reading object {id}"))?;
            for (chunk_id, place) in group.iter().zip(&places) {
                // Decoded as far as the last chunk this group needs from the block.
                let needed = places
                    .iter()
                    .filter(|p| (p.pack_seq, p.block) == (place.pack_seq, place.block))
                    .map(|p| p.offset + p.length)
                    .max()
                    .unwrap_or(0);
                let bytes = self
                    .cut(chunk_id, place, needed)
                    .with_context(|| format!("reading object {id}"))?;
                whole.update(&bytes);
                written += bytes.len() as u64;
                out.write_all(&bytes)?;
            }
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
        let place = self.located(chunk_id)?;
        let needed = place.offset + place.length;
        self.cut(chunk_id, &place, needed)
    }

    fn located(&self, chunk_id: &[u8; 32]) -> Result<ChunkPlace> {
        self.place(chunk_id)?.ok_or_else(|| {
            anyhow!(
                "chunk {} is not in the catalog",
                blake3::Hash::from_bytes(*chunk_id).to_hex()
            )
        })
    }

    /// The chunk at `place`, its block decoded at least `needed` bytes in.
    fn cut(&mut self, chunk_id: &[u8; 32], place: &ChunkPlace, needed: usize) -> Result<Vec<u8>> {
        let hex = blake3::Hash::from_bytes(*chunk_id).to_hex();
        let block = self.block(place, needed.max(place.offset + place.length))?;
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

    /// The block's plain bytes from its start to at least `needed` (a block is one zstd
    /// frame, so reading a chunk decodes what precedes it in the block, never what follows).
    fn block(&mut self, place: &ChunkPlace, needed: usize) -> Result<Arc<Vec<u8>>> {
        let needed = if self.whole_blocks {
            needed.max(place.block_plain)
        } else {
            needed
        };
        let key = (place.pack_seq, place.block);
        if let Some(i) = self
            .blocks
            .iter()
            .position(|(k, b)| *k == key && b.len() >= needed)
        {
            let hit = self.blocks.remove(i);
            let bytes = hit.1.clone();
            self.blocks.push(hit);
            return Ok(bytes);
        }
        self.blocks.retain(|(k, _)| *k != key);
        let file = self.pack_file(place)?;
        let frame = read_at(file, place.block_offset, place.block_length)
            .with_context(|| format!("reading block {} of pack {}", place.block, place.pack_id))?;
        let want = needed.min(place.block_plain);
        let mut plain = vec![0u8; want];
        let decoded = if place.block_uses_dictionary {
            let dict_id = place.dictionary.as_deref().ok_or_else(|| {
                anyhow!(
                    "pack {} has a block compressed with a dictionary but names none",
                    place.pack_id
                )
            })?;
            let dict = self.store.dictionaries.get(self.store, dict_id)?;
            zstd::stream::read::Decoder::with_dictionary(&frame[..], &dict)
                .and_then(|mut d| d.read_exact(&mut plain))
        } else {
            zstd::stream::read::Decoder::with_buffer(&frame[..])
                .and_then(|mut d| d.read_exact(&mut plain))
        };
        decoded.with_context(|| {
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
