//! `browse`'s model, view and keys: the home's sessions by weight, grouped as ncdu shows a
//! disk, with marks that become the plan `cleanup` applies. The command composes these with
//! a terminal (or, for tests and the benchmark, ratatui's `TestBackend`); nothing here
//! writes anything but the plan a dry run would save.

pub mod keys;
pub mod marks;
pub mod model;
pub mod plan;
pub mod runs;
pub mod summary;
pub mod view;

pub use model::Browser;
