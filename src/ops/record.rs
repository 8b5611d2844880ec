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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kind: &str, detail: &str) -> StoredOp {
        StoredOp {
            id: 7,
            run_id: 1,
            seq: 1,
            kind: kind.into(),
            state: OpState::Applied,
            src: "/h/config.toml".into(),
            dst: Some("/h/config.toml".into()),
            size: None,
            mode: None,
            mtime_ns: None,
            hash_before: None,
            hash_after: None,
            blob: None,
            detail: detail.into(),
            reverts_op: None,
            reverted_by: None,
            prepared_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
        }
    }

    #[test]
    fn an_unknown_kind_is_an_error_naming_the_op_and_the_kind() {
        let err = OpRecord::try_from(stored("shred_session", "{}")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("op 7") && text.contains("shred_session"),
            "{text}"
        );
    }

    #[test]
    fn an_unreadable_detail_is_an_error_naming_the_op_and_its_kind() {
        for detail in ["not json", r#"{"removed_projects": 3}"#] {
            let err = OpRecord::try_from(stored("edit_config", detail)).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("op 7") && text.contains("edit_config"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_detail_written_by_an_earlier_binary_reads_as_its_kind() {
        let detail = r#"{"removed_projects":["/gone"],"before_blob":"a","after_blob":"b","mode":420,"before_mtime_ns":1,"after_mtime_ns":null}"#;
        let op = OpRecord::try_from(stored("edit_config", detail)).unwrap();
        assert_eq!(op.kind, OpKind::EditConfig);
        let d = op
            .detail_as::<crate::ops::config_edit::ConfigEditDetail>()
            .unwrap();
        assert_eq!(d.removed_projects, ["/gone"]);
    }
}
