//! Building Codex homes for tests and benchmarks, and comparing trees. Public so the
//! integration tests and `benches/` share one generator instead of copies.

pub mod fingerprint;
pub mod synthetic_home;
