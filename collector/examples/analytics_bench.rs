//! Times the analytics core on a generated fleet: one outlier pass over 10,000 hosts × 10 metrics, and one
//! alarm evaluation of 20 rules over 10,000 hosts with 5 minutes of samples each; then the same evaluation
//! through the runtime (`Analytics::evaluate`) while another thread feeds samples in, timing how long each
//! `observe` call waits. Prints medians (and the waits' tail).
//!
//! Run: `cargo run --release -p headroom-collector --example analytics_bench`

use headroom_collector::analytics::alarms::{self, AlarmEngine, EvalInputs, HostHistory, HostInput};
use headroom_collector::analytics::outliers::{
    score_window, HostWindow, Metric, MetricValues, OutlierSettings, OutlierTracker,
};
use headroom_collector::analytics::{Analytics, AnalyticsSettings};
use headroom_collector::live::fleet::HostMetrics;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const HOSTS: usize = 10_000;
const GROUPS: usize = 100;
const RUNS: usize = 9;
/// Samples kept per host for alarm windows: 5 minutes at one every 5 s.
const HISTORY_SAMPLES: usize = 60;
const SAMPLE_EVERY_MS: u64 = 5_000;
const T0_MS: u64 = 1_700_000_000_000;

fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Ten metrics with plausible means and spreads, plus noise.
fn reading(rng: &mut fastrand::Rng) -> MetricValues {
    const SHAPE: [(Metric, f64, f64); 10] = [
        (Metric::CpuBusyPct, 35.0, 8.0),
        (Metric::MemUsedPct, 60.0, 5.0),
        (Metric::Load1, 2.0, 0.5),
        (Metric::PsiCpu, 2.0, 1.0),
        (Metric::NetRxBytesPerS, 5e6, 1e6),
        (Metric::NetTxBytesPerS, 3e6, 6e5),
        (Metric::TcpEstablished, 400.0, 60.0),
        (Metric::TcpTimeWait, 150.0, 30.0),
        (Metric::RetransPerS, 5.0, 2.0),
        (Metric::ListenOverflowsPerS, 0.1, 0.1),
    ];
    let mut values = MetricValues::default();
    for (metric, mean, sd) in SHAPE {
        values.set(metric, Some((mean + sd * normal(rng)).max(0.0)));
    }
    values
}

/// The same reading as the runtime receives it.
fn host_metrics(values: &MetricValues) -> HostMetrics {
    let get = |metric| values.get(metric);
    HostMetrics {
        cpu_busy_pct: get(Metric::CpuBusyPct),
        mem_used_pct: get(Metric::MemUsedPct),
        load1: get(Metric::Load1),
        psi_cpu: get(Metric::PsiCpu),
        net_rx_bytes_per_s: get(Metric::NetRxBytesPerS),
        net_tx_bytes_per_s: get(Metric::NetTxBytesPerS),
        tcp_established: get(Metric::TcpEstablished).map(|v| v as u64),
        tcp_time_wait: get(Metric::TcpTimeWait).map(|v| v as u64),
        retrans_per_s: get(Metric::RetransPerS),
        listen_overflows_per_s: get(Metric::ListenOverflowsPerS),
        ..HostMetrics::default()
    }
}

fn quantile_us(mut waits_us: Vec<f64>, quantile: f64) -> f64 {
    headroom_common::percentile::nearest_rank(&mut waits_us, quantile).unwrap_or(0.0)
}

fn median_ms(times: Vec<f64>) -> f64 {
    quantile_us(times, 0.5)
}

const RULES: &str = r#"
[[rule]]
name = "cpu-hot"
kind = "threshold"
severity = "warning"
for = "5m"
runbook = "r"
metric = "cpu_busy_pct"
op = ">"
value = 90
[[rule]]
name = "mem-full"
kind = "threshold"
severity = "critical"
for = "2m"
runbook = "r"
metric = "mem_used_pct"
op = ">"
value = 95
[[rule]]
name = "load-high"
kind = "threshold"
severity = "info"
for = "5m"
runbook = "r"
metric = "load1"
op = ">"
value = 16
[[rule]]
name = "psi-cpu"
kind = "threshold"
severity = "warning"
for = "5m"
runbook = "r"
metric = "psi_cpu"
op = ">"
value = 20
[[rule]]
name = "overflows"
kind = "threshold"
severity = "warning"
for = "1m"
runbook = "r"
metric = "listen_overflows_per_s"
op = ">"
value = 1
[[rule]]
name = "time-wait"
kind = "threshold"
severity = "info"
for = "5m"
runbook = "r"
metric = "tcp_time_wait"
op = ">"
value = 20000
[[rule]]
name = "retrans-p999"
kind = "percentile"
severity = "warning"
for = "2m"
runbook = "r"
metric = "retrans_per_s"
quantile = 99.9
over = "5m"
op = ">"
value = 50
[[rule]]
name = "cpu-p99"
kind = "percentile"
severity = "warning"
for = "2m"
runbook = "r"
metric = "cpu_busy_pct"
quantile = 99.0
over = "5m"
op = ">"
value = 97
[[rule]]
name = "rx-p99"
kind = "percentile"
severity = "info"
for = "2m"
runbook = "r"
metric = "net_rx_bytes_per_s"
quantile = 99.0
over = "5m"
op = ">"
value = 1e9
[[rule]]
name = "estab-p90"
kind = "percentile"
severity = "info"
for = "2m"
runbook = "r"
metric = "tcp_established"
quantile = 90.0
over = "5m"
op = ">"
value = 5000
[[rule]]
name = "group-cpu-p99"
kind = "percentile"
severity = "warning"
for = "5m"
runbook = "r"
metric = "cpu_busy_pct"
quantile = 99.0
over = "5m"
across = "group"
op = ">"
value = 90
[[rule]]
name = "group-mem-p50"
kind = "percentile"
severity = "info"
for = "5m"
runbook = "r"
metric = "mem_used_pct"
quantile = 50.0
over = "5m"
across = "group"
op = ">"
value = 85
[[rule]]
name = "mem-climb"
kind = "rate_of_change"
severity = "warning"
for = "5m"
runbook = "r"
metric = "mem_used_pct"
over = "5m"
op = ">"
value = 2
[[rule]]
name = "estab-climb"
kind = "rate_of_change"
severity = "info"
for = "5m"
runbook = "r"
metric = "tcp_established"
over = "5m"
op = ">"
value = 500
[[rule]]
name = "tw-climb"
kind = "rate_of_change"
severity = "info"
for = "5m"
runbook = "r"
metric = "tcp_time_wait"
over = "5m"
op = ">"
value = 1000
[[rule]]
name = "cpu-odd"
kind = "outlier"
severity = "info"
for = "0s"
runbook = "r"
metric = "cpu_busy_pct"
[[rule]]
name = "any-odd"
kind = "outlier"
severity = "info"
for = "0s"
runbook = "r"
[[rule]]
name = "silent"
kind = "missing"
severity = "critical"
for = "0s"
runbook = "r"
grace = "30s"
[[rule]]
name = "hot-and-odd"
kind = "composite"
severity = "critical"
for = "1m"
runbook = "r"
all = ["cpu-hot", "cpu-odd"]
[[rule]]
name = "anything-bad"
kind = "composite"
severity = "warning"
for = "1m"
runbook = "r"
any = ["mem-full", "overflows", "retrans-p999"]
"#;

fn main() {
    let mut rng = fastrand::Rng::with_seed(42);
    let names: Vec<String> = (0..HOSTS).map(|i| format!("host-{i:05}")).collect();
    let group_of = |i: usize| format!("group-{:03}", i % GROUPS);

    // Outliers: one window per run, scored alone and through the tracker.
    let settings = OutlierSettings::default();
    let mut tracker = OutlierTracker::new(settings.clone());
    let (mut score_times, mut observe_times) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let window: Vec<HostWindow> = (0..HOSTS)
            .map(|i| HostWindow {
                host: names[i].clone(),
                group: group_of(i),
                values: reading(&mut rng),
            })
            .collect();
        let started = Instant::now();
        let scores = score_window(&window, &settings);
        score_times.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(scores);
        let started = Instant::now();
        let report = tracker.observe(&window, T0_MS + run as u64 * 60_000);
        observe_times.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(report);
    }

    // Alarms: 20 rules over 10,000 hosts with 60 readings each.
    let rules = alarms::parse(RULES, "bench rules").expect("bench rules are valid");
    assert_eq!(rules.rules.len(), 20);
    let mut engine = AlarmEngine::new(rules);
    let mut hosts: Vec<HostInput> = (0..HOSTS)
        .map(|i| HostInput {
            host: names[i].clone(),
            labels: BTreeMap::from([("group".to_string(), group_of(i))]).into(),
            interval_ms: 1_000,
            last_seen_ms: T0_MS,
            clock_offset_ms: None,
            cores: 8,
            memory_bytes: 32 << 30,
            history: HostHistory::new(HISTORY_SAMPLES),
            ports: Default::default(),
        })
        .collect();
    let mut now_ms = T0_MS;
    for _ in 0..HISTORY_SAMPLES {
        now_ms += SAMPLE_EVERY_MS;
        for host in &mut hosts {
            host.history.push(now_ms, reading(&mut rng));
            host.last_seen_ms = now_ms;
        }
    }
    let mut eval_times = Vec::new();
    let mut events = 0;
    for _ in 0..RUNS {
        now_ms += SAMPLE_EVERY_MS;
        for host in &mut hosts {
            host.history.push(now_ms, reading(&mut rng));
            host.last_seen_ms = now_ms;
        }
        let started = Instant::now();
        let out = engine.evaluate(
            EvalInputs {
                hosts: &hosts,
                outliers: Some(&tracker),
            },
            now_ms,
        );
        eval_times.push(started.elapsed().as_secs_f64() * 1e3);
        events += out.len();
    }

    // The runtime: the same fleet fed through `observe`, evaluated while a second thread keeps observing.
    let settings = AnalyticsSettings {
        rules: Some(alarms::parse(RULES, "bench rules").expect("bench rules are valid")),
        rules_file: None,
        alertmanager: None,
        alarm_ca_pem: None,
        webhook: None,
        alarm_interval_ms: 1_000,
        outliers: OutlierSettings::default(),
        database: None,
        api_url: "http://127.0.0.1:9601".to_string(),
        sizing: headroom_collector::sizing::SizingConfig::default(),
    };
    let analytics = Analytics::new(settings.clone());
    let mut engine = AlarmEngine::new(settings.rules.clone().expect("rules set above"));
    let labels: Vec<BTreeMap<String, String>> = (0..HOSTS)
        .map(|i| BTreeMap::from([("group".to_string(), group_of(i))]))
        .collect();
    let mut now_ms = T0_MS;
    for _ in 0..HISTORY_SAMPLES {
        now_ms += SAMPLE_EVERY_MS;
        for i in 0..HOSTS {
            let metrics = host_metrics(&reading(&mut rng));
            analytics.observe(&names[i], &labels[i], &metrics, now_ms, now_ms);
        }
    }
    let mut quiet_runtime_times = Vec::new();
    for _ in 0..RUNS {
        now_ms += SAMPLE_EVERY_MS;
        for i in 0..HOSTS {
            let metrics = host_metrics(&reading(&mut rng));
            analytics.observe(&names[i], &labels[i], &metrics, now_ms, now_ms);
        }
        let started = Instant::now();
        let out = analytics.evaluate(&mut engine, &tracker, now_ms);
        quiet_runtime_times.push(started.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    let (mut runtime_times, mut waits_us, mut waits_during_us) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        now_ms += SAMPLE_EVERY_MS;
        for i in 0..HOSTS {
            let metrics = host_metrics(&reading(&mut rng));
            analytics.observe(&names[i], &labels[i], &metrics, now_ms, now_ms);
        }
        let evaluating = Arc::new(AtomicBool::new(true));
        let feeder = {
            let (analytics, evaluating, names, labels) = (
                Arc::clone(&analytics),
                Arc::clone(&evaluating),
                names.clone(),
                labels.clone(),
            );
            let metrics = host_metrics(&reading(&mut rng));
            std::thread::spawn(move || {
                let mut waits_us = Vec::new();
                let mut i = 0;
                while evaluating.load(Ordering::Relaxed) {
                    // A replayed sample: it takes the locks like a live one but leaves the history alone.
                    let started = Instant::now();
                    analytics.observe(&names[i % HOSTS], &labels[i % HOSTS], &metrics, T0_MS, now_ms);
                    waits_us.push(started.elapsed().as_secs_f64() * 1e6);
                    i += 7;
                }
                waits_us
            })
        };
        let started = Instant::now();
        let out = analytics.evaluate(&mut engine, &tracker, now_ms);
        runtime_times.push(started.elapsed().as_secs_f64() * 1e3);
        evaluating.store(false, Ordering::Relaxed);
        std::hint::black_box(out);
        let waits = feeder.join().expect("feeder thread");
        waits_during_us.push(waits.len());
        waits_us.extend(waits);
    }
    let observes_per_run = median_ms(waits_during_us.iter().map(|&n| n as f64).collect());

    println!("analytics_bench: {HOSTS} hosts in {GROUPS} groups, medians of {RUNS} runs");
    println!(
        "outlier score pass, 10 metrics:           {:8.2} ms (target <= 20 ms)",
        median_ms(score_times)
    );
    println!(
        "outlier pass with k-of-n tracking:        {:8.2} ms (target <= 20 ms)",
        median_ms(observe_times)
    );
    println!(
        "alarm evaluation, 20 rules, {HISTORY_SAMPLES} samples/host: {:8.2} ms (target <= 50 ms); {events} transitions",
        median_ms(eval_times)
    );
    println!(
        "runtime evaluation (Analytics::evaluate):  {:8.2} ms alone; {:.2} ms with {observes_per_run:.0} observe calls during it",
        median_ms(quiet_runtime_times),
        median_ms(runtime_times)
    );
    println!(
        "observe wait during evaluation: median {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.0} us",
        quantile_us(waits_us.clone(), 0.5),
        quantile_us(waits_us.clone(), 0.99),
        quantile_us(waits_us.clone(), 0.999),
        quantile_us(waits_us, 1.0)
    );
}
