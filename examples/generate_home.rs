//! Builds a synthetic Codex home for trying codex-maint or benchmarking it:
//! `cargo run --release --example generate_home -- DIR SESSIONS [MEAN_KB]`.
//! Sizes follow a long tail (most small, a few very large); a tenth are archived,
//! ages spread over 120 days, a few pinned.

use codex_maint::testkit::synthetic_home::{SessionSpec, build};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(count)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: generate_home DIR SESSIONS [MEAN_KB]");
    };
    let count: u64 = count.parse()?;
    let mean_kb: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200.0);
    let specs: Vec<SessionSpec> = (0..count).map(|n| spec(n, mean_kb)).collect();
    build(std::path::Path::new(dir), &specs, true)?;
    let total: usize = specs.iter().map(|s| s.target_bytes).sum();
    println!("{} sessions, ~{} MiB in {dir}", specs.len(), total >> 20);
    Ok(())
}

fn spec(n: u64, mean_kb: f64) -> SessionSpec {
    // A deterministic Pareto-like spread: u in (0,1], size = scale / u^1.2, capped.
    let u = ((n.wrapping_mul(2654435761) % 10_000) as f64 + 1.0) / 10_000.0;
    let bytes = ((mean_kb * 1024.0 * 0.3) / u.powf(1.2)).min(300.0 * 1024.0 * 1024.0) as usize;
    let age = (n % 120) as f64 + 0.5;
    let mut s = SessionSpec::aged(n, age, bytes.max(2048));
    s.archived = n % 10 == 9;
    s.pinned = n % 97 == 5;
    s
}
