//! The survey of a home: what `inspect` reports and `cleanup` plans from, built from the
//! read-only knowledge in `home` and the decisions in `policy`, below the commands.

pub mod compression;
