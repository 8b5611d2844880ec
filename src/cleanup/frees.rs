//! What a plan frees, category by category: exact where bytes leave the home for the
//! store, estimated (at the survey's measured ratio) where transcripts are compressed,
//! nothing where items only move within the home.

use serde::Serialize;

use super::Plan;
use crate::clock::human_bytes;
use crate::ops::OpKind;
use crate::survey::InspectData;

#[derive(Debug, Serialize)]
pub struct CategoryFrees {
    pub category: String,
    pub actions: u64,
    pub bytes: u64,
    pub frees: u64,
    /// `exact` (moved out of the home into the store), `estimated` (compressed, at the
    /// sample's ratio), `free_pages` (a database's free pages as inspect measured them; the
    /// op reclaims what is free when it runs) or `none` (moved within the home, or edited).
    pub how: &'static str,
}

#[derive(Debug, Serialize)]
pub struct PlanFrees {
    pub categories: Vec<CategoryFrees>,
    pub exact: u64,
    pub estimated: u64,
    /// Database free pages the plan's `reclaim` gives back, as measured when planning.
    #[serde(default)]
    pub free_pages: u64,
    pub total: u64,
    /// How the compression estimate was made, when the plan compresses anything.
    pub estimate_method: Option<String>,
}

pub fn plan_frees(plan: &Plan, data: &InspectData) -> PlanFrees {
    let estimate = data.compression.estimate.as_ref();
    let compressed = |bytes: u64| estimate.map_or(0, |e| e.freed_from(bytes));
    let mut categories = Vec::new();
    for c in &plan.categories {
        let (actions, bytes) = plan.actions.tally(c);
        if actions == 0 {
            continue;
        }
        let (frees, how) = match c.as_str() {
            "sessions" | "compress" => {
                let (n, plain) = plan.actions.tally_of(c, OpKind::CompressSession);
                (compressed(plain), if n > 0 { "estimated" } else { "none" })
            }
            // A retired transcript leaves the home whole; its rows leave the databases, whose
            // pages come back only with `reclaim`, so they are not counted here.
            "logs" | "releases" | "retire" => (bytes, "exact"),
            "reclaim" => {
                let paths: Vec<&str> = plan
                    .actions
                    .few()
                    .iter()
                    .filter(|a| a.category == "reclaim")
                    .map(|a| a.path.as_str())
                    .collect();
                (
                    super::plan_reclaim::planned_free_bytes(data, &paths),
                    "free_pages",
                )
            }
            _ => (0, "none"),
        };
        categories.push(CategoryFrees {
            category: c.clone(),
            actions,
            bytes,
            frees,
            how,
        });
    }
    let sum = |how: &str| -> u64 {
        categories
            .iter()
            .filter(|c| c.how == how)
            .map(|c| c.frees)
            .sum()
    };
    let (exact, estimated, free_pages) = (sum("exact"), sum("estimated"), sum("free_pages"));
    PlanFrees {
        estimate_method: categories
            .iter()
            .any(|c| c.how == "estimated")
            .then(|| estimate.map(|e| e.method.clone()))
            .flatten(),
        categories,
        exact,
        estimated,
        free_pages,
        total: exact + estimated + free_pages,
    }
}

impl PlanFrees {
    /// The plan's total line.
    pub fn total_line(&self, plan: &Plan) -> String {
        let mut line = format!(
            "plan {}: {} actions on {}; frees about {} in all: {} exactly (moved into the store), about {} by compression",
            plan.id,
            plan.actions.len(),
            human_bytes(plan.bytes),
            human_bytes(self.total),
            human_bytes(self.exact),
            human_bytes(self.estimated),
        );
        if self.free_pages > 0 {
            line.push_str(&format!(
                ", about {} of database free pages (measured now; reclaimed as they are when it runs)",
                human_bytes(self.free_pages)
            ));
        }
        if let Some(method) = &self.estimate_method {
            line.push_str(&format!(" (estimated from a sample: {method})"));
        }
        line
    }

    /// What one category frees, as its summary line ends.
    pub fn of(&self, category: &str) -> String {
        match self.categories.iter().find(|c| c.category == category) {
            Some(c) if c.how == "exact" => format!("frees {}", human_bytes(c.frees)),
            Some(c) if c.how == "estimated" => format!("frees about {}", human_bytes(c.frees)),
            Some(c) if c.how == "free_pages" => format!(
                "frees about {} of free pages (measured again when it runs)",
                human_bytes(c.frees)
            ),
            _ if category == "projects" => "frees 0 (an edit of config.toml)".to_string(),
            _ => "frees 0 (moved within the home)".to_string(),
        }
    }
}

/// The home on disk before and after a run, each measured by the survey's walk of it.
#[derive(Debug, Serialize)]
pub struct HomeBytes {
    pub before: u64,
    pub after: u64,
    /// Negative when the home grew (folders made for what moved within it).
    pub freed: i64,
    pub measured_by: &'static str,
}

impl HomeBytes {
    pub fn measured(before: &InspectData, after: &InspectData) -> HomeBytes {
        let (b, a) = (before.total.disk_bytes, after.total.disk_bytes);
        HomeBytes {
            before: b,
            after: a,
            freed: b as i64 - a as i64,
            measured_by: "a walk of the home before planning and another after the run, summing every entry's allocated blocks",
        }
    }

    pub fn line(&self, planned: &PlanFrees) -> String {
        let freed = if self.freed >= 0 {
            format!("{} freed", human_bytes(self.freed as u64))
        } else {
            format!("{} more", human_bytes(self.freed.unsigned_abs()))
        };
        format!(
            "the home: {} before, {} after: {freed}, measured by walking it before and after the run (the plan said about {})",
            human_bytes(self.before),
            human_bytes(self.after),
            human_bytes(planned.total)
        )
    }
}
