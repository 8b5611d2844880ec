//! One pack file: header, zstd blocks, an index that names every chunk in it, a footer.
//! A pack explains itself (its index is enough to read it without the catalog) and is
//! written once, under a temporary name, then renamed to the BLAKE3 of its bytes.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::MaintError;

pub const MAGIC: &[u8; 8] = b"CXMPACK\0";
/// The pack format this binary writes and the highest it reads.
pub const PACK_FORMAT: u16 = 1;
pub const HEADER_LEN: u64 = 8 + 2 + 2 + 32;
pub const FOOTER_LEN: u64 = 8 + 8 + 32 + 8;
const INDEX_LEVEL: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    pub offset: u64,
    pub length: u64,
    pub plain_length: u64,
    /// BLAKE3 (hex) of the block's compressed frame.
    pub blake3: String,
    /// Compressed with the pack's dictionary.
    pub dictionary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// BLAKE3 (hex) of the chunk's plain bytes.
    pub id: String,
    pub block: u32,
    pub offset: u32,
    pub length: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackIndex {
    pub blocks: Vec<BlockEntry>,
    pub chunks: Vec<ChunkEntry>,
}

/// A pack's fixed-size header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: u16,
    pub dictionary: Option<[u8; 32]>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN as usize);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.format.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.dictionary.unwrap_or([0; 32]));
        out
    }

    /// Reads and checks the header: a pack of a higher format is refused (exit 3), naming
    /// both versions, like a catalog from a newer codex-maint.
    pub fn read(file: &mut File, path: &Path) -> Result<Header> {
        let mut head = [0u8; HEADER_LEN as usize];
        file.seek(SeekFrom::Start(0))?;
        file.read_exact(&mut head)
            .with_context(|| format!("reading the header of pack {}", path.display()))?;
        if &head[..8] != MAGIC {
            bail!("{} is not a codex-maint pack (bad magic)", path.display());
        }
        let format = u16::from_le_bytes([head[8], head[9]]);
        if format > PACK_FORMAT {
            return Err(MaintError::refused(
                format!(
                    "the pack {} has pack format {format}, written by a newer codex-maint; this one reads pack format {PACK_FORMAT}. Nothing was changed: upgrade codex-maint",
                    path.display()
                ),
                vec![path.display().to_string()],
            )
            .into());
        }
        let mut dict = [0u8; 32];
        dict.copy_from_slice(&head[12..44]);
        Ok(Header {
            format,
            dictionary: (dict != [0; 32]).then_some(dict),
        })
    }
}

/// A pack being written: the header and each block go straight to the temporary file, so
/// only the index (one entry per block and per chunk) is held in memory.
pub struct PackBuilder {
    temp: PathBuf,
    file: File,
    hasher: blake3::Hasher,
    written: u64,
    pub index: PackIndex,
    pub dictionary: Option<[u8; 32]>,
}

/// A pack renamed into place, and what the catalog records of it.
/// Its index is not kept: the writer reads it back from the file at commit, so a writer
/// holds one pack's index at a time however many packs it fills.
pub struct FinishedPack {
    pub id: String,
    pub size: u64,
    pub dictionary: Option<[u8; 32]>,
}

impl PackBuilder {
    pub fn create(packs_dir: &Path, dictionary: Option<[u8; 32]>) -> Result<PackBuilder> {
        crate::store::create_private_dir(packs_dir)?;
        let temp = crate::fs_atomic::temp_path_beside(&packs_dir.join("pack"));
        let file = super::private_new_file(&temp)
            .with_context(|| format!("creating {}", temp.display()))?;
        let mut builder = PackBuilder {
            temp,
            file,
            hasher: blake3::Hasher::new(),
            written: 0,
            index: PackIndex::default(),
            dictionary,
        };
        builder.write(
            &Header {
                format: PACK_FORMAT,
                dictionary,
            }
            .encode(),
        )?;
        Ok(builder)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let result = self.file.write_all(bytes);
        if let Err(e) = result {
            return Err(anyhow::Error::new(e).context(format!("writing {}", self.temp.display())));
        }
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.written
    }

    pub fn block_count(&self) -> u32 {
        self.index.blocks.len() as u32
    }

    /// Appends one compressed block whose chunks are `chunks` (ids, offsets in the block's
    /// plain bytes, lengths).
    pub fn add_block(
        &mut self,
        frame: &[u8],
        plain_length: u64,
        dictionary: bool,
        chunks: impl IntoIterator<Item = ([u8; 32], u32, u32)>,
    ) -> Result<()> {
        let number = self.block_count();
        self.index.blocks.push(BlockEntry {
            offset: self.written,
            length: frame.len() as u64,
            plain_length,
            blake3: blake3::hash(frame).to_hex().to_string(),
            dictionary,
        });
        for (id, offset, length) in chunks {
            self.index.chunks.push(ChunkEntry {
                id: blake3::Hash::from_bytes(id).to_hex().to_string(),
                block: number,
                offset,
                length,
            });
        }
        self.write(frame)
    }

    /// Writes the index and footer, fsyncs, and renames the file to its hash in
    /// `packs/<ab>/`, fsyncing the folder. The file is never opened for writing again.
    pub fn finish(mut self, packs_dir: &Path) -> Result<FinishedPack> {
        let json = serde_json::to_vec(&self.index)?;
        let frame = zstd::bulk::compress(&json, INDEX_LEVEL)?;
        let index_offset = self.written;
        self.write(&frame)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
        footer.extend_from_slice(&index_offset.to_le_bytes());
        footer.extend_from_slice(&(frame.len() as u64).to_le_bytes());
        footer.extend_from_slice(blake3::hash(&frame).as_bytes());
        footer.extend_from_slice(MAGIC);
        self.write(&footer)?;
        let synced = self.file.sync_all();
        if let Err(e) = synced {
            let _ = std::fs::remove_file(&self.temp);
            return Err(anyhow::Error::new(e).context(format!("syncing {}", self.temp.display())));
        }
        let id = self.hasher.finalize().to_hex().to_string();
        let dir = packs_dir.join(&id[..2]);
        crate::store::create_private_dir(&dir)?;
        let path = dir.join(format!("{id}.pack"));
        // A pack of that name holds the same bytes (its name is their hash).
        std::fs::rename(&self.temp, &path)
            .with_context(|| format!("renaming a pack into {}", path.display()))?;
        crate::fs_atomic::fsync_dir(&dir)?;
        Ok(FinishedPack {
            id,
            size: self.written,
            dictionary: self.dictionary,
        })
    }
}

impl Drop for PackBuilder {
    fn drop(&mut self) {
        // Finished packs were renamed away; an abandoned one is removed, and one a crash
        // left is swept by `remove_temp_files`.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Reads `length` bytes at `offset` of an open pack.
pub fn read_at(file: &File, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; length as usize];
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset)?;
    #[cfg(not(unix))]
    {
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut buf)?;
    }
    Ok(buf)
}

/// Reads a pack's footer and index, checking the index frame against the footer's hash.
pub fn read_index(file: &mut File, path: &Path) -> Result<PackIndex> {
    let size = file.metadata()?.len();
    if size < HEADER_LEN + FOOTER_LEN {
        bail!("pack {} is truncated ({size} bytes)", path.display());
    }
    let footer = read_at(file, size - FOOTER_LEN, FOOTER_LEN)?;
    if &footer[48..56] != MAGIC {
        bail!(
            "pack {} has no footer (truncated or altered)",
            path.display()
        );
    }
    let offset = u64::from_le_bytes(footer[0..8].try_into().expect("8 bytes"));
    let length = u64::from_le_bytes(footer[8..16].try_into().expect("8 bytes"));
    if offset < HEADER_LEN || offset.saturating_add(length) != size - FOOTER_LEN {
        bail!(
            "pack {}: its footer places the index outside the file",
            path.display()
        );
    }
    let frame = read_at(file, offset, length)?;
    if blake3::hash(&frame).as_bytes()[..] != footer[16..48] {
        bail!(
            "pack {}: its index does not match the footer's hash",
            path.display()
        );
    }
    let json = zstd::stream::decode_all(&frame[..])
        .with_context(|| format!("decoding the index of pack {}", path.display()))?;
    serde_json::from_slice(&json)
        .with_context(|| format!("reading the index of pack {}", path.display()))
}
