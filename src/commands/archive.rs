//! `archive`: move sessions to `archived_sessions/` as Codex does, by id or by age policy,
//! each move journaled with its thread row.

use anyhow::Result;
use serde_json::json;
use std::collections::{HashMap, HashSet};

mod outcome;

use super::{Context, confirm, describe_recovery, refuse_if_codex_running, relative_to};
use crate::clock::{human_age, human_bytes, now_unix};
use crate::error::MaintError;
use crate::home::codex_versions;
use crate::home::sessions::{self, SessionFile, SessionLocation};
use crate::home::thread_index::{self, ThreadRow};
use crate::home::writer_locks;
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::thread_row::IndexWriter;
use crate::ops::transcript_compress;
use crate::ops::{Outcome, Run};
use crate::policy::{
    SessionKnowledge, SessionPolicy, handoff_threads, judge_for_archive, judge_with,
};
use crate::progress::Progress as _;
use crate::report::{self, Largest, LongListWriter, Report};
use outcome::{DoneTally, ProtectedTally, SHOWN_IN_TEXT, line, more_in_json, verify_moves};

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
    // A dry run reads the index through a connection that writes nothing.
    let reader = match (&index, &writer) {
        (Some(index), None) => Some(crate::sqlite_read::open(&index.path)?),
        _ => None,
    };
    // Rows are read a slice at a time, only for the sessions in that slice: a home of
    // 100,000 threads never has all its rows in memory at once.
    let rows_of = |writer: &Option<IndexWriter>,
                   slice: &[&SessionFile]|
     -> Result<Option<HashMap<String, ThreadRow>>> {
        let conn = writer
            .as_ref()
            .map(IndexWriter::connection)
            .or(reader.as_ref().map(|r| &r.conn));
        match (&index, conn) {
            (Some(index), Some(conn)) => {
                let ids: Vec<&str> = slice.iter().filter_map(|f| f.id()).collect();
                Ok(Some(index.rows_of(conn, &ids)?))
            }
            _ => Ok(None),
        }
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
        active
    };

    let recodes_it = |file: &SessionFile| args.compress && !file.compressed;
    let destination_of = |file: &SessionFile| -> std::path::PathBuf {
        let dst = session_move::archive_destination(&home, file);
        if recodes_it(file) {
            sessions::twin_path(&dst)
        } else {
            dst
        }
    };
    let handoffs = handoff_threads(&ctx.store_root)?;
    // First pass: judge every target, a slice at a time, keeping only what was chosen
    // (a reference and an age) and a tally of what was kept; the per-session lists go to
    // disk for --json.
    let mut chosen: Vec<(&SessionFile, u64)> = Vec::new();
    let mut kept = ProtectedTally::default();
    let mut kept_list = LongListWriter::new()?;
    let mut named_but_kept = Vec::new();
    let mut occupied = Vec::new();
    for slice in targets.chunks(JUDGED_AT_ONCE) {
        let rows = rows_of(&writer, slice)?;
        let judged = judge_with(
            slice.to_vec(),
            &SessionKnowledge {
                rows: rows.as_ref(),
                index_path: index.as_ref().map(|i| i.path.as_path()),
                locks: &locked,
                handoffs: &handoffs,
            },
            |facts| judge_for_archive(facts, &policy),
            |_, _| (),
        );
        for l in judged.protected {
            if explicit {
                named_but_kept.push(l.kept_because());
            }
            kept_list.push(&l)?;
            kept.add(l);
        }
        for (file, (), age) in judged.chosen {
            let dst = destination_of(file);
            if std::fs::symlink_metadata(&dst).is_ok() {
                occupied.push(format!("{} is already occupied", dst.display()));
            }
            chosen.push((file, age));
        }
    }
    report.extend(report::NOT_TOUCHED, kept.lines());
    if !occupied.is_empty() {
        return Err(MaintError::refused(
            "archive destinations are occupied; nothing was overwritten or changed",
            occupied,
        )
        .into());
    }
    if !named_but_kept.is_empty() {
        return Err(MaintError::refused(
            "some named sessions are protected and were not archived; nothing was changed",
            named_but_kept,
        )
        .into());
    }

    let total_bytes: u64 = chosen.iter().map(|(f, _)| f.size).sum();
    if args.dry_run || chosen.is_empty() {
        let mut shown = Largest::new(SHOWN_IN_TEXT);
        let mut candidates = LongListWriter::new()?;
        for (file, age) in &chosen {
            let dst = destination_of(file);
            candidates.push(&line(file, Some(&dst), *age, None))?;
            shown.offer(file.size, || {
                format!(
                    "will archive {}{} ({}, idle {}) from {}",
                    file.id().unwrap_or("?"),
                    if recodes_it(file) {
                        " and compress it"
                    } else {
                        ""
                    },
                    human_bytes(file.size),
                    human_age(*age),
                    relative_to(&home, file.path.parent().unwrap_or(&home.root)),
                )
            });
        }
        report.extend(report::PROPOSED, shown.into_lines(more_in_json));
        report.push(
            report::BACKUPS,
            "not created: this was a dry run or there was nothing to archive",
        );
        report.push(report::VERIFICATION, "no files changed");
        report.data = json!({
            "dry_run": args.dry_run,
            "run_id": null,
            "compression_gate": gate,
            "bytes": total_bytes,
        });
        report.attach_list("candidates", candidates.finish()?);
        report.attach_list("protected", kept_list.finish()?);
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
    for (file, _) in &chosen {
        guard.ensure_all([file.path.as_path(), destination_of(file).as_path()])?;
    }
    let run = Run::begin(&store, "archive", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let settings = crate::zstd_stream::EncodeSettings::default();
    let index_path = index.as_ref().map(|i| i.path.as_path());
    let (to_recode, to_move): (Vec<_>, Vec<_>) =
        chosen.into_iter().partition(|(file, _)| recodes_it(file));
    let progress = crate::progress::OnTerminal::new();
    let mut done = DoneTally::new()?;
    let mut left_to_codex = Vec::new();
    let mut failure = None;
    // Second pass: plan and execute a slice at a time, re-reading that slice's rows, so
    // plans, rows and hashes are held for one slice only.
    progress.start(to_move.len() as u64, "archiving");
    for slice in to_move.chunks(session_move::SLICE) {
        let files: Vec<&SessionFile> = slice.iter().map(|(f, _)| *f).collect();
        let rows = match rows_of(&writer, &files) {
            Ok(rows) => rows,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let plans: Vec<PlannedMove> = files
            .iter()
            .map(|file| {
                let row = rows
                    .as_ref()
                    .and_then(|r| file.id().and_then(|id| r.get(id)));
                session_move::plan_archive(&home, file, row, index_path, now_unix())
            })
            .collect();
        let (ids, failed) = session_move::execute_all(
            &run,
            plans,
            writer.as_mut(),
            "archiving",
            &crate::progress::Continuing(&progress),
        );
        for ((file, age), outcome) in slice.iter().zip(ids) {
            match outcome {
                Outcome::Done(id) => {
                    let dst = session_move::archive_destination(&home, file);
                    done.add(file, &dst, *age, id, None)?;
                }
                left => left_to_codex.extend(left.left_line(&file.path)),
            }
        }
        if failed.is_some() {
            failure = failed;
            break;
        }
    }
    progress.finish();
    if failure.is_none() && !to_recode.is_empty() {
        progress.start(to_recode.len() as u64, "archiving and compressing");
        for slice in to_recode.chunks(transcript_compress::SLICE) {
            let files: Vec<&SessionFile> = slice.iter().map(|(f, _)| *f).collect();
            let rows = match rows_of(&writer, &files) {
                Ok(rows) => rows,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let recodes: Vec<transcript_compress::PlannedRecode> = files
                .iter()
                .map(|file| {
                    let row = rows
                        .as_ref()
                        .and_then(|r| file.id().and_then(|id| r.get(id)));
                    transcript_compress::plan_archive_compressed(
                        &home,
                        file,
                        row,
                        index_path,
                        settings,
                        now_unix(),
                    )
                })
                .collect();
            let destinations: Vec<std::path::PathBuf> =
                recodes.iter().map(|r| r.dst.clone()).collect();
            let (ids, failed) = transcript_compress::execute_all(
                &run,
                recodes,
                writer.as_mut(),
                "archiving and compressing",
                &crate::progress::Continuing(&progress),
            );
            for (((file, age), dst), outcome) in slice.iter().zip(&destinations).zip(ids) {
                match outcome {
                    Outcome::Done(id) => {
                        let stored = std::fs::metadata(dst).map(|m| m.len()).unwrap_or(0);
                        done.add(file, dst, *age, id, Some(stored))?;
                    }
                    left => left_to_codex.extend(left.left_line(&file.path)),
                }
            }
            if failed.is_some() {
                failure = failed;
                break;
            }
        }
        progress.finish();
    }
    let status = if failure.is_some() { "failed" } else { "done" };
    run.finish(status)?;

    report.extend(report::COMPLETED, done.shown_lines());
    report.extend(report::COMPLETED, left_to_codex);
    report.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {} ({} ops, original paths and BLAKE3 hashes recorded); transcripts were moved, not copied",
            store.root.join(crate::store::CATALOG_FILE).display(),
            done.count
        ),
    );
    let moved_bytes = done.bytes;
    let count = done.count;
    let archived = done.lines.finish()?;
    verify_moves(&home, &archived, count, writer.as_ref(), &mut report)?;
    report.push(
        report::RESIDUAL_RISK,
        format!("to take this back: codex-maint undo --run {run_id}"),
    );
    report.data = json!({
        "dry_run": false,
        "run_id": run_id,
        "bytes": moved_bytes,
    });
    report.attach_list("archived", archived);
    report.attach_list("protected", kept_list.finish()?);
    if let Some(e) = failure {
        return Err(e.context(format!("run {run_id} stopped after {count} archived sessions (they stay archived and can be undone); {}", super::STOPPED_PART_WAY)));
    }
    Ok(report)
}

/// Sessions judged at once: their first records are read on all cores, and their rows
/// are read in one query.
const JUDGED_AT_ONCE: usize = 1024;
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
