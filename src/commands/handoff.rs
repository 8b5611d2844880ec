//! `handoff`: for long useful sessions, a handoff document (SPEC.md "Handoff Docs") built
//! from the transcript, secrets removed, written atomically, checked for its required
//! sections, and recorded in the store so `cleanup` may then archive the session.

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Context, relative_to};
use crate::clock::{age_secs, human_bytes};
use crate::error::MaintError;
use crate::handoff::extract::{self, Context as ExtractContext};
use crate::handoff::has_required_sections;
use crate::handoff::redact::{MASK, Redactor, secrets_in_auth_json};
use crate::home::sessions::{self, SessionFile, SessionLocation};
use crate::home::thread_index::{self, IndexState, ThreadRow};
use crate::home::{CodexHome, sqlite_read, writer_locks};
use crate::policy::CURRENT_WINDOW_SECS;
use crate::report::{self, Report};

#[derive(clap::Args)]
pub struct HandoffArgs {
    /// Session ids or unique prefixes
    pub ids: Vec<String>,
    /// All sessions that are large or have many turns and no handoff yet
    #[arg(long)]
    pub candidates: bool,
    /// Where to write the documents (default: handoffs/ in the store)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the documents instead of writing them (nothing is recorded)
    #[arg(long)]
    pub stdout: bool,
    /// List what would be written
    #[arg(long)]
    pub dry_run: bool,
    /// A session at least this large (MB) is a candidate
    #[arg(long = "min-mb", value_name = "MB", default_value = "2", value_parser = crate::arg_values::megabytes)]
    pub min_bytes: u64,
    /// A session with at least this many turns is a candidate
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub min_turns: u64,
}

#[derive(Debug, Serialize)]
pub struct Candidate {
    pub thread_id: String,
    pub path: String,
    pub bytes: u64,
    pub turns: Option<u64>,
    pub reasons: Vec<String>,
    pub has_handoff: bool,
}

#[derive(Debug, Serialize)]
pub struct Written {
    pub thread_id: String,
    pub path: Option<String>,
    pub bytes: usize,
    pub sections_missing: Vec<&'static str>,
    pub redactions: usize,
    pub truncated: bool,
    pub transcript_records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
}

/// Turns per thread from Codex's history projection (`thread_history_*.sqlite`), when there
/// is one: far cheaper than reading every transcript.
fn turns_per_thread(home: &CodexHome) -> HashMap<String, u64> {
    let Ok(entries) = std::fs::read_dir(&home.root) else {
        return HashMap::new();
    };
    let db = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("thread_history_")
                    && n.to_string_lossy().ends_with(".sqlite")
            })
        })
        .max();
    let Some(db) = db else { return HashMap::new() };
    let Ok(read) = sqlite_read::open(&db) else {
        return HashMap::new();
    };
    let Ok(mut stmt) = read
        .conn
        .prepare("SELECT thread_id, COUNT(*) FROM thread_turns GROUP BY thread_id")
    else {
        return HashMap::new();
    };
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?.to_ascii_lowercase(),
            r.get::<_, i64>(1)? as u64,
        ))
    })
    .map(|rows| rows.flatten().collect())
    .unwrap_or_default()
}

pub fn run(ctx: &Context, args: HandoffArgs) -> Result<Report> {
    if args.ids.is_empty() && !args.candidates {
        return Err(MaintError::usage(
            "name sessions (IDs or unique prefixes) or pass --candidates",
        )
        .into());
    }
    let home = ctx.locate_home()?;
    let (files, _) = sessions::scan(&home);
    let rows: HashMap<String, ThreadRow> = match thread_index::detect(&home) {
        IndexState::Understood(index) => index.read_all().unwrap_or_default(),
        _ => HashMap::new(),
    };
    let with_handoff = crate::policy::handoff_threads(&ctx.store_root)?;
    let turns = turns_per_thread(&home);
    let locks = writer_locks::held_thread_locks(&home);
    let mut report = Report::spec_shaped("handoff", "handoff");

    let mut candidates = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.location == SessionLocation::Active)
    {
        let Some(id) = f.id() else { continue };
        let current = locks.contains(id) || age_secs(f.mtime) < CURRENT_WINDOW_SECS;
        let t = turns.get(id).copied();
        let mut reasons = Vec::new();
        if f.size >= args.min_bytes {
            reasons.push(format!("large: {}", human_bytes(f.size)));
        }
        if t.is_some_and(|t| t >= args.min_turns) {
            reasons.push(format!("many turns: {}", t.unwrap_or(0)));
        }
        if reasons.is_empty() || current || f.is_symlink {
            continue;
        }
        candidates.push(Candidate {
            thread_id: id.to_string(),
            path: f.path.display().to_string(),
            bytes: f.size,
            turns: t,
            reasons,
            has_handoff: with_handoff.contains(id),
        });
    }
    for c in &candidates {
        report.push(
            report::OBSERVED,
            format!(
                "{} - {} ({}){}",
                c.thread_id,
                relative_to(&home, Path::new(&c.path)),
                c.reasons.join(", "),
                if c.has_handoff { "; has a handoff" } else { "" }
            ),
        );
    }

    let targets: Vec<&SessionFile> = if args.candidates {
        let wanted: Vec<&str> = candidates
            .iter()
            .filter(|c| !c.has_handoff)
            .map(|c| c.thread_id.as_str())
            .collect();
        files
            .iter()
            .filter(|f| f.id().is_some_and(|id| wanted.contains(&id)))
            .collect()
    } else {
        resolve(&files, &args.ids)?
    };

    if args.dry_run {
        for f in &targets {
            report.push(
                report::PROPOSED,
                format!(
                    "will write a handoff for {} ({})",
                    f.id().unwrap_or("?"),
                    human_bytes(f.size)
                ),
            );
        }
        report.push(report::BACKUPS, "not written: dry run");
        report.push(report::VERIFICATION, "no files written");
        report.data = json!({ "dry_run": true, "candidates": candidates, "handoffs": [] });
        return Ok(report);
    }

    let auth = crate::regular_file::read_to_string(&home.root.join(crate::home::CREDENTIALS_FILE))
        .unwrap_or_default();
    let redactor = Redactor::new(secrets_in_auth_json(&auth));
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| ctx.store_root.join("handoffs"));
    let store = if args.stdout {
        None
    } else {
        Some(crate::store::Store::open_for_write(&ctx.store_root)?)
    };
    if !args.stdout {
        crate::store::create_private_dir(&out_dir)?;
    }
    let mut written = Vec::new();
    for f in targets {
        let id = f.id().unwrap_or("unknown").to_string();
        let row = rows.get(&id);
        let doc_path = free_doc_path(&out_dir, &id);
        let xctx = ExtractContext {
            git_branch: row.and_then(|r| r.git_branch.clone()),
            git_sha: row.and_then(|r| r.git_sha.clone()),
            title: row.and_then(|r| r.title.clone()),
            doc_path: (!args.stdout).then(|| doc_path.display().to_string()),
        };
        let extracted = extract::from_transcript(&f.path, &xctx)?;
        let doc = redactor.redact(&extracted.handoff.render());
        let redactions = doc.matches(MASK).count();
        let missing = has_required_sections(&doc);
        let mut entry = Written {
            thread_id: id.clone(),
            path: None,
            bytes: doc.len(),
            sections_missing: missing.clone(),
            redactions,
            truncated: !extracted.handoff.truncated.is_empty(),
            transcript_records: extracted.stats.records,
            document: None,
        };
        if args.stdout {
            entry.document = Some(doc);
        } else {
            crate::fs_atomic::write_new(&doc_path, doc.as_bytes(), 0o600)?;
            // SPEC.md "Validation": the file exists and has Goal, Current State, Restart Prompt.
            let back = std::fs::read_to_string(&doc_path).unwrap_or_default();
            let missing_on_disk = has_required_sections(&back);
            report.push(
                report::VERIFICATION,
                format!(
                    "{} exists and has Goal, Current State and Restart Prompt: {}",
                    doc_path.display(),
                    if missing_on_disk.is_empty() && !back.is_empty() {
                        "ok".to_string()
                    } else {
                        format!("MISSING {}", missing_on_disk.join(", "))
                    }
                ),
            );
            if missing_on_disk.is_empty() {
                if let Some(store) = &store {
                    store.catalog.record_handoff(
                        &id,
                        crate::path_text::recorded(&doc_path)?,
                        &crate::content_hash::hash_bytes(back.as_bytes()),
                        extracted.stats.hash.as_deref(),
                        Some(f.size),
                    )?;
                }
            } else {
                report.exit_code = crate::error::ExitKind::VerifyFailed.code();
            }
            entry.path = Some(doc_path.display().to_string());
            report.push(
                report::COMPLETED,
                format!(
                    "handoff for {id}: {} ({} bytes{}{})",
                    doc_path.display(),
                    entry.bytes,
                    if redactions > 0 {
                        format!(", {redactions} secrets redacted")
                    } else {
                        String::new()
                    },
                    if entry.truncated { ", shortened" } else { "" }
                ),
            );
        }
        written.push(entry);
    }
    if written.is_empty() {
        report.push(report::COMPLETED, "nothing: no session needed a handoff");
    }
    if !args.stdout && !written.is_empty() {
        report.push(
            report::BACKUPS,
            format!(
                "handoffs recorded in {}",
                ctx.store_root.join(crate::store::CATALOG_FILE).display()
            ),
        );
        report.push(report::RESIDUAL_RISK, "these sessions may now be archived by `cleanup` (the handoff is recorded); review each document first");
    }
    report.push(
        report::NOT_TOUCHED,
        "every transcript: read only; nothing in the Codex home changed",
    );
    if args.stdout {
        let docs: Vec<String> = written.iter().filter_map(|w| w.document.clone()).collect();
        report.raw_text = Some(docs.join("\n\n"));
    }
    report.data = json!({ "dry_run": false, "candidates": candidates, "handoffs": written });
    Ok(report)
}

/// `<id>-<UTC stamp>.md`, with `-2`, `-3`… when a handoff of the same thread already
/// landed in that second: a second handoff is a new document, never a replacement.
fn free_doc_path(out_dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    (1u32..)
        .map(|n| match n {
            1 => out_dir.join(format!("{id}-{stamp}.md")),
            n => out_dir.join(format!("{id}-{stamp}-{n}.md")),
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("some suffix is free")
}

fn resolve<'f>(files: &'f [SessionFile], ids: &[String]) -> Result<Vec<&'f SessionFile>> {
    ids.iter()
        .map(|wanted| {
            crate::home::sessions::files_of_id(files, wanted)
                .map(|matches| matches[0])
                .map_err(|why| MaintError::usage(why).into())
        })
        .collect()
}
