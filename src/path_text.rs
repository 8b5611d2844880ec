//! The one way a path becomes the text codex-maint records: in the catalog (an op's `src`,
//! `dst` and detail, a run's home, a backup's entries, a handoff) and in a reviewed plan.
//!
//! A path that is not UTF-8 is refused here rather than stored losslessly. Everything that
//! names a path by text would have to carry it: the catalog's columns and JSON details,
//! plans, reports and `--json`, and Codex's own thread index, which keeps `rollout_path`
//! as TEXT, so Codex itself cannot point at such a transcript. Writing
//! `display()` instead would record a different name, and undo would then act on a path
//! that was never there. So such an item is kept where it is and reported, and nothing is
//! recorded for it; renaming it lets codex-maint handle it. Text derived from a recorded
//! path (its folders, the temporary names beside it, Codex's spelling of it in a thread
//! row, the thread index under a recorded home) is UTF-8 because that path is; a
//! `PathBuf` in an op's detail is refused by serde itself, never spelled lossily.

use anyhow::Result;
use std::path::{Path, PathBuf};

use crate::error::MaintError;

/// How a name that is not UTF-8 is reported: an `inspect` finding, and the reason cleanup
/// keeps an item that is, or holds, such a name.
pub const NAME_NOT_UTF8: &str = "name is not valid UTF-8";

/// The text recorded for `path`: exactly its bytes, so reading it back gives the same
/// path. A path that is not UTF-8 is refused (exit 3), named as closely as it can be shown.
pub fn recorded(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        MaintError::refused(
            format!(
                "{}: its {NAME_NOT_UTF8}, and codex-maint records paths as text, so it was not changed (rename it to let codex-maint handle it)",
                path.display()
            ),
            vec![path.display().to_string()],
        )
        .into()
    })
}

/// `recorded` as an owned string, for the catalog's columns.
pub fn recorded_string(path: &Path) -> Result<String> {
    recorded(path).map(str::to_owned)
}

/// The first entry at or under `root` (not following symlinks) whose path is not UTF-8:
/// a folder moved into the store is recorded entry by entry, so one such name keeps it.
pub fn first_not_utf8_under(root: &Path) -> Option<PathBuf> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.path().to_str().is_none())
        .map(|e| e.path().to_path_buf())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn a_utf8_path_is_recorded_as_exactly_its_bytes() {
        let path = Path::new("/h/log/caf\u{e9} \u{fffd}.log");
        assert_eq!(recorded(path).unwrap(), "/h/log/caf\u{e9} \u{fffd}.log");
    }

    #[test]
    fn a_path_that_is_not_utf8_is_refused_naming_it_never_recorded_lossily() {
        let path = Path::new(OsStr::from_bytes(b"/h/log/caf\xe9.log"));
        let err = recorded(path).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("/h/log/caf\u{fffd}.log") && text.contains(NAME_NOT_UTF8),
            "{text}"
        );
        assert_eq!(
            crate::error::exit_kind_of(&err),
            crate::error::ExitKind::Refused
        );
    }

    #[test]
    fn a_folder_holding_a_name_that_is_not_utf8_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/ok"), "x").unwrap();
        assert_eq!(first_not_utf8_under(dir.path()), None);
        let bad = dir.path().join(OsStr::from_bytes(b"bin/\xff"));
        std::fs::write(&bad, "x").unwrap();
        assert_eq!(first_not_utf8_under(dir.path()), Some(bad));
    }
}
