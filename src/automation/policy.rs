//! The maintenance policy (`policy.toml` in the store): what a scheduled run does, when,
//! where its reports go, and which cleanup categories it may act on unattended. A policy
//! acts unattended only once approved, and only while unchanged since.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const POLICY_FILE: &str = "policy.toml";
pub const APPROVAL_FILE: &str = "policy.approved";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub schedule: Schedule,
    #[serde(default)]
    pub reports: Reports,
    #[serde(default)]
    pub inspect: InspectPolicy,
    #[serde(default)]
    pub cleanup: CleanupPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `daily`, `weekly` or `monthly`.
    pub every: String,
    /// `HH:MM`, local time.
    pub at: String,
    /// For weekly runs: `mon` ... `sun`.
    #[serde(default = "default_weekday")]
    pub weekday: String,
}

fn default_weekday() -> String {
    "mon".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// Default: `reports/` in the store.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InspectPolicy {
    pub large_session_mb: u64,
    pub large_log_mb: u64,
}

impl Default for InspectPolicy {
    fn default() -> Self {
        InspectPolicy {
            large_session_mb: 10,
            large_log_mb: 50,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CleanupPolicy {
    /// Categories a scheduled run may act on without asking; empty means inspect only.
    pub unattended: Vec<String>,
    pub min_age: String,
    pub handoff_min_mb: u64,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            unattended: Vec::new(),
            min_age: "10d".into(),
            handoff_min_mb: 2,
        }
    }
}

/// The file `automation --init` writes: the defaults, with what each knob means.
pub const TEMPLATE: &str = r#"# codex-maint maintenance policy. A scheduled run reads this file.
# Edit it, then approve it with `codex-maint automation --approve`: an unapproved or
# changed policy makes the scheduled run inspect only.

[schedule]
every = "weekly"      # daily | weekly | monthly
at = "09:30"          # local time, HH:MM
weekday = "mon"       # for weekly runs

[reports]
# dir = "/home/me/codex-maint-reports"   # default: reports/ in the store

[inspect]
large_session_mb = 10
large_log_mb = 50

[cleanup]
# Categories a scheduled run may clean up without asking: sessions, logs, worktrees,
# releases, projects, reclaim. Empty: the scheduled run only inspects and reports.
unattended = []
min_age = "10d"
handoff_min_mb = 2
"#;

impl Policy {
    pub fn default_policy() -> Policy {
        Policy::parse(TEMPLATE).expect("the template parses")
    }

    pub fn parse(text: &str) -> Result<Policy> {
        let policy: Policy = toml_edit::de::from_str(text).context("the policy does not parse")?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn load(path: &Path) -> Result<Policy> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Policy::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    fn validate(&self) -> Result<()> {
        if !["daily", "weekly", "monthly"].contains(&self.schedule.every.as_str()) {
            bail!(
                "schedule.every must be daily, weekly or monthly, not {:?}",
                self.schedule.every
            );
        }
        self.hour_minute()?;
        self.weekday_index()?;
        for c in &self.cleanup.unattended {
            if !crate::policy::CLEANUP_CATEGORIES.contains(&c.as_str()) {
                bail!("cleanup.unattended: unknown category {c:?}");
            }
        }
        if crate::clock::parse_duration(&self.cleanup.min_age).is_none() {
            bail!(
                "cleanup.min_age {:?} is not an age like 10d",
                self.cleanup.min_age
            );
        }
        Ok(())
    }

    pub fn hour_minute(&self) -> Result<(u32, u32)> {
        let (h, m) = self
            .schedule
            .at
            .split_once(':')
            .context("schedule.at must be HH:MM")?;
        let (h, m): (u32, u32) = (
            h.parse().context("schedule.at hour")?,
            m.parse().context("schedule.at minute")?,
        );
        if h > 23 || m > 59 {
            bail!("schedule.at {} is not a time of day", self.schedule.at);
        }
        Ok((h, m))
    }

    /// 0 = Sunday, as cron and launchd count.
    pub fn weekday_index(&self) -> Result<u32> {
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        DAYS.iter()
            .position(|d| self.schedule.weekday.to_ascii_lowercase().starts_with(d))
            .map(|i| i as u32)
            .with_context(|| format!("schedule.weekday {:?} is not a day", self.schedule.weekday))
    }

    pub fn report_dir(&self, store_root: &Path) -> PathBuf {
        self.reports
            .dir
            .clone()
            .unwrap_or_else(|| store_root.join("reports"))
    }
}

/// The policy file is the user's and may be a symlink (a dotfiles checkout): what it
/// names is hashed, as it is what is read.
pub fn policy_hash(path: &Path) -> Result<String> {
    Ok(crate::content_hash::hash_file(&std::fs::canonicalize(
        path,
    )?)?)
}

/// Whether the policy file is the one the user approved, byte for byte.
pub fn is_approved(store_root: &Path, policy_path: &Path) -> bool {
    let approved = std::fs::read_to_string(store_root.join(APPROVAL_FILE)).unwrap_or_default();
    policy_hash(policy_path).is_ok_and(|h| approved.trim() == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_and_bad_policies_are_refused() {
        let p = Policy::default_policy();
        assert_eq!(p.schedule.every, "weekly");
        assert!(p.cleanup.unattended.is_empty());
        assert!(
            Policy::parse(&TEMPLATE.replace("every = \"weekly\"", "every = \"hourly\"")).is_err()
        );
        assert!(
            Policy::parse(&TEMPLATE.replace("unattended = []", "unattended = [\"everything\"]"))
                .is_err()
        );
        assert!(Policy::parse(&TEMPLATE.replace("at = \"09:30\"", "at = \"25:00\"")).is_err());
        assert!(Policy::parse(&format!("{TEMPLATE}\nsurprise = 1\n")).is_err());
    }
}
