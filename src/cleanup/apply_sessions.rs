//! Carrying out a plan's session actions (archive, archive compressed, compress in place) a
//! slice at a time: each slice's transcripts are looked at again, their thread rows read,
//! their ops planned in full and run. A plan of 100,000 sessions holds only its actions;
//! the moves, rows and hashes of one slice at a time.

use anyhow::{Context as _, Result};
use std::path::Path;

use super::Action;
use crate::home::CodexHome;
use crate::home::sessions::{SessionFile, SessionLocation};
use crate::home::thread_index::{self, IndexState, ThreadIndex};
use crate::ops::thread_row::IndexWriter;
use crate::ops::{OpKind, Run, session_move, transcript_compress};
use crate::progress::{Continuing, OnTerminal, Progress as _};

/// Several of session_move's batches, so hashing the next batch still overlaps moving this.
const EXECUTED_AT_ONCE: usize = 8 * session_move::BATCH;

/// The actions done, each with its op id, and the failure that stopped the rest, if any.
type Outcome<'a> = (Vec<(&'a Action, i64)>, Option<anyhow::Error>);

/// Runs the session actions (`ArchiveSession`, then `CompressSession`), stopping at the
/// first failure; the actions done, with their op ids, and the failure if any.
pub(super) fn execute<'a>(
    run: &Run,
    home: &CodexHome,
    index_path: Option<&Path>,
    actions: &[&'a Action],
) -> Result<Outcome<'a>> {
    let moves: Vec<&Action> = actions
        .iter()
        .copied()
        .filter(|a| a.kind == OpKind::ArchiveSession)
        .collect();
    let recodes: Vec<&Action> = actions
        .iter()
        .copied()
        .filter(|a| a.kind == OpKind::CompressSession)
        .collect();
    let mut done = Vec::new();
    if moves.is_empty() && recodes.is_empty() {
        return Ok((done, None));
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
    let settings = crate::zstd_stream::EncodeSettings::default();
    let progress = OnTerminal::new();
    for (group, doing) in [
        (&moves, "archiving sessions"),
        (&recodes, "compressing transcripts"),
    ] {
        if group.is_empty() {
            continue;
        }
        progress.start(group.len() as u64, doing);
        for slice in group.chunks(EXECUTED_AT_ONCE) {
            let files = match slice.iter().map(|a| session_file_of(home, a)).collect() {
                Ok(files) => files,
                Err(e) => {
                    progress.finish();
                    return Ok((done, Some(e)));
                }
            };
            let files: Vec<SessionFile> = files;
            let rows = match rows_of(index.as_ref(), writer.as_ref(), &files) {
                Ok(rows) => rows,
                Err(e) => {
                    progress.finish();
                    return Ok((done, Some(e)));
                }
            };
            let row_of = |file: &SessionFile| {
                rows.as_ref()
                    .and_then(|r| file.id().and_then(|id| r.get(id)))
            };
            let now = crate::clock::now_unix();
            let (ids, failed) = if group == &moves {
                let plans = files
                    .iter()
                    .map(|f| session_move::plan_archive(home, f, row_of(f), index_path, now))
                    .collect();
                session_move::execute_all(
                    run,
                    plans,
                    writer.as_mut(),
                    doing,
                    &Continuing(&progress),
                )
            } else {
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
                    run,
                    plans,
                    writer.as_mut(),
                    doing,
                    &Continuing(&progress),
                )
            };
            done.extend(slice.iter().copied().zip(ids));
            if failed.is_some() {
                progress.finish();
                return Ok((done, failed));
            }
        }
        progress.finish();
    }
    Ok((done, None))
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
