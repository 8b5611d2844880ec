//! Progress for long batches (DESIGN.md: "large batches show progress on a terminal").
//! Operations only report to a `Progress` sink their command hands them; the command
//! decides whether anything is drawn. `OnTerminal` draws on stderr and only when stderr is
//! a terminal, so pipes, `--json` consumers and agents never see it mixed into what they
//! read.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

/// Where a long batch reports how far it got. `Sync` because hashing reports from every
/// core at once.
pub trait Progress: Sync {
    /// A batch of `total` items, described by `what`, begins.
    fn start(&self, total: u64, what: &str);
    /// `n` more items are done.
    fn advance(&self, n: u64);
    /// The batch is over (done or failed); whatever was drawn goes away.
    fn finish(&self);
}

/// For callers that show nothing: tests, library users, work too small to mention.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64, _what: &str) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

/// Below this many items a run is over before a bar would be worth drawing.
const WORTH_A_BAR: u64 = 200;

/// A bar on stderr for each batch worth one, when stderr is a terminal.
pub struct OnTerminal {
    bar: Mutex<ProgressBar>,
}

impl OnTerminal {
    pub fn new() -> OnTerminal {
        OnTerminal {
            bar: Mutex::new(ProgressBar::hidden()),
        }
    }

    fn current(&self) -> std::sync::MutexGuard<'_, ProgressBar> {
        // A panic while holding the lock left only a bar behind; drawing may go on.
        self.bar.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for OnTerminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for OnTerminal {
    fn start(&self, total: u64, what: &str) {
        let mut current = self.current();
        current.finish_and_clear();
        *current = bar(total, what);
    }

    fn advance(&self, n: u64) {
        self.current().inc(n);
    }

    fn finish(&self) {
        self.current().finish_and_clear();
    }
}

/// Lets a command that draws its own bar hand it where a sink is expected.
impl Progress for ProgressBar {
    fn start(&self, total: u64, what: &str) {
        self.set_length(total);
        self.set_message(what.to_string());
    }

    fn advance(&self, n: u64) {
        self.inc(n);
    }

    fn finish(&self) {
        self.finish_and_clear();
    }
}

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

/// A progress that another call already started: work done in slices reports into one
/// bar for the whole run, and the slices' own start and finish are ignored.
pub struct Continuing<'a>(pub &'a dyn Progress);

impl Progress for Continuing<'_> {
    fn start(&self, _total: u64, _what: &str) {}

    fn advance(&self, n: u64) {
        self.0.advance(n);
    }

    fn finish(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Counts what it is told, so a test can see an operation report to the sink it was
    /// given rather than draw on its own.
    #[derive(Default)]
    struct Counting {
        total: AtomicU64,
        done: AtomicU64,
        finished: AtomicU64,
    }

    impl Progress for Counting {
        fn start(&self, total: u64, _what: &str) {
            self.total.store(total, Ordering::SeqCst);
        }
        fn advance(&self, n: u64) {
            self.done.fetch_add(n, Ordering::SeqCst);
        }
        fn finish(&self) {
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn hashing_many_files_reports_each_one_to_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..5)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, format!("file {i}")).unwrap();
                p
            })
            .collect();
        let sink = Counting::default();
        sink.start(paths.len() as u64, "hashing");
        let hashes = crate::content_hash::Prefetched::with_progress(paths.clone(), &sink);
        sink.finish();
        assert_eq!(sink.total.load(Ordering::SeqCst), 5);
        assert_eq!(sink.done.load(Ordering::SeqCst), 5);
        assert_eq!(sink.finished.load(Ordering::SeqCst), 1);
        assert!(hashes.hash(&paths[0]).is_ok());
    }

    #[test]
    fn off_a_terminal_nothing_is_drawn() {
        // The test harness captures stderr, so it is never a terminal here.
        let sink = OnTerminal::new();
        sink.start(10_000, "archiving");
        sink.advance(10);
        assert!(sink.current().is_hidden());
        sink.finish();
    }
}
