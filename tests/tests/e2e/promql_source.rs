//! Issue 13, point 5 (and issue 14, point 2: the export lag on /metrics): `sizing --source prometheus=URL` computes the group minute sums with PromQL from the
//! series a collector exported, and the report agrees with the one built from the collector's database:
//! same groups, hosts and zones, same verdicts, and peaks within 1e-6 (relative) of each other — both
//! sides average the same stored samples over the same minutes, so only floating-point summation order
//! differs. Per-host memory peaks come from rollup sketches on one side and `quantile_over_time` on the
//! other; they feed the memory loss cases, whose verdicts must agree.

use headroom_tests::{
    binary, http_get, promtool_check_metrics, stored_rows_per_host, wait_export_caught_up, wait_for,
    Collector, Engine, EngineKind, Process, PROMTOOL,
};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PEAK_TOLERANCE: f64 = 1e-6;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn sizing_json(args: &[&str]) -> Value {
    let out = Command::new(binary("headroom-collector"))
        .args(["sizing", "--format", "json", "--window", "15m"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sizing {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= PEAK_TOLERANCE * a.abs().max(b.abs()).max(1e-9)
}

#[test]
fn issue_13_promql_built_report_agrees_with_the_database_built_one() {
    let _suite = headroom_tests::long_shared();
    let Some(engine) = Engine::start(EngineKind::Prometheus) else {
        return;
    };
    let collector = Collector::start_with(&format!(
        "[export.remote_write]\nurl = \"{}\"\nbatch_size = 500\nbatch_wait = \"200ms\"\n\
         [export.remote_write.labels]\ncollector = \"c1\"\n",
        engine.write_url()
    ));
    let hosts = [
        ("pq-web-1", "web", "z1"),
        ("pq-web-2", "web", "z2"),
        ("pq-web-3", "web", "z3"),
        ("pq-db-1", "db", "z1"),
    ];
    let started_ms = now_ms();
    let mut agents: Vec<Process> = hosts
        .iter()
        .map(|(host, group, zone)| {
            collector.start_agent_extra(
                host,
                &[("group", group), ("zone", zone)],
                "[sampling]\ninterval = \"200ms\"\n",
            )
        })
        .collect();
    for ((host, _, _), agent) in hosts.iter().zip(&agents) {
        assert!(
            collector.wait_host(host, 5, Duration::from_secs(90)).is_some(),
            "{host} did not report: {}",
            agent.stderr_text()
        );
    }
    // Data in at least two minutes, so the sums of several minutes are compared.
    let next_minute_ms = (started_ms / 60_000 + 1) * 60_000;
    wait_for(Duration::from_secs(120), || {
        (now_ms() > next_minute_ms + 5_000).then_some(())
    });
    for agent in &mut agents {
        assert_eq!(agent.terminate(Duration::from_secs(20)), Some(0));
    }
    let export = wait_export_caught_up(&collector, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("export did not catch up: {}", collector.process.stderr_text()));
    assert_eq!(export["dropped_rows"], 0, "{export}");
    // Issue 14, point 2: caught up, /metrics says the export is 0 s and 0 rows behind, with no gap, and
    // promtool accepts the exposition with the export metrics in it.
    let scrape = http_get(collector.http, "/metrics", &[]).expect("scraping /metrics");
    for line in [
        "headroom_collector_export_lag_seconds 0.0",
        "headroom_collector_export_backlog_rows 0",
        "headroom_collector_export_rows_total{result=\"gap\"} 0",
    ] {
        assert!(
            scrape.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            scrape.body
        );
    }
    if std::path::Path::new(PROMTOOL).exists() {
        let (ok, output) = promtool_check_metrics(&scrape.body);
        assert!(ok, "promtool check metrics: {output}");
    }
    let stored = stored_rows_per_host(&collector.db_path());
    let at_s = now_ms() as f64 / 1000.0 + 1.0;
    for (host, _, _) in hosts {
        let counted = wait_for(Duration::from_secs(60), || {
            let result = engine.query(
                &format!("count_over_time(headroom_host_cpu_cores{{host=\"{host}\"}}[1h])"),
                at_s,
            )?;
            let count = result.first()?["value"][1].as_str()?.parse::<f64>().ok()? as u64;
            (count == stored[host]).then_some(count)
        });
        assert!(
            counted.is_some(),
            "{host}: the engine does not hold its {} rows",
            stored[host]
        );
    }

    // The window ends after the last sample and at the same instant for both.
    let end = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(1)).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sizing.toml");
    // Connections on the engine's port: the exporter's and the test's connections to it, seen by every agent.
    std::fs::write(
        &config,
        format!(
            "[sizing]\nmax_connections = {{ \"{}\" = 1000 }}\n",
            engine.addr.port()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let db = collector.db_path();
    let from_db = sizing_json(&["--db", db.to_str().unwrap(), "--end", &end, "--config", config]);
    let source = format!("prometheus={}", engine.query_url());
    let from_promql = sizing_json(&["--source", &source, "--end", &end, "--config", config]);

    let groups = |report: &Value| -> Vec<String> {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(groups(&from_db), vec!["db", "web"], "{from_db}");
    assert_eq!(groups(&from_promql), groups(&from_db), "{from_promql}");
    for (a, b) in from_db["groups"]
        .as_array()
        .unwrap()
        .iter()
        .zip(from_promql["groups"].as_array().unwrap())
    {
        let name = &a["name"];
        for key in ["status", "hosts", "domains", "binding", "k", "hosts_to_add"] {
            assert_eq!(a[key], b[key], "{name}: {key} differs\ndb: {a}\npromql: {b}");
        }
        let resources = |g: &Value| g["resources"].as_array().unwrap().clone();
        let (ra, rb) = (resources(a), resources(b));
        assert_eq!(ra.len(), rb.len(), "{name}: resources\ndb: {a}\npromql: {b}");
        assert!(
            ra.iter().any(|r| r["resource"]["kind"] == "connections"),
            "{name}: connections are sized: {a}"
        );
        for (x, y) in ra.iter().zip(&rb) {
            let what = format!("{name} {}", x["resource"]);
            assert_eq!(x["resource"], y["resource"], "{what}");
            assert_eq!(x["safe"], y["safe"], "{what}: verdict\ndb: {x}\npromql: {y}");
            assert_eq!(x["peak_minute_ms"], y["peak_minute_ms"], "{what}: peak minute");
            for key in ["peak", "capacity"] {
                let (p, q) = (x[key].as_f64().unwrap(), y[key].as_f64().unwrap());
                assert!(close(p, q), "{what}: {key} {p} (database) vs {q} (PromQL)");
            }
            assert_eq!(
                x["distribution"]["minutes"], y["distribution"]["minutes"],
                "{what}: minutes with data"
            );
        }
    }
    assert!(
        from_promql["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("read with PromQL from")),
        "{from_promql}"
    );
}

#[test]
fn issue_13_an_unreachable_query_api_is_a_one_line_error_naming_it() {
    let _suite = headroom_tests::shared();
    let port = headroom_tests::free_tcp_port();
    let out = Command::new(binary("headroom-collector"))
        .args([
            "sizing",
            "--window",
            "1h",
            "--config",
            "/nonexistent/collector.toml",
        ])
        .arg("--source")
        .arg(format!("prometheus=http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/api/v1/query")),
        "{stderr}"
    );
    let out = Command::new(binary("headroom-collector"))
        .args(["sizing", "--source", "influx=http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prometheus=URL"));
}
