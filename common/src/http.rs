//! The one HTTP client: alarm delivery to Alertmanager or a webhook, the command line's reads of the
//! collector's API, and the end-to-end tests. It is reqwest on rustls with ring (no OpenSSL), trusting the
//! system's certificate store plus any CA the caller adds, so `https://` targets work as well as `http://`.
//!
//! Only with the `http` feature: the agent does not need it. Responses are read up to a size limit, because a
//! misbehaving receiver must not make the collector buffer without bound.

use std::time::Duration;

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase, with their values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8), at most [`ClientOptions::max_body_bytes`].
    pub body: String,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn header_list(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The client could not be set up (an unreadable extra CA, a TLS backend failure).
    #[error("http client: {0}")]
    Setup(String),
    /// Connecting, sending or reading failed, or timed out.
    #[error("{url}: {detail}")]
    Request { url: String, detail: String },
}

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connecting, and the whole request after it, each.
    pub timeout: Duration,
    /// PEM certificates trusted in addition to the system's store (a private CA of the receiver).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Bytes of a response body kept; the rest is not read.
    pub max_body_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            extra_roots_pem: None,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Checks that `text` is an absolute `http://` or `https://` URL with a host, for config validation.
pub fn check_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|error| format!("\"{text}\" is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("\"{text}\" is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("\"{text}\" has no host"));
    }
    Ok(())
}

fn roots(options: &ClientOptions) -> Result<Vec<reqwest::Certificate>, HttpError> {
    match &options.extra_roots_pem {
        None => Ok(Vec::new()),
        Some(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| HttpError::Setup(format!("extra CA certificates: {error}")))?;
            if certs.is_empty() {
                return Err(HttpError::Setup(
                    "extra CA file holds no PEM certificate".to_string(),
                ));
            }
            Ok(certs)
        }
    }
}

fn request_error(url: &str, error: reqwest::Error) -> HttpError {
    // reqwest's Display is the outermost cause only; the chain says what actually failed (refused, timeout,
    // certificate).
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    HttpError::Request {
        url: url.to_string(),
        detail,
    }
}

/// Applies the options to a reqwest client builder (the async and the blocking one have the same methods but
/// no common trait) and builds it.
macro_rules! build {
    ($builder:expr, $options:expr) => {{
        let options: &ClientOptions = $options;
        let mut builder = $builder
            .use_rustls_tls()
            .connect_timeout(options.timeout)
            .timeout(options.timeout)
            .user_agent(concat!("headroom/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        for root in roots(options)? {
            builder = builder.add_root_certificate(root);
        }
        builder
            .build()
            .map_err(|error| HttpError::Setup(error.to_string()))?
    }};
}

/// An async client, for use on a tokio runtime; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: reqwest::Client,
    max_body_bytes: usize,
}

impl Client {
    pub fn new(options: &ClientOptions) -> Result<Client, HttpError> {
        Ok(Client {
            inner: build!(reqwest::Client::builder(), options),
            max_body_bytes: options.max_body_bytes,
        })
    }

    /// GET `url` with `query` pairs appended (percent-encoded).
    pub async fn get(&self, url: &str, query: &[(&str, &str)]) -> Result<Response, HttpError> {
        let request = self.inner.get(url).query(query);
        self.send(url, request).await
    }

    /// POST a JSON body to `url`.
    pub async fn post_json(&self, url: &str, body: Vec<u8>) -> Result<Response, HttpError> {
        self.post(url, &[("Content-Type", "application/json")], body)
            .await
    }

    /// POST `body` to `url` with these request headers (name, value).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response, HttpError> {
        let mut request = self.inner.post(url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(url, request).await
    }

    async fn send(&self, url: &str, request: reqwest::RequestBuilder) -> Result<Response, HttpError> {
        let mut response = request.send().await.map_err(|e| request_error(url, e))?;
        let status = response.status().as_u16();
        let headers = header_list(response.headers());
        let mut body = Vec::new();
        while body.len() < self.max_body_bytes {
            match response.chunk().await.map_err(|e| request_error(url, e))? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(self.max_body_bytes);
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// A blocking client, for the command line and tests; never call it on an async runtime's worker thread.
#[derive(Debug, Clone)]
pub struct BlockingClient {
    inner: reqwest::blocking::Client,
    max_body_bytes: usize,
}

impl BlockingClient {
    pub fn new(options: &ClientOptions) -> Result<BlockingClient, HttpError> {
        Ok(BlockingClient {
            inner: build!(reqwest::blocking::Client::builder(), options),
            max_body_bytes: options.max_body_bytes,
        })
    }

    /// GET `url` with `query` pairs appended (percent-encoded).
    pub fn get(&self, url: &str, query: &[(&str, &str)]) -> Result<Response, HttpError> {
        self.get_with_headers(url, query, &[])
    }

    /// GET with extra request headers (a `Host` given here replaces the one derived from the URL).
    pub fn get_with_headers(
        &self,
        url: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let mut request = self.inner.get(url).query(query);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().map_err(|e| request_error(url, e))?;
        let status = response.status().as_u16();
        let headers = header_list(response.headers());
        let mut body = Vec::new();
        use std::io::Read;
        response
            .take(self.max_body_bytes as u64)
            .read_to_end(&mut body)
            .map_err(|e| HttpError::Request {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_pass() {
        assert!(check_url("http://127.0.0.1:9093").is_ok());
        assert!(check_url("https://alertmanager.example:9093/prefix").is_ok());
        assert!(check_url("ftp://x/").unwrap_err().contains("http"));
        assert!(check_url("127.0.0.1:9093").is_err());
        assert!(check_url("http://").is_err());
    }

    #[test]
    fn an_extra_ca_without_certificates_is_refused() {
        let options = ClientOptions {
            extra_roots_pem: Some(b"not a certificate".to_vec()),
            ..ClientOptions::default()
        };
        let error = BlockingClient::new(&options).unwrap_err().to_string();
        assert!(error.contains("CA"), "{error}");
    }

    #[test]
    fn a_closed_port_is_a_request_error_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/v1/health");
        let client = BlockingClient::new(&ClientOptions::default()).unwrap();
        match client.get(&url, &[]) {
            Err(HttpError::Request { url: named, detail }) => {
                assert_eq!(named, url);
                assert!(!detail.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_values_are_encoded_and_bodies_are_cut_at_the_limit() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut host = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("host:") {
                    host = line.trim().to_string();
                }
            }
            let body = "x".repeat(1000);
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            (request_line, host)
        });
        let client = BlockingClient::new(&ClientOptions {
            max_body_bytes: 100,
            ..ClientOptions::default()
        })
        .unwrap();
        let response = client
            .get_with_headers(
                &format!("http://{addr}/api/v1/outliers"),
                &[("group", "web & db")],
                &[("Host", "rebind.example")],
            )
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.body.len(), 100);
        let (request_line, host) = server.join().unwrap();
        assert_eq!(host.to_ascii_lowercase(), "host: rebind.example");
        assert!(
            request_line.starts_with("GET /api/v1/outliers?group=web+%26+db HTTP/1.1"),
            "{request_line}"
        );
    }
}
