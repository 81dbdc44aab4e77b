//! Writes a synthetic collector database for the capacity-report and windowed-fleet benchmarks: HOSTS hosts
//! in 20 service groups over 3 zones, `group_minutes` and `group_port_minutes` for every minute of DAYS days
//! ending now, with a daily cycle and a slow upward trend, and every host's hourly rollup (`rollup_hour`,
//! with sketches of CPU busy %, memory used % and bytes from one value a minute, up to the hour before the
//! current one) and minute rollups at the window's ragged ends, which per-host memory sizing and
//! `fleet --window W --stat S` read. Usage: `report_db_bench FILE [HOSTS] [DAYS] [full [END_MINUTE]]`; with
//! `full`, every rollup also holds every other metric of the catalogue (a sixty-value sketch each), as a
//! collector's rollups do, so reading them costs what it costs on a collector's file; END_MINUTE ends the
//! data at that minute of the hour (the last one passed) instead of now, which sets how many minutes the
//! ragged first hour holds.
//! bench/report_bench.sh times `headroom-collector report` and the windowed fleet view on the result.

use std::path::PathBuf;
use std::time::Instant;

use headroom_collector::metrics::Metric;
use headroom_collector::store::sketch::RollupStats;
use headroom_collector::store::Store;
use rusqlite::params;

const GROUPS: usize = 20;
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
const GIB: u64 = 1 << 30;

/// One value of every metric but the three above: a level of its own, steady for a third of the metrics and
/// moving by up to 5 or 10 % for the others, so sketches hold one to a dozen buckets as a host's do.
fn add_other_metrics(stats: &mut RollupStats, rng: &mut fastrand::Rng) {
    for metric in Metric::ALL {
        if matches!(
            metric,
            Metric::CpuBusyPct | Metric::MemUsedPct | Metric::MemUsedBytes
        ) {
            continue;
        }
        let index = metric.index();
        let spread = 0.05 * (index % 3) as f64;
        stats.add(index, (100 + 10 * index) as f64 * (1.0 + spread * rng.f64()));
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/tmp/headroom-report-bench.db".into()),
    );
    let hosts: usize = args.next().map_or(Ok(1_000), |n| n.parse())?;
    let days: u64 = args.next().map_or(Ok(30), |n| n.parse())?;
    let full = match args.next().as_deref() {
        None => false,
        Some("full") => true,
        Some(other) => anyhow::bail!("the fourth argument is `full` or nothing, not {other:?}"),
    };
    // The minute of the hour the data ends at (default: now's), which sets how many minutes the window's
    // ragged first hour holds.
    let end_minute: Option<u64> = args.next().map(|n| n.parse()).transpose()?;
    let _ = std::fs::remove_file(&path);
    let clock_ms = headroom_common::clock::now_ms();
    let now_ms = match end_minute {
        Some(minute) if minute < 60 => {
            let at = clock_ms - clock_ms % HOUR_MS + minute * MINUTE_MS;
            if at > clock_ms {
                at - HOUR_MS
            } else {
                at
            }
        }
        Some(minute) => anyhow::bail!("END_MINUTE is a minute of the hour (0-59), not {minute}"),
        None => clock_ms,
    };
    let end_ms = now_ms - now_ms % MINUTE_MS;
    let start_ms = end_ms - days * 86_400_000;
    let started = Instant::now();
    // Hours are built once their minutes are: the last hour built is the one before the current hour.
    let hour_built_ms = (end_ms - end_ms % HOUR_MS).saturating_sub(HOUR_MS).max(start_ms);

    // The store creates the schema, so the file is exactly what a collector would have made.
    drop(Store::open(&path, now_ms)?);
    let mut conn = rusqlite::Connection::open(&path)?;
    let tx = conn.transaction()?;
    // Per group and zone: hosts, cores and memory, for the per-minute capacity columns.
    let mut cells = vec![(0u64, 0u64, 0u64); GROUPS * ZONES.len()];
    // Per host: its row id, group and memory, for the hourly rollups.
    let mut host_rows: Vec<(i64, usize, u64)> = Vec::with_capacity(hosts);
    {
        let mut insert = tx.prepare(
            "INSERT INTO hosts (name, labels, group_name, zone, cores, memory_bytes, first_seen_ms, \
             last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for index in 0..hosts {
            let group = index % GROUPS;
            let zone = (index / GROUPS) % ZONES.len();
            // Heterogeneous hosts: every fourth one is twice as large.
            let (cores, memory) = if index % 4 == 0 {
                (32, 128 * GIB)
            } else {
                (16, 64 * GIB)
            };
            let labels = format!("{{\"group\":\"svc-{group:02}\",\"zone\":\"{}\"}}", ZONES[zone]);
            insert.execute(params![
                format!("host-{index:05}"),
                labels,
                format!("svc-{group:02}"),
                ZONES[zone],
                cores,
                memory as i64,
                start_ms as i64,
                now_ms as i64
            ])?;
            host_rows.push((tx.last_insert_rowid(), group, memory));
            let cell = &mut cells[group * ZONES.len() + zone];
            *cell = (cell.0 + 1, cell.1 + cores, cell.2 + memory);
        }
    }
    {
        let mut insert = tx.prepare(
            "INSERT INTO group_minutes (minute_ms, group_name, zone, hosts, cpu_busy_cores, cores, \
             mem_used_bytes, mem_bytes, tcp_established) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        // Every host serves one port (443); its established connections per minute go to the per-port table
        // the report sizes connections from.
        let mut insert_port = tx.prepare(
            "INSERT INTO group_port_minutes (minute_ms, group_name, zone, port, established, hosts) \
             VALUES (?1, ?2, ?3, 443, ?4, ?5)",
        )?;
        let mut rng = fastrand::Rng::with_seed(7);
        let minutes = (end_ms - start_ms) / MINUTE_MS;
        for minute in 0..minutes {
            let minute_ms = start_ms + minute * MINUTE_MS;
            let day_phase = (minute_ms % 86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU;
            let trend = 1.0 + 0.2 * minute as f64 / minutes as f64;
            for group in 0..GROUPS {
                let base = 0.15 + 0.02 * group as f64;
                for (zone, zone_name) in ZONES.iter().enumerate() {
                    let (count, cores, memory) = cells[group * ZONES.len() + zone];
                    if count == 0 {
                        continue;
                    }
                    let busy = (base + 0.1 * day_phase.sin() + 0.03 * rng.f64()) * trend;
                    let established = count as f64 * (200.0 + 100.0 * rng.f64()) * trend;
                    insert_port.execute(params![
                        minute_ms as i64,
                        format!("svc-{group:02}"),
                        zone_name,
                        established,
                        count as i64
                    ])?;
                    insert.execute(params![
                        minute_ms as i64,
                        format!("svc-{group:02}"),
                        zone_name,
                        count as i64,
                        busy * cores as f64,
                        cores as i64,
                        (0.4 + 0.1 * rng.f64()) * memory as f64,
                        memory as i64,
                        established
                    ])?;
                }
            }
        }
    }
    let hourly_rollups = {
        // Each host's hour: one value a minute of the group's daily cycle and trend with its own noise.
        let mut insert = tx.prepare(
            "INSERT INTO rollup_hour (bucket_ms, host_id, samples, stats) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut rng = fastrand::Rng::with_seed(11);
        let first_hour_ms = start_ms.div_ceil(HOUR_MS) * HOUR_MS;
        let total_minutes = (end_ms - start_ms) / MINUTE_MS;
        let mut hour_ms = first_hour_ms;
        let mut written = 0u64;
        while hour_ms + HOUR_MS <= hour_built_ms {
            for &(host_id, group, memory) in &host_rows {
                let mut stats = RollupStats::with_len(Metric::COUNT);
                for minute in 0..60 {
                    let minute_ms = hour_ms + minute * MINUTE_MS;
                    let day_phase = (minute_ms % 86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU;
                    let trend =
                        1.0 + 0.2 * ((minute_ms - start_ms) / MINUTE_MS) as f64 / total_minutes as f64;
                    let busy =
                        (0.15 + 0.02 * group as f64 + 0.1 * day_phase.sin() + 0.03 * rng.f64()) * trend;
                    let used = 0.4 + 0.1 * rng.f64();
                    stats.add(Metric::CpuBusyPct.index(), busy * 100.0);
                    stats.add(Metric::MemUsedPct.index(), used * 100.0);
                    stats.add(Metric::MemUsedBytes.index(), used * memory as f64);
                    if full {
                        add_other_metrics(&mut stats, &mut rng);
                    }
                }
                insert.execute(params![hour_ms as i64, host_id, 60i64, stats.encode()])?;
                written += 1;
            }
            hour_ms += HOUR_MS;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_hour_built_through_ms', ?1)",
            [hour_built_ms as i64],
        )?;
        written
    };
    // The minutes at both ragged ends of the window, as a running collector holds them: before the first
    // whole hour, and since the last hour built (the current hour, and the one before it while the rollup
    // is still ROLLUP_DELAY past its end).
    let minute_rollups = {
        let mut insert = tx.prepare(
            "INSERT INTO rollup_minute (bucket_ms, host_id, samples, stats, pass_rowid) \
             VALUES (?1, ?2, 60, ?3, 0)",
        )?;
        let mut rng = fastrand::Rng::with_seed(13);
        let first_hour_ms = start_ms.div_ceil(HOUR_MS) * HOUR_MS;
        let mut written = 0u64;
        let minutes = |from: u64, to: u64| (from..to).step_by(MINUTE_MS as usize);
        for minute_ms in minutes(start_ms, first_hour_ms).chain(minutes(hour_built_ms, end_ms)) {
            for &(host_id, group, memory) in &host_rows {
                let mut stats = RollupStats::with_len(Metric::COUNT);
                for _ in 0..60 {
                    let used = 0.4 + 0.1 * rng.f64();
                    stats.add(Metric::CpuBusyPct.index(), (0.15 + 0.02 * group as f64) * 100.0);
                    stats.add(Metric::MemUsedPct.index(), used * 100.0);
                    stats.add(Metric::MemUsedBytes.index(), used * memory as f64);
                    if full {
                        add_other_metrics(&mut stats, &mut rng);
                    }
                }
                insert.execute(params![minute_ms as i64, host_id, stats.encode()])?;
                written += 1;
            }
        }
        written
    };
    // Every minute is rolled up: the report reads group_minutes and group_port_minutes only, as it would on a
    // long-running collector.
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_raw_cutoff_ms', ?1)",
        [end_ms as i64],
    )?;
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    drop(conn);
    let rows = GROUPS as u64 * ZONES.len() as u64 * (end_ms - start_ms) / MINUTE_MS;
    let size_bytes = std::fs::metadata(&path)?.len();
    println!(
        "wrote {} with {hosts} hosts, {rows} group_minutes rows, {} hourly and {} minute rollups over \
         {days} days: {:.1} MiB in {:.1} s",
        path.display(),
        hourly_rollups,
        minute_rollups,
        size_bytes as f64 / (1u64 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
