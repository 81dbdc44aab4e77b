//! Validation without IO: the raw file's values checked against their bounds and turned into a [`Config`],
//! each error one line naming the file, the key and the fix.

use std::net::SocketAddr;
use std::time::Duration;

use headroom_common::config::{absolute_path, duration_in, invalid, ConfigError};

use super::raw::{RawAlarms, RawConfig, RawOutliers, RawStorage};
use super::sections::{AlarmsConfig, Config, FleetConfig, IdentityConfig, OutliersConfig, CERT_VALIDITY_MAX};

const DOWN_AFTER_MIN: Duration = Duration::from_secs(1);
const DOWN_AFTER_MAX: Duration = Duration::from_secs(86_400);
const CLOCK_SKEW_MIN: Duration = Duration::from_secs(1);
const CLOCK_SKEW_MAX: Duration = Duration::from_secs(86_400);
const STALE_AFTER_INTERVALS_MAX: u32 = 1000;
const MAX_CONNECTIONS_MAX: u32 = 1_000_000;
const HANDSHAKE_TIMEOUT_MIN: Duration = Duration::from_secs(1);
const HANDSHAKE_TIMEOUT_MAX: Duration = Duration::from_secs(60);
const HANDSHAKES_PER_SOURCE_MAX: u32 = 256;
const RECONNECT_RATE_MAX: u32 = 1_000_000;

const ALARM_INTERVAL_MIN: Duration = Duration::from_millis(100);
const ALARM_INTERVAL_MAX: Duration = Duration::from_secs(3600);
const OUTLIER_WINDOW_MIN: Duration = Duration::from_secs(1);
const OUTLIER_WINDOW_MAX: Duration = Duration::from_secs(3600);

/// Retention bounds: an hour of raw data is the least a live view needs; ten years is the most anyone plans on.
const RETENTION_MIN: Duration = Duration::from_secs(3600);
const RETENTION_MAX: Duration = Duration::from_secs(3650 * 86_400);

/// Shortest `identity.cert_validity`: seconds are for trying renewal out (the longest is `CERT_VALIDITY_MAX`).
const CERT_VALIDITY_MIN: Duration = Duration::from_secs(10);

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

impl RawConfig {
    pub(super) fn validate(self, origin: &str) -> Result<Config, ConfigError> {
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
        let reconnect_rate = fleet.reconnect_rate.unwrap_or(defaults.fleet.reconnect_rate);
        if !(1..=RECONNECT_RATE_MAX).contains(&reconnect_rate) {
            return Err(invalid(
                origin,
                "fleet.reconnect_rate",
                &format!(
                    "{reconnect_rate} is out of range (use 1 to {RECONNECT_RATE_MAX} handshakes a second)"
                ),
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
                reconnect_rate,
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
