//! The cleanup itself, below the command that asks for it and the scheduled run that
//! needs no one: plan from a survey, keep the plan for review, apply what still holds as
//! journaled ops after a backup, verify, and report.

mod action_list;
mod apply;
mod apply_sessions;
mod contract;
mod frees;
mod plan;
mod plan_reclaim;
mod plan_store;
mod report;
mod retire_plan;
mod selection;
mod verify;

use std::path::Path;

pub use action_list::ActionList;
pub use apply::apply;
pub use contract::enforce as enforce_contract;
pub use frees::{HomeBytes, PlanFrees, plan_frees};
pub use plan::{Action, Kept, Plan, Planned, build_plan};
pub use plan_store::{Seal, load_plan, save_plan};
pub use report::plan_report;
pub use selection::{Selection, SessionMark};

use crate::survey::SurveyOptions;

pub use crate::policy::CLEANUP_CATEGORIES as CATEGORIES;
pub const ARCHIVED_WORKTREES_DIR: &str = "archived_worktrees";

/// Where a cleanup keeps its plans and journal, and the words that started it, recorded
/// with its run.
pub struct Invocation<'a> {
    pub store_root: &'a Path,
    pub argv: &'a [String],
}

/// What a cleanup runs with: the survey's thresholds, the categories asked for (all when
/// empty), and how the plan was reviewed and confirmed.
pub struct CleanupArgs {
    pub inspect: SurveyOptions,
    pub only: Vec<String>,
    pub dry_run: bool,
    pub yes: bool,
    pub plan_id: Option<String>,
    /// Only these sessions, each for what it was marked (`browse`); `None`: every session.
    pub selection: Option<Selection>,
}
