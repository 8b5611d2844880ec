//! Reviewed plans, kept in the store by id, so `cleanup --yes --plan <id>` applies exactly
//! what `cleanup --dry-run` showed.

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

use super::Plan;
use crate::error::MaintError;

fn plans_dir(store_root: &Path) -> PathBuf {
    store_root.join("plans")
}

pub fn save_plan(store_root: &Path, plan: &Plan) -> Result<PathBuf> {
    let dir = plans_dir(store_root);
    crate::store::create_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", plan.id));
    crate::fs_atomic::write_atomic_with(&path, Some(0o600), |out| {
        Ok(serde_json::to_writer_pretty(out, plan)?)
    })?;
    Ok(path)
}

pub fn load_plan(store_root: &Path, id: &str) -> Result<Plan> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MaintError::usage(format!(
            "--plan {id}: a plan id is the hex id `cleanup --dry-run` printed"
        ))
        .into());
    }
    let path = plans_dir(store_root).join(format!("{id}.json"));
    let file = std::fs::File::open(&path).map_err(|_| {
        MaintError::refused(format!("no reviewed plan {id} in {}: run `codex-maint cleanup --dry-run` and review it first; nothing was changed", plans_dir(store_root).display()), vec![])
    })?;
    serde_json::from_reader(std::io::BufReader::with_capacity(1 << 16, file))
        .with_context(|| format!("reading {}", path.display()))
}
