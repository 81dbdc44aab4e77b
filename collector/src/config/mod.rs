//! Collector configuration: the TOML file (by default /etc/headroom/collector.toml) read into a raw form and
//! validated, without IO, into a typed [`Config`]. Errors and diagnostics are shared with the agent.

//!
//! `sections.rs` holds the typed sections and their defaults, `raw.rs` the file as written and the table of
//! its keys, `validate.rs` the checks from one to the other, `effective.rs` the effective configuration
//! printed by `check-config`.

use std::path::Path;

mod effective;
mod raw;
mod sections;
mod validate;

use headroom_common::config::read_config_file;
pub use headroom_common::config::{ConfigError, KeyHint, TlsPaths};
use raw::{RawConfig, SECTIONS};
pub use sections::{
    AlarmsConfig, Config, FleetConfig, IdentityConfig, OutliersConfig, CERT_VALIDITY_MAX,
    DEFAULT_HELLO_LABEL_KEYS, DEFAULT_RECONNECT_RATE, DEFAULT_STATE_DIR,
};

/// Where `headroom-collector serve` looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/headroom/collector.toml";

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

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::config::check_section_table;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

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
        let example = include_str!("../../../deploy/collector.toml");
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
reconnect_rate = 250
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
                reconnect_rate: 250,
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
        assert!(error_of("[fleet]\nreconnect_rate = 0\n").contains("fleet.reconnect_rate: 0 is out of range"));
        assert!(error_of("state_dir = \"relative\"\n")
            .contains("state_dir: \"relative\" is not an absolute path"));
    }

    #[test]
    fn sizing_section_is_read_and_its_commented_group_example_is_valid() {
        let example = include_str!("../../../deploy/collector.toml");
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
