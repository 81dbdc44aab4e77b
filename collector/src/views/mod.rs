//! What people and scripts read: the HTTP API (loopback, or HTTPS with a token: `access`), its client, the table / JSON / CSV renderers, the
//! windowed fleet views and the `sizing` / `report` commands.

pub mod access;
pub mod admin;
pub mod client;
pub mod end;
pub mod hosts_csv;
pub mod http;
pub mod metrics;
pub mod promql;
pub mod render;
pub mod report_cli;
pub mod review;
pub mod web;
pub mod window;

pub use window::*;
