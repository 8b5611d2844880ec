//! The store's size by kind, as `inspect` and the budget see it: what is on disk, each
//! file counted once under the kind that owns it.

use serde::Serialize;
use std::path::Path;

use super::prune::folder_bytes;

#[derive(Debug, Default, Clone, Serialize)]
pub struct StoreSizes {
    /// Backup folders, and the share of pack blocks their databases' pages take.
    pub backups: u64,
    pub blobs: u64,
    /// Retired sessions (the cold tier): their share of pack blocks (`retired_bytes`).
    pub retired_sessions: u64,
    /// `catalog.sqlite` with its `-wal` and `-shm`.
    pub catalog: u64,
    pub plans: u64,
    /// Reports of scheduled runs kept in the store (`reports/`).
    pub reports: u64,
    /// Handoffs, the policy, the lock, and anything else.
    pub other: u64,
    pub total: u64,
}

/// Bytes of pack blocks that hold retired sessions: each chunk's share of its block's
/// compressed length (its plain length over the block's), each distinct chunk counted
/// once. Pack headers, indexes and dictionaries are not split: they count as `other`.
pub fn retired_bytes(root: &Path) -> u64 {
    pack_shares(root).0
}

/// (retired sessions, backups): shares of pack blocks; a chunk both use counts as retired.
fn pack_shares(root: &Path) -> (u64, u64) {
    let shares = || -> anyhow::Result<(u64, u64)> {
        let Some(catalog) = crate::store::open_read_only(root)? else {
            return Ok((0, 0));
        };
        let conn = catalog.connection();
        if !super::packs::knows_packs(conn)? {
            return Ok((0, 0));
        }
        let mut seen = std::collections::HashSet::new();
        // Retire ops in force, their lean details expanded (the transcript's object is
        // stored as `=hash_before`); a field a hand-written op lacks is skipped.
        let not_forgotten = if catalog.knows_forgetting() {
            "AND run_id NOT IN (SELECT run_id FROM forgotten_runs)"
        } else {
            ""
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT detail, src, dst, hash_before FROM ops
             WHERE kind = 'retire_session' AND state = 'applied' AND reverted_by IS NULL
               {not_forgotten}"
        ))?;
        let mut rows = stmt.query([])?;
        let mut retired: Vec<String> = Vec::new();
        while let Some(row) = rows.next()? {
            let detail = crate::store::catalog::full_detail(
                &row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?.as_deref(),
                row.get::<_, Option<String>>(3)?.as_deref(),
                row.get(0)?,
            );
            let value: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
            for field in [&value["transcript"]["object"], &value["rows_object"]] {
                retired.extend(field.as_str().map(str::to_string));
            }
        }
        let retired = crate::store::pack::collect::packed_bytes_of(conn, retired, &mut seen)?;
        let backups: Vec<String> = conn
            .prepare("SELECT DISTINCT object FROM backup_objects")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let backups = crate::store::pack::collect::packed_bytes_of(conn, backups, &mut seen)?;
        Ok((retired, backups))
    };
    shares().unwrap_or((0, 0))
}

pub fn measure(root: &Path) -> StoreSizes {
    let file = |name: &str| {
        std::fs::metadata(root.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let (retired_sessions, packed_backups) = pack_shares(root);
    let mut s = StoreSizes {
        backups: folder_bytes(&root.join("backups")) + packed_backups,
        blobs: folder_bytes(&root.join("blobs")),
        retired_sessions,
        catalog: ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| file(&format!("{}{suffix}", crate::store::CATALOG_FILE)))
            .sum(),
        plans: folder_bytes(&root.join("plans")),
        reports: folder_bytes(&root.join("reports")),
        ..Default::default()
    };
    s.total = folder_bytes(root);
    s.other = s
        .total
        .saturating_sub(s.backups + s.blobs + s.retired_sessions + s.catalog + s.plans + s.reports);
    s
}

/// The store as `inspect` reports it: its size by kind, and what `prune` would free now.
#[derive(Debug, Serialize)]
pub struct StoreSummary {
    pub sizes: StoreSizes,
    pub prune_would_free: u64,
    pub prune_would_remove: usize,
    pub runs_forgotten: usize,
}

/// `None` when there is no store yet. Reads only: the catalog is opened read-only.
pub fn summary(root: &Path) -> anyhow::Result<Option<StoreSummary>> {
    let Some(catalog) = crate::store::open_read_only(root)? else {
        return Ok(None);
    };
    let forgotten = super::forgotten_runs(&catalog)?;
    let items = super::prune::would_remove(root, &catalog, &forgotten)?;
    Ok(Some(StoreSummary {
        sizes: measure(root),
        prune_would_free: items.iter().map(|c| c.bytes).sum(),
        prune_would_remove: items.len(),
        runs_forgotten: forgotten.len(),
    }))
}
