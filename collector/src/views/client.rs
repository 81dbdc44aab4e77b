//! The command line's reads of the collector's JSON API, through the shared HTTP client
//! ([`headroom_common::http`]): plain HTTP on loopback, or HTTPS with the bearer token of `http.token_file`.

use headroom_common::http::{BlockingClient, ClientOptions, HttpError};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the collector API at {base}: {detail} (is \"headroom-collector serve\" running? see http_listen, or pass --api)")]
    Connect { base: String, detail: String },
    #[error("collector API at {base}{path}: {detail}")]
    Response {
        base: String,
        path: String,
        detail: String,
    },
}

/// Where the API is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// `http://ADDR` or `https://NAME:PORT`, without a trailing slash.
    pub base: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// PEM CA certificates trusted for HTTPS besides the system's store (the fleet CA, by default).
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Api {
    /// Plain HTTP to `addr`, without a token (a loopback listener).
    pub fn plain(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            token: None,
            extra_roots_pem: None,
        }
    }

    /// The base URL from `--api`: an `http://` or `https://` URL, or IP:port for plain HTTP.
    pub fn parse_base(text: &str) -> Result<String, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(format!("http://{addr}"));
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            headroom_common::http::check_url(text)?;
            return Ok(text.trim_end_matches('/').to_string());
        }
        Err(format!(
            "\"{text}\" is not IP:port or an http(s):// URL (write it like 127.0.0.1:9601 or https://collector.example.net:9601)"
        ))
    }
}

/// GET `path` and return the body of a 200 response.
pub fn get(api: &Api, path: &str) -> Result<String, ClientError> {
    get_with_query(api, path, &[])
}

/// GET `path` with `query` pairs (percent-encoded) and return the body of a 200 response.
pub fn get_with_query(api: &Api, path: &str, query: &[(&str, &str)]) -> Result<String, ClientError> {
    let connect_error = |detail: String| ClientError::Connect {
        base: api.base.clone(),
        detail,
    };
    let client = BlockingClient::new(&ClientOptions {
        timeout: Duration::from_secs(10),
        extra_roots_pem: api.extra_roots_pem.clone(),
        ..ClientOptions::default()
    })
    .map_err(|e| connect_error(e.to_string()))?;
    let authorization = api.token.as_ref().map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| ("Authorization", value))
        .into_iter()
        .collect();
    let response = client
        .get_with_headers(&format!("{}{path}", api.base), query, &headers)
        .map_err(|error| match error {
            HttpError::Request { detail, .. } => connect_error(detail),
            other => connect_error(other.to_string()),
        })?;
    if response.status != 200 {
        let hint = match response.status {
            401 if api.token.is_none() => " (the API wants a bearer token: pass --token-file FILE)",
            401 => " (the token differs from the collector's http.token_file)",
            _ => "",
        };
        return Err(ClientError::Response {
            base: api.base.clone(),
            path: path.to_string(),
            detail: format!("status {}: {}{hint}", response.status, response.body.trim()),
        });
    }
    Ok(response.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_names_the_address_and_the_fix() {
        // A socket bound but never listening holds its port for the whole test, so no other test can take it,
        // and a connection to it is refused.
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = held.local_addr().unwrap();
        let err = get(&Api::plain(addr), "/api/v1/fleet").unwrap_err().to_string();
        assert!(
            err.contains(&addr.to_string()) && err.contains("headroom-collector serve"),
            "{err}"
        );
    }

    #[test]
    fn api_bases_are_addresses_or_urls() {
        assert_eq!(
            Api::parse_base("127.0.0.1:9601").unwrap(),
            "http://127.0.0.1:9601"
        );
        assert_eq!(Api::parse_base("[::1]:9601").unwrap(), "http://[::1]:9601");
        assert_eq!(
            Api::parse_base("https://collector.example.net:9601/").unwrap(),
            "https://collector.example.net:9601"
        );
        assert!(Api::parse_base("collector:9601").is_err());
    }
}
