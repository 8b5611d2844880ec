//! Retiring a session: taking it out of Codex's view whole (its transcript and every row
//! any of Codex's databases keys by its thread, what `codex delete` removes) into the
//! store's packs, so that `restore` and `undo` give it back byte for byte, rows included.
//! Codex then neither lists nor counts it: this is what keeps a heavy home under the
//! 10,000 files per folder Codex lists, and its thread history from holding a second copy.

mod bring_back;
mod execute;
pub mod lineage;
pub mod transcript_object;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::{OpKind, OpRecord, Recovered, Run};
use crate::store::{OpState, Store};
pub use execute::{BATCH, PlannedRetire, execute_batch, plan_retire};
pub use transcript_object::{StoredTranscript, TranscriptForm};

/// What the journal keeps of a retire (and of the restore that takes it back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetireDetail {
    pub thread_id: String,
    /// The home whose databases the rows came from.
    pub home: PathBuf,
    pub transcript: StoredTranscript,
    /// The thread's rows, `thread_rows::dump` lines, as one object.
    pub rows_object: String,
    pub row_count: u64,
    /// `database.table` of every table rows were taken from.
    pub tables: Vec<String>,
    /// The thread this one forks from (`history_base` in its first record): it reads its
    /// early turns from that thread's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forks_from: Option<String>,
    /// What the session was about and where it ran (its `threads` row's title, else first
    /// message, and `cwd`): how `sessions` names a retired session without reading it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// A restore writes the transcript here first, then renames it into place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp: Option<PathBuf>,
    /// The file a restore wrote: the only one its own rollback may remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<crate::ops::created_file::CreatedFile>,
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_to_codex: Option<String>,
}

/// Whether `op` is a retire in force: the session is in the store, not in the home.
pub fn is_retired(op: &OpRecord) -> bool {
    op.kind == OpKind::RetireSession && op.state == OpState::Applied && op.reverted_by.is_none()
}

/// The transcript's place in the home, whichever way round the op goes.
fn home_place(op: &OpRecord) -> PathBuf {
    match op.kind {
        OpKind::RetireSession => PathBuf::from(&op.src),
        _ => PathBuf::from(op.dst.as_deref().unwrap_or_default()),
    }
}

pub struct SessionRetire;

impl super::OpType for SessionRetire {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::RetireSession {
            "retired session"
        } else {
            "brought back retired session"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<RetireDetail>(json).map(super::OpDetail::Retire)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let d = op.detail_as::<RetireDetail>()?;
        let mut paths = vec![home_place(op)];
        paths.extend(d.temp.clone());
        Ok(paths)
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<Recovered> {
        bring_back::recover(store, op)
    }
    fn revert_conflicts(&self, store: &Store, op: &OpRecord) -> Vec<String> {
        match op.kind {
            OpKind::RetireSession => bring_back::restore_conflicts(store, op),
            _ => execute::retire_again_conflicts(op),
        }
    }
    fn revert(&self, run: &Run, op: &OpRecord) -> Result<i64> {
        match op.kind {
            OpKind::RetireSession => bring_back::restore(run, op),
            _ => execute::retire_again(run, op),
        }
    }
    fn verify_live(&self, op: &OpRecord, _seen: &super::Seen<'_>) -> Vec<String> {
        // A retired session's bytes are proven by the store's own check of every object
        // (`verify_retired`); here, only that the home does not hold it twice.
        let place = home_place(op);
        match (op.kind, place.symlink_metadata().is_ok()) {
            (OpKind::RetireSession, true) => vec![format!(
                "op {}: retired session {} is in the home again at {} (not by codex-maint)",
                op.id,
                op.detail_as::<RetireDetail>()
                    .map(|d| d.thread_id.clone())
                    .unwrap_or_default(),
                place.display()
            )],
            _ => Vec::new(),
        }
    }
}

/// What `verify` finds wrong with the retired sessions themselves: each must have both its
/// objects in the store (whose own check decodes every object to its hash).
pub fn verify_retired(
    objects: &crate::store::pack::ObjectStore<'_>,
    retired: &[crate::store::catalog::RetiredSession],
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for r in retired {
        for (what, id) in [
            ("transcript", &r.transcript_object),
            ("rows", &r.rows_object),
        ] {
            let present = match id.parse() {
                Ok(id) => objects.contains(&id)?,
                Err(_) => false,
            };
            if !present {
                problems.push(format!(
                    "op {}: retired session {}'s {what} object {id} is not in the store",
                    r.op_id, r.thread_id
                ));
            }
        }
    }
    Ok(problems)
}

/// The path a transcript is written to before it is renamed into `place`.
fn temp_for(place: &Path) -> PathBuf {
    crate::fs_atomic::temp_path_beside(place)
}
