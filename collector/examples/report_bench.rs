//! Times the sizing model and the HTML render on a synthetic fleet: 1,000 hosts in 20 groups of 50 across
//! three zones, 30 days of per-minute group sums with a daily cycle and a slow rise. The database part is
//! timed separately. Run with `cargo run --release -p headroom-collector --example report_bench`.

use std::time::Instant;

use headroom_collector::sizing::{
    render, size_fleet, GroupInput, HostInput, MinuteSum, ReportFormat, SizingConfig, SizingInput, DAY_MS,
    MINUTE_MS,
};

const GROUPS: usize = 20;
const HOSTS_PER_GROUP: usize = 50;
const DAYS: u64 = 30;

fn synthetic_input() -> SizingInput {
    let window_start_ms = 19_700 * DAY_MS;
    let window_end_ms = window_start_ms + DAYS * DAY_MS;
    let minutes = DAYS * DAY_MS / MINUTE_MS;
    let groups = (0..GROUPS)
        .map(|g| {
            let hosts: Vec<HostInput> = (0..HOSTS_PER_GROUP)
                .map(|h| HostInput {
                    name: format!("g{g:02}-h{h:03}"),
                    zone: Some(["a", "b", "c"][h % 3].to_string()),
                    cores: if h % 5 == 0 { 32.0 } else { 16.0 },
                    memory_bytes: 64.0 * (1u64 << 30) as f64,
                    first_seen_ms: window_start_ms,
                    last_seen_ms: window_end_ms - MINUTE_MS,
                    memory_used_peak_bytes: None,
                })
                .collect();
            let capacity_cores: f64 = hosts.iter().map(|host| host.cores).sum();
            let level = 0.2 + 0.02 * g as f64;
            let sums = (0..minutes)
                .map(|minute| {
                    let day_phase = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
                    let rise = minute as f64 / minutes as f64 * 0.1;
                    let utilisation = level + rise + 0.1 * day_phase.sin();
                    MinuteSum {
                        minute_start_ms: window_start_ms + minute * MINUTE_MS,
                        cpu_busy_cores: capacity_cores * utilisation,
                        memory_used_bytes: hosts.len() as f64 * 30.0 * (1u64 << 30) as f64,
                        established_by_port: vec![(443, 20_000.0 * utilisation)],
                        hosts_reporting: HOSTS_PER_GROUP as u32,
                    }
                })
                .collect();
            GroupInput {
                name: format!("group-{g:02}"),
                hosts,
                minutes: sums,
            }
        })
        .collect();
    SizingInput {
        window_start_ms,
        window_end_ms,
        groups,
    }
}

fn main() {
    let built = Instant::now();
    let input = synthetic_input();
    let build_ms = built.elapsed().as_millis();
    let mut config = SizingConfig::default();
    config.defaults.max_connections.insert(443, 1_000);

    let modelled = Instant::now();
    let report = size_fleet(&input, &config);
    let model_ms = modelled.elapsed().as_secs_f64() * 1000.0;
    let rendered = Instant::now();
    let html = render(&report, ReportFormat::Html);
    let html_ms = rendered.elapsed().as_secs_f64() * 1000.0;

    let minute_rows: usize = input.groups.iter().map(|group| group.minutes.len()).sum();
    println!(
        "input: {} hosts in {} groups, {} days, {} group-minute rows (built in {} ms)",
        GROUPS * HOSTS_PER_GROUP,
        GROUPS,
        DAYS,
        minute_rows,
        build_ms
    );
    println!("model: {model_ms:.1} ms");
    println!("html render: {html_ms:.1} ms, {} bytes", html.len());
}
