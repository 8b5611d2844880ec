//! `cleanup`: SPEC.md's cleanup mode. Inspect, plan, confirm (interactively, or with
//! `--yes --plan <id>` naming the exact plan reviewed), refuse while Codex runs, back up,
//! execute each confirmed action as a journaled op, verify, and report what happened.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::archive::{SessionKnowledge, handoff_threads, judge_sessions, judge_with};
use super::inspect::{self, DatabaseDepth, InspectArgs, InspectData};
use super::{Context, confirm, describe_recovery, refuse_if_codex_running, relative_to};
use crate::clock::{human_age, human_bytes, now_rfc3339};
use crate::error::{ExitKind, MaintError};
use crate::home::codex_versions::{self, CompressionGate};
use crate::home::config::ProjectState;
use crate::home::sessions;
use crate::home::thread_index::{self, IndexState};
use crate::home::worktrees::{Cleanliness, Registration};
use crate::home::{CodexHome, writer_locks};
use crate::ops::session_move::{self, PlannedMove};
use crate::ops::thread_row::IndexWriter;
use crate::ops::transcript_compress::{self, PlannedRecode};
use crate::ops::{OpKind, Run, config_edit, state_backup, store_dir, store_files, worktree_move};
use crate::policy::SessionPolicy;
use crate::report::{self, Report};

mod settings;
pub use settings::{CleanupFlags, Setting, Source, settle};

pub use crate::policy::CLEANUP_CATEGORIES as CATEGORIES;
pub const ARCHIVED_WORKTREES_DIR: &str = "archived_worktrees";

pub struct CleanupArgs {
    pub inspect: InspectArgs,
    pub only: Vec<String>,
    pub dry_run: bool,
    pub yes: bool,
    pub plan_id: Option<String>,
}

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
    pub actions: Vec<Action>,
    pub kept: Vec<Kept>,
    pub bytes: u64,
}

fn short_hash(text: &str) -> String {
    crate::content_hash::hash_bytes(text.as_bytes())[..16].to_string()
}

fn action(
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

fn action_id(a: &Action) -> String {
    short_hash(&format!(
        "{}\0{}\0{}\0{}\0{:?}\0{:?}",
        a.kind, a.path, a.bytes, a.mtime_ns, a.target, a.projects
    ))
}

/// The plan and, for sessions, the moves and recodes ready to run (they carry the thread
/// rows), with the evidence the compression gate decided on.
pub struct Planned {
    pub plan: Plan,
    pub session_moves: HashMap<String, PlannedMove>,
    pub recodes: HashMap<String, PlannedRecode>,
    pub index_path: Option<PathBuf>,
    pub gate: Option<CompressionGate>,
}

pub fn build_plan(
    ctx: &Context,
    home: &CodexHome,
    data: &InspectData,
    args: &CleanupArgs,
) -> Result<Planned> {
    let wanted = |c: &str| args.only.is_empty() || args.only.iter().any(|o| o == c);
    let mut actions = Vec::new();
    let mut kept = Vec::new();
    let mut session_moves = HashMap::new();
    let mut index_path = None;

    let mut recodes = HashMap::new();
    let mut gate = None;
    if wanted("sessions") || wanted("compress") {
        match thread_index::detect(home) {
            IndexState::NotUnderstood { path, reason } => {
                for category in ["sessions", "compress"].into_iter().filter(|c| wanted(c)) {
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
                let rows = index.as_ref().map(|i| i.read_all()).transpose()?;
                index_path = index.as_ref().map(|i| i.path.clone());
                let (files, _) = sessions::scan(home);
                let locks = writer_locks::held_thread_locks(home);
                let handoffs = handoff_threads(ctx)?;
                let known = SessionKnowledge {
                    rows: rows.as_ref(),
                    index_path: index_path.as_deref(),
                    locks: &locks,
                    handoffs: &handoffs,
                };
                let settings = crate::zstd_stream::EncodeSettings::default();
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
                if wanted("sessions") {
                    let targets = files
                        .iter()
                        .filter(|f| f.location == sessions::SessionLocation::Active)
                        .collect();
                    let policy = SessionPolicy {
                        min_age_secs: args.inspect.min_age_secs,
                        explicit_request: false,
                        handoff_min_bytes: args.inspect.handoff_min_bytes,
                    };
                    let judged = judge_sessions(home, targets, &known, &policy);
                    for (file, plan, age) in judged.chosen {
                        let why =
                            format!("idle {}, not pinned, current or ambiguous", human_age(age));
                        // With compression chosen too, a session is archived straight into
                        // its compressed form: one op, and the bytes are freed in this run.
                        if compressing && !file.compressed {
                            let row = rows
                                .as_ref()
                                .and_then(|r| file.id().and_then(|id| r.get(id)));
                            let recode = transcript_compress::plan_archive_compressed(
                                home,
                                file,
                                row,
                                index_path.as_deref(),
                                settings,
                                crate::clock::now_unix(),
                            );
                            let a = action(
                                "sessions",
                                OpKind::CompressSession,
                                &file.path,
                                Some(&recode.dst),
                                file.size,
                                format!(
                                    "{why}; stored compressed as .jsonl.zst, which Codex reads"
                                ),
                            );
                            recodes.insert(a.id.clone(), recode);
                            actions.push(a);
                            continue;
                        }
                        let a = action(
                            "sessions",
                            OpKind::ArchiveSession,
                            &file.path,
                            Some(&plan.dst),
                            file.size,
                            why,
                        );
                        session_moves.insert(a.id.clone(), plan);
                        actions.push(a);
                    }
                    for p in judged.protected {
                        kept.push(Kept {
                            category: "sessions".into(),
                            path: p.path,
                            reason: p.protection.map(|x| x.explain()).unwrap_or_default(),
                        });
                    }
                }
                if compressing {
                    let targets = files
                        .iter()
                        .filter(|f| {
                            f.location == sessions::SessionLocation::Archived && !f.compressed
                        })
                        .collect();
                    let min_idle = args.inspect.compress_min_idle_secs;
                    let judged = judge_with(
                        targets,
                        &known,
                        |facts| crate::policy::judge_for_compress(facts, min_idle),
                        |file, row| {
                            transcript_compress::plan_compress_in_place(
                                file,
                                row,
                                index_path.as_deref(),
                                settings,
                            )
                        },
                    );
                    for (file, recode, age) in judged.chosen {
                        let a = action(
                            "compress",
                            OpKind::CompressSession,
                            &file.path,
                            Some(&recode.dst),
                            file.size,
                            format!(
                                "archived, idle {}; compressed in place as .jsonl.zst, which Codex {} and later reads",
                                human_age(age),
                                codex_versions::FIRST_ZST_READER
                            ),
                        );
                        recodes.insert(a.id.clone(), recode);
                        actions.push(a);
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
            ));
        }
        for db in data.logs.databases.iter().filter(|d| d.over_threshold) {
            actions.push(action(
                "logs",
                OpKind::StoreFiles,
                Path::new(&db.path),
                None,
                db.bytes + db.wal_bytes,
                format!("log database over {} ({} rows); will move with its -wal and -shm into the store; Codex starts a fresh one", human_bytes(data.logs.large_threshold_bytes), db.rows.unwrap_or(0)),
            ));
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
                    actions.push(a);
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
                (Some(cur), false) => actions.push(action(
                    "releases",
                    OpKind::StoreDir,
                    Path::new(&rel.path),
                    None,
                    rel.bytes,
                    format!(
                        "an old daemon release (current is {cur}); will move into the store, compressed"
                    ),
                )),
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
                reason: "config.toml does not parse; not edited".into(),
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
                actions.push(a);
            }
        }
    }

    // An item that is, sits in, or holds a name that is not UTF-8 cannot be recorded as it
    // is (`path_text`): it is kept, whatever its category, rather than planned.
    let not_utf8: Vec<&Path> = data
        .findings
        .iter()
        .filter(|f| f.problem == crate::path_text::NAME_NOT_UTF8)
        .map(|f| Path::new(&f.path))
        .collect();
    let (actions, unrecordable): (Vec<Action>, Vec<Action>) = actions.into_iter().partition(|a| {
        let item = Path::new(&a.path);
        !not_utf8
            .iter()
            .any(|n| n.starts_with(item) || item.starts_with(n))
    });
    kept.extend(unrecordable.into_iter().map(|a| Kept {
        category: a.category,
        path: a.path,
        reason: "its name, or a name inside it, is not UTF-8: codex-maint records paths as text and will not record a different name; rename it to let cleanup handle it".into(),
    }));

    let mut ids: Vec<&str> = actions.iter().map(|a| a.id.as_str()).collect();
    ids.sort();
    let plan = Plan {
        id: short_hash(&format!("{}\0{}", home.display(), ids.join(","))),
        home: home.display(),
        created_at: now_rfc3339(),
        categories: CATEGORIES
            .iter()
            .filter(|c| wanted(c))
            .map(|c| c.to_string())
            .collect(),
        bytes: actions.iter().map(|a| a.bytes).sum(),
        actions,
        kept,
    };
    Ok(Planned {
        plan,
        session_moves,
        recodes,
        index_path,
        gate,
    })
}

fn plans_dir(ctx: &Context) -> PathBuf {
    ctx.store_root.join("plans")
}

fn save_plan(ctx: &Context, plan: &Plan) -> Result<PathBuf> {
    let dir = plans_dir(ctx);
    crate::store::create_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", plan.id));
    crate::fs_atomic::write_atomic(&path, &serde_json::to_vec_pretty(plan)?, Some(0o600))?;
    Ok(path)
}

fn load_plan(ctx: &Context, id: &str) -> Result<Plan> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MaintError::usage(format!(
            "--plan {id}: a plan id is the hex id `cleanup --dry-run` printed"
        ))
        .into());
    }
    let path = plans_dir(ctx).join(format!("{id}.json"));
    let text = std::fs::read(&path).map_err(|_| {
        MaintError::refused(format!("no reviewed plan {id} in {}: run `codex-maint cleanup --dry-run` and review it first; nothing was changed", plans_dir(ctx).display()), vec![])
    })?;
    serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))
}

pub fn run(ctx: &Context, mut args: CleanupArgs) -> Result<Report> {
    // Applying a reviewed plan plans again over the categories that plan covered: how one
    // category is carried out can depend on another being chosen (sessions are archived
    // straight into compressed form only alongside `compress`).
    if let (Some(id), true, false) = (&args.plan_id, args.only.is_empty(), args.dry_run) {
        let covered = load_plan(ctx, id)?.categories;
        // A plan of every category stays "every category": only a narrowed one narrows.
        if !CATEGORIES.iter().all(|c| covered.iter().any(|k| k == c)) {
            args.only = covered;
        }
    }
    for c in &args.only {
        if !CATEGORIES.contains(&c.as_str()) {
            return Err(MaintError::usage(format!(
                "--only {c}: the categories are {}",
                CATEGORIES.join(",")
            ))
            .into());
        }
    }
    let home = ctx.locate_home()?;
    home.require_recognizable()?;
    let handoffs = handoff_threads(ctx)?;
    let before = inspect::gather(&home, &args.inspect, &handoffs, DatabaseDepth::Full);
    let planned = build_plan(ctx, &home, &before, &args)?;
    let plan = &planned.plan;

    if args.dry_run {
        let saved = save_plan(ctx, plan)?;
        let mut r = plan_report(&home, plan, &before);
        r.push(
            report::BACKUPS,
            format!(
                "not created: dry run (the plan was saved as {})",
                saved.display()
            ),
        );
        r.push(report::VERIFICATION, "no files changed in the Codex home");
        if let Some(gate) = &planned.gate {
            r.push(
                report::VERIFICATION,
                format!(
                    "compression gate ({}): {}",
                    if gate.allowed { "open" } else { "closed" },
                    gate.reason
                ),
            );
        }
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "to apply exactly this plan: codex-maint cleanup --yes --plan {}",
                plan.id
            ),
        );
        r.data = json!({ "dry_run": true, "plan": plan, "plan_file": saved, "compression_gate": planned.gate });
        return Ok(r);
    }

    // Decide what was reviewed before anything else happens.
    let reviewed: Plan = match (&args.plan_id, args.yes) {
        (Some(id), _) => load_plan(ctx, id)?,
        (None, true) => {
            return Err(MaintError::refused(
                "--yes applies only a reviewed plan: run `codex-maint cleanup --dry-run`, then `cleanup --yes --plan <id>`; nothing was changed",
                vec![],
            )
            .into());
        }
        (None, false) => plan.clone(),
    };
    if reviewed.home != plan.home {
        return Err(MaintError::refused(
            format!(
                "plan {} was made for {}, not {}; nothing was changed",
                reviewed.id, reviewed.home, plan.home
            ),
            vec![],
        )
        .into());
    }
    apply(
        ctx, &home, &args, &before, &planned, reviewed, !args.yes, &handoffs,
    )
}

/// Applies the reviewed actions that still hold (after the Codex gate and the backup),
/// verifies, and reports. `ask` shows the plan and waits for a yes first.
#[allow(clippy::too_many_arguments)]
fn apply(
    ctx: &Context,
    home: &CodexHome,
    args: &CleanupArgs,
    before: &InspectData,
    planned: &Planned,
    reviewed: Plan,
    ask: bool,
    handoffs: &HashSet<String>,
) -> Result<Report> {
    let plan = &planned.plan;
    let current: HashSet<&str> = plan.actions.iter().map(|a| a.id.as_str()).collect();
    let reviewed_ids: HashSet<&str> = reviewed.actions.iter().map(|a| a.id.as_str()).collect();
    let to_do: Vec<&Action> = reviewed
        .actions
        .iter()
        .filter(|a| current.contains(a.id.as_str()))
        .collect();
    let no_longer_hold: Vec<&Action> = reviewed
        .actions
        .iter()
        .filter(|a| !current.contains(a.id.as_str()))
        .collect();
    let unreviewed: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| !reviewed_ids.contains(a.id.as_str()))
        .collect();

    refuse_if_codex_running(home)?;
    if to_do.is_empty() {
        let mut r = plan_report(home, plan, before);
        if let Some(proposed) = r.sections.iter_mut().find(|s| s.title == report::PROPOSED) {
            proposed.items.clear();
        }
        r.push(report::COMPLETED, "nothing: no reviewed action still holds");
        r.push(report::BACKUPS, "not created: nothing to change");
        r.push(report::VERIFICATION, "no files changed");
        r.data = json!({ "dry_run": false, "plan": plan, "run_id": null });
        return Ok(r);
    }
    if ask {
        use std::io::IsTerminal;
        // `--yes` alone is refused, so the generic "rerun with --yes" would mislead here.
        if !std::io::stdin().is_terminal() {
            return Err(MaintError::refused(
                format!(
                    "cleanup applies only a reviewed plan when no one is at a terminal to confirm: run `codex-maint cleanup --dry-run` to review and save the plan, then `codex-maint cleanup --yes --plan <id>` with the id it prints ({} as things are now); nothing was changed",
                    plan.id
                ),
                vec![],
            )
            .into());
        }
        let preview = plan_report(home, &reviewed, before).render_text();
        eprint!("{preview}");
        confirm(
            &format!(
                "Apply {} actions ({})?",
                to_do.len(),
                human_bytes(to_do.iter().map(|a| a.bytes).sum())
            ),
            false,
        )?;
    }

    let (store, recovered) = ctx.open_store_and_recover(home)?;
    let run = Run::begin(&store, "cleanup", &ctx.argv, &home.root, None)?;
    let run_id = run.id;
    let mut r = Report::spec_shaped("cleanup", "cleanup");
    describe_recovery(&mut r, &recovered);
    observed(&mut r, home, before);

    let backup = match state_backup::create(&store, home, Some(run_id)) {
        Ok(b) => b,
        Err(e) => {
            run.finish("failed")?;
            return Err(e.context("the backup failed, so cleanup stopped before changing anything"));
        }
    };
    r.push(
        report::BACKUPS,
        format!(
            "backup {}: {} ({} entries, {}), manifest {}",
            backup.info.id,
            backup.info.archive.display(),
            backup.info.entries,
            human_bytes(backup.info.bytes),
            backup.info.manifest.display()
        ),
    );
    r.push(report::VERIFICATION, format!("backup read back against its manifest: ok; databases copied through the backup API and checked: {}", backup.databases_checked.join(", ")));

    let mut done: Vec<(&Action, i64)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let is_transcript_action = |a: &Action| a.category == "sessions" || a.category == "compress";
    let session_actions: Vec<&Action> = to_do
        .iter()
        .copied()
        .filter(|a| a.kind == OpKind::ArchiveSession)
        .collect();
    let recode_actions: Vec<&Action> = to_do
        .iter()
        .copied()
        .filter(|a| a.kind == OpKind::CompressSession)
        .collect();
    if !session_actions.is_empty() || !recode_actions.is_empty() {
        let mut writer = match &planned.index_path {
            Some(p) => {
                let w = IndexWriter::open(p)?;
                w.preflight(p)?;
                Some(w)
            }
            None => None,
        };
        let moves: Vec<PlannedMove> = session_actions
            .iter()
            .map(|a| planned.session_moves[&a.id].clone())
            .collect();
        let (ids, failed) = session_move::execute_all(
            &run,
            moves,
            writer.as_mut(),
            "archiving sessions",
            &crate::progress::OnTerminal::new(),
        );
        done.extend(session_actions.iter().copied().zip(ids));
        failure = failed;
        if failure.is_none() && !recode_actions.is_empty() {
            let recodes: Vec<PlannedRecode> = recode_actions
                .iter()
                .map(|a| planned.recodes[&a.id].clone())
                .collect();
            let (ids, failed) = transcript_compress::execute_all(
                &run,
                recodes,
                writer.as_mut(),
                "compressing transcripts",
                &crate::progress::OnTerminal::new(),
            );
            done.extend(recode_actions.iter().copied().zip(ids));
            failure = failed;
        }
    }
    for a in to_do.iter().copied().filter(|a| !is_transcript_action(a)) {
        if failure.is_some() {
            break;
        }
        let path = Path::new(&a.path);
        let result = match a.kind {
            OpKind::StoreFiles => store_files::execute(&run, &a.category, path),
            OpKind::StoreDir => store_dir::execute(&run, &a.category, path),
            OpKind::MoveWorktree => {
                let main = a
                    .main_repository
                    .as_deref()
                    .map(PathBuf::from)
                    .unwrap_or_default();
                worktree_move::execute(
                    &run,
                    path,
                    Path::new(a.target.as_deref().unwrap_or_default()),
                    &main,
                    None,
                    Vec::new(),
                )
            }
            OpKind::EditConfig => {
                config_edit::execute(&run, path, &a.projects).map(|id| id.unwrap_or(0))
            }
            other => Err(anyhow::anyhow!(
                "a {other} action is not applied one by one"
            )),
        };
        match result {
            Ok(id) => done.push((a, id)),
            Err(e) => failure = Some(e.context(format!("{} {}", a.kind, a.path))),
        }
    }
    run.finish(if failure.is_some() { "failed" } else { "done" })?;

    let archived: Vec<&(&Action, i64)> = done
        .iter()
        .filter(|(a, _)| a.category == "sessions")
        .collect();
    if archived.len() > 10 {
        r.push(
            report::COMPLETED,
            format!(
                "archived {} sessions ({}) to archived_sessions/ with their thread rows (ops {}-{}; all in --json)",
                archived.len(),
                human_bytes(archived.iter().map(|(a, _)| a.bytes).sum()),
                archived.first().map_or(0, |x| x.1),
                archived.last().map_or(0, |x| x.1)
            ),
        );
    }
    for (a, op) in done
        .iter()
        .filter(|(a, _)| archived.len() <= 10 || a.category != "sessions")
    {
        r.push(
            report::COMPLETED,
            format!(
                "{} {} ({}) (op {op})",
                verb(a),
                relative_to(home, Path::new(&a.path)),
                human_bytes(a.bytes)
            ),
        );
    }
    for a in &no_longer_hold {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "{} - skipped: it no longer holds (changed since the plan was reviewed)",
                relative_to(home, Path::new(&a.path))
            ),
        );
    }
    for a in &unreviewed {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "{} - not in the reviewed plan, not done: {}",
                relative_to(home, Path::new(&a.path)),
                a.reason
            ),
        );
    }
    kept_lines(&mut r, home, plan);
    r.push(
        report::BACKUPS,
        format!(
            "journal: run {run_id} in {} (every op's paths, hashes and old thread rows)",
            store.root.join(crate::store::CATALOG_FILE).display()
        ),
    );

    let after = inspect::gather(home, &args.inspect, handoffs, DatabaseDepth::Full);
    let problems = verify_after(
        &mut r,
        home,
        &store,
        run_id,
        &backup.info.dir,
        before,
        &after,
    )?;
    if let Some(e) = &failure {
        r.push(
            report::RESIDUAL_RISK,
            format!("the run stopped early: {e:#}"),
        );
    }
    r.push(
        report::RESIDUAL_RISK,
        format!("to take it all back: codex-maint undo --run {run_id}"),
    );
    r.data = json!({
        "dry_run": false,
        "run_id": run_id,
        "plan": plan,
        "reviewed_plan": reviewed.id,
        "done": done.iter().map(|(a, op)| json!({ "action": a, "op_id": op })).collect::<Vec<_>>(),
        "skipped_no_longer_hold": no_longer_hold,
        "not_in_reviewed_plan": unreviewed,
        "backup": backup.info,
        "verification_problems": problems,
        "sizes": sizes(before, &after),
    });
    if !problems.is_empty() {
        r.exit_code = ExitKind::VerifyFailed.code();
    }
    if let Some(e) = failure {
        return Err(e.context(format!(
            "cleanup run {run_id} stopped after {} actions (they can be undone); {}",
            done.len(),
            super::STOPPED_PART_WAY
        )));
    }
    Ok(r)
}

/// What a plan says it will do; `verb` is what a report says was done.
fn future_verb(a: &Action) -> &'static str {
    match a.kind {
        OpKind::ArchiveSession => "will archive",
        OpKind::CompressSession if a.category == "sessions" => "will archive compressed",
        OpKind::CompressSession => "will compress",
        OpKind::StoreFiles => "will rotate into the store",
        OpKind::StoreDir => "will move into the store",
        OpKind::MoveWorktree => "will move worktree",
        OpKind::EditConfig => "will prune dead projects from",
        _ => "will change",
    }
}

fn verb(a: &Action) -> &'static str {
    match a.kind {
        OpKind::ArchiveSession => "archived",
        OpKind::CompressSession if a.category == "sessions" => "archived compressed",
        OpKind::CompressSession => "compressed",
        OpKind::StoreFiles => "rotated into the store",
        OpKind::StoreDir => "moved into the store",
        OpKind::MoveWorktree => "moved worktree",
        OpKind::EditConfig => "pruned dead projects from",
        _ => "changed",
    }
}

fn observed(r: &mut Report, home: &CodexHome, data: &InspectData) {
    r.extend(report::OBSERVED, super::inspect::size_lines(home, data, 5));
}

fn kept_lines(r: &mut Report, home: &CodexHome, plan: &Plan) {
    let recent = plan
        .kept
        .iter()
        .filter(|k| k.reason.starts_with("recent"))
        .count();
    if recent > 0 {
        r.push(
            report::NOT_TOUCHED,
            format!("{recent} recent sessions, younger than the minimum age"),
        );
    }
    let others: Vec<&Kept> = plan
        .kept
        .iter()
        .filter(|k| !k.reason.starts_with("recent"))
        .collect();
    for k in others.iter().take(30) {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "{}: {} - {}",
                k.category,
                relative_to(home, Path::new(&k.path)),
                k.reason
            ),
        );
    }
    if others.len() > 30 {
        r.push(
            report::NOT_TOUCHED,
            format!(
                "... and {} more kept items (all in --json)",
                others.len() - 30
            ),
        );
    }
}

fn plan_report(home: &CodexHome, plan: &Plan, data: &InspectData) -> Report {
    let mut r = Report::spec_shaped("cleanup", "cleanup");
    observed(&mut r, home, data);
    for c in &plan.categories {
        let of: Vec<&Action> = plan.actions.iter().filter(|a| &a.category == c).collect();
        if of.is_empty() {
            continue;
        }
        let bytes: u64 = of.iter().map(|a| a.bytes).sum();
        if c == "sessions" && of.len() > 10 {
            r.push(report::PROPOSED, format!("sessions: will archive {} idle sessions ({}), each to archived_sessions/ with its thread row", of.len(), human_bytes(bytes)));
            continue;
        }
        if c == "compress" && of.len() > 10 {
            r.push(report::PROPOSED, format!("compress: compress {} idle archived transcripts ({}) in place as .jsonl.zst, each with its thread row", of.len(), human_bytes(bytes)));
            continue;
        }
        for a in of {
            r.push(
                report::PROPOSED,
                format!(
                    "{}: {} {} ({}) - {}",
                    c,
                    future_verb(a),
                    relative_to(home, Path::new(&a.path)),
                    human_bytes(a.bytes),
                    a.reason
                ),
            );
        }
    }
    r.push(
        report::PROPOSED,
        format!(
            "plan {}: {} actions, {} in all",
            plan.id,
            plan.actions.len(),
            human_bytes(plan.bytes)
        ),
    );
    kept_lines(&mut r, home, plan);
    if data.codex_running {
        r.push(
            report::RESIDUAL_RISK,
            "Codex is running: close it before applying this plan",
        );
    }
    r
}

#[derive(Debug, Serialize)]
struct CategorySize {
    category: &'static str,
    before: u64,
    after: u64,
}

fn sizes(before: &InspectData, after: &InspectData) -> Vec<CategorySize> {
    let top = |d: &InspectData, name: &str| {
        d.top_level
            .iter()
            .find(|e| e.name == name)
            .map_or(0, |e| e.size.disk_bytes)
    };
    let logs = |d: &InspectData| {
        d.logs.large_files.iter().map(|l| l.bytes).sum::<u64>()
            + d.logs
                .databases
                .iter()
                .map(|x| x.bytes + x.wal_bytes)
                .sum::<u64>()
    };
    let releases = |d: &InspectData| {
        d.releases
            .as_ref()
            .map_or(0, |r| r.releases.iter().map(|x| x.bytes).sum())
    };
    vec![
        CategorySize {
            category: "sessions",
            before: before.sessions.active.bytes,
            after: after.sessions.active.bytes,
        },
        CategorySize {
            category: "archived_sessions",
            before: before.sessions.archived.bytes,
            after: after.sessions.archived.bytes,
        },
        CategorySize {
            category: "logs",
            before: logs(before),
            after: logs(after),
        },
        CategorySize {
            category: "worktrees",
            before: top(before, "worktrees"),
            after: top(after, "worktrees"),
        },
        CategorySize {
            category: "releases",
            before: releases(before),
            after: releases(after),
        },
        CategorySize {
            category: "home",
            before: before.total.disk_bytes,
            after: after.total.disk_bytes,
        },
    ]
}

/// SPEC.md "Validation" for cleanup, each check named with its result.
fn verify_after(
    r: &mut Report,
    home: &CodexHome,
    store: &crate::store::Store,
    run_id: i64,
    backup_dir: &Path,
    before: &InspectData,
    after: &InspectData,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    match std::fs::read(backup_dir.join(crate::store::backup::MANIFEST_NAME))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::store::backup::Manifest>(&b).ok())
    {
        Some(m) => problems.extend(crate::store::backup::check(backup_dir, &m)?),
        None => problems.push(format!(
            "backup manifest in {} is missing",
            backup_dir.display()
        )),
    }
    r.push(
        report::VERIFICATION,
        format!(
            "backup present at {}: {}",
            backup_dir.display(),
            if problems.is_empty() { "ok" } else { "FAILED" }
        ),
    );

    let ops = crate::ops::record::read_all(store.catalog.ops_of_run(run_id)?)?;
    let applied: Vec<_> = ops
        .into_iter()
        .filter(|o| o.state == crate::store::OpState::Applied)
        .collect();
    let op_problems = crate::ops::verify_all_live(&applied, &crate::progress::OnTerminal::new());
    r.push(
        report::VERIFICATION,
        format!(
            "{} ops applied, each item at its recorded place with its hash (and thread row): {}",
            applied.len(),
            if op_problems.is_empty() {
                "ok".to_string()
            } else {
                format!("{} problems", op_problems.len())
            }
        ),
    );
    problems.extend(op_problems);

    if after.config.exists {
        r.push(
            report::VERIFICATION,
            format!(
                "config.toml parses: {}",
                if after.config.parses { "ok" } else { "FAILED" }
            ),
        );
        if !after.config.parses {
            problems.push("config.toml does not parse".into());
        }
    }
    for db in &after.databases {
        r.push(
            report::VERIFICATION,
            format!(
                "PRAGMA {} {}: {}",
                db.check.pragma(),
                relative_to(home, Path::new(&db.path)),
                db.integrity
            ),
        );
        if db.integrity != "ok" {
            problems.push(format!("{} integrity {}", db.path, db.integrity));
        }
    }
    for w in before
        .worktrees
        .iter()
        .filter(|w| w.status == Cleanliness::Dirty)
    {
        let still = Path::new(&w.path).exists();
        r.push(
            report::VERIFICATION,
            format!(
                "dirty worktree {} untouched: {}",
                relative_to(home, Path::new(&w.path)),
                if still { "ok" } else { "FAILED" }
            ),
        );
        if !still {
            problems.push(format!("dirty worktree {} moved", w.path));
        }
    }
    for s in sizes(before, after) {
        if s.before != s.after {
            r.push(
                report::VERIFICATION,
                format!(
                    "{}: {} -> {}",
                    s.category,
                    human_bytes(s.before),
                    human_bytes(s.after)
                ),
            );
        }
    }
    for p in &problems {
        r.push(report::RESIDUAL_RISK, format!("verification: {p}"));
    }
    Ok(problems)
}

/// `cleanup` as typed: the scheduled run, or a run with its flags settled over the policy
/// file, whose report says where each threshold came from.
pub fn run_with_flags(ctx: &Context, flags: CleanupFlags) -> Result<Report> {
    if flags.unattended {
        let policy = flags.policy.as_deref().expect("clap requires --policy");
        return run_unattended(ctx, policy);
    }
    let policy = match &flags.policy {
        Some(file) => Some(
            crate::automation::policy::Policy::load(file)
                .map_err(|e| MaintError::usage(format!("{e:#}")))?,
        ),
        None => None,
    };
    let (args, settings) = settle(&flags, policy.as_ref());
    let mut r = run(ctx, args)?;
    record_settings(&mut r, &settings);
    Ok(r)
}

/// `data.settings` and one line of the text view: each threshold, and whether a flag, the
/// policy file or the default set it.
fn record_settings(r: &mut Report, settings: &[Setting]) {
    if let Some(data) = r.data.as_object_mut() {
        data.insert("settings".into(), json!(settings));
    }
    let described: Vec<String> = settings
        .iter()
        .map(|s| {
            let source = match s.source {
                Source::Flag => "flag",
                Source::Policy => "policy",
                Source::Default => "default",
            };
            format!("{} {} ({source})", s.name, s.value)
        })
        .collect();
    r.push(
        report::PROPOSED,
        format!("thresholds: {}", described.join(", ")),
    );
}

/// The scheduled run: always inspects and files its report; cleans up only the categories
/// an approved, unchanged policy opts into, and still refuses while Codex runs, backs up
/// and journals. Its report lands in the policy's report folder (and `latest.txt`).
pub fn run_unattended(ctx: &Context, policy_path: &Path) -> Result<Report> {
    use crate::automation::policy::{Policy, is_approved};
    let policy = Policy::load(policy_path).map_err(|e| MaintError::usage(format!("{e:#}")))?;
    let approved = is_approved(&ctx.store_root, policy_path);
    let reports = policy.report_dir(&ctx.store_root);
    let home = ctx.locate_home()?;
    let unattended = CleanupFlags {
        only: policy.cleanup.unattended.clone(),
        yes: true,
        ..Default::default()
    };
    let (args, _) = settle(&unattended, Some(&policy));
    let handoffs = handoff_threads(ctx)?;
    let before = inspect::gather(&home, &args.inspect, &handoffs, DatabaseDepth::Full);
    let inspect_report = inspect::render(&home, &before, &args.inspect);
    file_report(&reports, "inspect", &inspect_report)?;

    let outcome: Result<Report> = if policy.cleanup.unattended.is_empty() {
        let mut r = inspect_report.clone();
        r.push(
            report::COMPLETED,
            "scheduled run: inspect only (the policy opts into no unattended cleanup)",
        );
        Ok(r)
    } else if !approved {
        let mut r = inspect_report.clone();
        r.push(
            report::RESIDUAL_RISK,
            format!(
                "the policy opts into unattended cleanup of {} but is not approved (or changed since): inspect only. Review it, then run `codex-maint automation --approve`",
                policy.cleanup.unattended.join(", ")
            ),
        );
        Ok(r)
    } else {
        let planned = build_plan(ctx, &home, &before, &args)?;
        let reviewed = planned.plan.clone();
        apply(
            ctx, &home, &args, &before, &planned, reviewed, false, &handoffs,
        )
    };
    match outcome {
        Ok(r) => {
            file_report(&reports, "run", &r)?;
            Ok(r)
        }
        Err(e) => {
            let mut r = inspect_report;
            r.exit_code = crate::error::exit_kind_of(&e).code();
            r.push(
                report::RESIDUAL_RISK,
                format!("scheduled cleanup did not run: {e:#}"),
            );
            for d in crate::error::details_of(&e) {
                r.push(report::RESIDUAL_RISK, d);
            }
            file_report(&reports, "run", &r)?;
            Err(e)
        }
    }
}

/// `<dir>/<time>-<what>.txt` and `.json`, plus `latest.txt` / `latest.json` for the eye.
fn file_report(dir: &Path, what: &str, r: &Report) -> Result<()> {
    crate::store::create_private_dir(dir)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let text = r.render_text();
    let json = serde_json::to_vec_pretty(r)?;
    for (name, bytes) in [
        (format!("{stamp}-{what}.txt"), text.as_bytes()),
        (format!("{stamp}-{what}.json"), json.as_slice()),
        ("latest.txt".to_string(), text.as_bytes()),
        ("latest.json".to_string(), json.as_slice()),
    ] {
        crate::fs_atomic::write_atomic(&dir.join(name), bytes, Some(0o600))?;
    }
    Ok(())
}
