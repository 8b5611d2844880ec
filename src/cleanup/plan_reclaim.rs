//! The `reclaim` step of a plan: the free pages of Codex's thread history and log
//! databases (`policy::reclaim` says which and when), vacuumed after every step that takes
//! rows out of them.
//!
//! What is free is measured twice: here, to decide and to say how much, and again by the
//! op when it runs, which vacuums whatever is free then. So the action names only the
//! database (no size, no mtime): Codex writing a log row between review and apply, or a
//! retire earlier in the same run freeing pages, must not make the reviewed action differ
//! from the one the planner makes now.

use std::path::Path;

use super::action_list::ActionListBuilder;
use super::plan::{Action, Kept, action_id};
use crate::ops::OpKind;
use crate::policy::reclaim::{is_reclaimable_database, judge_reclaim};
use crate::survey::InspectData;

pub const CATEGORY: &str = "reclaim";
/// The categories whose actions take rows out of these databases: a database they touch is
/// reclaimed whatever is free when the plan is made.
const TAKES_ROWS_OUT: &[&str] = &["retire"];

pub(super) fn plan(
    data: &InspectData,
    actions: &mut ActionListBuilder,
    kept: &mut Vec<Kept>,
) -> anyhow::Result<()> {
    let rows_leave = TAKES_ROWS_OUT.iter().any(|c| actions.plans(c));
    for db in &data.databases {
        let path = Path::new(&db.path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_reclaimable_database(&name) {
            continue;
        }
        // A log database the `logs` step moves whole into the store leaves nothing here.
        if actions
            .few_so_far()
            .iter()
            .any(|a| a.kind == OpKind::StoreFiles && a.path == db.path)
        {
            continue;
        }
        let Some(free) = db.free_pages else {
            kept.push(Kept {
                category: CATEGORY.into(),
                path: db.path.clone(),
                reason: "its free pages could not be read".into(),
            });
            continue;
        };
        match judge_reclaim(db.bytes, free.bytes, rows_leave) {
            Ok(reason) => actions.push(action(&db.path, reason))?,
            Err(reason) => kept.push(Kept {
                category: CATEGORY.into(),
                path: db.path.clone(),
                reason,
            }),
        }
    }
    Ok(())
}

fn action(path: &str, reason: String) -> Action {
    let mut a = Action {
        id: String::new(),
        category: CATEGORY.into(),
        kind: OpKind::ReclaimDatabase,
        path: path.to_string(),
        target: None,
        bytes: 0,
        reason,
        mtime_ns: 0,
        main_repository: None,
        projects: Vec::new(),
    };
    a.id = action_id(&a);
    a
}

/// The free bytes inspect measured in the databases a plan reclaims: what it expects to
/// give back, though the op gives back what is free when it runs.
pub fn planned_free_bytes(data: &InspectData, paths: &[&str]) -> u64 {
    data.databases
        .iter()
        .filter(|d| paths.contains(&d.path.as_str()))
        .filter_map(|d| d.free_pages.map(|f| f.bytes))
        .sum()
}
