fn main() {
    limit_malloc_arenas();
    std::process::exit(codex_maint::cli::main_exit_code());
}

/// glibc gives each thread that allocates its own arena (up to 8 per core), and each keeps
/// what it freed. The short-lived hashing and reading threads made that most of the gap
/// between the heap in use and the peak resident size; two arenas keep the peak near the
/// heap at no measurable cost in speed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
