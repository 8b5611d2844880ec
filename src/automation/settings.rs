//! Cleanup's flags, and the one place they meet a policy file: a threshold typed on the
//! command line wins over the policy's, the policy's over the built-in default, and each
//! value says which of the three it came from, so a report can show it.

use serde::Serialize;
use std::path::PathBuf;

use crate::arg_values::{age_secs, megabytes};
use crate::automation::policy::Policy;
use crate::cleanup::CleanupArgs;
use crate::clock::format_age;
use crate::survey::SurveyOptions;

#[derive(Debug, Default, clap::Args)]
pub struct CleanupFlags {
    /// Only these categories: sessions,compress,logs,worktrees,releases,projects,retire,reclaim
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub only: Vec<String>,
    /// Sessions idle for less than this are kept [default: 10d, or the policy's]
    #[arg(long = "min-age", value_name = "AGE", value_parser = age_secs)]
    pub min_age_secs: Option<u64>,
    /// Log files and log databases at least this large are rotated (MB) [default: 50,
    /// or the policy's]
    #[arg(long = "large-log-mb", value_name = "MB", value_parser = megabytes)]
    pub large_log_bytes: Option<u64>,
    /// Sessions at least this large (MB) are kept until they have a handoff [default:
    /// 2, or the policy's]
    #[arg(long = "handoff-min-mb", value_name = "MB", value_parser = megabytes)]
    pub handoff_min_bytes: Option<u64>,
    /// Archived transcripts idle for less than this are not compressed (category
    /// `compress`) [default: 7d]
    #[arg(long = "compress-min-age", value_name = "AGE", value_parser = age_secs)]
    pub compress_min_idle_secs: Option<u64>,
    /// Archived sessions idle at least this long are retired into the store (category
    /// `retire`) [default: 180d]
    #[arg(long = "retire-min-age", value_name = "AGE", value_parser = age_secs)]
    pub retire_min_age_secs: Option<u64>,
    /// The most transcripts `retire` leaves in archived_sessions/, oldest retired first
    /// (Codex lists 10,000 files per folder) [default: 9000]
    #[arg(long = "retire-folder-cap", value_name = "N")]
    pub retire_folder_cap: Option<usize>,
    /// Show (and save) the plan with its id; change nothing in the home
    #[arg(long)]
    pub dry_run: bool,
    /// Apply without asking; needs --plan with the id of the reviewed plan
    #[arg(long)]
    pub yes: bool,
    /// The id of the plan reviewed with --dry-run
    #[arg(long, value_name = "ID")]
    pub plan: Option<String>,
    /// Take thresholds from this policy file (see `automation`)
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The scheduled run: inspect, then clean up only what the approved policy opts into
    #[arg(long, requires = "policy")]
    pub unattended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Flag,
    Policy,
    Default,
}

/// One threshold as the run used it; `value` is written as its flag or policy entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: &'static str,
    pub value: String,
    pub source: Source,
}

/// The thresholds cleanup runs with, from `flags` over `policy` over the defaults, and
/// where each came from.
pub fn settle(flags: &CleanupFlags, policy: Option<&Policy>) -> (CleanupArgs, Vec<Setting>) {
    let defaults = SurveyOptions::default();
    let mut settings = Vec::new();
    let mut pick = |name, flag: Option<u64>, from_policy: Option<u64>, default: u64| {
        let (value, source) = match (flag, from_policy) {
            (Some(v), _) => (v, Source::Flag),
            (None, Some(v)) => (v, Source::Policy),
            (None, None) => (default, Source::Default),
        };
        settings.push((name, value, source));
        value
    };
    let inspect = SurveyOptions {
        min_age_secs: pick(
            "min_age",
            flags.min_age_secs,
            policy.and_then(|p| crate::clock::parse_duration(&p.cleanup.min_age)),
            defaults.min_age_secs,
        ),
        large_log_bytes: pick(
            "large_log_mb",
            flags.large_log_bytes,
            policy.map(|p| p.inspect.large_log_mb << 20),
            defaults.large_log_bytes,
        ),
        handoff_min_bytes: pick(
            "handoff_min_mb",
            flags.handoff_min_bytes,
            policy.map(|p| p.cleanup.handoff_min_mb << 20),
            defaults.handoff_min_bytes,
        ),
        large_session_bytes: pick(
            "large_session_mb",
            None,
            policy.map(|p| p.inspect.large_session_mb << 20),
            defaults.large_session_bytes,
        ),
        compress_min_idle_secs: pick(
            "compress_min_age",
            flags.compress_min_idle_secs,
            None,
            defaults.compress_min_idle_secs,
        ),
        retire_min_age_secs: pick(
            "retire_min_age",
            flags.retire_min_age_secs,
            None,
            defaults.retire_min_age_secs,
        ),
        retire_folder_cap: flags
            .retire_folder_cap
            .unwrap_or(defaults.retire_folder_cap),
        ..defaults
    };
    let settings = settings
        .into_iter()
        .map(|(name, value, source)| Setting {
            name,
            value: if name.ends_with("_mb") {
                (value >> 20).to_string()
            } else {
                format_age(value)
            },
            source,
        })
        .collect();
    let args = CleanupArgs {
        inspect,
        only: flags.only.clone(),
        dry_run: flags.dry_run,
        yes: flags.yes,
        plan_id: flags.plan.clone(),
        selection: None,
    };
    (args, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_of(settings: &[Setting], name: &str) -> (String, Source) {
        let s = settings.iter().find(|s| s.name == name).unwrap();
        (s.value.clone(), s.source)
    }

    fn policy(min_age: &str, large_log_mb: u64, handoff_min_mb: u64) -> Policy {
        let mut p = Policy::parse("[schedule]\nevery = \"weekly\"\nat = \"03:00\"\n").unwrap();
        p.cleanup.min_age = min_age.into();
        p.inspect.large_log_mb = large_log_mb;
        p.cleanup.handoff_min_mb = handoff_min_mb;
        p
    }

    #[test]
    fn without_flags_or_policy_every_value_is_the_default() {
        let (args, settings) = settle(&CleanupFlags::default(), None);
        assert_eq!(args.inspect.min_age_secs, 10 * 86_400);
        assert_eq!(args.inspect.large_log_bytes, 50 << 20);
        assert_eq!(args.inspect.handoff_min_bytes, 2 << 20);
        assert_eq!(args.inspect.compress_min_idle_secs, 7 * 86_400);
        assert_eq!(args.inspect.retire_min_age_secs, 180 * 86_400);
        assert_eq!(args.inspect.retire_folder_cap, 9_000);
        assert!(settings.iter().all(|s| s.source == Source::Default));
        assert_eq!(settings.len(), 6);
    }

    #[test]
    fn a_flag_wins_over_the_policy_which_wins_over_the_default() {
        let flags = CleanupFlags {
            large_log_bytes: Some(1 << 20),
            ..Default::default()
        };
        let p = policy("30d", 80, 5);
        let (args, settings) = settle(&flags, Some(&p));
        assert_eq!(args.inspect.large_log_bytes, 1 << 20);
        assert_eq!(
            source_of(&settings, "large_log_mb"),
            ("1".into(), Source::Flag)
        );
        assert_eq!(args.inspect.min_age_secs, 30 * 86_400);
        assert_eq!(source_of(&settings, "min_age").1, Source::Policy);
        assert_eq!(
            crate::clock::parse_duration(&source_of(&settings, "min_age").0),
            Some(30 * 86_400)
        );
        assert_eq!(args.inspect.handoff_min_bytes, 5 << 20);
        assert_eq!(
            source_of(&settings, "handoff_min_mb"),
            ("5".into(), Source::Policy)
        );
        assert_eq!(source_of(&settings, "compress_min_age").1, Source::Default);
    }

    #[test]
    fn flags_other_than_thresholds_pass_through() {
        let flags = CleanupFlags {
            only: vec!["logs".into()],
            dry_run: true,
            plan: Some("p1".into()),
            ..Default::default()
        };
        let (args, _) = settle(&flags, Some(&policy("10d", 50, 2)));
        assert_eq!(args.only, vec!["logs".to_string()]);
        assert!(args.dry_run && !args.yes);
        assert_eq!(args.plan_id.as_deref(), Some("p1"));
    }
}
