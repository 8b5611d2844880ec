//! One module per command: each composes the layers below into a `Report`.

pub mod archive;
pub mod automation;
pub mod browse;
pub mod cleanup;
pub mod decompress;
pub mod forget;
pub mod handoff;
pub mod inspect;
pub mod log;
pub mod prune;
pub mod recover;
pub mod repair;
pub mod sessions;
pub mod skill;
pub mod undo;
pub mod verify;

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::error::MaintError;
use crate::home::CodexHome;
use crate::ops::RecoveredOp;
use crate::store::Store;

pub use crate::home::relative_to;
pub use crate::write_gate::{
    STOPPED_PART_WAY, confirm, describe_recovery, refuse_if_codex_running,
};

/// What every command gets from the command line, already resolved.
pub struct Context {
    pub home_flag: Option<PathBuf>,
    pub store_root: PathBuf,
    pub json: bool,
    /// The words the user typed, recorded with each run.
    pub argv: Vec<String>,
}

impl Context {
    pub fn locate_home(&self) -> Result<CodexHome> {
        let home = CodexHome::locate(self.home_flag.as_deref())?;
        self.ensure_store_outside(&home)?;
        Ok(home)
    }

    /// The store must live outside the home it protects, or a backup of the home would
    /// contain itself and an archive move could land in what it archives.
    fn ensure_store_outside(&self, home: &CodexHome) -> Result<()> {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let store = nearest_existing(&self.store_root);
        if canonical(&store).starts_with(canonical(&home.root)) {
            return Err(MaintError::usage(format!(
                "the store {} is inside the Codex home {}; choose a store outside it (--store or CODEX_MAINT_STORE)",
                self.store_root.display(),
                home.display()
            ))
            .into());
        }
        Ok(())
    }

    /// Opens the store for a dry run's reading: no lock, nothing recovered or written,
    /// the catalog read as it is; `None` when there is no store yet.
    pub fn open_store_read_only(&self) -> Result<Option<Store>> {
        Store::open_read_only(&self.store_root)
    }

    /// `write_gate::open_store_and_recover` with this command's store.
    pub fn open_store_and_recover(&self, home: &CodexHome) -> Result<(Store, Vec<RecoveredOp>)> {
        crate::write_gate::open_store_and_recover(home, &self.store_root)
    }
}

fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.to_path_buf())
}

/// `--store`, else `$CODEX_MAINT_STORE`, else `~/.codex-maintenance`.
pub fn resolve_store_root(flag: Option<&Path>) -> Result<PathBuf> {
    let root = match flag {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("CODEX_MAINT_STORE").filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => crate::home::home_dir()
                .ok_or_else(|| {
                    MaintError::usage(
                        "cannot place the store: no --store, no $CODEX_MAINT_STORE, and no $HOME",
                    )
                })?
                .join(".codex-maintenance"),
        },
    };
    Ok(if root.is_relative() {
        std::env::current_dir()?.join(root)
    } else {
        root
    })
}

/// The session codex-maint's ops know by this id or unique prefix (ids are lowercase).
pub fn session_in_catalog(catalog: &crate::store::Catalog, text: &str) -> Result<String> {
    let wanted = text.trim().to_ascii_lowercase();
    if wanted.is_empty() {
        return Err(MaintError::usage("name a session: its id or a unique prefix").into());
    }
    let found = catalog.thread_ids_starting_with(&wanted)?;
    if found.contains(&wanted) {
        return Ok(wanted);
    }
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one id")),
        0 => Err(MaintError::usage(format!(
            "codex-maint has never moved a session {text}; see `codex-maint log`"
        ))
        .into()),
        n => Err(MaintError {
            kind: crate::error::ExitKind::Usage,
            message: format!("{text} names {n} sessions; give more of the id"),
            details: found,
        }
        .into()),
    }
}
