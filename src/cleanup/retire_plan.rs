//! Which sessions a cleanup retires: archived sessions idle at least the retire age, and,
//! whatever their age, the oldest beyond the folder cap, so that `archived_sessions/` never
//! holds more than Codex lists (10,000 files a folder). Sessions this same cleanup archives
//! count as archived: one whose archive would only be followed by its retire is retired
//! straight from where it is, rather than compressed first for nothing.
//!
//! A thread with a fork that stays is never chosen: the fork reads its early turns from it.

use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::plan::{Kept, action};
use crate::home::sessions::{SessionFile, SessionLocation};
use crate::home::thread_index::ThreadRow;
use crate::ops::OpKind;
use crate::policy::{SessionKnowledge, SessionPolicy, judge_with};

use crate::clock::human_age;
use crate::ops::session_retire::lineage::Lineage;

/// A session that may be retired: it passed the same protections as an archive.
pub struct Candidate<'a> {
    pub thread_id: &'a str,
    pub age_secs: u64,
}

/// Why a candidate is retired: a word, not a sentence, since a heavy home has 100,000 of
/// them; the sentence is written as each action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    IdleLong,
    BeyondCap,
}

/// The candidates chosen (by index, with the reason) and those kept back for a fork.
#[derive(Debug, Default)]
pub struct Choice {
    pub retire: Vec<(usize, Why)>,
    pub kept_for_forks: Vec<(usize, String)>,
}

/// `archived_after` is how many transcripts `archived_sessions/` holds once this cleanup's
/// archives are done, the protected ones included.
pub fn choose(
    candidates: &[Candidate<'_>],
    archived_after: usize,
    min_age_secs: u64,
    folder_cap: usize,
    lineage: &Lineage,
) -> Choice {
    let mut reasons: Vec<Option<Why>> = candidates
        .iter()
        .map(|c| (c.age_secs >= min_age_secs).then_some(Why::IdleLong))
        .collect();
    let by_age = reasons.iter().filter(|r| r.is_some()).count();
    let mut staying = archived_after.saturating_sub(by_age);
    if staying > folder_cap {
        let mut oldest_first: Vec<usize> = (0..candidates.len())
            .filter(|i| reasons[*i].is_none())
            .collect();
        oldest_first.sort_by_key(|i| std::cmp::Reverse(candidates[*i].age_secs));
        for i in oldest_first {
            if staying <= folder_cap {
                break;
            }
            reasons[i] = Some(Why::BeyondCap);
            staying -= 1;
        }
    }
    // A thread goes only with every fork of it; dropping one may hold back its own parent.
    let mut kept_for_forks = Vec::new();
    loop {
        let going: HashSet<&str> = candidates
            .iter()
            .zip(&reasons)
            .filter(|(_, r)| r.is_some())
            .map(|(c, _)| c.thread_id)
            .collect();
        let left = lineage.forks_left_behind(&going);
        if left.is_empty() {
            break;
        }
        for (parent, fork) in left {
            if let Some(i) = candidates.iter().position(|c| c.thread_id == parent)
                && reasons[i].take().is_some()
            {
                kept_for_forks.push((
                    i,
                    format!(
                        "a fork parent with live descendants: {fork} reads its early turns from it"
                    ),
                ));
            }
        }
    }
    Choice {
        retire: reasons
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .collect(),
        kept_for_forks,
    }
}

/// Reads the thread rows of a slice of transcripts (`None` without a thread index).
pub type RowsOf<'a> = dyn Fn(&[&SessionFile]) -> Result<Option<HashMap<String, ThreadRow>>> + 'a;

/// What the retire step decided beyond its actions (handed to the plan as they are made):
/// the transcripts they take, which no archive or compress action of the same plan may
/// name, and the sessions it keeps.
pub struct RetirePlanned<'f> {
    pub taken: HashSet<&'f Path>,
    pub kept: Vec<Kept>,
}

/// Judges the archived transcripts in `files` for retire (the archive protections, with no
/// age: the cap applies at any age), adds `archiving` (chosen for archive by this plan,
/// with their ages), and chooses. Under a selection (`browse`), only the sessions picked
/// to be retired are judged, wherever they lie, and each picked one that passes goes: the
/// pick is the person's own request, as naming a session is.
#[allow(clippy::too_many_arguments)]
pub fn plan<'f>(
    files: &'f [SessionFile],
    archiving: &[(&'f SessionFile, u64)],
    rows_of: &RowsOf<'_>,
    known: &SessionKnowledge<'_>,
    options: &crate::survey::SurveyOptions,
    picks: Option<&super::Selection>,
    push: &mut dyn FnMut(super::Action) -> Result<()>,
) -> Result<RetirePlanned<'f>> {
    let archived_total = files
        .iter()
        .filter(|f| f.location == SessionLocation::Archived)
        .count();
    let archived: Vec<&SessionFile> = files
        .iter()
        .filter(|f| match picks {
            None => f.location == SessionLocation::Archived,
            Some(_) => super::selection::retire_picked(picks, &f.path),
        })
        .collect();
    let archiving = if picks.is_some() { &[][..] } else { archiving };
    let policy = SessionPolicy {
        min_age_secs: 0,
        explicit_request: false,
        handoff_min_bytes: options.handoff_min_bytes,
    };
    let mut eligible: Vec<(&'f SessionFile, u64)> = Vec::new();
    let mut kept = Vec::new();
    for slice in archived.chunks(1024) {
        let rows = rows_of(slice)?;
        let slice_known = SessionKnowledge {
            rows: rows.as_ref(),
            ..*known
        };
        let judged = judge_with(
            slice.to_vec(),
            &slice_known,
            |facts| crate::policy::judge_for_archive(facts, &policy),
            |_, _| (),
        );
        eligible.extend(judged.chosen.into_iter().map(|(f, (), age)| (f, age)));
        for p in judged.protected {
            kept.push(Kept {
                category: "retire".into(),
                path: p.path,
                reason: p.protection.map(|x| x.explain()).unwrap_or_default(),
            });
        }
    }
    eligible.extend(archiving.iter().copied());
    let lineage = crate::ops::session_retire::lineage::of_files(files);
    let candidates: Vec<Candidate<'_>> = eligible
        .iter()
        .map(|(f, age)| Candidate {
            thread_id: f.id().unwrap_or(""),
            age_secs: *age,
        })
        .collect();
    let (min_age, cap) = match picks {
        None => (options.retire_min_age_secs, options.retire_folder_cap),
        Some(_) => (0, usize::MAX),
    };
    let choice = choose(
        &candidates,
        archived_total + archiving.len(),
        min_age,
        cap,
        &lineage,
    );
    // Forks before the threads they read from, so that a parent is retired only once its
    // forks have gone (they may fall in an earlier batch); otherwise by path, a fixed order
    // whatever order the folders were read in, since the plan's contract compares actions
    // one for one.
    let mut chosen = choice.retire;
    let depth_of = |i: usize| eligible[i].0.id().map_or(0, |id| lineage.depth(id));
    chosen.sort_by(|(a, _), (b, _)| {
        depth_of(*b)
            .cmp(&depth_of(*a))
            .then_with(|| eligible[*a].0.path.cmp(&eligible[*b].0.path))
    });
    let mut taken = HashSet::with_capacity(chosen.len());
    for (i, why) in chosen {
        let (file, age) = eligible[i];
        let reason = match (picks, why) {
            (Some(_), _) => format!(
                "picked to be retired, idle {}; taken out of Codex's view into the store, restorable",
                human_age(age)
            ),
            (None, Why::IdleLong) => format!(
                "archived, idle {} (retire age {}); taken out of Codex's view into the store, restorable",
                human_age(age),
                human_age(min_age)
            ),
            (None, Why::BeyondCap) => format!(
                "archived, idle {}: among the oldest beyond the {cap} transcripts archived_sessions/ keeps so that Codex lists every one; taken into the store, restorable",
                human_age(age)
            ),
        };
        push(action(
            "retire",
            OpKind::RetireSession,
            &file.path,
            None,
            file.size,
            reason,
        ))?;
        taken.insert(file.path.as_path());
    }
    for (i, reason) in choice.kept_for_forks {
        kept.push(Kept {
            category: "retire".into(),
            path: eligible[i].0.path.display().to_string(),
            reason,
        });
    }
    Ok(RetirePlanned { taken, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn candidates(ages: &[(&'static str, u64)]) -> Vec<Candidate<'static>> {
        ages.iter()
            .map(|(id, days)| Candidate {
                thread_id: id,
                age_secs: days * DAY,
            })
            .collect()
    }

    fn chosen(choice: &Choice, c: &[Candidate<'_>]) -> Vec<String> {
        let mut ids: Vec<String> = choice
            .retire
            .iter()
            .map(|(i, _)| c[*i].thread_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn old_sessions_retire_and_the_cap_takes_the_oldest_of_the_rest() {
        let c = candidates(&[("a", 200), ("b", 10), ("c", 50), ("d", 30), ("e", 20)]);
        // 6 archived after this run (one protected), a cap of 3: a by age, then c and d.
        let choice = choose(&c, 6, 180 * DAY, 3, &Lineage::default());
        assert_eq!(chosen(&choice, &c), ["a", "c", "d"]);
        // Under the cap, age alone decides.
        let choice = choose(&c, 6, 180 * DAY, 9_000, &Lineage::default());
        assert_eq!(chosen(&choice, &c), ["a"]);
    }

    #[test]
    fn a_parent_stays_while_a_fork_of_it_does_and_goes_with_all_of_them() {
        let c = candidates(&[("parent", 300), ("fork", 20), ("other", 300)]);
        let lineage = Lineage::from_pairs([("fork".to_string(), "parent".to_string())]);
        let choice = choose(&c, 3, 180 * DAY, 9_000, &lineage);
        assert_eq!(chosen(&choice, &c), ["other"]);
        assert_eq!(choice.kept_for_forks.len(), 1);
        assert!(
            choice.kept_for_forks[0]
                .1
                .contains("fork reads its early turns")
        );
        let c = candidates(&[("parent", 300), ("fork", 200)]);
        let choice = choose(&c, 2, 180 * DAY, 9_000, &lineage);
        assert_eq!(chosen(&choice, &c), ["fork", "parent"]);
    }
}
