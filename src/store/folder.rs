//! What is at the store's path, and how a store comes to be there. The catalog is the only
//! record of what codex-maint changed, so it is never silently new: a store is built under
//! a temporary name and renamed into place whole (a crash leaves no store folder without a
//! catalog), and a folder that holds anything a store writes but no catalog, or an empty or
//! truncated one, is refused by every command rather than read as "nothing changed yet".

use anyhow::{Context, Result};
use rusqlite::Connection;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{CATALOG_FILE, create_private_dir, migrations, restrict_file};
use crate::error::MaintError;
use crate::fs_atomic::{
    fsync_dir, fsync_parent, is_temp_file_name, rename_no_replace, temp_path_beside,
};

/// What may be in a store folder before its catalog: what a dry run and `automation`
/// write without the journal (reviewed plans, the policy and its approval, scheduled-run
/// reports), and our half-built stores. Everything else a store holds (its lock, blobs,
/// backups, handoffs) is written only once a catalog exists, so finding one without a
/// catalog means the catalog was lost.
const BEFORE_A_CATALOG: &[&str] = &["plans", "policy.toml", "policy.approved", "reports"];

#[derive(Debug, PartialEq, Eq)]
pub enum StoreFolder {
    /// Nothing there: no changes were ever recorded at this path.
    Absent,
    /// A folder with nothing in it a catalog would explain (empty, or only plans and
    /// policy): a store not started yet. A folder the user made for it reads this way.
    NotStarted,
    /// A catalog is there (whether it is readable is the catalog check's to say).
    Catalog,
}

/// Looks at `root` without writing anything; refuses (exit 3) what is not a store.
pub fn look_at(root: &Path) -> Result<StoreFolder> {
    let start_over = start_over(root);
    let meta = match fs::metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(StoreFolder::Absent),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(refused(
                root,
                format!(
                    "the store {} cannot be a folder: a folder above it is a file ({e}); nothing was changed. Point --store at a folder",
                    root.display()
                ),
            ));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("looking at the store {}", root.display()));
        }
    };
    if !meta.is_dir() {
        return Err(refused(
            root,
            format!(
                "the store {} is a file, not a folder; nothing was changed. Point --store at a folder (a new one is created where none exists)",
                root.display()
            ),
        ));
    }
    let catalog = root.join(CATALOG_FILE);
    match fs::symlink_metadata(&catalog) {
        Ok(m) if m.len() == 0 => Err(refused(
            root,
            format!(
                "the catalog {} is empty (0 bytes): the history of what codex-maint changed is lost or truncated, and a fresh one would hide that; nothing was changed. Put back a good copy of the catalog; {start_over}",
                catalog.display()
            ),
        )),
        Ok(_) => Ok(StoreFolder::Catalog),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let unexplained = unexplained_entries(root)?;
            if unexplained.is_empty() {
                return Ok(StoreFolder::NotStarted);
            }
            Err(MaintError::refused(
                format!(
                    "the store {} has no catalog ({} is missing) but holds {}: the history of what codex-maint changed is lost, and a fresh catalog would hide it; nothing was changed. Put back the catalog; {start_over}",
                    root.display(),
                    catalog.display(),
                    unexplained.join(", ")
                ),
                unexplained,
            )
            .into())
        }
        Err(e) => Err(refused(
            root,
            format!(
                "the catalog {} cannot be read ({e}); nothing was changed. {start_over}",
                catalog.display()
            ),
        )),
    }
}

/// How to begin again on purpose, said with every refusal of a store without its history.
pub fn start_over(root: &Path) -> String {
    format!(
        "to start over deliberately, move the folder aside (mv {0} {0}.old) or point --store at a new folder",
        root.display()
    )
}

fn refused(root: &Path, message: String) -> anyhow::Error {
    MaintError::refused(message, vec![root.display().to_string()]).into()
}

fn unexplained_entries(root: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !BEFORE_A_CATALOG.contains(&name.as_str()) && !is_temp_file_name(&name) {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// Makes `root` a store with a catalog whose schema is applied, atomically: where no folder
/// exists, the whole store is built beside it and renamed into place; into a folder not
/// started yet, only the finished catalog is renamed. Another codex-maint creating the
/// same store at the same moment wins the rename, and this one's copy is dropped.
pub fn create(root: &Path, found: StoreFolder) -> Result<()> {
    match found {
        StoreFolder::Catalog => Ok(()),
        StoreFolder::Absent => {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent)?;
            }
            if let (Some(parent), Some(name)) = (root.parent(), root.file_name()) {
                remove_abandoned_builds(parent, &name.to_string_lossy());
            }
            let building = temp_path_beside(root);
            create_private_dir(&building)?;
            let _building_lock = hold_build(&building)?;
            let built = build_in(&building).and_then(|()| {
                crate::failpoint::hit("store-built");
                place(&building, root).map_err(anyhow::Error::from)
            });
            if let Err(e) = built {
                let _ = fs::remove_dir_all(&building);
                return Err(e.context(format!("creating the store {}", root.display())));
            }
            Ok(())
        }
        StoreFolder::NotStarted => {
            // Built inside the folder, so the rename stays on its filesystem even when the
            // folder is a mount point; a crash leaves only a temporary name, which a
            // folder not started yet may hold.
            let building = temp_path_beside(&root.join(BUILD_NAME));
            create_private_dir(&building)?;
            let _building_lock = hold_build(&building)?;
            let catalog = root.join(CATALOG_FILE);
            let built = build_in(&building).and_then(|()| {
                crate::failpoint::hit("store-built");
                place(&building.join(CATALOG_FILE), &catalog).map_err(anyhow::Error::from)
            });
            let _ = fs::remove_dir_all(&building);
            built.with_context(|| format!("creating the catalog {}", catalog.display()))
        }
    }
}

/// The name a catalog is built under inside a store folder not started yet.
const BUILD_NAME: &str = "new-store";

/// A build in progress holds an exclusive lock on its own folder, which the kernel drops
/// with the process however it ends: a build folder nobody holds is one a crash left.
fn hold_build(building: &Path) -> Result<fs::File> {
    use fs2::FileExt;
    let folder = fs::File::open(building)
        .with_context(|| format!("opening {} to lock it", building.display()))?;
    folder.lock_exclusive()?;
    Ok(folder)
}

/// Removes, in `folder`, the builds named `name` a crash left behind (named as
/// `temp_path_beside` names them, and held by no process). They hold nothing but a new
/// catalog: a build is renamed into place before anything is recorded in it.
fn remove_abandoned_builds(folder: &Path, name: &str) -> Vec<PathBuf> {
    use fs2::FileExt;
    let suffix = format!("-{name}");
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let ours = is_temp_file_name(&entry_name) && entry_name.ends_with(&suffix);
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let abandoned = fs::File::open(entry.path()).is_ok_and(|f| f.try_lock_exclusive().is_ok());
        if abandoned && fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// The builds a crash left inside the store `root` (a folder not started yet builds its
/// catalog there): called by the lock holder with the rest of the store's temporaries.
pub fn remove_abandoned_builds_inside(root: &Path) -> Vec<PathBuf> {
    remove_abandoned_builds(root, BUILD_NAME)
}

/// A rename that leaves whatever another process put at `to` first, and drops ours.
fn place(from: &Path, to: &Path) -> io::Result<()> {
    match rename_no_replace(from, to) {
        Ok(()) => fsync_parent(to),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The catalog (schema applied, WAL mode) and the lock file, in `dir`, durable.
fn build_in(dir: &Path) -> Result<()> {
    let path = dir.join(CATALOG_FILE);
    {
        let mut conn = Connection::open(&path)
            .with_context(|| format!("creating the catalog {}", path.display()))?;
        restrict_file(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrations::apply_pending(&mut conn)?;
    }
    let lock: PathBuf = dir.join("lock");
    fs::File::create(&lock)?;
    restrict_file(&lock)?;
    fs::File::open(&path)?.sync_all()?;
    fsync_dir(dir)?;
    Ok(())
}
