//! SPEC.md's automation mode: the repeatable maintenance contract (a policy file), the
//! scheduler entries that would run it, the run they start, and how the policy's thresholds
//! meet cleanup's flags. Nothing is scheduled unless the user asks.

pub mod policy;
pub mod schedule;
pub mod settings;
pub mod unattended;
