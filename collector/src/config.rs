//! Collector configuration: the TOML file (by default /etc/headroom/collector.toml) read into a raw form and
//! validated, without IO, into a typed [`Config`]. Errors and diagnostics are shared with the agent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use headroom_agent::config::{absolute_path, duration_in, invalid, read_config_file, RawTls};
pub use headroom_agent::config::{ConfigError, KeyHint, TlsPaths};

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

/// Every key the file accepts, by section ("" is the top level), to point a misplaced key to its section.
const SECTIONS: &[(&str, &[&str])] = &[
    ("", &["fleet", "http_listen", "listen", "state_dir", "tls"]),
    ("tls", &["ca", "cert", "key"]),
    (
        "fleet",
        &[
            "down_after",
            "max_clock_skew",
            "max_connections",
            "stale_after_intervals",
        ],
    ),
];

/// The validated collector configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory for the database, the PKI and the enrollment tokens.
    pub state_dir: PathBuf,
    /// QUIC (UDP) address agents connect to; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Address of the JSON API the command line reads; always a loopback address.
    pub http_listen: SocketAddr,
    /// Certificate files for mutual TLS.
    pub tls: TlsPaths,
    /// When hosts count as stale or down, and connection limits.
    pub fleet: FleetConfig,
}

/// Liveness and admission settings for the fleet view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// A host is stale after this many of its own sampling intervals without a sample.
    pub stale_after_intervals: u32,
    /// A host is down after this long without a sample.
    pub down_after: Duration,
    /// Largest difference between a host's clock and ours before its samples are flagged.
    pub max_clock_skew: Duration,
    /// Most agent connections served at once; more are refused.
    pub max_connections: u32,
}

impl Default for Config {
    fn default() -> Config {
        let state_dir = PathBuf::from(DEFAULT_STATE_DIR);
        Config {
            tls: TlsPaths::in_dir(&state_dir.join("pki"), "server"),
            state_dir,
            listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 9600)),
            http_listen: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 9601)),
            fleet: FleetConfig {
                stale_after_intervals: 3,
                down_after: Duration::from_secs(60),
                max_clock_skew: Duration::from_secs(300),
                max_connections: 50_000,
            },
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
    /// QUIC/UDP listen address, like "[::]:9600". Default [::]:9600.
    listen: Option<String>,
    /// JSON API listen address; must be loopback. Default 127.0.0.1:9601.
    http_listen: Option<String>,
    /// Certificate files; default to ca.pem, server.pem and server.key in `state_dir`/pki.
    #[serde(default)]
    tls: RawTls,
    /// Liveness and admission settings.
    #[serde(default)]
    fleet: RawFleet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    /// Missed sampling intervals before a host is stale; 1 to 1000. Default 3.
    stale_after_intervals: Option<u32>,
    /// Silence before a host is down, like "60s"; 1s to 1d. Default 60s.
    down_after: Option<String>,
    /// Clock difference tolerated before samples are flagged; 1s to 1d. Default 5m.
    max_clock_skew: Option<String>,
    /// Concurrent agent connections; 1 to 1000000. Default 50000.
    max_connections: Option<u32>,
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
        let http_listen = match self.http_listen {
            None => defaults.http_listen,
            Some(text) => socket_address(origin, "http_listen", &text)?,
        };
        if !http_listen.ip().is_loopback() {
            // The JSON API has no authentication of its own; the loopback interface is its access control.
            return Err(invalid(
                origin,
                "http_listen",
                &format!(
                    "{http_listen} is not a loopback address (the API has no authentication; use 127.0.0.1 or [::1])"
                ),
            ));
        }
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

        Ok(Config {
            state_dir,
            listen,
            http_listen,
            tls,
            fleet: FleetConfig {
                stale_after_intervals,
                down_after,
                max_clock_skew,
                max_connections,
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

#[cfg(test)]
mod tests {
    use super::*;

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
            }
        );
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
    fn section_table_matches_what_the_parser_accepts() {
        for (section, keys) in SECTIONS {
            let header = if section.is_empty() {
                String::new()
            } else {
                format!("[{section}]\n")
            };
            match parse(&format!("{header}zzzzzzzzzzzz = 1\n"), ORIGIN).unwrap_err() {
                ConfigError::UnknownKey {
                    hint: Some(KeyHint::Known(mut expected)),
                    ..
                } => {
                    expected.sort();
                    assert_eq!(&expected, keys, "section [{section}]");
                }
                other => panic!("section [{section}]: unexpected {other}"),
            }
        }
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
    fn bad_addresses_are_rejected() {
        assert!(error_of("listen = \"collector.example.net:9600\"\n")
            .contains("listen: \"collector.example.net:9600\" is not an IP address and port"));
        assert!(error_of("listen = \":::9600\"\n").contains("listen: "));
        assert_eq!(
            error_of("http_listen = \"0.0.0.0:9601\"\n"),
            "config /etc/headroom/collector.toml: http_listen: 0.0.0.0:9601 is not a loopback address \
             (the API has no authentication; use 127.0.0.1 or [::1])"
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
