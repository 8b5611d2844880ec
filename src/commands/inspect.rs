//! `inspect`: SPEC.md's inspect mode in one pass. It finds the weight and the risks of a
//! Codex home and reports them in SPEC.md's shape; it writes nothing anywhere (not even
//! the store), which `tests/inspect_read_only.rs` proves on a home real Codex wrote.

use anyhow::Result;

use super::Context;
use crate::arg_values::{age_secs, megabytes};
use crate::report::Report;
use crate::survey::{DatabaseDepth, SurveyOptions, gather, render};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Transcripts at least this large are listed (MB)
    #[arg(long = "large-session-mb", value_name = "MB", default_value = "10", value_parser = megabytes)]
    pub large_session_bytes: u64,
    /// Log files and log databases at least this large are listed (MB)
    #[arg(long = "large-log-mb", value_name = "MB", default_value = "50", value_parser = megabytes)]
    pub large_log_bytes: u64,
    /// Sessions idle for less than this are not archive candidates
    #[arg(long = "min-age", value_name = "AGE", default_value = "10d", value_parser = age_secs)]
    pub min_age_secs: u64,
    /// Archived transcripts idle for less than this are not compression candidates
    #[arg(long = "compress-min-age", value_name = "AGE", default_value = "7d", value_parser = age_secs)]
    pub compress_min_idle_secs: u64,
    /// Archived sessions idle at least this long are retired into the store (`retire`)
    #[arg(long = "retire-min-age", value_name = "AGE", default_value = "180d", value_parser = age_secs)]
    pub retire_min_age_secs: u64,
    /// The most transcripts `retire` leaves in archived_sessions/ (Codex lists 10,000 per folder)
    #[arg(long = "retire-folder-cap", value_name = "N", default_value = "9000")]
    pub retire_folder_cap: usize,
    /// Cross-check every index of every database against its table (SQLite's full
    /// integrity_check, as cleanup runs it), not only the pages (quick_check)
    #[arg(long)]
    pub deep: bool,
}

impl InspectArgs {
    /// The survey's thresholds: these flags, and the defaults for what inspect has no flag for.
    pub fn survey_options(&self) -> SurveyOptions {
        SurveyOptions {
            large_session_bytes: self.large_session_bytes,
            large_log_bytes: self.large_log_bytes,
            min_age_secs: self.min_age_secs,
            compress_min_idle_secs: self.compress_min_idle_secs,
            retire_min_age_secs: self.retire_min_age_secs,
            retire_folder_cap: self.retire_folder_cap,
            ..SurveyOptions::default()
        }
    }
}

pub fn run(ctx: &Context, args: &InspectArgs) -> Result<Report> {
    let home = ctx.locate_home()?;
    let handoffs = crate::policy::handoff_threads(&ctx.store_root)?;
    let options = args.survey_options();
    let depth = if args.deep {
        DatabaseDepth::Full
    } else {
        DatabaseDepth::Survey
    };
    let mut data = gather(&home, &options, &handoffs, depth);
    if let Some(history) = data.thread_history.as_mut() {
        history.retired_in_store = retired_in_store(&ctx.store_root)?;
    }
    Ok(render(&home, &data, &options))
}

/// The sessions retired into the store and not brought back, and their bytes as they lay
/// in the home; read-only, `None` without a store.
fn retired_in_store(store_root: &std::path::Path) -> Result<Option<crate::survey::CountBytes>> {
    let Some(catalog) = crate::store::open_read_only(store_root)? else {
        return Ok(None);
    };
    let retired = catalog.retired_sessions()?;
    Ok(Some(crate::survey::CountBytes {
        count: retired.len() as u64,
        bytes: retired.iter().map(|r| r.bytes.max(0) as u64).sum(),
    }))
}
