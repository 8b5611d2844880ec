//! Each op's detail: what the journal keeps of it beyond the columns of `ops`, as a typed
//! value read once when the op is read. In the catalog it is a flat JSON object (so SQL can
//! still reach `$.thread_id` and `$.created_dirs`) carrying its format in `detail_format`;
//! details written before that field existed are format 1.

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use serde_json::Value;

use super::config_edit::ConfigEditDetail;
use super::database_reclaim::ReclaimDetail;
use super::row_repair::RowFix;
use super::session_move::MoveDetail;
use super::session_retire::RetireDetail;
use super::store_dir::StoreDirDetail;
use super::store_files::StoreFilesDetail;
use super::transcript_compress::RecodeDetail;
use super::worktree_move::WorktreeDetail;
use super::write_file::WriteFileDetail;
use super::{OpKind, OpRecord};

/// The newest detail format this binary reads and the one it writes.
pub const DETAIL_FORMAT: u64 = 1;
const FORMAT_FIELD: &str = "detail_format";

/// A detail type that is the detail of some kind, so an op's detail can be asked for it.
pub trait KindDetail: Sized {
    fn within(detail: &OpDetail) -> Option<&Self>;
}

macro_rules! op_details {
    ($($variant:ident($detail:ty),)+) => {
        /// The detail of one op, one variant per kind module (the kind column says which).
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum OpDetail {
            $($variant($detail),)+
        }

        $(impl KindDetail for $detail {
            fn within(detail: &OpDetail) -> Option<&Self> {
                match detail {
                    OpDetail::$variant(d) => Some(d),
                    _ => None,
                }
            }
        })+
    };
}

op_details! {
    SessionMove(MoveDetail),
    Recode(RecodeDetail),
    StoreFiles(StoreFilesDetail),
    StoreDir(StoreDirDetail),
    Worktree(WorktreeDetail),
    ConfigEdit(ConfigEditDetail),
    WriteFile(WriteFileDetail),
    RowRepair(RowFix),
    Retire(RetireDetail),
    Reclaim(ReclaimDetail),
}

impl OpDetail {
    /// Reads the catalog's text for an op of `kind`; a detail of a newer format is refused,
    /// since fields this binary does not know could change what undoing the op means.
    pub fn read(kind: OpKind, text: &str) -> Result<OpDetail> {
        let json: Value = serde_json::from_str(text)?;
        let format = match json.get(FORMAT_FIELD) {
            None => 1,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| anyhow!("{FORMAT_FIELD} is not a number: {v}"))?,
        };
        if format > DETAIL_FORMAT {
            bail!(
                "its detail is format {format}, newer than this version reads ({DETAIL_FORMAT}); upgrade codex-maint"
            );
        }
        Ok(kind.op_type().read_detail(json)?)
    }

    /// The thread index the op wrote, for the kinds that write one.
    pub fn index(&self) -> Option<&str> {
        match self {
            OpDetail::SessionMove(d) => d.index.as_deref(),
            OpDetail::Recode(d) => d.index.as_deref(),
            OpDetail::RowRepair(d) => Some(&d.index),
            _ => None,
        }
    }
}

impl OpRecord {
    /// This op's detail as its kind's type. The detail was read by kind, so asking for
    /// another kind's type is a mistake in the caller, reported with the op named.
    pub fn detail_as<T: KindDetail>(&self) -> Result<&T> {
        T::within(&self.detail).ok_or_else(|| {
            anyhow!(
                "op {} ({}): its detail is not the one this code expects",
                self.id,
                self.kind
            )
        })
    }
}

/// A detail as the catalog stores it: the kind's fields and the format they are in.
pub fn stored<T: Serialize>(detail: &T) -> Result<Value> {
    let mut json = serde_json::to_value(detail)?;
    let fields = json
        .as_object_mut()
        .ok_or_else(|| anyhow!("an op's detail must be a JSON object"))?;
    fields.insert(FORMAT_FIELD.into(), DETAIL_FORMAT.into());
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_detail_written_before_formats_existed_reads_as_format_one() {
        let text = r#"{"created_dirs":["/a"]}"#;
        let detail = OpDetail::read(OpKind::WriteFile, text).unwrap();
        let OpDetail::WriteFile(d) = detail else {
            panic!("{detail:?}")
        };
        assert_eq!(d.created_dirs, [PathBuf::from("/a")]);
    }

    #[test]
    fn a_stored_detail_reads_back_and_carries_its_format() {
        let json = stored(&WriteFileDetail {
            created_dirs: vec![PathBuf::from("/b")],
        })
        .unwrap();
        assert_eq!(json[FORMAT_FIELD], DETAIL_FORMAT);
        let detail = OpDetail::read(OpKind::WriteFile, &json.to_string()).unwrap();
        let OpDetail::WriteFile(d) = detail else {
            panic!("{detail:?}")
        };
        assert_eq!(d.created_dirs, [PathBuf::from("/b")]);
    }

    #[test]
    fn a_newer_format_or_a_wrong_shape_is_refused() {
        let newer = format!(
            r#"{{"created_dirs":[],"{FORMAT_FIELD}":{}}}"#,
            DETAIL_FORMAT + 1
        );
        let err = OpDetail::read(OpKind::WriteFile, &newer).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
        assert!(OpDetail::read(OpKind::StoreDir, r#"{"created_dirs":[]}"#).is_err());
        assert!(OpDetail::read(OpKind::StoreDir, "not json").is_err());
    }
}
