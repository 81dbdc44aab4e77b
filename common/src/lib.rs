//! Shared core of headroom: wire types, the sans-IO protocol session, metric derivation (`derive`), backoff,
//! percentiles, the config helpers both binaries use, man pages and completions (`cli_docs`), the atomic file write, the effective-configuration
//! document, human units, the JSON schema version (`schema`), TLS/PKI helpers, small text helpers (`names`) and (feature `http`) the HTTP client.
//!
//! Nothing here opens a socket or spawns a task, except the HTTP client behind the `http` feature. The
//! protocol, backoff and percentile code never reads the clock: time comes in as an argument;
//! `clock::now_ms` is the one wall-clock read, for the binaries' edges.

pub mod backoff;
pub mod cli_docs;
pub mod clock;
pub mod clock_offset;
pub mod config;
pub mod derive;
pub mod effective;
pub mod enroll;
pub mod files;
#[cfg(feature = "http")]
pub mod http;
pub mod names;
pub mod percentile;
pub mod pki;
pub mod schema;
pub mod session;
pub mod spread;
pub mod thread;
pub mod tls;
pub mod units;
pub mod wire;
