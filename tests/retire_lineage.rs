//! A fork reads its early turns from the thread it forks from (`history_base`): retiring
//! that thread while the fork stays is refused by the op itself, with nothing changed, and
//! retiring both together works and gives both back.

mod support;

use codex_maint::ops::Run;
use codex_maint::ops::session_retire::{self, lineage};
use codex_maint::ops::thread_rows::ThreadDatabases;
use codex_maint::store::Store;
use codex_maint::testkit::synthetic_home::SessionSpec;
use support::Sandbox;

/// Makes `fork`'s first record name `parent` as its history base, as Codex writes a fork.
fn make_fork(path: &std::path::Path, parent: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let mut record: serde_json::Value = serde_json::from_str(first).unwrap();
    record["payload"]["history_base"] = serde_json::json!({"thread_id": parent, "end_ordinal_exclusive": 3, "end_byte_offset": 100});
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, format!("{record}\n{rest}")).unwrap();
    std::fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn a_parent_is_not_retired_while_its_fork_stays_and_goes_with_it() {
    let specs: Vec<SessionSpec> = (0..3).map(|i| SessionSpec::aged(i, 200.0, 3_000)).collect();
    let sb = Sandbox::with_sessions(&specs, true);
    let (parent, fork) = (&specs[0], &specs[1]);
    make_fork(&fork.path_in(&sb.home), &parent.id);
    let before = sb.home_files();
    let files_before = sb.home_files_except_databases();
    let rows_before = sb.thread_rows();
    let hashes = support::session_hashes(&sb.home);

    let store = Store::open_for_write(&sb.store).unwrap();
    let run = Run::begin(&store, "test", &[], &sb.home, None).unwrap();
    let lineage = lineage::of_home(&sb.home).unwrap();
    assert_eq!(lineage.parent_of(&fork.id), Some(parent.id.as_str()));
    let mut dbs = ThreadDatabases::open(&sb.home).unwrap();
    let alone = vec![session_retire::plan_retire(
        &parent.path_in(&sb.home),
        &parent.id,
        None,
    )];
    let err = session_retire::execute_batch(&run, alone, &mut dbs, &lineage).unwrap_err();
    drop(dbs);
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!("{} forks from {}", fork.id, parent.id)),
        "{text}"
    );
    assert_eq!(
        codex_maint::error::exit_kind_of(&err),
        codex_maint::error::ExitKind::Refused
    );
    assert_eq!(sb.home_files(), before, "a refused retire changes nothing");
    let mut dbs = ThreadDatabases::open(&sb.home).unwrap();

    let both = vec![
        session_retire::plan_retire(&parent.path_in(&sb.home), &parent.id, None),
        session_retire::plan_retire(&fork.path_in(&sb.home), &fork.id, Some(parent.id.clone())),
    ];
    let outcomes = session_retire::execute_batch(&run, both, &mut dbs, &lineage).unwrap();
    assert!(outcomes.iter().all(|o| o.done().is_some()), "{outcomes:?}");
    assert!(!parent.path_in(&sb.home).exists() && !fork.path_in(&sb.home).exists());
    run.finish("done").unwrap();
    drop(dbs);
    drop(store);
    sb.ok_json(&["undo", "--yes"]);
    support::assert_sessions_whole_and_consistent(&sb.home, &hashes);
    sb.assert_back_to(&files_before, &rows_before, "undo of the lineage's retire");
}
