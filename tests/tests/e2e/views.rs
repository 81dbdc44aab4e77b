//! End to end: windowed fleet views grouped by labels, the outliers and alarms commands, and data gaps in
//! the host list, read from a running collector with real agents.

use headroom_tests::{api_get, binary, stderr_with_closed_stdout, Collector};
use std::time::Duration;

const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";

fn cli(collector: &Collector, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary("headroom-collector"))
        .args(args)
        .args(["--api", &collector.http.to_string()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn fleet_views_by_labels_and_window_outliers_alarms_and_gaps() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let _agents = [
        collector.start_agent_extra("web-1", &[("group", "web"), ("zone", "a")], FAST),
        collector.start_agent_extra("web-2", &[("group", "web"), ("zone", "b")], FAST),
        collector.start_agent_extra("db-1", &[("group", "db"), ("zone", "a")], FAST),
    ];
    for host in ["web-1", "web-2", "db-1"] {
        assert!(
            collector.wait_host(host, 5, Duration::from_secs(30)).is_some(),
            "{host} never reported"
        );
    }

    // A 5-minute window from raw rows, by group and zone: three rows, each with cpu percentiles.
    let view = api_get(collector.http, "/api/v1/fleet?by=group,zone&window=5m").expect("fleet view");
    assert_eq!(view["source"], "raw", "{view}");
    let rows = view["rows"].as_array().unwrap();
    let keys: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["key"]["group"].as_str().unwrap(),
                r["key"]["zone"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(keys, ["db/a", "web/a", "web/b"], "{view}");
    let cpu = rows[1]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "cpu_busy_pct")
        .expect("cpu in the view");
    assert_eq!(cpu["count"], 1);
    assert_eq!(cpu["max_host"], "web-1");
    for key in ["mean", "p50", "p90", "p99", "p999", "max"] {
        let value = cpu[key].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&value), "{key} {value}");
    }
    // By group only, over a day (rollups): web has both web hosts.
    let day = api_get(collector.http, "/api/v1/fleet?by=group&window=1d").expect("day view");
    assert_eq!(day["source"], "rollup");
    // Live, by a custom set: the whole fleet in one row with three hosts.
    let live = api_get(collector.http, "/api/v1/fleet?by=&window=live").expect("live view");
    assert_eq!(live["rows"][0]["hosts"], 3, "{live}");

    let (ok, table, err) = cli(&collector, &["fleet", "--by", "group", "--window", "5m"]);
    assert!(ok, "{err}");
    assert!(
        table.contains("group=web") && table.contains("p99.9") && table.contains("max_host"),
        "{table}"
    );
    // Issue 15: the windowed table shows units, never raw byte counts.
    let line = |metric: &str| {
        table
            .lines()
            .find(|l| l.contains(metric))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("cpu_busy_pct").contains('%'), "{table}");
    assert!(line("mem_used_bytes").contains("iB"), "{table}");
    assert!(line("net_rx_bytes_per_s").contains("B/s"), "{table}");
    let (ok, rows_only, err) = cli(
        &collector,
        &["fleet", "--by", "group", "--window", "5m", "--no-header"],
    );
    assert!(ok, "{err}");
    assert!(
        !rows_only.contains("max_host") && !rows_only.starts_with("window"),
        "{rows_only}"
    );
    assert!(
        rows_only.lines().all(|l| l.trim_start().starts_with("group=")),
        "{rows_only}"
    );
    let (ok, csv, _) = cli(
        &collector,
        &["fleet", "--by", "group,zone", "--window", "1h", "--format", "csv"],
    );
    assert!(
        ok && csv.starts_with("key,hosts,metric,count,mean,p50,p90,p99,p999,max,max_host"),
        "{csv}"
    );
    let (ok, _, err) = cli(&collector, &["fleet", "--window", "soon"]);
    assert!(!ok && err.contains("is not a duration"), "{err}");

    // Three hosts: every group is too small for peer outliers, and the answer says so once scored.
    let (ok, outliers, err) = cli(&collector, &["outliers", "--format", "json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&outliers).unwrap();
    assert_eq!(report["outliers"].as_array().unwrap().len(), 0);
    assert_eq!(report["window_count"], 10);

    // No rules configured: alarms are off, and the table says how to turn them on.
    let (ok, alarms, _) = cli(&collector, &["alarms"]);
    assert!(
        ok && alarms.contains("alarms are off: set alarms.rules"),
        "{alarms}"
    );

    // The host list carries a gaps column (no agent lost anything here).
    let (ok, hosts, err) = cli(&collector, &["hosts"]);
    assert!(ok, "{err}");
    assert!(
        hosts.lines().next().unwrap().trim_end().ends_with("gaps"),
        "{hosts}"
    );
    let (ok, hosts, err) = cli(&collector, &["hosts", "--format", "csv", "--no-header"]);
    assert!(ok, "{err}");
    assert_eq!(hosts.lines().count(), 3, "{hosts}");
    assert!(!hosts.contains("host,status"), "{hosts}");

    // Issue 15: a reader that goes away early ends the command quietly, without a panic.
    let api = collector.http.to_string();
    let stderr = stderr_with_closed_stdout("headroom-collector", &["hosts", "--api", &api]);
    assert!(stderr.is_empty(), "{stderr}");

    let (ok, json, _) = cli(&collector, &["hosts", "--format", "json"]);
    let hosts: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        ok && hosts.as_array().unwrap().iter().all(|h| h["gaps"] == 0),
        "{hosts}"
    );
}
