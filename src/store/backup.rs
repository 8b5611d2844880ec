//! Backups in the store (DESIGN.md "backups"): `backups/YYYYMMDD-HHMMSS/state.tar.zst`
//! plus `manifest.json` (path, size, mtime, mode and hash of each entry), read back and
//! checked before the caller may change anything. Databases go into the pack layer as
//! objects cut at their pages (backup format 2), so a page unchanged since an earlier
//! backup costs nothing. What goes in is decided by the caller (`ops::state_backup`); this
//! module knows archives and objects, not Codex.

use anyhow::{Context, Result};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::pack::{Chunker, ObjectId, ObjectStore};
use super::{Catalog, Store, create_private_dir, restrict_file};
use crate::clock::now_rfc3339;
use crate::content_hash::{HashingReader, hash_file};
use crate::error::MaintError;

pub const ARCHIVE_NAME: &str = "state.tar.zst";
pub const MANIFEST_NAME: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupEntry {
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub mode: u32,
    pub hash: String,
    /// Set when the entry is not in the archive but held in the store as a blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_in_store: Option<HeldInStore>,
    /// Set when the entry is not in the archive but held as an object of the pack layer
    /// (a database, cut at its pages): its id, which is also `hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectId>,
}

/// The backup format this binary writes and the highest it reads: 1, everything in the
/// archive (or held in the store as a blob); 2, databases held as page-chunked objects.
pub const BACKUP_FORMAT: u32 = 2;

fn first_format() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Absent in manifests written before it existed: format 1.
    #[serde(default = "first_format")]
    pub format: u32,
    pub created_at: String,
    pub home: String,
    pub archive: String,
    pub archive_hash: String,
    pub entries: Vec<BackupEntry>,
}

/// Where an entry's bytes are when they are not in the archive: the run this backup
/// protects moves the file whole into the store, and the blob named by the entry's hash,
/// stored by that run's op of kind `op_kind` on the same path, is its backup. `undo --run
/// <run_id>` puts it back byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldInStore {
    pub run_id: Option<i64>,
    pub op_kind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    pub id: i64,
    pub dir: PathBuf,
    pub archive: PathBuf,
    pub manifest: PathBuf,
    pub entries: usize,
    pub bytes: u64,
    /// The entries held in the store rather than in the archive.
    pub held_in_store: Vec<BackupEntry>,
}

/// A file to put in the backup: its name in the archive, where its bytes are read from
/// (the file itself, or a consistent copy of a database), and its original mtime and mode.
pub struct BackupSource {
    pub name: String,
    pub bytes_from: PathBuf,
    pub mtime_ns: i64,
    pub mode: u32,
    /// Not copied: only hashed, and named as held in the store.
    pub held_in_store: Option<HeldInStore>,
    /// Stored as an object cut at its pages (an SQLite database), not in the archive, so
    /// the pages it shares with earlier backups cost nothing.
    pub as_pages: bool,
}

/// A folder under `backups/` for this snapshot; the caller fills a private temporary
/// folder in it with database copies, then calls `create`.
pub fn new_dir(store: &Store) -> Result<PathBuf> {
    let backups = store.root.join("backups");
    create_private_dir(&backups)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let mut dir = backups.join(&stamp);
    let mut n = 2;
    while dir.exists() {
        dir = backups.join(format!("{stamp}-{n}"));
        n += 1;
    }
    create_private_dir(&dir)?;
    Ok(dir)
}

/// Removes the folder `new_dir` made for a backup that failed before it was recorded: no
/// catalog row names it, so it is no backup, and an empty or half-checked folder under
/// `backups/` would only read as one.
pub fn discard_unrecorded(dir: &Path) {
    if fs::remove_dir_all(dir).is_ok() {
        let _ = crate::fs_atomic::fsync_parent(dir);
    }
}

/// Writes `sources` to `dir/state.tar.zst` with `manifest.json`, reads it all back against
/// the manifest, and records it; any mismatch refuses, so nothing is changed after it.
pub fn create(
    store: &Store,
    dir: &Path,
    home_label: &str,
    sources: &[BackupSource],
    run_id: Option<i64>,
) -> Result<BackupInfo> {
    let archive_path = dir.join(ARCHIVE_NAME);
    let mut entries = Vec::new();
    let objects = store.objects();
    let mut pages = objects.writer()?;
    {
        let out = File::create(&archive_path)?;
        restrict_file(&archive_path)?;
        let mut tar = tar::Builder::new(zstd::Encoder::new(out, 3)?);
        for s in sources {
            if let Some(held) = &s.held_in_store {
                let size = fs::metadata(&s.bytes_from)?.len();
                entries.push(BackupEntry {
                    path: s.name.clone(),
                    size,
                    mtime_ns: s.mtime_ns,
                    mode: s.mode,
                    hash: hash_file(&s.bytes_from)
                        .with_context(|| format!("reading {}", s.bytes_from.display()))?,
                    held_in_store: Some(held.clone()),
                    object: None,
                });
                continue;
            }
            if s.as_pages {
                let file = crate::regular_file::open(&s.bytes_from)
                    .with_context(|| format!("reading {}", s.bytes_from.display()))?;
                let size = file.metadata()?.len();
                let mut reader = HashingReader::new(file);
                let id = pages.put_reader(&mut reader, Chunker::SqlitePage)?;
                let (hash, read) = reader.finish();
                anyhow::ensure!(
                    read == size && hash == id.to_hex(),
                    "{} changed while being backed up",
                    s.name
                );
                entries.push(BackupEntry {
                    path: s.name.clone(),
                    size,
                    mtime_ns: s.mtime_ns,
                    mode: s.mode,
                    hash,
                    held_in_store: None,
                    object: Some(id),
                });
                continue;
            }
            let file = crate::regular_file::open(&s.bytes_from)
                .with_context(|| format!("reading {}", s.bytes_from.display()))?;
            let size = file.metadata()?.len();
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(s.mode & 0o7777);
            header.set_mtime((s.mtime_ns.max(0) / 1_000_000_000) as u64);
            header.set_entry_type(tar::EntryType::Regular);
            let mut reader = HashingReader::new(file);
            tar.append_data(&mut header, &s.name, &mut reader)?;
            let (hash, read) = reader.finish();
            anyhow::ensure!(
                read == size,
                "{} changed size while being backed up",
                s.name
            );
            entries.push(BackupEntry {
                path: s.name.clone(),
                size,
                mtime_ns: s.mtime_ns,
                mode: s.mode,
                hash,
                held_in_store: None,
                object: None,
            });
        }
        let encoder = tar.into_inner()?;
        encoder.finish()?.sync_all()?;
    }
    // The objects are whole in the catalog before the backup that names them is recorded:
    // a crash between leaves objects nothing names, for `prune`.
    pages.commit()?;
    let manifest = Manifest {
        format: BACKUP_FORMAT,
        created_at: now_rfc3339(),
        home: home_label.to_string(),
        archive: ARCHIVE_NAME.into(),
        archive_hash: hash_file(&archive_path)?,
        entries,
    };
    let manifest_path = dir.join(MANIFEST_NAME);
    crate::fs_atomic::write_atomic(
        &manifest_path,
        &serde_json::to_vec_pretty(&manifest)?,
        Some(0o600),
    )?;

    if crate::failpoint::armed_for("backup-corrupt") {
        corrupt_for_test(&archive_path)?;
    }
    let mut problems = check(dir, &manifest)?;
    problems.extend(check_objects(&objects, &manifest)?);
    if !problems.is_empty() {
        return Err(MaintError::refused(
            format!(
                "the backup {} did not check out; nothing was changed",
                dir.display()
            ),
            problems,
        )
        .into());
    }
    let id = record(
        &store.catalog,
        run_id,
        dir,
        &manifest,
        &hash_file(&manifest_path)?,
    )?;
    Ok(BackupInfo {
        id,
        bytes: fs::metadata(&archive_path)?.len(),
        entries: manifest.entries.len(),
        held_in_store: manifest
            .entries
            .iter()
            .filter(|e| e.held_in_store.is_some())
            .cloned()
            .collect(),
        archive: archive_path,
        manifest: manifest_path,
        dir: dir.to_path_buf(),
    })
}

/// Fault injection for the stop-rule test: flips a byte in the middle of the archive.
fn corrupt_for_test(archive: &Path) -> Result<()> {
    let mut bytes = fs::read(archive)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(archive, bytes)?;
    Ok(())
}

/// Re-reads the archive and compares every entry with the manifest.
pub fn check(dir: &Path, manifest: &Manifest) -> Result<Vec<String>> {
    refuse_newer(dir, manifest)?;
    let mut problems = Vec::new();
    let archive = dir.join(&manifest.archive);
    match hash_file(&archive) {
        Ok(h) if h == manifest.archive_hash => {}
        Ok(_) => problems.push(format!(
            "{}: its bytes changed since it was written",
            archive.display()
        )),
        Err(e) => {
            problems.push(format!(
                "{}: missing or unreadable ({e})",
                archive.display()
            ));
            return Ok(problems);
        }
    }
    let seen = match read_entries(&archive) {
        Ok(seen) => seen,
        Err(e) => {
            problems.push(format!(
                "{}: cannot be read back ({e:#})",
                archive.display()
            ));
            return Ok(problems);
        }
    };
    // An entry held in the store is checked where it is: `verify` rehashes every blob.
    let archived: Vec<&BackupEntry> = manifest
        .entries
        .iter()
        .filter(|e| e.held_in_store.is_none() && e.object.is_none())
        .collect();
    if seen.len() != archived.len() {
        problems.push(format!(
            "{}: {} entries, the manifest lists {}",
            archive.display(),
            seen.len(),
            archived.len()
        ));
    }
    for (e, (name, size, hash)) in archived.iter().zip(&seen) {
        if &e.path != name || e.size != *size || &e.hash != hash {
            problems.push(format!(
                "{}: entry {} does not match the manifest",
                archive.display(),
                e.path
            ));
        }
    }
    Ok(problems)
}

/// A backup written by a newer codex-maint is refused (exit 3), naming both formats.
fn refuse_newer(dir: &Path, manifest: &Manifest) -> Result<()> {
    if manifest.format > BACKUP_FORMAT {
        return Err(MaintError::refused(
            format!(
                "the backup {} has backup format {}, written by a newer codex-maint; this one reads backup format {BACKUP_FORMAT}. Nothing was changed: upgrade codex-maint",
                dir.display(),
                manifest.format
            ),
            vec![],
        )
        .into());
    }
    Ok(())
}

/// Decodes every entry held as an object, proving each byte against the manifest: the
/// object must be the entry's hash and length, and read back whole to it.
pub fn check_objects(objects: &ObjectStore<'_>, manifest: &Manifest) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for e in &manifest.entries {
        let Some(id) = &e.object else { continue };
        if id.to_hex() != e.hash {
            problems.push(format!(
                "entry {}: its object {id} is not its hash {}",
                e.path, e.hash
            ));
            continue;
        }
        match objects.read_to(id, &mut std::io::sink()) {
            Ok(n) if n == e.size => {}
            Ok(n) => problems.push(format!(
                "entry {}: its object holds {n} bytes, the manifest {}",
                e.path, e.size
            )),
            Err(err) => problems.push(format!("entry {}: {err:#}", e.path)),
        }
    }
    Ok(problems)
}

/// Writes backup `backup_id` out whole into `dest` (a new folder): the archive's entries
/// and every entry held as an object, each with its recorded mode, checked against the
/// manifest's hash before it takes its name. Entries held in the store as a run's blob are
/// not written (`undo --run` puts those back); their names are returned.
pub fn extract(store: &Store, backup_id: i64, dest: &Path) -> Result<Vec<String>> {
    let path: String = store
        .catalog
        .connection()
        .query_row("SELECT path FROM backups WHERE id = ?1", [backup_id], |r| {
            r.get(0)
        })
        .with_context(|| format!("backup {backup_id} is not in the catalog"))?;
    let dir = PathBuf::from(path);
    let manifest: Manifest = serde_json::from_slice(&fs::read(dir.join(MANIFEST_NAME))?)?;
    let problems = check(&dir, &manifest)?;
    anyhow::ensure!(
        problems.is_empty(),
        "backup {backup_id} does not check out: {problems:?}"
    );
    fs::create_dir(dest)
        .with_context(|| format!("creating {} (it must not exist)", dest.display()))?;
    tar::Archive::new(zstd::Decoder::new(File::open(
        dir.join(&manifest.archive),
    )?)?)
    .unpack(dest)?;
    let objects = store.objects();
    let mut not_written = Vec::new();
    for e in &manifest.entries {
        if e.held_in_store.is_some() {
            not_written.push(e.path.clone());
            continue;
        }
        let Some(id) = &e.object else { continue };
        let target = dest.join(&e.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let temp = crate::fs_atomic::temp_path_beside(&target);
        let written = (|| -> Result<()> {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            objects.read_to(id, &mut out)?;
            crate::fs_atomic::set_mode(&out, e.mode & 0o7777)?;
            out.sync_all()?;
            Ok(())
        })();
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(err.context(format!("writing {}", target.display())));
        }
        crate::fs_atomic::rename_no_replace(&temp, &target)?;
    }
    Ok(not_written)
}

/// Name, size and hash of every entry, in order.
fn read_entries(archive: &Path) -> Result<Vec<(String, u64, String)>> {
    let mut seen = Vec::new();
    let mut tar = tar::Archive::new(zstd::Decoder::new(File::open(archive)?)?);
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut reader = HashingReader::new(&mut entry);
        std::io::copy(&mut reader, &mut std::io::sink())?;
        let (hash, size) = reader.finish();
        seen.push((name, size, hash));
    }
    Ok(seen)
}

fn record(
    catalog: &Catalog,
    run_id: Option<i64>,
    dir: &Path,
    manifest: &Manifest,
    manifest_hash: &str,
) -> Result<i64> {
    let conn = catalog.connection();
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO backups (run_id, path, created_at, archive_hash, manifest_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![run_id, crate::path_text::recorded(dir)?, manifest.created_at, manifest.archive_hash, manifest_hash],
    )?;
    let id = tx.last_insert_rowid();
    for e in &manifest.entries {
        tx.execute(
            "INSERT INTO backup_entries (backup_id, path, size, mtime_ns, mode, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, e.path, e.size as i64, e.mtime_ns, e.mode as i64, e.hash],
        )?;
        if let Some(object) = &e.object {
            tx.execute(
                "INSERT INTO backup_objects (backup_id, path, object) VALUES (?1, ?2, ?3)",
                params![id, e.path, object],
            )?;
        }
    }
    tx.commit()?;
    Ok(id)
}

pub struct BackupCheck {
    pub checked: usize,
    pub problems: Vec<String>,
}

/// Every recorded backup: its manifest unchanged, its archive unchanged and readable, every
/// entry matching. Reads only.
pub fn verify_all(catalog: &Catalog, store_root: &Path) -> Result<BackupCheck> {
    let objects = ObjectStore::new(catalog, store_root);
    let mut stmt = catalog
        .connection()
        .prepare("SELECT id, path, manifest_hash FROM backups ORDER BY id")?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut problems = Vec::new();
    for (id, path, manifest_hash) in &rows {
        let dir = PathBuf::from(path);
        let manifest_path = dir.join(MANIFEST_NAME);
        let mut text = String::new();
        if File::open(&manifest_path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .is_err()
        {
            problems.push(format!(
                "backup {id}: {} is missing",
                manifest_path.display()
            ));
            continue;
        }
        if crate::content_hash::hash_bytes(text.as_bytes()) != *manifest_hash {
            problems.push(format!(
                "backup {id}: {} changed since it was written",
                manifest_path.display()
            ));
            continue;
        }
        let manifest: Manifest = serde_json::from_str(&text)?;
        if let Err(e) = refuse_newer(&dir, &manifest) {
            problems.push(format!("backup {id}: {e:#}"));
            continue;
        }
        problems.extend(
            check(&dir, &manifest)?
                .into_iter()
                .chain(check_objects(&objects, &manifest)?)
                .map(|p| format!("backup {id}: {p}")),
        );
    }
    Ok(BackupCheck {
        checked: rows.len(),
        problems,
    })
}
