//! The `[sizing]` section of the collector configuration: labels, the peak percentile, the window, the
//! forecast horizon, and per-group targets, N+k, MaxConnections per port and Little's law inputs. Parsed into
//! a raw form (every key optional, unknown keys rejected) and validated without IO.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use headroom_common::config::{duration_in, invalid, ConfigError};

/// Every key the section accepts, for "did you mean" hints on a misplaced key.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "sizing",
        &[
            "connections_target_percent",
            "cpu_target_percent",
            "group_label",
            "groups",
            "horizon",
            "k",
            "max_connections",
            "memory_target_percent",
            "peak",
            "percentile",
            "trend_window",
            "window",
            "zone_label",
        ],
    ),
    (
        "sizing.groups.NAME",
        &[
            "balance",
            "connections_target_percent",
            "cpu_target_percent",
            "k",
            "latency_ms",
            "little_port",
            "max_connections",
            "memory",
            "memory_per_load",
            "memory_target_percent",
            "request_rate_per_s",
            "staffing_beta",
        ],
    ),
];

const WINDOW_MIN: Duration = Duration::from_secs(3_600);
const WINDOW_MAX: Duration = Duration::from_secs(400 * 86_400);
const HORIZON_MIN: Duration = Duration::from_secs(86_400);
const HORIZON_MAX: Duration = Duration::from_secs(3_650 * 86_400);
const K_MAX: u32 = 100;
const TREND_WINDOW_MIN: Duration = Duration::from_secs(7 * 86_400);

/// The square-root staffing margin applied to Little's law unless a group sets `staffing_beta`.
pub const DEFAULT_STAFFING_BETA: f64 = 1.0;

/// Validated sizing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SizingConfig {
    /// Label whose value names a host's service group.
    pub group_label: String,
    /// Label whose value names a host's failure domain.
    pub zone_label: String,
    /// Percentile of per-minute group sums that defines the peak, in (0, 100]; 100 is the maximum.
    pub percentile: f64,
    /// How far back the forecast's trend looks (capped by the window).
    pub trend_window: Duration,
    /// Default window a report covers.
    pub window: Duration,
    /// How far ahead the forecast looks.
    pub horizon: Duration,
    /// Settings for groups without their own entry.
    pub defaults: GroupSizing,
    /// Per-group settings, already merged over `defaults`.
    pub groups: BTreeMap<String, GroupSizing>,
}

/// Settings for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSizing {
    /// Highest acceptable utilisation per resource.
    pub targets: Targets,
    /// Hosts lost at once in the N+k case.
    pub k: u32,
    /// MaxConnections per service port, per host.
    pub max_connections: BTreeMap<u16, u32>,
    /// When set, Little's law sets the connection load of its port.
    pub little: Option<LittleLaw>,
    /// Whether memory is sized host by host or moves to the survivors.
    pub memory: MemoryMode,
    /// With per-host memory: the fraction of a host's used memory that grows with the load it carries.
    pub memory_per_load: f64,
    /// How the group's balancer spreads load across hosts of different sizes.
    pub balance: Balance,
    /// Which zone losses are sized: every zone (the configuration), or one named by a what-if scenario.
    pub zone_losses: ZoneLosses,
}

/// The zone losses a sizing considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneLosses {
    /// Every failure domain in turn (the configured model).
    All,
    /// Only this zone (a what-if `--lose zone=NAME`).
    Only(String),
    /// None: only the host loss (a what-if `--lose-hosts K` alone).
    None,
}

/// How a group's memory behaves when hosts are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    /// Each host keeps its own memory (a database buffer pool, a JVM heap): every survivor must stay under
    /// the target with its own use, plus the share that grows with the load it takes over.
    PerHost,
    /// Memory moves to the survivors with the load (a cache tier whose keys re-hash).
    Shared,
}

/// How a group's balancer spreads load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Load proportional to each host's capacity (weighted balancing).
    Capacity,
    /// An equal share per host (round-robin, least-connections), so the smallest host fills first.
    Equal,
}

/// The text of a peak percentile as the config and the report spell it: `p99.9`, `p99`, `max`.
pub fn peak_label(percentile: f64) -> String {
    if percentile >= 100.0 {
        "max".to_string()
    } else {
        format!("p{percentile}")
    }
}

/// Parses `p99.9`, `p99`, `p50`, `max` into a percentile (100 for `max`).
pub fn parse_peak(text: &str) -> Option<f64> {
    if text == "max" {
        return Some(100.0);
    }
    let value: f64 = text.strip_prefix('p')?.parse().ok()?;
    (value > 0.0 && value < 100.0).then_some(value)
}

/// Targets as fractions (0.8 is 80 %).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// CPU utilisation.
    pub cpu: f64,
    /// Memory utilisation.
    pub memory: f64,
    /// Connections as a fraction of MaxConnections.
    pub connections: f64,
}

/// Concurrency = arrival rate × latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LittleLaw {
    /// Peak request arrival rate for the group.
    pub request_rate_per_s: f64,
    /// Mean time a request holds its connection.
    pub latency_ms: f64,
    /// The service port the requests arrive on.
    pub port: u16,
    /// Square-root staffing margin: `c = L + beta * sqrt(L)`.
    pub beta: f64,
}

impl LittleLaw {
    /// Mean concurrent requests, hence connections, at the configured rate: `L = rate × latency`.
    pub fn concurrency(&self) -> f64 {
        self.request_rate_per_s * self.latency_ms / 1000.0
    }

    /// Connections to provision: `L + beta × sqrt(L)`, so queueing bursts around the mean fit.
    pub fn with_margin(&self) -> f64 {
        let mean = self.concurrency();
        mean + self.beta * mean.sqrt()
    }
}

impl Default for GroupSizing {
    fn default() -> GroupSizing {
        GroupSizing {
            targets: Targets {
                cpu: 0.80,
                memory: 0.90,
                connections: 1.0,
            },
            k: 1,
            max_connections: BTreeMap::new(),
            little: None,
            memory: MemoryMode::PerHost,
            memory_per_load: 0.0,
            balance: Balance::Capacity,
            zone_losses: ZoneLosses::All,
        }
    }
}

impl Default for SizingConfig {
    fn default() -> SizingConfig {
        SizingConfig {
            group_label: "group".to_string(),
            zone_label: "zone".to_string(),
            percentile: 99.9,
            trend_window: Duration::from_secs(28 * 86_400),
            window: Duration::from_secs(14 * 86_400),
            horizon: Duration::from_secs(90 * 86_400),
            defaults: GroupSizing::default(),
            groups: BTreeMap::new(),
        }
    }
}

impl SizingConfig {
    /// The settings that apply to `group`.
    pub fn for_group(&self, group: &str) -> &GroupSizing {
        self.groups.get(group).unwrap_or(&self.defaults)
    }
}

/// The `[sizing]` table as written. Embed it as `sizing: RawSizing` (with `#[serde(default)]`) in the
/// collector's raw configuration and call [`RawSizing::validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSizing {
    /// Label naming the service group. Default "group".
    group_label: Option<String>,
    /// Label naming the failure domain. Default "zone".
    zone_label: Option<String>,
    /// Statistic of per-minute group sums that is the peak: "p99.9", "p99" or "max". Default "p99.9".
    peak: Option<String>,
    /// Older spelling of `peak` as a number (99 is "p99", 100 is "max").
    percentile: Option<f64>,
    /// How far back the forecast's trend looks, like "28d"; at least 7d. Default 28d, capped by the window.
    trend_window: Option<String>,
    /// Window of a report, like "14d"; 1h to 400d. Default 14d.
    window: Option<String>,
    /// Forecast horizon, like "90d"; 1d to 3650d. Default 90d.
    horizon: Option<String>,
    /// Default CPU target for every group, percent. Default 80.
    cpu_target_percent: Option<f64>,
    /// Default memory target for every group, percent. Default 90.
    memory_target_percent: Option<f64>,
    /// Default connections target for every group, percent of MaxConnections. Default 100.
    connections_target_percent: Option<f64>,
    /// Default N+k for every group. Default 1.
    k: Option<u32>,
    /// Default MaxConnections per port for every group.
    max_connections: Option<BTreeMap<String, u32>>,
    /// Overrides by group name.
    #[serde(default)]
    groups: BTreeMap<String, RawGroup>,
}

/// Per-group keys; anything left out comes from the `[sizing]` level, then from the built-in defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    /// Highest CPU utilisation in any loss case, percent; 1 to 100. Default 80.
    cpu_target_percent: Option<f64>,
    /// Highest memory utilisation in any loss case, percent; 1 to 100. Default 90.
    memory_target_percent: Option<f64>,
    /// Highest connections as a percentage of MaxConnections; 1 to 100. Default 100.
    connections_target_percent: Option<f64>,
    /// Hosts lost at once in the N+k case; 0 to 100. Default 1.
    k: Option<u32>,
    /// MaxConnections per host, by service port: `{ "443" = 10000 }`.
    max_connections: Option<BTreeMap<String, u32>>,
    /// Peak request arrival rate; with `latency_ms`, Little's law sets the connection load.
    request_rate_per_s: Option<f64>,
    /// Mean time a request holds its connection, in milliseconds.
    latency_ms: Option<f64>,
    /// Port those requests use; needed when `max_connections` names more than one port.
    little_port: Option<u16>,
    /// Square-root staffing margin for Little's law: c = L + beta × sqrt(L). Default 1.
    staffing_beta: Option<f64>,
    /// "per_host" (default: each host keeps its memory) or "shared" (memory moves with the load).
    memory: Option<String>,
    /// With per-host memory, the fraction of used memory that grows with load, 0 to 1. Default 0.
    memory_per_load: Option<f64>,
    /// "capacity" (default: load proportional to cores) or "equal" (the same share per host).
    balance: Option<String>,
}

/// The document shape [`parse_section`] reads: only `[sizing]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizingDocument {
    #[serde(default)]
    sizing: RawSizing,
}

/// Parses a TOML document holding a `[sizing]` section (other sections are rejected); `origin` names the file.
pub fn parse_section(text: &str, origin: &str) -> Result<SizingConfig, ConfigError> {
    let document: SizingDocument = toml::from_str(text)
        .map_err(|error| ConfigError::from_toml(origin, text, error.message(), error.span(), SECTIONS))?;
    document.sizing.validate(origin)
}

impl RawSizing {
    /// Checks ranges and merges group overrides over the section-level defaults.
    pub fn validate(self, origin: &str) -> Result<SizingConfig, ConfigError> {
        let builtin = SizingConfig::default();
        let percentile = match (&self.peak, self.percentile) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    origin,
                    "sizing.percentile",
                    "is set together with sizing.peak (keep only peak, like peak = \"p99.9\")",
                ))
            }
            (Some(text), None) => parse_peak(text).ok_or_else(|| {
                invalid(
                    origin,
                    "sizing.peak",
                    &format!("\"{text}\" is not a peak statistic (use \"p99.9\", \"p99\" or \"max\")"),
                )
            })?,
            (None, Some(value)) => value,
            (None, None) => builtin.percentile,
        };
        if !(percentile > 0.0 && percentile <= 100.0) {
            return Err(invalid(
                origin,
                "sizing.percentile",
                &format!("{percentile} is out of range (use a number above 0 and at most 100, like 99)"),
            ));
        }
        let trend_window = match self.trend_window {
            None => builtin.trend_window,
            Some(text) => duration_in(
                origin,
                "sizing.trend_window",
                &text,
                TREND_WINDOW_MIN..=WINDOW_MAX,
            )?,
        };
        let window = match self.window {
            None => builtin.window,
            Some(text) => duration_in(origin, "sizing.window", &text, WINDOW_MIN..=WINDOW_MAX)?,
        };
        let horizon = match self.horizon {
            None => builtin.horizon,
            Some(text) => duration_in(origin, "sizing.horizon", &text, HORIZON_MIN..=HORIZON_MAX)?,
        };
        let label = |key: &str, value: Option<String>, default: String| -> Result<String, ConfigError> {
            match value {
                None => Ok(default),
                Some(value) if value.trim().is_empty() => Err(invalid(
                    origin,
                    key,
                    "is empty (name a host label, like \"group\" or \"zone\")",
                )),
                Some(value) => Ok(value),
            }
        };
        let group_label = label("sizing.group_label", self.group_label, builtin.group_label)?;
        let zone_label = label("sizing.zone_label", self.zone_label, builtin.zone_label)?;
        // Serde cannot flatten into a struct that denies unknown keys, so the shared keys are copied here.
        let section = RawGroup {
            cpu_target_percent: self.cpu_target_percent,
            memory_target_percent: self.memory_target_percent,
            connections_target_percent: self.connections_target_percent,
            k: self.k,
            max_connections: self.max_connections,
            request_rate_per_s: None,
            latency_ms: None,
            little_port: None,
            staffing_beta: None,
            memory: None,
            memory_per_load: None,
            balance: None,
        };
        let defaults = section
            .clone()
            .resolve(origin, "sizing", &GroupSizing::default())?;
        let mut groups = BTreeMap::new();
        for (name, raw) in self.groups {
            let merged = raw.over(&section);
            let settings =
                merged.resolve(origin, &format!("sizing.groups.{name}"), &GroupSizing::default())?;
            groups.insert(name, settings);
        }
        Ok(SizingConfig {
            group_label,
            zone_label,
            percentile,
            trend_window,
            window,
            horizon,
            defaults,
            groups,
        })
    }
}

impl RawGroup {
    /// This group's keys, falling back to the section-level ones.
    fn over(self, section: &RawGroup) -> RawGroup {
        let section = section.clone();
        RawGroup {
            cpu_target_percent: self.cpu_target_percent.or(section.cpu_target_percent),
            memory_target_percent: self.memory_target_percent.or(section.memory_target_percent),
            connections_target_percent: self
                .connections_target_percent
                .or(section.connections_target_percent),
            k: self.k.or(section.k),
            max_connections: self.max_connections.or(section.max_connections),
            // Traffic figures describe one group; they are never inherited from the section level.
            request_rate_per_s: self.request_rate_per_s,
            latency_ms: self.latency_ms,
            little_port: self.little_port,
            staffing_beta: self.staffing_beta,
            // How a group's memory and balancer behave is a fact about that group, never inherited.
            memory: self.memory,
            memory_per_load: self.memory_per_load,
            balance: self.balance,
        }
    }

    fn resolve(self, origin: &str, prefix: &str, builtin: &GroupSizing) -> Result<GroupSizing, ConfigError> {
        let percent = |key: &str, value: Option<f64>, default: f64| -> Result<f64, ConfigError> {
            match value {
                None => Ok(default),
                Some(value) if (1.0..=100.0).contains(&value) => Ok(value / 100.0),
                Some(value) => Err(invalid(
                    origin,
                    &format!("{prefix}.{key}"),
                    &format!("{value} is out of range (use a percentage from 1 to 100)"),
                )),
            }
        };
        let targets = Targets {
            cpu: percent("cpu_target_percent", self.cpu_target_percent, builtin.targets.cpu)?,
            memory: percent(
                "memory_target_percent",
                self.memory_target_percent,
                builtin.targets.memory,
            )?,
            connections: percent(
                "connections_target_percent",
                self.connections_target_percent,
                builtin.targets.connections,
            )?,
        };
        let k = self.k.unwrap_or(builtin.k);
        if k > K_MAX {
            return Err(invalid(
                origin,
                &format!("{prefix}.k"),
                &format!("{k} is out of range (use 0 to {K_MAX} hosts)"),
            ));
        }
        let mut max_connections = BTreeMap::new();
        for (port_text, limit) in self.max_connections.unwrap_or_default() {
            let key = format!("{prefix}.max_connections.{port_text}");
            let port: u16 = match port_text.parse() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(invalid(
                        origin,
                        &key,
                        &format!("\"{port_text}\" is not a port number (use 1 to 65535, like \"443\")"),
                    ))
                }
            };
            if limit == 0 {
                return Err(invalid(
                    origin,
                    &key,
                    "0 is out of range (use the MaxConnections of one host, at least 1)",
                ));
            }
            max_connections.insert(port, limit);
        }
        let little = match (self.request_rate_per_s, self.latency_ms) {
            (None, None) => None,
            (Some(rate), Some(latency)) => {
                if !(rate >= 0.0 && rate.is_finite() && latency > 0.0 && latency.is_finite()) {
                    return Err(invalid(
                        origin,
                        &format!("{prefix}.request_rate_per_s"),
                        &format!(
                            "rate {rate}/s with latency {latency} ms is not usable (use a rate of 0 or more \
                             and a latency above 0)"
                        ),
                    ));
                }
                let port =
                    match (self.little_port, max_connections.len()) {
                        (Some(port), _) if max_connections.contains_key(&port) => port,
                        (Some(port), _) => {
                            return Err(invalid(
                                origin,
                                &format!("{prefix}.little_port"),
                                &format!("port {port} has no max_connections entry (add one for it)"),
                            ))
                        }
                        (None, 1) => *max_connections.keys().next().expect("one entry"),
                        (None, _) => return Err(invalid(
                            origin,
                            &format!("{prefix}.little_port"),
                            "is missing (Little's law needs the port the requests use: set little_port to \
                             one of the max_connections ports)",
                        )),
                    };
                let beta = self.staffing_beta.unwrap_or(DEFAULT_STAFFING_BETA);
                if !(0.0..=10.0).contains(&beta) {
                    return Err(invalid(
                        origin,
                        &format!("{prefix}.staffing_beta"),
                        &format!("{beta} is out of range (use 0 to 10; 1 is a common margin)"),
                    ));
                }
                Some(LittleLaw {
                    request_rate_per_s: rate,
                    latency_ms: latency,
                    port,
                    beta,
                })
            }
            _ => {
                return Err(invalid(
                    origin,
                    &format!("{prefix}.request_rate_per_s"),
                    "needs both request_rate_per_s and latency_ms (set both, or neither)",
                ))
            }
        };
        let memory = match self.memory.as_deref() {
            None | Some("per_host") => MemoryMode::PerHost,
            Some("shared") => MemoryMode::Shared,
            Some(other) => {
                return Err(invalid(
                    origin,
                    &format!("{prefix}.memory"),
                    &format!("\"{other}\" is not a memory mode (use \"per_host\" or \"shared\")"),
                ))
            }
        };
        let memory_per_load = self.memory_per_load.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&memory_per_load) {
            return Err(invalid(
                origin,
                &format!("{prefix}.memory_per_load"),
                &format!("{memory_per_load} is out of range (use a fraction from 0 to 1, like 0.2)"),
            ));
        }
        let balance = match self.balance.as_deref() {
            None | Some("capacity") => Balance::Capacity,
            Some("equal") => Balance::Equal,
            Some(other) => {
                return Err(invalid(
                    origin,
                    &format!("{prefix}.balance"),
                    &format!("\"{other}\" is not a balance (use \"capacity\" or \"equal\")"),
                ))
            }
        };
        Ok(GroupSizing {
            targets,
            k,
            max_connections,
            little,
            memory,
            memory_per_load,
            balance,
            zone_losses: ZoneLosses::All,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/headroom/collector.toml";

    #[test]
    fn empty_section_gives_the_defaults() {
        assert_eq!(parse_section("", ORIGIN).unwrap(), SizingConfig::default());
        assert_eq!(
            parse_section("[sizing]\n", ORIGIN).unwrap(),
            SizingConfig::default()
        );
    }

    #[test]
    fn groups_inherit_the_section_and_override_it() {
        let text = r#"
[sizing]
percentile = 95
window = "30d"
horizon = "60d"
cpu_target_percent = 70
max_connections = { "443" = 10000 }

[sizing.groups.web]
k = 2
memory_target_percent = 85
request_rate_per_s = 2000
latency_ms = 150

[sizing.groups.db]
max_connections = { "5432" = 500, "6432" = 2000 }
"#;
        let config = parse_section(text, ORIGIN).unwrap();
        assert_eq!(config.percentile, 95.0);
        assert_eq!(config.window, Duration::from_secs(30 * 86_400));
        assert_eq!(config.horizon, Duration::from_secs(60 * 86_400));
        assert_eq!(config.defaults.targets.cpu, 0.70);
        let web = config.for_group("web");
        assert_eq!(web.k, 2);
        assert_eq!(web.targets.cpu, 0.70);
        assert_eq!(web.targets.memory, 0.85);
        assert_eq!(web.max_connections, BTreeMap::from([(443, 10_000)]));
        let little = web.little.unwrap();
        assert_eq!(little.port, 443);
        // 2000 requests/s × 0.150 s = 300 concurrent connections.
        assert_eq!(little.concurrency(), 300.0);
        let db = config.for_group("db");
        assert_eq!(db.k, 1);
        assert_eq!(db.max_connections.len(), 2);
        assert_eq!(db.little, None);
        assert_eq!(config.for_group("other"), &config.defaults);
    }

    #[test]
    fn peak_memory_balance_and_trend_window_are_read() {
        let text = r#"
[sizing]
peak = "max"
trend_window = "21d"

[sizing.groups.db]
memory_per_load = 0.2

[sizing.groups.cache]
memory = "shared"

[sizing.groups.web]
balance = "equal"
max_connections = { "443" = 1000 }
request_rate_per_s = 100
latency_ms = 1000
staffing_beta = 2
"#;
        let config = parse_section(text, ORIGIN).unwrap();
        assert_eq!(config.percentile, 100.0);
        assert_eq!(config.trend_window, Duration::from_secs(21 * 86_400));
        let db = config.for_group("db");
        assert_eq!((db.memory, db.memory_per_load), (MemoryMode::PerHost, 0.2));
        assert_eq!(config.for_group("cache").memory, MemoryMode::Shared);
        let web = config.for_group("web");
        assert_eq!(web.balance, Balance::Equal);
        // L = 100 × 1 s = 100; 100 + 2 × √100 = 120.
        assert_eq!(web.little.unwrap().with_margin(), 120.0);
        assert_eq!(config.defaults.memory, MemoryMode::PerHost);
        assert_eq!(config.defaults.balance, Balance::Capacity);
        assert_eq!(
            parse_section("[sizing]\npeak = \"p99\"\n", ORIGIN)
                .unwrap()
                .percentile,
            99.0
        );
        assert_eq!(parse_section("", ORIGIN).unwrap().percentile, 99.9);
    }

    #[test]
    fn mistakes_are_named_with_their_fix() {
        let error = |text: &str| parse_section(text, ORIGIN).unwrap_err().to_string();
        assert_eq!(
            error("[sizing]\ncpu_target_percnt = 70\n"),
            "config /etc/headroom/collector.toml: line 2: unknown key \"cpu_target_percnt\" \
             (did you mean \"cpu_target_percent\"?)"
        );
        assert_eq!(
            error("[sizing]\ncpu_target_percent = 0.8\n"),
            "config /etc/headroom/collector.toml: sizing.cpu_target_percent: 0.8 is out of range \
             (use a percentage from 1 to 100)"
        );
        assert!(error("[sizing.groups.web]\nmax_connections = { https = 5 }\n")
            .contains("sizing.groups.web.max_connections.https: \"https\" is not a port number"));
        assert!(error("[sizing.groups.web]\nrequest_rate_per_s = 5\n")
            .contains("needs both request_rate_per_s and latency_ms"));
        assert!(error(
            "[sizing.groups.web]\nrequest_rate_per_s = 5\nlatency_ms = 3\nmax_connections = { \"80\" = 1, \"443\" = 2 }\n"
        )
        .contains("sizing.groups.web.little_port: is missing"));
        assert!(error("[sizing]\npercentile = 0\n").contains("sizing.percentile: 0 is out of range"));
        assert!(error("[sizing]\nwindow = \"5m\"\n").contains("sizing.window: \"5m\" is too short"));
        assert!(error("[sizing]\nk = 1000\n").contains("sizing.k: 1000 is out of range"));
        assert!(
            error("[sizing]\npeak = \"p100\"\n").contains("sizing.peak: \"p100\" is not a peak statistic")
        );
        assert!(
            error("[sizing]\npeak = \"max\"\npercentile = 99\n").contains("is set together with sizing.peak")
        );
        assert!(error("[sizing.groups.db]\nmemory = \"moving\"\n")
            .contains("sizing.groups.db.memory: \"moving\" is not a memory mode"));
        assert!(error("[sizing.groups.db]\nmemory_per_load = 2\n")
            .contains("sizing.groups.db.memory_per_load: 2 is out of range"));
        assert!(error("[sizing.groups.web]\nbalance = \"random\"\n")
            .contains("sizing.groups.web.balance: \"random\" is not a balance"));
        assert!(error("[sizing]\ntrend_window = \"2d\"\n").contains("sizing.trend_window"));
    }
}
