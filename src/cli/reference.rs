//! The command reference (docs/commands.md), written from the parser itself so the page
//! cannot say anything `--help` does not. `tests/docs_reference.rs` fails when the
//! committed page differs from this text.

use clap::{Arg, Command, CommandFactory};
use std::fmt::Write as _;

use super::Cli;

/// How the page is made again, said on its first line and checked by the test.
pub const REGENERATE: &str = "UPDATE_DOCS=1 cargo test --test docs_reference";

/// docs/commands.md: every command in the order `--help` lists them, with its usage and
/// each argument's help, value, choices and default.
pub fn reference_markdown() -> String {
    let mut cli = Cli::command().bin_name("codex-maint");
    // Built, so every subcommand's usage line names the binary and its global options.
    cli.build();
    let mut page = String::new();
    let _ = writeln!(
        page,
        "<!-- Generated from the clap definitions in src/ by `{REGENERATE}`; edit the \
         definitions, not this file. -->"
    );
    page.push_str("\n# Command reference\n\n");
    if let Some(about) = cli.get_about() {
        let _ = writeln!(page, "{about}\n");
    }
    page.push_str(
        "Each entry is what `codex-maint <command> --help` prints, gathered in one page. \
         Exit codes: `0` done, `1` error, `2` usage, `3` refused by a safety rule, `4` \
         verification found a problem.\n\n",
    );
    page.push_str("## Global options\n\nAccepted by every command, before or after its name.\n\n");
    for arg in cli.get_arguments().filter(|a| shown(a)) {
        page.push_str(&argument_line(arg));
    }
    page.push_str("\n## Commands\n\n");
    let commands: Vec<&Command> = cli.get_subcommands().filter(|c| listed(c)).collect();
    for command in &commands {
        let _ = writeln!(
            page,
            "- [`{name}`](#{name}): {about}",
            name = command.get_name(),
            about = first_sentence(command)
        );
    }
    for command in commands {
        command_section(&mut page, command);
    }
    page
}

fn command_section(page: &mut String, command: &Command) {
    let _ = writeln!(page, "\n## {}\n", command.get_name());
    let about = command.get_long_about().or(command.get_about());
    if let Some(about) = about {
        let _ = writeln!(page, "{about}\n");
    }
    let usage = command.clone().render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    let _ = writeln!(page, "```text\n{usage}\n```");
    let args: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| shown(a) && !a.is_global_set())
        .collect();
    if !args.is_empty() {
        page.push('\n');
    }
    for arg in args {
        page.push_str(&argument_line(arg));
    }
}

/// One list item: how the argument is written, what it does, its choices and default.
fn argument_line(arg: &Arg) -> String {
    let mut line = format!("- `{}`", spelling(arg));
    let help = arg.get_long_help().or(arg.get_help());
    if let Some(help) = help {
        let help = one_line(&help.to_string());
        // Choices and defaults follow as sentences of their own.
        let stop = if help.ends_with('.') { "" } else { "." };
        let _ = write!(line, ": {help}{stop}");
    }
    let choices: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    // A flag's implied `false` is no choice a reader makes.
    if !choices.is_empty() && arg.get_action().takes_values() {
        let _ = write!(line, " One of: {}.", choices.join(", "));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect();
    if !defaults.is_empty() && arg.get_action().takes_values() {
        let _ = write!(line, " Default: {}.", defaults.join(", "));
    }
    if arg.is_required_set() {
        line.push_str(" Required.");
    }
    line.push('\n');
    line
}

/// `--name <VALUE>`, `-s, --name`, or `<NAME>...` for a positional argument.
fn spelling(arg: &Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
    let many = matches!(arg.get_num_args(), Some(n) if n.max_values() > 1);
    let value = if many { format!("{value}...") } else { value };
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("--{long}"));
    }
    if names.is_empty() {
        return value;
    }
    let names = names.join(", ");
    if arg.get_action().takes_values() {
        format!("{names} {value}")
    } else {
        names
    }
}

fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

fn listed(command: &Command) -> bool {
    !command.is_hide_set() && command.get_name() != "help"
}

fn first_sentence(command: &Command) -> String {
    one_line(
        &command
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    )
}

/// Markdown list items hold one line; a help text's own line breaks are kept as spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
