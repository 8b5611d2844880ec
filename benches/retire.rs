//! Retire at a heavy user's scale. A generated home (20,000 sessions; `CODEX_MAINT_BENCH=
//! full`: 100,000) with Codex's own databases is first archived and compressed by cleanup,
//! as a user's would be, which leaves most of its transcripts in the one flat folder Codex
//! lists only 10,000 files of. Then `cleanup --only retire` at the default 9,000-file cap:
//! - time and peak memory of the dry run, the apply, `verify`, and `restore <id>` of one;
//! - how many archived sessions Codex lists with the resume picker's parameters, against
//!   how many are on disk, before and after (with the real Codex installed);
//! - `codex doctor`'s parity verdict, and a check of our own over every thread row: rows
//!   whose transcript is gone (stale) and transcripts with no row (missing);
//! - the bytes: the home before and after, and the retired sessions in the store against
//!   the same sessions as `.jsonl.zst` (these transcripts are generated; the ratio on
//!   transcripts the real Codex wrote is `benches/cold_tier.rs`'s).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use codex_maint::testkit::heavy_home::HeavyHome;

mod support;
use support::codex_app::{self, AppServer};
use support::{bench_dir, measure, ours_in};

fn main() {
    let full = std::env::var("CODEX_MAINT_BENCH").is_ok_and(|v| v == "full");
    let sessions: u64 = if full { 100_000 } else { 20_000 };
    let kib: u64 = std::env::var("CODEX_MAINT_BENCH_KIB_PER_SESSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let codex = codex_maint::testkit::installed_codex();
    let dir = bench_dir("codex-maint-retire-");
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_codex-maint"));
    let ours = |args: &[&str]| ours_in(&bin, &home, &store, dir.path(), args);
    if let Some(codex) = &codex {
        codex_app::create_databases(codex, &home);
    }
    HeavyHome::at_scale(sessions, sessions * (kib << 10))
        .build(&home)
        .expect("the home is generated");
    println!("## Retire at {sessions} sessions ({kib} KiB each on average)\n");

    let apply = |only: &str, extra: &[&str]| {
        let mut dry = vec!["cleanup", "--dry-run", "--only", only];
        dry.extend(extra);
        let dry_run = measure(&mut ours(&dry));
        let plan = newest_plan(&store);
        let mut yes = vec!["cleanup", "--yes", "--plan", &plan, "--only", only];
        yes.extend(extra);
        let applied = measure(&mut ours(&yes));
        (dry_run, applied)
    };
    let (_, archived) = apply("sessions,compress", &[]);
    println!(
        "- archive and compress first: {:.1} s, {:.0} MB peak",
        archived.secs, archived.max_rss_mb
    );
    let before = Counts::of(&home);
    let picker_before = codex.as_ref().map(|c| picker_archived(c, &home));
    let home_before = codex_maint::store::retention::prune::folder_bytes(&home);

    let (dry, retired) = apply("retire", &[]);
    let after = Counts::of(&home);
    let home_after = codex_maint::store::retention::prune::folder_bytes(&home);
    let picker_after = codex.as_ref().map(|c| picker_archived(c, &home));
    let verify = measure(&mut ours(&["verify"]));

    let (stale, missing) = row_parity(&home);
    let doctor = codex.as_ref().map(|c| codex_app::parity(c, &home));
    let (retired_count, retired_zst_bytes, one) = retired_sessions(&store);
    let (transcript_packed, rows_packed) = packed_bytes_of_retired(&store);
    let dicts = codex_maint::store::retention::prune::folder_bytes(&store.join("dicts"));
    let restore = measure(&mut ours(&["restore", &one]));

    println!("| step | time | peak memory |\n|---|---|---|");
    for (what, m) in [
        ("cleanup --dry-run --only retire", &dry),
        ("cleanup --yes --only retire", &retired),
        ("verify", &verify),
        ("restore <id> of one retired session", &restore),
    ] {
        println!("| {what} | {:.2} s | {:.0} MB |", m.secs, m.max_rss_mb);
    }
    println!();
    println!(
        "- archived_sessions/: {} transcripts before, {} after; active: {} before, {} after; retired: {retired_count}",
        before.archived, after.archived, before.active, after.active
    );
    if let (Some(b), Some(a)) = (picker_before, picker_after) {
        println!(
            "- Codex lists, as its resume picker asks: {b} archived before ({} on disk), {a} after ({} on disk)",
            before.archived, after.archived
        );
    }
    println!(
        "- our check over every thread row after: {stale} stale rows, {missing} transcripts without a row"
    );
    if let Some(d) = doctor {
        println!("- codex doctor's parity check after: {d}");
    }
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "- bytes: the home {:.1} MB before retire, {:.1} MB after (databases are not vacuumed here: that is `reclaim`)",
        mb(home_before),
        mb(home_after)
    );
    println!(
        "- the {retired_count} retired transcripts were {:.2} MB as they lay (.jsonl.zst) and take {:.2} MB of pack blocks ({:.1}x smaller), plus {:.2} MB of dictionaries; their rows take {:.2} MB more (generated transcripts: see benches/cold_tier.rs for real ones)",
        mb(retired_zst_bytes),
        mb(transcript_packed),
        retired_zst_bytes as f64 / transcript_packed.max(1) as f64,
        mb(dicts),
        mb(rows_packed)
    );
}

struct Counts {
    active: u64,
    archived: u64,
}

impl Counts {
    fn of(home: &Path) -> Counts {
        let count = |dir: &Path| {
            walkdir::WalkDir::new(dir)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .count() as u64
        };
        Counts {
            active: count(&home.join("sessions")),
            archived: count(&home.join("archived_sessions")),
        }
    }
}

fn picker_archived(codex: &Path, home: &Path) -> usize {
    AppServer::start(codex, home)
        .list_as_picker(true, "openai")
        .threads
}

/// Rows whose transcript is gone, and transcripts no row names: what Codex's doctor counts,
/// over every row whatever its cap.
fn row_parity(home: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open_with_flags(
        home.join("state_5.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the thread index");
    let paths: HashSet<String> = conn
        .prepare("SELECT rollout_path FROM threads")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .flatten()
        .collect();
    let stale = paths.iter().filter(|p| !Path::new(p).exists()).count() as u64;
    let on_disk: Vec<String> = ["sessions", "archived_sessions"]
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(home.join(d)).into_iter().flatten())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().display().to_string())
        .collect();
    let missing = on_disk.iter().filter(|p| !paths.contains(*p)).count() as u64;
    (stale, missing)
}

/// How many sessions the store holds retired, their bytes as they lay (`.jsonl.zst`), and
/// one of their ids.
fn retired_sessions(store: &Path) -> (u64, u64, String) {
    let conn = rusqlite::Connection::open_with_flags(
        store.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the catalog");
    conn.query_row(
        "SELECT count(*), COALESCE(sum(size), 0), max(json_extract(detail, '$.thread_id'))
         FROM ops WHERE kind = 'retire_session' AND state = 'applied' AND reverted_by IS NULL",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get(2)?,
            ))
        },
    )
    .expect("the retired sessions")
}

/// The compressed bytes of pack blocks the retired sessions' chunks take, transcripts and
/// rows apart: each chunk's share of its block's compressed length (a block holds chunks
/// of many objects; a chunk two sessions share counts once, for the first).
fn packed_bytes_of_retired(store: &Path) -> (u64, u64) {
    use std::collections::{HashMap, HashSet};
    let conn = rusqlite::Connection::open_with_flags(
        store.join("catalog.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the catalog");
    let objects: Vec<(String, String)> = conn
        .prepare(
            "SELECT CASE json_extract(detail, '$.transcript.object') WHEN '=hash_before' THEN hash_before
                    ELSE json_extract(detail, '$.transcript.object') END,
                    json_extract(detail, '$.rows_object')
             FROM ops WHERE kind = 'retire_session' AND state = 'applied' AND reverted_by IS NULL",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .flatten()
        .collect();
    let chunks_of = |id: &str| -> Vec<Vec<u8>> {
        let list: Vec<u8> = conn
            .query_row("SELECT chunk_list FROM objects WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .expect("the object is in the catalog");
        let plain = zstd::decode_all(&list[..]).expect("a chunk list");
        plain.chunks(32).map(<[u8]>::to_vec).collect()
    };
    let mut seen = HashSet::new();
    let mut share = |ids: Vec<Vec<u8>>| -> u64 {
        let mut bytes = 0.0;
        for id in ids {
            if !seen.insert(id.clone()) {
                continue;
            }
            let (length, block_length, block_plain): (i64, i64, i64) = conn
                .query_row(
                    "SELECT c.length, b.length, b.plain_length FROM chunks c
                     JOIN blocks b ON b.pack = c.pack AND b.number = c.block WHERE c.id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .expect("the chunk is in a block");
            bytes += length as f64 * block_length as f64 / block_plain.max(1) as f64;
        }
        bytes as u64
    };
    let mut by_kind: HashMap<&str, u64> = HashMap::new();
    for (transcript, rows) in &objects {
        *by_kind.entry("transcript").or_default() += share(chunks_of(transcript));
        *by_kind.entry("rows").or_default() += share(chunks_of(rows));
    }
    (by_kind["transcript"], by_kind["rows"])
}

fn newest_plan(store: &Path) -> String {
    std::fs::read_dir(store.join("plans"))
        .expect("the dry run saved a plan")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .and_then(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .expect("a plan file")
}
