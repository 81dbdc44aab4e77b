//! Who may use the collector's HTTP listener: the `[http]` config section, the Host-header check against DNS
//! rebinding, the bearer token, and the HTTPS listener (`listener.rs`).
//!
//! The decisions are pure functions of the request's headers and the policy; the middleware around the router
//! and the file reads at start are the only edges.
//!
//! "Loopback" here means exactly `127.0.0.1` and `[::1]`: the addresses every local tool and browser uses by
//! default. Any other address, the rest of 127.0.0.0/8 included (container runtimes and local proxies forward
//! into it), counts as reachable by others, so the listener then requires TLS and a bearer token.

mod listener;

pub use listener::TlsListener;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use headroom_common::config::{absolute_path, invalid, ConfigError};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// The keys of `[http]`, for the config's "did you mean" hints.
pub const SECTION: (&str, &[&str]) = ("http", &["host_names", "tls_cert", "tls_key", "token_file"]);

/// Shortest bearer token accepted: 16 characters, so a guessable word is refused at start.
pub const TOKEN_MIN_CHARS: usize = 16;

/// The validated `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpAccessConfig {
    /// Certificate chain and key served on `http_listen`; `None`: plain HTTP (allowed on loopback only).
    pub tls: Option<HttpTls>,
    /// File holding the bearer token every request must carry; `None`: no token (loopback only).
    pub token_file: Option<PathBuf>,
    /// Names the Host header may carry besides localhost, 127.0.0.1, [::1] and the listen address.
    pub host_names: Vec<String>,
}

/// The HTTPS certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[http]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// PEM certificate chain for HTTPS on http_listen, absolute path. Default none: plain HTTP, loopback only.
    tls_cert: Option<String>,
    /// PEM private key of tls_cert, absolute path. Default none.
    tls_key: Option<String>,
    /// File whose content (trimmed, at least 16 characters) is the bearer token every request must carry,
    /// absolute path. Required when http_listen is not 127.0.0.1 or [::1]. Default none.
    token_file: Option<String>,
    /// Names the Host header may carry besides localhost, 127.0.0.1, [::1] and the listen address, like
    /// ["collector.example.net"]. Default none.
    host_names: Option<Vec<String>>,
}

/// Whether `ip` is one of the two addresses served without TLS and token.
pub fn is_plain_loopback(ip: IpAddr) -> bool {
    ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

impl RawHttp {
    /// Validates the section against the address the listener binds. No IO: the files are read at start.
    pub fn validate(self, origin: &str, http_listen: SocketAddr) -> Result<HttpAccessConfig, ConfigError> {
        let path = |key: &str, text: Option<String>| -> Result<Option<PathBuf>, ConfigError> {
            text.map(|text| absolute_path(origin, key, &text)).transpose()
        };
        let cert = path("http.tls_cert", self.tls_cert)?;
        let key = path("http.tls_key", self.tls_key)?;
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(HttpTls { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    origin,
                    "http.tls_key",
                    "is missing (http.tls_cert is set: give the certificate's private key too)",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    origin,
                    "http.tls_cert",
                    "is missing (http.tls_key is set: give the certificate chain too)",
                ))
            }
        };
        let token_file = path("http.token_file", self.token_file)?;
        let mut host_names = Vec::new();
        for name in self.host_names.unwrap_or_default() {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid =
                name.parse::<IpAddr>().is_ok() || headroom_common::pki::validate_host_name(&name).is_ok();
            if !valid {
                return Err(invalid(
                    origin,
                    "http.host_names",
                    &format!("\"{name}\" is not a DNS name or an IP address (write it like \"collector.example.net\")"),
                ));
            }
            host_names.push(name);
        }
        if !is_plain_loopback(http_listen.ip()) {
            let reachable = format!(
                "http_listen {http_listen} is reachable from other hosts (only 127.0.0.1 and [::1] count as loopback)"
            );
            if tls.is_none() {
                return Err(invalid(
                    origin,
                    "http.tls_cert",
                    &format!(
                        "must be set: {reachable}, so the API needs TLS: set http.tls_cert and http.tls_key (and \
                         http.token_file), or listen on 127.0.0.1"
                    ),
                ));
            }
            if token_file.is_none() {
                return Err(invalid(
                    origin,
                    "http.token_file",
                    &format!(
                        "must be set: {reachable}, so the API needs a bearer token: set http.token_file to a file \
                         holding one (make it with: head -c 32 /dev/urandom | base64), or listen on 127.0.0.1"
                    ),
                ));
            }
        }
        Ok(HttpAccessConfig {
            tls,
            token_file,
            host_names,
        })
    }
}

/// What a request must satisfy: its Host header names this listener, and it carries the token when one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Accepted Host names (lowercase, IPv6 without brackets).
    names: Vec<String>,
    /// Bound to every address (0.0.0.0 or [::]): any IP literal names this listener. A rebinding attack
    /// needs a DNS name, so IP literals never open that door.
    any_ip_literal: bool,
    /// SHA-256 of the bearer token, when one is required.
    token_sha256: Option<[u8; 32]>,
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// No Host header (HTTP/1.0 or a hand-made request).
    NoHost,
    /// A Host this listener does not answer to: a DNS-rebinding page, or a name missing from `http.host_names`.
    WrongHost(String),
    /// The token is required and missing or wrong.
    Unauthorized,
}

impl AccessPolicy {
    /// The policy for a listener on `listen` accepting `extra_names`, with `token` (already read) if any.
    pub fn new(listen: SocketAddr, extra_names: &[String], token: Option<&str>) -> AccessPolicy {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        if !listen.ip().is_unspecified() {
            names.push(listen.ip().to_string());
        }
        names.extend(extra_names.iter().cloned());
        names.sort();
        names.dedup();
        AccessPolicy {
            names,
            any_ip_literal: listen.ip().is_unspecified(),
            token_sha256: token.map(sha256),
        }
    }

    /// Whether requests must carry a bearer token.
    pub fn requires_token(&self) -> bool {
        self.token_sha256.is_some()
    }

    /// Decides on a request from its Host and Authorization header values. The Host is checked first, so a
    /// page from another origin learns nothing about the token.
    pub fn decide(&self, host: Option<&str>, authorization: Option<&str>) -> Verdict {
        let Some(host) = host else {
            return Verdict::NoHost;
        };
        if !self.allows_host(host) {
            return Verdict::WrongHost(host.to_string());
        }
        match &self.token_sha256 {
            None => Verdict::Allow,
            Some(expected) => {
                let presented = authorization.and_then(bearer_token).map(sha256);
                match presented {
                    Some(presented) if crate::identity::tokens::constant_time_eq(&presented, expected) => {
                        Verdict::Allow
                    }
                    _ => Verdict::Unauthorized,
                }
            }
        }
    }

    fn allows_host(&self, header: &str) -> bool {
        let Some(name) = host_name(header) else {
            return false;
        };
        self.names.contains(&name) || (self.any_ip_literal && name.parse::<IpAddr>().is_ok())
    }
}

/// The name part of a Host header value (`name`, `name:port`, `[v6]`, `[v6]:port`), lowercase, without a
/// trailing dot; `None` when it is malformed.
pub fn host_name(header: &str) -> Option<String> {
    let header = header.trim();
    let (name, port) = if let Some(rest) = header.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        (inside, after.strip_prefix(':'))
    } else {
        match header.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (header, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn sha256(text: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    bytes
}

/// The listener's access as loaded at start: the policy and, for HTTPS, the TLS config.
#[derive(Clone)]
pub struct Access {
    pub policy: Arc<AccessPolicy>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Access {
    /// Plain HTTP with the Host check only (tests and the demo, always on loopback).
    pub fn loopback(listen: SocketAddr) -> Access {
        Access {
            policy: Arc::new(AccessPolicy::new(listen, &[], None)),
            tls: None,
        }
    }

    /// Reads the token file and the TLS files the config names. Errors are one line naming the key and the fix.
    pub fn load(listen: SocketAddr, config: &HttpAccessConfig) -> Result<Access, String> {
        let token = match &config.token_file {
            None => None,
            Some(path) => Some(read_token(path)?),
        };
        let tls = match &config.tls {
            None => None,
            Some(files) => {
                let read = |path: &PathBuf, key: &str| {
                    std::fs::read_to_string(path).map_err(|error| {
                        format!(
                            "http.{key} {}: {error} (check the path and its permissions)",
                            path.display()
                        )
                    })
                };
                let cert = read(&files.cert, "tls_cert")?;
                let key = read(&files.key, "tls_key")?;
                let config = headroom_common::tls::https_server_config(&cert, &key).map_err(|error| {
                    format!(
                        "http.tls_cert {} / http.tls_key {}: {error}",
                        files.cert.display(),
                        files.key.display()
                    )
                })?;
                Some(Arc::new(config))
            }
        };
        Ok(Access {
            policy: Arc::new(AccessPolicy::new(listen, &config.host_names, token.as_deref())),
            tls,
        })
    }
}

/// The token in `path`, trimmed; refused when unreadable or shorter than [`TOKEN_MIN_CHARS`].
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        format!(
            "http.token_file {}: {error} (create it with: head -c 32 /dev/urandom | base64 > FILE; chmod 0600 FILE)",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.chars().count() < TOKEN_MIN_CHARS || token.contains(char::is_whitespace) {
        return Err(format!(
            "http.token_file {}: the token must be one word of at least {TOKEN_MIN_CHARS} characters (make one \
             with: head -c 32 /dev/urandom | base64)",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// The middleware: answers 400, 421 or 401 before any route runs.
pub async fn check(State(policy): State<Arc<AccessPolicy>>, request: Request, next: Next) -> Response {
    // Decided before any await: a borrow of the request (its body is not Sync) must not live across one.
    let verdict = {
        let header_text =
            |name: header::HeaderName| request.headers().get(name).and_then(|v| v.to_str().ok());
        // HTTP/1.1 carries the Host header; an absolute-form request line carries the authority instead.
        let host = header_text(header::HOST)
            .map(str::to_string)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        policy.decide(host.as_deref(), header_text(header::AUTHORIZATION))
    };
    let refuse = |status: StatusCode, message: String| {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    };
    match verdict {
        Verdict::Allow => next.run(request).await,
        Verdict::NoHost => refuse(
            StatusCode::BAD_REQUEST,
            "no Host header: send one naming this collector".to_string(),
        ),
        Verdict::WrongHost(host) => refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "host {host:?} is not served here: use localhost, 127.0.0.1, [::1] or the listen address, or add \
                 the name to http.host_names"
            ),
        ),
        Verdict::Unauthorized => {
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send Authorization: Bearer <the token in http.token_file>"
                    .to_string(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"headroom\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn issue_14_only_loopback_names_and_the_listen_address_pass_the_host_check() {
        let policy = AccessPolicy::new(listen("127.0.0.1:9601"), &[], None);
        for host in [
            "localhost",
            "localhost:9601",
            "127.0.0.1:9601",
            "[::1]:9601",
            "[::1]",
            "LOCALHOST.",
        ] {
            assert_eq!(policy.decide(Some(host), None), Verdict::Allow, "{host}");
        }
        for host in [
            "rebind.example",
            "rebind.example:9601",
            "127.0.0.2:9601",
            "localhost.evil",
            "",
            "[::1",
            "a:b",
        ] {
            assert_ne!(policy.decide(Some(host), None), Verdict::Allow, "{host}");
        }
        assert_eq!(policy.decide(None, None), Verdict::NoHost);
        let named = AccessPolicy::new(listen("10.1.2.3:9601"), &["collector.example.net".into()], None);
        assert_eq!(named.decide(Some("10.1.2.3:9601"), None), Verdict::Allow);
        assert_eq!(named.decide(Some("collector.example.net"), None), Verdict::Allow);
        assert!(matches!(
            named.decide(Some("10.1.2.4"), None),
            Verdict::WrongHost(_)
        ));
        // Bound to every address: any IP literal, never an unknown name.
        let any = AccessPolicy::new(listen("0.0.0.0:9601"), &[], None);
        assert_eq!(any.decide(Some("192.0.2.7:9601"), None), Verdict::Allow);
        assert!(matches!(
            any.decide(Some("rebind.example"), None),
            Verdict::WrongHost(_)
        ));
    }

    #[test]
    fn issue_14_the_token_is_required_when_set_and_checked_after_the_host() {
        let token = "0123456789abcdef0123";
        let policy = AccessPolicy::new(listen("127.0.0.2:9601"), &[], Some(token));
        assert!(policy.requires_token());
        let bearer = format!("Bearer {token}");
        assert_eq!(
            policy.decide(Some("127.0.0.2:9601"), Some(&bearer)),
            Verdict::Allow
        );
        assert_eq!(
            policy.decide(Some("127.0.0.2:9601"), Some(&format!("bearer  {token} "))),
            Verdict::Allow
        );
        for wrong in [
            None,
            Some("Bearer nope"),
            Some(token),
            Some("Basic abc"),
            Some("Bearer "),
        ] {
            assert_eq!(
                policy.decide(Some("127.0.0.2"), wrong),
                Verdict::Unauthorized,
                "{wrong:?}"
            );
        }
        assert!(matches!(
            policy.decide(Some("evil.example"), Some(&bearer)),
            Verdict::WrongHost(_)
        ));
    }

    #[test]
    fn issue_14_a_listener_off_loopback_needs_tls_and_a_token() {
        let validate = |raw: RawHttp, addr: &str| raw.validate("collector.toml", listen(addr));
        assert_eq!(
            validate(RawHttp::default(), "127.0.0.1:9601").unwrap(),
            HttpAccessConfig::default()
        );
        assert!(validate(RawHttp::default(), "[::1]:9601").is_ok());
        for addr in ["127.0.0.2:9601", "0.0.0.0:9601", "[::]:9601"] {
            let error = validate(RawHttp::default(), addr).unwrap_err().to_string();
            assert!(error.contains("http.tls_cert") && error.contains(addr), "{error}");
        }
        let with_tls = || RawHttp {
            tls_cert: Some("/etc/headroom/http.pem".into()),
            tls_key: Some("/etc/headroom/http.key".into()),
            ..RawHttp::default()
        };
        let error = validate(with_tls(), "0.0.0.0:9601").unwrap_err().to_string();
        assert!(
            error.contains("http.token_file") && error.contains("/dev/urandom"),
            "{error}"
        );
        let complete = RawHttp {
            token_file: Some("/etc/headroom/api.token".into()),
            host_names: Some(vec!["Collector.Example.NET.".into()]),
            ..with_tls()
        };
        let config = validate(complete, "0.0.0.0:9601").unwrap();
        assert_eq!(config.host_names, vec!["collector.example.net".to_string()]);
        assert!(config.tls.is_some() && config.token_file.is_some());
        let half = RawHttp {
            tls_cert: Some("/etc/headroom/http.pem".into()),
            ..RawHttp::default()
        };
        assert!(validate(half, "127.0.0.1:9601")
            .unwrap_err()
            .to_string()
            .contains("http.tls_key"));
        let relative = RawHttp {
            token_file: Some("api.token".into()),
            ..RawHttp::default()
        };
        assert!(validate(relative, "127.0.0.1:9601")
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        let bad_name = RawHttp {
            host_names: Some(vec!["not a name".into()]),
            ..RawHttp::default()
        };
        assert!(validate(bad_name, "127.0.0.1:9601").is_err());
    }

    #[test]
    fn issue_14_short_or_unreadable_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "secret\n").unwrap();
        assert!(read_token(&short).unwrap_err().contains("at least 16"));
        let missing = read_token(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("http.token_file"), "{missing}");
        let good = dir.path().join("good");
        std::fs::write(&good, "  c2VjcmV0LXRva2VuLWZvci10ZXN0\n").unwrap();
        assert_eq!(read_token(&good).unwrap(), "c2VjcmV0LXRva2VuLWZvci10ZXN0");
    }
}
