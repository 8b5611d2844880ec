//! The scheduler entries for a policy: a systemd user service and timer, a launchd agent,
//! or a crontab line. Rendering only; writing them is a journaled op, enabling them is
//! left to the user.

use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

use super::policy::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    Systemd,
    Launchd,
    Cron,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleFile {
    pub path: PathBuf,
    pub contents: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub scheduler: Scheduler,
    pub files: Vec<ScheduleFile>,
    /// What the user runs to turn it on; codex-maint never does.
    pub enable: String,
    pub disable: String,
}

/// The command the scheduler runs: the unattended cleanup under this policy, which always
/// inspects and cleans only what the approved policy opts into.
pub fn command_line(exe: &Path, home: &Path, store: &Path, policy: &Path) -> Vec<String> {
    vec![
        exe.display().to_string(),
        "--home".into(),
        home.display().to_string(),
        "--store".into(),
        store.display().to_string(),
        "cleanup".into(),
        "--policy".into(),
        policy.display().to_string(),
        "--unattended".into(),
    ]
}

fn config_home(user_home: &Path) -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| user_home.join(".config"))
}

fn shell_quote(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-=:,".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(
    scheduler: Scheduler,
    policy: &Policy,
    command: &[String],
    user_home: &Path,
) -> Result<Rendered> {
    let (hour, minute) = policy.hour_minute()?;
    let weekday = policy.weekday_index()?;
    Ok(match scheduler {
        Scheduler::Systemd => {
            let dir = config_home(user_home).join("systemd/user");
            const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
            let calendar = match policy.schedule.every.as_str() {
                "daily" => format!("*-*-* {hour:02}:{minute:02}:00"),
                "weekly" => format!("{} *-*-* {hour:02}:{minute:02}:00", DAYS[weekday as usize]),
                _ => format!("*-*-01 {hour:02}:{minute:02}:00"),
            };
            let exec: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
            Rendered {
                scheduler,
                files: vec![
                    ScheduleFile {
                        path: dir.join("codex-maint.service"),
                        contents: format!(
                            "[Unit]\nDescription=codex-maint scheduled maintenance (inspect; cleanup only as the approved policy allows)\n\n\
                             [Service]\nType=oneshot\nExecStart={}\n",
                            exec.join(" ")
                        ),
                    },
                    ScheduleFile {
                        path: dir.join("codex-maint.timer"),
                        contents: format!(
                            "[Unit]\nDescription=Run codex-maint {}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
                            policy.schedule.every
                        ),
                    },
                ],
                enable: "systemctl --user daemon-reload && systemctl --user enable --now codex-maint.timer".into(),
                disable: "systemctl --user disable --now codex-maint.timer".into(),
            }
        }
        Scheduler::Launchd => {
            let path = user_home.join("Library/LaunchAgents/dev.codex-maint.plist");
            let args: String = command
                .iter()
                .map(|a| format!("    <string>{}</string>\n", xml_escape(a)))
                .collect();
            let when = match policy.schedule.every.as_str() {
                "daily" => String::new(),
                "weekly" => format!("    <key>Weekday</key><integer>{weekday}</integer>\n"),
                _ => "    <key>Day</key><integer>1</integer>\n".into(),
            };
            Rendered {
                scheduler,
                files: vec![ScheduleFile {
                    path: path.clone(),
                    contents: format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
                         <plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  <string>dev.codex-maint</string>\n\
                         \x20 <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n\
                         \x20 <key>StartCalendarInterval</key>\n  <dict>\n{when}    <key>Hour</key><integer>{hour}</integer>\n    <key>Minute</key><integer>{minute}</integer>\n  </dict>\n\
                         \x20 <key>RunAtLoad</key>\n  <false/>\n</dict>\n</plist>\n"
                    ),
                }],
                enable: format!("launchctl load {}", path.display()),
                disable: format!("launchctl unload {}", path.display()),
            }
        }
        Scheduler::Cron => {
            let fields = match policy.schedule.every.as_str() {
                "daily" => format!("{minute} {hour} * * *"),
                "weekly" => format!("{minute} {hour} * * {weekday}"),
                _ => format!("{minute} {hour} 1 * *"),
            };
            let exec: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
            let path = config_home(user_home).join("codex-maint/codex-maint.crontab");
            Rendered {
                scheduler,
                files: vec![ScheduleFile {
                    path: path.clone(),
                    contents: format!(
                        "# codex-maint scheduled maintenance\n{fields} {}\n",
                        exec.join(" ")
                    ),
                }],
                enable: format!(
                    "crontab -l 2>/dev/null | cat - {} | crontab -   (or add the line with `crontab -e`)",
                    path.display()
                ),
                disable: "crontab -e, and delete the codex-maint line".into(),
            }
        }
    })
}
