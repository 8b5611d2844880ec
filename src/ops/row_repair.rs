//! Making Codex's thread index agree with the transcripts on disk, one journaled row change
//! at a time: a row that lost its file is pointed at the one transcript with its id, and
//! an archived flag that disagrees with the folder is set as Codex's archive or unarchive
//! would. Only rows Codex made are changed; a transcript Codex has not indexed gets no
//! row (Codex indexes it itself on its next start). Anything ambiguous is left alone and
//! reported with the reason.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::row_now::{home_of_transcript, is_archived_place, names_file, row_following};
use super::thread_row::{self, IndexWriter, RowState};
use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::error::MaintError;
use crate::home::sessions::{SessionFile, twin_path};
use crate::home::thread_index::{self, IndexState};
use crate::home::{CodexHome, same_file};
use crate::store::{NewOp, Store};
use crate::{failpoint, home};

/// Why a row needs a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flaw {
    /// `rollout_path` names no file, and one transcript with the id is elsewhere in the home.
    LostItsFile,
    /// `archived` disagrees with the folder the transcript is in.
    FlagDisagreesWithFolder,
}

/// One row change, as planned and as the journal keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowFix {
    pub thread_id: String,
    pub flaw: Flaw,
    /// The transcript the row will name.
    pub transcript: PathBuf,
    pub index: String,
    pub row_before: RowState,
    pub row_after: RowState,
}

/// A row that disagrees with the disk but is not changed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RowLeftAlone {
    pub thread_id: String,
    pub rollout_path: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairPlan {
    pub fixes: Vec<RowFix>,
    pub left_alone: Vec<RowLeftAlone>,
}

/// Plans the repairs of `rows` against the transcripts `files` found in `home`.
/// `first_record_id` reads the id a transcript's first record names.
pub fn plan(
    home: &CodexHome,
    index: &Path,
    files: &[SessionFile],
    mut rows: Vec<(String, RowState)>,
    first_record_id: &dyn Fn(&Path) -> Result<String, String>,
    now_unix: i64,
) -> RepairPlan {
    let mut by_id: HashMap<&str, Vec<&SessionFile>> = HashMap::new();
    for f in files {
        if let Some(id) = f.id() {
            by_id.entry(id).or_default().push(f);
        }
    }
    let mut plan = RepairPlan::default();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (id, now) in rows {
        let copies = by_id.get(id.as_str()).cloned().unwrap_or_default();
        match decide(home, &now, &copies, first_record_id, now_unix) {
            Decision::Agrees => {}
            Decision::LeaveAlone(why) => plan.left_alone.push(RowLeftAlone {
                thread_id: id,
                rollout_path: now.rollout_path,
                why,
            }),
            Decision::Fix(flaw, transcript, after) => plan.fixes.push(RowFix {
                thread_id: id,
                flaw,
                transcript,
                index: index.display().to_string(),
                row_before: now,
                row_after: after,
            }),
        }
    }
    plan
}

enum Decision {
    Agrees,
    LeaveAlone(String),
    Fix(Flaw, PathBuf, RowState),
}

fn decide(
    home: &CodexHome,
    row: &RowState,
    copies: &[&SessionFile],
    first_record_id: &dyn Fn(&Path) -> Result<String, String>,
    now_unix: i64,
) -> Decision {
    let named = Path::new(&row.rollout_path);
    let spelled_home = named
        .is_absolute()
        .then(|| home_of_transcript(named))
        .flatten();
    let inside = spelled_home
        .as_deref()
        .is_some_and(|h| h == home.root || same_file(h, &home.root));
    let named_exists = named.exists() || twin_path(named).exists();
    if named_exists && !inside {
        // Codex reads it where it is; it is not this home's to change.
        return Decision::Agrees;
    }
    if !inside {
        return Decision::LeaveAlone(format!(
            "the row points outside the home {}",
            home.display()
        ));
    }
    let folders: Vec<bool> = {
        let mut f: Vec<bool> = copies.iter().map(|c| is_archived_place(&c.path)).collect();
        f.sort();
        f.dedup();
        f
    };
    if named_exists {
        let archived_place = is_archived_place(named);
        if (row.archived != 0) == archived_place {
            return Decision::Agrees;
        }
        if folders.len() > 1 {
            return Decision::LeaveAlone(format!(
                "{} files with this id, in both sessions/ and archived_sessions/: which one is the session is a guess",
                copies.len()
            ));
        }
        let after = row_following(row, named, named, now_unix);
        return Decision::Fix(Flaw::FlagDisagreesWithFolder, named.to_path_buf(), after);
    }
    let only = match copies {
        [] => {
            return Decision::LeaveAlone(
                "no transcript with this id is in the home (Codex reports the row as stale)".into(),
            );
        }
        [one] => *one,
        many => {
            return Decision::LeaveAlone(format!(
                "{} files with this id ({}): which one is the session is a guess",
                many.len(),
                many.iter()
                    .map(|f| f.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    if only.is_symlink || only.name.is_none() {
        return Decision::LeaveAlone(format!(
            "{} is a symlink or not named as Codex names transcripts",
            only.path.display()
        ));
    }
    match first_record_id(&only.path) {
        Ok(id) if Some(id.as_str()) == only.id() => {}
        Ok(other) => {
            return Decision::LeaveAlone(format!(
                "{}'s first record names thread {other}, not the one its name says",
                only.path.display()
            ));
        }
        Err(why) => {
            return Decision::LeaveAlone(format!(
                "{} has no readable first record ({why})",
                only.path.display()
            ));
        }
    }
    let Some(codex_home) = spelled_home else {
        return Decision::LeaveAlone("the row's path is not a transcript place".into());
    };
    let Ok(rel) = only.path.strip_prefix(&home.root) else {
        return Decision::LeaveAlone(format!("{} is outside the home", only.path.display()));
    };
    let moved_to = RowState {
        rollout_path: codex_home.join(rel).display().to_string(),
        ..row.clone()
    };
    let mut after = row_following(&moved_to, &only.path, &only.path, now_unix);
    after.rollout_path = moved_to.rollout_path;
    Decision::Fix(Flaw::LostItsFile, only.path.clone(), after)
}

/// One line a person can read about a planned fix.
pub fn describe(home: &CodexHome, fix: &RowFix) -> String {
    let rel = |p: &Path| {
        p.strip_prefix(&home.root)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    match fix.flaw {
        Flaw::LostItsFile => format!(
            "thread {}: its row names {}, which is gone; point it at {}{}",
            fix.thread_id,
            fix.row_before.rollout_path,
            rel(&fix.transcript),
            if fix.row_before.archived != fix.row_after.archived {
                format!(" and set archived {}", fix.row_after.archived)
            } else {
                String::new()
            }
        ),
        Flaw::FlagDisagreesWithFolder => format!(
            "thread {}: its row says archived {} but {} is in {}; set archived {}",
            fix.thread_id,
            fix.row_before.archived,
            rel(&fix.transcript),
            if fix.row_after.archived != 0 {
                "archived_sessions/"
            } else {
                "sessions/"
            },
            fix.row_after.archived
        ),
    }
}

/// What repairing this home would do now, read without writing anything; `None` when the
/// home has no thread index codex-maint understands.
pub fn plan_for_home(home: &CodexHome) -> Result<Option<RepairPlan>> {
    let IndexState::Understood(index) = thread_index::detect(home) else {
        return Ok(None);
    };
    // What a row's repair is decided on, and no more: a home of 100,000 threads is not
    // held as full rows.
    let mut rows = Vec::new();
    let db = crate::sqlite_read::open(&index.path)?;
    index.for_each_row(&db.conn, |row| {
        rows.push((
            row.id,
            RowState {
                rollout_path: row.rollout_path,
                archived: row.archived,
                archived_at: row.archived_at,
            },
        ))
    })?;
    drop(db);
    let (files, _) = home::sessions::scan(home);
    let first_record_id =
        |path: &std::path::Path| home::sessions::read_session_meta(path).map(|m| m.id);
    Ok(Some(plan(
        home,
        &index.path,
        &files,
        rows,
        &first_record_id,
        crate::clock::now_unix(),
    )))
}

/// Applies `fixes` under the journal protocol: all prepared (one commit), all rows changed
/// (one transaction, each only from the state planned), all marked applied.
pub fn execute_all(run: &Run, writer: &mut IndexWriter, fixes: &[RowFix]) -> Result<Vec<i64>> {
    journaled(run, writer, fixes, None)
}

/// The protocol of `execute_all`, for repairs and for taking them back (`reverts[i]` is
/// the op `fixes[i]` takes back).
fn journaled(
    run: &Run,
    writer: &mut IndexWriter,
    fixes: &[RowFix],
    reverts: Option<&[&OpRecord]>,
) -> Result<Vec<i64>> {
    let ops: Vec<NewOp> = fixes
        .iter()
        .enumerate()
        .map(|(i, fix)| {
            Ok(NewOp {
                kind: OpKind::RepairThreadRow.to_string(),
                src: fix.row_before.rollout_path.clone(),
                dst: Some(fix.row_after.rollout_path.clone()),
                detail: super::detail::stored(fix)?,
                reverts_op: reverts.map(|r| r[i].id),
                ..Default::default()
            })
        })
        .collect::<Result<_>>()?;
    let ids = run.store.catalog.prepare_ops(run.id, &ops)?;
    failpoint::hit("op-prepared");
    let changes: Vec<(&str, &RowState, &RowState)> = fixes
        .iter()
        .map(|f| (f.thread_id.as_str(), &f.row_before, &f.row_after))
        .collect();
    if let Err(e) = writer.transition(&changes) {
        for id in &ids {
            run.store.catalog.mark_rolled_back(*id)?;
        }
        return Err(e);
    }
    failpoint::hit("thread-row-updated");
    let applied: Vec<(i64, Option<String>)> = ids.iter().map(|id| (*id, None)).collect();
    run.store.catalog.mark_applied_many(&applied)?;
    failpoint::hit("op-applied");
    Ok(ids)
}

fn fix_of(op: &OpRecord) -> Result<RowFix> {
    op.detail_as::<RowFix>().cloned()
}

/// A row change left `prepared`: the row as planned is rolled forward, the row as it was
/// rolled back; a row in neither state is reported, never guessed about.
fn recover(store: &Store, op: &OpRecord) -> Result<Recovered> {
    let fix = fix_of(op)?;
    let db = IndexWriter::open(Path::new(&fix.index))?;
    match thread_row::read(db.connection(), &fix.thread_id)? {
        Some(row) if row == fix.row_after => {
            store.catalog.mark_applied(op.id, None)?;
            Ok(Recovered::RolledForward)
        }
        Some(row) if row == fix.row_before => {
            store.catalog.mark_rolled_back(op.id)?;
            Ok(Recovered::RolledBack)
        }
        other => Ok(Recovered::Stuck(format!(
            "thread {}'s row is neither as it was nor as planned (now {other:?})",
            fix.thread_id
        ))),
    }
}

/// Why a row change cannot be taken back now: the row changed since.
fn revert_conflicts(op: &OpRecord) -> Vec<String> {
    match fix_of(op) {
        Ok(fix) => conflicts_of(&fix.index, &[op], std::slice::from_ref(&fix)),
        Err(e) => vec![format!("{e:#}")],
    }
}

/// Why the row changes `fixes` (of `ops`, all in `index`) cannot be taken back: a row that
/// is no longer as its repair left it. The index is opened once, read only.
fn conflicts_of(index: &str, ops: &[&OpRecord], fixes: &[RowFix]) -> Vec<String> {
    let each_op = |why: &dyn Fn(i64) -> String| ops.iter().map(|op| why(op.id)).collect();
    if !Path::new(index).exists() {
        return each_op(&|id| format!("op {id}: the thread index {index} is gone"));
    }
    let db = match home::sqlite_read::open(Path::new(index)) {
        Ok(db) => db,
        Err(e) => {
            return each_op(&|id| format!("op {id}: cannot read the thread index {index}: {e:#}"));
        }
    };
    ops.iter()
        .zip(fixes)
        .filter_map(
            |(op, fix)| match thread_row::read(&db.conn, &fix.thread_id) {
                Ok(Some(row)) if row == fix.row_after => None,
                Ok(now) => Some(format!(
                    "op {}: thread {}'s row changed since it was repaired (now {now:?})",
                    op.id, fix.thread_id
                )),
                Err(e) => Some(format!(
                    "op {}: cannot read the thread index {index}: {e:#}",
                    op.id
                )),
            },
        )
        .collect()
}

/// Takes a row change back as a new journaled op of `run`: the row as it was, exactly.
fn revert(run: &Run, op: &OpRecord) -> Result<i64> {
    Ok(revert_all(run, &[op])?[0])
}

/// Takes many row changes of one thread index back at once, as `execute_all` made them:
/// every row checked first (one that changed since refuses the lot, nothing changed), then
/// all prepared in one commit, all rows put back in one transaction, all marked applied. An
/// undo of 20,000 repairs is three commits, not 60,000.
pub fn revert_all(run: &Run, ops: &[&OpRecord]) -> Result<Vec<i64>> {
    let fixes: Vec<RowFix> = ops.iter().map(|op| fix_of(op)).collect::<Result<_>>()?;
    let Some(index) = fixes.first().map(|f| f.index.clone()) else {
        return Ok(Vec::new());
    };
    if fixes.iter().any(|f| f.index != index) {
        return ops.iter().map(|op| revert(run, op)).collect();
    }
    let conflicts = conflicts_of(&index, ops, &fixes);
    if !conflicts.is_empty() {
        let what = match ops {
            [op] => format!("op {}", op.id),
            _ => format!("{} row repairs", ops.len()),
        };
        return Err(MaintError::refused(
            format!("{what} cannot be taken back; nothing was changed"),
            conflicts,
        )
        .into());
    }
    let index_path = Path::new(&index);
    let mut writer = IndexWriter::open(index_path)?;
    writer.preflight(index_path)?;
    let backs: Vec<RowFix> = fixes
        .into_iter()
        .map(|fix| RowFix {
            row_before: fix.row_after.clone(),
            row_after: fix.row_before.clone(),
            ..fix
        })
        .collect();
    journaled(run, &mut writer, &backs, Some(ops))
}

/// What `verify` finds wrong with a row change in force: a repaired row, whatever later
/// moves made of it, must name an existing transcript with the flag of its folder; a row an
/// undo put back must still be as it was put back.
fn verify_live(op: &OpRecord, rows: &super::session_move::RowLookup<'_>) -> Vec<String> {
    let fix = match fix_of(op) {
        Ok(f) => f,
        Err(e) => return vec![format!("{e:#}")],
    };
    match rows(&fix.index, &fix.thread_id) {
        None | Some(Err(_)) => vec![format!(
            "op {}: the thread index {} cannot be read",
            op.id, fix.index
        )],
        Some(Ok(None)) => vec![format!(
            "op {}: thread {} has no row in {}",
            op.id, fix.thread_id, fix.index
        )],
        // An undo of a repair put a row back as it was, flaw and all: what holds is that.
        Some(Ok(Some(row))) if op.reverts_op.is_some() => {
            if row == fix.row_after {
                Vec::new()
            } else {
                vec![format!(
                    "op {}: thread {}'s row changed since it was put back (now {row:?})",
                    op.id, fix.thread_id
                )]
            }
        }
        Some(Ok(Some(row))) => {
            let named = Path::new(&row.rollout_path);
            let place = if named.exists() {
                named.to_path_buf()
            } else {
                twin_path(named)
            };
            if !place.exists() {
                vec![format!(
                    "op {}: thread {}'s row points at {}, which does not exist",
                    op.id, fix.thread_id, row.rollout_path
                )]
            } else if (row.archived != 0) != is_archived_place(&place)
                || !names_file(&row.rollout_path, &place)
            {
                vec![format!(
                    "op {}: thread {}'s row says archived {} but {} is not in that folder",
                    op.id,
                    fix.thread_id,
                    row.archived,
                    place.display()
                )]
            } else {
                Vec::new()
            }
        }
    }
}

pub struct RowRepair;

impl super::OpType for RowRepair {
    fn what_it_did(&self, _kind: OpKind) -> &'static str {
        "repaired thread row"
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<RowFix>(json).map(super::OpDetail::RowRepair)
    }
    /// A row repair writes only Codex's thread index; the transcript it names stays put.
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<std::path::PathBuf>> {
        let d = op.detail_as::<RowFix>()?;
        Ok(vec![std::path::PathBuf::from(&d.index)])
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<super::Recovered> {
        recover(store, op)
    }
    fn revert_conflicts(&self, _store: &Store, op: &OpRecord) -> Vec<String> {
        revert_conflicts(op)
    }
    fn revert(&self, run: &super::Run, op: &OpRecord) -> Result<i64> {
        revert(run, op)
    }
    fn verify_live(&self, op: &OpRecord, seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op, seen.rows)
    }
}
