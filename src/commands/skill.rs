//! `skill`: the Codex skill that drives codex-maint, printed or installed into the Codex
//! home so an agent asked to clean up Codex knows the tool exists. Installing is a
//! journaled run, so `undo` takes it back, and never replaces a skill the user has.

use anyhow::Result;
use serde_json::json;
use std::path::{Path, PathBuf};

use super::{Context, describe_recovery, refuse_if_codex_running};
use crate::error::MaintError;
use crate::ops::{Run, write_file};
use crate::report::{self, Report};

/// The skill's name, as its front matter and Codex's `skills/list` give it.
pub const SKILL_NAME: &str = "codex-maint";
/// Kept in the repository as a file so it reads, diffs and reviews as the document it is.
pub const SKILL_TEXT: &str = include_str!("../../skills/codex-maint/SKILL.md");

/// Printing is what `skill` does unless asked to install.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["print", "install"])))]
pub struct SkillArgs {
    /// Print the skill (SKILL.md)
    #[arg(long)]
    pub print: bool,
    /// Write it to $CODEX_HOME/skills/codex-maint/SKILL.md (journaled; `undo` removes it)
    #[arg(long)]
    pub install: bool,
    /// With --install: show what would be written; change nothing
    #[arg(long, requires = "install")]
    pub dry_run: bool,
    /// Accepted so scripts can pass --yes to every command; install asks nothing
    #[arg(long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, args: SkillArgs) -> Result<Report> {
    if args.install {
        return install(ctx, args.dry_run);
    }
    let mut r = Report::new("skill", "skill");
    r.raw_text = Some(SKILL_TEXT.to_string());
    r.data = json!({ "name": SKILL_NAME, "text": SKILL_TEXT });
    Ok(r)
}

/// Where Codex looks for a user skill of this name.
fn skill_folder(home_root: &Path) -> PathBuf {
    home_root.join("skills").join(SKILL_NAME)
}

fn install(ctx: &Context, dry_run: bool) -> Result<Report> {
    let home = ctx.locate_home()?;
    let folder = skill_folder(&home.root);
    let file = folder.join("SKILL.md");
    refuse_if_occupied_or_linked(&home.root, &folder)?;
    let mut r = Report::spec_shaped("skill", "skill");

    if dry_run {
        r.push(
            report::PROPOSED,
            format!(
                "will write {} ({} bytes), as a journaled run that `codex-maint undo` takes back",
                file.display(),
                SKILL_TEXT.len()
            ),
        );
        r.push(report::BACKUPS, "not created: dry run");
        r.push(report::VERIFICATION, "no files changed");
        r.data = json!({ "dry_run": true, "run_id": null, "path": file, "installed": false });
        return Ok(r);
    }

    refuse_if_codex_running(&home)?;
    let (store, recovered) = ctx.open_store_and_recover(&home)?;
    describe_recovery(&mut r, &recovered);
    let run = Run::begin(&store, "skill", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let written = write_file::execute(&run, &file, SKILL_TEXT.as_bytes());
    run.finish(if written.is_ok() { "done" } else { "failed" })?;
    let op_id = written?;
    r.push(
        report::COMPLETED,
        format!("wrote {} (op {op_id})", file.display()),
    );
    r.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {}",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );
    r.push(
        report::VERIFICATION,
        "the file was written under a temporary name, synced, then renamed into place without replacing anything",
    );
    r.push(
        report::RESIDUAL_RISK,
        format!("Codex picks the skill up in new sessions; to remove it: codex-maint undo --run {run_id}"),
    );
    r.data = json!({ "dry_run": false, "run_id": run_id, "op_id": op_id, "path": file, "installed": true });
    Ok(r)
}

/// A skill folder of the user's is theirs, even one without a SKILL.md yet; an empty one
/// (left by an undo) is not. A symlink on the way could take the write out of the home.
fn refuse_if_occupied_or_linked(home_root: &Path, folder: &Path) -> Result<()> {
    for step in [home_root.join("skills"), folder.to_path_buf()] {
        if std::fs::symlink_metadata(&step).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(MaintError::refused(
                format!(
                    "{} is a symlink; codex-maint writes only to real folders inside the Codex home; nothing was changed",
                    step.display()
                ),
                vec![],
            )
            .into());
        }
    }
    let occupied = match std::fs::read_dir(folder) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    };
    if occupied || std::fs::symlink_metadata(folder).is_ok_and(|m| !m.is_dir()) {
        return Err(MaintError::refused(
            format!(
                "{} already exists and is not empty: a skill of that name is already installed; it was not replaced, nothing was changed",
                folder.display()
            ),
            vec![],
        )
        .into());
    }
    Ok(())
}
