//! Progress for long batches (DESIGN.md: "large batches show progress on a terminal"). It is
//! drawn on stderr and only when stderr is a terminal, so pipes, `--json` consumers and
//! agents never see it mixed into what they read.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Below this many items a run is over before a bar would be worth drawing.
const WORTH_A_BAR: u64 = 200;

/// A bar for `total` items described by `what`, or a hidden one that costs nothing.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    if total < WORTH_A_BAR || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
