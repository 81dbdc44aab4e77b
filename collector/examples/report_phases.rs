//! Where the time of `headroom-collector report` goes, phase by phase, on a database file (made by
//! `report_db_bench`): opening it, the hosts with each host's memory at the peak statistic, the per-minute
//! group sums, the whole `load_input`, the model alone and with four what-if scenarios, and the HTML
//! render. Each phase is run RUNS times and its median printed.
//! Usage: `report_phases DB [DAYS] [RUNS]` (`bench/report_bench.sh` runs it).

use std::time::{Duration, Instant};

use headroom_collector::sizing::{render, size_with_scenarios, ReportFormat, Scenario, SizingConfig};
use headroom_collector::store::{FileReads, Metric};
use headroom_collector::views::end::EndAt;
use headroom_collector::views::report_cli::{load_input, open_database, Window};

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let db = std::path::PathBuf::from(args.next().expect("usage: report_phases DB [DAYS] [RUNS]"));
    let days: u64 = args.next().map_or(30, |d| d.parse().expect("DAYS is a number"));
    let runs: usize = args.next().map_or(3, |r| r.parse().expect("RUNS is a number"));
    let mut config = SizingConfig::default();
    config.defaults.max_connections.insert(443, 10_000);
    let scenarios: Vec<Scenario> = [
        "growth=20%",
        "lose-hosts=2",
        "add=group=svc-00,hosts=3",
        "growth=30%,lose=zone=zone-a",
    ]
    .iter()
    .map(|text| Scenario::parse_combined(text).expect("a scenario"))
    .collect();
    let hidden = indicatif::ProgressBar::hidden();

    let mut phases: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut record = |name: &'static str, took: Duration| match phases.iter_mut().find(|(n, _)| *n == name) {
        Some((_, times)) => times.push(took),
        None => phases.push((name, vec![took])),
    };
    let mut output_bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let opened = open_database(&db, 0, EndAt::Latest, FileReads::Mapped).expect("the database opens");
        record("open the database, find the newest sample", started.elapsed());
        let window = Window::ending_at(opened.end_ms, Duration::from_secs(days * 86_400));

        let started = Instant::now();
        let memory = opened
            .store
            .hosts_metric_stats(Metric::MemUsedBytes, window.start_ms, window.end_ms)
            .expect("every host's memory");
        for host in opened.store.hosts().expect("hosts") {
            let _ = memory.get(&host.name).and_then(|stats| stats.quantile(0.999));
        }
        record("hosts, each host's memory at p99.9", started.elapsed());

        let started = Instant::now();
        let loaded = load_input(&opened.store, window, config.percentile, &hidden).expect("the input loads");
        record(
            "load_input (hosts + minute sums + raw tail + gaps)",
            started.elapsed(),
        );

        let started = Instant::now();
        let report = size_with_scenarios(&loaded.input, &config, &[]);
        record("model, baseline", started.elapsed());

        let started = Instant::now();
        let with_scenarios = size_with_scenarios(&loaded.input, &config, &scenarios);
        record("model, baseline + 4 scenarios", started.elapsed());

        let started = Instant::now();
        output_bytes =
            render(&report, ReportFormat::Html).len() + render(&with_scenarios, ReportFormat::Html).len();
        record("render html, baseline and with scenarios", started.elapsed());
    }
    println!(
        "report phases, median of {runs} runs ({} bytes of html):",
        output_bytes
    );
    for (name, times) in phases {
        println!("  {name}: {:.0} ms", median_ms(times));
    }
}
