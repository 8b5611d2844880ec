//! A thread pool wider than the machine, for work that mostly waits on the disk: reading
//! the first record of thousands of transcripts from a cold cache. More reads in flight
//! keep the device busy where one thread per core leaves it idle between seeks. Only for
//! small reads: each thread's buffers count toward peak memory.

use std::sync::OnceLock;

/// The shared pool, or None if its threads cannot be made (callers then use rayon's own).
pub fn io_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads((cores * 8).clamp(16, 64))
            .thread_name(|i| format!("io-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `work` in the pool (its `par_iter`s spread over the pool's threads).
pub fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match io_pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}
