//! The pack layer (docs/store-format.md "Packs and chunks"): a file is stored as an
//! *object*, a list of content-addressed *chunks*; each distinct chunk is kept once, laid
//! with others in compressed *blocks* inside immutable *pack* files. Retired sessions and
//! shared backups are both built on it, so both dedupe and both verify the same way.

mod chunker;
pub mod collect;
mod dictionary;
mod pack_file;
mod reader;
mod verify;
mod writer;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};

pub use chunker::Chunker;
pub use pack_file::PACK_FORMAT;
pub use writer::ObjectWriter;

use super::{Catalog, Store};

/// The BLAKE3 of an object's (or chunk's) plain bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    pub fn of(bytes: &[u8]) -> ObjectId {
        ObjectId(*blake3::hash(bytes).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectId({})", self.to_hex())
    }
}

impl std::str::FromStr for ObjectId {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> Result<ObjectId> {
        if text.len() != 64 {
            anyhow::bail!("an object id is 64 hex characters, not {text:?}");
        }
        let hash = blake3::Hash::from_hex(text)
            .map_err(|e| anyhow::anyhow!("{text:?} is not an object id: {e}"))?;
        Ok(ObjectId(*hash.as_bytes()))
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Object ids are hex text in the catalog (`objects.id` and every column naming one), so a
/// person reading it with `sqlite3` sees the same names `verify` prints.
impl rusqlite::ToSql for ObjectId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.to_hex()))
    }
}

impl rusqlite::types::FromSql for ObjectId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = value.as_str()?;
        text.parse()
            .map_err(|e: anyhow::Error| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

/// Where blocks are cut and packs closed, and how hard blocks are compressed. The real
/// values are the defaults; tests and benches use small ones to reach many packs and the
/// dictionary threshold with little data, without a smaller on-disk format.
#[derive(Debug, Clone, Copy)]
pub struct PackLimits {
    /// A block is compressed once its chunks' plain bytes would pass this.
    pub block_bytes: usize,
    /// A pack is closed once its file passes this.
    pub pack_bytes: u64,
    /// zstd level of transcript (cdc-lines, whole) blocks.
    pub text_level: i32,
    /// cdc-lines objects the store must hold before the first dictionary is trained.
    pub dictionary_threshold: u64,
}

pub const BLOCK_BYTES: usize = 8 << 20;
pub const PACK_BYTES: u64 = 64 << 20;
/// Measured in benches/cold_tier.rs on transcripts the real Codex wrote: see the level
/// table there and in docs/store-format.md.
pub const TEXT_LEVEL: i32 = 12;
/// Database pages repeat as whole chunks, not within them: a fast level loses little.
pub const PAGE_LEVEL: i32 = 3;
pub const DICTIONARY_THRESHOLD: u64 = 100;

impl Default for PackLimits {
    fn default() -> Self {
        PackLimits {
            block_bytes: BLOCK_BYTES,
            pack_bytes: PACK_BYTES,
            text_level: TEXT_LEVEL,
            dictionary_threshold: DICTIONARY_THRESHOLD,
        }
    }
}

/// Bytes on disk of the pack layer, for `inspect`'s store by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackSizes {
    pub packs: u64,
    pub pack_bytes: u64,
    pub dictionaries: u64,
    pub dictionary_bytes: u64,
    pub objects: u64,
    /// The objects' plain bytes, as if each were stored alone and uncompressed.
    pub object_plain_bytes: u64,
    pub chunks: u64,
}

/// The pack layer of one store: its catalog and folder.
pub struct ObjectStore<'a> {
    catalog: &'a Catalog,
    root: PathBuf,
    dictionaries: dictionary::Cache,
}

impl Store {
    pub fn objects(&self) -> ObjectStore<'_> {
        ObjectStore::new(&self.catalog, &self.root)
    }
}

impl<'a> ObjectStore<'a> {
    /// The pack layer of the store at `root` whose catalog is `catalog` (opened for
    /// writing, or read-only for `verify` and dry runs).
    pub fn new(catalog: &'a Catalog, root: &Path) -> ObjectStore<'a> {
        ObjectStore {
            catalog,
            root: root.to_path_buf(),
            dictionaries: dictionary::Cache::default(),
        }
    }

    fn conn(&self) -> &Connection {
        self.catalog.connection()
    }

    /// A writer with the real limits; a dictionary is trained first when one is due.
    pub fn writer(&self) -> Result<ObjectWriter<'a>> {
        self.writer_with(PackLimits::default())
    }

    /// A writer with other limits (tests and benches).
    pub fn writer_with(&self, limits: PackLimits) -> Result<ObjectWriter<'a>> {
        dictionary::train_if_due(self, limits.dictionary_threshold)?;
        ObjectWriter::new(ObjectStore::new(self.catalog, &self.root), limits)
    }

    pub fn read(&self, id: &ObjectId) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_to(id, &mut out)?;
        Ok(out)
    }

    /// Writes the object's bytes to `out` chunk by chunk, decoding only the blocks that
    /// hold them (a few at a time in memory), and checks every chunk's hash and then the
    /// whole's. On a mismatch the bytes already written are not the object: callers write
    /// to a temporary and keep it only on success.
    pub fn read_to(&self, id: &ObjectId, out: &mut dyn std::io::Write) -> Result<u64> {
        reader::ObjectReader::new(self).read_to(id, out)
    }

    pub fn contains(&self, id: &ObjectId) -> Result<bool> {
        if !self.has_tables()? {
            return Ok(false);
        }
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM objects WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The plain length of a stored object, or `None` when the store does not hold it.
    pub fn length(&self, id: &ObjectId) -> Result<Option<u64>> {
        if !self.has_tables()? {
            return Ok(None);
        }
        Ok(self
            .conn()
            .prepare_cached("SELECT length FROM objects WHERE id = ?1")?
            .query_row([id], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|n| n as u64))
    }

    /// Every problem found, empty when the pack layer is sound: each live pack's bytes
    /// against its name, its header, footer and index against the catalog; each
    /// dictionary against its name; each object decoded to its id.
    pub fn verify_all(&self) -> Result<Vec<String>> {
        verify::verify_all(self)
    }

    pub fn sizes(&self) -> Result<PackSizes> {
        if !self.has_tables()? {
            return Ok(PackSizes::default());
        }
        let conn = self.conn();
        let pair = |sql: &str| -> Result<(u64, u64)> {
            Ok(conn.query_row(sql, [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })?)
        };
        let (packs, pack_bytes) =
            pair("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM packs WHERE state = 'live'")?;
        let (dictionaries, dictionary_bytes) =
            pair("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM dictionaries")?;
        let (objects, object_plain_bytes) =
            pair("SELECT COUNT(*), COALESCE(SUM(length), 0) FROM objects")?;
        let (chunks, _) = pair("SELECT COUNT(*), 0 FROM chunks")?;
        Ok(PackSizes {
            packs,
            pack_bytes,
            dictionaries,
            dictionary_bytes,
            objects,
            object_plain_bytes,
            chunks,
        })
    }

    /// A catalog older than format 3 (read without migrating, by `verify` or a dry run)
    /// has no pack tables, and so holds no objects.
    fn has_tables(&self) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'objects'",
            )?
            .query_row([], |_| Ok(()))
            .optional()
            .context("reading the catalog's tables")?
            .is_some())
    }

    fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    fn pack_path(&self, pack_id: &str) -> PathBuf {
        let prefix = pack_id.get(..2).unwrap_or("xx");
        self.packs_dir()
            .join(prefix)
            .join(format!("{pack_id}.pack"))
    }

    fn dicts_dir(&self) -> PathBuf {
        self.root.join("dicts")
    }

    fn dict_path(&self, dict_id: &str) -> PathBuf {
        self.dicts_dir().join(format!("{dict_id}.dict"))
    }

    /// Removes temporary packs and dictionaries a killed writer left (only the lock holder
    /// calls this, so no writer is filling one).
    pub fn remove_temp_files(&self) -> Vec<PathBuf> {
        let mut removed = crate::fs_atomic::remove_temp_files_in(&self.packs_dir());
        removed.extend(crate::fs_atomic::remove_temp_files_in(&self.dicts_dir()));
        removed
    }
}

/// Writes `bytes` as the final file `path` the way packs and dictionaries are written:
/// under a temporary name beside it (0600 from the first byte), fsynced, renamed into
/// place, the folder fsynced. A name that exists therefore always holds whole bytes.
fn write_whole(path: &Path, fill: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    let dir = path.parent().expect("pack paths have a parent");
    super::create_private_dir(dir)?;
    let temp = crate::fs_atomic::temp_path_beside(path);
    let written = (|| -> Result<()> {
        let mut file = private_new_file(&temp)?;
        fill(&mut file)?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    std::fs::rename(&temp, path).with_context(|| format!("renaming into {}", path.display()))?;
    crate::fs_atomic::fsync_dir(dir)?;
    Ok(())
}

fn private_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).read(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests;
