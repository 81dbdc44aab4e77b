//! Wiring: `serve` starts the store, ingest, identity, analytics and HTTP; `demo` is the quickstart with its
//! simulated hosts.

pub mod demo;
pub mod serve;
pub mod sim;
