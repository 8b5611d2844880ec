//! Carrying out a reviewed plan: the actions that still hold, after the Codex gate and the
//! backup, each as a journaled op; then the verification, and the report of what was done.

use anyhow::Result;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::report::{kept_lines, observed, plan_report, verb};
use super::verify::{sizes, verify_after};
use super::{Action, CleanupArgs, Invocation, Plan, Planned};
use crate::clock::human_bytes;
use crate::error::{ExitKind, MaintError};
use crate::home::{CodexHome, relative_to};
use crate::ops::{OpKind, Run, config_edit, state_backup, store_dir, store_files, worktree_move};
use crate::report::{self, Report};
use crate::survey::{self, DatabaseDepth, InspectData};
use crate::write_gate::{confirm, describe_recovery, refuse_if_codex_running};

/// Items a text report lists one by one; the rest are counted (every one is in --json).
const SHOWN_IN_TEXT: usize = 50;

/// Applies the reviewed actions that still hold (after the Codex gate and the backup),
/// verifies, and reports. `ask` shows the plan and waits for a yes first.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    at: &Invocation<'_>,
    home: &CodexHome,
    args: &CleanupArgs,
    before: &InspectData,
    planned: Planned,
    reviewed: Plan,
    ask: bool,
    handoffs: &HashSet<String>,
) -> Result<Report> {
    let Planned {
        plan, index_path, ..
    } = planned;
    let current: HashSet<String> = plan.actions.iter().map(|a| a.id.clone()).collect();
    let reviewed_ids: HashSet<&str> = reviewed.actions.iter().map(|a| a.id.as_str()).collect();
    let to_do: Vec<&Action> = reviewed
        .actions
        .iter()
        .filter(|a| current.contains(a.id.as_str()))
        .collect();
    let no_longer_hold: Vec<&Action> = reviewed
        .actions
        .iter()
        .filter(|a| !current.contains(a.id.as_str()))
        .collect();
    let unreviewed: Vec<Action> = plan
        .actions
        .iter()
        .filter(|a| !reviewed_ids.contains(a.id.as_str()))
        .cloned()
        .collect();

    refuse_if_codex_running(home)?;
    if to_do.is_empty() {
        let mut r = plan_report(home, &plan, before);
        if let Some(proposed) = r.sections.iter_mut().find(|s| s.title == report::PROPOSED) {
            proposed.items.clear();
        }
        r.push(report::COMPLETED, "nothing: no reviewed action still holds");
        r.push(report::BACKUPS, "not created: nothing to change");
        r.push(report::VERIFICATION, "no files changed");
        r.data = json!({ "dry_run": false, "run_id": null });
        plan.put_in(&mut r, "plan")?;
        return Ok(r);
    }
    if ask {
        use std::io::IsTerminal;
        // `--yes` alone is refused, so the generic "rerun with --yes" would mislead here.
        if !std::io::stdin().is_terminal() {
            return Err(MaintError::refused(
                format!(
                    "cleanup applies only a reviewed plan when no one is at a terminal to confirm: run `codex-maint cleanup --dry-run` to review and save the plan, then `codex-maint cleanup --yes --plan <id>` with the id it prints ({} as things are now); nothing was changed",
                    plan.id
                ),
                vec![],
            )
            .into());
        }
        let preview = plan_report(home, &reviewed, before).render_text();
        eprint!("{preview}");
        confirm(
            &format!(
                "Apply {} actions ({})?",
                to_do.len(),
                human_bytes(to_do.iter().map(|a| a.bytes).sum())
            ),
            false,
        )?;
    }

    // The plan as it is now stays for the report, on disk: with the reviewed plan beside
    // it, two lists of 100,000 actions would be most of the run's memory.
    let spilled = plan.spill()?;
    let plan = Plan {
        actions: Vec::new(),
        ..plan
    };

    let (store, recovered) = crate::write_gate::open_store_and_recover(home, at.store_root)?;
    let run = Run::begin(&store, "cleanup", at.argv, &home.root, None)?;
    let run_id = run.id;
    let mut r = Report::spec_shaped("cleanup", "cleanup");
    describe_recovery(&mut r, &recovered);
    observed(&mut r, home, before);

    // A database this run moves whole is backed up by its own blob, not copied again.
    let moved_whole: Vec<PathBuf> = to_do
        .iter()
        .filter(|a| a.kind == OpKind::StoreFiles && a.path.ends_with(".sqlite"))
        .map(|a| PathBuf::from(&a.path))
        .collect();
    let backup = match state_backup::create(&store, home, Some(run_id), &moved_whole) {
        Ok(b) => b,
        Err(e) => {
            run.finish("failed")?;
            return Err(e.context("the backup failed, so cleanup stopped before changing anything"));
        }
    };
    r.push(
        report::BACKUPS,
        format!(
            "backup {}: {} ({} entries, {}), manifest {}",
            backup.info.id,
            backup.info.archive.display(),
            backup.info.entries,
            human_bytes(backup.info.bytes),
            backup.info.manifest.display()
        ),
    );
    r.push(report::VERIFICATION, format!("backup read back against its manifest: ok; databases copied through the backup API and checked: {}", backup.databases_checked.join(", ")));

    let mut done: Vec<(&Action, i64)> = Vec::new();
    let is_transcript_action = |a: &Action| a.category == "sessions" || a.category == "compress";
    let transcript_actions: Vec<&Action> = to_do
        .iter()
        .copied()
        .filter(|a| is_transcript_action(a))
        .collect();
    let (sessions_done, mut failure) =
        super::apply_sessions::execute(&run, home, index_path.as_deref(), &transcript_actions)?;
    done.extend(sessions_done);
    for a in to_do.iter().copied().filter(|a| !is_transcript_action(a)) {
        if failure.is_some() {
            break;
        }
        let path = Path::new(&a.path);
        let result = match a.kind {
            OpKind::StoreFiles => store_files::execute(&run, &a.category, path),
            OpKind::StoreDir => store_dir::execute(&run, &a.category, path),
            OpKind::MoveWorktree => {
                let main = a
                    .main_repository
                    .as_deref()
                    .map(PathBuf::from)
                    .unwrap_or_default();
                worktree_move::execute(
                    &run,
                    path,
                    Path::new(a.target.as_deref().unwrap_or_default()),
                    &main,
                    None,
                    Vec::new(),
                )
            }
            OpKind::EditConfig => {
                config_edit::execute(&run, path, &a.projects).map(|id| id.unwrap_or(0))
            }
            other => Err(anyhow::anyhow!(
                "a {other} action is not applied one by one"
            )),
        };
        match result {
            Ok(id) => done.push((a, id)),
            Err(e) => failure = Some(e.context(format!("{} {}", a.kind, a.path))),
        }
    }
    run.finish(if failure.is_some() { "failed" } else { "done" })?;

    let archived: Vec<&(&Action, i64)> = done
        .iter()
        .filter(|(a, _)| a.category == "sessions")
        .collect();
    if archived.len() > 10 {
        r.push(
            report::COMPLETED,
            format!(
                "archived {} sessions ({}) to archived_sessions/ with their thread rows (ops {}-{}; all in --json)",
                archived.len(),
                human_bytes(archived.iter().map(|(a, _)| a.bytes).sum()),
                archived.first().map_or(0, |x| x.1),
                archived.last().map_or(0, |x| x.1)
            ),
        );
    }
    // A person reads the largest; every one is in --json.
    let mut shown = crate::report::Largest::new(SHOWN_IN_TEXT);
    for (a, op) in done
        .iter()
        .filter(|(a, _)| archived.len() <= 10 || a.category != "sessions")
    {
        shown.offer(a.bytes, || {
            format!(
                "{} {} ({}) (op {op})",
                verb(a),
                relative_to(home, Path::new(&a.path)),
                human_bytes(a.bytes)
            )
        });
    }
    r.extend(
        report::COMPLETED,
        shown.into_lines(|more| {
            format!("... and {more} more actions done (every one is in --json)")
        }),
    );
    for a in no_longer_hold.iter().take(SHOWN_IN_TEXT) {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "{} - skipped: it no longer holds (changed since the plan was reviewed)",
                relative_to(home, Path::new(&a.path))
            ),
        );
    }
    for a in unreviewed.iter().take(SHOWN_IN_TEXT) {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "{} - not in the reviewed plan, not done: {}",
                relative_to(home, Path::new(&a.path)),
                a.reason
            ),
        );
    }
    for (count, what) in [
        (no_longer_hold.len(), "skipped because they no longer hold"),
        (unreviewed.len(), "not in the reviewed plan"),
    ] {
        if count > SHOWN_IN_TEXT {
            r.push(
                report::NOT_TOUCHED,
                format!(
                    "... and {} more {what} (every one is in --json)",
                    count - SHOWN_IN_TEXT
                ),
            );
        }
    }
    kept_lines(&mut r, home, &plan);
    held_in_store_lines(&mut r, &store, home, &backup.info, &done);
    r.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {} (every op's paths, hashes and old thread rows)",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );

    let after = survey::gather(home, &args.inspect, handoffs, DatabaseDepth::Full);
    let problems = verify_after(
        &mut r,
        home,
        &store,
        run_id,
        &backup.info.dir,
        before,
        &after,
    )?;
    if let Some(e) = &failure {
        r.push(
            report::RESIDUAL_RISK,
            format!("the run stopped early: {e:#}"),
        );
    }
    r.push(
        report::RESIDUAL_RISK,
        format!("to take it all back: codex-maint undo --run {run_id}"),
    );
    let mut done_list = crate::report::LongListWriter::new()?;
    for (a, op) in &done {
        done_list.push(&json!({ "action": a, "op_id": op }))?;
    }
    r.data = json!({
        "dry_run": false,
        "run_id": run_id,
        "reviewed_plan": reviewed.id,
        "skipped_no_longer_hold": no_longer_hold,
        "not_in_reviewed_plan": unreviewed,
        "backup": backup.info,
        "verification_problems": problems,
        "sizes": sizes(before, &after),
    });
    spilled.put_in(&mut r, "plan");
    r.attach_list("done", done_list.finish()?);
    if !problems.is_empty() {
        r.exit_code = ExitKind::VerifyFailed.code();
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "cleanup run {run_id} stopped after {} actions (they can be undone); {}",
            done.len(),
            crate::write_gate::STOPPED_PART_WAY
        )));
    }
    Ok(r)
}

/// Where the backup of each database this run moved whole is: the blob of its op, named
/// by the hash the manifest recorded; or, when the run stopped before that op, the
/// database itself, still in place.
fn held_in_store_lines(
    r: &mut Report,
    store: &crate::store::Store,
    home: &CodexHome,
    info: &crate::store::backup::BackupInfo,
    done: &[(&Action, i64)],
) {
    for held in &info.held_in_store {
        let path = home.root.join(&held.path);
        let op = done.iter().find(|(a, _)| Path::new(&a.path) == path);
        let blob = op.and_then(|(_, id)| store.catalog.op(*id).ok().flatten()?.blob);
        let line = match (op, blob) {
            (Some((_, id)), Some(blob)) if blob == held.hash => format!(
                "{}: not copied into backup {}; this run moved it whole into the store, and that copy is its backup (op {id}, blob {blob}, the hash in the manifest; `codex-maint undo --run {}` brings it back)",
                held.path,
                info.id,
                held.held_in_store
                    .as_ref()
                    .and_then(|h| h.run_id)
                    .unwrap_or_default()
            ),
            (Some((_, id)), Some(blob)) => format!(
                "{}: not copied into backup {}; this run moved it whole into the store (op {id}, blob {blob}), but it changed after the manifest recorded it as {}",
                held.path, info.id, held.hash
            ),
            _ => format!(
                "{}: not copied into backup {}, as this run was to move it whole into the store; the run stopped first, so it is still in place",
                held.path, info.id
            ),
        };
        r.push(report::BACKUPS, line);
    }
}
