//! `[export.remote_write]`: where and how the collector sends stored samples to a Prometheus-compatible
//! engine. Parsed as part of the collector's file (raw form here, validated without IO into
//! [`RemoteWriteConfig`]).

use headroom_common::config::{absolute_path, duration_in, invalid, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Keys of the sections this module parses, for the collector's "did you mean" hints.
pub const SECTIONS: &[(&str, &[&str])] = &[
    ("export", &["remote_write"]),
    (
        "export.remote_write",
        &[
            "basic_auth_password_file",
            "basic_auth_username",
            "batch_size",
            "batch_wait",
            "bearer_token_file",
            "labels",
            "max_backoff",
            "min_backoff",
            "timeout",
            "tls_ca",
            "url",
        ],
    ),
];

/// Labels that the exporter sets itself; an extra label may not take one of these names.
pub const RESERVED_LABELS: &[&str] = &["__name__", "host", "group", "zone", "port"];

const BATCH_SIZE_MAX: usize = 50_000;

/// How the collector authenticates to the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAuth {
    None,
    /// `Authorization: Bearer <file contents, trimmed>`, re-read before each request so rotation needs no restart.
    BearerTokenFile(PathBuf),
    /// HTTP basic auth; the password is read from a file, re-read before each request.
    Basic {
        username: String,
        password_file: PathBuf,
    },
}

/// A validated `[export.remote_write]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    /// The receiver, like `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    pub auth: RemoteAuth,
    /// PEM file of the CA that signed the receiver's certificate, added to the built-in roots.
    pub tls_ca: Option<PathBuf>,
    /// Added to every series (a series' own labels win), like `collector = "eu-1"`.
    pub labels: BTreeMap<String, String>,
    /// Most stored samples (rows) per request.
    pub batch_size: usize,
    /// How long a batch that is not full waits for more rows before it is sent.
    pub batch_wait: Duration,
    /// Per-request deadline.
    pub timeout: Duration,
    /// Retry delays of 5xx, 429 and network errors: capped exponential with jitter.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl RemoteWriteConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: &str) -> Self {
        RemoteWriteConfig {
            url: url.to_string(),
            auth: RemoteAuth::None,
            tls_ca: None,
            labels: BTreeMap::new(),
            batch_size: 2_000,
            batch_wait: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// `[export]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    /// Prometheus remote_write 1.0 target. Default none: nothing is exported.
    remote_write: Option<RawRemoteWrite>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteWrite {
    /// Receiver URL, http:// or https://, like "http://127.0.0.1:9090/api/v1/write". Required.
    url: Option<String>,
    /// File holding a bearer token (absolute path). Default none.
    bearer_token_file: Option<String>,
    /// Basic-auth user name; needs basic_auth_password_file. Default none.
    basic_auth_username: Option<String>,
    /// File holding the basic-auth password (absolute path). Default none.
    basic_auth_password_file: Option<String>,
    /// CA certificate (PEM, absolute path) for an https receiver with a private CA. Default: built-in roots.
    tls_ca: Option<String>,
    /// Stored samples per request; 1 to 50000. Default 2000.
    batch_size: Option<usize>,
    /// Wait for a batch to fill, like "1s"; 10ms to 1m. Default 1s.
    batch_wait: Option<String>,
    /// Request deadline, like "30s"; 1s to 5m. Default 30s.
    timeout: Option<String>,
    /// First retry delay; 10ms to 1m. Default 500ms.
    min_backoff: Option<String>,
    /// Longest retry delay; at least min_backoff, at most 10m. Default 30s.
    max_backoff: Option<String>,
    /// Extra labels on every exported series. Default none.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl RawExport {
    pub fn validate(self, origin: &str) -> Result<Option<RemoteWriteConfig>, ConfigError> {
        let Some(raw) = self.remote_write else {
            return Ok(None);
        };
        let key = |name: &str| format!("export.remote_write.{name}");
        let Some(url) = raw.url else {
            return Err(invalid(
                origin,
                &key("url"),
                "missing (write url = \"http://HOST:PORT/api/v1/write\", or remove [export.remote_write])",
            ));
        };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) => {}
            _ => {
                return Err(invalid(
                    origin,
                    &key("url"),
                    &format!("\"{url}\" is not an http:// or https:// URL (like \"http://127.0.0.1:9090/api/v1/write\")"),
                ))
            }
        }
        let mut config = RemoteWriteConfig::new(&url);
        let file = |name: &str, text: Option<String>| -> Result<Option<PathBuf>, ConfigError> {
            text.map(|text| absolute_path(origin, &key(name), &text))
                .transpose()
        };
        let bearer = file("bearer_token_file", raw.bearer_token_file)?;
        let password = file("basic_auth_password_file", raw.basic_auth_password_file)?;
        config.auth = match (bearer, raw.basic_auth_username, password) {
            (None, None, None) => RemoteAuth::None,
            (Some(path), None, None) => RemoteAuth::BearerTokenFile(path),
            (None, Some(username), Some(password_file)) if !username.is_empty() => RemoteAuth::Basic {
                username,
                password_file,
            },
            (Some(_), _, _) => {
                return Err(invalid(
                    origin,
                    &key("bearer_token_file"),
                    "set together with basic auth (use one of them)",
                ))
            }
            (None, Some(_), None) | (None, Some(_), Some(_)) => {
                return Err(invalid(
                    origin,
                    &key("basic_auth_username"),
                    "needs a non-empty name and basic_auth_password_file (set both, or neither)",
                ))
            }
            (None, None, Some(_)) => {
                return Err(invalid(
                    origin,
                    &key("basic_auth_password_file"),
                    "set without basic_auth_username (set both, or neither)",
                ))
            }
        };
        config.tls_ca = file("tls_ca", raw.tls_ca)?;
        if let Some(size) = raw.batch_size {
            if !(1..=BATCH_SIZE_MAX).contains(&size) {
                return Err(invalid(
                    origin,
                    &key("batch_size"),
                    &format!("{size} is out of range (use 1 to {BATCH_SIZE_MAX})"),
                ));
            }
            config.batch_size = size;
        }
        let duration = |name: &str, text: Option<String>, default: Duration, range| match text {
            None => Ok(default),
            Some(text) => duration_in(origin, &key(name), &text, range),
        };
        config.batch_wait = duration(
            "batch_wait",
            raw.batch_wait,
            config.batch_wait,
            Duration::from_millis(10)..=Duration::from_secs(60),
        )?;
        config.timeout = duration(
            "timeout",
            raw.timeout,
            config.timeout,
            Duration::from_secs(1)..=Duration::from_secs(300),
        )?;
        config.min_backoff = duration(
            "min_backoff",
            raw.min_backoff,
            config.min_backoff,
            Duration::from_millis(10)..=Duration::from_secs(60),
        )?;
        config.max_backoff = duration(
            "max_backoff",
            raw.max_backoff,
            config.max_backoff,
            Duration::from_millis(10)..=Duration::from_secs(600),
        )?;
        if config.max_backoff < config.min_backoff {
            return Err(invalid(
                origin,
                &key("max_backoff"),
                "is shorter than min_backoff (make it at least as long)",
            ));
        }
        for (name, value) in &raw.labels {
            if !super::series::is_label_name(name) || name.starts_with("__") {
                return Err(invalid(
                    origin,
                    &key("labels"),
                    &format!("\"{name}\" is not a label name (use letters, digits and _, not starting with a digit or __)"),
                ));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(invalid(
                    origin,
                    &key("labels"),
                    &format!(
                        "\"{name}\" is set by the exporter itself (pick another name, like \"collector\")"
                    ),
                ));
            }
            if value.is_empty() {
                return Err(invalid(
                    origin,
                    &key("labels"),
                    &format!(
                        "\"{name}\" has an empty value (Prometheus drops empty labels; give it a value)"
                    ),
                ));
            }
        }
        config.labels = raw.labels;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<RemoteWriteConfig>, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            export: RawExport,
        }
        let doc: Doc = toml::from_str(text).expect("valid TOML");
        doc.export.validate("collector.toml")
    }

    #[test]
    fn remote_write_parses_with_defaults_and_every_key() {
        assert_eq!(parse("").unwrap(), None);
        let minimal = parse("[export.remote_write]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            minimal,
            RemoteWriteConfig::new("http://127.0.0.1:9090/api/v1/write")
        );
        let full = parse(
            "[export.remote_write]\nurl = \"https://tsdb.example:8428/api/v1/write\"\n\
             bearer_token_file = \"/etc/headroom/rw.token\"\ntls_ca = \"/etc/headroom/tsdb-ca.pem\"\n\
             batch_size = 100\nbatch_wait = \"250ms\"\ntimeout = \"10s\"\nmin_backoff = \"100ms\"\n\
             max_backoff = \"5s\"\n[export.remote_write.labels]\ncollector = \"eu-1\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            full.auth,
            RemoteAuth::BearerTokenFile("/etc/headroom/rw.token".into())
        );
        assert_eq!(full.batch_size, 100);
        assert_eq!(full.batch_wait, Duration::from_millis(250));
        assert_eq!(full.max_backoff, Duration::from_secs(5));
        assert_eq!(full.labels["collector"], "eu-1");
        let basic = parse(
            "[export.remote_write]\nurl = \"http://127.0.0.1:1/w\"\nbasic_auth_username = \"rw\"\n\
             basic_auth_password_file = \"/etc/headroom/rw.pass\"\n",
        )
        .unwrap()
        .unwrap();
        assert!(matches!(basic.auth, RemoteAuth::Basic { ref username, .. } if username == "rw"));
    }

    #[test]
    fn bad_remote_write_settings_are_named() {
        let cases = [
            ("[export.remote_write]\n", "export.remote_write.url: missing"),
            ("[export.remote_write]\nurl = \"127.0.0.1:9090\"\n", "not an http:// or https:// URL"),
            (
                "[export.remote_write]\nurl = \"http://a/w\"\nbasic_auth_username = \"u\"\n",
                "export.remote_write.basic_auth_username",
            ),
            (
                "[export.remote_write]\nurl = \"http://a/w\"\nbatch_size = 0\n",
                "export.remote_write.batch_size: 0 is out of range",
            ),
            (
                "[export.remote_write]\nurl = \"http://a/w\"\nmin_backoff = \"2s\"\nmax_backoff = \"1s\"\n",
                "shorter than min_backoff",
            ),
            (
                "[export.remote_write]\nurl = \"http://a/w\"\n[export.remote_write.labels]\nhost = \"x\"\n",
                "set by the exporter itself",
            ),
            (
                "[export.remote_write]\nurl = \"http://a/w\"\n[export.remote_write.labels]\n\"a-b\" = \"x\"\n",
                "is not a label name",
            ),
            (
                "[export.remote_write]\nurl = \"http://a/w\"\nbearer_token_file = \"rel/token\"\n",
                "export.remote_write.bearer_token_file",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}
