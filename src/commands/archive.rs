//! `archive`: move sessions to `archived_sessions/` as Codex does, by id or by age policy,
//! each move journaled with its thread row.

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};

use super::{Context, confirm, describe_recovery, refuse_if_codex_running, relative_to};
use crate::clock::{human_age, human_bytes, now_unix};
use crate::error::MaintError;
use crate::home::codex_versions;
use crate::home::sessions::{self, SessionFile, SessionLocation};
use crate::home::thread_index::{self, ThreadRow};
use crate::home::{CodexHome, writer_locks};
use crate::ops::Run;
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::thread_row::{self, IndexWriter};
use crate::ops::transcript_compress;
use crate::policy::{Protection, SessionFacts, SessionPolicy, judge_for_archive};
use crate::report::{self, Report};

/// What judging a session needs to know beyond the file itself.
pub struct SessionKnowledge<'a> {
    /// `None` for a home without a thread index.
    pub rows: Option<&'a HashMap<String, ThreadRow>>,
    pub index_path: Option<&'a std::path::Path>,
    pub locks: &'a HashSet<String>,
    pub handoffs: &'a HashSet<String>,
}

pub struct Judged<'f, P = PlannedMove> {
    pub chosen: Vec<(&'f SessionFile, P, u64)>,
    pub protected: Vec<SessionLine>,
}

/// Threads with a handoff on record; read-only, and empty when there is no store yet.
pub fn handoff_threads(ctx: &Context) -> Result<HashSet<String>> {
    match crate::store::open_read_only(&ctx.store_root)? {
        Some(catalog) => catalog.threads_with_handoff(),
        None => Ok(HashSet::new()),
    }
}

/// The shared session policy applied to each target: a planned move, or the reason kept.
pub fn judge_sessions<'f>(
    home: &CodexHome,
    targets: Vec<&'f SessionFile>,
    known: &SessionKnowledge<'_>,
    policy: &SessionPolicy,
) -> Judged<'f> {
    let now = now_unix();
    judge_with(
        targets,
        known,
        |facts| judge_for_archive(facts, policy),
        |file, row| session_move::plan_archive(home, file, row, known.index_path, now),
    )
}

/// Reads each target's first record (on all cores, a slice at a time), asks `judge`, and
/// plans with `plan` the ones it lets through.
pub fn judge_with<'f, P>(
    targets: Vec<&'f SessionFile>,
    known: &SessionKnowledge<'_>,
    judge: impl Fn(&SessionFacts<'_>) -> Result<(), Protection>,
    plan: impl Fn(&SessionFile, Option<&ThreadRow>) -> P,
) -> Judged<'f, P> {
    let mut chosen = Vec::new();
    let mut protected = Vec::new();
    // First records are read on all cores, a slice at a time: on a cold cache each is a
    // disk seek, one at a time they cost more than hashing what is then moved, and a
    // slice keeps no more than its own records in memory.
    let first_records = targets.chunks(1024).flat_map(|slice| {
        use rayon::prelude::*;
        let read = || -> Vec<Result<sessions::SessionMeta, String>> {
            slice
                .par_iter()
                .map(|file| sessions::read_session_meta(&file.path))
                .collect()
        };
        let metas = crate::io_pool::install(read);
        slice.iter().copied().zip(metas)
    });
    for (file, meta) in first_records {
        let row = known.rows.map(|r| file.id().and_then(|id| r.get(id)));
        let facts = SessionFacts {
            file,
            meta: &meta,
            row,
            writer_locked: file.id().is_some_and(|id| known.locks.contains(id)),
            has_handoff: file.id().is_some_and(|id| known.handoffs.contains(id)),
        };
        let age = facts.last_activity_age_secs();
        match judge(&facts) {
            Ok(()) => chosen.push((file, plan(file, row.flatten()), age)),
            Err(protection) => protected.push(SessionLine {
                id: file.id().unwrap_or("?").to_string(),
                path: file.path.display().to_string(),
                size: file.size,
                last_active_secs: age,
                protection: Some(protection),
                op_id: None,
                destination: None,
            }),
        }
    }
    Judged { chosen, protected }
}

#[derive(clap::Args)]
pub struct ArchiveArgs {
    /// Session ids or unique prefixes
    pub ids: Vec<String>,
    /// Archive every session last active longer ago than this (e.g. 30d, 12h, 2w)
    #[arg(long = "older-than", value_name = "AGE", value_parser = crate::arg_values::age_secs)]
    pub older_than_secs: Option<u64>,
    /// Sessions younger than this are kept in policy runs
    #[arg(long = "min-age", value_name = "AGE", default_value = "10d", value_parser = crate::arg_values::age_secs)]
    pub min_age_secs: u64,
    /// Sessions at least this large (MB) are kept until they have a handoff, unless named
    #[arg(long = "handoff-min-mb", value_name = "MB", default_value = "2", value_parser = crate::arg_values::megabytes)]
    pub handoff_min_bytes: u64,
    /// Show what would be archived and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Archive each plain transcript as a compressed `.jsonl.zst` in the same step (needs every Codex using the home at 0.137 or later)
    #[arg(long)]
    pub compress: bool,
    /// Confirm a policy run without asking
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Serialize)]
pub struct SessionLine {
    pub id: String,
    pub path: String,
    pub size: u64,
    pub last_active_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

impl SessionLine {
    /// "<id> - <why it is kept>", as the report lists a protected session.
    fn kept_because(&self) -> String {
        format!(
            "{} - {}",
            self.id,
            self.protection
                .as_ref()
                .map(Protection::explain)
                .unwrap_or_default()
        )
    }
}

pub fn run(ctx: &Context, args: ArchiveArgs) -> Result<Report> {
    if args.ids.is_empty() && args.older_than_secs.is_none() {
        return Err(MaintError::usage(
            "name the sessions to archive (IDs or unique prefixes) or give --older-than AGE",
        )
        .into());
    }
    if !args.ids.is_empty() && args.older_than_secs.is_some() {
        return Err(MaintError::usage("give session IDs or --older-than, not both").into());
    }
    let home = ctx.locate_home()?;
    home.require_recognizable()?;
    if !args.dry_run {
        refuse_if_codex_running(&home)?;
    }
    // Decided before anything is opened for writing: a refusal leaves even Codex's
    // database files as they were (closing a writer would checkpoint its WAL).
    let gate = args.compress.then(|| {
        let (files, _) = sessions::scan(&home);
        codex_versions::compression_gate(&home, &files)
    });
    if let Some(gate) = gate.as_ref().filter(|g| !g.allowed) {
        return Err(MaintError::refused(
            format!("--compress refused: {}; nothing was changed", gate.reason),
            gate.evidence
                .iter()
                .map(|e| format!("Codex {} seen at {} ({:?})", e.version, e.path, e.source))
                .collect(),
        )
        .into());
    }
    let (store, recovered) = if args.dry_run {
        (None, Vec::new())
    } else {
        let (s, r) = ctx.open_store_and_recover(&home)?;
        (Some(s), r)
    };

    let index = thread_index::require_understood(&home)?;
    let mut writer = match (&index, args.dry_run) {
        (Some(index), false) => {
            let w = IndexWriter::open(&index.path)?;
            w.preflight(&index.path)?;
            Some(w)
        }
        _ => None,
    };
    let rows: Option<HashMap<String, ThreadRow>> = match (&index, &writer) {
        (Some(index), Some(w)) => Some(index.read_all_with(w.connection())?),
        (Some(index), None) => Some(index.read_all()?),
        (None, _) => None,
    };

    let (files, scan_problems) = sessions::scan(&home);
    let locked = writer_locks::held_thread_locks(&home);
    let explicit = !args.ids.is_empty();
    let policy = SessionPolicy {
        min_age_secs: args.older_than_secs.unwrap_or(0).max(if explicit {
            0
        } else {
            args.min_age_secs
        }),
        explicit_request: explicit,
        handoff_min_bytes: args.handoff_min_bytes,
    };

    let mut report = Report::spec_shaped("archive", "archive");
    describe_recovery(&mut report, &recovered);
    if let Some(gate) = &gate {
        report.push(
            report::VERIFICATION,
            format!("compression gate: {}", gate.reason),
        );
    }
    let active: Vec<&SessionFile> = files
        .iter()
        .filter(|f| f.location == SessionLocation::Active)
        .collect();
    report.push(
        report::OBSERVED,
        format!(
            "{}/ - {} transcripts, {}",
            crate::home::SESSIONS_DIR,
            active.len(),
            human_bytes(active.iter().map(|f| f.size).sum())
        ),
    );
    for p in &scan_problems {
        report.push(report::NOT_TOUCHED, format!("unreadable: {p}"));
    }

    let targets: Vec<&SessionFile> = if explicit {
        resolve_ids(&files, &args.ids, &mut report)?
    } else {
        active.clone()
    };

    let handoffs = handoff_threads(ctx)?;
    let judged = judge_sessions(
        &home,
        targets,
        &SessionKnowledge {
            rows: rows.as_ref(),
            index_path: index.as_ref().map(|i| i.path.as_path()),
            locks: &locked,
            handoffs: &handoffs,
        },
        &policy,
    );
    let chosen = judged.chosen;
    let protected_lines = judged.protected;
    report.extend(report::NOT_TOUCHED, summarize_protected(&protected_lines));

    let settings = crate::zstd_stream::EncodeSettings::default();
    let destination_of = |file: &SessionFile, plan: &PlannedMove| -> std::path::PathBuf {
        if args.compress && !file.compressed {
            sessions::twin_path(&plan.dst)
        } else {
            plan.dst.clone()
        }
    };
    let occupied: Vec<String> = chosen
        .iter()
        .map(|(file, plan, _)| destination_of(file, plan))
        .filter(|dst| std::fs::symlink_metadata(dst).is_ok())
        .map(|dst| format!("{} is already occupied", dst.display()))
        .collect();
    if !occupied.is_empty() {
        return Err(MaintError::refused(
            "archive destinations are occupied; nothing was overwritten or changed",
            occupied,
        )
        .into());
    }
    if explicit && !protected_lines.is_empty() {
        return Err(MaintError::refused(
            "some named sessions are protected and were not archived; nothing was changed",
            protected_lines
                .iter()
                .map(SessionLine::kept_because)
                .collect(),
        )
        .into());
    }

    let total_bytes: u64 = chosen.iter().map(|(f, _, _)| f.size).sum();
    let mut done_lines = Vec::new();
    if args.dry_run || chosen.is_empty() {
        for (file, _, age) in &chosen {
            report.push(
                report::PROPOSED,
                format!(
                    "will archive {}{} ({}, idle {}) from {}",
                    file.id().unwrap_or("?"),
                    if args.compress && !file.compressed {
                        " and compress it"
                    } else {
                        ""
                    },
                    human_bytes(file.size),
                    human_age(*age),
                    relative_to(&home, file.path.parent().unwrap_or(&home.root)),
                ),
            );
        }
        report.push(
            report::BACKUPS,
            "not created: this was a dry run or there was nothing to archive",
        );
        report.push(report::VERIFICATION, "no files changed");
        report.data = json!({
            "dry_run": args.dry_run,
            "run_id": null,
            "candidates": chosen.iter().map(|(f, p, age)| line(f, Some(&destination_of(f, p)), *age, None)).collect::<Vec<_>>(),
            "compression_gate": gate,
            "protected": protected_lines,
            "bytes": total_bytes,
        });
        return Ok(report);
    }

    if !explicit {
        confirm(
            &format!(
                "Archive {} sessions ({})?",
                chosen.len(),
                human_bytes(total_bytes)
            ),
            args.yes,
        )?;
        // Codex may have started while the question waited for an answer.
        refuse_if_codex_running(&home)?;
    }
    let store = store.expect("a store is open when not a dry run");
    // Refused here, before a run is recorded: a symlinked `archived_sessions/` must leave
    // the catalog as untouched as the home.
    let guard = crate::home_guard::HomeGuard::new(&home.root);
    for (_, plan, _) in &chosen {
        guard.ensure_all([plan.src.as_path(), plan.dst.as_path()])?;
    }
    let run = Run::begin(&store, "archive", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let (to_recode, to_move): (Vec<_>, Vec<_>) = chosen
        .iter()
        .partition(|(file, _, _)| args.compress && !file.compressed);
    let plans: Vec<PlannedMove> = to_move.iter().map(|(_, p, _)| p.clone()).collect();
    let (ids, mut failure) = session_move::execute_all(
        &run,
        plans,
        writer.as_mut(),
        "archiving",
        &crate::progress::OnTerminal::new(),
    );
    for ((file, plan, age), id) in to_move.iter().zip(ids) {
        report.push(
            report::COMPLETED,
            format!(
                "archived {} ({}) (op {id})",
                file.id().unwrap_or("?"),
                human_bytes(file.size)
            ),
        );
        done_lines.push(line(file, Some(&plan.dst), *age, Some(id)));
    }
    if failure.is_none() && !to_recode.is_empty() {
        let rows = rows.as_ref();
        let recodes: Vec<transcript_compress::PlannedRecode> = to_recode
            .iter()
            .map(|(file, _, _)| {
                let row = rows.and_then(|r| file.id().and_then(|id| r.get(id)));
                transcript_compress::plan_archive_compressed(
                    &home,
                    file,
                    row,
                    index.as_ref().map(|i| i.path.as_path()),
                    settings,
                    now_unix(),
                )
            })
            .collect();
        let destinations: Vec<std::path::PathBuf> = recodes.iter().map(|r| r.dst.clone()).collect();
        let (ids, failed) = transcript_compress::execute_all(
            &run,
            recodes,
            writer.as_mut(),
            "archiving and compressing",
            &crate::progress::OnTerminal::new(),
        );
        for (((file, _, age), dst), id) in to_recode.iter().zip(&destinations).zip(ids) {
            let stored = std::fs::metadata(dst).map(|m| m.len()).unwrap_or(0);
            report.push(
                report::COMPLETED,
                format!(
                    "archived and compressed {} ({} -> {}) (op {id})",
                    file.id().unwrap_or("?"),
                    human_bytes(file.size),
                    human_bytes(stored)
                ),
            );
            done_lines.push(line(file, Some(dst), *age, Some(id)));
        }
        failure = failed;
    }
    let status = if failure.is_some() { "failed" } else { "done" };
    run.finish(status)?;

    let moved_bytes: u64 = done_lines.iter().map(|l| l.size).sum();
    report.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {} ({} ops, original paths and BLAKE3 hashes recorded); transcripts were moved, not copied",
            store.root.join(crate::store::CATALOG_FILE).display(),
            done_lines.len()
        ),
    );
    verify_moves(&home, &done_lines, writer.as_ref(), &mut report);
    report.push(
        report::RESIDUAL_RISK,
        format!("to take this back: codex-maint undo --run {run_id}"),
    );
    report.data = json!({
        "dry_run": false,
        "run_id": run_id,
        "archived": done_lines,
        "protected": protected_lines,
        "bytes": moved_bytes,
    });
    if let Some(e) = failure {
        return Err(e.context(format!("run {run_id} stopped after {} archived sessions (they stay archived and can be undone); {}", done_lines.len(), super::STOPPED_PART_WAY)));
    }
    Ok(report)
}

/// Protected sessions for the text view: the age heuristic as one count, every other
/// reason item by item (those are the ones a person may want to act on), capped.
pub fn summarize_protected(lines: &[SessionLine]) -> Vec<String> {
    const SHOWN: usize = 20;
    let mut out = Vec::new();
    let recent = lines
        .iter()
        .filter(|l| matches!(l.protection, Some(Protection::Recent(_))))
        .count();
    if recent > 0 {
        out.push(format!(
            "{recent} recent sessions, younger than the minimum age"
        ));
    }
    let others: Vec<&SessionLine> = lines
        .iter()
        .filter(|l| !matches!(l.protection, Some(Protection::Recent(_))))
        .collect();
    for l in others.iter().take(SHOWN) {
        out.push(l.kept_because());
    }
    if others.len() > SHOWN {
        out.push(format!(
            "... and {} more protected sessions (all in --json)",
            others.len() - SHOWN
        ));
    }
    out
}

fn line(
    file: &SessionFile,
    destination: Option<&std::path::Path>,
    age: u64,
    op_id: Option<i64>,
) -> SessionLine {
    SessionLine {
        id: file.id().unwrap_or("?").to_string(),
        path: file.path.display().to_string(),
        size: file.size,
        last_active_secs: age,
        protection: None,
        op_id,
        destination: destination.map(|d| d.display().to_string()),
    }
}

/// SPEC.md "Validation": each moved transcript is where the manifest says, its source is
/// free, and its thread row points at it.
fn verify_moves(
    home: &CodexHome,
    done: &[SessionLine],
    writer: Option<&IndexWriter>,
    report: &mut Report,
) {
    let mut bad = Vec::new();
    for l in done {
        let dst = l.destination.as_deref().unwrap_or_default();
        if !std::path::Path::new(dst).is_file() {
            bad.push(format!("{dst} is missing"));
        }
        if std::path::Path::new(&l.path).exists() {
            bad.push(format!("{} still exists", l.path));
        }
        if let Some(w) = writer {
            match thread_row::read(w.connection(), &l.id) {
                Ok(Some(row))
                    if row.archived == 1
                        && crate::home::same_file(
                            std::path::Path::new(&row.rollout_path),
                            std::path::Path::new(dst),
                        ) => {}
                other => bad.push(format!("thread {}'s row is {other:?}", l.id)),
            }
        }
    }
    if bad.is_empty() {
        report.push(
            report::VERIFICATION,
            format!(
                "{} moved transcripts present in {}/ with their source paths free{}",
                done.len(),
                relative_to(home, &home.archived_sessions_dir()),
                if writer.is_some() {
                    ", each thread row archived = 1 and pointing at it"
                } else {
                    " (no thread index in this home)"
                }
            ),
        );
    } else {
        report.exit_code = crate::error::ExitKind::VerifyFailed.code();
        report.extend(
            report::VERIFICATION,
            bad.into_iter().map(|b| format!("FAILED: {b}")),
        );
    }
}

/// Full ids or unique prefixes; every id must match exactly one session, or nothing runs.
fn resolve_ids<'f>(
    files: &'f [SessionFile],
    ids: &[String],
    report: &mut Report,
) -> Result<Vec<&'f SessionFile>> {
    let mut chosen = Vec::new();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for wanted in ids {
        match sessions::files_of_id(files, wanted) {
            Err(why) => errors.push(why),
            Ok(matches) => {
                for f in matches {
                    if f.location == SessionLocation::Archived {
                        report.push(
                            report::NOT_TOUCHED,
                            format!("{} - already archived", f.id().unwrap_or("?")),
                        );
                    } else if seen.insert(f.path.clone()) {
                        chosen.push(f);
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        let first = errors[0].clone();
        return Err(MaintError {
            kind: crate::error::ExitKind::Usage,
            message: format!("{first}; nothing was changed"),
            details: errors,
        }
        .into());
    }
    Ok(chosen)
}
