//! A minimal HTTP/1.1 GET for the command line to read the collector's loopback JSON API.
//!
//! The API is on loopback, plain HTTP, with small responses; a full client library would add far more
//! build time than these lines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    let connect_error = |e: std::io::Error| ClientError::Connect {
        addr,
        detail: e.to_string(),
    };
    let response_error = |detail: String| ClientError::Response {
        addr,
        path: path.to_string(),
        detail,
    };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(connect_error)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(connect_error)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
    )
    .map_err(connect_error)?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| response_error(e.to_string()))?;
    let text = String::from_utf8(raw).map_err(|_| response_error("response is not UTF-8".into()))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| response_error("no header end".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(response_error(format!("status {status}: {}", body.trim())));
    }
    let chunked = head.lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    if chunked {
        dechunk(body).ok_or_else(|| response_error("malformed chunked body".into()))
    } else {
        Ok(body.to_string())
    }
}

/// Join the chunks of a chunked transfer-encoded body.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size_line, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").as_deref(),
            Some("Wikipedia")
        );
        assert_eq!(dechunk("4\r\nWi"), None);
    }

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
