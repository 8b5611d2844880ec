//! Retention: `forget` ends undo history, `prune` removes what nothing references
//! (docs/store-format.md "Forget and prune: two phases"). Both act on the store alone.
//!
//! The seam for other stored kinds (the pack layer's chunks and packs): what keeps things
//! alive is a list of `ReferenceSource`s, and what prune may remove a list of
//! `CollectableKind`s; a kind added later adds one of each, and mark, decide and sweep stay
//! as they are.

pub mod budget;
pub mod compact;
pub mod forget;
pub mod packs;
pub mod prune;
pub mod references;
pub mod sizes;

use anyhow::Result;
use std::collections::HashSet;

use super::Catalog;

/// The op kind of a retired session (the cold tier, the user's data rather than undo
/// history). Matched as the catalog's text, so this rule needs nothing from the code that
/// retires: `forget` never drops a run holding one without `--include-retired`.
pub const RETIRE_KIND: &str = "retire_session";

/// Kinds whose op in force leaves the item's only copy in the store: the file or folder
/// left the home, and its blob is all there is of it (a rotated log, an old release).
pub const ONLY_COPY_KINDS: &[&str] = &["store_files", "store_dir"];

/// The runs already forgotten; empty for a catalog from before forgetting existed.
pub fn forgotten_runs(catalog: &Catalog) -> Result<HashSet<i64>> {
    if !catalog.knows_forgetting() {
        return Ok(HashSet::new());
    }
    let mut stmt = catalog
        .connection()
        .prepare("SELECT run_id FROM forgotten_runs")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// When run `run_id` was forgotten, if it was.
pub fn forgotten_at(catalog: &Catalog, run_id: i64) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    if !catalog.knows_forgetting() {
        return Ok(None);
    }
    Ok(catalog
        .connection()
        .query_row(
            "SELECT forgotten_at FROM forgotten_runs WHERE run_id = ?1",
            [run_id],
            |r| r.get(0),
        )
        .optional()?)
}
