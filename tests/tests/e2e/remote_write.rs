//! Issue 13: remote_write export to real engines (Prometheus, VictoriaMetrics) started on 127.0.0.1 in temp
//! dirs. What PromQL reads back equals what the database holds for every exported metric, and neither a
//! kill -9 of the collector mid-export nor a 30 s outage of the receiver loses a sample.

use headroom_tests::{
    stored_rows_per_host, wait_export_caught_up, wait_for, Collector, Engine, EngineKind, Process,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn export_config(engine: &Engine, batch_size: usize) -> String {
    format!(
        "[export.remote_write]\nurl = \"{}\"\nbatch_size = {batch_size}\nbatch_wait = \"200ms\"\n\
         min_backoff = \"100ms\"\nmax_backoff = \"2s\"\ntimeout = \"5s\"\n\
         [export.remote_write.labels]\ncollector = \"c1\"\n\
         [identity]\nhello_label_keys = [\"group\", \"zone\", \"rack\"]\n",
        engine.write_url()
    )
}

const FAST: &str = "[sampling]\ninterval = \"100ms\"\n";

/// Exported name → (samples column, factor), from the table in docs/METRICS.md: the promise under test.
fn documented_columns() -> Vec<(String, String, f64)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/METRICS.md")).unwrap();
    let mut out = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `headroom_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let source = cells[4];
        let Some(column) = source.strip_prefix('`').and_then(|s| s.split('`').next()) else {
            continue;
        };
        if column.contains('.') || column == "samples" {
            continue; // hosts.* and per-port series are checked on their own below
        }
        let factor = if source.contains("÷ 100") { 0.01 } else { 1.0 };
        out.push((name, column.to_string(), factor));
    }
    assert!(
        out.len() >= 21,
        "docs/METRICS.md lists every stored column: {out:?}"
    );
    out
}

/// (timestamp ms, value) pairs of one series over the last hour, read with PromQL.
fn read_series(engine: &Engine, selector: &str, at_s: f64) -> Vec<(i64, f64)> {
    let result = engine.query(&format!("{selector}[1h]"), at_s).unwrap_or_default();
    let Some(series) = result.first() else {
        return Vec::new();
    };
    assert_eq!(result.len(), 1, "{selector}: one series expected, got {result:?}");
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let ts = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
            (ts, pair[1].as_str().unwrap().parse::<f64>().unwrap())
        })
        .collect()
}

fn stored_series(db: &std::path::Path, host: &str, column: &str, factor: f64) -> Vec<(i64, f64)> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let sql = format!(
        "SELECT s.ts_ms, s.{column} FROM samples s JOIN hosts h ON h.id = s.host_id \
         WHERE h.name = ?1 AND s.{column} IS NOT NULL ORDER BY s.ts_ms"
    );
    let mut statement = conn.prepare(&sql).unwrap();
    let rows = statement
        .query_map([host], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
        .unwrap();
    rows.map(|r| {
        let (ts, value) = r.unwrap();
        (ts, value * factor)
    })
    .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn values_read_back_equal_the_store(kind: EngineKind) {
    let Some(engine) = Engine::start(kind) else {
        return;
    };
    let collector = Collector::start_with(&export_config(&engine, 200));
    let hosts = [("rw-web-1", "web", "z1"), ("rw-db-1", "db", "z2")];
    let mut agents: Vec<Process> = hosts
        .iter()
        .map(|(host, group, zone)| {
            collector.start_agent_extra(host, &[("group", group), ("zone", zone), ("rack", "r1")], FAST)
        })
        .collect();
    for ((host, _, _), agent) in hosts.iter().zip(&agents) {
        assert!(
            collector.wait_host(host, 30, Duration::from_secs(60)).is_some(),
            "{host} did not report: {}\n{}",
            agent.stderr_text(),
            collector.process.stderr_text()
        );
    }
    for agent in &mut agents {
        assert_eq!(agent.terminate(Duration::from_secs(20)), Some(0));
    }
    let export = wait_export_caught_up(&collector, Duration::from_secs(90))
        .unwrap_or_else(|| panic!("export did not catch up: {}", collector.process.stderr_text()));
    assert_eq!(export["dropped_rows"], 0, "{export}");
    let db = collector.db_path();
    let at = now_s() + 1.0;
    let stored = stored_rows_per_host(&db);
    for (host, group, zone) in hosts {
        // The engine may make new samples searchable a moment after it acknowledged them.
        let cores = wait_for(Duration::from_secs(30), || {
            let series = read_series(
                &engine,
                &format!("headroom_host_cpu_cores{{host=\"{host}\"}}"),
                at,
            );
            (series.len() as u64 == stored[host]).then_some(series)
        })
        .unwrap_or_else(|| {
            panic!(
                "{kind:?}: {host}: headroom_host_cpu_cores does not hold {} samples",
                stored[host]
            )
        });
        assert!(cores.iter().all(|(_, v)| *v >= 1.0));
        let labels = engine
            .query(&format!("headroom_host_cpu_cores{{host=\"{host}\"}}[1h]"), at)
            .unwrap()[0]["metric"]
            .clone();
        assert_eq!(labels["group"], group, "{labels}");
        assert_eq!(labels["zone"], zone, "{labels}");
        assert_eq!(labels["rack"], "r1", "{labels}");
        assert_eq!(labels["collector"], "c1", "{labels}");
        let mut compared = 0;
        for (name, column, factor) in documented_columns() {
            let want = stored_series(&db, host, &column, factor);
            let got = read_series(&engine, &format!("{name}{{host=\"{host}\"}}"), at);
            assert_eq!(
                got.len(),
                want.len(),
                "{kind:?}: {host} {name}: {} samples read back, {} stored",
                got.len(),
                want.len()
            );
            for ((got_ts, got_v), (want_ts, want_v)) in got.iter().zip(&want) {
                assert_eq!(got_ts, want_ts, "{host} {name}");
                assert!(
                    close(*got_v, *want_v),
                    "{host} {name} at {got_ts}: {got_v} read back, {want_v} stored"
                );
            }
            compared += usize::from(!want.is_empty());
        }
        assert!(compared >= 10, "{host}: only {compared} metrics had data");
        // Per-port series: the collector's own HTTP listener is open on this host during the whole run.
        let port = collector.http.port();
        let established = read_series(
            &engine,
            &format!("headroom_port_established_connections{{host=\"{host}\",port=\"{port}\"}}"),
            at,
        );
        assert_eq!(
            established.len() as u64,
            stored[host],
            "{host}: port {port} series"
        );
        let fill = read_series(
            &engine,
            &format!("headroom_port_accept_queue_fill_ratio{{host=\"{host}\",port=\"{port}\"}}"),
            at,
        );
        assert!(
            !fill.is_empty() && fill.iter().all(|(_, v)| (0.0..=1.0).contains(v)),
            "{fill:?}"
        );
    }
}

#[test]
fn issue_13_prometheus_reads_back_what_the_store_holds() {
    let _suite = headroom_tests::shared();
    values_read_back_equal_the_store(EngineKind::Prometheus);
}

#[test]
fn issue_13_victoria_metrics_reads_back_what_the_store_holds() {
    let _suite = headroom_tests::shared();
    values_read_back_equal_the_store(EngineKind::VictoriaMetrics);
}

/// Samples per host in the engine, counted over the last hour.
pub fn engine_counts(engine: &Engine, hosts: &[String]) -> BTreeMap<String, u64> {
    let at = now_s() + 1.0;
    hosts
        .iter()
        .map(|host| {
            let count = engine
                .query(
                    &format!("count_over_time(headroom_host_cpu_cores{{host=\"{host}\"}}[1h])"),
                    at,
                )
                .and_then(|r| {
                    r.first()
                        .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                })
                .unwrap_or(0.0) as u64;
            (host.clone(), count)
        })
        .collect()
}

#[test]
fn issue_13_kill_9_mid_export_and_a_30s_receiver_outage_lose_nothing() {
    let _suite = headroom_tests::long_shared();
    let Some(mut engine) = Engine::start(EngineKind::Prometheus) else {
        return;
    };
    let mut collector = Collector::start_with(&export_config(&engine, 50));
    let names: Vec<String> = (1..=3).map(|i| format!("rw-outage-{i}")).collect();
    let mut agents: Vec<Process> = names
        .iter()
        .map(|host| collector.start_agent_extra(host, &[("group", "web"), ("zone", "z1")], FAST))
        .collect();
    let sent = |collector: &Collector| {
        headroom_tests::api_get(collector.http, "/api/v1/health")
            .and_then(|h| h["export"]["sent_rows"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        wait_for(Duration::from_secs(60), || (sent(&collector) >= 100)
            .then_some(()))
        .is_some(),
        "export did not start: {}",
        collector.process.stderr_text()
    );
    collector.kill9();
    collector.restart();
    assert!(
        wait_for(Duration::from_secs(60), || (sent(&collector) >= 50).then_some(())).is_some(),
        "export did not resume after kill -9"
    );
    // The receiver goes away for 30 s while the agents keep sampling and the collector keeps storing.
    engine.stop();
    let outage_started = Instant::now();
    let retrying = wait_for(Duration::from_secs(30), || {
        headroom_tests::api_get(collector.http, "/api/v1/health")
            .filter(|h| h["export"]["state"] == "retrying")
    });
    assert!(retrying.is_some(), "the exporter did not notice the outage");
    wait_for(Duration::from_secs(31), || {
        (outage_started.elapsed() >= Duration::from_secs(30)).then_some(())
    });
    engine.restart();
    for agent in &mut agents {
        assert_eq!(agent.terminate(Duration::from_secs(20)), Some(0));
    }
    let export = wait_export_caught_up(&collector, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("export did not catch up: {}", collector.process.stderr_text()));
    assert_eq!(export["dropped_rows"], 0, "{export}");
    assert_eq!(export["gap_rows"], 0, "{export}");
    assert!(export["retries"].as_u64().unwrap() > 0, "{export}");
    let stored = stored_rows_per_host(&collector.db_path());
    assert_eq!(stored.len(), names.len());
    let counts = wait_for(Duration::from_secs(30), || {
        let counts = engine_counts(&engine, &names);
        (counts == stored).then_some(counts)
    });
    assert!(
        counts.is_some(),
        "engine counts {:?} differ from stored rows {stored:?}",
        engine_counts(&engine, &names)
    );
}
