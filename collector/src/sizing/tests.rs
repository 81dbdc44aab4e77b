//! Hand-computed sizing cases (inputs, arithmetic in comments, expected numbers) and property tests of the
//! model's monotonicity.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::config::GroupSizing;
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
    assert_eq!(connections.forecast.outcome, ForecastOutcome::NotMeasured);
    assert_eq!(report.hosts_to_add, Some(2));
}

#[test]
fn memory_binds() {
    // Zones a and b with two 8-core, 64 GiB hosts each: 256 GiB. CPU 4 of 32 cores: 4/16 = 25 % after a loss.
    // Memory 120 GiB: after a zone loss 120/128 = 93.75 % > 90 %. Safe level 90 % × 128/256 = 45 %.
    // One host in either zone makes that zone 192 of 320: 120/128 again. Two (one each): 384 − 192 = 192,
    // 120/192 = 62.5 %. Two hosts to add.
    let hosts = zoned(&[("a", 2), ("b", 2)], 8.0, 64.0);
    let report = size_group(
        &group(hosts, flat_minutes(4.0, 120.0, &[], 4)),
        &GroupSizing::default(),
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

/// A fleet with a safe, an unsafe, a single-zone and an empty group, over four days with a rising trend.
fn sample_report() -> SizingReport {
    let start_ms = START_MS - 3 * DAY_MS;
    let rising = |base: f64| -> Vec<MinuteSum> {
        (0..4 * 1440u64)
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
    assert!(markdown.contains("| db | cannot survive a zone loss | 1 | 1 |"));
    assert!(markdown.contains("| idle | empty | 0 | 0 |"));
    assert!(markdown.contains("web <&> \"api\""));
}
