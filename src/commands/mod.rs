//! One module per command: each composes the layers below into a `Report`.

pub mod archive;
pub mod automation;
pub mod cleanup;
pub mod decompress;
pub mod handoff;
pub mod inspect;
pub mod log;
pub mod recover;
pub mod repair;
pub mod skill;
pub mod undo;
pub mod verify;

use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::error::MaintError;
use crate::home::{CodexHome, processes};
use crate::ops::RecoveredOp;
use crate::report::Report;
use crate::store::Store;

/// Said whenever a writing run stops part way (a full disk, a failed step): what it did is
/// journaled and stands, what it did not do is untouched, and the step it stopped in is left
/// for recovery rather than guessed about here.
pub const STOPPED_PART_WAY: &str = "nothing after the failed step was done; `codex-maint recover` (run first by every writing command) settles that step";

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

    /// Opens the store for writing and first brings any interrupted run to rest. Codex is
    /// asked about again here, right before anything is written: a prompt or a long plan
    /// may lie between the first check and this moment.
    pub fn open_store_and_recover(&self, home: &CodexHome) -> Result<(Store, Vec<RecoveredOp>)> {
        refuse_if_codex_running(home)?;
        let store = Store::open_for_write(&self.store_root)?;
        let guard = crate::home_guard::HomeGuard::new(&home.root);
        let recovered = crate::ops::recover_all(&store, &guard)?;
        Ok((store, recovered))
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

/// SPEC.md: while Codex runs, nothing that mutates may proceed. Names each process and how
/// to stop it; kills nothing.
pub fn refuse_if_codex_running(home: &CodexHome) -> Result<()> {
    let running = processes::blocking(home).map_err(|e| {
        MaintError::refused(
            format!("cannot tell whether Codex is running ({e:#}); nothing was changed"),
            vec![],
        )
    })?;
    if running.is_empty() {
        return Ok(());
    }
    Err(MaintError::refused(
        format!(
            "Codex is running ({} process{}) and may be writing {}; close it first, nothing was changed",
            running.len(),
            if running.len() == 1 { "" } else { "es" },
            home.display()
        ),
        running.iter().map(processes::describe).collect(),
    )
    .into())
}

/// A plan runs only after a yes: `--yes`, or a typed `y` at a terminal. Without a terminal
/// and without `--yes` the plan is refused, never assumed.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(MaintError::refused(
            format!("{question} needs confirmation: rerun with --yes to apply, or --dry-run to review; nothing was changed"),
            vec![],
        )
        .into());
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        Ok(())
    } else {
        Err(MaintError::refused("not confirmed; nothing was changed", vec![]).into())
    }
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

/// Lines for a report about what recovery did before this command ran.
pub fn describe_recovery(report: &mut Report, recovered: &[RecoveredOp]) {
    for r in recovered {
        let what = match &r.result {
            crate::ops::Recovered::RolledForward => "finished".to_string(),
            crate::ops::Recovered::RolledBack => "rolled back".to_string(),
            crate::ops::Recovered::Stuck(why) => format!("left for you to decide: {why}"),
        };
        report.push(
            crate::report::COMPLETED,
            format!(
                "recovered interrupted op {} (run {}, {}): {what}",
                r.op_id, r.run_id, r.kind
            ),
        );
        if matches!(r.result, crate::ops::Recovered::Stuck(_)) {
            report.push(
                crate::report::RESIDUAL_RISK,
                format!("op {} could not be recovered automatically", r.op_id),
            );
        }
    }
}

pub fn relative_to(home: &CodexHome, path: &Path) -> String {
    path.strip_prefix(&home.root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}
