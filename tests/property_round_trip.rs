//! Random sequences of archive / undo / restore: after every step each session exists
//! exactly once, whole, with its row matching its place; undoing everything that remains
//! brings back the home exactly as it was.

mod support;

use codex_maint::testkit::synthetic_home::SessionSpec;
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Step {
    Archive(Vec<usize>),
    Undo,
    Restore(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => proptest::collection::vec(0usize..8, 1..4).prop_map(Step::Archive),
        2 => Just(Step::Undo),
        2 => (0usize..16).prop_map(Step::Restore),
    ]
}

/// Ops in force are those verify checks: the latest move of each item.
fn live_ops_with_dst(sb: &Sandbox) -> Vec<(i64, String)> {
    let Some(store) = codex_maint::store::open_read_only(&sb.store).unwrap() else {
        return Vec::new();
    };
    store
        .live_ops()
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.dst.unwrap_or_default()))
        .collect()
}

fn live_archive_ops(sb: &Sandbox) -> Vec<i64> {
    live_ops_with_dst(sb)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_sequence_keeps_the_home_consistent_and_undoes_to_the_start(steps in proptest::collection::vec(step(), 1..7)) {
        let specs: Vec<SessionSpec> = (0..8).map(|i| SessionSpec::aged(i, 15.0 + i as f64, 1500 + 400 * i as usize)).collect();
        let sb = Sandbox::with_sessions(&specs, true);
        let hashes = session_hashes(&sb.home);
        let files_before = sb.home_files_except_databases();
        let rows_before = sb.thread_rows();

        for step in &steps {
            match step {
                Step::Archive(picks) => {
                    let active: Vec<&SessionSpec> = picks.iter().map(|&i| &specs[i])
                        .filter(|s| s.path_in(&sb.home).exists()).collect();
                    let mut ids: Vec<&str> = active.iter().map(|s| s.id.as_str()).collect();
                    ids.dedup();
                    if ids.is_empty() { continue; }
                    let mut args = vec!["archive"];
                    args.extend(ids);
                    sb.ok_json(&args);
                }
                Step::Undo => { sb.ok_json(&["undo"]); }
                Step::Restore(k) => {
                    let live = live_archive_ops(&sb);
                    if live.is_empty() { continue; }
                    let op = live[k % live.len()].to_string();
                    sb.ok_json(&["restore", &op]);
                }
            }
            assert_sessions_whole_and_consistent(&sb.home, &hashes);
            prop_assert_eq!(sb.json(&["verify"]).0, 0);
        }

        // Everything can still be taken back: restoring each op in force that left its
        // session archived returns every session to where it started.
        let archived_dir = sb.home.join("archived_sessions").display().to_string();
        for _ in 0..20 {
            let log_ops = live_ops_with_dst(&sb);
            let Some(op) = log_ops.iter().find(|(_, dst)| dst.starts_with(&archived_dir)) else { break };
            sb.ok_json(&["restore", &op.0.to_string()]);
        }
        let diffs = codex_maint::testkit::fingerprint::differences(&files_before, &sb.home_files_except_databases());
        prop_assert!(diffs.is_empty(), "after undoing everything: {:?} for {:?}", diffs, steps);
        prop_assert_eq!(rows_before, sb.thread_rows());
    }
}
