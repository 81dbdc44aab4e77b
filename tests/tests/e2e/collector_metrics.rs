//! The collector's own `/metrics`: a real agent streams to it, `promtool check metrics` accepts the
//! exposition, a real Prometheus (Debian `prometheus`, started here on loopback) scrapes it and can query the
//! ingest counters, and `promtool check rules` accepts `deploy/collector-alerts.yml`.

use headroom_tests::{
    e2e_required, free_tcp_port, http_get, promtool_check_metrics, wait_for, Collector, Process, PROMTOOL,
};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";

fn tools_present() -> bool {
    let present = Path::new(PROMETHEUS).exists() && Path::new(PROMTOOL).exists();
    if !present {
        assert!(
            !e2e_required(),
            "{PROMETHEUS} and {PROMTOOL} are required (apt-get install prometheus)"
        );
        eprintln!("skipped: Debian package prometheus is not installed");
    }
    present
}

/// The first value of an instant query, as a number.
fn query(prometheus: SocketAddr, encoded_query: &str) -> Option<f64> {
    let body = headroom_tests::api_get(prometheus, &format!("/api/v1/query?query={encoded_query}"))?;
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_the_collector_metrics_and_promtool_accepts_them() {
    let _suite = headroom_tests::shared();
    if !tools_present() {
        return;
    }
    let collector = Collector::start();
    let _agent = collector.start_agent_extra("metrics-1", &[("group", "web"), ("zone", "a")], FAST);
    assert!(
        collector
            .wait_host("metrics-1", 3, Duration::from_secs(60))
            .is_some(),
        "agent never reported: {}",
        collector.process.stderr_text()
    );

    let scrape = http_get(collector.http, "/metrics", &[]).expect("GET /metrics");
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{}",
        scrape.head
    );
    for name in [
        "headroom_collector_connected_agents 1",
        "headroom_collector_handshakes_total",
        "headroom_collector_samples_ingested_total",
        "headroom_collector_ack_latency_seconds_bucket",
        "headroom_collector_store_commit_seconds_count",
        "headroom_collector_store_queue_depth",
        "headroom_collector_store_reads_waiting",
        "headroom_collector_database_size_bytes",
        "headroom_collector_udp_receive_errors_total",
        "headroom_collector_alarm_deliveries_total",
        "headroom_collector_build_info{version=",
    ] {
        assert!(scrape.body.contains(name), "{name} missing from\n{}", scrape.body);
    }
    let (ok, output) = promtool_check_metrics(&scrape.body);
    assert!(ok, "promtool check metrics: {output}\n{}", scrape.body);

    // A real Prometheus scrapes the collector every second.
    let dir = tempfile::tempdir().unwrap();
    let prometheus: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: headroom-collector\n    \
             static_configs:\n      - targets: [\"{}\"]\n",
            collector.http
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let _prometheus = Process::start(
        "prometheus",
        Path::new(PROMETHEUS),
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={prometheus}"),
        ],
        dir.path(),
    );
    // up{job="headroom-collector"} == 1 and the ingest counter has a positive value in Prometheus.
    let scraped = wait_for(Duration::from_secs(90), || {
        let up = query(prometheus, "up%7Bjob%3D%22headroom-collector%22%7D")?;
        let ingested = query(prometheus, "headroom_collector_samples_ingested_total")?;
        (up == 1.0 && ingested > 0.0).then_some(ingested)
    });
    assert!(
        scraped.is_some(),
        "prometheus never scraped the collector: {}",
        std::fs::read_to_string(dir.path().join("prometheus.stderr")).unwrap_or_default()
    );
}

#[test]
fn the_collector_alert_rules_pass_promtool() {
    let _suite = headroom_tests::shared();
    if !tools_present() {
        return;
    }
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/collector-alerts.yml");
    let out = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
