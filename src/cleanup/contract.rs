//! A reviewed plan is a contract. `cleanup --yes --plan <id>` carries out an action only
//! when the planner makes that very action now, field for field; an action the planner
//! no longer makes (its session became recent, its file changed) is skipped with the
//! reason. Any edit of the plan file refuses the whole plan, naming the field: an edited
//! action would otherwise be carried out under an id that still matches (its path set to
//! `auth.json`), or silently ignored (a changed target).

use anyhow::Result;
use std::collections::{HashMap, HashSet};

use super::action_list::Terms;
use super::plan::action_id;
use super::plan_store::Seal;
use super::{Action, Plan};
use crate::error::MaintError;

/// Edits named one by one in the refusal; the rest are counted.
const EDITS_NAMED: usize = 20;

impl Action {
    /// A digest of every field an action is carried out by (everything but its `reason`,
    /// which is prose, and its `id`, which is checked against these): two actions with the
    /// same terms do the same thing.
    pub fn terms(&self) -> Terms {
        let fields = serde_json::json!([
            self.category,
            self.kind,
            self.path,
            self.target,
            self.bytes,
            self.mtime_ns,
            self.main_repository,
            self.projects,
        ]);
        let digest = blake3::hash(fields.to_string().as_bytes());
        let mut terms = [0u8; 16];
        terms.copy_from_slice(&digest.as_bytes()[..16]);
        terms
    }
}

/// Refuses (exit 3, before anything is written) a reviewed plan that is not, field for
/// field, what the dry run saved and the planner makes: a broken seal, a plan id or home
/// that is not this one, a duplicated action, or an action whose fields were edited.
pub fn enforce(requested: &str, reviewed: &Plan, seal: &Seal, current: &Plan) -> Result<()> {
    let mut edits = Vec::new();
    if reviewed.id != requested {
        edits.push(format!(
            "id: the file of plan {requested} says it is plan {}",
            reviewed.id
        ));
    }
    if reviewed.home != current.home {
        edits.push(format!(
            "home: made for {}, not {}",
            reviewed.home, current.home
        ));
    }
    // Edited actions, by their place in the plan, and what identifies their counterpart.
    let mut edited: Vec<(usize, Action)> = Vec::new();
    let mut more_edited = 0usize;
    for (at, a) in reviewed.actions.each()?.enumerate() {
        let a = a?;
        let sound = match current.actions.terms_of(&a.id) {
            Some(terms) => terms == a.terms(),
            // Not planned now: fine if the action still is what its id names (its item
            // changed since), edited if not.
            None => action_id(&a) == a.id,
        };
        if !sound {
            if edited.len() < EDITS_NAMED {
                edited.push((at, a));
            } else {
                more_edited += 1;
            }
        }
    }
    // The ids are sorted: a duplicated action sits beside its twin.
    let ids = reviewed.actions.sorted_ids();
    if let Some((twin, _)) = ids
        .zip(reviewed.actions.sorted_ids().skip(1))
        .find(|(a, b)| a == b)
    {
        edits.push(format!("actions[].id: two actions with id {twin}"));
    }
    edits.extend(name_edits(&edited, current)?);
    if more_edited > 0 {
        edits.push(format!("... and {more_edited} more edited actions"));
    }
    if let Seal::Broken(why) = seal {
        if edits.is_empty() {
            edits.push(outside_the_actions(reviewed, current));
        }
        edits.insert(0, format!("seal: {why}"));
    }
    if edits.is_empty() {
        return Ok(());
    }
    let first_field = edits
        .iter()
        .find(|e| !e.starts_with("seal:"))
        .or(edits.first())
        .cloned()
        .unwrap_or_default();
    Err(MaintError::refused(
        format!(
            "plan {requested} is not the plan `cleanup --dry-run` sealed: {first_field}; the whole plan is refused and nothing was changed; run `codex-maint cleanup --dry-run` again and review the new plan"
        ),
        edits,
    )
    .into())
}

/// For each edited action, the fields that differ from the action the planner makes now
/// with the same id or, failing that, on the same path.
fn name_edits(edited: &[(usize, Action)], current: &Plan) -> Result<Vec<String>> {
    if edited.is_empty() {
        return Ok(Vec::new());
    }
    let ids: HashSet<&str> = edited.iter().map(|(_, a)| a.id.as_str()).collect();
    let paths: HashSet<&str> = edited.iter().map(|(_, a)| a.path.as_str()).collect();
    let mut by_id: HashMap<String, Action> = HashMap::new();
    let mut by_path: HashMap<String, Action> = HashMap::new();
    for a in current.actions.each()? {
        let a = a?;
        if ids.contains(a.id.as_str()) {
            by_id.insert(a.id.clone(), a.clone());
        }
        if paths.contains(a.path.as_str()) {
            by_path.insert(a.path.clone(), a);
        }
    }
    Ok(edited
        .iter()
        .map(|(at, a)| {
            let counterpart = by_id.get(&a.id).or_else(|| by_path.get(&a.path));
            let fields = counterpart.map(|c| differing_fields(a, c)).unwrap_or_default();
            match (counterpart, fields.is_empty()) {
                (Some(c), false) => fields
                    .iter()
                    .map(|(field, was, now)| {
                        format!(
                            "actions[{at}].{field}: the plan says {was}, the planner makes action {} with {now}",
                            c.id
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => format!(
                    "actions[{at}]: its fields (kind, path, target, bytes, mtime_ns, projects) are not those its id {} was made from",
                    a.id
                ),
            }
        })
        .collect())
}

/// Each field where `a` differs from `b`: its name, and both values as JSON.
fn differing_fields(a: &Action, b: &Action) -> Vec<(&'static str, String, String)> {
    let json = |v: serde_json::Value| v.to_string();
    let pairs = [
        ("id", json(a.id.clone().into()), json(b.id.clone().into())),
        (
            "category",
            json(a.category.clone().into()),
            json(b.category.clone().into()),
        ),
        (
            "kind",
            json(serde_json::json!(a.kind)),
            json(serde_json::json!(b.kind)),
        ),
        (
            "path",
            json(a.path.clone().into()),
            json(b.path.clone().into()),
        ),
        (
            "target",
            json(serde_json::json!(a.target)),
            json(serde_json::json!(b.target)),
        ),
        ("bytes", a.bytes.to_string(), b.bytes.to_string()),
        ("mtime_ns", a.mtime_ns.to_string(), b.mtime_ns.to_string()),
        (
            "main_repository",
            json(serde_json::json!(a.main_repository)),
            json(serde_json::json!(b.main_repository)),
        ),
        (
            "projects",
            json(serde_json::json!(a.projects)),
            json(serde_json::json!(b.projects)),
        ),
    ];
    pairs.into_iter().filter(|(_, x, y)| x != y).collect()
}

/// A broken seal with every action sound: the edit is in a field no action is carried out
/// by; named where it can be told.
fn outside_the_actions(reviewed: &Plan, current: &Plan) -> String {
    if reviewed.categories != current.categories {
        return format!(
            "categories: the plan says {:?}, the planner covers {:?}",
            reviewed.categories, current.categories
        );
    }
    if reviewed.bytes != reviewed.actions.bytes() {
        return format!(
            "bytes: the plan says {}, its actions add up to {}",
            reviewed.bytes,
            reviewed.actions.bytes()
        );
    }
    "a field no action is carried out by (a reason, a kept item, created_at)".into()
}
