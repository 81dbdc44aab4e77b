//! The file as written: every value optional, so that defaults and validation live in one place, and the
//! table of every key the file accepts, by section.

use serde::Deserialize;

use headroom_common::config::RawTls;

/// Every key the file accepts, by section ("" is the top level), to point a misplaced key to its section.
pub(super) const SECTIONS: &[(&str, &[&str])] = &[
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
            "reconnect_rate",
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

/// The file as written: every value optional, so that defaults and validation live in one place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Directory for the database, PKI and tokens; absolute. Default /var/lib/headroom-collector.
    pub(super) state_dir: Option<String>,
    /// QUIC/UDP listen address for streaming, like "[::]:9600". Default [::]:9600.
    pub(super) listen: Option<String>,
    /// QUIC/UDP listen address for enrollment, like "[::]:9602", or "off". Default [::]:9602.
    pub(super) enroll_listen: Option<String>,
    /// HTTP listen address (API, web view, /metrics). Anything but 127.0.0.1 or [::1] needs [http] with TLS
    /// and a token. Default 127.0.0.1:9601.
    pub(super) http_listen: Option<String>,
    /// Access to the HTTP listener: TLS, bearer token, Host names.
    #[serde(default)]
    pub(super) http: crate::views::access::RawHttp,
    /// Certificate files; default to ca.pem, server.pem and server.key in `state_dir`/pki.
    #[serde(default)]
    pub(super) tls: RawTls,
    /// Liveness and admission settings.
    #[serde(default)]
    pub(super) fleet: RawFleet,
    /// Alarm rules and delivery.
    #[serde(default)]
    pub(super) alarms: RawAlarms,
    /// Peer-outlier scoring.
    #[serde(default)]
    pub(super) outliers: RawOutliers,
    /// Agent certificate issuing.
    #[serde(default)]
    pub(super) identity: RawIdentity,
    /// Database retention.
    #[serde(default)]
    pub(super) storage: RawStorage,
    /// Failover sizing for `sizing` and `report`.
    #[serde(default)]
    pub(super) sizing: crate::sizing::RawSizing,
    /// Export to a Prometheus-compatible engine.
    #[serde(default)]
    pub(super) export: crate::export::config::RawExport,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    /// How long raw samples are kept, like "48h"; 1h to 3650d. Default 48h.
    pub(super) raw_retention: Option<String>,
    /// How long 1-minute rollups are kept; 1h to 3650d. Default 35d.
    pub(super) minute_retention: Option<String>,
    /// How long hourly rollups, per-group minute sums and gaps are kept; 1h to 3650d. Default 400d.
    pub(super) hour_retention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    /// Lifetime of agent certificates from enrollment and renewal, like "30d"; 10s to 365d. Default 30d.
    pub(super) cert_validity: Option<String>,
    /// Label keys taken from an agent's hello when its certificate carries no labels. Default
    /// ["env", "group", "role", "service", "zone"].
    pub(super) hello_label_keys: Option<Vec<String>>,
    /// Unix socket of a signer run by its own unit, absolute path. Default none: serve starts the signer as a
    /// child process.
    pub(super) signer_socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlarms {
    /// Rules file, absolute path. Default none: no alarms.
    pub(super) rules: Option<String>,
    /// Alertmanager as IP:port ("127.0.0.1:9093", plain HTTP) or a base URL ("https://am.example:9093").
    /// Default none.
    pub(super) alertmanager: Option<String>,
    /// Webhook receiver as IP:port (plain HTTP, with `webhook_path`) or a full URL. Default none.
    pub(super) webhook: Option<String>,
    /// Path the webhook body is POSTed to when `webhook` is IP:port. Default "/".
    pub(super) webhook_path: Option<String>,
    /// PEM file of CA certificates trusted for https:// targets besides the system's store; absolute path.
    pub(super) ca: Option<String>,
    /// Evaluation interval, like "10s"; 100ms to 1h. Default 10s.
    pub(super) interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutliers {
    /// Label whose value makes hosts peers. Default "group".
    pub(super) peer_label: Option<String>,
    /// Score that counts as outlying; 1 to 100. Default 5.
    pub(super) threshold: Option<f64>,
    /// Outlying windows needed to flag (k); 1 to window_count. Default 5.
    pub(super) flag_windows: Option<u32>,
    /// Windows remembered (n); 1 to 32. Default 10.
    pub(super) window_count: Option<u32>,
    /// Length of one window, like "1m"; 1s to 1h. Default 1m.
    pub(super) window: Option<String>,
    /// Fewest hosts a group (or a cluster of a two-cluster group) needs to be scored; 3 to 1000. Default 5.
    pub(super) min_group_hosts: Option<usize>,
    /// Least spread as a share of the median, like 0.05; 0 to 1. Default 0.05.
    pub(super) relative_floor: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    /// Missed sampling intervals before a host is stale; 1 to 1000. Default 3.
    pub(super) stale_after_intervals: Option<u32>,
    /// Silence before a host is down, like "60s"; 1s to 1d. Default 60s.
    pub(super) down_after: Option<String>,
    /// Clock difference tolerated before the host is flagged; 1s to 1d. Default 5m.
    pub(super) max_clock_skew: Option<String>,
    /// Concurrent agent connections; 1 to 1000000. Default 50000.
    pub(super) max_connections: Option<u32>,
    /// Time a QUIC handshake may take, like "5s"; 1s to 60s. Default 5s.
    pub(super) handshake_timeout: Option<String>,
    /// QUIC handshakes in progress at once from one source address; 1 to 256. Default 8.
    pub(super) handshakes_per_source: Option<u32>,
    /// Handshakes a second planned for when the whole fleet reconnects; 1 to 1000000. Default 1000.
    pub(super) reconnect_rate: Option<u32>,
}
