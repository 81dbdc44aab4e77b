//! What the web view's once-a-minute sizing refresh costs on a database file (made by `report_db_bench`
//! with `full`), the way the collector made it before `store::kept_stats` and the way it makes it now,
//! alternating refresh by refresh in one process so both see the same machine.
//!
//! The refreshes step the window's end a minute at a time through the minute rollups after the last hour
//! built, as a running collector's refreshes do: the full read (`build_report` of the rolled-up minutes,
//! each host's memory over the whole window) against the kept read (`build_report_kept`, the window
//! from the hour, each host's memory from what was added since the last refresh; its first refresh reads
//! the whole window). CPU time of this thread per refresh, in milliseconds.
//!
//! The file holds minute rollups only at its two ragged ends, so the window starts halfway through the
//! ragged first hour (about a day back for a day's file): a full read then reads that half hour of every
//! host's minutes, as a refresh on a collector that keeps 35 days of minute rollups does on average.
//! Usage: `sizing_refresh_bench DB [REFRESHES]`.

use std::time::Duration;

use headroom_collector::sizing::SizingConfig;
use headroom_collector::store::kept_stats::KeptHostStats;
use headroom_collector::store::Metric;
use headroom_collector::views::end::EndAt;
use headroom_collector::views::report_cli::{build_report, build_report_kept, ReportOptions};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

fn thread_cpu() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the live local it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn meta(db: &std::path::Path, key: &str) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let value: i64 = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?;
    Ok(value as u64)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = std::path::PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: sizing_refresh_bench DB [REFRESHES] [WINDOW]"))?,
    );
    let refreshes: u64 = args.next().map_or(Ok(10), |n| n.parse())?;
    let hour_built_ms = meta(&db, "rollup_hour_built_through_ms")?;
    let through_ms = meta(&db, "rollup_raw_cutoff_ms")?;
    let first_minute_ms = {
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.query_row("SELECT MIN(bucket_ms) FROM rollup_minute", [], |r| {
            r.get::<_, i64>(0)
        })? as u64
    };
    let first_hour_ms = first_minute_ms.div_ceil(HOUR_MS) * HOUR_MS;
    let from_ms = (first_minute_ms + first_hour_ms) / 2 / MINUTE_MS * MINUTE_MS;
    let config = SizingConfig::default();
    // The window of each refresh: from `from_ms` to the minute its end holds.
    let options = |now_ms: u64| ReportOptions {
        db: db.clone(),
        window: Duration::from_millis((now_ms / MINUTE_MS + 1) * MINUTE_MS - from_ms),
        now_ms,
        end: EndAt::Now,
        scenarios: Vec::new(),
        progress: false,
        rolled_up_only: true,
    };
    let mut kept = KeptHostStats::new(Metric::MemUsedBytes);
    let (mut full_ms, mut kept_ms) = (Vec::new(), Vec::new());
    let mut first_kept_ms = 0.0;
    let mut blobs = Vec::new();
    for refresh in 0..=refreshes {
        // Each refresh's window ends a minute later, within the minutes after the last hour built.
        let now_ms = hour_built_ms + (5 + refresh) * MINUTE_MS + 10_000;
        anyhow::ensure!(
            now_ms < through_ms,
            "the file holds minute rollups for {} refreshes after the last hour built; ask for fewer",
            (through_ms - hour_built_ms) / MINUTE_MS - 5
        );
        let started = thread_cpu();
        let kept_report = build_report_kept(&options(now_ms), &config, &mut kept)?;
        let kept_took = (thread_cpu() - started).as_secs_f64() * 1e3;
        let started = thread_cpu();
        let full_report = build_report(&options(now_ms), &config)?;
        let full_took = (thread_cpu() - started).as_secs_f64() * 1e3;
        anyhow::ensure!(
            kept_report.groups.len() == full_report.groups.len(),
            "the two reports size different groups"
        );
        if refresh == 0 {
            first_kept_ms = kept_took;
            println!(
                "first refresh (kept: the whole window): {kept_took:.0} ms, {} blobs",
                kept.blobs_read()
            );
        } else {
            kept_ms.push(kept_took);
            blobs.push(kept.blobs_read() as f64);
        }
        full_ms.push(full_took);
    }
    let (full, steady) = (median(full_ms.clone()), median(kept_ms.clone()));
    println!(
        "window from {} minutes before the first whole hour, {refreshes} refreshes after the first, CPU ms \
         per refresh:",
        (first_hour_ms - from_ms) / MINUTE_MS
    );
    println!(
        "  full read (before): median {full:.0} ms, min {:.0}, max {:.0}",
        full_ms.iter().copied().fold(f64::INFINITY, f64::min),
        full_ms.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "  kept read (now):    median {steady:.1} ms, min {:.1}, max {:.1}; {:.0} blobs per refresh; first \
         refresh {first_kept_ms:.0} ms",
        kept_ms.iter().copied().fold(f64::INFINITY, f64::min),
        kept_ms.iter().copied().fold(0.0, f64::max),
        median(blobs)
    );
    println!("  ratio full / kept: {:.1}x", full / steady);
    Ok(())
}
