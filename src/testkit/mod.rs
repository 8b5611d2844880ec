//! Building Codex homes for tests and benchmarks, and comparing trees. Public so the
//! integration tests and `benches/` share one generator instead of copies.

pub mod fingerprint;
pub mod heavy_home;
pub mod synthetic_home;

/// The current releases of the real Codex CLI: every real-Codex test runs on each of them,
/// in a fresh home per version, and `.ci/run` installs each (it reads this list, so the set
/// lives here only). Oldest first.
pub const CURRENT_CODEX_VERSIONS: [&str; 2] = ["0.169.0", "0.171.0"];

/// The current Codex the benchmarks drive: the oldest current one, so their figures stay
/// comparable with the ones recorded before the list grew.
pub const CODEX_VERSION: &str = CURRENT_CODEX_VERSIONS[0];

/// The benchmarks' Codex: `$CODEX_BIN`, else `installed_codex_version(CODEX_VERSION)`.
/// The npm package's `codex` is a launcher; the binary it starts sits under a `vendor/`
/// folder.
pub fn installed_codex() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(bin) = std::env::var_os("CODEX_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Some(bin);
    }
    installed_codex_version(CODEX_VERSION)
}

/// A version of the real Codex CLI, installed under `$CODEX_MAINT_CODEX_CACHE` (default
/// `~/.cache/codex-maint`) as `codex-<version>`, the way `.ci/run` installs the current and
/// the older versions the compatibility tests run.
pub fn installed_codex_version(version: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let cache = std::env::var_os("CODEX_MAINT_CODEX_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/codex-maint"))
        })?;
    native_binary_in(&cache.join(format!("codex-{version}")))
}

/// The native `codex` an npm install into `prefix` unpacked under a `vendor/` folder.
fn native_binary_in(prefix: &std::path::Path) -> Option<std::path::PathBuf> {
    walkdir::WalkDir::new(prefix.join("node_modules/@openai"))
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_type().is_file()
                && e.file_name() == "codex"
                && e.path().to_string_lossy().contains("/vendor/")
        })
        .map(|e| e.into_path())
}
