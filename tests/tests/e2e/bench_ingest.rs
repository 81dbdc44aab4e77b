//! Issue 12: the ingest benchmark's harness end to end. `bench/ingest.sh` starts a real collector, the load
//! generator (`collector/examples/loadgen`) connects a few dozen simulated agents over mutual-TLS QUIC, and
//! after the window the database is checked: every acknowledged sample stored once. A benchmark that no
//! longer runs, or whose check no longer holds, fails here rather than on the day someone measures.

use headroom_tests::source::workspace;
use headroom_tests::{binary, e2e_required, free_tcp_port, free_udp_port};
use std::process::Command;

const AGENTS: u64 = 40;
const DURATION_S: u64 = 6;
/// Loopback source addresses the agents come from: each carries agents (ten each here).
const SOURCES: u64 = 4;

/// The debug build's directory, holding the collector and the load generator; None (the test skips) when the
/// load generator is not built, which fails under HEADROOM_E2E=1.
fn debug_builds() -> Option<std::path::PathBuf> {
    let collector = binary("headroom-collector");
    let bin_dir = collector.parent().expect("target directory").to_path_buf();
    if bin_dir.join("examples/loadgen").exists() {
        return Some(bin_dir);
    }
    let why = "the load generator is not built: the README's test command builds it \
               (`cargo build --workspace --bins --example loadgen`)";
    assert!(!e2e_required(), "{why} (HEADROOM_E2E=1)");
    println!("skipped: {why}");
    None
}

#[test]
fn issue_12_the_ingest_benchmark_runs_its_agents_and_finds_every_sample_stored_once() {
    let _suite = headroom_tests::shared();
    let Some(bin_dir) = debug_builds() else {
        return;
    };
    let keep = tempfile::tempdir().expect("temp dir");
    let output = Command::new(workspace().join("bench/ingest.sh"))
        .args(["--agents", &AGENTS.to_string()])
        .args(["--warmup", "2", "--duration", &DURATION_S.to_string()])
        .args(["--sources", &SOURCES.to_string()])
        .args(["--port", &free_udp_port().to_string()])
        .args(["--http-port", &free_tcp_port().to_string()])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--keep")
        .arg(keep.path())
        .output()
        .expect("running bench/ingest.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench/ingest.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let result_path = keep.path().join(format!("result-{AGENTS}.json"));
    let text = std::fs::read_to_string(&result_path)
        .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}\n{stderr}", result_path.display()));
    let result: serde_json::Value = serde_json::from_str(&text).expect("the result is JSON");
    assert_eq!(result["connect"]["connected"], AGENTS, "{text}");
    assert_eq!(result["source_addresses"], SOURCES, "{text}");
    assert!(result["sockets"].as_u64() >= Some(SOURCES), "{text}");
    let database = &result["database"];
    assert_eq!(database["every_ack_stored_once"], true, "{text}");
    // Each agent samples once a second: most of the window's samples are acknowledged and stored.
    let acked = database["acked"].as_u64().unwrap_or(0);
    assert!(
        acked >= AGENTS * DURATION_S * 8 / 10,
        "only {acked} samples acknowledged from {AGENTS} agents in {DURATION_S} s: {text}"
    );
    assert!(database["stored_rows"].as_u64() >= Some(acked), "{text}");
    // The table ends with issue 12's targets, each met or missed.
    assert!(
        stdout.contains("| every ack stored exactly once | true | true |"),
        "{stdout}"
    );
    assert!(stdout.contains("Targets (issue 12):"), "{stdout}");
    assert!(stdout.contains("stored exactly once: true: met"), "{stdout}");
}

/// `bench/ingest_ab.sh` runs two builds' collectors at the same time, each with its own agents, and compares
/// their CPU per host-sample; here the same debug build on both sides, for one short round.
#[test]
fn issue_12_the_side_by_side_benchmark_runs_both_builds_at_once_and_compares_them() {
    let _suite = headroom_tests::shared();
    let Some(bin_dir) = debug_builds() else {
        return;
    };
    let ports = [free_udp_port(), free_tcp_port(), free_udp_port(), free_tcp_port()]
        .map(|port| port.to_string())
        .join(",");
    let output = Command::new(workspace().join("bench/ingest_ab.sh"))
        .arg("--a")
        .arg(&bin_dir)
        .arg("--b")
        .arg(&bin_dir)
        .args([
            "--agents",
            "20",
            "--rounds",
            "1",
            "--warmup",
            "2",
            "--duration",
            "5",
        ])
        .args(["--sources", "2", "--ports", &ports])
        .output()
        .expect("running bench/ingest_ab.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench/ingest_ab.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("| 1 |"))
        .unwrap_or_else(|| panic!("no row for round 1:\n{stdout}\n{stderr}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let a: f64 = cells[2].parse().unwrap_or_else(|_| panic!("A's figure in {row}"));
    let b: f64 = cells[3].parse().unwrap_or_else(|_| panic!("B's figure in {row}"));
    let ratio: f64 = cells[4].parse().unwrap_or_else(|_| panic!("the ratio in {row}"));
    assert!(a > 0.0 && b > 0.0, "{row}");
    assert!((ratio - b / a).abs() < 0.002, "{row}");
    assert_eq!(
        cells[8], "yes",
        "every acknowledged sample stored once on both sides: {row}"
    );
    assert!(stdout.contains("B / A, median of 1 round:"), "{stdout}");
}
