//! Benchmark of the web view (issue 14): the fleet page for 10,000 hosts (50 groups × 3 zones, an hour of
//! per-row history, 20 outliers flagged) and the host page of one host with an hour of samples at 1 Hz and 30
//! days of hourly rollups. Each page is built from its model (`views::web::model`) and rendered to HTML
//! (`views::web::html`) the way the routes do, `RUNS` times; prints the median, min and max time and the
//! page size. Run: `bench/web_bench.sh` (a release build).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use headroom_collector::analytics::{AlarmReport, OutlierReport, OutlierRow};
use headroom_collector::live::fleet::{HostMetrics, HostStatus, HostView};
use headroom_collector::live::summary::summarize;
use headroom_collector::metrics::{metrics_in, Key, Place, Stat, Values};
use headroom_collector::store::history::{HourPoint, RecentPoint};
use headroom_collector::views::web::history::FleetHistory;
use headroom_collector::views::web::{html, model};
use headroom_common::wire::Listener;

const HOSTS: usize = 10_000;
const GROUPS: usize = 50;
const ZONES: [&str; 3] = ["eu-1a", "eu-1b", "eu-1c"];
const RUNS: usize = 21;
const NOW_MS: u64 = 1_764_000_000_000;

/// A deterministic spread of values in 0..1 from an index.
fn spread(i: usize, salt: u64) -> f64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x % 10_000) as f64 / 10_000.0
}

fn host(i: usize) -> HostView {
    let group = format!("svc-{:02}", i % GROUPS);
    let zone = ZONES[(i / GROUPS) % ZONES.len()].to_string();
    let labels: BTreeMap<String, String> = [("group", group.clone()), ("zone", zone.clone())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let metrics = HostMetrics {
        cpu_busy_pct: Some(10.0 + 60.0 * spread(i, 1)),
        mem_used_pct: Some(30.0 + 50.0 * spread(i, 2)),
        mem_used_bytes: Some((16u64 << 30) / 2),
        tcp_established: Some((2_000.0 * spread(i, 3)) as u64),
        load1: Some(4.0 * spread(i, 4)),
        listeners: vec![
            Listener {
                port: 443,
                established: (1_500.0 * spread(i, 5)) as u32,
                accept_queue: 0,
                accept_queue_limit: 4096,
            },
            Listener {
                port: 9100,
                established: 1,
                accept_queue: 0,
                accept_queue_limit: 128,
            },
        ],
        ..HostMetrics::default()
    };
    HostView {
        host: format!("{group}-{zone}-{i:05}"),
        status: if i % 997 == 0 {
            HostStatus::Down
        } else {
            HostStatus::Up
        },
        connected: i % 997 != 0,
        disconnected_ms: None,
        group,
        zone,
        labels,
        cores: 16,
        memory_bytes: 64 << 30,
        interval_ms: 1000,
        agent_version: "0.1.0".into(),
        last_seen_ms: NOW_MS - 500,
        last_sample_ms: Some(NOW_MS - 500),
        seq: Some(3_600),
        clock_offset_ms: Some(2),
        clock_skewed: false,
        metrics,
    }
}

fn outliers(hosts: &[HostView]) -> OutlierReport {
    OutlierReport {
        outliers: hosts
            .iter()
            .step_by(HOSTS / 20)
            .map(|h| OutlierRow {
                host: h.host.clone(),
                group: h.group.clone(),
                metric: "cpu_busy_pct".into(),
                value: 92.0,
                group_median: 31.0,
                mad: 4.1,
                spread: 4.1,
                score: 14.9,
                outlying_windows: 7,
                window_count: 10,
                since_ms: NOW_MS - 600_000,
                explanation: format!("{} cpu_busy_pct 92.0% vs group median 31.0%", h.host),
            })
            .collect(),
        ..OutlierReport::default()
    }
}

/// Median, min and max of `runs` timings of `work`, and the size of what it returned.
fn measure(runs: usize, mut work: impl FnMut() -> String) -> (Duration, Duration, Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let page = work();
        times.push(started.elapsed());
        bytes = page.len();
    }
    times.sort();
    (times[runs / 2], times[0], times[runs - 1], bytes)
}

fn report(name: &str, (median, min, max, bytes): (Duration, Duration, Duration, usize), limit_ms: f64) {
    println!(
        "{name}: median {:.1} ms (min {:.1}, max {:.1}) over {RUNS} runs, {} bytes ({:.0} KB); target <= {limit_ms} ms",
        median.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        bytes,
        bytes as f64 / 1000.0
    );
}

fn main() {
    let hosts: Vec<HostView> = (0..HOSTS).map(host).collect();
    let outlier_report = outliers(&hosts);
    let alarms = AlarmReport::default();
    // An hour of per-row history at one point a minute, as the background refresh keeps it.
    let mut history = FleetHistory::new(60_000, 3_600_000);
    let summary = summarize(&hosts, NOW_MS);
    for minute in (0..60u64).rev() {
        history.record(&summary, NOW_MS - minute * 60_000);
    }

    let fleet = measure(RUNS, || {
        let page = model::fleet_page(
            &hosts,
            model::FleetInputs {
                outliers: &outlier_report,
                alarms: &alarms,
                history: &history,
                sizing: None,
                sizing_window: "14d".into(),
                notice: None,
            },
            NOW_MS,
        );
        html::fleet(&page)
    });
    report(
        &format!("fleet page, {HOSTS} hosts in {} rows", summary.groups.len()),
        fleet,
        200.0,
    );

    // One host: 3,600 samples of the last hour and 720 hourly rollups of the last 30 days.
    // Every metric the host page charts, each with its own wave.
    let last_hour: Vec<RecentPoint> = (0..3_600u64)
        .map(|s| RecentPoint {
            ts_ms: NOW_MS - (3_600 - s) * 1000,
            values: Values(
                metrics_in(Place::HostLastHour)
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| (Key::of(m), Some(20.0 + 30.0 * spread(s as usize, 7 + i as u64))))
                    .collect(),
            ),
        })
        .collect();
    let last_30_days: Vec<HourPoint> = (0..720u64)
        .map(|h| HourPoint {
            bucket_ms: NOW_MS - (720 - h) * 3_600_000,
            values: Values(
                metrics_in(Place::HostDays)
                    .into_iter()
                    .flat_map(|m| {
                        [
                            (
                                Key::stat(m, Stat::Mean),
                                Some(30.0 + 10.0 * spread(h as usize, 9)),
                            ),
                            (Key::stat(m, Stat::Max), Some(70.0)),
                        ]
                    })
                    .collect(),
            ),
        })
        .collect();
    let one = hosts[1].clone();
    let host_page = measure(RUNS, || {
        let page = model::host_page(
            one.clone(),
            model::HostInputs {
                outliers: &outlier_report,
                alarms: &alarms,
                last_hour: last_hour.clone(),
                last_30_days: last_30_days.clone(),
                gaps: Vec::new(),
                certificates: Vec::new(),
            },
            NOW_MS,
        );
        html::host(&page)
    });
    report("host page, 3,600 samples + 720 hourly rollups", host_page, 50.0);
}
