//! Reviewed plans, kept in the store by id, so `cleanup --yes --plan <id>` applies exactly
//! what `cleanup --dry-run` showed.
//!
//! A plan is sealed when it is saved: `<id>.seal` beside it holds a keyed BLAKE3 of the
//! plan file's bytes as written, keyed by `seal.key`, a random key made once per store.
//! The seal lives beside the plan, not in the catalog, because a dry run opens nothing
//! read-write (the catalog included, with its -wal and -shm) and `plans/` is the one
//! place in the store a dry run may write. A plain digest beside the plan would be
//! recomputed by whoever edits the plan; a keyed one cannot be without reading the key.
//! The seal tells an edit from the reviewed plan; what keeps an edit from doing harm is
//! `contract`: an action is carried out only when the planner makes it now, field for
//! field, so even a forged seal cannot make cleanup touch what is not planned.

use anyhow::{Context as _, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Plan;
use crate::error::MaintError;

const SEAL_KEY_FILE: &str = "seal.key";
const SEAL_SUFFIX: &str = "seal";

fn plans_dir(store_root: &Path) -> PathBuf {
    store_root.join("plans")
}

/// Whether a plan file is, byte for byte, the one a dry run saved.
#[derive(Debug, Clone, PartialEq)]
pub enum Seal {
    Intact,
    /// Why it is not: the digest differs, or there is no seal.
    Broken(String),
}

pub fn save_plan(store_root: &Path, plan: &Plan) -> Result<PathBuf> {
    let dir = plans_dir(store_root);
    crate::store::create_private_dir(&dir)?;
    let key = seal_key(&dir)?;
    let path = dir.join(format!("{}.json", plan.id));
    let mut digest = String::new();
    crate::fs_atomic::write_atomic_with(&path, Some(0o600), |out| {
        let mut sealing = Sealing {
            inner: out,
            mac: blake3::Hasher::new_keyed(&key),
        };
        serde_json::to_writer_pretty(&mut sealing, plan)?;
        digest = sealing.mac.finalize().to_hex().to_string();
        Ok(())
    })?;
    crate::fs_atomic::write_atomic(&seal_path(&dir, &plan.id), digest.as_bytes(), Some(0o600))?;
    Ok(path)
}

/// The plan saved under `id`, and whether its seal holds. The digest is taken over the
/// very bytes parsed, so a file changed while it is read cannot pass.
pub fn load_plan(store_root: &Path, id: &str) -> Result<(Plan, Seal)> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MaintError::usage(format!(
            "--plan {id}: a plan id is the hex id `cleanup --dry-run` printed"
        ))
        .into());
    }
    let dir = plans_dir(store_root);
    let path = dir.join(format!("{id}.json"));
    let file = crate::regular_file::open(&path).map_err(|_| {
        MaintError::refused(format!("no reviewed plan {id} in {}: run `codex-maint cleanup --dry-run` and review it first; nothing was changed", dir.display()), vec![])
    })?;
    let key = existing_seal_key(&dir);
    let mut reading = Unsealing {
        inner: std::io::BufReader::with_capacity(1 << 16, file),
        mac: key.map(|k| blake3::Hasher::new_keyed(&k)),
    };
    let plan: Plan = serde_json::from_reader(&mut reading)
        .with_context(|| format!("reading {}", path.display()))?;
    std::io::copy(&mut reading, &mut std::io::sink())?;
    let recorded = std::fs::read_to_string(seal_path(&dir, id)).ok();
    let seal = match (reading.mac, recorded) {
        (Some(mac), Some(recorded)) if mac.finalize().to_hex().as_str() == recorded.trim() => {
            Seal::Intact
        }
        (Some(_), Some(_)) => Seal::Broken(format!(
            "its digest is not the one sealed when `cleanup --dry-run` saved it ({})",
            path.display()
        )),
        _ => Seal::Broken(format!(
            "it has no seal from `cleanup --dry-run` beside it ({})",
            path.display()
        )),
    };
    Ok((plan, seal))
}

fn seal_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.{SEAL_SUFFIX}"))
}

fn existing_seal_key(dir: &Path) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    let mut file = crate::regular_file::open(&dir.join(SEAL_KEY_FILE)).ok()?;
    file.read_exact(&mut key).ok()?;
    Some(key)
}

/// The store's sealing key, made on first use. Two dry runs making it at once agree on
/// one: the key is placed without replacing, and the loser reads the winner's.
fn seal_key(dir: &Path) -> Result<[u8; 32]> {
    if let Some(key) = existing_seal_key(dir) {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let placed = crate::fs_atomic::write_new(&dir.join(SEAL_KEY_FILE), &key, 0o600);
    match existing_seal_key(dir) {
        Some(key) => Ok(key),
        None => Err(placed
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the key could not be read back"))
            .context(format!("making the plan sealing key in {}", dir.display()))),
    }
}

struct Sealing<'w> {
    inner: &'w mut dyn Write,
    mac: blake3::Hasher,
}

impl Write for Sealing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.mac.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct Unsealing<R> {
    inner: R,
    mac: Option<blake3::Hasher>,
}

impl<R: Read> Read for Unsealing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(mac) = &mut self.mac {
            mac.update(&buf[..n]);
        }
        Ok(n)
    }
}
