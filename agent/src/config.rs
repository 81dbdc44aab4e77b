//! Agent configuration: the TOML file (by default /etc/headroom/agent.toml) read into a raw form and validated,
//! without IO, into a typed [`Config`]. The error type and checks shared with the collector live in `headroom_common::config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sampler::network::glob_matches;

mod effective;

pub use headroom_common::config::{
    absolute_path, check_section_table, duration_in, edit_distance, human_duration, invalid, line_of,
    nearest_key, read_config_file, ConfigError, KeyHint, RawTls, TlsPaths,
};

/// Where `headroom-agent run` and `check-config` look when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/headroom/agent.toml";
/// The state directory systemd creates for the agent (`StateDirectory=headroom-agent`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/headroom-agent";

const INTERVAL_MIN: Duration = Duration::from_millis(100);
const INTERVAL_MAX: Duration = Duration::from_secs(60);
const FULL_DUMP_INTERVAL_MIN: Duration = Duration::from_secs(1);
const FULL_DUMP_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Labels travel with every hello and are indexed by the collector, so their number and size stay small.
const MAX_LABELS: usize = 32;
const MAX_LABEL_CHARS: usize = 128;
/// Interface names are at most 15 bytes on Linux; a longer pattern is allowed for globs but bounded.
const MAX_INTERFACE_PATTERN_CHARS: usize = 64;

/// Every key the file accepts, by section ("" is the top level). Used to tell a user that a key exists but sits
/// in the wrong section; a test checks it against what serde accepts.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "collector",
            "labels",
            "network",
            "sampling",
            "spool",
            "state_dir",
            "tls",
        ],
    ),
    ("collector", &["address", "addresses", "server_name"]),
    ("tls", &["ca", "cert", "key"]),
    (
        "sampling",
        &[
            "full_dump_cpu",
            "full_dump_cpu_ceiling",
            "full_dump_interval",
            "full_dump_max_sockets",
            "interval",
            "netlink",
            "proc_root",
        ],
    ),
    ("network", &["exclude", "include"]),
    ("spool", &["max_size", "memory_max_samples"]),
];

/// Spool cap bounds: 64 KiB holds a few minutes (useful in tests); above 64 GiB an agent is no longer light.
const SPOOL_MIN_BYTES: u64 = 64 << 10;
const SPOOL_MAX_BYTES: u64 = 64 << 30;
/// Most samples held in memory while the spool cannot be written: a day at 1 Hz.
const MEMORY_MAX_SAMPLES_LIMIT: usize = 86_400;

/// The validated agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory for the spool, the instance id and the keys.
    pub state_dir: PathBuf,
    /// The collector to stream to; `None` when the file has no `[collector]` section (fine for `sample`).
    pub collector: Option<CollectorTarget>,
    /// Certificate files for mutual TLS.
    pub tls: TlsPaths,
    /// What to sample and how often.
    pub sampling: Sampling,
    /// Which network interfaces count.
    pub network: NetworkFilter,
    /// Most bytes the on-disk spool of unacknowledged samples may take.
    pub spool_max_bytes: u64,
    /// Most samples kept in memory while the spool cannot be written (a full disk); older ones are dropped and
    /// reported to the collector as a gap.
    pub spool_memory_max_samples: usize,
    /// Free-form labels (`group`, `zone`, ...) the collector groups hosts by.
    pub labels: BTreeMap<String, String>,
}

/// The collector's QUIC listener and the name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorTarget {
    /// `host:port` (IPv6 literals in brackets); the port is never 0. The first of `addresses`: where
    /// certificate renewal goes.
    pub address: String,
    /// Every collector this host may stream to (`address` alone, or `addresses`); all share the CA and the
    /// server name.
    pub addresses: Vec<String>,
    /// TLS server name to verify: a DNS name or an IP address, without brackets.
    pub server_name: String,
}

/// Sampling settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampling {
    /// Time between two samples, 100ms to 60s.
    pub interval: Duration,
    /// Root of the proc filesystem to read (tests point it at a fixture).
    pub proc_root: PathBuf,
    /// Whether to count sockets through netlink sock_diag rather than only /proc/net.
    pub netlink: bool,
    /// Above this many sockets the full per-state and per-port dump runs every `full_dump_interval` instead of
    /// every sample.
    pub full_dump_max_sockets: u32,
    /// Longest time between two full per-socket dumps, at least `interval`.
    pub full_dump_interval: Duration,
    /// Share of one core the full dumps may use, in parts per million; 0 runs one every sample.
    pub full_dump_cpu_ppm: u32,
    /// Above `full_dump_max_sockets`, the most of one core the full dumps may use, in parts per million; 0
    /// is no ceiling.
    pub full_dump_cpu_ceiling_ppm: u32,
}

/// Interface name filter: an interface counts when it matches an `include` pattern (or `include` is empty) and
/// matches no `exclude` pattern. Patterns are globs with `*` (any run of characters) and `?` (one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFilter {
    /// Patterns of interfaces to count; empty means all.
    pub include: Vec<String>,
    /// Patterns of interfaces never to count; wins over `include`.
    pub exclude: Vec<String>,
}

impl NetworkFilter {
    /// Whether the interface called `name` should be counted.
    pub fn admits(&self, name: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|p| glob_matches(p, name));
        included && !self.exclude.iter().any(|p| glob_matches(p, name))
    }
}

impl Default for Config {
    fn default() -> Config {
        let state_dir = PathBuf::from(DEFAULT_STATE_DIR);
        Config {
            tls: TlsPaths::in_dir(&state_dir, "agent"),
            state_dir,
            collector: None,
            sampling: Sampling {
                interval: Duration::from_secs(1),
                proc_root: PathBuf::from("/proc"),
                netlink: true,
                full_dump_max_sockets: 20_000,
                full_dump_interval: Duration::from_secs(30),
                full_dump_cpu_ppm: crate::sampler::DEFAULT_FULL_DUMP_CPU_PPM,
                full_dump_cpu_ceiling_ppm: crate::sampler::DEFAULT_FULL_DUMP_CPU_CEILING_PPM,
            },
            network: NetworkFilter {
                include: Vec::new(),
                exclude: ["lo", "veth*", "docker*", "br-*", "cni*", "flannel*"]
                    .map(String::from)
                    .to_vec(),
            },
            spool_max_bytes: 64 << 20,
            spool_memory_max_samples: crate::backlog::DEFAULT_MEMORY_MAX_SAMPLES,
            labels: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The collector target, or the error `run` reports when the file names none.
    pub fn require_collector(&self, origin: &str) -> Result<&CollectorTarget, ConfigError> {
        self.collector.as_ref().ok_or_else(|| ConfigError::Invalid {
            origin: origin.to_string(),
            key: "collector.address".to_string(),
            problem: "missing, and run needs it (add a [collector] section with address = \"host:port\")"
                .to_string(),
        })
    }
}

/// Reads and validates the agent configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_config_file(
        path,
        "install it with deploy/install-agent.sh or copy deploy/agent.toml there, or pass --config FILE",
    )?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates configuration text; `origin` names the file in error messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text)
        .map_err(|error| ConfigError::from_toml(origin, text, error.message(), error.span(), SECTIONS))?;
    raw.validate(origin)
}

/// The file as written: every value optional, so that defaults and validation live in one place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Directory for the spool, instance id and keys; absolute. Default /var/lib/headroom-agent.
    state_dir: Option<String>,
    /// The collector to stream to; absent means `run` refuses to start.
    collector: Option<RawCollector>,
    /// Certificate files; default to ca.pem, agent.pem and agent.key in `state_dir`.
    #[serde(default)]
    tls: RawTls,
    /// Sampling settings.
    #[serde(default)]
    sampling: RawSampling,
    /// Interface filter.
    #[serde(default)]
    network: RawNetwork,
    /// The on-disk spool.
    #[serde(default)]
    spool: RawSpool,
    /// Labels sent to the collector: keys `[a-z0-9_]+`, at most 32, each key and value at most 128 characters.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    /// `host:port` of the collector's QUIC listener; this or `addresses` is required when the section is present.
    address: Option<String>,
    /// Several collectors, like ["c1.example:9600", "c2.example:9600"]: each host streams to one chosen by
    /// rendezvous hashing on its name and fails over to the next. Instead of `address`.
    addresses: Option<Vec<String>>,
    /// TLS name to verify; defaults to the host part of `address`.
    server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSampling {
    /// Time between samples, like "1s" or "500ms"; 100ms to 60s. Default 1s.
    interval: Option<String>,
    /// Absolute path of the proc filesystem. Default /proc.
    proc_root: Option<String>,
    /// Use netlink sock_diag for socket counts. Default true.
    netlink: Option<bool>,
    /// Above this many sockets, full dumps run every `full_dump_interval` only. Default 20000.
    full_dump_max_sockets: Option<u32>,
    /// Longest time between full socket dumps; 1s to 1h and at least `interval`. Default 30s.
    full_dump_interval: Option<String>,
    /// Share of one core the full socket dumps may use, like "0.03%"; "0%" dumps every sample. Each dump's
    /// CPU time is measured and the next waits cost / share. Default 0.01%.
    full_dump_cpu: Option<String>,
    /// Above `full_dump_max_sockets`, the most of one core the full dumps may use, like "0.2%": a dump
    /// that costs more than this share of `full_dump_interval` waits cost / share instead. "0%" sets no
    /// ceiling. Default 0.2%.
    full_dump_cpu_ceiling: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    /// Cap of the spool, like "64MiB" or "512KiB"; 64KiB to 64GiB. Default 64MiB (about three days of samples
    /// at 1 Hz on a small host).
    max_size: Option<String>,
    /// Samples kept in memory while the spool cannot be written (a full disk), 0 to 86400. Default 600.
    memory_max_samples: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    /// Interface globs to count; empty counts all. Default empty.
    include: Option<Vec<String>>,
    /// Interface globs never to count. Default lo, veth*, docker*, br-*, cni*, flannel*.
    exclude: Option<Vec<String>>,
}

impl RawConfig {
    fn validate(self, origin: &str) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let state_dir = match self.state_dir {
            None => defaults.state_dir,
            Some(text) => absolute_path(origin, "state_dir", &text)?,
        };
        let collector = match self.collector {
            None => None,
            Some(raw) => Some(validate_collector(origin, raw)?),
        };
        let tls = self.tls.resolve(origin, &state_dir, "agent")?;

        let sampling = self.sampling;
        let interval = match sampling.interval {
            None => defaults.sampling.interval,
            Some(text) => duration_in(origin, "sampling.interval", &text, INTERVAL_MIN..=INTERVAL_MAX)?,
        };
        let full_dump_interval = match sampling.full_dump_interval {
            None => defaults.sampling.full_dump_interval,
            Some(text) => duration_in(
                origin,
                "sampling.full_dump_interval",
                &text,
                FULL_DUMP_INTERVAL_MIN..=FULL_DUMP_INTERVAL_MAX,
            )?,
        };
        if full_dump_interval < interval {
            return Err(invalid(
                origin,
                "sampling.full_dump_interval",
                &format!(
                    "\"{}\" is shorter than sampling.interval \"{}\" (make it at least as long)",
                    human_duration(full_dump_interval),
                    human_duration(interval)
                ),
            ));
        }
        let proc_root = match sampling.proc_root {
            None => defaults.sampling.proc_root,
            Some(text) => absolute_path(origin, "sampling.proc_root", &text)?,
        };

        let network = NetworkFilter {
            include: match self.network.include {
                None => defaults.network.include,
                Some(patterns) => interface_patterns(origin, "network.include", patterns)?,
            },
            exclude: match self.network.exclude {
                None => defaults.network.exclude,
                Some(patterns) => interface_patterns(origin, "network.exclude", patterns)?,
            },
        };

        let spool_max_bytes = match self.spool.max_size {
            None => defaults.spool_max_bytes,
            Some(text) => {
                let problem = |what: &str| {
                    invalid(
                        origin,
                        "spool.max_size",
                        &format!("\"{text}\" {what} (use 64KiB to 64GiB, like \"64MiB\")"),
                    )
                };
                let bytes = parse_size(&text).ok_or_else(|| problem("is not a size"))?;
                if !(SPOOL_MIN_BYTES..=SPOOL_MAX_BYTES).contains(&bytes) {
                    return Err(problem("is out of range"));
                }
                bytes
            }
        };

        let spool_memory_max_samples = match self.spool.memory_max_samples {
            None => defaults.spool_memory_max_samples,
            Some(count) if count <= MEMORY_MAX_SAMPLES_LIMIT => count,
            Some(count) => {
                return Err(invalid(
                    origin,
                    "spool.memory_max_samples",
                    &format!("{count} is out of range (use 0 to {MEMORY_MAX_SAMPLES_LIMIT})"),
                ))
            }
        };

        Ok(Config {
            state_dir,
            collector,
            tls,
            spool_max_bytes,
            spool_memory_max_samples,
            sampling: Sampling {
                interval,
                proc_root,
                netlink: sampling.netlink.unwrap_or(defaults.sampling.netlink),
                full_dump_max_sockets: sampling
                    .full_dump_max_sockets
                    .unwrap_or(defaults.sampling.full_dump_max_sockets),
                full_dump_interval,
                full_dump_cpu_ppm: share_or(
                    origin,
                    "sampling.full_dump_cpu",
                    sampling.full_dump_cpu,
                    defaults.sampling.full_dump_cpu_ppm,
                )?,
                full_dump_cpu_ceiling_ppm: share_or(
                    origin,
                    "sampling.full_dump_cpu_ceiling",
                    sampling.full_dump_cpu_ceiling,
                    defaults.sampling.full_dump_cpu_ceiling_ppm,
                )?,
            },
            network,
            labels: validate_labels(origin, self.labels)?,
        })
    }
}

/// The share of a core under `key` in parts per million, or `default` when the key is absent.
fn share_or(origin: &str, key: &str, text: Option<String>, default: u32) -> Result<u32, ConfigError> {
    match text {
        None => Ok(default),
        Some(text) => parse_share_ppm(&text).ok_or_else(|| {
            invalid(
                origin,
                key,
                &format!("\"{text}\" is not a share of a core (use 0% to 100%, like \"0.03%\")"),
            )
        }),
    }
}

/// "0.03%" as parts per million (300); 0 % to 100 %, at most four decimals.
fn parse_share_ppm(text: &str) -> Option<u32> {
    let number = text.trim().strip_suffix('%')?.trim();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty()
        || fraction.len() > 4
        || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<4}").parse().ok()?;
    let ppm = whole.checked_mul(10_000)?.checked_add(fraction)?;
    (ppm <= 1_000_000).then_some(ppm)
}

/// A size like "64MiB", "512KiB", "1GiB" or a plain number of bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

fn validate_collector(origin: &str, raw: RawCollector) -> Result<CollectorTarget, ConfigError> {
    let addresses = match (raw.address, raw.addresses) {
        (Some(_), Some(_)) => return Err(invalid(
            origin,
            "collector.addresses",
            "set together with collector.address (list every collector in addresses, or use address alone)",
        )),
        (Some(address), None) => vec![address],
        (None, Some(addresses)) if !addresses.is_empty() => addresses,
        (None, Some(_)) => {
            return Err(invalid(
                origin,
                "collector.addresses",
                "is empty (list at least one \"host:port\")",
            ))
        }
        (None, None) => {
            return Err(invalid(
                origin,
                "collector.address",
                "missing (the [collector] section needs address = \"host:port\")",
            ))
        }
    };
    let key = if addresses.len() > 1 {
        "collector.addresses"
    } else {
        "collector.address"
    };
    let mut hosts = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        hosts.push(collector_host(address).map_err(|problem| invalid(origin, key, &problem))?);
        if addresses[..i].contains(address) {
            return Err(invalid(origin, key, &format!("\"{address}\" is listed twice")));
        }
    }
    let server_name = raw.server_name.unwrap_or_else(|| hosts[0].clone());
    if rustls::pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        return Err(invalid(
            origin,
            "collector.server_name",
            &format!("\"{server_name}\" is not a DNS name or IP address (use the name in the collector's certificate)"),
        ));
    }
    Ok(CollectorTarget {
        address: addresses[0].clone(),
        addresses,
        server_name,
    })
}

/// Checks a `host:port` address and returns its host part, without brackets for IPv6 literals.
fn collector_host(address: &str) -> Result<String, String> {
    let example = "like collector.example.net:9600 or [2001:db8::1]:9600";
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("\"{address}\" has an unclosed '[' (write it {example})"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "\"{address}\": \"{host}\" is not an IPv6 address (write it {example})"
            ));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!("\"{address}\" has no port (write it {example})"));
        };
        (host, port)
    } else {
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(format!("\"{address}\" has no port (write it {example})"));
        };
        if host.contains(':') {
            return Err(format!(
                "\"{address}\": put an IPv6 address in brackets (write it {example})"
            ));
        }
        // Only DNS names and IPv4 literals remain; the TLS name parser knows exactly which are valid.
        if rustls::pki_types::ServerName::try_from(host).is_err() {
            return Err(format!(
                "\"{address}\": \"{host}\" is not a valid host name (write it {example})"
            ));
        }
        (host, port)
    };
    match port.parse::<u16>() {
        Ok(0) => Err(format!(
            "\"{address}\": port 0 cannot be dialled (use the collector's port, usually 9600)"
        )),
        Ok(_) => Ok(host.to_string()),
        Err(_) => Err(format!(
            "\"{address}\": \"{port}\" is not a port number (use 1 to 65535)"
        )),
    }
}

fn validate_labels(
    origin: &str,
    labels: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    if labels.len() > MAX_LABELS {
        return Err(invalid(
            origin,
            "labels",
            &format!("{} labels is too many (keep at most {MAX_LABELS})", labels.len()),
        ));
    }
    for (key, value) in &labels {
        if !headroom_common::wire::is_label_key(key) {
            return Err(invalid(
                origin,
                &format!("labels.{key}"),
                &format!(
                    "\"{key}\" is not a valid label key (use 1 to {} of a-z, 0-9 and _, like \"zone\")",
                    headroom_common::wire::MAX_LABEL_KEY_LEN
                ),
            ));
        }
        if value.chars().count() > MAX_LABEL_CHARS || value.chars().any(char::is_control) {
            return Err(invalid(
                origin,
                &format!("labels.{key}"),
                &format!("value is too long or has control characters (keep it to {MAX_LABEL_CHARS} printable characters)"),
            ));
        }
    }
    Ok(labels)
}

fn interface_patterns(origin: &str, key: &str, patterns: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for pattern in &patterns {
        let bad_char = pattern
            .chars()
            .find(|c| c.is_whitespace() || *c == '/' || *c == '[' || *c == ']');
        if pattern.is_empty() || pattern.chars().count() > MAX_INTERFACE_PATTERN_CHARS || bad_char.is_some() {
            return Err(invalid(
                origin,
                key,
                &format!(
                    "\"{pattern}\" is not an interface pattern (use a name with * and ? wildcards, like \"veth*\")"
                ),
            ));
        }
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/headroom/agent.toml";

    fn error_of(text: &str) -> String {
        parse(text, ORIGIN)
            .expect_err("the text should be rejected")
            .to_string()
    }

    #[test]
    fn spool_size_takes_units_and_names_the_range() {
        let config = parse("[spool]\nmax_size = \"512KiB\"\n", "agent.toml").unwrap();
        assert_eq!(config.spool_max_bytes, 512 << 10);
        let err = parse("[spool]\nmax_size = \"1KiB\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spool.max_size") && err.contains("out of range"),
            "{err}"
        );
        let err = parse("[spool]\nmax_size = \"lots\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a size"), "{err}");
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("", ORIGIN).unwrap(), Config::default());
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        // The example ships every setting at its default; the collector and labels are commented out because
        // they differ per site, and `example_file_commented_settings_are_valid` covers them.
        assert_eq!(
            parse(include_str!("../../deploy/agent.toml"), "deploy/agent.toml").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn example_file_commented_settings_are_valid() {
        // Commented-out settings are written "#key = value" (no space), prose as "# text".
        let uncommented: String = include_str!("../../deploy/agent.toml")
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[') => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let config = parse(&uncommented, "deploy/agent.toml").unwrap();
        let collector = config.collector.expect("the example shows a [collector] section");
        assert_eq!(collector.address, "collector.example.net:9600");
        assert_eq!(collector.server_name, "collector.example.net");
        assert_eq!(config.labels.get("zone").map(String::as_str), Some("eu-1a"));
        assert_eq!(config.labels.get("group").map(String::as_str), Some("web"));
    }

    #[test]
    fn a_share_of_a_core_parses_to_parts_per_million() {
        assert_eq!(parse_share_ppm("0.03%"), Some(300));
        assert_eq!(parse_share_ppm("1%"), Some(10_000));
        assert_eq!(parse_share_ppm("0%"), Some(0));
        assert_eq!(parse_share_ppm("100%"), Some(1_000_000));
        for bad in ["0.03", "101%", "-1%", "0.00001%", ".5%", "x%"] {
            assert_eq!(parse_share_ppm(bad), None, "{bad}");
        }
        let error = parse("[sampling]\nfull_dump_cpu = \"3\"\n", ORIGIN)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sampling.full_dump_cpu") && error.contains("0.03%"),
            "{error}"
        );
        let error = parse("[sampling]\nfull_dump_cpu_ceiling = \"200%\"\n", ORIGIN)
            .unwrap_err()
            .to_string();
        assert!(error.contains("sampling.full_dump_cpu_ceiling"), "{error}");
    }

    #[test]
    fn full_file_overrides_every_default() {
        let text = r#"
state_dir = "/srv/agent"
[collector]
address = "[::1]:7000"
[tls]
ca = "/etc/pki/ca.pem"
cert = "host.pem"
[sampling]
interval = "250ms"
proc_root = "/host/proc"
netlink = false
full_dump_max_sockets = 5
full_dump_interval = "2m"
full_dump_cpu = "0.5%"
full_dump_cpu_ceiling = "1%"
[network]
include = ["eth*", "en?1"]
exclude = []
[labels]
zone = "b"
"#;
        let config = parse(text, ORIGIN).unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/srv/agent"));
        let collector = config.collector.unwrap();
        assert_eq!(
            (collector.address.as_str(), collector.server_name.as_str()),
            ("[::1]:7000", "::1")
        );
        assert_eq!(config.tls.ca, PathBuf::from("/etc/pki/ca.pem"));
        assert_eq!(config.tls.cert, PathBuf::from("/srv/agent/host.pem"));
        assert_eq!(config.tls.key, PathBuf::from("/srv/agent/agent.key"));
        assert_eq!(config.sampling.interval, Duration::from_millis(250));
        assert_eq!(config.sampling.proc_root, PathBuf::from("/host/proc"));
        assert!(!config.sampling.netlink);
        assert_eq!(config.sampling.full_dump_max_sockets, 5);
        assert_eq!(config.sampling.full_dump_cpu_ppm, 5_000);
        assert_eq!(config.sampling.full_dump_cpu_ceiling_ppm, 10_000);
        assert_eq!(config.sampling.full_dump_interval, Duration::from_secs(120));
        assert!(config.network.exclude.is_empty());
        assert!(config.network.admits("ens1") && config.network.admits("eth0"));
        assert!(!config.network.admits("wlan0") && !config.network.admits("lo"));
        let keep_all = parse("[network]\nexclude = []\n", ORIGIN).unwrap().network;
        assert!(
            keep_all.admits("lo"),
            "an explicit empty exclude list drops the default exclusions"
        );
    }

    #[test]
    fn unknown_key_names_line_and_suggests_the_nearest_key() {
        let text = "state_dir = \"/var/lib/x\"\n\n[sampling]\nnetlink = true\n\n# why\nintervl = \"1s\"\n";
        assert_eq!(
            error_of(text),
            "config /etc/headroom/agent.toml: line 7: unknown key \"intervl\" (did you mean \"interval\"?)"
        );
    }

    #[test]
    fn unknown_key_in_the_wrong_section_names_its_section() {
        assert_eq!(
            error_of("[network]\ninterval = \"1s\"\n"),
            "config /etc/headroom/agent.toml: line 2: unknown key \"interval\" (it belongs under [sampling])"
        );
        assert_eq!(
            error_of("[tls]\nstate_dir = \"/x\"\n"),
            "config /etc/headroom/agent.toml: line 2: unknown key \"state_dir\" \
             (it belongs at the top of the file, before any [section])"
        );
        assert_eq!(
            error_of("[collector]\naddress = \"c:1\"\nbanana = 1\n"),
            "config /etc/headroom/agent.toml: line 3: unknown key \"banana\" (known keys: address, addresses, server_name)"
        );
    }

    #[test]
    fn section_table_matches_what_the_parser_accepts() {
        check_section_table(SECTIONS, ORIGIN, parse);
    }

    #[test]
    fn bad_durations_are_rejected_with_the_allowed_range() {
        assert_eq!(
            error_of("[sampling]\ninterval = \"0s\"\n"),
            "config /etc/headroom/agent.toml: sampling.interval: \"0s\" is too short (use 100ms to 60s)"
        );
        assert_eq!(
            error_of("[sampling]\ninterval = \"2m\"\n"),
            "config /etc/headroom/agent.toml: sampling.interval: \"2m\" is too long (use 100ms to 60s)"
        );
        assert!(error_of("[sampling]\ninterval = \"fast\"\n").contains("\"fast\" is not a duration"));
        assert!(
            error_of("[sampling]\ninterval = \"10s\"\nfull_dump_interval = \"5s\"\n")
                .contains("sampling.full_dump_interval: \"5s\" is shorter than sampling.interval \"10s\"")
        );
    }

    #[test]
    fn wrong_value_type_names_the_line() {
        assert_eq!(
            error_of("[sampling]\n\ninterval = 5\n"),
            "config /etc/headroom/agent.toml: line 3: sampling.interval: invalid type: integer `5`, \
             expected a string (put the value in double quotes)"
        );
        assert_eq!(
            error_of("state_dir = \"/x\"\n[sampling]\nnetlink = true\nfull_dump_max_sockets = -1\n"),
            "config /etc/headroom/agent.toml: line 4: sampling.full_dump_max_sockets: \
             invalid value: integer `-1`, expected u32"
        );
        assert_eq!(
            error_of("state_dir = 1\n"),
            "config /etc/headroom/agent.toml: line 1: state_dir: invalid type: integer `1`, \
             expected a string (put the value in double quotes)"
        );
        let message = error_of("[sampling\n");
        assert!(
            message.starts_with("config /etc/headroom/agent.toml: line 1: "),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn bad_label_keys_and_values_are_rejected() {
        assert_eq!(
            error_of("[labels]\nZone = \"a\"\n"),
            "config /etc/headroom/agent.toml: labels.Zone: \"Zone\" is not a valid label key \
             (use 1 to 63 of a-z, 0-9 and _, like \"zone\")"
        );
        assert!(error_of("[labels]\n\"rack-id\" = \"a\"\n").contains("labels.rack-id:"));
        assert!(error_of(&format!("[labels]\nzone = \"{}\"\n", "x".repeat(129))).contains("labels.zone:"));
        let too_many: String = (0..33).map(|i| format!("l{i} = \"v\"\n")).collect();
        assert!(error_of(&format!("[labels]\n{too_many}")).contains("33 labels is too many"));
        let enough: String = (0..32).map(|i| format!("l{i} = \"v\"\n")).collect();
        assert_eq!(
            parse(&format!("[labels]\n{enough}"), ORIGIN)
                .unwrap()
                .labels
                .len(),
            32
        );
    }

    #[test]
    fn collector_addresses_are_checked() {
        let address_error = |address: &str| error_of(&format!("[collector]\naddress = \"{address}\"\n"));
        assert!(address_error("collector.example.net").contains("has no port"));
        assert!(address_error("collector.example.net:0").contains("port 0 cannot be dialled"));
        assert!(address_error("collector.example.net:http").contains("\"http\" is not a port number"));
        assert!(address_error("collector.example.net:70000").contains("is not a port number"));
        assert!(address_error("2001:db8::1:9600").contains("put an IPv6 address in brackets"));
        assert!(address_error("[2001:db8::1:9600").contains("unclosed '['"));
        assert!(address_error("bad host:9600").contains("not a valid host name"));
        let several = parse(
            "[collector]\naddresses = [\"c1.example:9600\", \"c2.example:9600\"]\n",
            ORIGIN,
        )
        .unwrap()
        .collector
        .unwrap();
        assert_eq!(several.address, "c1.example:9600");
        assert_eq!(several.addresses.len(), 2);
        assert_eq!(several.server_name, "c1.example");
        assert!(error_of("[collector]\naddresses = []\n").contains("collector.addresses: is empty"));
        assert!(
            error_of("[collector]\naddress = \"a:1\"\naddresses = [\"b:1\"]\n")
                .contains("set together with collector.address")
        );
        assert!(error_of("[collector]\naddresses = [\"a:1\", \"a:1\"]\n").contains("listed twice"));
        assert!(error_of("[collector]\naddresses = [\"a:1\", \"b\"]\n").contains("collector.addresses"));
        assert!(error_of("[collector]\nserver_name = \"x\"\n").contains("collector.address: missing"));
        let config = parse("[collector]\naddress = \"127.0.0.1:9600\"\n", ORIGIN).unwrap();
        assert_eq!(config.collector.unwrap().server_name, "127.0.0.1");
    }

    #[test]
    fn run_needs_a_collector() {
        let message = Config::default()
            .require_collector(ORIGIN)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("config /etc/headroom/agent.toml: collector.address: missing"),
            "{message}"
        );
    }

    #[test]
    fn relative_paths_are_rejected_where_they_would_depend_on_the_working_directory() {
        assert!(
            error_of("state_dir = \"var/lib\"\n").contains("state_dir: \"var/lib\" is not an absolute path")
        );
        assert!(error_of("[sampling]\nproc_root = \"proc\"\n").contains("sampling.proc_root:"));
    }

    #[test]
    fn missing_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let message = load(&path).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "config {}: file not found (install it with deploy/install-agent.sh or copy deploy/agent.toml \
                 there, or pass --config FILE)",
                path.display()
            )
        );
        std::fs::write(&path, "[labels]\nzone = \"a\"\n").unwrap();
        assert_eq!(load(&path).unwrap().labels["zone"], "a");
    }

    #[test]
    fn default_filter_drops_virtual_interfaces() {
        let filter = Config::default().network;
        for name in ["lo", "veth12ab", "docker0", "br-5e2f", "cni0", "flannel.1"] {
            assert!(!filter.admits(name), "{name} should be excluded");
        }
        for name in ["eth0", "ens3", "bond0", "lo0x"] {
            assert!(filter.admits(name), "{name} should be counted");
        }
        assert!(error_of("[network]\nexclude = [\"veth[0-9]\"]\n").contains("network.exclude:"));
    }

    #[test]
    fn glob_handles_stars_and_question_marks() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("e?h*", "eth0"));
        assert!(!glob_matches("e?h", "eth0"));
        assert!(glob_matches("*.1", "flannel.1"));
    }
}
