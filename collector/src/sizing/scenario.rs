//! What-if scenarios for `sizing` and `report`: load growth, other targets, a named zone or N hosts lost,
//! and hosts added to a group. A scenario rewrites the model's input and settings and runs the same model,
//! so its row beside the baseline is computed exactly like the baseline. Pure: data in, data out.

use serde::Serialize;

use super::config::{MemoryMode, SizingConfig, ZoneLosses};
use super::model::size_fleet;
use super::{GroupReport, HostInput, SizingInput, SizingReport};

/// One what-if: every option given on the command line, applied together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    /// Load growth as a fraction: 0.2 is +20 %.
    pub growth: Option<f64>,
    /// Targets replacing the configured ones, as fractions.
    pub targets: Vec<(TargetKind, f64)>,
    /// Lose this zone (the only domain loss considered).
    pub lose_zone: Option<String>,
    /// Lose this many hosts at once (N+k, the only host loss considered).
    pub lose_hosts: Option<u32>,
    /// Hosts added to groups: (group, count).
    pub add: Vec<(String, u32)>,
}

/// The resource a `--target` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `cpu=70%`.
    Cpu,
    /// `memory=85%`.
    Memory,
    /// `connections=90%`.
    Connections,
}

/// A scenario's results: its name and every group sized under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// What the scenario changes, like `growth +20 %, lose zone eu-1a`.
    pub name: String,
    /// One report per group, sorted by name, as in the baseline.
    pub groups: Vec<GroupReport>,
    /// The groups ranked by days until unsafe under this scenario, as the baseline's `ranking`.
    pub ranking: Vec<super::RankedGroup>,
}

fn percent_of(text: &str, what: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    number
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .map(|value| value / 100.0)
        .ok_or_else(|| format!("{what} \"{text}\" is not a percentage (like 20%)"))
}

impl Scenario {
    /// True when no option was given: there is no scenario, only the baseline.
    pub fn is_empty(&self) -> bool {
        *self == Scenario::default()
    }

    /// `--growth 20%`.
    pub fn parse_growth(text: &str) -> Result<f64, String> {
        let growth = percent_of(text, "--growth")?;
        if growth <= -1.0 {
            return Err(format!(
                "--growth \"{text}\" removes all load (use more than -100%)"
            ));
        }
        Ok(growth)
    }

    /// `--target cpu=70%`.
    pub fn parse_target(text: &str) -> Result<(TargetKind, f64), String> {
        let (kind, value) = text
            .split_once('=')
            .ok_or_else(|| format!("--target \"{text}\" needs RESOURCE=PERCENT (like cpu=70%)"))?;
        let kind = match kind.trim() {
            "cpu" => TargetKind::Cpu,
            "memory" => TargetKind::Memory,
            "connections" => TargetKind::Connections,
            other => {
                return Err(format!(
                    "--target \"{text}\": unknown resource \"{other}\" (use cpu, memory or connections)"
                ))
            }
        };
        let value = percent_of(value, "--target")?;
        if !(0.01..=1.0).contains(&value) {
            return Err(format!("--target \"{text}\" is out of range (use 1% to 100%)"));
        }
        Ok((kind, value))
    }

    /// `--lose zone=eu-1a`.
    pub fn parse_lose(text: &str) -> Result<String, String> {
        match text.split_once('=') {
            Some(("zone", zone)) if !zone.trim().is_empty() => Ok(zone.trim().to_string()),
            _ => Err(format!("--lose \"{text}\" needs zone=NAME (like zone=eu-1a)")),
        }
    }

    /// `--add group=web,hosts=3`.
    pub fn parse_add(text: &str) -> Result<(String, u32), String> {
        let mut group = None;
        let mut hosts = None;
        let mut unknown = false;
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("group", name)) if !name.trim().is_empty() => group = Some(name.trim().to_string()),
                Some(("hosts", count)) => {
                    hosts = count
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                }
                _ => unknown = true,
            }
        }
        match (group, hosts, unknown) {
            (Some(group), Some(hosts), false) => Ok((group, hosts)),
            _ => Err(format!(
                "--add \"{text}\" needs group=NAME,hosts=N with N from 1 to 10000 (like group=web,hosts=3)"
            )),
        }
    }

    /// `--scenario growth=20%,lose=zone=eu-1a,add=group=web,hosts=3`: several what-ifs applied together
    /// as one scenario. Each item is `OPTION=VALUE` with the option's name and value exactly as on the
    /// command line (`growth`, `target`, `lose`, `lose-hosts`, `add`), separated by commas or semicolons;
    /// a comma-separated piece that does not start with an option's name continues the previous value, so
    /// `add=group=web,hosts=3` keeps its comma. `target` and `add` may repeat; the others may not.
    pub fn parse_combined(text: &str) -> Result<Scenario, String> {
        const OPTIONS: [&str; 5] = ["growth", "target", "lose", "lose-hosts", "add"];
        let mut items: Vec<(String, String)> = Vec::new();
        for piece in text.split([',', ';']) {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            match piece.split_once('=') {
                Some((option, value)) if OPTIONS.contains(&option.trim()) => {
                    items.push((option.trim().to_string(), value.trim().to_string()))
                }
                _ => match items.last_mut() {
                    Some((option, value)) if option == "add" => {
                        value.push(',');
                        value.push_str(piece);
                    }
                    _ => {
                        return Err(format!(
                        "--scenario \"{text}\": \"{piece}\" is not OPTION=VALUE with OPTION one of growth, \
                             target, lose, lose-hosts, add (like growth=20%,lose=zone=eu-1a)"
                    ))
                    }
                },
            }
        }
        let mut scenario = Scenario::default();
        let once =
            |option: &str| format!("--scenario \"{text}\": {option} given twice (give it once per scenario)");
        for (option, value) in items {
            match option.as_str() {
                "growth" if scenario.growth.is_some() => return Err(once("growth")),
                "growth" => scenario.growth = Some(Self::parse_growth(&value)?),
                "target" => scenario.targets.push(Self::parse_target(&value)?),
                "lose" if scenario.lose_zone.is_some() => return Err(once("lose")),
                "lose" => scenario.lose_zone = Some(Self::parse_lose(&value)?),
                "lose-hosts" if scenario.lose_hosts.is_some() => return Err(once("lose-hosts")),
                "lose-hosts" => {
                    scenario.lose_hosts = Some(value.parse::<u32>().map_err(|_| {
                        format!("--scenario \"{text}\": lose-hosts=\"{value}\" is not a host count (like lose-hosts=2)")
                    })?)
                }
                _ => scenario.add.push(Self::parse_add(&value)?),
            }
        }
        if scenario.is_empty() {
            return Err(format!(
                "--scenario \"{text}\" changes nothing (like growth=20%,lose=zone=eu-1a)"
            ));
        }
        Ok(scenario)
    }

    /// What the scenario changes, in words.
    pub fn name(&self) -> String {
        let mut parts = Vec::new();
        if let Some(growth) = self.growth {
            parts.push(format!("growth {:+} %", round(growth * 100.0)));
        }
        for (kind, value) in &self.targets {
            let name = match kind {
                TargetKind::Cpu => "cpu",
                TargetKind::Memory => "memory",
                TargetKind::Connections => "connections",
            };
            parts.push(format!("{name} target {} %", round(value * 100.0)));
        }
        if let Some(zone) = &self.lose_zone {
            parts.push(format!("lose zone {zone}"));
        }
        if let Some(hosts) = self.lose_hosts {
            parts.push(format!("lose {hosts} host{}", if hosts == 1 { "" } else { "s" }));
        }
        for (group, hosts) in &self.add {
            parts.push(format!("add {hosts} to {group}"));
        }
        parts.join(", ")
    }

    /// The input and settings the scenario describes.
    pub fn apply(&self, input: &SizingInput, config: &SizingConfig) -> (SizingInput, SizingConfig) {
        let mut config = config.clone();
        let mut input = input.clone();
        let growth = self.growth.unwrap_or(0.0);
        let mut settings: Vec<&mut super::GroupSizing> = config.groups.values_mut().collect();
        settings.push(&mut config.defaults);
        for group in settings {
            for (kind, value) in &self.targets {
                match kind {
                    TargetKind::Cpu => group.targets.cpu = *value,
                    TargetKind::Memory => group.targets.memory = *value,
                    TargetKind::Connections => group.targets.connections = *value,
                }
            }
            if self.lose_zone.is_some() || self.lose_hosts.is_some() {
                group.zone_losses = match &self.lose_zone {
                    Some(zone) => ZoneLosses::Only(zone.clone()),
                    None => ZoneLosses::None,
                };
                group.k = self.lose_hosts.unwrap_or(0);
            }
            if let Some(little) = group.little.as_mut() {
                little.request_rate_per_s *= 1.0 + growth;
            }
        }
        for group in &mut input.groups {
            let settings = config.for_group(&group.name);
            // Memory that stays on its host grows only by the share that follows load.
            let memory_growth = match settings.memory {
                MemoryMode::Shared => 1.0 + growth,
                MemoryMode::PerHost => 1.0 + settings.memory_per_load * growth,
            };
            for minute in &mut group.minutes {
                minute.cpu_busy_cores *= 1.0 + growth;
                minute.memory_used_bytes *= memory_growth;
                for (_, count) in &mut minute.established_by_port {
                    *count *= 1.0 + growth;
                }
            }
            for host in &mut group.hosts {
                if let Some(used) = host.memory_used_peak_bytes.as_mut() {
                    *used *= memory_growth;
                }
            }
            for (name, count) in &self.add {
                if name == &group.name {
                    add_hosts(group, *count, input.window_start_ms, input.window_end_ms);
                }
            }
        }
        (input, config)
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Adds `count` hosts shaped like the group's median host (lower median by cores, then memory, with its
/// memory use), one at a time into the zone with the fewest hosts (ties to the zone with fewer cores, then
/// the name), present for the whole window. Each brings its own baseline memory use; its share of the load
/// comes from the group's sums, which are spread over every host.
fn add_hosts(group: &mut super::GroupInput, count: u32, start_ms: u64, end_ms: u64) {
    let present: Vec<&HostInput> = group
        .hosts
        .iter()
        .filter(|host| host.last_seen_ms + super::PRESENCE_GRACE_MS >= end_ms)
        .collect();
    if present.is_empty() {
        return;
    }
    let mut shapes: Vec<&HostInput> = present.clone();
    shapes.sort_by(|a, b| {
        a.cores
            .total_cmp(&b.cores)
            .then(a.memory_bytes.total_cmp(&b.memory_bytes))
    });
    let median = shapes[(shapes.len() - 1) / 2].clone();
    let mut zones: std::collections::BTreeMap<Option<String>, (usize, f64)> =
        std::collections::BTreeMap::new();
    for host in &present {
        let entry = zones.entry(host.zone.clone()).or_default();
        entry.0 += 1;
        entry.1 += host.cores;
    }
    let zoned = zones.keys().any(Option::is_some);
    for index in 1..=count {
        let zone = if zoned {
            zones
                .iter()
                .filter(|(zone, _)| zone.is_some())
                .min_by(|a, b| {
                    a.1 .0
                        .cmp(&b.1 .0)
                        .then(a.1 .1.total_cmp(&b.1 .1))
                        .then(a.0.cmp(b.0))
                })
                .map(|(zone, _)| zone.clone())
                .expect("a zone")
        } else {
            None
        };
        let entry = zones.entry(zone.clone()).or_default();
        entry.0 += 1;
        entry.1 += median.cores;
        group.hosts.push(HostInput {
            name: format!("{}+{index}", group.name),
            zone,
            first_seen_ms: start_ms,
            last_seen_ms: end_ms.saturating_sub(1),
            ..median.clone()
        });
    }
}

/// The what-if options of one `sizing` or `report` run: every `--growth`, `--target`, `--lose`,
/// `--lose-hosts` and `--add` is a scenario of its own, and every `--scenario` is one combined scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhatIfOptions {
    /// Each `--growth`.
    pub growth: Vec<f64>,
    /// Each `--target`.
    pub targets: Vec<(TargetKind, f64)>,
    /// Each `--lose zone=NAME`.
    pub lose_zones: Vec<String>,
    /// Each `--lose-hosts K`.
    pub lose_hosts: Vec<u32>,
    /// Each `--add group=G,hosts=N`.
    pub add: Vec<(String, u32)>,
    /// Each `--scenario`, already combined.
    pub combined: Vec<Scenario>,
}

impl WhatIfOptions {
    /// The scenarios in a fixed order: the single options in the order growth, target, lose, lose-hosts,
    /// add (each in the order given), then the combined ones.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let single = Scenario::default;
        let mut out: Vec<Scenario> = Vec::new();
        out.extend(self.growth.iter().map(|&growth| Scenario {
            growth: Some(growth),
            ..single()
        }));
        out.extend(self.targets.iter().map(|&target| Scenario {
            targets: vec![target],
            ..single()
        }));
        out.extend(self.lose_zones.iter().map(|zone| Scenario {
            lose_zone: Some(zone.clone()),
            ..single()
        }));
        out.extend(self.lose_hosts.iter().map(|&hosts| Scenario {
            lose_hosts: Some(hosts),
            ..single()
        }));
        out.extend(self.add.iter().map(|add| Scenario {
            add: vec![add.clone()],
            ..single()
        }));
        out.extend(self.combined.iter().cloned());
        out
    }
}

/// Sizes the baseline and each scenario; the report carries the scenarios beside the baseline.
pub fn size_with_scenarios(
    input: &SizingInput,
    config: &SizingConfig,
    scenarios: &[Scenario],
) -> SizingReport {
    let mut report = size_fleet(input, config);
    for scenario in scenarios.iter().filter(|scenario| !scenario.is_empty()) {
        let (input, config) = scenario.apply(input, config);
        let sized = size_fleet(&input, &config);
        report.scenarios.push(ScenarioReport {
            name: scenario.name(),
            groups: sized.groups,
            ranking: sized.ranking,
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::{GroupInput, GroupStatus, MinuteSum, Resource, DAY_MS, MINUTE_MS};

    const START_MS: u64 = 19_676 * DAY_MS;
    const GIB: f64 = (1u64 << 30) as f64;

    /// Zones a, b, c with two 8-core hosts each (48 cores), 24 busy cores every minute of a day.
    fn input() -> SizingInput {
        let hosts = ["a", "b", "c"]
            .iter()
            .flat_map(|zone| {
                (1..=2).map(move |i| HostInput {
                    name: format!("{zone}{i}"),
                    zone: Some(zone.to_string()),
                    cores: 8.0,
                    memory_bytes: 64.0 * GIB,
                    first_seen_ms: START_MS,
                    last_seen_ms: START_MS + DAY_MS - MINUTE_MS,
                    memory_used_peak_bytes: Some(16.0 * GIB),
                })
            })
            .collect();
        let minutes = (0..1440)
            .map(|m| MinuteSum {
                minute_start_ms: START_MS + m * MINUTE_MS,
                cpu_busy_cores: 24.0,
                memory_used_bytes: 96.0 * GIB,
                established_by_port: Vec::new(),
                hosts_reporting: 6,
            })
            .collect();
        SizingInput {
            window_start_ms: START_MS,
            window_end_ms: START_MS + DAY_MS,
            groups: vec![GroupInput {
                name: "web".into(),
                hosts,
                minutes,
            }],
        }
    }

    fn cpu_after_worst(report: &GroupReport) -> f64 {
        let cpu = report
            .resources
            .iter()
            .find(|r| r.resource == Resource::Cpu)
            .unwrap();
        cpu.worst.utilisation.unwrap()
    }

    fn run(scenario: Scenario) -> GroupReport {
        let report = size_with_scenarios(&input(), &SizingConfig::default(), &[scenario]);
        // Baseline: losing a zone leaves 32 cores, 24/32 = 75 %.
        assert!((cpu_after_worst(&report.groups[0]) - 0.75).abs() < 1e-9);
        assert_eq!(report.scenarios.len(), 1);
        report.scenarios[0].groups[0].clone()
    }

    #[test]
    fn options_parse_with_their_errors() {
        assert_eq!(Scenario::parse_growth("20%"), Ok(0.2));
        assert_eq!(Scenario::parse_growth("-10%"), Ok(-0.1));
        assert!(Scenario::parse_growth("lots")
            .unwrap_err()
            .contains("--growth \"lots\""));
        assert_eq!(Scenario::parse_target("cpu=70%"), Ok((TargetKind::Cpu, 0.7)));
        assert!(Scenario::parse_target("disk=70%")
            .unwrap_err()
            .contains("unknown resource \"disk\""));
        assert!(Scenario::parse_target("cpu=170%")
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(Scenario::parse_lose("zone=eu-1a"), Ok("eu-1a".to_string()));
        assert!(Scenario::parse_lose("rack=r1").is_err());
        assert_eq!(
            Scenario::parse_add("group=web,hosts=3"),
            Ok(("web".to_string(), 3))
        );
        assert!(Scenario::parse_add("group=web").is_err());
        assert!(Scenario::parse_add("group=web,hosts=3,size=big").is_err());
    }

    #[test]
    fn growth_makes_the_group_unsafe_and_says_where_to_add() {
        // +20 %: 28.8 cores; losing a zone leaves 32: 90 % > 80 %. One host in any zone makes that zone
        // the largest (24 of 56): 28.8/32 = 90 % still; a second in another zone: losing a 24-core zone
        // leaves 40, 72 %; losing the 16-core zone leaves 48, 60 %. Two hosts, +1 in a and +1 in b.
        let group = run(Scenario {
            growth: Some(0.2),
            ..Scenario::default()
        });
        assert!((cpu_after_worst(&group) - 0.9).abs() < 1e-9);
        assert_eq!(group.status, GroupStatus::Unsafe);
        assert_eq!(group.hosts_to_add, Some(2));
        assert_eq!(crate::sizing::report::placement_text(&group), "+1 in a, +1 in b");
    }

    #[test]
    fn targets_losses_and_added_hosts() {
        // cpu=70 %: 75 % after a zone loss is now over.
        let group = run(Scenario {
            targets: vec![(TargetKind::Cpu, 0.7)],
            ..Scenario::default()
        });
        assert_eq!(group.status, GroupStatus::Unsafe);
        // Lose zone b only (no host loss): 24/32 = 75 %, and the case is zone b.
        let group = run(Scenario {
            lose_zone: Some("b".into()),
            ..Scenario::default()
        });
        assert_eq!(group.worst_case.as_ref().unwrap().name, "b");
        assert_eq!(group.resources[0].domain_losses.len(), 1);
        // Lose 2 hosts only: 24/(48 - 16) = 75 %, and no zone case.
        let group = run(Scenario {
            lose_hosts: Some(2),
            ..Scenario::default()
        });
        assert!(group.resources[0].domain_losses.is_empty());
        assert!((cpu_after_worst(&group) - 0.75).abs() < 1e-9);
        assert_eq!(group.k, 2);
        // Three hosts added, one per zone: 72 cores, losing a zone leaves 48: 24/48 = 50 %.
        let group = run(Scenario {
            add: vec![("web".into(), 3)],
            ..Scenario::default()
        });
        assert_eq!(group.hosts, 9);
        assert!((cpu_after_worst(&group) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn combined_options_are_one_row_beside_the_baseline_in_every_format() {
        // +20 % and 2 hosts: added to a (all zones tie, first by name), then b (fewest hosts): zones of 24,
        // 24 and 16 cores; losing a 24-core zone leaves 40: 28.8/40 = 72 %: safe.
        let scenario = Scenario {
            growth: Some(0.2),
            add: vec![("web".into(), 2)],
            ..Scenario::default()
        };
        assert_eq!(scenario.name(), "growth +20 %, add 2 to web");
        let report = size_with_scenarios(&input(), &SizingConfig::default(), &[scenario]);
        let group = &report.scenarios[0].groups[0];
        assert!((cpu_after_worst(group) - 0.72).abs() < 1e-9);
        assert_eq!(group.status, GroupStatus::Safe);
        let zones: Vec<(String, u32)> = group.domains.iter().map(|d| (d.name.clone(), d.hosts)).collect();
        assert_eq!(zones, vec![("a".into(), 3), ("b".into(), 3), ("c".into(), 2)]);
        use crate::sizing::{render, ReportFormat};
        let csv = render(&report, ReportFormat::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("scenario,group,"));
        assert!(lines[1].starts_with("baseline,web,safe"), "{csv}");
        assert!(
            lines[2].starts_with("\"growth +20 %, add 2 to web\",web,safe"),
            "{csv}"
        );
        let md = render(&report, ReportFormat::Markdown);
        assert!(md.contains("| web | baseline | safe |"), "{md}");
        assert!(md.contains("| web | growth +20 %, add 2 to web | safe |"), "{md}");
        let html = render(&report, ReportFormat::Html);
        assert!(html.contains("<td>growth +20 %, add 2 to web</td>"));
        let json: serde_json::Value = serde_json::from_str(&render(&report, ReportFormat::Json)).unwrap();
        assert_eq!(json["scenarios"][0]["name"], "growth +20 %, add 2 to web");
        assert_eq!(json["scenarios"][0]["groups"][0]["hosts"], 8);
    }

    /// Three what-ifs on the command line: two single options and one combined, sized as three rows.
    pub(crate) fn three_scenarios() -> Vec<Scenario> {
        WhatIfOptions {
            growth: vec![0.2],
            lose_hosts: vec![2],
            combined: vec![Scenario::parse_combined("growth=20%,add=group=web,hosts=2").unwrap()],
            ..WhatIfOptions::default()
        }
        .scenarios()
    }

    #[test]
    fn a_combined_scenario_parses_with_its_errors() {
        let scenario = Scenario::parse_combined(
            "growth=20%, target=cpu=70%; lose=zone=b,lose-hosts=2,add=group=web,hosts=3,add=group=db,hosts=1",
        )
        .unwrap();
        assert_eq!(
            scenario,
            Scenario {
                growth: Some(0.2),
                targets: vec![(TargetKind::Cpu, 0.7)],
                lose_zone: Some("b".into()),
                lose_hosts: Some(2),
                add: vec![("web".into(), 3), ("db".into(), 1)],
            }
        );
        assert!(Scenario::parse_combined("growth=20%,growth=30%")
            .unwrap_err()
            .contains("growth given twice"));
        assert!(Scenario::parse_combined("grow=20%")
            .unwrap_err()
            .contains("\"grow=20%\" is not OPTION=VALUE"));
        assert!(Scenario::parse_combined("lose-hosts=two")
            .unwrap_err()
            .contains("lose-hosts=\"two\""));
        assert!(Scenario::parse_combined(" , ")
            .unwrap_err()
            .contains("changes nothing"));
        assert!(Scenario::parse_combined("add=group=web").is_err());
    }

    #[test]
    fn issue_10_each_what_if_is_a_row_of_its_own_in_every_format() {
        let scenarios = three_scenarios();
        let names: Vec<String> = scenarios.iter().map(Scenario::name).collect();
        assert_eq!(
            names,
            ["growth +20 %", "lose 2 hosts", "growth +20 %, add 2 to web"]
        );
        let report = size_with_scenarios(&input(), &SizingConfig::default(), &scenarios);
        assert_eq!(report.scenarios.len(), 3);
        // growth alone: 28.8/32 = 90 % after a zone loss, unsafe; 2 hosts lost (no zone case): 24/32 = 75 %;
        // growth with 2 hosts added: 72 %, safe.
        let worst: Vec<f64> = report
            .scenarios
            .iter()
            .map(|s| cpu_after_worst(&s.groups[0]))
            .collect();
        for (got, want) in worst.iter().zip([0.9, 0.75, 0.72]) {
            assert!((got - want).abs() < 1e-9, "{worst:?}");
        }
        use crate::sizing::{render, ReportFormat};
        let csv = render(&report, ReportFormat::Csv);
        let first_cells: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|line| {
                line.rsplit_once(",web,")
                    .map(|(s, _)| s.to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            first_cells,
            [
                "baseline",
                "growth +20 %",
                "lose 2 hosts",
                "\"growth +20 %, add 2 to web\""
            ],
            "{csv}"
        );
        assert!(
            csv.lines()
                .nth(2)
                .unwrap()
                .starts_with("growth +20 %,web,unsafe,"),
            "{csv}"
        );
        let md = render(&report, ReportFormat::Markdown);
        for row in [
            "| web | baseline | safe |",
            "| web | growth +20 % | unsafe |",
            "| web | lose 2 hosts | safe |",
            "| web | growth +20 %, add 2 to web | safe |",
        ] {
            assert!(md.contains(row), "{row} in {md}");
        }
        let html = render(&report, ReportFormat::Html);
        for name in [
            "baseline",
            "growth +20 %",
            "lose 2 hosts",
            "growth +20 %, add 2 to web",
        ] {
            assert!(html.contains(&format!("<td>{name}</td>")), "{name}");
        }
        let json: serde_json::Value = serde_json::from_str(&render(&report, ReportFormat::Json)).unwrap();
        let json_names: Vec<&str> = json["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(json_names, names);
        assert_eq!(json["scenarios"][0]["groups"][0]["status"], "unsafe");
        assert_eq!(json["scenarios"][1]["groups"][0]["k"], 2);
        assert_eq!(json["scenarios"][2]["groups"][0]["hosts"], 8);
    }
}
