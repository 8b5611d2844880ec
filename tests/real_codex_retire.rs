//! Retire against the real Codex (0.169 and 0.171): a retired session is listed nowhere,
//! Codex's own doctor finds the home consistent, and `restore` and `undo` give back the
//! transcripts and every row, identical, with Codex reading the same turns and resuming.

mod support;

use codex_maint::ops::thread_rows::{ThreadDatabases, dump};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use support::codex_cli::{self, AppServer, Codex};

fn rows_of(home: &Path, ids: &[String]) -> BTreeMap<String, String> {
    let dbs = ThreadDatabases::open(home).unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    dbs.rows_of(&refs)
        .unwrap()
        .into_iter()
        .map(|(id, rows)| (id, String::from_utf8(dump::encode(&rows)).unwrap()))
        .collect()
}

fn turns_of(bin: &Path, home: &Path, ids: &[String]) -> BTreeMap<String, Value> {
    let mut app = AppServer::start(bin, home);
    ids.iter().map(|id| (id.clone(), app.turns(id))).collect()
}

fn transcripts(home: &Path, ids: &[String]) -> BTreeMap<String, (String, Vec<u8>)> {
    ids.iter()
        .map(|id| {
            let path = codex_cli::transcript_of(home, id);
            (
                id.clone(),
                (path.display().to_string(), std::fs::read(&path).unwrap()),
            )
        })
        .collect()
}

fn listed(bin: &Path, home: &Path) -> (Vec<String>, Vec<String>) {
    let mut app = AppServer::start(bin, home);
    (
        app.list_as_picker(false, "standin"),
        app.list_as_picker(true, "standin"),
    )
}

#[test]
fn retired_sessions_leave_codex_whole_and_come_back_identical() {
    codex_cli::on_each_current(
        "retired_sessions_leave_codex_whole_and_come_back_identical",
        |codex: &Codex| {
            let rh = codex_cli::real_home(
                codex,
                &[
                    "retire alpha: list the files",
                    "retire beta: say hello",
                    "retire gamma: count to three",
                ],
            );
            let (home, bin) = (rh.home.clone(), rh.bin.clone());
            let parent = rh.ids[0].clone();
            let fork = {
                let mut app = AppServer::start(&bin, &home);
                let forked = app
                    .request("thread/fork", json!({"threadId": parent}))
                    .expect("thread/fork");
                forked["thread"]["id"].as_str().unwrap().to_string()
            };
            codex_cli::age_transcripts(&home, 40);
            let mut all = rh.ids.clone();
            all.push(fork.clone());
            let sb = &rh.sb;
            let rows_before = rows_of(&home, &all);
            assert!(
                rows_before
                    .values()
                    .all(|r| r.contains("\"table\":\"threads\"")),
                "every thread has its row"
            );
            let turns_before = turns_of(&bin, &home, &all);
            let files_before = transcripts(&home, &all);

            // The fork stays (it was written just now): its parent is kept with the reason.
            let plan_args = [
                "cleanup",
                "--only",
                "sessions,retire",
                "--retire-min-age",
                "30d",
                "--min-age",
                "30d",
            ];
            let fingerprint = sb.home_files();
            let (_, touched) = {
                let now = std::time::SystemTime::now();
                let f = std::fs::File::options()
                    .append(true)
                    .open(codex_cli::transcript_of(&home, &fork))
                    .unwrap();
                f.set_modified(now).unwrap();
                ((), sb.home_files())
            };
            let mut args: Vec<&str> = plan_args.to_vec();
            args.push("--dry-run");
            let dry = sb.ok_json(&args);
            assert_eq!(
                sb.home_files(),
                touched,
                "a dry run changes no byte, databases included"
            );
            let kept = dry.to_string();
            assert!(
                kept.contains("a fork parent with live descendants"),
                "{dry:#}"
            );
            drop(fingerprint);
            support::age_tree(&home.join("sessions"), 40);

            let mut args: Vec<&str> = plan_args.to_vec();
            args.push("--dry-run");
            let reviewed = sb.ok_json(&args);
            let plan_id = reviewed["data"]["plan"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{reviewed:#}"))
                .to_string();
            let mut yes = plan_args.to_vec();
            yes.extend(["--plan", &plan_id, "--yes"]);
            let done = sb.ok_json(&yes);
            let retired = done
                .to_string()
                .matches("\"kind\":\"retire_session\"")
                .count();
            assert!(retired >= 4, "all four sessions retired: {done:#}");
            for id in &all {
                let path = &files_before[id].0;
                assert!(!Path::new(path).exists(), "{path} left the home");
            }
            let rows_now = rows_of(&home, &all);
            assert!(
                rows_now.values().all(|r| r.is_empty()),
                "no row of a retired thread is left: {rows_now:?}"
            );
            let (active, archived) = listed(&bin, &home);
            for id in &all {
                assert!(
                    !active.contains(id) && !archived.contains(id),
                    "retired {id} is listed nowhere"
                );
            }
            codex_cli::assert_parity_ok(&bin, &home, "retire");
            sb.cmd().arg("verify").assert().success();

            // One session back by its id: byte for byte, rows and turns identical.
            let one = rh.ids[1].clone();
            sb.ok_json(&["restore", &one]);
            let (path, bytes) = &files_before[&one];
            assert_eq!(
                &std::fs::read(path).unwrap(),
                bytes,
                "{path} is back byte for byte"
            );
            assert_eq!(
                rows_of(&home, std::slice::from_ref(&one)),
                rows_of_subset(&rows_before, &one)
            );
            assert_eq!(
                turns_of(&bin, &home, std::slice::from_ref(&one))[&one],
                turns_before[&one]
            );
            codex_cli::assert_parity_ok(&bin, &home, "restore of one");

            // The rest with undo, lineage included.
            let run = done["data"]["run_id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{done:#}"))
                .to_string();
            sb.ok_json(&["undo", "--run", &run, "--yes"]);
            for id in &all {
                let (path, bytes) = &files_before[id];
                assert_eq!(
                    &std::fs::read(path).unwrap(),
                    bytes,
                    "{path} is back byte for byte"
                );
            }
            assert_eq!(
                rows_of(&home, &all),
                rows_before,
                "every row is back, identical"
            );
            assert_eq!(
                turns_of(&bin, &home, &all),
                turns_before,
                "Codex reads the same turns"
            );
            codex_cli::assert_parity_ok(&bin, &home, "undo of the retire");
            let (active, _) = listed(&bin, &home);
            for id in &all {
                assert!(active.contains(id), "{id} is listed again");
            }
            sb.cmd().arg("verify").assert().success();

            // And Codex resumes a session that was retired.
            let work = rh.sb.dir.path().join("work");
            let out = codex_cli::codex(&bin, &home)
                .current_dir(&work)
                .args([
                    "exec",
                    "--skip-git-repo-check",
                    "resume",
                    &one,
                    "one more turn after restore",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "codex resumes {one}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let turns = turns_of(&bin, &home, std::slice::from_ref(&one));
            assert!(
                turns[&one].as_array().unwrap().len()
                    > turns_before[&one].as_array().unwrap().len()
            );
            codex_cli::assert_parity_ok(&bin, &home, "resume after restore");
        },
    );
}

fn rows_of_subset(all: &BTreeMap<String, String>, id: &str) -> BTreeMap<String, String> {
    [(id.to_string(), all[id].clone())].into()
}

/// A session retired from a home 0.169 wrote comes back after 0.171 has migrated the home
/// (new tables, new indexes): its rows go back by column name, and 0.171 reads the same
/// turns 0.169 read.
#[test]
fn a_session_retired_under_0_169_comes_back_into_a_home_0_171_migrated() {
    let (Some(old), Some(new)) = (
        codex_cli::require_version("retired_under_0_169_restored_under_0_171", "0.169.0"),
        codex_cli::require_version("retired_under_0_169_restored_under_0_171", "0.171.0"),
    ) else {
        return;
    };
    let codex = Codex {
        version: "0.169.0",
        bin: old.clone(),
    };
    let rh = codex_cli::real_home(
        &codex,
        &["upgrade alpha: list the files", "upgrade beta: say hi"],
    );
    let (home, sb) = (rh.home.clone(), &rh.sb);
    let id = rh.ids[0].clone();
    let turns_before = turns_of(&old, &home, std::slice::from_ref(&id));
    let file_before = transcripts(&home, std::slice::from_ref(&id));
    let rows_before = rows_of(&home, std::slice::from_ref(&id));
    let args = RETIRE_CLEANUP;
    let plan = reviewed_plan(sb, &args);
    let mut yes: Vec<&str> = args.to_vec();
    yes.extend(["--plan", &plan, "--yes"]);
    sb.ok_json(&yes);
    assert!(!Path::new(&file_before[&id].0).exists());

    // 0.171 opens the home and migrates it in place.
    drop(AppServer::start(&new, &home));
    let migrated: i64 = rusqlite::Connection::open(home.join("state_5.sqlite"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'session_model_ids'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(migrated, 1, "0.171 added its table");

    sb.ok_json(&["restore", &id]);
    let (path, bytes) = &file_before[&id];
    assert_eq!(&std::fs::read(path).unwrap(), bytes);
    assert_eq!(
        rows_of(&home, std::slice::from_ref(&id)),
        rows_before,
        "the rows are back as they were"
    );
    assert_eq!(
        turns_of(&new, &home, std::slice::from_ref(&id))[&id],
        turns_before[&id],
        "0.171 reads the turns 0.169 wrote"
    );
    codex_cli::assert_parity_ok(&new, &home, "restore into the migrated home");
}

/// Codex resumes a session right before retire would take it out (its objects stored, its op
/// prepared): the retire checks the transcript and rows again under Codex's writer locks,
/// leaves that session as Codex wrote it (its op rolled back), and retires the others. The
/// new turn is read by Codex, doctor parity is ok, and verify passes.
#[test]
fn a_resume_right_before_retire_removes_the_session_keeps_its_turn() {
    use codex_maint::failpoint::{ACTION_POINT_VAR, ACTION_RUN_VAR};
    codex_cli::on_each_current(
        "a_resume_right_before_retire_removes_the_session_keeps_its_turn",
        |codex: &Codex| {
            let rh = codex_cli::real_home(
                codex,
                &["race alpha: list the files", "race beta: say hello"],
            );
            let (home, bin, sb) = (rh.home.clone(), rh.bin.clone(), &rh.sb);
            let work = sb.dir.path().join("work");
            let (raced, other) = (rh.ids[0].clone(), rh.ids[1].clone());
            let other_path = codex_cli::transcript_of(&home, &other);
            let marker = format!("resumed-during-retire-{}", codex.version.replace('.', "-"));
            let exit_file = sb.dir.path().join("resume.exit");
            let resume_cmd = format!(
                "case \"$CODEX_MAINT_ACTION_PATH\" in *{raced}*) cd '{}' && CODEX_HOME='{}' RUST_LOG=error '{}' exec --skip-git-repo-check resume {raced} '{marker}' </dev/null >/dev/null 2>&1; echo $? > '{}';; esac",
                work.display(),
                home.display(),
                bin.display(),
                exit_file.display()
            );
            let args = RETIRE_CLEANUP;
            let plan = reviewed_plan(sb, &args);
            let mut yes: Vec<&str> = vec!["--json"];
            yes.extend(args);
            yes.extend(["--plan", &plan, "--yes"]);
            let out = sb
                .cmd()
                .env(ACTION_POINT_VAR, "before-source-removed")
                .env(ACTION_RUN_VAR, &resume_cmd)
                .args(&yes)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{report}");
            assert_eq!(
                std::fs::read_to_string(&exit_file).unwrap().trim(),
                "0",
                "Codex resumed {raced}"
            );
            assert!(report.contains("left as Codex wrote it"), "{report}");
            assert!(!other_path.exists(), "the other session was retired");
            let transcript = codex_cli::transcript_of(&home, &raced);
            let text = codex_maint::zstd_stream::open_plain(&transcript)
                .map(|mut r| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut r, &mut s).unwrap();
                    s
                })
                .unwrap();
            assert!(text.contains(&marker), "the new turn is in the transcript");
            let turns = turns_of(&bin, &home, std::slice::from_ref(&raced));
            assert!(
                turns[&raced].to_string().contains(&marker),
                "thread/read returns the new turn"
            );
            codex_cli::assert_parity_ok(&bin, &home, "a retire Codex raced");
            sb.cmd().arg("verify").assert().success();
        },
    );
}

/// A cleanup that archives and then retires sessions idle 30 days.
const RETIRE_CLEANUP: [&str; 7] = [
    "cleanup",
    "--only",
    "sessions,retire",
    "--retire-min-age",
    "30d",
    "--min-age",
    "30d",
];

/// The id of the plan a dry run of `args` saves, for the user's reviewed `--plan`.
fn reviewed_plan(sb: &support::Sandbox, args: &[&str]) -> String {
    let mut dry: Vec<&str> = args.to_vec();
    dry.push("--dry-run");
    sb.ok_json(&dry)["data"]["plan"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}
