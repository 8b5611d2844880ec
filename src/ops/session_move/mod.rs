//! Moving a transcript between `sessions/Y/M/D/` and `archived_sessions/` together with its
//! thread row, as Codex's own `archive` / `unarchive` do, journaled so that a crash at any
//! instant leaves the file exactly once, whole, and its row matching where it is.

mod execute;
mod plan;
mod recover;
mod revert;
mod verify;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::thread_row::RowState;
use super::{OpKind, OpRecord};
use super::{Recovered, Run};
use crate::store::{OpState, Store};

pub use execute::{BATCH, SLICE, execute_all, execute_batch};
pub(crate) use plan::codex_spelling_of;
pub use plan::{archive_destination, plan_archive};
use recover::recover;
pub use revert::{adopt_index_now, folders_we_created, plan_revert, revert_conflicts};
pub use verify::RowLookup;
use verify::verify_live;

/// What the journal keeps of a move beyond the columns of `ops`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MoveDetail {
    pub thread_id: String,
    /// The thread index updated with the move; `None` for homes without one.
    pub index: Option<String>,
    pub row_before: Option<RowState>,
    pub row_after: Option<RowState>,
    /// Folders this op created for its destination, removed again if it is rolled back.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// Folders an earlier op created that this one empties (an undo), removed if empty.
    #[serde(default)]
    pub tidy_dirs: Vec<PathBuf>,
    /// Why the op was rolled back because Codex wrote to its source meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_to_codex: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PlannedMove {
    pub kind: OpKind,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub detail: MoveDetail,
    pub reverts_op: Option<i64>,
    /// The content hash when the caller has just read it, so the file is read only once.
    pub known_hash: Option<String>,
}

pub fn is_move(op: &OpRecord) -> bool {
    matches!(op.kind, OpKind::ArchiveSession | OpKind::UnarchiveSession)
        && op.state == OpState::Applied
}

pub struct SessionMove;

impl super::OpType for SessionMove {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::UnarchiveSession {
            "unarchived session"
        } else {
            "archived session"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<MoveDetail>(json).map(super::OpDetail::SessionMove)
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<Recovered> {
        recover(store, op)
    }
    /// A session move is taken back only together with the other moves of its undo, which
    /// share one write to the thread index: `undo` checks them with `revert_conflicts`.
    fn revert_conflicts(&self, _store: &Store, op: &OpRecord) -> Vec<String> {
        vec![format!(
            "op {}: a session move is taken back in a batch with its thread index, by undo",
            op.id
        )]
    }
    fn revert(&self, _run: &Run, op: &OpRecord) -> Result<i64> {
        anyhow::bail!(
            "op {}: a session move is taken back in a batch with its thread index, by undo",
            op.id
        )
    }
    fn verify_live(&self, op: &OpRecord, seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op, seen.rows, seen.indexes_now, seen.hashes)
    }
}
