//! The command line's reads of the collector's loopback JSON API, through the shared HTTP client
//! ([`headroom_common::http`]).

use headroom_common::http::{BlockingClient, ClientOptions, HttpError};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the collector API at {addr}: {detail} (is \"headroom-collector serve\" running? see http_listen, or pass --api)")]
    Connect { addr: SocketAddr, detail: String },
    #[error("collector API at {addr}{path}: {detail}")]
    Response {
        addr: SocketAddr,
        path: String,
        detail: String,
    },
}

/// GET `path` and return the body of a 200 response.
pub fn get(addr: SocketAddr, path: &str) -> Result<String, ClientError> {
    get_with_query(addr, path, &[])
}

/// GET `path` with `query` pairs (percent-encoded) and return the body of a 200 response.
pub fn get_with_query(addr: SocketAddr, path: &str, query: &[(&str, &str)]) -> Result<String, ClientError> {
    let connect_error = |detail: String| ClientError::Connect { addr, detail };
    let client = BlockingClient::new(&ClientOptions {
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    })
    .map_err(|e| connect_error(e.to_string()))?;
    let response = client
        .get(&format!("http://{addr}{path}"), query)
        .map_err(|error| match error {
            HttpError::Request { detail, .. } => connect_error(detail),
            other => connect_error(other.to_string()),
        })?;
    if response.status != 200 {
        return Err(ClientError::Response {
            addr,
            path: path.to_string(),
            detail: format!("status {}: {}", response.status, response.body.trim()),
        });
    }
    Ok(response.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_names_the_address_and_the_fix() {
        // Bind and drop to find a port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = get(addr, "/api/v1/fleet").unwrap_err().to_string();
        assert!(
            err.contains(&addr.to_string()) && err.contains("headroom-collector serve"),
            "{err}"
        );
    }
}
