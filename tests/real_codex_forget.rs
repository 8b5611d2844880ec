//! `forget` and `prune` end undo history and free the store; they never write the Codex
//! home. On a home the real Codex wrote (0.169 and 0.171), after a cleanup: their dry runs
//! and their runs leave every file of the home, databases with their `-wal`/`-shm`, byte
//! for byte, and Codex's doctor still finds transcripts and index in agreement.

mod support;

use support::codex_cli::{self, Codex};

#[test]
fn forget_and_prune_never_touch_the_codex_home() {
    codex_cli::on_each_current(
        "forget_and_prune_never_touch_the_codex_home",
        |codex: &Codex| {
            let rh = codex_cli::real_home(
                codex,
                &["forget alpha: list the files", "forget beta: say hi"],
            );
            let sb = &rh.sb;
            let plan = sb.ok_json(&["cleanup", "--dry-run", "--only", "sessions"])["data"]["plan"]
                ["id"]
                .as_str()
                .unwrap()
                .to_string();
            sb.ok_json(&["cleanup", "--only", "sessions", "--plan", &plan, "--yes"]);
            let home_before = sb.home_files();
            for args in [
                &["forget", "--keep-last", "0", "--dry-run"][..],
                &["prune", "--dry-run"][..],
                &["forget", "--keep-last", "0", "--yes"][..],
                &["prune"][..],
            ] {
                sb.ok_json(args);
                assert_eq!(
                    sb.home_files(),
                    home_before,
                    "{args:?} changed the Codex home"
                );
            }
            let log = sb.ok_json(&["log"]);
            assert!(log.to_string().contains("forgotten"), "{log:#}");
            sb.cmd().arg("verify").assert().success();
            codex_cli::assert_parity_ok(&rh.bin, &rh.home, "forget and prune");
        },
    );
}
