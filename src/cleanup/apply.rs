//! Carrying out a reviewed plan: the actions that still hold, after the Codex gate and the
//! backup, each as a journaled op; then the verification, and the report of what was done.

use anyhow::Result;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::action_list::is_per_transcript;
use super::report::{kept_lines, observed, plan_report, verb};
use super::verify::{sizes, verify_after};
use super::{Action, CleanupArgs, HomeBytes, Invocation, Plan, Planned, plan_frees};
use crate::clock::human_bytes;
use crate::error::{ExitKind, MaintError};
use crate::home::{CodexHome, relative_to};
use crate::ops::{
    OpKind, Outcome, Run, config_edit, database_reclaim, state_backup, store_dir, store_files,
    worktree_move,
};
use crate::report::{self, Largest, LongListWriter, Report};
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
    // Both plans are on disk; what is compared in memory is their ids.
    let current = &plan.actions;
    let mut to_do = (0u64, 0u64);
    let mut no_longer_hold = Mismatches::new()?;
    for a in reviewed.actions.each()? {
        let a = a?;
        if current.holds(&a.id) {
            to_do.0 += 1;
            to_do.1 += a.bytes;
        } else {
            no_longer_hold.add(a)?;
        }
    }
    let mut unreviewed = Mismatches::new()?;
    for a in current.each()? {
        let a = a?;
        if !reviewed.actions.holds(&a.id) {
            unreviewed.add(a)?;
        }
    }

    refuse_if_codex_running(home)?;
    if to_do.0 == 0 {
        let mut r = plan_report(home, &plan, before)?;
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
        let preview = plan_report(home, &reviewed, before)?.render_text();
        eprint!("{preview}");
        confirm(
            &format!("Apply {} actions ({})?", to_do.0, human_bytes(to_do.1)),
            false,
        )?;
    }
    let spilled = plan.spill()?;

    let (store, recovered) = crate::write_gate::open_store_and_recover(home, at.store_root)?;
    let run = Run::begin(&store, "cleanup", at.argv, &home.root, None)?;
    let run_id = run.id;
    let mut r = Report::spec_shaped("cleanup", "cleanup");
    describe_recovery(&mut r, &recovered);
    observed(&mut r, home, before);

    // A database this run moves whole is backed up by its own blob, not copied again.
    let moved_whole: Vec<PathBuf> = reviewed
        .actions
        .few()
        .iter()
        .filter(|a| current.holds(&a.id))
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

    let mut done = Done::new()?;
    let mut left_to_codex = Vec::new();
    let mut failure = super::apply_sessions::execute(
        &run,
        home,
        index_path.as_deref(),
        &reviewed.actions,
        &|a| current.holds(&a.id),
        &mut |a, outcome| match outcome {
            Outcome::Done(op) => done.add(home, a, *op),
            left => {
                left_to_codex.extend(left.left_line(Path::new(&a.path)));
                Ok(())
            }
        },
    )?;
    r.extend(report::COMPLETED, left_to_codex);
    for a in reviewed
        .actions
        .few()
        .iter()
        .filter(|a| current.holds(&a.id))
    {
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
            OpKind::ReclaimDatabase => match database_reclaim::execute(&run, path) {
                Ok(done) if done.nothing_free => {
                    r.push(
                        report::COMPLETED,
                        format!(
                            "nothing to reclaim in {}: no free page when it ran (op {} rolled back, nothing changed)",
                            relative_to(home, path),
                            done.op_id
                        ),
                    );
                    continue;
                }
                Ok(done) => {
                    r.push(
                        report::COMPLETED,
                        format!("reclaimed {}", done.detail.line(done.op_id)),
                    );
                    Ok(done.op_id)
                }
                Err(e) => Err(e),
            },
            other => Err(anyhow::anyhow!(
                "a {other} action is not applied one by one"
            )),
        };
        match result {
            Ok(id) => done.add(home, a, id)?,
            Err(e) => failure = Some(e.context(format!("{} {}", a.kind, a.path))),
        }
    }
    if let Err(finishing) = run.finish(if failure.is_some() { "failed" } else { "done" }) {
        // A store that filled in the failed step has no room to mark the run either; the
        // failure is what the user must hear (the run is settled by the next `recover`).
        let Some(e) = failure else {
            return Err(finishing);
        };
        return Err(e.context(format!(
            "cleanup run {run_id} stopped after {} actions (they can be undone); {}",
            done.count,
            crate::write_gate::STOPPED_PART_WAY
        )));
    }

    r.extend(report::COMPLETED, done.lines());
    no_longer_hold.lines(&mut r, home, "skipped because they no longer hold", |_| {
        "skipped: it no longer holds (changed since the plan was reviewed)".into()
    });
    unreviewed.lines(&mut r, home, "not in the reviewed plan", |a| {
        format!("not in the reviewed plan, not done: {}", a.reason)
    });
    kept_lines(&mut r, home, &plan);
    held_in_store_lines(&mut r, &store, home, &backup.info, &done.few);
    r.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {} (every op's paths, hashes and old thread rows)",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );

    // Both plans (each action's id kept sorted, 82,529 of them at 100,000 sessions) go
    // before the survey after the run, which is this command's peak.
    let planned_frees = plan_frees(&reviewed, before);
    let reviewed_id = reviewed.id.clone();
    drop((reviewed, plan));
    let after = survey::gather(home, &args.inspect, handoffs, DatabaseDepth::Full);
    let home_bytes = HomeBytes::measured(before, &after);
    r.push(report::COMPLETED, home_bytes.line(&planned_frees));
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
    r.data = json!({
        "dry_run": false,
        "run_id": run_id,
        "reviewed_plan": reviewed_id,
        "backup": backup.info,
        "verification_problems": problems,
        "sizes": sizes(before, &after),
        "home_bytes": home_bytes,
    });
    spilled.put_in(&mut r, "plan");
    let done_count = done.count;
    r.attach_list("done", done.list.finish()?);
    r.attach_list("skipped_no_longer_hold", no_longer_hold.list.finish()?);
    r.attach_list("not_in_reviewed_plan", unreviewed.list.finish()?);
    if !problems.is_empty() {
        r.exit_code = ExitKind::VerifyFailed.code();
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "cleanup run {run_id} stopped after {} actions (they can be undone); {}",
            done_count,
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
    done: &[(Action, i64)],
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

/// Reviewed actions not done, or current ones not reviewed: counted, the first few kept
/// for the text, every one streamed to `--json`.
struct Mismatches {
    count: u64,
    first: Vec<Action>,
    list: LongListWriter,
}

impl Mismatches {
    fn new() -> Result<Mismatches> {
        Ok(Mismatches {
            count: 0,
            first: Vec::new(),
            list: LongListWriter::new()?,
        })
    }

    fn add(&mut self, a: Action) -> Result<()> {
        self.list.push(&a)?;
        self.count += 1;
        if self.first.len() < SHOWN_IN_TEXT {
            self.first.push(a);
        }
        Ok(())
    }

    fn lines(&self, r: &mut Report, home: &CodexHome, what: &str, why: impl Fn(&Action) -> String) {
        for a in &self.first {
            r.push(
                report::NOT_TOUCHED,
                format!("{} - {}", relative_to(home, Path::new(&a.path)), why(a)),
            );
        }
        if self.count > SHOWN_IN_TEXT as u64 {
            r.push(
                report::NOT_TOUCHED,
                format!(
                    "... and {} more {what} (every one is in --json)",
                    self.count - SHOWN_IN_TEXT as u64
                ),
            );
        }
    }
}

/// The actions done, as the report tells them: archived sessions by their count when there
/// are many, the largest of the rest one by one, every one streamed to `--json`; the few
/// that are not per transcript kept whole, for the backup's lines.
struct Done {
    count: u64,
    list: LongListWriter,
    sessions: u64,
    /// Of them, archived straight into compressed form.
    sessions_compressed: u64,
    session_bytes: u64,
    session_ops: Option<(i64, i64)>,
    /// The first sessions' lines, shown one by one only when there are few.
    first_sessions: Vec<(u64, String)>,
    largest_others: Largest,
    few: Vec<(Action, i64)>,
}

/// Up to this many archived sessions are listed one by one; more are counted in one line.
const SESSIONS_LISTED: usize = 10;

impl Done {
    fn new() -> Result<Done> {
        Ok(Done {
            count: 0,
            list: LongListWriter::new()?,
            sessions: 0,
            sessions_compressed: 0,
            session_bytes: 0,
            session_ops: None,
            first_sessions: Vec::new(),
            largest_others: Largest::new(SHOWN_IN_TEXT),
            few: Vec::new(),
        })
    }

    fn add(&mut self, home: &CodexHome, a: &Action, op: i64) -> Result<()> {
        self.list.push(&json!({ "action": a, "op_id": op }))?;
        self.count += 1;
        let line = || {
            format!(
                "{} {} ({}) (op {op})",
                verb(a),
                relative_to(home, Path::new(&a.path)),
                human_bytes(a.bytes)
            )
        };
        if a.category == "sessions" {
            self.sessions += 1;
            self.sessions_compressed += u64::from(a.kind == OpKind::CompressSession);
            self.session_bytes += a.bytes;
            let first = self.session_ops.map_or(op, |(first, _)| first);
            self.session_ops = Some((first, op));
            if self.first_sessions.len() <= SESSIONS_LISTED {
                self.first_sessions.push((a.bytes, line()));
            }
        } else if a.kind != OpKind::ReclaimDatabase {
            // A reclaim has its own line, with the bytes before and after.
            self.largest_others.offer(a.bytes, line);
        }
        if !is_per_transcript(&a.category) {
            self.few.push((a.clone(), op));
        }
        Ok(())
    }

    /// The completed section's lines.
    fn lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut largest = std::mem::replace(&mut self.largest_others, Largest::new(0));
        if self.sessions > SESSIONS_LISTED as u64 {
            let (first, last) = self.session_ops.unwrap_or_default();
            let (n, bytes) = (self.sessions, human_bytes(self.session_bytes));
            lines.push(match self.sessions_compressed {
                0 => format!("archived {n} sessions ({bytes}) to archived_sessions/ with their thread rows (ops {first}-{last}; all in --json)"),
                k if k == n => format!("archived and compressed {n} sessions ({bytes}) into archived_sessions/ as .jsonl.zst, with their thread rows (ops {first}-{last}; all in --json)"),
                k => format!("archived {n} sessions ({bytes}) to archived_sessions/ with their thread rows, {k} of them compressed as .jsonl.zst (ops {first}-{last}; all in --json)"),
            });
        } else {
            for (bytes, line) in self.first_sessions.drain(..) {
                largest.offer(bytes, || line);
            }
        }
        lines.extend(largest.into_lines(|more| {
            format!("... and {more} more actions done (every one is in --json)")
        }));
        lines
    }
}
