//! Errors carry the exit code DESIGN.md assigns, so every command fails the same way
//! whether it is run by a person or by an agent reading `--json`.

use serde::Serialize;

/// Exit codes of DESIGN.md: 0 done, 1 error, 2 usage, 3 refused by a safety rule,
/// 4 verification found a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    Error,
    Usage,
    Refused,
    VerifyFailed,
}

impl ExitKind {
    pub fn code(self) -> i32 {
        match self {
            ExitKind::Error => 1,
            ExitKind::Usage => 2,
            ExitKind::Refused => 3,
            ExitKind::VerifyFailed => 4,
        }
    }
}

/// An error that knows its exit code and, for refusals, the items that caused it
/// (each conflict, each running process), so a caller can act on them.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct MaintError {
    pub kind: ExitKind,
    pub message: String,
    pub details: Vec<String>,
}

impl MaintError {
    pub fn usage(message: impl Into<String>) -> Self {
        MaintError {
            kind: ExitKind::Usage,
            message: message.into(),
            details: Vec::new(),
        }
    }
    pub fn refused(message: impl Into<String>, details: Vec<String>) -> Self {
        MaintError {
            kind: ExitKind::Refused,
            message: message.into(),
            details,
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        MaintError {
            kind: ExitKind::Error,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// The exit kind of any error: ours carry it, anything else is a plain error.
pub fn exit_kind_of(err: &anyhow::Error) -> ExitKind {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<MaintError>())
        .map(|e| e.kind)
        .unwrap_or(ExitKind::Error)
}

pub fn details_of(err: &anyhow::Error) -> Vec<String> {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<MaintError>())
        .map(|e| e.details.clone())
        .unwrap_or_default()
}
