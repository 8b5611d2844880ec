//! What stands between a change and its first write to a Codex home: Codex must be closed,
//! a person must have said yes, and the store must be open with any interrupted run brought
//! to rest. Every mutating command and the scheduled cleanup pass through here.

use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::error::MaintError;
use crate::home::{CodexHome, processes};
use crate::ops::RecoveredOp;
use crate::report::Report;
use crate::store::Store;

/// Opens the store for writing and first brings any interrupted run to rest. Codex is
/// asked about again here, right before anything is written: a prompt or a long plan
/// may lie between the first check and this moment.
/// Said whenever a writing run stops part way (a full disk, a failed step): what it did is
/// journaled and stands, what it did not do is untouched, and the step it stopped in is left
/// for recovery rather than guessed about here.
pub const STOPPED_PART_WAY: &str = "nothing after the failed step was done, and what that step had begun was taken back (should any of it be left part way, `codex-maint recover`, run first by every writing command, settles it)";

pub fn open_store_and_recover(
    home: &CodexHome,
    store_root: &Path,
) -> Result<(Store, Vec<RecoveredOp>)> {
    refuse_if_codex_running(home)?;
    let home_lock = crate::home_lock::HomeLock::acquire(&home.root)?;
    let store = Store::open_for_write_in(store_root, home_lock)?;
    let guard = crate::home_guard::HomeGuard::new(&home.root);
    let recovered = crate::ops::recover_all(&store, &guard)?;
    Ok((store, recovered))
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
