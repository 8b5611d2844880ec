//! The marks as the reviewed plan `cleanup` applies: the planner's own plan, narrowed to
//! the marked sessions, judged by the same policy, saved and sealed in the store as a dry
//! run saves it, so that applying it is `cleanup --yes --plan <id>`, with its contract,
//! backup, journal and verification.

use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

use super::marks::Mark;
use crate::cleanup::{CleanupArgs, Selection, build_plan, plan_frees, save_plan};
use crate::clock::human_bytes;
use crate::home::CodexHome;
use crate::survey::{self, DatabaseDepth, SurveyOptions};
use crate::terminal_text::one_line;

/// The plan pane: what will be done, what is kept and why, and what it frees.
#[derive(Debug, Clone, Default)]
pub struct PlanView {
    /// The saved plan's id, when the marks asked for any cleanup.
    pub plan_id: Option<String>,
    pub headline: String,
    pub frees: Vec<String>,
    /// What each action does (kind and size), and the path it acts on.
    pub actions: Vec<(String, String)>,
    pub kept: Vec<String>,
    /// Threads to write a handoff for.
    pub handoffs: Vec<String>,
}

impl PlanView {
    pub fn is_empty(&self) -> bool {
        self.plan_id.is_none() && self.handoffs.is_empty()
    }
}

/// Plans the marks: handoffs as they are, cleanup marks through the planner. Reads the
/// home, writes only the plan into the store's `plans/` (as `cleanup --dry-run` does).
pub fn plan_marks(
    home: &CodexHome,
    store_root: &Path,
    marks: &BTreeMap<String, Mark>,
    thread_of: impl Fn(&str) -> Option<String>,
    active: impl Fn(&str) -> bool,
) -> Result<PlanView> {
    let mut view = PlanView::default();
    let mut selection = Selection::default();
    for (path, mark) in marks {
        match mark {
            Mark::Cleanup(m) => {
                selection.marks.insert(path.clone(), *m);
            }
            Mark::Handoff => view.handoffs.extend(thread_of(path)),
        }
    }
    if selection.marks.is_empty() {
        view.headline = format!(
            "{} handoff documents to write; nothing is moved",
            view.handoffs.len()
        );
        return Ok(view);
    }
    let args = CleanupArgs {
        inspect: SurveyOptions::default(),
        only: selection.categories(&active),
        dry_run: true,
        yes: false,
        plan_id: None,
        selection: Some(selection),
    };
    home.require_recognizable()?;
    let handoffs = crate::policy::handoff_threads(store_root)?;
    let before = survey::gather(home, &args.inspect, &handoffs, DatabaseDepth::Full);
    let planned = build_plan(store_root, home, &before, &args)?;
    let plan = planned.plan;
    save_plan(store_root, &plan)?;
    let frees = plan_frees(&plan, &before);
    view.headline = format!(
        "plan {}: {} actions on {}, frees about {}",
        plan.id,
        plan.actions.len(),
        human_bytes(plan.bytes),
        human_bytes(frees.total)
    );
    for c in &frees.categories {
        view.frees.push(format!(
            "{}: {} actions, {}, {}",
            c.category,
            c.actions,
            human_bytes(c.bytes),
            frees.of(&c.category)
        ));
    }
    if let Some(method) = &frees.estimate_method {
        view.frees
            .push(format!("compression estimated from a sample: {method}"));
    }
    for a in plan.actions.each()? {
        let a = a?;
        view.actions.push((
            format!("{} ({})", a.kind, human_bytes(a.bytes)),
            one_line(&crate::home::relative_to(home, Path::new(&a.path))),
        ));
    }
    for k in &plan.kept {
        view.kept.push(format!(
            "{}: {}",
            one_line(&crate::home::relative_to(home, Path::new(&k.path))),
            one_line(&k.reason)
        ));
    }
    view.plan_id = (!plan.actions.is_empty()).then(|| plan.id.clone());
    Ok(view)
}
