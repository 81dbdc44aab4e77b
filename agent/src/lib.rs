//! The headroom agent: samplers that read the host through /proc and netlink, the uplink that streams
//! samples to the collector over mutual-TLS QUIC, and the service loop that ties them together.

pub mod ack_watch;
pub mod backlog;
pub mod collectors;
pub mod config;
pub mod enroll;
pub mod run;
pub mod sample_view;
pub mod sampler;
pub mod spool;
pub mod state;
pub mod timer;
pub mod uplink;
