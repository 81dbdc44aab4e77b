//! Tests of peer-outlier scoring and flagging, including seeded generated fleets.
use super::*;

const T0_MS: u64 = 1_700_000_000_000;

fn normal(rng: &mut fastrand::Rng) -> f64 {
    // Box–Muller; 1 − f64() keeps the logarithm finite.
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Mean and standard deviation of a healthy host's metric.
fn healthy(metric: Metric) -> (f64, f64) {
    match metric {
        Metric::CpuBusyPct => (30.0, 4.0),
        Metric::MemUsedPct => (60.0, 3.0),
        Metric::Load1 => (2.0, 0.3),
        Metric::PsiCpu => (2.0, 0.5),
        Metric::PsiMemory => (1.0, 0.3),
        Metric::NetRxBytesPerS => (5e6, 4e5),
        Metric::NetTxBytesPerS => (3e6, 3e5),
        Metric::TcpEstablished => (400.0, 30.0),
        Metric::TcpTimeWait => (150.0, 20.0),
        Metric::RetransPerS => (5.0, 1.0),
        Metric::ListenOverflowsPerS => (0.0, 0.0),
        Metric::ConntrackFillPct => (20.0, 2.0),
        Metric::CpuBusiestCorePct => (45.0, 5.0),
        // Not scored for outliers; present so the window carries every metric.
        _ => (10.0, 1.0),
    }
}

fn healthy_fleet(rng: &mut fastrand::Rng, hosts: usize) -> Vec<HostWindow> {
    (0..hosts)
        .map(|i| {
            let mut values = MetricValues::default();
            for metric in Metric::ALL {
                let (mean, sd) = healthy(metric);
                values.set(metric, Some((mean + sd * normal(rng)).max(0.0)));
            }
            HostWindow {
                host: format!("web-{i:03}"),
                group: "web".into(),
                values,
            }
        })
        .collect()
}

fn window(values: &[f64]) -> Vec<HostWindow> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mut m = MetricValues::default();
            m.set(Metric::CpuBusyPct, Some(v));
            HostWindow {
                host: format!("h{i}"),
                group: "g".into(),
                values: m,
            }
        })
        .collect()
}

#[test]
fn median_and_mad_of_known_values() {
    let stats = group_stats(Metric::Load1, &[1.0, 2.0, 3.0, 4.0, 100.0], 0.0, &mut Vec::new());
    assert_eq!(stats.median, 3.0);
    // Deviations 2, 1, 0, 1, 97: median 1.
    assert_eq!(stats.mad, 1.0);
    assert!((stats.spread - MAD_TO_SIGMA).abs() < 1e-12);
    let even = group_stats(Metric::Load1, &[4.0, 1.0, 3.0, 2.0], 0.0, &mut Vec::new());
    assert_eq!(even.median, 2.5);
}

#[test]
fn a_flat_group_neither_divides_by_zero_nor_flags_a_hair() {
    // Nine hosts at exactly 31 %, one at 31.5 %: MAD is 0.
    let mut values = vec![31.0; 9];
    values.push(31.5);
    let scores = score_window(&window(&values), &OutlierSettings::default());
    let hair = scores.scores[9][Metric::CpuBusyPct.index()].unwrap();
    assert_eq!(hair.stats.mad, 0.0);
    assert!(hair.score.is_finite() && hair.score < 1.0, "{hair:?}");
    // The relative floor (5 % of 31 = 1.55) is the spread, so 31 + 5 × 1.55 and beyond is outlying.
    assert!((hair.stats.spread - 1.55).abs() < 1e-9);
    values[9] = 40.0;
    let scores = score_window(&window(&values), &OutlierSettings::default());
    assert!(scores.scores[9][Metric::CpuBusyPct.index()].unwrap().score >= 5.0);
    // An all-zero metric uses the absolute floor: 0.4 overflows/s is nothing, 8/s is something.
    let mut zeros = vec![0.0; 9];
    zeros.push(0.4);
    let windows: Vec<HostWindow> = window(&zeros)
        .into_iter()
        .map(|mut h| {
            let v = h.values.get(Metric::CpuBusyPct);
            h.values.set(Metric::CpuBusyPct, None);
            h.values.set(Metric::ListenOverflowsPerS, v);
            h
        })
        .collect();
    let score = score_window(&windows, &OutlierSettings::default()).scores[9]
        [Metric::ListenOverflowsPerS.index()]
    .unwrap();
    assert!((score.score - 0.4).abs() < 1e-12, "{score:?}");
}

#[test]
fn small_groups_are_skipped_and_say_why() {
    let mut hosts = window(&[10.0, 11.0, 12.0, 90.0]);
    hosts.extend(window(&[10.0; 6]).into_iter().map(|mut h| {
        h.group = "big".into();
        h.host = format!("big-{}", h.host);
        h
    }));
    let scores = score_window(&hosts, &OutlierSettings::default());
    assert_eq!(scores.skipped.len(), 1);
    assert_eq!(scores.skipped[0].group, "g");
    assert_eq!(scores.skipped[0].metric, None);
    assert!(
        scores.skipped[0].reason.contains("4 hosts"),
        "{:?}",
        scores.skipped
    );
    assert!(scores.scores[3][Metric::CpuBusyPct.index()].is_none());
    assert!(scores.scores[4][Metric::CpuBusyPct.index()].is_some());
}

#[test]
fn flagging_needs_k_of_n_and_clearing_needs_a_clean_run() {
    let mut tracker = OutlierTracker::new(OutlierSettings::default());
    let hot = |v: f64| {
        let mut values = vec![30.0, 31.0, 29.0, 30.5, 29.5, 30.0];
        values.push(v);
        window(&values)
    };
    // Four outlying windows out of five: not yet.
    for (i, v) in [90.0, 90.0, 30.0, 90.0, 90.0].into_iter().enumerate() {
        let report = tracker.observe(&hot(v), T0_MS + i as u64 * 60_000);
        assert!(report.newly_flagged.is_empty());
    }
    let report = tracker.observe(&hot(90.0), T0_MS + 5 * 60_000);
    assert_eq!(report.newly_flagged.len(), 1);
    let outlier = &report.newly_flagged[0];
    assert_eq!(
        (outlier.host.as_str(), outlier.metric),
        ("h6", Metric::CpuBusyPct)
    );
    assert_eq!(outlier.outlying_windows, 5);
    assert_eq!(outlier.since_ms, T0_MS, "since the first outlying window");
    let text = outlier.to_string();
    assert!(
        text.starts_with("h6 cpu_busy_pct 90.0% vs group median 30.0% (MAD 0.5, floor 1.5) score 40.0"),
        "{text}"
    );
    assert!(
        text.contains("5 of last 10 min, since 2023-11-14T22:13:20Z"),
        "{text}"
    );
    // Four clean windows and one outlying: still flagged (the run restarts).
    for i in 6..10 {
        tracker.observe(&hot(30.0), T0_MS + i * 60_000);
    }
    tracker.observe(&hot(90.0), T0_MS + 10 * 60_000);
    assert!(tracker.is_flagged("h6", Metric::CpuBusyPct));
    for i in 11..15 {
        assert!(tracker.observe(&hot(30.0), T0_MS + i * 60_000).cleared.is_empty());
    }
    let report = tracker.observe(&hot(30.0), T0_MS + 15 * 60_000);
    assert_eq!(report.cleared, vec![("h6".to_string(), Metric::CpuBusyPct)]);
    assert!(tracker.outliers().is_empty());
}

#[test]
fn absent_hosts_are_forgotten() {
    let mut tracker = OutlierTracker::new(OutlierSettings::default());
    tracker.observe(&window(&[1.0; 6]), T0_MS);
    assert_eq!(tracker.hosts.len(), 6);
    for i in 1..=10 {
        tracker.observe(&window(&[1.0; 5]), T0_MS + i * 60_000);
    }
    assert_eq!(tracker.hosts.len(), 5);
}

/// Issue 12: the tracker keeps per host one track per scored metric and nothing for the metrics that are
/// never scored, so a host costs its name, its group and one small allocation of tracks.
#[test]
fn issue_12_a_host_carries_tracks_of_the_scored_metrics_only() {
    let mut tracker = OutlierTracker::new(OutlierSettings::default());
    tracker.observe(&window(&[1.0; 6]), T0_MS);
    let scored = Metric::outlier_metrics().count();
    assert!(scored < Metric::COUNT);
    for entry in tracker.hosts.values() {
        assert_eq!(entry.tracks.len(), scored);
    }
    let track_bytes = scored * std::mem::size_of::<Track>();
    assert!(track_bytes <= 1_024, "{track_bytes} bytes of tracks per host");
    assert!(std::mem::size_of::<HostTrack>() <= 48);
}

#[test]
fn generated_fleet_flags_a_step_a_ramp_and_a_flapping_host() {
    let mut rng = fastrand::Rng::with_seed(0x6865_6164);
    let settings = OutlierSettings::default();
    let mut tracker = OutlierTracker::new(settings.clone());
    let (step_host, ramp_host, flap_host) = ("web-017", "web-042", "web-073");
    let (step_at, ramp_from, flap_from) = (20_u64, 10_u64, 30_u64);
    let ramp_pct_per_window = 1.0;
    // The ramp crosses 5 standard deviations of memory (3 points) 15 windows after it starts.
    let ramp_crosses = ramp_from + (5.0 * healthy(Metric::MemUsedPct).1 / ramp_pct_per_window).ceil() as u64;
    let mut flagged_at: BTreeMap<&str, u64> = BTreeMap::new();
    for w in 0..60_u64 {
        let mut fleet = healthy_fleet(&mut rng, 100);
        for host in &mut fleet {
            let values = &mut host.values;
            let at = |m: Metric| values.get(m).unwrap();
            match host.host.as_str() {
                h if h == step_host && w >= step_at => {
                    values.set(Metric::CpuBusyPct, Some(at(Metric::CpuBusyPct) + 40.0))
                }
                h if h == ramp_host && w >= ramp_from => {
                    let rise = (w - ramp_from) as f64 * ramp_pct_per_window;
                    values.set(Metric::MemUsedPct, Some(at(Metric::MemUsedPct) + rise))
                }
                h if h == flap_host && w >= flap_from && w % 2 == 0 => {
                    values.set(Metric::RetransPerS, Some(at(Metric::RetransPerS) + 40.0))
                }
                _ => {}
            }
        }
        let report = tracker.observe(&fleet, T0_MS + w * 60_000);
        for outlier in report.newly_flagged {
            println!("window {w}: {outlier}");
            flagged_at
                .entry(if outlier.host == step_host {
                    step_host
                } else if outlier.host == ramp_host {
                    ramp_host
                } else if outlier.host == flap_host {
                    flap_host
                } else {
                    "other"
                })
                .or_insert(w);
        }
    }
    let latency = |host: &str, start: u64| flagged_at.get(host).map(|&w| w.saturating_sub(start));
    let detections = [
        ("step", latency(step_host, step_at)),
        ("ramp", latency(ramp_host, ramp_crosses)),
        ("flapping", latency(flap_host, flap_from)),
    ];
    let detected = detections
        .iter()
        .filter(|(_, l)| l.is_some_and(|l| l < 10))
        .count();
    println!(
        "detection: {detected} of 3 anomalies flagged within 10 windows; latency in windows: {detections:?}"
    );
    assert_eq!(detected, 3, "{detections:?}");
    assert!(
        !flagged_at.contains_key("other"),
        "a healthy host was flagged: {flagged_at:?}"
    );
    // The flapping host stays flagged while it flaps.
    assert!(tracker.is_flagged(flap_host, Metric::RetransPerS));
}

#[test]
fn generated_clean_fleet_has_under_one_percent_false_positives() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut tracker = OutlierTracker::new(OutlierSettings::default());
    let (windows, hosts) = (1_000_u64, 100_usize);
    let (mut flagged_host_windows, mut outlying_pairs, mut scored_pairs) = (0_usize, 0_usize, 0_usize);
    for w in 0..windows {
        let fleet = healthy_fleet(&mut rng, hosts);
        let report = tracker.observe(&fleet, T0_MS + w * 60_000);
        outlying_pairs += report.outlying;
        scored_pairs += report.scored;
        flagged_host_windows += fleet.iter().filter(|h| tracker.host_flagged(&h.host)).count();
    }
    let rate = flagged_host_windows as f64 / (windows as f64 * hosts as f64);
    println!(
        "false positives: {flagged_host_windows} flagged host-windows of {} ({:.4} %); \
         single-window outlying host-metrics {outlying_pairs} of {scored_pairs}",
        windows as usize * hosts,
        rate * 100.0
    );
    assert!(rate < 0.01, "false-positive rate {rate}");
}

#[test]
fn metric_names_round_trip_and_values_format_with_units() {
    for metric in Metric::ALL {
        assert_eq!(Metric::from_name(metric.name()), Some(metric));
        assert_eq!(Metric::ALL[metric.index()], metric);
    }
    assert_eq!(Metric::NetRxBytesPerS.format_value(1_234_567.0), "1.2 MB/s");
    assert_eq!(Metric::CpuBusyPct.format_value(92.04), "92.0%");
    let metrics = HostMetrics {
        tcp_established: Some(12),
        ..HostMetrics::default()
    };
    let values = MetricValues::from_metrics(&metrics);
    assert_eq!(values.get(Metric::TcpEstablished), Some(12.0));
    assert_eq!(values.get(Metric::CpuBusyPct), None);
    let mean = MetricValues::mean_of([&values, &MetricValues::default(), &{
        let mut v = MetricValues::default();
        v.set(Metric::TcpEstablished, Some(20.0));
        v
    }]);
    assert_eq!(mean.get(Metric::TcpEstablished), Some(16.0));
}

/// The kind of awkward group a seeded trial draws.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Awkward {
    /// 5 to 7 hosts around 50 % busy; the broken host runs 40 points hotter.
    Small,
    /// 6 primaries around 20 % and 6 replicas around 70 %; the broken host is a primary that dropped to 0.
    Bimodal,
    /// 10 hosts around 40 % that all move together by a shared shift of σ 15 points per window, plus their
    /// own σ 3; the broken host runs 30 points hotter than its peers.
    Correlated,
}

/// One window of one group: CPU busy % per host, and the index of the broken host when there is one.
fn awkward_group(rng: &mut fastrand::Rng, kind: Awkward, broken: bool) -> (Vec<HostWindow>, Option<usize>) {
    let (values, broken_value): (Vec<f64>, Box<dyn Fn(f64) -> f64>) = match kind {
        Awkward::Small => {
            let n = 5 + rng.usize(0..3);
            (
                (0..n).map(|_| 50.0 + 3.0 * normal(rng)).collect(),
                Box::new(|v| v + 40.0),
            )
        }
        Awkward::Bimodal => (
            (0..12)
                .map(|i| {
                    if i < 6 {
                        20.0 + 2.0 * normal(rng)
                    } else {
                        70.0 + 3.0 * normal(rng)
                    }
                })
                .collect(),
            Box::new(|_| 0.0),
        ),
        Awkward::Correlated => {
            let shared = 15.0 * normal(rng);
            (
                (0..10).map(|_| 40.0 + shared + 3.0 * normal(rng)).collect(),
                Box::new(|v| v + 30.0),
            )
        }
    };
    let broken_index = broken.then(|| rng.usize(0..if kind == Awkward::Bimodal { 6 } else { values.len() }));
    let windows = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let value = if Some(i) == broken_index {
                broken_value(v)
            } else {
                v
            };
            let mut values = MetricValues::default();
            values.set(Metric::CpuBusyPct, Some(value.clamp(0.0, 100.0)));
            HostWindow {
                host: format!("h{i}"),
                group: "g".into(),
                values,
            }
        })
        .collect();
    (windows, broken_index)
}

#[test]
fn issue_10_small_bimodal_and_correlated_groups_detection_and_false_positive_rates() {
    let settings = OutlierSettings::default();
    let mut rng = fastrand::Rng::with_seed(10);
    for kind in [Awkward::Small, Awkward::Bimodal, Awkward::Correlated] {
        let trials = 2_000;
        let (mut detected, mut broken_trials, mut false_positives, mut healthy_hosts) = (0, 0, 0, 0);
        for trial in 0..trials {
            let (group, broken) = awkward_group(&mut rng, kind, trial % 2 == 0);
            let scores = score_window(&group, &settings);
            assert!(scores.skipped.is_empty(), "{kind:?}: {:?}", scores.skipped);
            for (i, row) in scores.scores.iter().enumerate() {
                let outlying =
                    row[Metric::CpuBusyPct.index()].is_some_and(|s| s.score >= settings.threshold_score);
                if Some(i) == broken {
                    broken_trials += 1;
                    detected += usize::from(outlying);
                } else {
                    healthy_hosts += 1;
                    false_positives += usize::from(outlying);
                }
            }
        }
        let detection = detected as f64 / broken_trials as f64;
        let false_positive = false_positives as f64 / healthy_hosts as f64;
        println!(
            "{kind:?}: detection {:.1} % ({detected} of {broken_trials}), false positives {:.2} % \
             ({false_positives} of {healthy_hosts} healthy host-windows)",
            detection * 100.0,
            false_positive * 100.0
        );
        // Each cluster of the bimodal group is itself a 6-host group, whose MAD is a noisy estimate: a
        // 20-point drop (10 σ) scores under 5 in about one window in thirteen. A flag needs k of n windows,
        // so a broken host is still flagged within a few minutes.
        let least = if kind == Awkward::Bimodal { 0.90 } else { 0.95 };
        assert!(detection >= least, "{kind:?}: detection {detection}");
        assert!(
            false_positive <= 0.01,
            "{kind:?}: false positives {false_positive}"
        );
    }
}

#[test]
fn issue_10_a_bimodal_group_is_scored_within_clusters_or_refused_with_a_reason() {
    let group = |values: &[f64]| -> Vec<HostWindow> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mut values = MetricValues::default();
                values.set(Metric::CpuBusyPct, Some(v));
                HostWindow {
                    host: format!("h{i}"),
                    group: "db".into(),
                    values,
                }
            })
            .collect()
    };
    // 5 primaries at 80 %, 5 replicas at 20 %: without clusters the group median is 50 % and every host
    // would score 30/2.5 = 12; within clusters every host scores 0.
    let scores = score_window(
        &group(&[80.0, 80.0, 80.0, 80.0, 80.0, 20.0, 20.0, 20.0, 20.0, 20.0]),
        &OutlierSettings::default(),
    );
    assert!(scores
        .scores
        .iter()
        .all(|row| row[Metric::CpuBusyPct.index()].unwrap().score == 0.0));
    // 2 primaries and 4 replicas: clusters too small to score within; refused with the reason.
    let scores = score_window(
        &group(&[80.0, 80.0, 20.0, 20.0, 21.0, 19.0]),
        &OutlierSettings::default(),
    );
    assert!(scores
        .scores
        .iter()
        .all(|row| row[Metric::CpuBusyPct.index()].is_none()));
    assert_eq!(scores.skipped.len(), 1);
    assert_eq!(
        scores.skipped[0].reason,
        "cpu_busy_pct forms two clusters (4 hosts around 20.0%, 2 around 80.0%; gap 59.0%): too few hosts \
         in a cluster to score within it (need 5 each)"
    );
    // A lone host far from five peers is no cluster: it is scored, and outlying.
    let scores = score_window(
        &group(&[50.0, 51.0, 49.0, 50.0, 50.0, 95.0]),
        &OutlierSettings::default(),
    );
    assert!(scores.scores[5][Metric::CpuBusyPct.index()].unwrap().score >= 5.0);
    // A smaller minimum group size scores the 2 + 4 group within its clusters.
    let settings = OutlierSettings {
        min_group_hosts: 2,
        ..OutlierSettings::default()
    };
    let scores = score_window(&group(&[80.0, 80.0, 20.0, 20.0, 21.0, 19.0]), &settings);
    assert!(scores.skipped.is_empty());
    assert!(scores
        .scores
        .iter()
        .all(|row| row[Metric::CpuBusyPct.index()].unwrap().score < 5.0));
}
