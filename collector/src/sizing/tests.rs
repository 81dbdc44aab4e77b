//! Hand-computed sizing cases (inputs, arithmetic in comments, expected numbers) and property tests of the
//! model's monotonicity.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::config::{Balance, GroupSizing};
use super::*;

const GIB: f64 = (1u64 << 30) as f64;
/// 2023-11-15T00:00:00Z, a day boundary.
const START_MS: u64 = 19_676 * DAY_MS;
const END_MS: u64 = START_MS + DAY_MS;

fn params() -> WindowParams {
    WindowParams {
        window_start_ms: START_MS,
        window_end_ms: END_MS,
        percentile: 99.0,
        horizon_days: 90.0,
        trend_window_ms: 28 * DAY_MS,
    }
}

fn host(name: &str, zone: Option<&str>, cores: f64, memory_gib: f64) -> HostInput {
    HostInput {
        name: name.to_string(),
        zone: zone.map(str::to_string),
        cores,
        memory_bytes: memory_gib * GIB,
        first_seen_ms: START_MS,
        last_seen_ms: END_MS - MINUTE_MS,
        memory_used_peak_bytes: None,
    }
}

/// A full day of identical minutes: every percentile is the given load.
fn flat_minutes(cpu_cores: f64, memory_gib: f64, connections: &[(u16, f64)], hosts: u32) -> Vec<MinuteSum> {
    (0..1440)
        .map(|minute| MinuteSum {
            minute_start_ms: START_MS + minute * MINUTE_MS,
            cpu_busy_cores: cpu_cores,
            memory_used_bytes: memory_gib * GIB,
            established_by_port: connections.to_vec(),
            hosts_reporting: hosts,
        })
        .collect()
}

fn group(hosts: Vec<HostInput>, minutes: Vec<MinuteSum>) -> GroupInput {
    GroupInput {
        name: "web".to_string(),
        hosts,
        minutes,
    }
}

fn zoned(zones: &[(&str, usize)], cores: f64, memory_gib: f64) -> Vec<HostInput> {
    zones
        .iter()
        .flat_map(|(zone, count)| {
            (1..=*count).map(move |i| host(&format!("{zone}{i}"), Some(zone), cores, memory_gib))
        })
        .collect()
}

fn resource(report: &GroupReport, which: Resource) -> &ResourceReport {
    report
        .resources
        .iter()
        .find(|r| r.resource == which)
        .expect("resource sized")
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

#[test]
fn peak_is_the_percentile_of_group_sums() {
    // Minute sums 1, 2, …, 100 cores: nearest rank for p99 is ceil(0.99 × 100) = 99, the value 99.
    let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile_nearest_rank(&mut values, 99.0), Some(99.0));
    assert_eq!(percentile_nearest_rank(&mut values, 50.0), Some(50.0));
    assert_eq!(percentile_nearest_rank(&mut [], 99.0), None);
}

#[test]
fn equal_zones() {
    // Zones a, b, c with two 8-core, 64 GiB hosts each: 48 cores. Peak 24 busy cores: now 24/48 = 50 %.
    // Losing any zone leaves 32 cores: 24/32 = 75 % ≤ 80 %. N+1 leaves 40: 24/40 = 60 %.
    // Safe level 80 % × 32/48 = 53.33 %; headroom 53.33 − 50 = 3.33 points, 0.5333 × 48 − 24 = 1.6 cores.
    let hosts = zoned(&[("a", 2), ("b", 2), ("c", 2)], 8.0, 64.0);
    let report = size_group(
        &group(hosts, flat_minutes(24.0, 100.0, &[], 6)),
        &GroupSizing::default(),
        &params(),
    );
    assert_eq!(report.status, GroupStatus::Safe);
    assert_eq!(report.binding, Some(Resource::Cpu));
    let cpu = resource(&report, Resource::Cpu);
    close(cpu.capacity, 48.0);
    close(cpu.peak, 24.0);
    close(cpu.current_utilisation, 0.5);
    close(cpu.worst.utilisation.unwrap(), 0.75);
    assert_eq!((cpu.worst.kind, cpu.worst.name.as_str()), (LossKind::Zone, "a"));
    close(cpu.host_loss.utilisation.unwrap(), 0.6);
    close(cpu.safe_steady_state, 0.8 * 2.0 / 3.0);
    close(cpu.headroom, 0.8 * 2.0 / 3.0 - 0.5);
    close(cpu.headroom_load, 1.6);
    assert_eq!(report.hosts_to_add, Some(0));
    // Removing any host leaves 40 cores with a 16-core zone: 24/24 = 100 % > 80 %, so none may go.
    assert!(report.removable_hosts.is_empty());
}

#[test]
fn unequal_zones() {
    // Zone a has four 8-core hosts (32), b and c two each (16): 64 cores, peak 30.
    // Losing a leaves 32: 30/32 = 93.75 % > 80 %. Safe level 80 % × 32/64 = 40 %, now 46.9 %.
    // One more host in b: 72 cores, largest zone still 32, survivors 40: 30/40 = 75 %. One host to add.
    let hosts = zoned(&[("a", 4), ("b", 2), ("c", 2)], 8.0, 64.0);
    let report = size_group(
        &group(hosts, flat_minutes(30.0, 10.0, &[], 8)),
        &GroupSizing::default(),
        &params(),
    );
    assert_eq!(report.status, GroupStatus::Unsafe);
    let cpu = resource(&report, Resource::Cpu);
    close(cpu.worst.utilisation.unwrap(), 0.9375);
    assert_eq!(cpu.worst.name, "a");
    close(cpu.safe_steady_state, 0.4);
    assert_eq!(report.hosts_to_add, Some(1));
}

#[test]
fn heterogeneous_cores() {
    // Unzoned hosts, each its own domain: h1 32 cores, h2 and h3 16: 64 cores, peak 30.
    // The worst loss is h1 (32): 30/32 = 93.75 %. The median host has 16 cores; one more (a new domain)
    // gives 80 cores, largest 32, survivors 48: 30/48 = 62.5 %. One host to add.
    let hosts = vec![
        host("h1", None, 32.0, 64.0),
        host("h2", None, 16.0, 64.0),
        host("h3", None, 16.0, 64.0),
    ];
    let report = size_group(
        &group(hosts, flat_minutes(30.0, 10.0, &[], 3)),
        &GroupSizing::default(),
        &params(),
    );
    let cpu = resource(&report, Resource::Cpu);
    assert_eq!((cpu.worst.kind, cpu.worst.name.as_str()), (LossKind::Host, "h1"));
    close(cpu.worst.utilisation.unwrap(), 0.9375);
    assert_eq!(report.added_host.as_ref().unwrap().cores, 16.0);
    assert_eq!(report.hosts_to_add, Some(1));
}

#[test]
fn single_zone_group_says_it_cannot_survive() {
    // Three hosts all in zone a: losing a leaves nothing, and hosts added to a cannot help.
    let hosts = zoned(&[("a", 3)], 8.0, 64.0);
    let report = size_group(
        &group(hosts, flat_minutes(2.0, 10.0, &[], 3)),
        &GroupSizing::default(),
        &params(),
    );
    assert_eq!(report.status, GroupStatus::SingleDomain);
    assert_eq!(report.hosts_to_add, None);
    assert_eq!(resource(&report, Resource::Cpu).worst.utilisation, None);
    assert_eq!(
        report.notes[0],
        "cannot survive a zone loss: all 3 hosts in zone \"a\"; add hosts in a second zone"
    );
}

#[test]
fn n_plus_two() {
    // Five unzoned 10-core hosts, k = 2: losing the two largest leaves 30 cores.
    // Peak 26: 26/30 = 86.7 % > 80 %. Safe level 80 % × 30/50 = 48 %.
    // One more 10-core host: 60 − 20 = 40, 26/40 = 65 %. One host to add.
    let hosts: Vec<HostInput> = (1..=5)
        .map(|i| host(&format!("h{i}"), None, 10.0, 64.0))
        .collect();
    let settings = GroupSizing {
        k: 2,
        ..GroupSizing::default()
    };
    let report = size_group(
        &group(hosts, flat_minutes(26.0, 10.0, &[], 5)),
        &settings,
        &params(),
    );
    let cpu = resource(&report, Resource::Cpu);
    assert_eq!(
        (cpu.worst.kind, cpu.worst.name.as_str()),
        (LossKind::LargestHosts, "h1,h2")
    );
    close(cpu.worst.utilisation.unwrap(), 26.0 / 30.0);
    close(cpu.safe_steady_state, 0.48);
    assert_eq!(report.status, GroupStatus::Unsafe);
    assert_eq!(report.hosts_to_add, Some(1));
}

fn connections_settings() -> GroupSizing {
    GroupSizing {
        max_connections: BTreeMap::from([(443, 1000)]),
        ..GroupSizing::default()
    }
}

#[test]
fn connections_bind_before_cpu() {
    // Zones a, b, c with one 16-core host each, MaxConnections 1000 on port 443.
    // CPU: 12 of 48 cores; after a zone loss 12/32 = 37.5 %, fine.
    // Connections: 2400 of 3000; after a zone loss 2400/2000 = 120 % > 100 %: connections bind.
    // One host more makes one zone 2000 of 4000: still 120 %. Two (in different zones): 5000 − 2000 = 3000,
    // 2400/3000 = 80 %. Two hosts to add.
    let hosts = zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0);
    let minutes = flat_minutes(12.0, 10.0, &[(443, 2400.0), (22, 3.0)], 3);
    let report = size_group(&group(hosts, minutes), &connections_settings(), &params());
    assert_eq!(report.binding, Some(Resource::Connections { port: 443 }));
    let connections = resource(&report, Resource::Connections { port: 443 });
    close(connections.worst.utilisation.unwrap(), 1.2);
    assert_eq!(connections.load_source, LoadSource::Measured);
    close(resource(&report, Resource::Cpu).worst.utilisation.unwrap(), 0.375);
    assert_eq!(report.hosts_to_add, Some(2));
    // Port 22 has no MaxConnections, so it is stated, not sized.
    assert!(report
        .notes
        .iter()
        .any(|note| note.contains("port 22 are measured but not sized")));
}

#[test]
fn littles_law_sets_the_connection_load() {
    // 20000 requests/s × 120 ms = 2400 concurrent connections, with no connection measurements at all:
    // the same arithmetic as above, so the same two hosts to add.
    let hosts = zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0);
    let settings = GroupSizing {
        little: Some(LittleLaw {
            request_rate_per_s: 20_000.0,
            latency_ms: 120.0,
            port: 443,
            beta: 0.0,
        }),
        ..connections_settings()
    };
    let report = size_group(
        &group(hosts, flat_minutes(12.0, 10.0, &[], 3)),
        &settings,
        &params(),
    );
    let connections = resource(&report, Resource::Connections { port: 443 });
    assert_eq!(connections.load_source, LoadSource::LittlesLaw);
    close(connections.peak, 2400.0);
    assert_eq!(connections.measured_peak, Some(0.0));
    assert_eq!(connections.forecast.outcome, ForecastOutcome::NotEnoughHistory);
    assert_eq!(report.hosts_to_add, Some(2));
}

#[test]
fn memory_binds() {
    // Zones a and b with two 8-core, 64 GiB hosts each: 256 GiB. CPU 4 of 32 cores: 4/16 = 25 % after a loss.
    // Memory 120 GiB: after a zone loss 120/128 = 93.75 % > 90 %. Safe level 90 % × 128/256 = 45 %.
    // One host in either zone makes that zone 192 of 320: 120/128 again. Two (one each): 384 − 192 = 192,
    // 120/192 = 62.5 %. Two hosts to add.
    // This is a cache tier: memory = "shared", its keys re-hash onto the survivors.
    let hosts = zoned(&[("a", 2), ("b", 2)], 8.0, 64.0);
    let settings = GroupSizing {
        memory: MemoryMode::Shared,
        ..GroupSizing::default()
    };
    let report = size_group(
        &group(hosts, flat_minutes(4.0, 120.0, &[], 4)),
        &settings,
        &params(),
    );
    assert_eq!(report.binding, Some(Resource::Memory));
    let memory = resource(&report, Resource::Memory);
    close(memory.worst.utilisation.unwrap(), 0.9375);
    close(memory.safe_steady_state, 0.45);
    assert_eq!(report.hosts_to_add, Some(2));
}

#[test]
fn empty_group() {
    let report = size_group(&group(Vec::new(), Vec::new()), &GroupSizing::default(), &params());
    assert_eq!(report.status, GroupStatus::Empty);
    assert_eq!(report.hosts, 0);
    assert!(report.resources.is_empty());
    assert_eq!(report.hosts_to_add, None);
    assert_eq!(report.gaps.missing_minutes, 1440);
    assert_eq!(
        report.notes[0],
        "no host of the group is reporting at the end of the window"
    );
}

#[test]
fn host_that_vanished_mid_window() {
    // Zones a, b, c with two 8-core hosts each; c2 stops at noon. Present capacity 40 cores (c holds 8).
    // Peak 20: losing a leaves 24, 20/24 = 83.3 % > 80 %. The load c2 carried stays in the sums.
    // One minute reports 4 hosts while 6 were there: it is partial.
    // One host in c: 48 cores, every zone 16, survivors 32: 20/32 = 62.5 %. One host to add.
    let mut hosts = zoned(&[("a", 2), ("b", 2), ("c", 2)], 8.0, 64.0);
    hosts[5].last_seen_ms = START_MS + DAY_MS / 2;
    let mut minutes = flat_minutes(20.0, 10.0, &[], 6);
    for row in minutes.iter_mut().skip(721) {
        row.hosts_reporting = 5;
    }
    minutes[10].hosts_reporting = 4;
    let report = size_group(&group(hosts, minutes), &GroupSizing::default(), &params());
    assert_eq!(report.hosts, 5);
    assert_eq!(report.left.len(), 1);
    assert_eq!(report.left[0].name, "c2");
    assert_eq!(report.gaps.partial_minutes, 1);
    let cpu = resource(&report, Resource::Cpu);
    close(cpu.capacity, 40.0);
    close(cpu.worst.utilisation.unwrap(), 20.0 / 24.0);
    assert_eq!(report.hosts_to_add, Some(1));
    assert!(report
        .notes
        .iter()
        .any(|note| note.starts_with("1 host left during the window (c2)")));
}

#[test]
fn missing_minutes_are_counted_and_the_longest_gap_named() {
    let hosts = zoned(&[("a", 1), ("b", 1)], 8.0, 64.0);
    let mut minutes = flat_minutes(1.0, 1.0, &[], 2);
    // Drop minutes 100..140 and 500..505: 45 missing, the longest run is 40 minutes from minute 100.
    minutes.retain(|row| {
        let minute = (row.minute_start_ms - START_MS) / MINUTE_MS;
        !(100..140).contains(&minute) && !(500..505).contains(&minute)
    });
    let report = size_group(&group(hosts, minutes), &GroupSizing::default(), &params());
    assert_eq!(report.gaps.missing_minutes, 45);
    assert_eq!(
        report.gaps.longest_gaps[0],
        (START_MS + 100 * MINUTE_MS, START_MS + 140 * MINUTE_MS)
    );
    assert!(report
        .notes
        .iter()
        .any(|note| note == "45 of 1440 minutes have no data"));
}

#[test]
fn safe_group_lists_removable_hosts() {
    // Zones a, b, c with three 8-core hosts each: 72 cores, peak 12. Removing one host from each zone
    // (the smallest first, then round the zones) keeps every case within target until only one host per
    // zone is left; with 3 × 8 = 24 cores and a zone loss, 12/16 = 75 % is still fine.
    let hosts = zoned(&[("a", 3), ("b", 3), ("c", 3)], 8.0, 64.0);
    let report = size_group(
        &group(hosts, flat_minutes(12.0, 10.0, &[], 9)),
        &GroupSizing::default(),
        &params(),
    );
    assert_eq!(report.status, GroupStatus::Safe);
    assert_eq!(report.removable_hosts.len(), 6);
}

fn identical_hosts(zones: &[usize]) -> Vec<HostInput> {
    zones
        .iter()
        .enumerate()
        .map(|(i, zone)| host(&format!("h{i}"), Some(["a", "b", "c", "d"][*zone]), 8.0, 32.0))
        .collect()
}

proptest! {
    #[test]
    fn adding_a_host_never_increases_hosts_to_add(
        zones in prop::collection::vec(0usize..4, 1..12),
        extra_zone in 0usize..4,
        load_cores in 0.0f64..300.0,
        k in 0u32..3,
    ) {
        let settings = GroupSizing { k, ..GroupSizing::default() };
        let before = size_group(&group(identical_hosts(&zones), flat_minutes(load_cores, 1.0, &[], 1)), &settings, &params());
        let mut more = zones.clone();
        more.push(extra_zone);
        let after = size_group(&group(identical_hosts(&more), flat_minutes(load_cores, 1.0, &[], 1)), &settings, &params());
        let count = |report: &GroupReport| report.hosts_to_add.unwrap_or(u32::MAX);
        prop_assert!(count(&after) <= count(&before), "before {:?}, after {:?}", before.hosts_to_add, after.hosts_to_add);
    }

    #[test]
    fn losing_the_largest_zone_is_never_better_than_a_smaller_one(
        hosts in prop::collection::vec((0usize..4, 1.0f64..64.0, 1.0f64..512.0), 2..16),
        load_cores in 0.0f64..200.0,
    ) {
        let inputs: Vec<HostInput> = hosts
            .iter()
            .enumerate()
            .map(|(i, (zone, cores, memory))| host(&format!("h{i}"), Some(["a", "b", "c", "d"][*zone]), *cores, *memory))
            .collect();
        let report = size_group(&group(inputs, flat_minutes(load_cores, 100.0, &[], 1)), &GroupSizing::default(), &params());
        for resource in &report.resources {
            let largest = resource
                .domain_losses
                .iter()
                .max_by(|a, b| a.lost_capacity.total_cmp(&b.lost_capacity))
                .unwrap();
            let severity = |case: &LossCase| case.utilisation.unwrap_or(f64::INFINITY);
            for other in &resource.domain_losses {
                prop_assert!(severity(largest) >= severity(other));
            }
            prop_assert!(severity(&resource.worst) >= severity(largest));
            prop_assert!(severity(&resource.worst) >= severity(&resource.host_loss));
        }
    }
}

/// A fleet with a safe, an unsafe, a single-zone and an empty group, over eight complete days with a rising
/// trend.
fn sample_report() -> SizingReport {
    let start_ms = START_MS - 7 * DAY_MS;
    let rising = |base: f64| -> Vec<MinuteSum> {
        (0..8 * 1440u64)
            .map(|minute| MinuteSum {
                minute_start_ms: start_ms + minute * MINUTE_MS,
                cpu_busy_cores: base + minute as f64 / 1440.0,
                memory_used_bytes: 50.0 * GIB,
                established_by_port: vec![(443, 900.0)],
                hosts_reporting: 6,
            })
            .collect()
    };
    let mut web = group(zoned(&[("a", 2), ("b", 2), ("c", 2)], 8.0, 64.0), rising(20.0));
    web.name = "web <&> \"api\"".to_string();
    let mut db = group(zoned(&[("a", 1)], 16.0, 128.0), rising(3.0));
    db.name = "db".to_string();
    let mut idle = group(Vec::new(), Vec::new());
    idle.name = "idle".to_string();
    for host in web.hosts.iter_mut().chain(db.hosts.iter_mut()) {
        host.first_seen_ms = start_ms;
    }
    let mut config = SizingConfig::default();
    config.defaults.max_connections = BTreeMap::from([(443, 1000)]);
    size_fleet(
        &SizingInput {
            window_start_ms: start_ms,
            window_end_ms: END_MS,
            groups: vec![web, db, idle],
        },
        &config,
    )
}

/// Checks that every opened element is closed in order; void HTML elements and `/>` close themselves.
fn assert_well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "br", "hr", "img", "input", "link"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        let end = rest[at..].find('>').expect("an unterminated tag") + at;
        let tag = &rest[at + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let expected = open.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(expected, name.trim(), "mismatched closing tag");
            continue;
        }
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(!name.is_empty(), "bad tag <{tag}>");
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            open.push(name);
        }
    }
    assert!(open.is_empty(), "unclosed: {open:?}");
}

#[test]
fn html_is_well_formed_self_contained_and_escaped() {
    let html = render(&sample_report(), ReportFormat::Html);
    assert_well_formed(&html);
    assert!(html.contains("web &lt;&amp;&gt; &quot;api&quot;"));
    assert!(!html.contains("web <&>"));
    // No external assets: nothing is fetched from anywhere.
    assert!(!html.contains("src=") && !html.contains("href=\"http") && !html.contains("url("));
    assert!(!html.contains("<script") && !html.contains("<link"));
    // Each sized group has its three charts; the single-zone group is stated plainly.
    assert!(html.matches("<svg").count() >= 5);
    assert!(html.contains("What if this fails") && html.contains("Trend of daily peak"));
    assert!(html.contains("cannot survive a zone loss: all 1 host in zone"));
    assert!(html.contains("@media print"));
    // The checker itself rejects a broken page.
    assert!(std::panic::catch_unwind(|| assert_well_formed("<p><b>x</p></b>")).is_err());
}

#[test]
fn csv_carries_the_same_numbers_as_the_json() {
    let report = sample_report();
    let json: serde_json::Value = serde_json::from_str(&render(&report, ReportFormat::Json)).unwrap();
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    let csv_text = render(&report, ReportFormat::Csv);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let groups = json["groups"].as_array().unwrap();
    for (row, group) in rows.iter().zip(groups) {
        let cell = |name: &str| {
            row.get(header.iter().position(|h| h == name).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(cell("group"), group["name"].as_str().unwrap());
        assert_eq!(cell("status"), group["status"].as_str().unwrap());
        assert_eq!(cell("hosts"), group["hosts"].to_string());
        for (index, prefix) in ["cpu", "memory"].iter().enumerate() {
            let Some(resource) = group["resources"].get(index) else {
                assert_eq!(cell(&format!("{prefix}_peak")), "");
                continue;
            };
            for field in [
                "peak",
                "capacity",
                "target",
                "current_utilisation",
                "safe_steady_state",
                "headroom",
            ] {
                let from_csv: f64 = cell(&format!("{prefix}_{field}")).parse().unwrap();
                // serde_json parses floats fast rather than exactly, so allow the last bit or two.
                let from_json = resource[field].as_f64().unwrap();
                assert!(
                    (from_csv - from_json).abs() <= 1e-12 * from_json.abs(),
                    "{prefix}_{field}"
                );
            }
            let worst = resource["worst"]["utilisation"].as_f64();
            let from_csv = cell(&format!("{prefix}_worst_utilisation")).parse::<f64>().ok();
            assert_eq!(from_csv.is_some(), worst.is_some());
            if let (Some(a), Some(b)) = (from_csv, worst) {
                assert!((a - b).abs() <= 1e-12 * b.abs());
            }
        }
        let hosts_to_add = group["hosts_to_add"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_default();
        assert_eq!(cell("hosts_to_add"), hosts_to_add);
    }
    // The web group's CPU rises one core a day on 48 cores: the trend is 1/48 of capacity a day.
    let web = &groups[2];
    assert_eq!(web["name"], "web <&> \"api\"");
    let slope = web["resources"][0]["forecast"]["trend"]["slope_per_day"]
        .as_f64()
        .unwrap();
    assert!((slope - 1.0 / 48.0).abs() < 1e-3, "{slope}");
}

#[test]
fn markdown_has_a_summary_row_per_group() {
    let markdown = render(&sample_report(), ReportFormat::Markdown);
    assert!(markdown.starts_with("# Failover sizing report\n"));
    assert!(markdown.contains("| db | baseline | cannot survive a zone loss | 1 | 1 |"));
    assert!(markdown.contains("| idle | baseline | empty | 0 | 0 |"));
    assert!(markdown.contains("web <&> \"api\""));
}

fn unzoned(cores: &[f64]) -> Vec<HostInput> {
    cores
        .iter()
        .enumerate()
        .map(|(i, &c)| host(&format!("h{}", i + 1), None, c, 64.0))
        .collect()
}

#[test]
fn equal_balance_checks_the_smallest_surviving_host() {
    // Unzoned hosts of 32, 32, 8 and 8 cores (80 in all) carry 24 busy cores at peak.
    // Capacity balance: losing a 32-core host leaves 48 cores, 24/48 = 50 %: safe.
    // Equal balance: losing a 32-core host leaves three hosts with 24/3 = 8 cores each, and the 8-core
    // hosts h3 and h4 run at 8/8 = 100 % > 80 %: unsafe, and they are named.
    // The median host (lower median by cores) has 8 cores; one more makes five hosts: losing a 32-core host
    // leaves four, 24/4 = 6 cores each, 6/8 = 75 %: one host to add.
    let minutes = flat_minutes(24.0, 100.0, &[], 4);
    let capacity = size_group(
        &group(unzoned(&[32.0, 32.0, 8.0, 8.0]), minutes.clone()),
        &GroupSizing::default(),
        &params(),
    );
    close(resource(&capacity, Resource::Cpu).worst.utilisation.unwrap(), 0.5);
    assert_eq!(capacity.status, GroupStatus::Safe);

    let equal = GroupSizing {
        balance: Balance::Equal,
        ..GroupSizing::default()
    };
    let report = size_group(
        &group(unzoned(&[32.0, 32.0, 8.0, 8.0]), minutes),
        &equal,
        &params(),
    );
    let cpu = resource(&report, Resource::Cpu);
    assert_eq!(cpu.spread, "equal");
    // Now: 24/4 = 6 cores on each host, 6/8 = 75 % on the small ones.
    close(cpu.current_utilisation, 0.75);
    close(cpu.worst.utilisation.unwrap(), 1.0);
    assert_eq!((cpu.worst.kind, cpu.worst.name.as_str()), (LossKind::Host, "h1"));
    assert_eq!(cpu.worst.binding_hosts, vec!["h3", "h4"]);
    assert_eq!(report.status, GroupStatus::Unsafe);
    assert_eq!(report.binding, Some(Resource::Cpu));
    // Safe level: 80 % × 75 % / 100 % = 60 % on the most loaded host now.
    close(cpu.safe_steady_state, 0.6);
    assert_eq!(report.hosts_to_add, Some(1));
    assert_eq!(report.placement, vec![Placement { zone: None, hosts: 1 }]);
}

/// The demo's `db` shape: three 16-core, 64 GiB hosts, one per zone, memory steady at 78 %, CPU 42 %.
fn db_group(per_host_used: Option<f64>) -> GroupInput {
    let mut hosts = zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0);
    for host in &mut hosts {
        host.memory_used_peak_bytes = per_host_used.map(|fraction| fraction * 64.0 * GIB);
    }
    group(hosts, flat_minutes(0.42 * 48.0, 0.78 * 192.0, &[], 3))
}

#[test]
fn per_host_memory_does_not_move_to_the_survivors() {
    // Shared (the old model): losing a zone puts 149.76 GiB on 128 GiB: 117 % > 90 %, memory-bound.
    let shared = GroupSizing {
        memory: MemoryMode::Shared,
        ..GroupSizing::default()
    };
    let old = size_group(&db_group(Some(0.78)), &shared, &params());
    close(
        resource(&old, Resource::Memory).worst.utilisation.unwrap(),
        0.78 * 1.5,
    );
    assert_eq!(old.binding, Some(Resource::Memory));
    assert_eq!(old.hosts_to_add, Some(2));

    // Per host (the default): each survivor keeps its own 78 %, under 90 %. CPU binds: 20.16 cores on the
    // 32 that survive a zone loss is 63 %, safe.
    let report = size_group(&db_group(Some(0.78)), &GroupSizing::default(), &params());
    let memory = resource(&report, Resource::Memory);
    assert_eq!(memory.spread, "per_host");
    close(memory.current_utilisation, 0.78);
    close(memory.worst.utilisation.unwrap(), 0.78);
    assert!(memory.safe);
    assert_eq!(report.status, GroupStatus::Safe);
    assert_eq!(report.binding, Some(Resource::Cpu));
    close(resource(&report, Resource::Cpu).worst.utilisation.unwrap(), 0.63);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("memory is sized per host") && n.ends_with("not memory-bound")),
        "{:?}",
        report.notes
    );

    // memory_per_load = 0.2: a survivor takes 1.5 × its load, so 0.78 × (0.8 + 0.2 × 1.5) = 85.8 %: safe.
    let some = GroupSizing {
        memory_per_load: 0.2,
        ..GroupSizing::default()
    };
    let report = size_group(&db_group(Some(0.78)), &some, &params());
    close(
        resource(&report, Resource::Memory).worst.utilisation.unwrap(),
        0.858,
    );
    assert_eq!(report.status, GroupStatus::Safe);

    // memory_per_load = 0.5: 0.78 × (0.5 + 0.75) = 97.5 % > 90 %. Adding hosts one per zone keeps a zone's
    // share of the load at one third, so the factor stays 1.5: no number of hosts helps, and the report
    // says so instead of a count.
    let half = GroupSizing {
        memory_per_load: 0.5,
        ..GroupSizing::default()
    };
    let report = size_group(&db_group(Some(0.78)), &half, &params());
    let memory = resource(&report, Resource::Memory);
    close(memory.worst.utilisation.unwrap(), 0.975);
    assert_eq!(memory.worst.binding_hosts, vec!["b1"]);
    assert_eq!(report.status, GroupStatus::Unsafe);
    assert_eq!(report.hosts_to_add, None);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("however many hosts are added")),
        "{:?}",
        report.notes
    );
}

#[test]
fn per_host_memory_names_the_fullest_host_and_is_not_fixed_by_adding() {
    // Three zones of one 64 GiB host; a1 uses 95 % of its own memory, the others 50 %. The target is 90 %:
    // a1 is over it with no loss at all, and hosts added elsewhere do not lower it.
    let mut hosts = zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0);
    for (host, used) in hosts.iter_mut().zip([0.95, 0.5, 0.5]) {
        host.memory_used_peak_bytes = Some(used * 64.0 * GIB);
    }
    let report = size_group(
        &group(hosts, flat_minutes(4.0, 0.65 * 192.0, &[], 3)),
        &GroupSizing::default(),
        &params(),
    );
    let memory = resource(&report, Resource::Memory);
    close(memory.current_utilisation, 0.95);
    // Losing zone a leaves b1 and c1 at 50 %; losing b or c leaves a1 at 95 %: the worst case is zone b.
    close(memory.domain_losses[0].utilisation.unwrap(), 0.5);
    close(memory.worst.utilisation.unwrap(), 0.95);
    assert_eq!(memory.worst.binding_hosts, vec!["a1"]);
    assert_eq!(report.hosts_to_add, None);
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("a1: a host's own memory use (95.0 %)")));
}

#[test]
fn littles_law_with_a_margin_never_hides_the_measured_peak() {
    // L = 20000/s × 0.120 s = 2400; with beta 1 the margin is √2400 = 48.99: 2448.99 connections.
    let little = LittleLaw {
        request_rate_per_s: 20_000.0,
        latency_ms: 120.0,
        port: 443,
        beta: 1.0,
    };
    let settings = GroupSizing {
        little: Some(little),
        ..connections_settings()
    };
    let hosts = || zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0);
    let below = size_group(
        &group(hosts(), flat_minutes(12.0, 10.0, &[(443, 2000.0)], 3)),
        &settings,
        &params(),
    );
    let connections = resource(&below, Resource::Connections { port: 443 });
    assert_eq!(connections.load_source, LoadSource::LittlesLaw);
    close(connections.peak, 2400.0 + 2400f64.sqrt());
    assert_eq!(connections.measured_peak, Some(2000.0));
    assert!(below.notes.iter().any(|n| n.contains("Little's law binds")));
    // A measured peak of 2600 is above Little's law: the measurement is the load.
    let above = size_group(
        &group(hosts(), flat_minutes(12.0, 10.0, &[(443, 2600.0)], 3)),
        &settings,
        &params(),
    );
    let connections = resource(&above, Resource::Connections { port: 443 });
    assert_eq!(connections.load_source, LoadSource::Measured);
    close(connections.peak, 2600.0);
    assert!(above.notes.iter().any(|n| n.contains("the measured peak binds")));
    // No measured minutes: no data, never "safe".
    let none = size_group(&group(hosts(), Vec::new()), &settings, &params());
    assert_eq!(none.status, GroupStatus::NoData);
    assert!(none.notes[0].contains("Little's law alone does not show the group is safe"));
}

/// Fourteen days of minutes at 2 cores, with one 60-minute weekly peak at 10 cores.
fn weekly_peak_minutes() -> (Vec<MinuteSum>, WindowParams) {
    let start = START_MS - 13 * DAY_MS;
    let peak_start = start + 3 * DAY_MS + 18 * 60 * MINUTE_MS;
    let minutes = (0..14 * 1440u64)
        .map(|m| {
            let at = start + m * MINUTE_MS;
            let busy = if (peak_start..peak_start + 60 * MINUTE_MS).contains(&at) {
                10.0
            } else {
                2.0
            };
            MinuteSum {
                minute_start_ms: at,
                cpu_busy_cores: busy,
                memory_used_bytes: 10.0 * GIB,
                established_by_port: Vec::new(),
                hosts_reporting: 3,
            }
        })
        .collect();
    let params = WindowParams {
        window_start_ms: start,
        ..params()
    };
    (minutes, params)
}

#[test]
fn the_peak_statistic_is_a_choice_and_a_weekly_hour_survives_p99_9() {
    // 20,160 minutes: 20,100 at 2 cores and 60 at 10. p99 is rank ⌈0.99 × 20160⌉ = 19,959 ≤ 20,100: 2 cores,
    // the weekly hour vanishes. p99.9 is rank ⌈20139.84⌉ = 20,140 > 20,100: 10 cores. max: 10 cores.
    let (minutes, base) = weekly_peak_minutes();
    let hosts = || {
        zoned(&[("a", 1), ("b", 1), ("c", 1)], 8.0, 64.0)
            .into_iter()
            .map(|mut h| {
                h.first_seen_ms = base.window_start_ms;
                h
            })
            .collect::<Vec<_>>()
    };
    for (percentile, expected) in [(99.0, 2.0), (99.9, 10.0), (100.0, 10.0)] {
        let params = WindowParams { percentile, ..base };
        let report = size_group(&group(hosts(), minutes.clone()), &GroupSizing::default(), &params);
        let cpu = resource(&report, Resource::Cpu);
        close(cpu.peak, expected);
        let first_peak_minute = base.window_start_ms + 3 * DAY_MS + 18 * 60 * MINUTE_MS;
        let expected_minute = if expected == 2.0 {
            base.window_start_ms
        } else {
            first_peak_minute
        };
        assert_eq!(cpu.peak_minute_ms, Some(expected_minute), "p{percentile}");
    }
    assert_eq!(config::peak_label(99.9), "p99.9");
    assert_eq!(config::peak_label(100.0), "max");
}

#[test]
fn a_diurnal_ramp_peaks_at_its_nearest_rank() {
    // One day whose load ramps from 0 to 1439/144 cores minute by minute: the values are m/144 for
    // m = 0..1439, so p99.9 is rank ⌈0.999 × 1440⌉ = 1439, the value 1438/144 = 9.986 cores, at minute 1438.
    let minutes: Vec<MinuteSum> = (0..1440u64)
        .map(|m| MinuteSum {
            minute_start_ms: START_MS + m * MINUTE_MS,
            cpu_busy_cores: m as f64 / 144.0,
            memory_used_bytes: GIB,
            established_by_port: Vec::new(),
            hosts_reporting: 3,
        })
        .collect();
    let params = WindowParams {
        percentile: 99.9,
        ..params()
    };
    let report = size_group(
        &group(zoned(&[("a", 1), ("b", 1), ("c", 1)], 8.0, 64.0), minutes),
        &GroupSizing::default(),
        &params,
    );
    let cpu = resource(&report, Resource::Cpu);
    close(cpu.peak, 1438.0 / 144.0);
    assert_eq!(cpu.peak_minute_ms, Some(START_MS + 1438 * MINUTE_MS));
}

#[test]
fn demo_web_group_binds_on_its_small_host_under_equal_balance() {
    // The demo's web group: two 8-core hosts per zone, except that sim-web-4 in zone-b has 4 cores.
    // Busy cores: 2.24 + 2.48 (zone-a), 3.72 + 2.24 (zone-b), 2.72 + 2.96 (zone-c) = 16.36 of 44.
    let mut hosts = Vec::new();
    for (name, zone, cores) in [
        ("sim-web-1", "zone-a", 8.0),
        ("sim-web-2", "zone-a", 8.0),
        ("sim-web-4", "zone-b", 4.0),
        ("sim-web-5", "zone-b", 8.0),
        ("sim-web-7", "zone-c", 8.0),
        ("sim-web-8", "zone-c", 8.0),
    ] {
        hosts.push(host(name, Some(zone), cores, 16.0));
    }
    let minutes = flat_minutes(16.36, 50.0, &[], 6);
    // Capacity balance: losing zone-a leaves 28 cores, 16.36/28 = 58.4 %: safe.
    let capacity = size_group(
        &group(hosts.clone(), minutes.clone()),
        &GroupSizing::default(),
        &params(),
    );
    assert_eq!(capacity.status, GroupStatus::Safe);
    close(
        resource(&capacity, Resource::Cpu).worst.utilisation.unwrap(),
        16.36 / 28.0,
    );
    // Equal balance: losing zone-a leaves four hosts at 16.36/4 = 4.09 cores each, 102 % of sim-web-4.
    let equal = GroupSizing {
        balance: Balance::Equal,
        ..GroupSizing::default()
    };
    let report = size_group(&group(hosts, minutes), &equal, &params());
    let cpu = resource(&report, Resource::Cpu);
    close(cpu.worst.utilisation.unwrap(), 16.36 / 4.0 / 4.0);
    assert_eq!(cpu.worst.name, "zone-a");
    assert_eq!(cpu.worst.binding_hosts, vec!["sim-web-4"]);
    assert_eq!(report.status, GroupStatus::Unsafe);
    // Adding 8-core hosts. +1 in zone-b: losing zone-a or zone-c leaves five hosts, 16.36/5 = 3.27 cores,
    // 81.8 % of sim-web-4 (+1 in zone-c ties at 81.8 % but makes a larger zone). +1 more in zone-b: losing
    // zone-a leaves six hosts (zone-b's four and zone-c's two), 16.36/6 = 2.73 cores, 68.2 %; losing zone-b
    // leaves four 8-core hosts at 4.09 cores, 51.1 %; N+1 leaves seven, 2.34 cores, 58.4 %. Two hosts, both
    // in zone-b beside the small host.
    assert_eq!(report.hosts_to_add, Some(2), "{:?}", report.placement);
    let placed: Vec<(Option<&str>, u32)> = report
        .placement
        .iter()
        .map(|p| (p.zone.as_deref(), p.hosts))
        .collect();
    assert_eq!(placed, vec![(Some("zone-b"), 2)]);
}

/// Ten days of minutes from START_MS − 9 days, rising one core a day from 10 cores (each day flat), on
/// three zones of one 16-core host (48 cores); the window ends at `end_ms`.
fn rising_days(end_ms: u64) -> GroupReport {
    let start = START_MS - 9 * DAY_MS;
    let minutes: Vec<MinuteSum> = (0..(end_ms - start) / MINUTE_MS)
        .map(|m| MinuteSum {
            minute_start_ms: start + m * MINUTE_MS,
            cpu_busy_cores: 10.0 + (m / 1440) as f64,
            memory_used_bytes: GIB,
            established_by_port: Vec::new(),
            hosts_reporting: 3,
        })
        .collect();
    let mut hosts = zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0);
    for host in &mut hosts {
        host.first_seen_ms = start;
        host.last_seen_ms = end_ms - MINUTE_MS;
    }
    let params = WindowParams {
        window_start_ms: start,
        window_end_ms: end_ms,
        ..params()
    };
    size_group(&group(hosts, minutes), &GroupSizing::default(), &params)
}

#[test]
fn forecasts_use_complete_days_only_so_the_time_of_day_does_not_matter() {
    // Ending at 12:00 on day 11, that day is partial and left out: ten complete days of peaks 10 … 19 cores
    // (utilisation (10 + d)/48). Ending at 23:00 the same ten days count: the same line. The safe level
    // is 80 % × 32/48 = 53.3 %, i.e. 25.6 cores: the line rises 1/48 a day, its value at the end of the
    // window is the last peak carried on to the end, and the crossing date is the same instant.
    let noon = rising_days(END_MS + 12 * 3_600_000);
    let evening = rising_days(END_MS + 23 * 3_600_000);
    let (a, b) = (
        &resource(&noon, Resource::Cpu).forecast,
        &resource(&evening, Resource::Cpu).forecast,
    );
    assert_eq!(a.daily_peaks.len(), 10);
    assert_eq!(b.daily_peaks.len(), 10);
    let (line_a, line_b) = (a.trend.unwrap(), b.trend.unwrap());
    close(line_a.slope_per_day, 1.0 / 48.0);
    close(line_b.slope_per_day, 1.0 / 48.0);
    // The same line, with the origin 11 hours later for the evening report.
    close(line_b.intercept - line_a.intercept, 11.0 / 24.0 / 48.0);
    let crossing = |forecast: &Forecast| match forecast.outcome {
        ForecastOutcome::Crosses { days, .. } => days,
        other => panic!("{other:?}"),
    };
    // Both cross at the same instant: 11 hours sooner from the later report.
    close(crossing(a) - crossing(b), 11.0 / 24.0);
    // At 12:00: intercept = 19/48 + 1/48 = 20/48 (the last complete day's midpoint is a day before noon);
    // (25.6/48 − 20/48)/(1/48) = 5.6 days.
    close(crossing(a), 5.6);
    assert_eq!(
        noon.days_to_safe_target.map(|d| (d * 10.0).round() / 10.0),
        Some(5.6)
    );
}

#[test]
fn fewer_than_seven_complete_days_is_not_enough_history() {
    let report = size_group(
        &group(
            zoned(&[("a", 1), ("b", 1), ("c", 1)], 16.0, 64.0),
            flat_minutes(10.0, 1.0, &[], 3),
        ),
        &GroupSizing::default(),
        &params(),
    );
    let cpu = resource(&report, Resource::Cpu);
    assert_eq!(cpu.forecast.daily_peaks.len(), 1);
    assert_eq!(cpu.forecast.outcome, ForecastOutcome::NotEnoughHistory);
}

#[test]
fn the_fleet_ranking_puts_unsafe_groups_first_then_the_soonest_crossing() {
    let report = sample_report();
    let names: Vec<&str> = report.ranking.iter().map(|r| r.group.as_str()).collect();
    // db is a single zone (unsafe now); the web group rises and crosses later; idle is empty.
    assert_eq!(names[0], "db");
    assert_eq!(report.ranking[0].days_until_unsafe, 0.0);
    assert!(!names.contains(&"idle"));
}

#[test]
fn issue_10_the_ranking_is_in_every_format() {
    let report = sample_report();
    assert!(report.ranking.len() >= 2, "{:?}", report.ranking);
    let first = &report.ranking[0];
    let second = &report.ranking[1];
    let html = render(&report, ReportFormat::Html);
    let section = html
        .split("<h2>Days until a group stops surviving its worst loss</h2>")
        .nth(1)
        .expect("the ranking section");
    let section = &section[..section.find("</table>").unwrap()];
    for (index, ranked) in report.ranking.iter().enumerate() {
        let row = format!(
            "<tr><td>{}</td><td><a href=\"#group-{}\">{}</a></td><td>{}</td>",
            index + 1,
            report::escape(&ranked.group.replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
            report::escape(&ranked.group),
            report::days_until_unsafe_text(ranked),
        );
        assert!(section.contains(&row), "{row} in {section}");
    }
    let md = render(&report, ReportFormat::Markdown);
    assert!(md.contains(&format!("| {} | unsafe now |", first.group)), "{md}");
    let json: serde_json::Value = serde_json::from_str(&render(&report, ReportFormat::Json)).unwrap();
    assert_eq!(json["ranking"][1]["group"], second.group.as_str());
    let csv = render(&report, ReportFormat::Csv);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let row_of = |group: &str| {
        rows.iter()
            .find(|r| &r[column("group")] == group)
            .unwrap()
            .clone()
    };
    assert_eq!(&row_of(&first.group)[column("unsafe_rank")], "1");
    assert_eq!(&row_of(&first.group)[column("days_until_unsafe")], "0");
    assert_eq!(&row_of(&second.group)[column("unsafe_rank")], "2");
    assert_eq!(
        row_of(&second.group)[column("days_until_unsafe")]
            .parse::<f64>()
            .unwrap(),
        second.days_until_unsafe
    );
    // A group that is not ranked (never unsafe within the horizon) has empty cells.
    assert_eq!(&row_of("idle")[column("unsafe_rank")], "");
}
