//! Prune, two phases (docs/store-format.md "Forget and prune"): **mark** what is held
//! (`references`), then **decide**: one transaction records every unheld thing in
//! `prune_condemned` and drops the catalog rows that named it, so from that commit on
//! nothing reads it; then **sweep**: delete each file, fsync its folder, and only then
//! drop its condemned row. A prune killed anywhere leaves a store that verifies: before
//! the decision nothing changed; after it, what is condemned is named by no row but its
//! own, and the next prune sweeps it.

use anyhow::{Context, Result};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::references::{self, BACKUP, BLOB, References};
use crate::store::{Catalog, Store};

/// The collectable kind of saved cleanup plans (`plans/<id>.json` and `.seal`).
pub const PLAN: &str = "plan";
/// A folder under `backups/` no row names: a backup that failed before it was recorded.
pub const UNRECORDED_BACKUP: &str = "unrecorded-backup";
/// A saved plan is kept a week unless a run applied it.
pub const PLAN_KEPT_SECS: u64 = 7 * 24 * 3600;

/// One thing prune removes.
#[derive(Debug, Clone, Serialize)]
pub struct Condemned {
    pub kind: String,
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// A kind of stored thing prune may remove.
pub trait CollectableKind {
    fn kind(&self) -> &'static str;
    /// What of this kind exists and nothing holds (reads only).
    fn unheld(&self, root: &Path, catalog: &Catalog, refs: &References) -> Result<Vec<Condemned>>;
    /// Drops the catalog rows that name `item`; idempotent.
    fn drop_rows(&self, _conn: &Connection, _item: &Condemned) -> Result<()> {
        Ok(())
    }
    /// Whether something took `item` up again since it was condemned (a later run stored
    /// the same bytes): it is then kept, and its mark dropped.
    fn held_again(&self, _catalog: &Catalog, refs: &References, item: &Condemned) -> Result<bool> {
        Ok(refs.holds(self.kind(), &item.name))
    }
    /// Drops, inside the decision's transaction, rows of things that have no file of
    /// their own (the pack layer's objects and chunks): nothing reads them from then on.
    fn drop_unheld_rows(&self, _conn: &Connection) -> Result<()> {
        Ok(())
    }
    /// Work after the decision that condemns more (a repack): what it condemned, already
    /// recorded in `prune_condemned`, for the sweep.
    fn after_decide(&self, _store: &Store) -> Result<Vec<Condemned>> {
        Ok(Vec::new())
    }
    /// What the work after the decision would free, for dry runs.
    fn would_free_after_decide(&self) -> Vec<Condemned> {
        Vec::new()
    }
    /// Drops the rows once the file is gone; by default as at the decision.
    fn swept_rows(&self, conn: &Connection, item: &Condemned) -> Result<()> {
        self.drop_rows(conn, item)
    }
}

struct Blobs;

impl CollectableKind for Blobs {
    fn kind(&self) -> &'static str {
        BLOB
    }
    /// Every blob recorded or lying in `blobs/` (a crash can leave one renamed into place
    /// but not recorded) that nothing holds.
    fn unheld(&self, root: &Path, catalog: &Catalog, refs: &References) -> Result<Vec<Condemned>> {
        let store = crate::store::blobs::BlobStore::new(root);
        let mut names: BTreeSet<String> = catalog.blob_hashes()?.into_iter().map(|b| b.0).collect();
        if let Ok(prefixes) = fs::read_dir(root.join("blobs")) {
            for prefix in prefixes.flatten() {
                for f in fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if let Some(hash) = name.strip_suffix(".zst").filter(|h| is_hash(h)) {
                        names.insert(hash.to_string());
                    }
                }
            }
        }
        Ok(names
            .into_iter()
            .filter(|h| !refs.holds(BLOB, h))
            .map(|h| {
                let path = store.path_of(&h);
                Condemned {
                    kind: BLOB.into(),
                    bytes: fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                    name: h,
                    path,
                }
            })
            .collect())
    }
    /// Ops of forgotten runs may still name the blob in their `blob` column (a foreign
    /// key): it is cleared; their `hash_after` and detail still say which bytes it was.
    fn drop_rows(&self, conn: &Connection, item: &Condemned) -> Result<()> {
        conn.prepare_cached("UPDATE ops SET blob = NULL WHERE blob = ?1")?
            .execute([&item.name])?;
        conn.prepare_cached("DELETE FROM blobs WHERE hash = ?1")?
            .execute([&item.name])?;
        Ok(())
    }
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

struct Backups;

impl CollectableKind for Backups {
    fn kind(&self) -> &'static str {
        BACKUP
    }
    fn unheld(&self, _root: &Path, catalog: &Catalog, refs: &References) -> Result<Vec<Condemned>> {
        let mut stmt = catalog
            .connection()
            .prepare("SELECT id, path FROM backups ORDER BY id")?;
        let rows: Vec<(i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter(|(id, _)| !refs.holds(BACKUP, &id.to_string()))
            .map(|(id, path)| Condemned {
                kind: BACKUP.into(),
                name: id.to_string(),
                bytes: folder_bytes(Path::new(&path)),
                path: PathBuf::from(path),
            })
            .collect())
    }
    fn drop_rows(&self, conn: &Connection, item: &Condemned) -> Result<()> {
        if crate::store::retention::packs::knows_packs(conn)? {
            conn.prepare_cached("DELETE FROM backup_objects WHERE backup_id = ?1")?
                .execute([&item.name])?;
        }
        conn.prepare_cached("DELETE FROM backup_entries WHERE backup_id = ?1")?
            .execute([&item.name])?;
        conn.prepare_cached("DELETE FROM backups WHERE id = ?1")?
            .execute([&item.name])?;
        Ok(())
    }
}

struct UnrecordedBackups;

impl CollectableKind for UnrecordedBackups {
    fn kind(&self) -> &'static str {
        UNRECORDED_BACKUP
    }
    /// Only the lock holder prunes, and a backup is recorded before its writer lets the
    /// lock go, so a folder no row names is one a failed or killed run left.
    fn unheld(&self, root: &Path, catalog: &Catalog, _refs: &References) -> Result<Vec<Condemned>> {
        let mut stmt = catalog.connection().prepare("SELECT path FROM backups")?;
        let recorded: HashSet<PathBuf> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .map(|p| p.map(PathBuf::from))
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for entry in fs::read_dir(root.join("backups"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !recorded.contains(&path) {
                out.push(Condemned {
                    kind: UNRECORDED_BACKUP.into(),
                    name: entry.file_name().to_string_lossy().into_owned(),
                    bytes: folder_bytes(&path),
                    path,
                });
            }
        }
        Ok(out)
    }
    fn held_again(&self, _: &Catalog, _: &References, _: &Condemned) -> Result<bool> {
        Ok(false)
    }
}

struct Plans;

impl CollectableKind for Plans {
    fn kind(&self) -> &'static str {
        PLAN
    }
    /// A plan a run applied (its id is among the run's arguments), or one older than a
    /// week: what it was saved for is done or stale. The seal key stays.
    fn unheld(&self, root: &Path, catalog: &Catalog, _refs: &References) -> Result<Vec<Condemned>> {
        let mut stmt = catalog.connection().prepare("SELECT args FROM runs")?;
        let mut applied = HashSet::new();
        for args in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let words: Vec<String> = serde_json::from_str(&args?).unwrap_or_default();
            applied.extend(words);
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(root.join("plans"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .is_ok_and(|t| crate::clock::age_secs(t) > PLAN_KEPT_SECS);
            if applied.contains(id) || old {
                let seal = root.join("plans").join(format!("{id}.seal"));
                out.push(Condemned {
                    kind: PLAN.into(),
                    name: id.to_string(),
                    bytes: meta.len() + fs::metadata(&seal).map(|m| m.len()).unwrap_or(0),
                    path: entry.path(),
                });
            }
        }
        Ok(out)
    }
    fn held_again(&self, _: &Catalog, _: &References, _: &Condemned) -> Result<bool> {
        Ok(false)
    }
}

/// The collectable kind of scheduled runs' reports kept in the store (`reports/`).
pub const REPORT: &str = "report";
/// Stamped reports kept per kind (`inspect`, `run`): a quarter of weekly runs.
pub const REPORTS_KEPT: usize = 13;

struct Reports;

impl CollectableKind for Reports {
    fn kind(&self) -> &'static str {
        REPORT
    }
    /// `reports/<stamp>-<what>.txt` and `.json` past the newest `REPORTS_KEPT` of each
    /// `what`; `latest.*` always stays. A report only tells what a run did, which `log`
    /// keeps for good.
    fn unheld(
        &self,
        root: &Path,
        _catalog: &Catalog,
        _refs: &References,
    ) -> Result<Vec<Condemned>> {
        let dir = root.join("reports");
        let mut by_what: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name
                .strip_suffix(".json")
                .or_else(|| name.strip_suffix(".txt"))
            else {
                continue;
            };
            // `YYYYMMDD-HHMMSS-<what>`: the stamp sorts as time does.
            if let Some((stamp, what)) = stem.get(..15).zip(stem.get(16..))
                && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            {
                by_what
                    .entry(what.to_string())
                    .or_default()
                    .insert(format!("{stamp}-{what}"));
            }
        }
        let mut out = Vec::new();
        for stems in by_what.values() {
            let old = stems.len().saturating_sub(REPORTS_KEPT);
            for stem in stems.iter().take(old) {
                for ext in ["json", "txt"] {
                    let path = dir.join(format!("{stem}.{ext}"));
                    if let Ok(meta) = fs::metadata(&path) {
                        out.push(Condemned {
                            kind: REPORT.into(),
                            name: format!("{stem}.{ext}"),
                            bytes: meta.len(),
                            path,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
    fn held_again(&self, _: &Catalog, _: &References, _: &Condemned) -> Result<bool> {
        Ok(false)
    }
}

/// The kinds in force: packs (condemned whole, or repacked) after backups, whose rows
/// named the objects in them.
fn kinds() -> Vec<Box<dyn CollectableKind>> {
    vec![
        Box::new(Backups),
        Box::new(UnrecordedBackups),
        Box::new(Blobs),
        Box::new(Plans),
        Box::new(Reports),
        Box::new(super::packs::Packs::default()),
        Box::new(super::packs::Dictionaries),
    ]
}

fn kind_named(name: &str) -> Option<Box<dyn CollectableKind>> {
    kinds().into_iter().find(|k| k.kind() == name)
}

pub fn folder_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// What a prune would remove if the runs in `forgotten` were forgotten (reads only): the
/// dry run of `prune` and `forget`, and `inspect`. Includes what an interrupted prune
/// already condemned.
pub fn would_remove(
    root: &Path,
    catalog: &Catalog,
    forgotten: &HashSet<i64>,
) -> Result<Vec<Condemned>> {
    let refs = references::mark(catalog, forgotten)?;
    let mut out = pending(catalog)?;
    let mut seen: HashSet<PathBuf> = out.iter().map(|c| c.path.clone()).collect();
    for kind in kinds() {
        let unheld = kind.unheld(root, catalog, &refs)?;
        for c in unheld.into_iter().chain(kind.would_free_after_decide()) {
            if seen.insert(c.path.clone()) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// What an interrupted prune condemned and did not sweep yet.
fn pending(catalog: &Catalog) -> Result<Vec<Condemned>> {
    if !catalog.knows_forgetting() {
        return Ok(Vec::new());
    }
    let mut stmt = catalog
        .connection()
        .prepare("SELECT kind, name, path, bytes FROM prune_condemned ORDER BY rowid")?;
    let rows = stmt.query_map([], |r| {
        Ok(Condemned {
            kind: r.get(0)?,
            name: r.get(1)?,
            path: PathBuf::from(r.get::<_, String>(2)?),
            bytes: r.get::<_, i64>(3)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[derive(Debug, Default, Serialize)]
pub struct Pruned {
    /// Condemned by an earlier, interrupted prune and swept now.
    pub resumed: usize,
    pub removed: Vec<Condemned>,
    /// Condemned earlier but taken up again since, so kept.
    pub kept_again: usize,
    /// Temporary files a killed run left in the store.
    pub temporaries: usize,
    /// Forgotten runs' op rows replaced by their compacted journals.
    pub compacted: super::compact::Compacted,
}

impl Pruned {
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|c| c.bytes).sum()
    }
}

/// Removes what nothing holds, under the store's lock (held by `store`).
pub fn prune(store: &Store) -> Result<Pruned> {
    let catalog = &store.catalog;
    let mut pruned = Pruned {
        temporaries: store.remove_temp_files().len(),
        ..Default::default()
    };
    let forgotten = super::forgotten_runs(catalog)?;
    let refs = references::mark(catalog, &forgotten)?;
    let earlier = pending(catalog)?;
    pruned.resumed = earlier.len();
    // Keyed on the path: a backup condemned earlier lost its row, so it now also reads
    // as a folder no row names.
    let mut seen: HashSet<PathBuf> = earlier.iter().map(|c| c.path.clone()).collect();
    let mut decided = Vec::new();
    let kinds = kinds();
    for kind in &kinds {
        decided.extend(
            kind.unheld(&store.root, catalog, &refs)?
                .into_iter()
                .filter(|c| seen.insert(c.path.clone())),
        );
    }
    crate::failpoint::hit("prune-marked");
    decide(catalog, &decided, &kinds)?;
    crate::failpoint::hit("prune-decided");
    for kind in &kinds {
        decided.extend(kind.after_decide(store)?);
    }
    for item in earlier.into_iter().chain(decided) {
        let Some(kind) = kind_named(&item.kind) else {
            continue;
        };
        if kind.held_again(catalog, &refs, &item)? {
            unmark(catalog, &item)?;
            pruned.kept_again += 1;
            continue;
        }
        sweep_one(catalog, kind.as_ref(), &item)?;
        pruned.removed.push(item);
    }
    // Last: what the forgotten runs' ops held is freed, so their rows only tell `log`.
    let compaction = super::compact::plan(catalog, &forgotten)?;
    pruned.compacted = super::compact::apply(catalog, &compaction)?;
    Ok(pruned)
}

/// The decision, in one transaction: every item condemned and the rows naming it gone.
fn decide(
    catalog: &Catalog,
    items: &[Condemned],
    kinds: &[Box<dyn CollectableKind>],
) -> Result<()> {
    let tx = catalog.connection().unchecked_transaction()?;
    for item in items {
        let kind = kind_named(&item.kind).expect("condemned by a known kind");
        record_condemned(&tx, item)?;
        kind.drop_rows(&tx, item)?;
    }
    for kind in kinds {
        kind.drop_unheld_rows(&tx)?;
    }
    tx.commit().context("recording what prune removes")?;
    Ok(())
}

/// Names `item` in `prune_condemned`: from this commit on, only the sweep reads it.
pub(super) fn record_condemned(conn: &Connection, item: &Condemned) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO prune_condemned (kind, name, path, bytes, condemned_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        item.kind,
        item.name,
        crate::path_text::recorded(&item.path)?,
        item.bytes as i64,
        crate::clock::now_rfc3339()
    ])?;
    Ok(())
}

fn unmark(catalog: &Catalog, item: &Condemned) -> Result<()> {
    catalog.connection().execute(
        "DELETE FROM prune_condemned WHERE kind = ?1 AND name = ?2",
        params![item.kind, item.name],
    )?;
    Ok(())
}

/// Deletes one condemned item's files, makes that durable, then drops its rows (again:
/// a row recorded since is dropped with the file) and its mark.
fn sweep_one(catalog: &Catalog, kind: &dyn CollectableKind, item: &Condemned) -> Result<()> {
    remove_path(&item.path).with_context(|| format!("removing {}", item.path.display()))?;
    if item.kind == PLAN {
        let seal = item.path.with_extension("seal");
        remove_path(&seal).with_context(|| format!("removing {}", seal.display()))?;
    }
    let _ = crate::fs_atomic::fsync_parent(&item.path);
    crate::failpoint::hit("prune-swept");
    let tx = catalog.connection().unchecked_transaction()?;
    kind.swept_rows(&tx, item)?;
    tx.execute(
        "DELETE FROM prune_condemned WHERE kind = ?1 AND name = ?2",
        params![item.kind, item.name],
    )?;
    tx.commit()?;
    Ok(())
}

/// Removes a file or a folder; one already gone is fine (a sweep killed after it).
fn remove_path(path: &Path) -> std::io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
