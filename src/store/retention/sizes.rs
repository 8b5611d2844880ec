//! The store's size by kind, as `inspect` and the budget see it: what is on disk, each
//! file counted once under the kind that owns it.

use serde::Serialize;
use std::path::Path;

use super::prune::folder_bytes;

#[derive(Debug, Default, Clone, Serialize)]
pub struct StoreSizes {
    pub backups: u64,
    pub blobs: u64,
    /// Retired sessions (the cold tier): 0 until the pack layer holds them; see
    /// `retired_bytes`.
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

/// The hook for the cold tier: bytes of packs that hold retired sessions. The pack layer
/// fills this in; until then nothing is retired.
pub fn retired_bytes(_root: &Path) -> u64 {
    0
}

pub fn measure(root: &Path) -> StoreSizes {
    let file = |name: &str| {
        std::fs::metadata(root.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut s = StoreSizes {
        backups: folder_bytes(&root.join("backups")),
        blobs: folder_bytes(&root.join("blobs")),
        retired_sessions: retired_bytes(root),
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
