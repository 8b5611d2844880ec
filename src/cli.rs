//! Command-line parsing and printing; no logic of its own.

use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;

use crate::commands::{self, Context};
use crate::error::{ExitKind, details_of, exit_kind_of};
use crate::report::Report;

pub mod reference;
pub use reference::reference_markdown;

#[derive(Parser)]
#[command(
    name = "codex-maint",
    version = version_text(),
    about = "Keep a Codex home light, recoverable and explainable: measure, archive, undo, verify."
)]
struct Cli {
    /// The Codex home (default: $CODEX_HOME, else ~/.codex)
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Where codex-maint keeps its catalog, blobs and backups (default: $CODEX_MAINT_STORE, else ~/.codex-maintenance)
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print one JSON document on stdout instead of the text report
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find the weight and the risks in the Codex home; changes nothing
    Inspect(commands::inspect::InspectArgs),
    /// List sessions as people know them: title, project, size, idle time, state and why cleanup keeps one; changes nothing
    Sessions(commands::sessions::SessionsArgs),
    /// Browse the home by weight in the terminal (sessions by project or month), mark sessions, and apply or take back the plan, journaled as cleanup's
    Browse(commands::browse::BrowseArgs),
    /// Archive sessions by id (full or unique prefix) or by age, as Codex's own archive does
    Archive(commands::archive::ArchiveArgs),
    /// Inspect, plan, confirm, back up, then archive, rotate, move and prune; verify after
    Cleanup(commands::cleanup::CleanupFlags),
    /// Design the repeatable maintenance routine; install a scheduler entry only when asked
    Automation(commands::automation::AutomationArgs),
    /// Write handoff documents for long useful sessions (or named ones), from their transcripts
    Handoff(commands::handoff::HandoffArgs),
    /// List runs, one run's operations, or every operation that touched a session
    Log(commands::log::LogArgs),
    /// Take back the last run (or run N), newest operation first
    Undo(commands::undo::UndoArgs),
    /// Put one item back where it was: an operation by id, or a session where Codex had it
    Restore(commands::undo::RestoreArgs),
    /// Turn compressed transcripts (.jsonl.zst) back into plain ones, e.g. before going back to a Codex older than 0.137; journaled, `undo` compresses them again
    Decompress(commands::decompress::DecompressArgs),
    /// Make Codex's thread index agree with the transcripts on disk (rows that lost their file, archived flags that disagree with the folder); journaled, `undo` puts the rows back
    Repair(commands::repair::RepairArgs),
    /// End undo history past a window (--keep-within 90d, --keep-last N, --run N): forgotten runs stay in `log`; what only they held is freed
    Forget(commands::forget::ForgetArgs),
    /// Remove from the store what nothing references (blobs, backups of forgotten runs, used or stale plans); crash-safe
    Prune(commands::prune::PruneArgs),
    /// Check the catalog, every blob and every archived item, and that Codex's index agrees with each; exit 4 on any problem
    Verify,
    /// Finish or roll back operations interrupted by a crash
    Recover,
    /// Print the Codex skill that drives codex-maint, or install it into the Codex home
    Skill(commands::skill::SkillArgs),
    /// Print shell completions for codex-maint
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `codex-maint man > codex-maint.1`
    Man,
}

/// The release, and the catalog format it reads and writes, so a user can tell whether two
/// installs share a store safely.
fn version_text() -> &'static str {
    // clap wants a 'static string; this is built once per parse.
    Box::leak(
        format!(
            "{} (catalog format {})",
            env!("CARGO_PKG_VERSION"),
            crate::store::migrations::CATALOG_FORMAT
        )
        .into_boxed_str(),
    )
}

pub fn main_exit_code() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitKind::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    if let Some(code) = print_about_the_cli(&cli.command) {
        return code;
    }
    match dispatch(cli) {
        Ok(report) => match print_report(&report, json) {
            Ok(()) => report.exit_code,
            // The reader stopped reading (`| head`): it has what it wanted, and every
            // command finishes its work before printing, so nothing was cut short.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => report.exit_code,
            Err(e) => {
                say(&format!("codex-maint: writing the report: {e}"));
                if report.exit_code == 0 {
                    ExitKind::Error.code()
                } else {
                    report.exit_code
                }
            }
        },
        Err(err) => {
            let kind = exit_kind_of(&err);
            let details = details_of(&err);
            if json {
                let doc = serde_json::json!({
                    "error": { "message": format!("{err:#}"), "kind": kind, "exit_code": kind.code(), "details": details }
                });
                let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
                // A closed stdout must not hide the exit code the error earned.
                let _ = writeln!(std::io::stdout(), "{text}");
            }
            say(&format!("codex-maint: {err:#}"));
            for d in details {
                say(&format!("  - {d}"));
            }
            kind.code()
        }
    }
}

/// One line on stderr. `eprintln!` panics when stderr is a closed pipe (`2>&1 | head`);
/// a message nobody can read is dropped instead.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Completions and the man page describe the parser itself, so they are made here rather
/// than by a command.
fn print_about_the_cli(command: &Command) -> Option<i32> {
    // Made in memory first: clap_complete panics when its writer fails.
    let mut text = Vec::new();
    let made = match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "codex-maint", &mut text);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut text),
        _ => return None,
    };
    let written = made.and_then(|()| {
        let mut out = std::io::stdout().lock();
        out.write_all(&text).and_then(|()| out.flush())
    });
    Some(match written {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            say(&format!("codex-maint: {e}"));
            ExitKind::Error.code()
        }
    })
}

/// The report on stdout; an error here means the output did not all reach the reader.
fn print_report(report: &Report, json: bool) -> std::io::Result<()> {
    // Buffered and streamed: a report's long lists are read back from disk as they are
    // written.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, report)
            // Keeps an I/O error's kind, so a closed pipe is still told apart.
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        if report.raw_text.is_some()
            && let Some(notes) = &report.raw_notes
        {
            let _ = write!(std::io::stderr(), "{notes}");
        }
        out.write_all(report.render_text().as_bytes())?;
    }
    out.flush()
}

fn dispatch(cli: Cli) -> anyhow::Result<Report> {
    let ctx = Context {
        home_flag: cli.home,
        store_root: commands::resolve_store_root(cli.store.as_deref())?,
        json: cli.json,
        // Kept as `runs.args` for a person to read, never acted on again; `args()` would
        // panic on an argument that is not UTF-8. A path argument that is acted on (the
        // home, an item) is checked where it is recorded (`path_text`).
        argv: std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    };
    match cli.command {
        Command::Inspect(args) => commands::inspect::run(&ctx, &args),
        Command::Sessions(args) => commands::sessions::run(&ctx, &args),
        Command::Browse(args) => commands::browse::run(&ctx, &args),
        Command::Archive(args) => commands::archive::run(&ctx, args),
        Command::Cleanup(flags) => commands::cleanup::run_with_flags(&ctx, flags),
        Command::Automation(args) => commands::automation::run(&ctx, args),
        Command::Handoff(args) => commands::handoff::run(&ctx, args),
        Command::Log(args) => commands::log::run(&ctx, args.run, args.session.as_deref()),
        Command::Undo(args) => commands::undo::undo(&ctx, args.run, args.dry_run),
        Command::Restore(args) => commands::undo::restore(&ctx, &args.target, args.dry_run),
        Command::Decompress(args) => commands::decompress::run(&ctx, args),
        Command::Repair(args) => commands::repair::run(&ctx, args),
        Command::Forget(args) => commands::forget::run(&ctx, args),
        Command::Prune(args) => commands::prune::run(&ctx, args),
        Command::Verify => commands::verify::run(&ctx),
        Command::Recover => commands::recover::run(&ctx),
        Command::Skill(args) => commands::skill::run(&ctx, args),
        Command::Completions { .. } | Command::Man => {
            unreachable!("printed by print_about_the_cli before dispatch")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` is the manual most users read; a flag without a line there is a guess.
    #[test]
    fn every_argument_of_every_command_says_what_it_does() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "codex-maint", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
