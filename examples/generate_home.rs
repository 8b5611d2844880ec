//! Builds a synthetic Codex home shaped like a heavy user's, for trying codex-maint or
//! benchmarking it: `cargo run --release --example generate_home -- DIR [quick|full|SESSIONS [GB]]`
//! (a count gives the full shape at that many sessions, with 200 KiB a session unless GB says).

use codex_maint::testkit::heavy_home::HeavyHome;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        anyhow::bail!("usage: generate_home DIR [quick|full|SESSIONS [GB]]");
    };
    let shape = match args.get(1).map(String::as_str) {
        Some("full") => HeavyHome::full(),
        Some(count) if count.parse::<u64>().is_ok() => {
            let sessions: u64 = count.parse()?;
            let total_bytes = match args.get(2) {
                Some(gb) => (gb.parse::<f64>()? * (1u64 << 30) as f64) as u64,
                None => sessions * (200 << 10),
            };
            HeavyHome::at_scale(sessions, total_bytes)
        }
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
