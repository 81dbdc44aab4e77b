//! The typed, validated collector configuration: one struct per section, and the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use headroom_common::config::TlsPaths;

/// The state directory systemd creates for the collector (`StateDirectory=headroom-collector`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/headroom-collector";

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

pub use crate::identity::signer::CERT_VALIDITY_MAX;

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
    /// Handshakes a second the collector plans to take when its whole fleet reconnects at once: agents are
    /// told to spread their reconnects over the time this rate needs for all of them (`headroom_common::spread`).
    pub reconnect_rate: u32,
}

/// Handshakes a second a collector plans, by default (`fleet.reconnect_rate`), to take when its whole fleet
/// comes back at once: it asks its agents to spread their first attempt after losing it over the time this
/// rate needs for all of them (`headroom_common::spread`), at this rate on average: 1.8 times it at the start,
/// a fifth of it at the end. A 2-core machine completed ~1,200 a second in the reconnect storm of
/// `bench/ingest.sh --storm` with its other core loaded; 1,000 leaves room for the catch-up that follows.
pub const DEFAULT_RECONNECT_RATE: u32 = 1000;

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
                reconnect_rate: DEFAULT_RECONNECT_RATE,
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
