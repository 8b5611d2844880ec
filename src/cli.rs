//! Command-line parsing and printing; no logic of its own.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

use crate::commands::{self, Context};
use crate::error::{ExitKind, details_of, exit_kind_of};
use crate::report::Report;

#[derive(Parser, Debug)]
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

#[derive(Subcommand, Debug)]
enum Command {
    /// Find the weight and the risks in the Codex home; changes nothing
    Inspect {
        /// Transcripts at least this large are listed (MB)
        #[arg(long, value_name = "MB", default_value_t = 10)]
        large_session_mb: u64,
        /// Log files and log databases at least this large are listed (MB)
        #[arg(long, value_name = "MB", default_value_t = 50)]
        large_log_mb: u64,
        /// Sessions idle for less than this are not archive candidates
        #[arg(long, value_name = "AGE", default_value = "10d")]
        min_age: String,
        /// Archived transcripts idle for less than this are not compression candidates
        #[arg(long, value_name = "AGE", default_value = "7d")]
        compress_min_age: String,
    },
    /// Archive sessions by id (full or unique prefix) or by age, as Codex's own archive does
    Archive {
        /// Session ids or unique prefixes
        ids: Vec<String>,
        /// Archive every session last active longer ago than this (e.g. 30d, 12h, 2w)
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Sessions younger than this are kept in policy runs
        #[arg(long, value_name = "AGE", default_value = "10d")]
        min_age: String,
        /// Sessions at least this large (MB) are kept until they have a handoff, unless named
        #[arg(long, value_name = "MB", default_value_t = 2)]
        handoff_min_mb: u64,
        /// Show what would be archived and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Archive each plain transcript as a compressed `.jsonl.zst` in the same step (needs every Codex using the home at 0.137 or later)
        #[arg(long)]
        compress: bool,
        /// Confirm a policy run without asking
        #[arg(long)]
        yes: bool,
    },
    /// Inspect, plan, confirm, back up, then archive, rotate, move and prune; verify after
    Cleanup {
        /// Only these categories: sessions,compress,logs,worktrees,releases,projects
        #[arg(long, value_delimiter = ',', value_name = "LIST")]
        only: Vec<String>,
        /// Sessions idle for less than this are kept [default: 10d, or the policy's]
        #[arg(long, value_name = "AGE")]
        min_age: Option<String>,
        /// Log files and log databases at least this large are rotated (MB) [default: 50,
        /// or the policy's]
        #[arg(long, value_name = "MB")]
        large_log_mb: Option<u64>,
        /// Sessions at least this large (MB) are kept until they have a handoff [default:
        /// 2, or the policy's]
        #[arg(long, value_name = "MB")]
        handoff_min_mb: Option<u64>,
        /// Archived transcripts idle for less than this are not compressed (category `compress`)
        #[arg(long, value_name = "AGE", default_value = "7d")]
        compress_min_age: String,
        /// Show (and save) the plan with its id; change nothing in the home
        #[arg(long)]
        dry_run: bool,
        /// Apply without asking; needs --plan with the id of the reviewed plan
        #[arg(long)]
        yes: bool,
        /// The id of the plan reviewed with --dry-run
        #[arg(long, value_name = "ID")]
        plan: Option<String>,
        /// Take thresholds from this policy file (see `automation`)
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The scheduled run: inspect, then clean up only what the approved policy opts into
        #[arg(long, requires = "policy")]
        unattended: bool,
    },
    /// Design the repeatable maintenance routine; install a scheduler entry only when asked
    Automation {
        /// The policy file (default: policy.toml in the store)
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Write the default policy file for you to edit
        #[arg(long)]
        init: bool,
        /// Approve the policy as it is now, so a scheduled run may act on it
        #[arg(long)]
        approve: bool,
        /// Print the scheduler entry for this machine
        #[arg(long, value_enum, value_name = "KIND")]
        print_schedule: Option<crate::automation::schedule::Scheduler>,
        /// Write the printed entry (journaled; `undo` removes it); never enables it
        #[arg(long)]
        install: bool,
        /// Confirm --install without asking
        #[arg(long)]
        yes: bool,
    },
    /// Write handoff documents for long useful sessions (or named ones), from their transcripts
    Handoff {
        /// Session ids or unique prefixes
        ids: Vec<String>,
        /// All sessions that are large or have many turns and no handoff yet
        #[arg(long)]
        candidates: bool,
        /// Where to write the documents (default: handoffs/ in the store)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the documents instead of writing them (nothing is recorded)
        #[arg(long)]
        stdout: bool,
        /// List what would be written
        #[arg(long)]
        dry_run: bool,
        /// A session at least this large (MB) is a candidate
        #[arg(long, value_name = "MB", default_value_t = 2)]
        min_mb: u64,
        /// A session with at least this many turns is a candidate
        #[arg(long, value_name = "N", default_value_t = 20)]
        min_turns: u64,
    },
    /// List runs, one run's operations, or every operation that touched a session
    Log {
        /// List the operations of this run
        #[arg(long, value_name = "N", conflicts_with = "session")]
        run: Option<i64>,
        /// List every operation that touched this session (id or unique prefix)
        #[arg(long, value_name = "ID")]
        session: Option<String>,
    },
    /// Take back the last run (or run N), newest operation first
    Undo {
        /// Take back this run instead of the newest one with changes in force
        #[arg(long, value_name = "N")]
        run: Option<i64>,
        /// Check every item and show what would be taken back; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Accepted so scripts can pass --yes to every command; undo asks nothing
        #[arg(long)]
        yes: bool,
    },
    /// Put one item back where it was: an operation by id, or a session where Codex had it
    Restore {
        /// An operation id (digits, as `log --run N` shows it), or a session id or unique prefix
        target: String,
        /// Check the item and show what would be restored; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Accepted so scripts can pass --yes to every command; restore asks nothing
        #[arg(long)]
        yes: bool,
    },
    /// Turn compressed transcripts (.jsonl.zst) back into plain ones, e.g. before going back to a Codex older than 0.137; journaled, `undo` compresses them again
    Decompress {
        /// Only these sessions (ids or unique prefixes); every compressed transcript when none are given
        ids: Vec<String>,
        /// Show what would be decompressed and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Confirm without asking
        #[arg(long)]
        yes: bool,
    },
    /// Make Codex's thread index agree with the transcripts on disk (rows that lost their file, archived flags that disagree with the folder); journaled, `undo` puts the rows back
    Repair {
        /// Show what would be repaired and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Confirm without asking
        #[arg(long)]
        yes: bool,
    },
    /// Check the catalog, every blob and every archived item, and that Codex's index agrees with each; exit 4 on any problem
    Verify,
    /// Finish or roll back operations interrupted by a crash
    Recover,
    /// Print the Codex skill that drives codex-maint, or install it into the Codex home
    #[command(group(clap::ArgGroup::new("action").required(true).args(["print", "install"])))]
    Skill {
        /// Print the skill (SKILL.md)
        #[arg(long)]
        print: bool,
        /// Write it to $CODEX_HOME/skills/codex-maint/SKILL.md (journaled; `undo` removes it)
        #[arg(long)]
        install: bool,
        /// With --install: show what would be written; change nothing
        #[arg(long, requires = "install")]
        dry_run: bool,
        /// Accepted so scripts can pass --yes to every command; install asks nothing
        #[arg(long)]
        yes: bool,
    },
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
        Ok(report) => {
            print_report(&report, json);
            report.exit_code
        }
        Err(err) => {
            let kind = exit_kind_of(&err);
            let details = details_of(&err);
            if json {
                let doc = serde_json::json!({
                    "error": { "message": format!("{err:#}"), "kind": kind, "exit_code": kind.code(), "details": details }
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("JSON of plain values")
                );
            }
            eprintln!("codex-maint: {err:#}");
            for d in details {
                eprintln!("  - {d}");
            }
            kind.code()
        }
    }
}

/// Completions and the man page describe the parser itself, so they are made here rather
/// than by a command.
fn print_about_the_cli(command: &Command) -> Option<i32> {
    let mut out = std::io::stdout();
    let written = match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "codex-maint", &mut out);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut out),
        _ => return None,
    };
    Some(match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("codex-maint: {e}");
            ExitKind::Error.code()
        }
    })
}

fn print_report(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports are plain data")
        );
    } else {
        if report.raw_text.is_some()
            && let Some(notes) = &report.raw_notes
        {
            eprint!("{notes}");
        }
        print!("{}", report.render_text());
    }
}

fn parse_age(text: &str, flag: &str) -> anyhow::Result<u64> {
    crate::clock::parse_duration(text).ok_or_else(|| {
        crate::error::MaintError::usage(format!(
            "{flag} {text}: expected a number and a unit (s, m, h, d, w), e.g. 30d"
        ))
        .into()
    })
}

fn dispatch(cli: Cli) -> anyhow::Result<Report> {
    let ctx = Context {
        home_flag: cli.home,
        store_root: commands::resolve_store_root(cli.store.as_deref())?,
        json: cli.json,
        argv: std::env::args().skip(1).collect(),
    };
    match cli.command {
        Command::Inspect {
            large_session_mb,
            large_log_mb,
            min_age,
            compress_min_age,
        } => commands::inspect::run(
            &ctx,
            &commands::inspect::InspectArgs {
                large_session_bytes: large_session_mb << 20,
                large_log_bytes: large_log_mb << 20,
                min_age_secs: parse_age(&min_age, "--min-age")?,
                compress_min_idle_secs: parse_age(&compress_min_age, "--compress-min-age")?,
                ..Default::default()
            },
        ),
        Command::Archive {
            ids,
            older_than,
            min_age,
            handoff_min_mb,
            dry_run,
            compress,
            yes,
        } => commands::archive::run(
            &ctx,
            commands::archive::ArchiveArgs {
                ids,
                older_than_secs: older_than
                    .as_deref()
                    .map(|t| parse_age(t, "--older-than"))
                    .transpose()?,
                min_age_secs: parse_age(&min_age, "--min-age")?,
                handoff_min_bytes: handoff_min_mb << 20,
                dry_run,
                yes,
                compress,
            },
        ),
        Command::Cleanup {
            only,
            min_age,
            large_log_mb,
            handoff_min_mb,
            compress_min_age,
            dry_run,
            yes,
            plan,
            policy,
            unattended,
        } => {
            if unattended {
                return commands::cleanup::run_unattended(
                    &ctx,
                    policy.as_deref().expect("clap requires --policy"),
                );
            }
            let mut args = match &policy {
                Some(file) => {
                    let p = crate::automation::policy::Policy::load(file)
                        .map_err(|e| crate::error::MaintError::usage(format!("{e:#}")))?;
                    commands::cleanup::args_from_policy(&p)?
                }
                None => commands::cleanup::CleanupArgs {
                    inspect: commands::inspect::InspectArgs {
                        large_log_bytes: 50 << 20,
                        min_age_secs: parse_age("10d", "--min-age")?,
                        handoff_min_bytes: 2 << 20,
                        ..Default::default()
                    },
                    only: Vec::new(),
                    dry_run: false,
                    yes: false,
                    plan_id: None,
                },
            };
            // A threshold typed on the command line wins over the policy file's.
            if let Some(age) = &min_age {
                args.inspect.min_age_secs = parse_age(age, "--min-age")?;
            }
            if let Some(mb) = large_log_mb {
                args.inspect.large_log_bytes = mb << 20;
            }
            if let Some(mb) = handoff_min_mb {
                args.inspect.handoff_min_bytes = mb << 20;
            }
            args.only = only;
            args.inspect.compress_min_idle_secs =
                parse_age(&compress_min_age, "--compress-min-age")?;
            args.dry_run = dry_run;
            args.yes = yes;
            args.plan_id = plan;
            commands::cleanup::run(&ctx, args)
        }
        Command::Automation {
            policy,
            init,
            approve,
            print_schedule,
            install,
            yes,
        } => commands::automation::run(
            &ctx,
            commands::automation::AutomationArgs {
                policy,
                init,
                approve,
                print_schedule,
                install,
                yes,
            },
        ),
        Command::Handoff {
            ids,
            candidates,
            out,
            stdout,
            dry_run,
            min_mb,
            min_turns,
        } => commands::handoff::run(
            &ctx,
            commands::handoff::HandoffArgs {
                ids,
                candidates,
                out,
                stdout,
                dry_run,
                min_bytes: min_mb << 20,
                min_turns,
            },
        ),
        Command::Log { run, session } => commands::log::run(&ctx, run, session.as_deref()),
        Command::Undo {
            run,
            dry_run,
            yes: _,
        } => commands::undo::undo(&ctx, run, dry_run),
        Command::Restore {
            target,
            dry_run,
            yes: _,
        } => commands::undo::restore(&ctx, &target, dry_run),
        Command::Decompress { ids, dry_run, yes } => commands::decompress::run(
            &ctx,
            commands::decompress::DecompressArgs { ids, dry_run, yes },
        ),
        Command::Repair { dry_run, yes } => {
            commands::repair::run(&ctx, commands::repair::RepairArgs { dry_run, yes })
        }
        Command::Verify => commands::verify::run(&ctx),
        Command::Recover => commands::recover::run(&ctx),
        Command::Skill {
            print: _,
            install,
            dry_run,
            yes: _,
        } => commands::skill::run(&ctx, commands::skill::SkillArgs { install, dry_run }),
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
