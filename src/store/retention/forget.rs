//! Forget: which runs' undo history ends, and why some are kept. A forgotten run stays in
//! `runs` and `ops` (so `log` reads it), marked in `forgotten_runs`; its ops leave force,
//! and prune may then free what only it held.

use anyhow::Result;
use rusqlite::params;
use serde::Serialize;
use std::collections::HashSet;

use super::{ONLY_COPY_KINDS, RETIRE_KIND, references};
use crate::store::Catalog;

/// Which runs to forget.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Exactly this run.
    Run(i64),
    /// Every run but those kept: started within `within` seconds of now, or among the
    /// `last` newest (restic's rule: a run either keeps is kept).
    Keep {
        within_secs: Option<u64>,
        last: Option<usize>,
    },
}

/// The user's explicit yeses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Yeses {
    /// Drop the only copy of a log (or release) a run moved into the store.
    pub only_copies: bool,
    /// Drop retired sessions (the user's data, not undo history).
    pub retired: bool,
}

/// An item whose one copy is a blob that forgetting the run frees.
#[derive(Debug, Clone, Serialize)]
pub struct OnlyCopy {
    pub op_id: i64,
    pub kind: String,
    pub path: String,
    pub bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunToForget {
    pub run_id: i64,
    pub command: String,
    pub started_at: String,
    /// Its changes still in force: what can no longer be undone once it is forgotten.
    pub in_force: u64,
    pub only_copies: Vec<OnlyCopy>,
    pub retired_sessions: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub run_id: i64,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ForgetPlan {
    pub forget: Vec<RunToForget>,
    pub skipped: Vec<Skipped>,
    /// Runs kept by the selection.
    pub kept: Vec<i64>,
}

impl ForgetPlan {
    pub fn run_ids(&self) -> HashSet<i64> {
        self.forget.iter().map(|r| r.run_id).collect()
    }
}

struct Candidate {
    id: i64,
    command: String,
    started_at: String,
}

/// Runs with ops, not forgotten yet, not running, newest first: what a selection picks
/// from. A run that changed nothing (a forget, a prune, a refused cleanup) holds nothing.
fn candidates(catalog: &Catalog, forgotten: &HashSet<i64>) -> Result<Vec<Candidate>> {
    let mut stmt = catalog.connection().prepare(
        "SELECT r.id, r.command, r.started_at FROM runs r
         WHERE r.status != 'running' AND EXISTS (SELECT 1 FROM ops o WHERE o.run_id = r.id)
         ORDER BY r.id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Candidate {
            id: r.get(0)?,
            command: r.get(1)?,
            started_at: r.get(2)?,
        })
    })?;
    let all: Vec<Candidate> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(all
        .into_iter()
        .filter(|c| !forgotten.contains(&c.id))
        .collect())
}

fn age_secs(started_at: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(started_at).ok()?;
    Some((now - t.with_timezone(&chrono::Utc)).num_seconds().max(0) as u64)
}

/// What forgetting `selection` would do, with the runs a missing yes keeps and why.
/// Reads only.
pub fn plan(
    catalog: &Catalog,
    selection: &Selection,
    yeses: Yeses,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ForgetPlan> {
    let forgotten = super::forgotten_runs(catalog)?;
    let candidates = candidates(catalog, &forgotten)?;
    let mut plan = ForgetPlan::default();
    let mut chosen = Vec::new();
    for (rank, c) in candidates.into_iter().enumerate() {
        let pick = match selection {
            Selection::Run(id) => c.id == *id,
            Selection::Keep { within_secs, last } => {
                let within = within_secs
                    .is_some_and(|w| age_secs(&c.started_at, now).is_none_or(|age| age <= w));
                let recent = last.is_some_and(|n| rank < n);
                !(within || recent)
            }
        };
        if pick {
            chosen.push(c);
        } else if !matches!(selection, Selection::Run(_)) {
            plan.kept.push(c.id);
        }
    }
    // What stays held once every chosen run is gone: an only copy another run still holds
    // is not lost.
    let mut gone = forgotten.clone();
    gone.extend(chosen.iter().map(|c| c.id));
    let held_after = references::mark(catalog, &gone)?;
    for c in chosen {
        let unsettled: i64 = catalog.connection().query_row(
            "SELECT COUNT(*) FROM ops WHERE run_id = ?1 AND state = 'prepared'",
            [c.id],
            |r| r.get(0),
        )?;
        if unsettled > 0 {
            // Recovery could not tell where its item is: what it holds may be all there is.
            plan.skipped.push(Skipped {
                run_id: c.id,
                reason: format!(
                    "{unsettled} of its operations were interrupted and are not settled; see `codex-maint verify`"
                ),
            });
            continue;
        }
        let retired = retired_sessions(catalog, c.id)?;
        let only_copies: Vec<OnlyCopy> = catalog
            .live_ops_of_run_of_kinds(c.id, ONLY_COPY_KINDS)?
            .into_iter()
            .filter(|op| {
                op.blob
                    .as_deref()
                    .is_none_or(|b| !held_after.holds(references::BLOB, b))
            })
            .map(|op| OnlyCopy {
                op_id: op.id,
                kind: op.kind,
                path: op.src,
                bytes: op.size.unwrap_or(0),
            })
            .collect();
        if retired > 0 && !yeses.retired {
            plan.skipped.push(Skipped {
                run_id: c.id,
                reason: format!(
                    "it holds {retired} retired session(s), which are your data, not undo history; --include-retired drops them"
                ),
            });
            continue;
        }
        if !only_copies.is_empty() && !yeses.only_copies {
            let bytes: i64 = only_copies.iter().map(|o| o.bytes).sum();
            plan.skipped.push(Skipped {
                run_id: c.id,
                reason: format!(
                    "it holds the only copy of {} item(s) it moved into the store ({}), such as {}; --yes-delete-only-copies deletes them",
                    only_copies.len(),
                    crate::clock::human_bytes(bytes.max(0) as u64),
                    only_copies[0].path
                ),
            });
            continue;
        }
        plan.forget.push(RunToForget {
            run_id: c.id,
            command: c.command,
            started_at: c.started_at,
            in_force: catalog.live_op_count(Some(c.id))?,
            only_copies,
            retired_sessions: retired,
        });
    }
    Ok(plan)
}

/// Retired sessions a run holds: ops of the retire kind applied and not taken back.
fn retired_sessions(catalog: &Catalog, run_id: i64) -> Result<u64> {
    let n: i64 = catalog.connection().query_row(
        "SELECT COUNT(*) FROM ops WHERE run_id = ?1 AND kind = ?2 AND state = 'applied' AND reverted_by IS NULL",
        params![run_id, RETIRE_KIND],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Marks the planned runs forgotten, in one transaction; `by_run` is the run doing it.
pub fn apply(catalog: &Catalog, plan: &ForgetPlan, by_run: i64, reason: &str) -> Result<()> {
    let tx = catalog.connection().unchecked_transaction()?;
    let now = crate::clock::now_rfc3339();
    for run in &plan.forget {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO forgotten_runs (run_id, forgotten_at, by_run, reason) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![run.run_id, now, by_run, reason])?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewOp;

    fn catalog() -> Catalog {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrations::apply_pending(&mut conn).unwrap();
        Catalog::new(conn)
    }

    fn run_with(c: &Catalog, kind: &str, applied: bool) -> i64 {
        let run = c.begin_run("cleanup", &[], "/h", None).unwrap();
        let op = c
            .prepare_op(
                run,
                &NewOp {
                    kind: kind.into(),
                    src: format!("/h/item-{run}"),
                    dst: Some(format!("/h/archived/item-{run}")),
                    detail: serde_json::json!({}),
                    ..Default::default()
                },
            )
            .unwrap();
        if applied {
            c.mark_applied(op, None).unwrap();
        }
        c.finish_run(run, "done").unwrap();
        run
    }

    fn everything() -> Selection {
        Selection::Keep {
            within_secs: None,
            last: Some(0),
        }
    }

    #[test]
    fn a_run_with_an_unsettled_op_or_a_retired_session_is_kept_with_the_reason() {
        let c = catalog();
        let unsettled = run_with(&c, "archive_session", false);
        let retired = run_with(&c, RETIRE_KIND, true);
        let plain = run_with(&c, "archive_session", true);
        let plan = plan(&c, &everything(), Yeses::default(), chrono::Utc::now()).unwrap();
        assert_eq!(plan.run_ids(), HashSet::from([plain]));
        let reasons: Vec<(i64, &str)> = plan
            .skipped
            .iter()
            .map(|s| (s.run_id, s.reason.as_str()))
            .collect();
        assert!(
            reasons
                .iter()
                .any(|(r, why)| *r == unsettled && why.contains("interrupted"))
        );
        assert!(
            reasons
                .iter()
                .any(|(r, why)| *r == retired && why.contains("--include-retired"))
        );

        let yes = Yeses {
            retired: true,
            only_copies: true,
        };
        let plan = super::plan(&c, &everything(), yes, chrono::Utc::now()).unwrap();
        assert_eq!(
            plan.run_ids(),
            HashSet::from([plain, retired]),
            "no yes settles an op"
        );
    }

    #[test]
    fn keep_within_and_keep_last_each_keep_what_they_name() {
        let c = catalog();
        let old = run_with(&c, "archive_session", true);
        let newer = run_with(&c, "archive_session", true);
        let newest = run_with(&c, "archive_session", true);
        c.connection()
            .execute(
                "UPDATE runs SET started_at = '2020-01-01T00:00:00Z' WHERE id IN (?1, ?2)",
                [old, newer],
            )
            .unwrap();
        let now = chrono::Utc::now();
        let within = Selection::Keep {
            within_secs: Some(90 * 86_400),
            last: None,
        };
        let plan = plan(&c, &within, Yeses::default(), now).unwrap();
        assert_eq!(plan.run_ids(), HashSet::from([old, newer]));
        let both = Selection::Keep {
            within_secs: Some(90 * 86_400),
            last: Some(2),
        };
        let plan = super::plan(&c, &both, Yeses::default(), now).unwrap();
        assert_eq!(plan.run_ids(), HashSet::from([old]));
        assert_eq!(plan.kept, vec![newest, newer]);
        apply(&c, &plan, newest, "test").unwrap();
        let again = super::plan(&c, &Selection::Run(old), Yeses::default(), now).unwrap();
        assert!(
            again.forget.is_empty(),
            "a forgotten run is not forgotten twice"
        );
    }
}
