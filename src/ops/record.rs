//! An op as the `ops` layer works with it: its kind and detail read once from the catalog's
//! text, so every function after that holds a known kind and a parsed detail.

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use super::{OpDetail, OpKind};
use crate::store::{OpState, StoredOp};

#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    pub id: i64,
    pub run_id: i64,
    pub seq: i64,
    pub kind: OpKind,
    pub state: OpState,
    pub src: String,
    pub dst: Option<String>,
    pub size: Option<i64>,
    pub mode: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub hash_before: Option<String>,
    pub hash_after: Option<String>,
    pub blob: Option<String>,
    pub detail: OpDetail,
    pub reverts_op: Option<i64>,
    pub reverted_by: Option<i64>,
    pub prepared_at: String,
    pub finished_at: Option<String>,
}

impl TryFrom<StoredOp> for OpRecord {
    type Error = anyhow::Error;

    /// A kind or detail this binary cannot read is an error naming the op: acting on a
    /// guess could undo or verify something other than what was done.
    fn try_from(stored: StoredOp) -> Result<OpRecord> {
        let kind = OpKind::from_journal(&stored.kind).ok_or_else(|| {
            anyhow!(
                "op {} has a kind this version does not know ({}); upgrade codex-maint",
                stored.id,
                stored.kind
            )
        })?;
        let detail = OpDetail::read(kind, &stored.detail).with_context(|| {
            format!(
                "op {} ({kind}): its journal detail cannot be read",
                stored.id
            )
        })?;
        Ok(OpRecord {
            id: stored.id,
            run_id: stored.run_id,
            seq: stored.seq,
            kind,
            state: stored.state,
            src: stored.src,
            dst: stored.dst,
            size: stored.size,
            mode: stored.mode,
            mtime_ns: stored.mtime_ns,
            hash_before: stored.hash_before,
            hash_after: stored.hash_after,
            blob: stored.blob,
            detail,
            reverts_op: stored.reverts_op,
            reverted_by: stored.reverted_by,
            prepared_at: stored.prepared_at,
            finished_at: stored.finished_at,
        })
    }
}

/// Reads every op of a catalog query, failing on the first one this binary cannot read.
pub fn read_all(stored: Vec<StoredOp>) -> Result<Vec<OpRecord>> {
    stored.into_iter().map(OpRecord::try_from).collect()
}

/// Reads one op of a catalog query, if there was one.
pub fn read_one(stored: Option<StoredOp>) -> Result<Option<OpRecord>> {
    stored.map(OpRecord::try_from).transpose()
}
