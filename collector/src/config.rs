//! Collector configuration: the TOML file (by default /etc/headroom/collector.toml) read into a raw form and
//! validated, without IO, into a typed [`Config`]. Errors and diagnostics are shared with the agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod effective;

use headroom_common::config::{absolute_path, duration_in, invalid, read_config_file, RawTls};
pub use headroom_common::config::{ConfigError, KeyHint, TlsPaths};

/// Where `headroom-collector serve` looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/headroom/collector.toml";
/// The state directory systemd creates for the collector (`StateDirectory=headroom-collector`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/headroom-collector";

const DOWN_AFTER_MIN: Duration = Duration::from_secs(1);
const DOWN_AFTER_MAX: Duration = Duration::from_secs(86_400);
const CLOCK_SKEW_MIN: Duration = Duration::from_secs(1);
const CLOCK_SKEW_MAX: Duration = Duration::from_secs(86_400);
const STALE_AFTER_INTERVALS_MAX: u32 = 1000;
const MAX_CONNECTIONS_MAX: u32 = 1_000_000;
const HANDSHAKE_TIMEOUT_MIN: Duration = Duration::from_secs(1);
const HANDSHAKE_TIMEOUT_MAX: Duration = Duration::from_secs(60);
const HANDSHAKES_PER_SOURCE_MAX: u32 = 256;

/// Every key the file accepts, by section ("" is the top level), to point a misplaced key to its section.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "alarms",
            "enroll_listen",
            "export",
            "fleet",
            "http",
            "http_listen",
            "identity",
            "listen",
            "outliers",
            "sizing",
            "state_dir",
            "storage",
            "tls",
        ],
    ),
    (
        "storage",
        &["hour_retention", "minute_retention", "raw_retention"],
    ),
    ("tls", &["ca", "cert", "key"]),
    (
        "identity",
        &["cert_validity", "hello_label_keys", "signer_socket"],
    ),
    (
        "fleet",
        &[
            "down_after",
            "handshake_timeout",
            "handshakes_per_source",
            "max_clock_skew",
            "max_connections",
            "stale_after_intervals",
        ],
    ),
    (
        "alarms",
        &[
            "alertmanager",
            "ca",
            "interval",
            "rules",
            "webhook",
            "webhook_path",
        ],
    ),
    (
        "outliers",
        &[
            "flag_windows",
            "min_group_hosts",
            "peer_label",
            "relative_floor",
            "threshold",
            "window",
            "window_count",
        ],
    ),
    crate::views::access::SECTION,
    crate::export::config::SECTIONS[0],
    crate::export::config::SECTIONS[1],
    crate::sizing::config::SECTIONS[0],
    crate::sizing::config::SECTIONS[1],
];

const ALARM_INTERVAL_MIN: Duration = Duration::from_millis(100);
const ALARM_INTERVAL_MAX: Duration = Duration::from_secs(3600);
const OUTLIER_WINDOW_MIN: Duration = Duration::from_secs(1);
const OUTLIER_WINDOW_MAX: Duration = Duration::from_secs(3600);

/// The validated collector configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Directory for the database, the PKI and the enrollment tokens.
    pub state_dir: PathBuf,
    /// QUIC (UDP) address agents stream to; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// QUIC (UDP) address of the enrollment listener; `None`: enrollment and renewal are off, and `serve`
    /// does not read the CA key.
    pub enroll_listen: Option<SocketAddr>,
    /// Address of the HTTP listener (JSON API, web view, /metrics); anything but 127.0.0.1 or [::1] needs
    /// `http` to set TLS and a token.
    pub http_listen: SocketAddr,
    /// Who may use the HTTP listener: TLS, bearer token, accepted Host names.
    pub http: crate::views::access::HttpAccessConfig,
    /// Certificate files for mutual TLS.
    pub tls: TlsPaths,
    /// When hosts count as stale or down, and connection limits.
    pub fleet: FleetConfig,
    /// Alarm rules and where alarms are delivered.
    pub alarms: AlarmsConfig,
    /// Peer-outlier scoring.
    pub outliers: OutliersConfig,
    /// Agent certificates issued by enrollment and renewal.
    pub identity: IdentityConfig,
    /// Failover sizing: labels, peak percentile, window, targets per group (`crate::sizing`).
    pub sizing: crate::sizing::SizingConfig,
    /// How long the database keeps each kind of data.
    pub retention: crate::store::Retention,
    /// Prometheus remote_write target; `None`: nothing is exported.
    pub export: Option<crate::export::RemoteWriteConfig>,
}

/// Retention bounds: an hour of raw data is the least a live view needs; ten years is the most anyone plans on.
const RETENTION_MIN: Duration = Duration::from_secs(3600);
const RETENTION_MAX: Duration = Duration::from_secs(3650 * 86_400);

/// How the collector issues agent certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Lifetime of certificates issued at enrollment and renewal; agents renew after two thirds of it.
    pub cert_validity: Duration,
    /// Label keys an agent's hello may set when its certificate carries no labels (`cert issue`); a
    /// certificate with labels always wins whole.
    pub hello_label_keys: Vec<String>,
    /// The Unix socket of a signer run by its own unit (`headroom-collector signer --socket`); `None`: `serve`
    /// starts the signer as a child process. Either way only the signer reads the CA key.
    pub signer_socket: Option<PathBuf>,
}

/// The label keys the collector itself reads (sizing groups and zones, alarm scopes), allowed from hellos by
/// default.
pub const DEFAULT_HELLO_LABEL_KEYS: &[&str] = &["env", "group", "role", "service", "zone"];

/// Shortest and longest `identity.cert_validity`: seconds are for trying renewal out, a year is the most a
/// certificate that is never revoked should live.
const CERT_VALIDITY_MIN: Duration = Duration::from_secs(10);
pub const CERT_VALIDITY_MAX: Duration = Duration::from_secs(365 * 86_400);

/// Alarm rules and delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmsConfig {
    /// The rules file (see deploy/alarms.toml); `None`: no alarms are evaluated.
    pub rules: Option<PathBuf>,
    /// The base URL of an Alertmanager to POST /api/v2/alerts to (`http://` or `https://`).
    pub alertmanager: Option<String>,
    /// The URL of a generic webhook receiver to POST to.
    pub webhook: Option<String>,
    /// A PEM file of CA certificates trusted for `https://` targets besides the system's store.
    pub ca: Option<PathBuf>,
    /// How often every rule is evaluated.
    pub interval: Duration,
}

/// Peer-outlier settings; see `crate::analytics::outliers` for the score.
#[derive(Debug, Clone, PartialEq)]
pub struct OutliersConfig {
    /// Label whose value makes hosts peers.
    pub peer_label: String,
    /// Score at or above which a host is outlying in a window.
    pub threshold: f64,
    /// Flag when outlying in `flag_windows` of the last `window_count` windows.
    pub flag_windows: u32,
    pub window_count: u32,
    /// Length of one scoring window.
    pub window: Duration,
    /// Groups (and each cluster of a two-cluster group) with fewer hosts are not scored.
    pub min_group_hosts: usize,
    /// The spread is at least this share of |median|.
    pub relative_floor: f64,
}

/// Liveness and admission settings for the fleet view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// A host is stale after this many of its own sampling intervals without a sample.
    pub stale_after_intervals: u32,
    /// A host is down after this long without a sample.
    pub down_after: Duration,
    /// Largest difference between a host's clock and ours before the host is flagged (its samples are still
    /// stored, at corrected times).
    pub max_clock_skew: Duration,
    /// Most agent connections served at once; more are refused.
    pub max_connections: u32,
    /// How long a QUIC handshake may take before its slot is taken back.
    pub handshake_timeout: Duration,
    /// QUIC handshakes in progress at once from one source address.
    pub handshakes_per_source: u32,
}

impl Default for Config {
    fn default() -> Config {
        let state_dir = PathBuf::from(DEFAULT_STATE_DIR);
        Config {
            tls: TlsPaths::in_dir(&state_dir.join("pki"), "server"),
            state_dir,
            listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 9600)),
            enroll_listen: Some(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 9602))),
            http_listen: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 9601)),
            http: crate::views::access::HttpAccessConfig::default(),
            fleet: FleetConfig {
                stale_after_intervals: 3,
                down_after: Duration::from_secs(60),
                max_clock_skew: Duration::from_secs(300),
                max_connections: 50_000,
                handshake_timeout: Duration::from_secs(5),
                handshakes_per_source: 8,
            },
            identity: IdentityConfig {
                cert_validity: crate::identity::enroll_server::DEFAULT_CERT_VALIDITY,
                hello_label_keys: DEFAULT_HELLO_LABEL_KEYS.iter().map(|k| k.to_string()).collect(),
                signer_socket: None,
            },
            alarms: AlarmsConfig {
                rules: None,
                alertmanager: None,
                webhook: None,
                ca: None,
                interval: Duration::from_secs(10),
            },
            outliers: OutliersConfig {
                peer_label: "group".to_string(),
                threshold: 5.0,
                flag_windows: 5,
                window_count: 10,
                window: Duration::from_secs(60),
                min_group_hosts: 5,
                relative_floor: 0.05,
            },
            sizing: crate::sizing::SizingConfig::default(),
            retention: crate::store::Retention::default(),
            export: None,
        }
    }
}

/// Reads and validates the collector configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_config_file(path, "copy deploy/collector.toml there, or pass --config FILE")?;
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
    /// Directory for the database, PKI and tokens; absolute. Default /var/lib/headroom-collector.
    state_dir: Option<String>,
    /// QUIC/UDP listen address for streaming, like "[::]:9600". Default [::]:9600.
    listen: Option<String>,
    /// QUIC/UDP listen address for enrollment, like "[::]:9602", or "off". Default [::]:9602.
    enroll_listen: Option<String>,
    /// HTTP listen address (API, web view, /metrics). Anything but 127.0.0.1 or [::1] needs [http] with TLS
    /// and a token. Default 127.0.0.1:9601.
    http_listen: Option<String>,
    /// Access to the HTTP listener: TLS, bearer token, Host names.
    #[serde(default)]
    http: crate::views::access::RawHttp,
    /// Certificate files; default to ca.pem, server.pem and server.key in `state_dir`/pki.
    #[serde(default)]
    tls: RawTls,
    /// Liveness and admission settings.
    #[serde(default)]
    fleet: RawFleet,
    /// Alarm rules and delivery.
    #[serde(default)]
    alarms: RawAlarms,
    /// Peer-outlier scoring.
    #[serde(default)]
    outliers: RawOutliers,
    /// Agent certificate issuing.
    #[serde(default)]
    identity: RawIdentity,
    /// Database retention.
    #[serde(default)]
    storage: RawStorage,
    /// Failover sizing for `sizing` and `report`.
    #[serde(default)]
    sizing: crate::sizing::RawSizing,
    /// Export to a Prometheus-compatible engine.
    #[serde(default)]
    export: crate::export::config::RawExport,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    /// How long raw samples are kept, like "48h"; 1h to 3650d. Default 48h.
    raw_retention: Option<String>,
    /// How long 1-minute rollups are kept; 1h to 3650d. Default 35d.
    minute_retention: Option<String>,
    /// How long hourly rollups, per-group minute sums and gaps are kept; 1h to 3650d. Default 400d.
    hour_retention: Option<String>,
}

impl RawStorage {
    fn validate(
        self,
        origin: &str,
        defaults: crate::store::Retention,
    ) -> Result<crate::store::Retention, ConfigError> {
        let pick = |text: Option<String>, key: &str, default_ms: u64| -> Result<u64, ConfigError> {
            match text {
                None => Ok(default_ms),
                Some(text) => {
                    Ok(duration_in(origin, key, &text, RETENTION_MIN..=RETENTION_MAX)?.as_millis() as u64)
                }
            }
        };
        Ok(crate::store::Retention {
            raw_ms: pick(self.raw_retention, "storage.raw_retention", defaults.raw_ms)?,
            minute_rollups_ms: pick(
                self.minute_retention,
                "storage.minute_retention",
                defaults.minute_rollups_ms,
            )?,
            hour_rollups_ms: pick(
                self.hour_retention,
                "storage.hour_retention",
                defaults.hour_rollups_ms,
            )?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    /// Lifetime of agent certificates from enrollment and renewal, like "30d"; 10s to 365d. Default 30d.
    cert_validity: Option<String>,
    /// Label keys taken from an agent's hello when its certificate carries no labels. Default
    /// ["env", "group", "role", "service", "zone"].
    hello_label_keys: Option<Vec<String>>,
    /// Unix socket of a signer run by its own unit, absolute path. Default none: serve starts the signer as a
    /// child process.
    signer_socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlarms {
    /// Rules file, absolute path. Default none: no alarms.
    rules: Option<String>,
    /// Alertmanager as IP:port ("127.0.0.1:9093", plain HTTP) or a base URL ("https://am.example:9093").
    /// Default none.
    alertmanager: Option<String>,
    /// Webhook receiver as IP:port (plain HTTP, with `webhook_path`) or a full URL. Default none.
    webhook: Option<String>,
    /// Path the webhook body is POSTed to when `webhook` is IP:port. Default "/".
    webhook_path: Option<String>,
    /// PEM file of CA certificates trusted for https:// targets besides the system's store; absolute path.
    ca: Option<String>,
    /// Evaluation interval, like "10s"; 100ms to 1h. Default 10s.
    interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutliers {
    /// Label whose value makes hosts peers. Default "group".
    peer_label: Option<String>,
    /// Score that counts as outlying; 1 to 100. Default 5.
    threshold: Option<f64>,
    /// Outlying windows needed to flag (k); 1 to window_count. Default 5.
    flag_windows: Option<u32>,
    /// Windows remembered (n); 1 to 32. Default 10.
    window_count: Option<u32>,
    /// Length of one window, like "1m"; 1s to 1h. Default 1m.
    window: Option<String>,
    /// Fewest hosts a group (or a cluster of a two-cluster group) needs to be scored; 3 to 1000. Default 5.
    min_group_hosts: Option<usize>,
    /// Least spread as a share of the median, like 0.05; 0 to 1. Default 0.05.
    relative_floor: Option<f64>,
}

impl RawAlarms {
    fn validate(self, origin: &str, defaults: AlarmsConfig) -> Result<AlarmsConfig, ConfigError> {
        let rules = self
            .rules
            .map(|text| absolute_path(origin, "alarms.rules", &text))
            .transpose()?;
        let alertmanager = self
            .alertmanager
            .map(|text| delivery_url(origin, "alarms.alertmanager", &text))
            .transpose()?;
        let path_given = self.webhook_path.as_deref().is_some_and(|path| path != "/");
        let webhook_path = self.webhook_path.unwrap_or_else(|| "/".to_string());
        if !webhook_path.starts_with('/') || webhook_path.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(
                origin,
                "alarms.webhook_path",
                &format!("\"{webhook_path}\" is not a URL path (start it with / and leave out spaces)"),
            ));
        }
        let webhook = match self.webhook {
            None => None,
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(addr) => Some(format!("http://{addr}{webhook_path}")),
                Err(_) if path_given => return Err(invalid(
                    origin,
                    "alarms.webhook_path",
                    "applies only when alarms.webhook is IP:port (put the path in the webhook URL instead)",
                )),
                Err(_) => Some(delivery_url(origin, "alarms.webhook", &text)?),
            },
        };
        let ca = self
            .ca
            .map(|text| absolute_path(origin, "alarms.ca", &text))
            .transpose()?;
        let interval = match self.interval {
            None => defaults.interval,
            Some(text) => duration_in(
                origin,
                "alarms.interval",
                &text,
                ALARM_INTERVAL_MIN..=ALARM_INTERVAL_MAX,
            )?,
        };
        if rules.is_none() && (alertmanager.is_some() || webhook.is_some()) {
            return Err(invalid(
                origin,
                "alarms.rules",
                "missing while a delivery target is set (name a rules file, like deploy/alarms.toml)",
            ));
        }
        Ok(AlarmsConfig {
            rules,
            alertmanager,
            webhook,
            ca,
            interval,
        })
    }
}

impl RawOutliers {
    fn validate(self, origin: &str, defaults: OutliersConfig) -> Result<OutliersConfig, ConfigError> {
        let peer_label = self.peer_label.unwrap_or(defaults.peer_label);
        if peer_label.is_empty() {
            return Err(invalid(
                origin,
                "outliers.peer_label",
                "is empty (name the label that makes hosts peers, like \"group\")",
            ));
        }
        let threshold = self.threshold.unwrap_or(defaults.threshold);
        if !(1.0..=100.0).contains(&threshold) {
            return Err(invalid(
                origin,
                "outliers.threshold",
                &format!("{threshold} is out of range (use 1 to 100)"),
            ));
        }
        let window_count = self.window_count.unwrap_or(defaults.window_count);
        if !(1..=32).contains(&window_count) {
            return Err(invalid(
                origin,
                "outliers.window_count",
                &format!("{window_count} is out of range (use 1 to 32)"),
            ));
        }
        let flag_windows = self.flag_windows.unwrap_or(defaults.flag_windows);
        if !(1..=window_count).contains(&flag_windows) {
            return Err(invalid(
                origin,
                "outliers.flag_windows",
                &format!("{flag_windows} is out of range (use 1 to window_count, {window_count})"),
            ));
        }
        let window = match self.window {
            None => defaults.window,
            Some(text) => duration_in(
                origin,
                "outliers.window",
                &text,
                OUTLIER_WINDOW_MIN..=OUTLIER_WINDOW_MAX,
            )?,
        };
        let min_group_hosts = self.min_group_hosts.unwrap_or(defaults.min_group_hosts);
        if !(3..=1000).contains(&min_group_hosts) {
            return Err(invalid(
                origin,
                "outliers.min_group_hosts",
                &format!("{min_group_hosts} is out of range (use 3 to 1000)"),
            ));
        }
        let relative_floor = self.relative_floor.unwrap_or(defaults.relative_floor);
        if !(0.0..=1.0).contains(&relative_floor) {
            return Err(invalid(
                origin,
                "outliers.relative_floor",
                &format!("{relative_floor} is out of range (use 0 to 1, like 0.05 for 5 % of the median)"),
            ));
        }
        Ok(OutliersConfig {
            peer_label,
            threshold,
            flag_windows,
            window_count,
            window,
            min_group_hosts,
            relative_floor,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    /// Missed sampling intervals before a host is stale; 1 to 1000. Default 3.
    stale_after_intervals: Option<u32>,
    /// Silence before a host is down, like "60s"; 1s to 1d. Default 60s.
    down_after: Option<String>,
    /// Clock difference tolerated before the host is flagged; 1s to 1d. Default 5m.
    max_clock_skew: Option<String>,
    /// Concurrent agent connections; 1 to 1000000. Default 50000.
    max_connections: Option<u32>,
    /// Time a QUIC handshake may take, like "5s"; 1s to 60s. Default 5s.
    handshake_timeout: Option<String>,
    /// QUIC handshakes in progress at once from one source address; 1 to 256. Default 8.
    handshakes_per_source: Option<u32>,
}

impl RawConfig {
    fn validate(self, origin: &str) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let state_dir = match self.state_dir {
            None => defaults.state_dir,
            Some(text) => absolute_path(origin, "state_dir", &text)?,
        };
        let listen = match self.listen {
            None => defaults.listen,
            Some(text) => socket_address(origin, "listen", &text)?,
        };
        let enroll_listen = match self.enroll_listen.as_deref() {
            None => defaults.enroll_listen,
            Some("off") => None,
            Some(text) => Some(socket_address(origin, "enroll_listen", text)?),
        };
        if enroll_listen.is_some_and(|enroll| enroll.port() != 0 && enroll == listen) {
            return Err(invalid(
                origin,
                "enroll_listen",
                "is the same address as listen (give enrollment its own port, like 9602, or \"off\")",
            ));
        }
        let http_listen = match self.http_listen {
            None => defaults.http_listen,
            Some(text) => socket_address(origin, "http_listen", &text)?,
        };
        let http = self.http.validate(origin, http_listen)?;
        let tls = self.tls.resolve(origin, &state_dir.join("pki"), "server")?;

        let fleet = self.fleet;
        let stale_after_intervals = fleet
            .stale_after_intervals
            .unwrap_or(defaults.fleet.stale_after_intervals);
        if !(1..=STALE_AFTER_INTERVALS_MAX).contains(&stale_after_intervals) {
            return Err(invalid(
                origin,
                "fleet.stale_after_intervals",
                &format!("{stale_after_intervals} is out of range (use 1 to {STALE_AFTER_INTERVALS_MAX})"),
            ));
        }
        let max_connections = fleet.max_connections.unwrap_or(defaults.fleet.max_connections);
        if !(1..=MAX_CONNECTIONS_MAX).contains(&max_connections) {
            return Err(invalid(
                origin,
                "fleet.max_connections",
                &format!("{max_connections} is out of range (use 1 to {MAX_CONNECTIONS_MAX})"),
            ));
        }
        let handshakes_per_source = fleet
            .handshakes_per_source
            .unwrap_or(defaults.fleet.handshakes_per_source);
        if !(1..=HANDSHAKES_PER_SOURCE_MAX).contains(&handshakes_per_source) {
            return Err(invalid(
                origin,
                "fleet.handshakes_per_source",
                &format!("{handshakes_per_source} is out of range (use 1 to {HANDSHAKES_PER_SOURCE_MAX})"),
            ));
        }
        let handshake_timeout = match fleet.handshake_timeout {
            None => defaults.fleet.handshake_timeout,
            Some(text) => duration_in(
                origin,
                "fleet.handshake_timeout",
                &text,
                HANDSHAKE_TIMEOUT_MIN..=HANDSHAKE_TIMEOUT_MAX,
            )?,
        };
        let down_after = match fleet.down_after {
            None => defaults.fleet.down_after,
            Some(text) => duration_in(origin, "fleet.down_after", &text, DOWN_AFTER_MIN..=DOWN_AFTER_MAX)?,
        };
        let max_clock_skew = match fleet.max_clock_skew {
            None => defaults.fleet.max_clock_skew,
            Some(text) => duration_in(
                origin,
                "fleet.max_clock_skew",
                &text,
                CLOCK_SKEW_MIN..=CLOCK_SKEW_MAX,
            )?,
        };

        let alarms = self.alarms.validate(origin, defaults.alarms)?;
        let outliers = self.outliers.validate(origin, defaults.outliers)?;
        let sizing = self.sizing.validate(origin)?;
        let retention = self.storage.validate(origin, defaults.retention)?;
        let export = self.export.validate(origin)?;
        let cert_validity = match self.identity.cert_validity {
            None => defaults.identity.cert_validity,
            Some(text) => duration_in(
                origin,
                "identity.cert_validity",
                &text,
                CERT_VALIDITY_MIN..=CERT_VALIDITY_MAX,
            )?,
        };
        let signer_socket = self
            .identity
            .signer_socket
            .map(|text| absolute_path(origin, "identity.signer_socket", &text))
            .transpose()?;
        let hello_label_keys = match self.identity.hello_label_keys {
            None => defaults.identity.hello_label_keys,
            Some(keys) => {
                if let Some(bad) = keys.iter().find(|key| !headroom_common::wire::is_label_key(key)) {
                    return Err(invalid(
                        origin,
                        "identity.hello_label_keys",
                        &format!(
                            "\"{bad}\" is not a valid label key (use 1 to {} of a-z, 0-9 and _, like \"zone\")",
                            headroom_common::wire::MAX_LABEL_KEY_LEN
                        ),
                    ));
                }
                keys
            }
        };
        Ok(Config {
            identity: IdentityConfig {
                cert_validity,
                hello_label_keys,
                signer_socket,
            },
            alarms,
            outliers,
            sizing,
            retention,
            export,
            state_dir,
            listen,
            enroll_listen,
            http_listen,
            http,
            tls,
            fleet: FleetConfig {
                stale_after_intervals,
                down_after,
                max_clock_skew,
                max_connections,
                handshake_timeout,
                handshakes_per_source,
            },
        })
    }
}

fn socket_address(origin: &str, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        invalid(
            origin,
            key,
            &format!(
                "\"{text}\" is not an IP address and port (write it like \"0.0.0.0:9600\" or \"[::]:9600\"; \
                 host names are not resolved here)"
            ),
        )
    })
}

/// An alarm delivery target: IP:port (plain HTTP, as before URLs were accepted) or an http(s):// URL.
fn delivery_url(origin: &str, key: &str, text: &str) -> Result<String, ConfigError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(format!("http://{addr}"));
    }
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err(invalid(
            origin,
            key,
            &format!(
                "\"{text}\" is not an IP address and port or an http(s):// URL (write it like \"127.0.0.1:9093\" \
                 or \"https://alertmanager.example:9093\")"
            ),
        ));
    }
    headroom_common::http::check_url(text).map_err(|problem| invalid(origin, key, &problem))?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::config::check_section_table;

    const ORIGIN: &str = "/etc/headroom/collector.toml";

    fn error_of(text: &str) -> String {
        parse(text, ORIGIN)
            .expect_err("the text should be rejected")
            .to_string()
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("", ORIGIN).unwrap(), Config::default());
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        // The example differs from the defaults nowhere: it writes every setting out with its default value.
        let example = include_str!("../../deploy/collector.toml");
        assert_eq!(
            parse(example, "deploy/collector.toml").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn full_file_overrides_every_default() {
        let text = r#"
state_dir = "/srv/collector"
listen = "127.0.0.1:0"
http_listen = "[::1]:7001"
[tls]
key = "/etc/keys/server.key"
[fleet]
stale_after_intervals = 5
down_after = "2m"
max_clock_skew = "30s"
max_connections = 10
handshake_timeout = "3s"
handshakes_per_source = 4
"#;
        let config = parse(text, ORIGIN).unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/srv/collector"));
        assert_eq!(config.listen, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
        assert_eq!(config.http_listen, "[::1]:7001".parse::<SocketAddr>().unwrap());
        assert_eq!(config.tls.ca, PathBuf::from("/srv/collector/pki/ca.pem"));
        assert_eq!(config.tls.cert, PathBuf::from("/srv/collector/pki/server.pem"));
        assert_eq!(config.tls.key, PathBuf::from("/etc/keys/server.key"));
        assert_eq!(
            config.fleet,
            FleetConfig {
                stale_after_intervals: 5,
                down_after: Duration::from_secs(120),
                max_clock_skew: Duration::from_secs(30),
                max_connections: 10,
                handshake_timeout: Duration::from_secs(3),
                handshakes_per_source: 4,
            }
        );
    }

    #[test]
    fn enrollment_has_its_own_port_and_can_be_turned_off() {
        assert_eq!(
            parse("enroll_listen = \"127.0.0.1:7602\"\n", ORIGIN)
                .unwrap()
                .enroll_listen,
            Some("127.0.0.1:7602".parse().unwrap())
        );
        assert_eq!(
            parse("enroll_listen = \"off\"\n", ORIGIN).unwrap().enroll_listen,
            None
        );
        assert!(
            error_of("listen = \"[::]:9600\"\nenroll_listen = \"[::]:9600\"\n")
                .contains("enroll_listen: is the same")
        );
        assert!(error_of("enroll_listen = \"no\"\n").contains("enroll_listen: \"no\" is not an IP address"));
        assert_eq!(
            parse("[identity]\nhello_label_keys = [\"rack\"]\n", ORIGIN)
                .unwrap()
                .identity
                .hello_label_keys,
            vec!["rack".to_string()]
        );
        assert!(error_of("[identity]\nhello_label_keys = [\"Rack\"]\n")
            .contains("\"Rack\" is not a valid label key"));
    }

    #[test]
    fn unknown_key_names_line_and_suggests_the_nearest_key() {
        assert_eq!(
            error_of("listen = \"[::]:9600\"\n\n[fleet]\ndown_afer = \"1m\"\n"),
            "config /etc/headroom/collector.toml: line 4: unknown key \"down_afer\" (did you mean \"down_after\"?)"
        );
        assert_eq!(
            error_of("[fleet]\nlisten = \"[::]:9600\"\n"),
            "config /etc/headroom/collector.toml: line 2: unknown key \"listen\" \
             (it belongs at the top of the file, before any [section])"
        );
    }

    #[test]
    fn storage_retention_is_read_and_bounded() {
        let config = parse(
            "[storage]\nraw_retention = \"12h\"\nhour_retention = \"90d\"\n",
            ORIGIN,
        )
        .unwrap();
        assert_eq!(config.retention.raw_ms, 12 * 3_600_000);
        assert_eq!(config.retention.hour_rollups_ms, 90 * 86_400_000);
        assert_eq!(
            config.retention.minute_rollups_ms,
            crate::store::Retention::default().minute_rollups_ms
        );
        let err = error_of("[storage]\nraw_retention = \"5m\"\n");
        assert!(
            err.contains("storage.raw_retention") && err.contains("too short"),
            "{err}"
        );
    }

    #[test]
    fn section_table_matches_what_the_parser_accepts() {
        check_section_table(SECTIONS, ORIGIN, parse);
    }

    #[test]
    fn bad_durations_are_rejected_with_the_allowed_range() {
        assert_eq!(
            error_of("[fleet]\ndown_after = \"0s\"\n"),
            "config /etc/headroom/collector.toml: fleet.down_after: \"0s\" is too short (use 1s to 1d)"
        );
        assert!(error_of("[fleet]\nmax_clock_skew = \"soon\"\n")
            .contains("fleet.max_clock_skew: \"soon\" is not a duration"));
    }

    #[test]
    fn certificate_validity_is_a_duration_within_bounds() {
        assert_eq!(
            parse("[identity]\ncert_validity = \"45s\"\n", ORIGIN)
                .unwrap()
                .identity
                .cert_validity,
            Duration::from_secs(45)
        );
        assert_eq!(
            Config::default().identity.cert_validity,
            Duration::from_secs(30 * 86_400)
        );
        assert!(error_of("[identity]\ncert_validity = \"1s\"\n")
            .contains("identity.cert_validity: \"1s\" is too short (use 10s to "));
    }

    #[test]
    fn bad_addresses_are_rejected() {
        assert!(error_of("listen = \"collector.example.net:9600\"\n")
            .contains("listen: \"collector.example.net:9600\" is not an IP address and port"));
        assert!(error_of("listen = \":::9600\"\n").contains("listen: "));
        let open = error_of("http_listen = \"0.0.0.0:9601\"\n");
        assert!(
            open.starts_with(
                "config /etc/headroom/collector.toml: http.tls_cert: must be set: http_listen 0.0.0.0:9601"
            ) && !open.contains('\n'),
            "{open}"
        );
    }

    #[test]
    fn counts_out_of_range_are_rejected() {
        assert!(error_of("[fleet]\nstale_after_intervals = 0\n").contains("fleet.stale_after_intervals: 0"));
        assert!(error_of("[fleet]\nmax_connections = 0\n").contains("fleet.max_connections: 0"));
        assert!(error_of("state_dir = \"relative\"\n")
            .contains("state_dir: \"relative\" is not an absolute path"));
    }

    #[test]
    fn sizing_section_is_read_and_its_commented_group_example_is_valid() {
        let example = include_str!("../../deploy/collector.toml");
        let start = example
            .find("# [sizing.groups.web]")
            .expect("the example shows a group");
        // Uncomment the settings of the example (prose comments stay comments).
        let group: String = example[start..]
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if setting.starts_with('[') || setting.contains(" = ") => setting,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let text = format!("{}{group}", &example[..start]);
        let config = parse(&text, "deploy/collector.toml").unwrap();
        let web = config.sizing.for_group("web");
        assert_eq!((web.k, web.targets.cpu), (2, 0.70));
        assert_eq!(web.little.map(|little| little.concurrency()), Some(300.0));
        assert_eq!(web.little.map(|little| little.beta), Some(1.0));
        assert_eq!(
            (web.memory, web.memory_per_load, web.balance),
            (
                crate::sizing::MemoryMode::PerHost,
                0.2,
                crate::sizing::Balance::Equal
            )
        );
        assert_eq!(config.sizing.for_group("db"), &config.sizing.defaults);
        assert!(error_of("[sizing]\nwindow = \"10m\"\n").contains("sizing.window: \"10m\" is too short"));
        assert!(error_of("[sizing.groups.web]\nk = \"two\"\n").contains("line 2"));
    }

    #[test]
    fn alarms_and_outliers_sections_are_read_and_checked() {
        let text = r#"
[alarms]
rules = "/etc/headroom/alarms.toml"
alertmanager = "127.0.0.1:9093"
webhook = "127.0.0.1:9000"
webhook_path = "/hooks/headroom"
interval = "200ms"
[outliers]
peer_label = "service"
threshold = 4.5
flag_windows = 3
window_count = 6
window = "30s"
"#;
        let config = parse(text, ORIGIN).unwrap();
        assert_eq!(
            config.alarms.rules,
            Some(PathBuf::from("/etc/headroom/alarms.toml"))
        );
        assert_eq!(
            config.alarms.alertmanager.as_deref(),
            Some("http://127.0.0.1:9093")
        );
        assert_eq!(
            config.alarms.webhook.as_deref(),
            Some("http://127.0.0.1:9000/hooks/headroom")
        );
        let https = parse(
            "[alarms]\nrules = \"/a.toml\"\nalertmanager = \"https://am.example:9093/\"\n\
             webhook = \"https://hooks.example/headroom\"\nca = \"/etc/headroom/receiver-ca.pem\"\n",
            ORIGIN,
        )
        .unwrap();
        assert_eq!(
            https.alarms.alertmanager.as_deref(),
            Some("https://am.example:9093/")
        );
        assert_eq!(
            https.alarms.webhook.as_deref(),
            Some("https://hooks.example/headroom")
        );
        assert_eq!(
            https.alarms.ca,
            Some(PathBuf::from("/etc/headroom/receiver-ca.pem"))
        );
        assert!(error_of(
            "[alarms]\nrules = \"/a.toml\"\nwebhook = \"https://h.example/x\"\nwebhook_path = \"/y\"\n"
        )
        .contains("alarms.webhook_path: applies only when alarms.webhook is IP:port"));
        assert!(
            error_of("[alarms]\nrules = \"/a.toml\"\nalertmanager = \"ftp://x\"\n").contains(
                "alarms.alertmanager: \"ftp://x\" is not an IP address and port or an http(s):// URL"
            )
        );
        assert_eq!(config.alarms.interval, Duration::from_millis(200));
        assert_eq!(config.outliers.peer_label, "service");
        assert_eq!(config.outliers.threshold, 4.5);
        assert_eq!(
            (config.outliers.flag_windows, config.outliers.window_count),
            (3, 6)
        );
        assert_eq!(config.outliers.window, Duration::from_secs(30));
        assert_eq!(
            error_of("[alarms]\nalertmanager = \"127.0.0.1:9093\"\n"),
            "config /etc/headroom/collector.toml: alarms.rules: missing while a delivery target is set \
             (name a rules file, like deploy/alarms.toml)"
        );
        assert!(
            error_of("[alarms]\nrules = \"/a.toml\"\nalertmanager = \"localhost:9093\"\n")
                .contains("alarms.alertmanager: \"localhost:9093\" is not an IP address and port")
        );
        assert!(error_of("[outliers]\nmin_group_hosts = 2\n")
            .contains("outliers.min_group_hosts: 2 is out of range (use 3 to 1000)"));
        assert!(error_of("[outliers]\nrelative_floor = 2.0\n")
            .contains("outliers.relative_floor: 2 is out of range"));
        assert!(error_of("[outliers]\nflag_windows = 11\n")
            .contains("outliers.flag_windows: 11 is out of range (use 1 to window_count, 10)"));
        assert!(
            error_of("[alarms]\ninterval = \"10ms\"\n").contains("alarms.interval: \"10ms\" is too short")
        );
    }

    #[test]
    fn missing_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        assert_eq!(
            load(&path).unwrap_err().to_string(),
            format!(
                "config {}: file not found (copy deploy/collector.toml there, or pass --config FILE)",
                path.display()
            )
        );
        std::fs::write(&path, "listen = \"127.0.0.1:9700\"\n").unwrap();
        assert_eq!(load(&path).unwrap().listen.port(), 9700);
    }
}
