//! The headroom collector, laid out by layer: `quic` (the QUIC endpoint: quinn-proto's connections driven by one task), `ingest` (the
//! listeners, validation, certificate reload), `store`
//! (SQLite), `live` (the fleet in memory), `analytics` (outliers, alarms), `sizing`, `views` (HTTP API, CLI
//! renderers, reports), `export` (Prometheus remote_write), `identity` (PKI, tokens, enrollment) and `app`
//! (serve, demo) wiring them; `background` holds the low-priority threads for work on the collector's own
//! schedule.

pub mod analytics;
pub mod app;
pub mod background;
pub mod config;
pub mod export;
pub mod identity;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod quic;
pub mod sizing;
pub mod store;
pub mod telemetry;
pub mod views;
