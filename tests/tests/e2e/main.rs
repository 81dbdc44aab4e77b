//! The end-to-end tests, one module per area, in one test binary: it links once, and its tests run
//! concurrently (they mostly wait on real binaries). Every test first takes the suite lock from the tests'
//! library: `headroom_tests::shared()` or `long_shared()`, at most `MAX_SHARED` at once, or
//! `headroom_tests::exclusive()` for the few that must run alone (`lock_discipline` checks that each test takes one).
//!
//! The lock decides what runs at once, so the test harness needs more threads than the default of one per
//! core: one for every test, so that every test waits on the lock from the start (`HARNESS_THREADS`), the
//! long shared ones (`long_shared()`) are let in first, and the exclusive ones wait until the shared tests
//! are done. This binary sets `RUST_TEST_THREADS` for itself before the harness reads it,
//! unless it is set already; `--test-threads N` still wins. Set here rather than for the whole
//! workspace (`.cargo/config.toml`), the unit tests of the other crates keep the default.

/// Runs before `main` (the ELF `.init_array`), while the process has one thread, so that changing the
/// environment races with nothing.
extern "C" fn set_test_threads() {
    if std::env::var_os("RUST_TEST_THREADS").is_none() {
        std::env::set_var("RUST_TEST_THREADS", headroom_tests::HARNESS_THREADS.to_string());
    }
}

#[used]
#[link_section = ".init_array"]
static SET_TEST_THREADS: extern "C" fn() = set_test_threads;

mod alarms_e2e;
mod api_doc;
mod bench_ingest;
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
