//! `log`: every run and, for one run, its operations. Reads the catalog only.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::clock::human_bytes;
use crate::error::MaintError;
use crate::ops::OpRecord;
use crate::report::Report;
use crate::store::{self, RunRecord};

pub const RUNS: &str = "Runs";
pub const OPERATIONS: &str = "Operations";

#[derive(clap::Args)]
pub struct LogArgs {
    /// List the operations of this run
    #[arg(long, value_name = "N", conflicts_with = "session")]
    pub run: Option<i64>,
    /// List every operation that touched this session (id or unique prefix)
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
}

pub fn run(ctx: &Context, run_id: Option<i64>, session: Option<&str>) -> Result<Report> {
    let mut report = Report::new("log", "log");
    let Some(catalog) = store::open_read_only(&ctx.store_root)? else {
        report.push(
            RUNS,
            format!(
                "none: there is no store at {} yet",
                ctx.store_root.display()
            ),
        );
        report.data = json!({ "runs": [] });
        return Ok(report);
    };
    if let Some(text) = session {
        let thread_id = super::session_in_catalog(&catalog, text)?;
        let ops = crate::ops::record::read_all(catalog.ops_of_thread(&thread_id)?)?;
        report.push(
            OPERATIONS,
            format!(
                "session {thread_id}: {} operations, oldest first",
                ops.len()
            ),
        );
        for op in &ops {
            report.push(
                OPERATIONS,
                format!("run {} · {}", op.run_id, describe_op(op)),
            );
        }
        report.data = json!({ "session": thread_id, "ops": ops });
        return Ok(report);
    }
    match run_id {
        None => {
            let runs = catalog.runs()?;
            if runs.is_empty() {
                report.push(RUNS, "none yet");
            }
            for r in &runs {
                report.push(RUNS, describe_run(r));
            }
            report.data = json!({ "runs": runs });
        }
        Some(id) => {
            let run = catalog.run(id)?.ok_or_else(|| {
                MaintError::usage(format!("there is no run {id}; see `codex-maint log`"))
            })?;
            report.push(RUNS, describe_run(&run));
            let ops = crate::ops::record::read_all(catalog.ops_of_run(id)?)?;
            if ops.is_empty() {
                report.push(OPERATIONS, "none");
            }
            for op in &ops {
                report.push(OPERATIONS, describe_op(op));
            }
            report.data = json!({ "run": run, "ops": ops });
        }
    }
    Ok(report)
}

fn describe_run(r: &RunRecord) -> String {
    let c = &r.op_counts;
    let mut line = format!(
        "run {} · {} · {} · {} · {} applied ({}), {} reverted since",
        r.id,
        r.started_at,
        r.command,
        r.status,
        c.applied,
        human_bytes(c.bytes.max(0) as u64),
        c.reverted
    );
    if c.rolled_back > 0 {
        line.push_str(&format!(", {} rolled back", c.rolled_back));
    }
    if c.prepared > 0 {
        line.push_str(&format!(", {} interrupted", c.prepared));
    }
    if let Some(n) = r.reverts_run {
        line.push_str(&format!(" · reverts run {n}"));
    }
    if let Some(when) = &r.forgotten_at {
        line.push_str(&format!(" · forgotten {when}: no longer undoable"));
    }
    line
}

fn describe_op(op: &OpRecord) -> String {
    let hash = op
        .hash_after
        .as_deref()
        .or(op.hash_before.as_deref())
        .map(|h| &h[..h.len().min(16)])
        .unwrap_or("-");
    let mut line = format!(
        "op {} · {} · {} · {} -> {} · {} · blake3 {}",
        op.id,
        op.kind,
        op.state.as_str(),
        op.src,
        op.dst.as_deref().unwrap_or("-"),
        human_bytes(op.size.unwrap_or(0).max(0) as u64),
        hash
    );
    if let Some(by) = op.reverted_by {
        line.push_str(&format!(" · reverted by op {by}"));
    }
    if let Some(of) = op.reverts_op {
        line.push_str(&format!(" · reverts op {of}"));
    }
    line
}
