//! The store budget of a maintenance policy: forget past `keep_within`, then, while the
//! store is over `max_store_bytes`, forget the oldest run left and prune again. The run
//! just made is never forgotten by the budget: there must always be a way back from the
//! newest change.

use anyhow::Result;
use serde::Serialize;

use super::forget::{self, ForgetPlan, Selection, Yeses};
use super::prune::{self, Pruned};
use super::sizes::{self, StoreSizes};
use crate::store::Store;

#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub keep_within_secs: Option<u64>,
    pub max_store_bytes: Option<u64>,
    pub yeses: Yeses,
}

#[derive(Debug, Default, Serialize)]
pub struct Kept {
    pub forgotten: Vec<forget::RunToForget>,
    pub skipped: Vec<forget::Skipped>,
    pub pruned: Pruned,
    pub before: StoreSizes,
    pub after: StoreSizes,
    /// Still over `max_store_bytes` once nothing more may be forgotten.
    pub over_budget: bool,
}

/// Forgets the runs of `plan` as run `by_run`, then prunes: what `forget` does.
pub fn forget_and_prune(
    store: &Store,
    plan: &ForgetPlan,
    by_run: i64,
    reason: &str,
) -> Result<Pruned> {
    forget::apply(&store.catalog, plan, by_run, reason)?;
    crate::failpoint::hit("forget-recorded");
    prune::prune(store)
}

/// Keeps the store inside `budget`, as run `by_run` (never forgotten itself, nor the
/// newest run with changes).
pub fn keep(store: &Store, budget: &Budget, by_run: i64) -> Result<Kept> {
    let mut kept = Kept {
        before: sizes::measure(&store.root),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    if let Some(within) = budget.keep_within_secs {
        let selection = Selection::Keep {
            within_secs: Some(within),
            last: Some(1),
        };
        let plan = forget::plan(&store.catalog, &selection, budget.yeses, now)?;
        merge(
            &mut kept,
            forget_and_prune(store, &plan, by_run, "keep_within")?,
            plan,
        );
    } else {
        merge(&mut kept, prune::prune(store)?, ForgetPlan::default());
    }
    if let Some(max) = budget.max_store_bytes {
        let mut size = sizes::measure(&store.root).total;
        while size > max {
            // The oldest run that may go: everything but the newest one with changes.
            let plan = forget::plan(
                &store.catalog,
                &Selection::Keep {
                    within_secs: None,
                    last: Some(1),
                },
                budget.yeses,
                now,
            )?;
            let Some(oldest) = plan.forget.last().cloned() else {
                kept.over_budget = true;
                break;
            };
            let one = ForgetPlan {
                forget: vec![oldest],
                ..Default::default()
            };
            merge(
                &mut kept,
                forget_and_prune(store, &one, by_run, "max_store_bytes")?,
                one,
            );
            size = sizes::measure(&store.root).total;
        }
    }
    kept.skipped.dedup_by_key(|s| s.run_id);
    kept.after = sizes::measure(&store.root);
    Ok(kept)
}

fn merge(kept: &mut Kept, pruned: Pruned, plan: ForgetPlan) {
    kept.forgotten.extend(plan.forget);
    for s in plan.skipped {
        if !kept.skipped.iter().any(|k| k.run_id == s.run_id) {
            kept.skipped.push(s);
        }
    }
    kept.pruned.resumed += pruned.resumed;
    kept.pruned.kept_again += pruned.kept_again;
    kept.pruned.temporaries += pruned.temporaries;
    kept.pruned.compacted.add(&pruned.compacted);
    kept.pruned.removed.extend(pruned.removed);
}
