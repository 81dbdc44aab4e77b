//! The headroom collector: QUIC ingest with mutual TLS, the live fleet state and its summary, the loopback
//! JSON API, the command-line views, the PKI commands and the demo.

pub mod alarms;
pub mod analytics;
pub mod client;
pub mod config;
pub mod demo;
pub mod fleet;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod outliers;
pub mod pki_cli;
pub mod reload;
pub mod render;
pub mod report_cli;
pub mod serve;
pub mod sim;
pub mod sizing;
pub mod store;
pub mod summary;
pub mod validate;
pub mod views;
