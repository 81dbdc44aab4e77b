//! The effective collector configuration as a document in the file's own shape (defaults filled in, paths
//! resolved), for `check-config`; printed as TOML it reads back as the same configuration.

use std::time::Duration;

use headroom_common::effective::{duration_value, path_value, table_of};
use toml::{Table, Value};

use super::sections::Config;
use crate::sizing::config::{peak_label, Balance, MemoryMode};
use crate::sizing::{GroupSizing, SizingConfig};

fn string(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn integer(number: impl Into<i64>) -> Value {
    Value::Integer(number.into())
}

/// A fraction (0.8) as the percentage the file holds (80), rounded so that it reads back as the same fraction.
fn percent(fraction: f64) -> Value {
    Value::Float((fraction * 100.0 * 1e9).round() / 1e9)
}

/// A number the file holds as a float.
fn float(number: f64) -> Value {
    Value::Float(number)
}

/// The keys `[sizing]` and each `[sizing.groups.NAME]` share.
fn shared_group_keys(group: &GroupSizing) -> Table {
    let limits: Table = group
        .max_connections
        .iter()
        .map(|(port, limit)| (port.to_string(), integer(*limit)))
        .collect();
    table_of([
        ("cpu_target_percent", Some(percent(group.targets.cpu))),
        ("memory_target_percent", Some(percent(group.targets.memory))),
        (
            "connections_target_percent",
            Some(percent(group.targets.connections)),
        ),
        ("k", Some(integer(group.k))),
        ("max_connections", Some(Value::Table(limits))),
    ])
}

/// One `[sizing.groups.NAME]`: the shared keys plus those only a group has.
fn group_keys(group: &GroupSizing) -> Table {
    let mut table = shared_group_keys(group);
    table.insert(
        "memory".into(),
        string(match group.memory {
            MemoryMode::PerHost => "per_host",
            MemoryMode::Shared => "shared",
        }),
    );
    table.insert("memory_per_load".into(), float(group.memory_per_load));
    table.insert(
        "balance".into(),
        string(match group.balance {
            Balance::Capacity => "capacity",
            Balance::Equal => "equal",
        }),
    );
    if let Some(little) = &group.little {
        table.insert("request_rate_per_s".into(), float(little.request_rate_per_s));
        table.insert("latency_ms".into(), float(little.latency_ms));
        table.insert("little_port".into(), integer(little.port));
        table.insert("staffing_beta".into(), float(little.beta));
    }
    table
}

fn sizing(sizing: &SizingConfig) -> Table {
    let mut table = table_of([
        ("group_label", Some(string(&sizing.group_label))),
        ("zone_label", Some(string(&sizing.zone_label))),
        ("peak", Some(string(peak_label(sizing.percentile)))),
        ("trend_window", Some(duration_value(sizing.trend_window))),
        ("window", Some(duration_value(sizing.window))),
        ("horizon", Some(duration_value(sizing.horizon))),
    ]);
    table.extend(shared_group_keys(&sizing.defaults));
    let groups: Table = sizing
        .groups
        .iter()
        .map(|(name, group)| (name.clone(), Value::Table(group_keys(group))))
        .collect();
    table.insert("groups".into(), Value::Table(groups));
    table
}

impl Config {
    /// The configuration as a document in the file's shape.
    pub fn effective(&self) -> Table {
        let retention = |ms: u64| Some(duration_value(Duration::from_millis(ms)));
        let mut document = table_of([
            ("state_dir", Some(path_value(&self.state_dir))),
            ("listen", Some(string(self.listen.to_string()))),
            (
                "enroll_listen",
                Some(string(
                    self.enroll_listen
                        .map_or("off".to_string(), |address| address.to_string()),
                )),
            ),
            ("http_listen", Some(string(self.http_listen.to_string()))),
        ]);
        let sections = [
            (
                "tls",
                table_of([
                    ("ca", Some(path_value(&self.tls.ca))),
                    ("cert", Some(path_value(&self.tls.cert))),
                    ("key", Some(path_value(&self.tls.key))),
                ]),
            ),
            (
                "http",
                table_of([
                    (
                        "tls_cert",
                        self.http.tls.as_ref().map(|tls| path_value(&tls.cert)),
                    ),
                    ("tls_key", self.http.tls.as_ref().map(|tls| path_value(&tls.key))),
                    ("token_file", self.http.token_file.as_deref().map(path_value)),
                    (
                        "host_names",
                        Some(Value::Array(self.http.host_names.iter().map(string).collect())),
                    ),
                ]),
            ),
            (
                "identity",
                table_of([
                    ("cert_validity", Some(duration_value(self.identity.cert_validity))),
                    (
                        "hello_label_keys",
                        Some(Value::Array(
                            self.identity.hello_label_keys.iter().map(string).collect(),
                        )),
                    ),
                    (
                        "signer_socket",
                        self.identity.signer_socket.as_deref().map(path_value),
                    ),
                ]),
            ),
            (
                "storage",
                table_of([
                    ("raw_retention", retention(self.retention.raw_ms)),
                    ("minute_retention", retention(self.retention.minute_rollups_ms)),
                    ("hour_retention", retention(self.retention.hour_rollups_ms)),
                ]),
            ),
            (
                "fleet",
                table_of([
                    (
                        "stale_after_intervals",
                        Some(integer(self.fleet.stale_after_intervals)),
                    ),
                    ("down_after", Some(duration_value(self.fleet.down_after))),
                    ("max_clock_skew", Some(duration_value(self.fleet.max_clock_skew))),
                    ("max_connections", Some(integer(self.fleet.max_connections))),
                    (
                        "handshake_timeout",
                        Some(duration_value(self.fleet.handshake_timeout)),
                    ),
                    (
                        "handshakes_per_source",
                        Some(integer(self.fleet.handshakes_per_source)),
                    ),
                    ("reconnect_rate", Some(integer(self.fleet.reconnect_rate))),
                ]),
            ),
            (
                "alarms",
                table_of([
                    ("rules", self.alarms.rules.as_deref().map(path_value)),
                    ("alertmanager", self.alarms.alertmanager.as_deref().map(string)),
                    ("webhook", self.alarms.webhook.as_deref().map(string)),
                    // The webhook is held as a full URL, path included.
                    ("webhook_path", Some(string("/"))),
                    ("ca", self.alarms.ca.as_deref().map(path_value)),
                    ("interval", Some(duration_value(self.alarms.interval))),
                ]),
            ),
            (
                "outliers",
                table_of([
                    ("peer_label", Some(string(&self.outliers.peer_label))),
                    ("threshold", Some(float(self.outliers.threshold))),
                    ("flag_windows", Some(integer(self.outliers.flag_windows))),
                    ("window_count", Some(integer(self.outliers.window_count))),
                    ("window", Some(duration_value(self.outliers.window))),
                    (
                        "min_group_hosts",
                        Some(integer(self.outliers.min_group_hosts as i64)),
                    ),
                    ("relative_floor", Some(float(self.outliers.relative_floor))),
                ]),
            ),
            ("sizing", sizing(&self.sizing)),
        ];
        for (name, section) in sections {
            document.insert(name.to_string(), Value::Table(section));
        }
        document
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use headroom_common::effective::{render_document, DocumentFormat};

    const CUSTOM: &str = r#"
state_dir = "/srv/collector"
listen = "0.0.0.0:9700"
http_listen = "0.0.0.0:9701"
[http]
tls_cert = "/etc/headroom/http.pem"
tls_key = "/etc/headroom/http.key"
token_file = "/etc/headroom/api.token"
host_names = ["collector.example.net"]
[tls]
cert = "other/server.pem"
[identity]
signer_socket = "/run/headroom-collector-signer/signer.sock"
[storage]
raw_retention = "72h"
[alarms]
rules = "/etc/headroom/alarms.toml"
alertmanager = "127.0.0.1:9093"
webhook = "127.0.0.1:9000"
webhook_path = "/hooks/headroom"
ca = "/etc/headroom/receivers-ca.pem"
[outliers]
threshold = 4.5
[sizing]
cpu_target_percent = 70
max_connections = { "443" = 10000 }
[sizing.groups.web]
k = 2
memory = "shared"
balance = "equal"
staffing_beta = 2.0
memory_target_percent = 85
request_rate_per_s = 2000
latency_ms = 150
"#;

    #[test]
    fn issue_15_printed_toml_reads_back_as_the_same_configuration() {
        for text in ["", CUSTOM, include_str!("../../../deploy/collector.toml")] {
            let config = parse(text, "collector.toml").unwrap();
            let printed = render_document(&config.effective(), "collector.toml", DocumentFormat::Toml);
            let again = parse(&printed, "printed").unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert_eq!(again, config, "{printed}");
        }
    }

    #[test]
    fn every_key_is_printed() {
        let config = parse(CUSTOM, "collector.toml").unwrap();
        let mut missing =
            headroom_common::effective::missing_keys(&config.effective(), super::super::raw::SECTIONS);
        // `percentile` is the older spelling of `peak`, which is printed instead (the two may not be combined).
        missing.retain(|key| key != "sizing.percentile");
        // The optional [export.remote_write] section is not printed yet.
        missing.retain(|key| key != ".export" && !key.starts_with("export."));
        assert!(missing.is_empty(), "not printed: {missing:?}");
    }

    #[test]
    fn issue_15_defaults_filled_in_and_paths_resolved() {
        let config = parse(CUSTOM, "collector.toml").unwrap();
        let printed = render_document(&config.effective(), "collector.toml", DocumentFormat::Toml);
        for line in [
            "cert = \"/srv/collector/pki/other/server.pem\"",
            "key = \"/srv/collector/pki/server.key\"",
            "raw_retention = \"3d\"",
            "minute_retention = \"35d\"",
            "down_after = \"60s\"",
            "cpu_target_percent = 70.0",
            // The webhook is held as one URL, its path included.
            "webhook = \"http://127.0.0.1:9000/hooks/headroom\"",
            "ca = \"/etc/headroom/receivers-ca.pem\"",
        ] {
            assert!(printed.lines().any(|l| l == line), "{line} missing:\n{printed}");
        }
        let json = render_document(&config.effective(), "collector.toml", DocumentFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["sizing"]["groups"]["web"]["k"], 2);
        assert_eq!(value["sizing"]["groups"]["web"]["cpu_target_percent"], 70.0);
        assert_eq!(value["sizing"]["groups"]["web"]["max_connections"]["443"], 10000);
    }
}
