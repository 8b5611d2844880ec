//! Building Codex homes for tests and benchmarks, and comparing trees. Public so the
//! integration tests and `benches/` share one generator instead of copies.

pub mod fingerprint;
pub mod heavy_home;
pub mod synthetic_home;

/// The version of the real Codex CLI that `.ci/run` installs and the compatibility tests
/// and benchmarks drive.
pub const CODEX_VERSION: &str = "0.169.0";

/// The real Codex binary: `$CODEX_BIN`, else the native binary `.ci/run` installs under
/// `$CODEX_MAINT_CODEX_DIR` (default `codex-<version>` in the cache of
/// `installed_codex_version`). The npm package's `codex` is a launcher; the binary it starts
/// sits under a `vendor/` folder.
pub fn installed_codex() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(bin) = std::env::var_os("CODEX_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Some(bin);
    }
    match std::env::var_os("CODEX_MAINT_CODEX_DIR") {
        Some(dir) => native_binary_in(&PathBuf::from(dir)),
        None => installed_codex_version(CODEX_VERSION),
    }
}

/// Another version of the real Codex CLI, installed beside the main one under
/// `$CODEX_MAINT_CODEX_CACHE` (default `~/.cache/codex-maint`) as `codex-<version>`, the way
/// `.ci/run` installs the older versions the compatibility tests run.
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
