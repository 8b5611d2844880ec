//! Carrying out a plan's session actions (archive, archive compressed, compress in place) a
//! slice at a time: each slice's transcripts are looked at again, their thread rows read,
//! their ops planned in full and run. A plan of 100,000 sessions holds only its actions;
//! the moves, rows and hashes of one slice at a time.

use anyhow::{Context as _, Result};
use std::path::Path;

use super::{Action, ActionList};
use crate::home::CodexHome;
use crate::home::sessions::{SessionFile, SessionLocation};
use crate::home::thread_index::{self, IndexState, ThreadIndex};
use crate::ops::session_retire::{self, lineage::Lineage};
use crate::ops::thread_row::IndexWriter;
use crate::ops::thread_rows::ThreadDatabases;
use crate::ops::{OpKind, Outcome, Run, session_move, transcript_compress};
use crate::progress::{Continuing, OnTerminal, Progress as _};

/// How many actions of a kind are read back, planned in full and run together.
fn executed_at_once(kind: OpKind) -> usize {
    match kind {
        OpKind::ArchiveSession => session_move::SLICE,
        OpKind::RetireSession => session_retire::BATCH,
        _ => transcript_compress::SLICE,
    }
}

/// Runs the reviewed session actions that `holds` (`ArchiveSession`, then
/// `CompressSession`, then `RetireSession`), a slice at a time as they are read back from the plan, handing each
/// one done to `done` with its op id; stops at the first failure and returns it.
pub(super) fn execute(
    run: &Run,
    home: &CodexHome,
    index_path: Option<&Path>,
    reviewed: &ActionList,
    holds: &dyn Fn(&Action) -> bool,
    done: &mut dyn FnMut(&Action, &Outcome) -> Result<()>,
) -> Result<Option<anyhow::Error>> {
    let groups = [
        (OpKind::ArchiveSession, "archiving sessions"),
        (OpKind::CompressSession, "compressing transcripts"),
        (OpKind::RetireSession, "retiring sessions"),
    ];
    // How many of each kind, for the progress: one read of the plan.
    let mut counts = [0u64; 3];
    for a in reviewed.per_transcript()? {
        let a = a?;
        if let Some(k) = groups.iter().position(|(kind, _)| *kind == a.kind)
            && holds(&a)
        {
            counts[k] += 1;
        }
    }
    if counts.iter().all(|c| *c == 0) {
        return Ok(None);
    }
    let mut writer = match index_path {
        Some(p) => {
            let w = IndexWriter::open(p)?;
            w.preflight(p)?;
            Some(w)
        }
        None => None,
    };
    let index = match (index_path, thread_index::detect(home)) {
        (Some(_), IndexState::Understood(index)) => Some(index),
        _ => None,
    };
    let mut slices = Slices {
        run,
        home,
        index_path,
        index: index.as_ref(),
        writer: writer.as_mut(),
        progress: OnTerminal::new(),
        settings: crate::zstd_stream::EncodeSettings::default(),
        retiring: None,
    };
    for ((kind, doing), count) in groups.into_iter().zip(counts) {
        if count == 0 {
            continue;
        }
        slices.progress.start(count, doing);
        let at_once = executed_at_once(kind);
        let mut slice = Vec::with_capacity(at_once);
        for a in reviewed.per_transcript()? {
            let a = a?;
            if a.kind != kind || !holds(&a) {
                continue;
            }
            slice.push(a);
            if slice.len() == at_once {
                if let Some(failed) = slices.execute(kind, doing, &slice, done)? {
                    slices.progress.finish();
                    return Ok(Some(failed));
                }
                slice.clear();
            }
        }
        if !slice.is_empty()
            && let Some(failed) = slices.execute(kind, doing, &slice, done)?
        {
            slices.progress.finish();
            return Ok(Some(failed));
        }
        slices.progress.finish();
    }
    Ok(None)
}

/// What every slice of session actions runs with.
struct Slices<'a> {
    run: &'a Run<'a>,
    home: &'a CodexHome,
    index_path: Option<&'a Path>,
    index: Option<&'a ThreadIndex>,
    writer: Option<&'a mut IndexWriter>,
    progress: OnTerminal,
    settings: crate::zstd_stream::EncodeSettings,
    /// Codex's databases and the home's forks, opened and read once for every retire slice.
    retiring: Option<(ThreadDatabases, Lineage)>,
}

impl Slices<'_> {
    /// Looks at one slice's transcripts again, reads their rows, plans their ops in full
    /// and runs them; the failure that stopped it, if any.
    fn execute(
        &mut self,
        kind: OpKind,
        doing: &str,
        slice: &[Action],
        done: &mut dyn FnMut(&Action, &Outcome) -> Result<()>,
    ) -> Result<Option<anyhow::Error>> {
        let home = self.home;
        if kind == OpKind::RetireSession {
            return self.retire(slice, done);
        }
        let files: Vec<SessionFile> = match slice.iter().map(|a| session_file_of(home, a)).collect()
        {
            Ok(files) => files,
            Err(e) => return Ok(Some(e)),
        };
        let rows = match rows_of(self.index, self.writer.as_deref(), &files) {
            Ok(rows) => rows,
            Err(e) => return Ok(Some(e)),
        };
        let row_of = |file: &SessionFile| {
            rows.as_ref()
                .and_then(|r| file.id().and_then(|id| r.get(id)))
        };
        let now = crate::clock::now_unix();
        let index_path = self.index_path;
        let progress = Continuing(&self.progress);
        let (ids, failed) = if kind == OpKind::ArchiveSession {
            let plans = files
                .iter()
                .map(|f| session_move::plan_archive(home, f, row_of(f), index_path, now))
                .collect();
            session_move::execute_all(
                self.run,
                plans,
                self.writer.as_deref_mut(),
                doing,
                &progress,
            )
        } else {
            let settings = self.settings;
            let plans = slice
                .iter()
                .zip(&files)
                .map(|(a, f)| {
                    if a.category == "compress" {
                        transcript_compress::plan_compress_in_place(
                            f,
                            row_of(f),
                            index_path,
                            settings,
                        )
                    } else {
                        transcript_compress::plan_archive_compressed(
                            home,
                            f,
                            row_of(f),
                            index_path,
                            settings,
                            now,
                        )
                    }
                })
                .collect();
            transcript_compress::execute_all(
                self.run,
                plans,
                self.writer.as_deref_mut(),
                doing,
                &progress,
            )
        };
        for (a, outcome) in slice.iter().zip(&ids) {
            done(a, outcome)?;
        }
        Ok(failed)
    }
}

impl Slices<'_> {
    fn retire(
        &mut self,
        slice: &[Action],
        done: &mut dyn FnMut(&Action, &Outcome) -> Result<()>,
    ) -> Result<Option<anyhow::Error>> {
        if self.retiring.is_none() {
            let opened = ThreadDatabases::open(&self.home.root)
                .and_then(|dbs| Ok((dbs, session_retire::lineage::of_home(&self.home.root)?)));
            match opened {
                Ok(r) => self.retiring = Some(r),
                Err(e) => return Ok(Some(e)),
            }
        }
        let (dbs, lineage) = self.retiring.as_mut().expect("opened above");
        let plans = slice
            .iter()
            .map(|a| {
                let path = Path::new(&a.path);
                let id = crate::home::sessions::parse_rollout_name(
                    &path.file_name().unwrap_or_default().to_string_lossy(),
                )
                .map(|n| n.id)
                .with_context(|| format!("the thread of {}", path.display()))?;
                let forks_from = lineage.parent_of(&id).map(str::to_string);
                Ok(session_retire::plan_retire(path, &id, forks_from))
            })
            .collect::<Result<Vec<_>>>();
        let plans = match plans {
            Ok(p) => p,
            Err(e) => return Ok(Some(e)),
        };
        let ids: Vec<String> = plans.iter().map(|p| p.thread_id.clone()).collect();
        match session_retire::execute_batch(self.run, plans, dbs, lineage) {
            Ok(outcomes) => {
                self.progress.advance(outcomes.len() as u64);
                for (plan_id, outcome) in ids.iter().zip(&outcomes) {
                    if outcome.done().is_some() {
                        lineage.forget(plan_id);
                    }
                }
                for (a, outcome) in slice.iter().zip(&outcomes) {
                    done(a, outcome)?;
                }
                Ok(None)
            }
            Err(e) => Ok(Some(e)),
        }
    }
}

/// The transcript an action names, as it is now: archived for `compress`, else active.
fn session_file_of(home: &CodexHome, action: &Action) -> Result<SessionFile> {
    let path = Path::new(&action.path);
    let (location, root) = if action.category == "compress" {
        (SessionLocation::Archived, home.archived_sessions_dir())
    } else {
        (SessionLocation::Active, home.sessions_dir())
    };
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("the transcript {} of action {}", path.display(), action.id))?;
    Ok(SessionFile::from_metadata(path, &meta, location, &root))
}

fn rows_of(
    index: Option<&ThreadIndex>,
    writer: Option<&IndexWriter>,
    files: &[SessionFile],
) -> Result<Option<std::collections::HashMap<String, thread_index::ThreadRow>>> {
    match (index, writer) {
        (Some(index), Some(w)) => {
            let ids: Vec<&str> = files.iter().filter_map(SessionFile::id).collect();
            Ok(Some(index.rows_of(w.connection(), &ids)?))
        }
        _ => Ok(None),
    }
}
