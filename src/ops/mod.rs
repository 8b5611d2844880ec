//! The reversible operations. Each knows how to prepare (journal first), apply, recover
//! after a crash, take itself back, and say whether it still holds. `ops` is the only
//! layer that joins the Codex home and the store.

pub mod session_move;
pub mod thread_row;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::store::{OpRecord, OpState, Store};

/// One mutating invocation, as recorded in `runs`.
pub struct Run<'s> {
    pub store: &'s Store,
    pub id: i64,
}

impl<'s> Run<'s> {
    pub fn begin(
        store: &'s Store,
        command: &str,
        args: &[String],
        home: &str,
        reverts_run: Option<i64>,
    ) -> Result<Run<'s>> {
        let id = store.catalog.begin_run(command, args, home, reverts_run)?;
        Ok(Run { store, id })
    }

    pub fn finish(self, status: &str) -> Result<()> {
        crate::failpoint::hit("run-finishing");
        self.store.catalog.finish_run(self.id, status)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Recovered {
    RolledForward,
    RolledBack,
    /// The disk is in a state recovery will not guess about; left `prepared`, reported.
    Stuck(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoveredOp {
    pub op_id: i64,
    pub run_id: i64,
    pub kind: String,
    pub src: String,
    pub dst: Option<String>,
    pub result: Recovered,
}

/// Finishes or rolls back every op a crash left `prepared`, then closes the runs it
/// interrupted. Every writing command calls this first.
pub fn recover_all(store: &Store) -> Result<Vec<RecoveredOp>> {
    let mut results = Vec::new();
    for op in store.catalog.ops_in_state(OpState::Prepared)? {
        let result = recover_one(store, &op)?;
        results.push(RecoveredOp {
            op_id: op.id,
            run_id: op.run_id,
            kind: op.kind.clone(),
            src: op.src.clone(),
            dst: op.dst.clone(),
            result,
        });
    }
    store.catalog.mark_unfinished_runs_interrupted()?;
    Ok(results)
}

fn recover_one(store: &Store, op: &OpRecord) -> Result<Recovered> {
    match op.kind.as_str() {
        session_move::ARCHIVE | session_move::UNARCHIVE => session_move::recover(store, op),
        other => bail!(
            "op {} has a kind this version does not know ({other}); upgrade codex-maint",
            op.id
        ),
    }
}
