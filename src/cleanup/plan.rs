//! A cleanup's plan: one action per change, each named by a hash of what it would change,
//! and the items kept with their reasons, for the categories asked for.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::action_list::{ActionList, ActionListBuilder};
use super::selection::{self, Selection};
use super::{ARCHIVED_WORKTREES_DIR, CATEGORIES, CleanupArgs};
use crate::clock::{human_age, human_bytes, now_rfc3339};
use crate::error::MaintError;
use crate::home::codex_versions::{self, CompressionGate};
use crate::home::config::ProjectState;
use crate::home::sessions::{self, SessionFile};
use crate::home::thread_index::{self, IndexState, ThreadRow};
use crate::home::worktrees::{Cleanliness, Registration};
use crate::home::{CodexHome, writer_locks};
use crate::ops::OpKind;
use crate::ops::session_move;
use crate::ops::tree_manifest::first_odd_entry;
use crate::policy::{SessionKnowledge, SessionPolicy, handoff_threads, judge_with};
use crate::survey::InspectData;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Action {
    /// Names this exact change (kind, path, size, mtime): an action whose item changed
    /// since review gets another id and is not done.
    pub id: String,
    pub category: String,
    pub kind: OpKind,
    pub path: String,
    pub target: Option<String>,
    pub bytes: u64,
    pub reason: String,
    pub mtime_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_repository: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    pub category: String,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub home: String,
    pub created_at: String,
    pub categories: Vec<String>,
    pub actions: ActionList,
    pub kept: Vec<Kept>,
    pub bytes: u64,
    /// The sessions a person picked, when the plan was narrowed to them (`browse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

impl Plan {
    /// The plan for a report's `data`: its fields, with `actions` and `kept` (100,000 items
    /// on a heavy home) on disk and streamed into `--json` under `at.actions` and
    /// `at.kept`.
    pub fn put_in(&self, report: &mut crate::report::Report, at: &str) -> Result<()> {
        self.spill()?.put_in(report, at);
        Ok(())
    }

    /// The plan as a report shows it, its lists on disk (the actions already are), so the
    /// plan itself can be dropped.
    pub fn spill(&self) -> Result<SpilledPlan> {
        use crate::report::LongListWriter;
        let mut kept = LongListWriter::new()?;
        for k in &self.kept {
            kept.push(k)?;
        }
        Ok(SpilledPlan {
            fields: serde_json::json!({
                "id": self.id, "home": self.home, "created_at": self.created_at,
                "categories": self.categories, "bytes": self.bytes,
            }),
            actions: self.actions.as_long_list().clone(),
            kept: kept.finish()?,
        })
    }
}

pub struct SpilledPlan {
    fields: serde_json::Value,
    actions: crate::report::LongList,
    kept: crate::report::LongList,
}

impl SpilledPlan {
    pub fn put_in(&self, report: &mut crate::report::Report, at: &str) {
        if let serde_json::Value::Object(data) = &mut report.data {
            data.insert(at.to_string(), self.fields.clone());
        }
        report.attach_list(&format!("{at}.actions"), self.actions.clone());
        report.attach_list(&format!("{at}.kept"), self.kept.clone());
    }
}

fn short_hash(text: &str) -> String {
    crate::content_hash::hash_bytes(text.as_bytes())[..16].to_string()
}

pub(super) fn action(
    category: &str,
    kind: OpKind,
    path: &Path,
    target: Option<&Path>,
    bytes: u64,
    reason: String,
) -> Action {
    let mtime_ns = std::fs::symlink_metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .map(crate::clock::system_time_ns)
        .unwrap_or(0);
    let mut a = Action {
        id: String::new(),
        category: category.into(),
        kind,
        path: path.display().to_string(),
        target: target.map(|t| t.display().to_string()),
        bytes,
        reason,
        mtime_ns,
        main_repository: None,
        projects: Vec::new(),
    };
    a.id = action_id(&a);
    a
}

pub(super) fn action_id(a: &Action) -> String {
    short_hash(&format!(
        "{}\0{}\0{}\0{}\0{:?}\0{:?}",
        a.kind, a.path, a.bytes, a.mtime_ns, a.target, a.projects
    ))
}

/// Sessions judged at once: their first records read on all cores, their rows in one query.
const JUDGED_AT_ONCE: usize = 1024;

/// The plan, the thread index its session actions write (each is planned in full, with its
/// row, only when it runs), and the evidence the compression gate decided on.
pub struct Planned {
    pub plan: Plan,
    pub index_path: Option<PathBuf>,
    pub gate: Option<CompressionGate>,
}

pub fn build_plan(
    store_root: &Path,
    home: &CodexHome,
    data: &InspectData,
    args: &CleanupArgs,
) -> Result<Planned> {
    let wanted = |c: &str| args.only.is_empty() || args.only.iter().any(|o| o == c);
    let picks = args.selection.as_ref();
    // An item that is, sits in, or holds a name that is not UTF-8 cannot be recorded as it
    // is (`path_text`): it is kept, whatever its category, rather than planned.
    let not_utf8: Vec<PathBuf> = data
        .findings
        .iter()
        .filter(|f| f.problem == crate::path_text::NAME_NOT_UTF8)
        .map(|f| PathBuf::from(&f.path))
        .collect();
    let mut actions = ActionListBuilder::new()?.setting_aside(not_utf8);
    let mut kept = Vec::new();
    let mut index_path = None;

    let mut gate = None;
    if wanted("sessions") || wanted("compress") || wanted("retire") {
        match thread_index::detect(home) {
            IndexState::NotUnderstood { path, reason } => {
                for category in ["sessions", "compress", "retire"]
                    .into_iter()
                    .filter(|c| wanted(c))
                {
                    kept.push(Kept {
                        category: category.into(),
                        path: path.display().to_string(),
                        reason: format!(
                            "all sessions: the thread index is not understood ({reason})"
                        ),
                    })
                }
            }
            state => {
                let index = match state {
                    IndexState::Understood(i) => Some(i),
                    _ => None,
                };
                index_path = index.as_ref().map(|i| i.path.clone());
                // Rows are read a slice at a time, for the sessions in that slice only: a
                // home of 100,000 threads never has all its rows (or plans) in memory.
                let reader = match &index {
                    Some(i) => Some(crate::sqlite_read::open(&i.path)?),
                    None => None,
                };
                let rows_of =
                    |slice: &[&SessionFile]| -> Result<Option<HashMap<String, ThreadRow>>> {
                        match (&index, &reader) {
                            (Some(index), Some(db)) => {
                                let ids: Vec<&str> = slice.iter().filter_map(|f| f.id()).collect();
                                Ok(Some(index.rows_of(&db.conn, &ids)?))
                            }
                            _ => Ok(None),
                        }
                    };
                let (files, _) = sessions::scan(home);
                let locks = writer_locks::held_thread_locks(home);
                let handoffs = handoff_threads(store_root)?;
                if wanted("compress") {
                    let found = codex_versions::compression_gate(home, &files);
                    if !found.allowed {
                        if args.only.iter().any(|c| c == "compress") {
                            return Err(MaintError::refused(
                                format!(
                                    "compression refused: {}; nothing was changed",
                                    found.reason
                                ),
                                found
                                    .evidence
                                    .iter()
                                    .map(|e| format!("Codex {} seen at {}", e.version, e.path))
                                    .collect(),
                            )
                            .into());
                        }
                        kept.push(Kept {
                            category: "compress".into(),
                            path: home.archived_sessions_dir().display().to_string(),
                            reason: format!("all transcripts stay plain: {}", found.reason),
                        });
                    }
                    gate = Some(found);
                }
                let compressing = gate.as_ref().is_some_and(|g| g.allowed);
                // Archive actions wait for the retire step: a session both would take is
                // retired straight from where it is.
                let mut archiving: Vec<(&SessionFile, u64, String)> = Vec::new();
                if wanted("sessions") {
                    let targets: Vec<&SessionFile> = files
                        .iter()
                        .filter(|f| f.location == sessions::SessionLocation::Active)
                        .filter(|f| selection::picked(picks, &f.path))
                        .collect();
                    let policy = SessionPolicy {
                        min_age_secs: args.inspect.min_age_secs,
                        explicit_request: false,
                        handoff_min_bytes: args.inspect.handoff_min_bytes,
                    };
                    for slice in targets.chunks(JUDGED_AT_ONCE) {
                        let rows = rows_of(slice)?;
                        let known = SessionKnowledge {
                            rows: rows.as_ref(),
                            index_path: index_path.as_deref(),
                            locks: &locks,
                            handoffs: &handoffs,
                        };
                        let judged = judge_with(
                            slice.to_vec(),
                            &known,
                            |facts| crate::policy::judge_for_archive(facts, &policy),
                            |_, _| (),
                        );
                        for (file, (), age) in judged.chosen {
                            let why = format!(
                                "idle {}, not pinned, current or ambiguous",
                                human_age(age)
                            );
                            archiving.push((file, age, why));
                        }
                        for p in judged.protected {
                            kept.push(Kept {
                                category: "sessions".into(),
                                path: p.path,
                                reason: p.protection.map(|x| x.explain()).unwrap_or_default(),
                            });
                        }
                    }
                }
                let mut retired: std::collections::HashSet<&Path> =
                    std::collections::HashSet::new();
                if wanted("retire") {
                    let known = SessionKnowledge {
                        rows: None,
                        index_path: index_path.as_deref(),
                        locks: &locks,
                        handoffs: &handoffs,
                    };
                    let chosen: Vec<(&SessionFile, u64)> =
                        archiving.iter().map(|(f, age, _)| (*f, *age)).collect();
                    let planned = super::retire_plan::plan(
                        &files,
                        &chosen,
                        &rows_of,
                        &known,
                        &args.inspect,
                        picks,
                        &mut |a| actions.push(a),
                    )?;
                    kept.extend(planned.kept);
                    retired = planned.taken;
                }
                for (file, _, why) in archiving
                    .into_iter()
                    .filter(|(f, _, _)| !retired.contains(f.path.as_path()))
                {
                    let archived = session_move::archive_destination(home, file);
                    // With compression chosen too, a session is archived straight into its
                    // compressed form: one op, and the bytes are freed in this run.
                    let compress_too =
                        selection::compress_on_archive(picks, &file.path, compressing);
                    let (kind, to, why) = if compress_too && !file.compressed {
                        let why =
                            format!("{why}; stored compressed as .jsonl.zst, which Codex reads");
                        (OpKind::CompressSession, sessions::twin_path(&archived), why)
                    } else {
                        (OpKind::ArchiveSession, archived, why)
                    };
                    actions.push(action(
                        "sessions",
                        kind,
                        &file.path,
                        Some(&to),
                        file.size,
                        why,
                    ))?;
                }
                if compressing {
                    let targets: Vec<&SessionFile> = files
                        .iter()
                        .filter(|f| {
                            f.location == sessions::SessionLocation::Archived
                                && !f.compressed
                                && !retired.contains(f.path.as_path())
                                && selection::compress_in_place(picks, &f.path)
                        })
                        .collect();
                    let min_idle = args.inspect.compress_min_idle_secs;
                    for slice in targets.chunks(JUDGED_AT_ONCE) {
                        let rows = rows_of(slice)?;
                        let known = SessionKnowledge {
                            rows: rows.as_ref(),
                            index_path: index_path.as_deref(),
                            locks: &locks,
                            handoffs: &handoffs,
                        };
                        let judged = judge_with(
                            slice.to_vec(),
                            &known,
                            |facts| crate::policy::judge_for_compress(facts, min_idle),
                            |_, _| (),
                        );
                        for (file, (), age) in judged.chosen {
                            actions.push(action(
                                "compress",
                                OpKind::CompressSession,
                                &file.path,
                                Some(&file.twin_path()),
                                file.size,
                                format!(
                                    "archived, idle {}; compressed in place as .jsonl.zst, which Codex {} and later reads",
                                    human_age(age),
                                    codex_versions::FIRST_ZST_READER
                                ),
                            ))?;
                        }
                        for p in judged.protected {
                            kept.push(Kept {
                                category: "compress".into(),
                                path: p.path,
                                reason: p.protection.map(|x| x.explain()).unwrap_or_default(),
                            });
                        }
                    }
                }
            }
        }
    }

    if wanted("logs") {
        for l in &data.logs.large_files {
            actions.push(action(
                "logs",
                OpKind::StoreFiles,
                Path::new(&l.path),
                None,
                l.bytes,
                format!(
                    "log over {}, last written {} ago; rotated into the store, compressed",
                    human_bytes(data.logs.large_threshold_bytes),
                    human_age(l.age_secs)
                ),
            ))?;
        }
        for db in data.logs.databases.iter().filter(|d| d.over_threshold) {
            actions.push(action(
                "logs",
                OpKind::StoreFiles,
                Path::new(&db.path),
                None,
                db.bytes + db.wal_bytes,
                format!(
                    "log database over {} ({} rows); will move with its -wal and -shm into the store; Codex starts a fresh one",
                    human_bytes(data.logs.large_threshold_bytes),
                    db.rows.unwrap_or(0)
                ),
            ))?;
        }
    }

    if wanted("worktrees") {
        for w in &data.worktrees {
            let path = Path::new(&w.path);
            let reason = match (&w.registration, &w.status) {
                (Registration::Registered, Cleanliness::Clean) if w.old => None,
                (Registration::Registered, Cleanliness::Clean) => Some(format!(
                    "in use: modified {} ago",
                    w.age_secs.map(human_age).unwrap_or_default()
                )),
                (_, Cleanliness::Dirty) => {
                    Some(format!("dirty: {} uncommitted changes", w.changed_entries))
                }
                (Registration::Unregistered, _) => {
                    Some("not registered with its repository: git cannot vouch for a move".into())
                }
                (Registration::StandaloneRepository, _) => {
                    Some("a whole repository, not a linked worktree: not moved".into())
                }
                (Registration::NotGit, _) => Some("not a git checkout: not moved".into()),
                _ => Some(format!(
                    "git cannot vouch for it{}",
                    w.note
                        .as_ref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )),
            };
            match reason {
                Some(reason) => kept.push(Kept {
                    category: "worktrees".into(),
                    path: w.path.clone(),
                    reason,
                }),
                None => {
                    let rel = path
                        .strip_prefix(home.root.join("worktrees"))
                        .unwrap_or(path);
                    let target = home.root.join(ARCHIVED_WORKTREES_DIR).join(rel);
                    let mut a = action(
                        "worktrees",
                        OpKind::MoveWorktree,
                        path,
                        Some(&target),
                        w.bytes,
                        format!(
                            "clean, registered, untouched for {}; moved with git worktree move",
                            w.age_secs.map(human_age).unwrap_or_default()
                        ),
                    );
                    a.main_repository = w.main_repository.clone();
                    a.id = action_id(&a);
                    actions.push(a)?;
                }
            }
        }
    }

    if wanted("releases")
        && let Some(r) = &data.releases
    {
        for rel in &r.releases {
            match (&r.current, rel.is_current) {
                (Some(_), true) => kept.push(Kept {
                    category: "releases".into(),
                    path: rel.path.clone(),
                    reason: "the current release".into(),
                }),
                (Some(_), false) if let Some(odd) = first_odd_entry(Path::new(&rel.path)) => {
                    kept.push(Kept {
                        category: "releases".into(),
                        path: rel.path.clone(),
                        reason: format!("it holds {odd}, not a regular file: kept"),
                    })
                }
                (Some(cur), false) => actions.push(action(
                    "releases",
                    OpKind::StoreDir,
                    Path::new(&rel.path),
                    None,
                    rel.bytes,
                    format!(
                        "an old daemon release (current is {cur}); will move into the store, compressed"
                    ),
                ))?,
                (None, _) => kept.push(Kept {
                    category: "releases".into(),
                    path: rel.path.clone(),
                    reason: "cannot tell which release is current".into(),
                }),
            }
        }
    }

    if wanted("projects") && data.config.exists {
        if !data.config.parses {
            kept.push(Kept {
                category: "projects".into(),
                path: data.config.path.clone(),
                reason: match &data.config.error {
                    Some(e) => format!("config.toml: {e}; not edited"),
                    None => "config.toml does not parse; not edited".into(),
                },
            });
        } else {
            let dead: Vec<String> = data
                .config
                .projects
                .iter()
                .filter(|p| p.state == ProjectState::Missing)
                .map(|p| p.path.clone())
                .collect();
            for p in data
                .config
                .projects
                .iter()
                .filter(|p| p.state == ProjectState::Ambiguous)
            {
                kept.push(Kept {
                    category: "projects".into(),
                    path: p.path.clone(),
                    reason: p.reason.clone(),
                });
            }
            if !dead.is_empty() {
                let mut a = action(
                    "projects",
                    OpKind::EditConfig,
                    Path::new(&data.config.path),
                    None,
                    0,
                    format!(
                        "remove {} [projects] entries whose folders no longer exist: {}",
                        dead.len(),
                        dead.join(", ")
                    ),
                );
                a.projects = dead;
                a.id = action_id(&a);
                actions.push(a)?;
            }
        }
    }

    // Last: after every step that takes rows out of a database, and the logs step that may
    // move one whole.
    if wanted(super::plan_reclaim::CATEGORY) {
        super::plan_reclaim::plan(data, &mut actions, &mut kept)?;
    }

    let (actions, unrecordable) = actions.finish()?;
    kept.extend(unrecordable.into_iter().map(|a| Kept {
        category: a.category,
        path: a.path,
        reason: "its name, or a name inside it, is not UTF-8: codex-maint records paths as text and will not record a different name; rename it to let cleanup handle it".into(),
    }));
    let ids: Vec<&str> = actions.sorted_ids().collect();
    let plan = Plan {
        id: short_hash(&format!("{}\0{}", home.display(), ids.join(","))),
        home: home.display(),
        created_at: now_rfc3339(),
        categories: CATEGORIES
            .iter()
            .filter(|c| wanted(c))
            .map(|c| c.to_string())
            .collect(),
        bytes: actions.bytes(),
        actions,
        kept,
        selection: args.selection.clone(),
    };
    Ok(Planned {
        plan,
        index_path,
        gate,
    })
}
