//! Builds a synthetic Codex home shaped like a heavy user's, for trying codex-maint or
//! benchmarking it: `cargo run --release --example generate_home -- DIR [quick|full]`.

use codex_maint::testkit::synthetic_home::HeavyHome;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        anyhow::bail!("usage: generate_home DIR [quick|full]");
    };
    let shape = match args.get(1).map(String::as_str) {
        Some("full") => HeavyHome::full(),
        _ => HeavyHome::quick(),
    };
    let started = std::time::Instant::now();
    let specs = shape.build(std::path::Path::new(dir))?;
    let total: usize = specs.iter().map(|s| s.target_bytes).sum();
    println!(
        "{} sessions, {} MiB of transcripts in {dir} ({:.1} s)",
        specs.len(),
        total >> 20,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
