//! SPEC.md's automation mode: the repeatable maintenance contract (a policy file) and the
//! scheduler entries that would run it. Nothing is scheduled unless the user asks.

pub mod policy;
pub mod schedule;
pub mod settings;
pub mod unattended;
