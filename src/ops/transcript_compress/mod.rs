//! Turning a transcript into its compressed form `<name>.jsonl.zst` and back, in place or
//! together with an archive move, with its thread row pointed at the new path in the same
//! op (as Codex's own unarchive does). The plain file goes only after the compressed one
//! has been decoded again and found to hash to exactly the plain bytes; the compressed file
//! is then the one copy, and decoding it is how undo gives back the byte-identical original.

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
use crate::zstd_stream::EncodeSettings;

pub use execute::{BATCH, SLICE, execute_all, execute_batch};
pub use plan::{plan_archive_compressed, plan_compress_in_place, plan_decompress_in_place};
use recover::recover;
pub use revert::{plan_checked_revert, plan_revert};
use revert::{revert, revert_conflicts};
use verify::verify_live;
pub use verify::{Proven, prove_all};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Compress,
    Decompress,
}

impl Direction {
    pub fn kind(self) -> OpKind {
        match self {
            Direction::Compress => OpKind::CompressSession,
            Direction::Decompress => OpKind::DecompressSession,
        }
    }
    fn of_kind(kind: OpKind) -> Option<Direction> {
        match kind {
            OpKind::CompressSession => Some(Direction::Compress),
            OpKind::DecompressSession => Some(Direction::Decompress),
            _ => None,
        }
    }
    fn reversed(self) -> Direction {
        match self {
            Direction::Compress => Direction::Decompress,
            Direction::Decompress => Direction::Compress,
        }
    }
}

/// What the journal keeps of a recode beyond the columns of `ops`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecodeDetail {
    pub thread_id: String,
    /// The thread index updated with it; `None` for homes without one.
    pub index: Option<String>,
    pub row_before: Option<RowState>,
    pub row_after: Option<RowState>,
    /// Where the new representation is written before it is renamed into place: recovery
    /// removes it by this name.
    pub temp: PathBuf,
    pub settings: Option<EncodeSettings>,
    /// Known once the one pass over the source has run (before anything is visible).
    pub plain_hash: Option<String>,
    pub plain_len: Option<u64>,
    pub stored_hash: Option<String>,
    pub stored_len: Option<u64>,
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub tidy_dirs: Vec<PathBuf>,
    /// Why the op was rolled back because Codex wrote to its source meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_to_codex: Option<String>,
    /// The file this op wrote at `temp` and renamed to the destination: the only one its
    /// rollback may remove. Absent in ops journaled before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<crate::ops::created_file::CreatedFile>,
}

impl RecodeDetail {
    /// The hash the source must have, and the destination must have, in `direction`.
    fn hashes(&self, direction: Direction) -> (Option<&String>, Option<&String>) {
        match direction {
            Direction::Compress => (self.plain_hash.as_ref(), self.stored_hash.as_ref()),
            Direction::Decompress => (self.stored_hash.as_ref(), self.plain_hash.as_ref()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PlannedRecode {
    pub direction: Direction,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub detail: RecodeDetail,
    pub reverts_op: Option<i64>,
}

pub fn is_recode(op: &OpRecord) -> bool {
    Direction::of_kind(op.kind).is_some() && op.state == OpState::Applied
}

pub struct Recode;

impl super::OpType for Recode {
    fn what_it_did(&self, kind: OpKind) -> &'static str {
        if kind == OpKind::DecompressSession {
            "decompressed transcript"
        } else {
            "compressed transcript"
        }
    }
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail> {
        serde_json::from_value::<RecodeDetail>(json).map(super::OpDetail::Recode)
    }
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let d = op.detail_as::<RecodeDetail>()?;
        let mut paths = vec![PathBuf::from(&op.src)];
        paths.extend(op.dst.as_deref().map(PathBuf::from));
        paths.push(d.temp.clone());
        Ok(paths)
    }
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<Recovered> {
        recover(store, op)
    }
    fn revert_conflicts(&self, store: &Store, op: &OpRecord) -> Vec<String> {
        revert_conflicts(store, op)
    }
    fn revert(&self, run: &Run, op: &OpRecord) -> Result<i64> {
        revert(run, op)
    }
    fn verify_live(&self, op: &OpRecord, seen: &super::Seen<'_>) -> Vec<String> {
        verify_live(op, seen.rows, seen.indexes_now, seen.proven)
    }
}
