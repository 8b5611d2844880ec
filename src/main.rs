fn main() {
    limit_malloc_arenas();
    let code = codex_maint::cli::main_exit_code();
    report_malloc_arenas();
    std::process::exit(code);
}

/// glibc gives each thread that allocates its own arena (up to 8 per core), and each keeps
/// what it freed. The short-lived hashing and reading threads made that most of the gap
/// between the heap in use and the peak resident size; two arenas keep the peak near the
/// heap at no measurable cost in speed.
///
/// glibc also raises its mmap threshold to the size of each large block it frees (up to
/// 32 MiB), after which 8 MiB pack blocks and zstd's tables come from the arenas and stay
/// there, fragmented. A fixed threshold keeps them mapped and given back: retiring 74,736
/// sessions peaked at 110 MB resident without it and 96 MB with it (benches/retire.rs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets allocator parameters; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// The arena limit shows only in glibc's own statistics, so tests/malloc_arenas.rs asks a
/// test build for them (one "Arena N:" block per arena, on stderr) after a run whose many
/// reader threads would each have taken an arena without the limit.
#[cfg(all(feature = "test-hooks", target_os = "linux", target_env = "gnu"))]
fn report_malloc_arenas() {
    if std::env::var_os("CODEX_MAINT_MALLOC_STATS").is_some() {
        // SAFETY: malloc_stats only reads the allocator's state and writes to stderr.
        unsafe { libc::malloc_stats() }
    }
}

#[cfg(not(all(feature = "test-hooks", target_os = "linux", target_env = "gnu")))]
fn report_malloc_arenas() {}
