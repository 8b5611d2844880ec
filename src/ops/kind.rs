//! The kinds of op the journal can hold, and the one trait each kind's module implements.
//! A new kind is a new module with an `OpType` and one row in `op_kinds!` below (the
//! journal's text for it, and the module's type); a new detail type adds one row to
//! `op_details!` in `detail.rs`.

use anyhow::Result;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;

use super::{OpRecord, Recovered, Run, row_now, session_move, transcript_compress};
use crate::content_hash::Prefetched;
use crate::store::Store;

/// What `verify` has gathered once for all ops, so that no kind reopens an index or
/// rehashes a file another op already needed.
pub struct Seen<'a> {
    pub rows: &'a session_move::RowLookup<'a>,
    pub indexes_now: &'a row_now::IndexesNow,
    pub hashes: &'a Prefetched,
    pub proven: &'a transcript_compress::Proven,
}

/// Everything the journal needs from a kind once its op is prepared: finishing or undoing
/// it after a crash, taking it back, checking it still holds, and naming it to a person.
pub trait OpType: Sync {
    /// The words `describe` puts before the op's paths, e.g. "archived session".
    fn what_it_did(&self, kind: OpKind) -> &'static str;

    /// The paths in the home that applying, taking back or recovering the op writes.
    fn home_paths(&self, op: &OpRecord) -> Result<Vec<PathBuf>> {
        let mut paths = vec![PathBuf::from(&op.src)];
        paths.extend(op.dst.as_deref().map(PathBuf::from));
        Ok(paths)
    }

    /// Reads the detail of an op of this kind from the catalog's JSON.
    fn read_detail(&self, json: serde_json::Value) -> serde_json::Result<super::OpDetail>;

    /// Finishes or rolls back an op a crash left `prepared`.
    fn recover(&self, store: &Store, op: &OpRecord) -> Result<Recovered>;

    /// Why the op cannot be taken back now; empty when it can.
    fn revert_conflicts(&self, store: &Store, op: &OpRecord) -> Vec<String>;

    /// Takes the op back, as a new journaled op of `run`; returns that op's id.
    fn revert(&self, run: &Run, op: &OpRecord) -> Result<i64>;

    /// What is wrong with the op, taken to be in force.
    fn verify_live(&self, op: &OpRecord, seen: &Seen<'_>) -> Vec<String>;
}

macro_rules! op_kinds {
    ($($kind:ident = $text:literal => $op_type:path,)+) => {
        /// One kind of journaled op. Its text is what the catalog's `ops.kind` column
        /// holds, so it never changes once a binary has written it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum OpKind {
            $($kind,)+
        }

        impl OpKind {
            pub const ALL: &'static [OpKind] = &[$(OpKind::$kind,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(OpKind::$kind => $text,)+
                }
            }

            pub fn from_journal(text: &str) -> Option<OpKind> {
                match text {
                    $($text => Some(OpKind::$kind),)+
                    _ => None,
                }
            }

            pub fn op_type(self) -> &'static dyn OpType {
                match self {
                    $(OpKind::$kind => &$op_type,)+
                }
            }
        }
    };
}

op_kinds! {
    ArchiveSession = "archive_session" => session_move::SessionMove,
    UnarchiveSession = "unarchive_session" => session_move::SessionMove,
    CompressSession = "compress_session" => transcript_compress::Recode,
    DecompressSession = "decompress_session" => transcript_compress::Recode,
    StoreFiles = "store_files" => super::store_files::StoreFiles,
    RestoreFiles = "restore_files" => super::store_files::StoreFiles,
    StoreDir = "store_dir" => super::store_dir::StoreDir,
    RestoreDir = "restore_dir" => super::store_dir::StoreDir,
    MoveWorktree = "move_worktree" => super::worktree_move::WorktreeMove,
    EditConfig = "edit_config" => super::config_edit::ConfigEdit,
    WriteFile = "write_file" => super::write_file::WriteFile,
    RepairThreadRow = "repair_thread_row" => super::row_repair::RowRepair,
    RetireSession = "retire_session" => super::session_retire::SessionRetire,
    RestoreSession = "restore_session" => super::session_retire::SessionRetire,
    ReclaimDatabase = "reclaim_database" => super::database_reclaim::DatabaseReclaim,
    UnreclaimDatabase = "unreclaim_database" => super::database_reclaim::DatabaseReclaim,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OpKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OpKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        OpKind::from_journal(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown op kind {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_journal_text() {
        for kind in OpKind::ALL {
            assert_eq!(OpKind::from_journal(kind.as_str()), Some(*kind));
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(serde_json::from_str::<OpKind>(&json).unwrap(), *kind);
        }
        assert_eq!(OpKind::from_journal("no_such_kind"), None);
    }

    #[test]
    fn journal_texts_are_those_earlier_binaries_wrote() {
        let texts: Vec<&str> = OpKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            texts,
            [
                "archive_session",
                "unarchive_session",
                "compress_session",
                "decompress_session",
                "store_files",
                "restore_files",
                "store_dir",
                "restore_dir",
                "move_worktree",
                "edit_config",
                "write_file",
                "repair_thread_row",
                "retire_session",
                "restore_session",
                "reclaim_database",
                "unreclaim_database",
            ]
        );
    }
}
