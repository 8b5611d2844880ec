//! codex-maint: keeps a Codex home light, recoverable and explainable.
//!
//! Layers, top to bottom; each names only those below it, and `tests/architecture.rs`
//! fails when one does not:
//! - `cli` parses and prints; `commands` compose, one module per command, and no command
//!   names another (what they share is in `commands/mod.rs` or below).
//! - `automation`: the policy file, scheduler entries, and the scheduled run.
//! - `cleanup`: planning, plan review, applying and verifying a cleanup, shared by the
//!   `cleanup` command and the scheduled run.
//! - `survey`: one look at a home and the data model of what it found.
//! - `policy`: which sessions may be archived or compressed, and why the others are kept.
//! - `home` (read-only knowledge of Codex's files) | `ops` (journaled changes), then `store`.
//!
//! DESIGN.md names cli, commands, policy, home | ops, store; `automation`, `cleanup` and
//! `survey` sit between commands and policy, so that the scheduled run and the commands
//! share one pipeline rather than call each other. `write_gate` is what every change
//! passes before its first write (Codex closed, a yes, the store recovered).

pub mod arg_values;
pub mod automation;
pub mod browse;
pub mod cleanup;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod content_hash;
pub mod error;
pub mod failpoint;
pub mod fs_atomic;
pub mod handoff;
pub mod home;
pub mod home_guard;
pub mod home_lock;
pub mod io_pool;
pub mod ops;
pub mod path_text;
pub mod policy;
pub mod proc_locks;
pub mod progress;
pub mod regular_file;
pub mod report;
pub mod sqlite_check;
pub mod sqlite_read;
pub mod store;
pub mod survey;
pub mod terminal_text;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod write_gate;
pub mod zstd_stream;

#[cfg(test)]
pub(crate) mod test_support {
    pub use crate::testkit::fingerprint::tree_fingerprint;
}
