//! codex-maint: keeps a Codex home light, recoverable and explainable. Layers, top to
//! bottom (DESIGN.md): cli, commands, policy, home | ops, store. Nothing calls upward.

pub mod arg_values;
pub mod automation;
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
pub mod io_pool;
pub mod ops;
pub mod path_text;
pub mod policy;
pub mod progress;
pub mod report;
pub mod sqlite_check;
pub mod sqlite_read;
pub mod store;
pub mod survey;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod zstd_stream;

#[cfg(test)]
pub(crate) mod test_support {
    pub use crate::testkit::fingerprint::tree_fingerprint;
}
