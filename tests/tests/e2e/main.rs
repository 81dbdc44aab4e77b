//! The end-to-end tests, one module per area, in one test binary: it links once, and its tests run
//! concurrently (they mostly wait on real binaries). Every test first takes the suite lock from the tests'
//! library: `headroom_tests::shared()`, or `headroom_tests::exclusive()` for the few that must run alone
//! (`lock_discipline` checks that each test takes one).

mod alarms_e2e;
mod api_doc;
mod cli;
mod clock_skew;
mod code_map;
mod collector_metrics;
mod delivery;
mod enrollment;
mod handshake_flood;
mod http_access;
mod identity;
mod identity_boundary;
mod ingest_limits;
mod install_script;
mod invariants;
mod lock_discipline;
mod package;
mod partition;
mod promql_source;
mod remote_write;
mod report_e2e;
mod several_collectors;
mod signer;
mod source_size;
mod spool_e2e;
mod streaming;
mod systemd_units;
mod views;
mod web_view;
