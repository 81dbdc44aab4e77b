//! End to end with a real Alertmanager on loopback: one host goes silent (its agent stops) and another goes
//! hot (the test opens hundreds of loopback TCP connections, so its established-connection count crosses a
//! threshold); both alerts reach Alertmanager with their runbooks, and both resolve when the hosts recover.
//! And a `headroom` rule with `within` fires from the forecast the collector computes from its database: a
//! group whose daily peaks grow a core a day.

use headroom_tests::{e2e_required, free_tcp_port, wait_for, Collector, Process};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";
/// Loopback connections the test opens: each is two established sockets on this host.
const HOT_PAIRS: usize = 300;

/// Established TCP sockets on this host now, from /proc (state 01), IPv4 and IPv6.
fn established_now() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|line| line.split_whitespace().nth(3) == Some("01"))
                .count()
        })
        .sum()
}

fn start_alertmanager(dir: &Path) -> (Process, SocketAddr) {
    let port = free_tcp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let process = Process::start(
        "alertmanager",
        Path::new(ALERTMANAGER),
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.path={}", storage.display()),
            &format!("--web.listen-address={addr}"),
            "--cluster.listen-address=",
        ],
        dir,
    );
    let ready = wait_for(Duration::from_secs(20), || {
        headroom_tests::api_get(addr, "/api/v2/status")
    });
    assert!(
        ready.is_some(),
        "alertmanager did not start: {}",
        process.stderr_text()
    );
    (process, addr)
}

/// Alerts Alertmanager holds, as (alertname, host, state, runbook annotation).
fn alerts(addr: SocketAddr) -> Vec<(String, String, String, String)> {
    let Some(body) = headroom_tests::api_get(addr, "/api/v2/alerts?active=true&silenced=true&inhibited=true")
    else {
        return Vec::new();
    };
    body.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&a["labels"]["alertname"]),
                text(&a["labels"]["host"]),
                text(&a["status"]["state"]),
                text(&a["annotations"]["runbook"]),
            )
        })
        .collect()
}

#[test]
fn a_silent_host_and_a_hot_host_reach_alertmanager_with_runbooks_and_resolve() {
    let _suite = headroom_tests::shared();
    if !Path::new(ALERTMANAGER).exists() {
        let reason = format!("{ALERTMANAGER} is missing (apt-get install prometheus-alertmanager)");
        assert!(!e2e_required(), "{reason}");
        eprintln!("skipped: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut alertmanager, am_addr) = start_alertmanager(dir.path());

    let threshold = established_now() + HOT_PAIRS;
    let rules = dir.path().join("alarms.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[rule]]
name = "connections-hot"
kind = "threshold"
severity = "critical"
for = "1s"
runbook = "https://runbooks.example/connections-hot"
scope = {{ role = "front" }}
metric = "tcp_established"
op = ">"
value = {threshold}.0

[[rule]]
name = "host-silent"
kind = "missing"
severity = "warning"
for = "1s"
grace = "1s"
runbook = "check the agent with systemctl status headroom-agent"
"#
        ),
    )
    .unwrap();
    let collector = Collector::start_with(&format!(
        "[alarms]\nrules = \"{}\"\nalertmanager = \"{am_addr}\"\ninterval = \"200ms\"\n",
        rules.display()
    ));
    let mut quiet = collector.start_agent_extra("db-1", &[("group", "db"), ("role", "store")], FAST);
    let _front = collector.start_agent_extra("web-1", &[("group", "web"), ("role", "front")], FAST);
    for host in ["db-1", "web-1"] {
        assert!(
            collector.wait_host(host, 3, Duration::from_secs(30)).is_some(),
            "{host} never reported"
        );
    }

    // web-1 goes hot: hundreds of established loopback connections on its host.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let mut held = Vec::with_capacity(2 * HOT_PAIRS);
    for _ in 0..HOT_PAIRS {
        held.push(TcpStream::connect(target).unwrap());
        held.push(listener.accept().unwrap().0);
    }
    // db-1 goes silent.
    quiet.terminate(Duration::from_secs(10));

    let expect_active = |name: &str, host: &str, runbook: &str| {
        wait_for(Duration::from_secs(30), || {
            alerts(am_addr)
                .into_iter()
                .find(|a| a.0 == name && a.1 == host && a.2 == "active")
        })
        .map(|a| assert_eq!(a.3, runbook))
        .unwrap_or_else(|| {
            panic!(
                "{name} for {host} never reached alertmanager; it holds {:?}; collector alarms: {:?}",
                alerts(am_addr),
                headroom_tests::api_get(collector.http, "/api/v1/alarms")
            )
        })
    };
    expect_active(
        "connections-hot",
        "web-1",
        "https://runbooks.example/connections-hot",
    );
    expect_active(
        "host-silent",
        "db-1",
        "check the agent with systemctl status headroom-agent",
    );

    // The collector lists both with their runbooks.
    let listed = std::process::Command::new(headroom_tests::binary("headroom-collector"))
        .args([
            "alarms",
            "--format",
            "table",
            "--api",
            &collector.http.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("connections-hot") && text.contains("https://runbooks.example/connections-hot"),
        "{text}"
    );

    // Both recover: the connections close and db-1's agent starts again with its state directory.
    drop(held);
    let state = collector.dir.path().join("agents").join("db-1");
    let _back = headroom_tests::start_agent_configured(
        &state,
        &collector.quic.to_string(),
        &[("group", "db"), ("role", "store")],
        FAST,
        collector.dir.path(),
    );
    let resolved = wait_for(Duration::from_secs(30), || {
        let now = alerts(am_addr);
        let still_active = now
            .iter()
            .any(|a| (a.0 == "connections-hot" || a.0 == "host-silent") && a.2 == "active");
        (!still_active).then_some(now)
    });
    assert!(
        resolved.is_some(),
        "alerts did not resolve: {:?}",
        alerts(am_addr)
    );
    alertmanager.terminate(Duration::from_secs(10));
}

/// Writes into the stopped collector's database a group `web` of three 16-core hosts, one per zone a, b
/// and c, with ten complete UTC days of per-minute sums ending at the last midnight whose load rises by a
/// core a day from 10 cores, and marks those minutes rolled up. Losing a zone leaves 32 cores, so the
/// group stops surviving it at 80 % × 32 = 25.6 cores: about six days after the last day's 19.
fn seed_growing_group(db: &Path, now_ms: u64) {
    const DAY_MS: u64 = 86_400_000;
    const MINUTE_MS: u64 = 60_000;
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    let end_ms = now_ms - now_ms % DAY_MS;
    let start_ms = end_ms - 10 * DAY_MS;
    for zone in ["a", "b", "c"] {
        tx.execute(
            "INSERT INTO hosts (name, labels, group_name, zone, cores, memory_bytes, first_seen_ms, last_seen_ms) \
             VALUES (?1, ?2, 'web', ?3, 16, 68719476736, ?4, ?5)",
            rusqlite::params![
                format!("web-{zone}"),
                format!("{{\"group\":\"web\",\"zone\":\"{zone}\"}}"),
                zone,
                start_ms as i64,
                now_ms as i64
            ],
        )
        .unwrap();
    }
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO group_minutes (minute_ms, group_name, zone, hosts, cpu_busy_cores, cores, \
                 mem_used_bytes, mem_bytes, tcp_established) VALUES (?1, 'web', ?2, 1, ?3, 16, 2e10, \
                 68719476736, 0)",
            )
            .unwrap();
        for minute_ms in (start_ms..end_ms).step_by(MINUTE_MS as usize) {
            let day = (minute_ms - start_ms) / DAY_MS;
            for zone in ["a", "b", "c"] {
                insert
                    .execute(rusqlite::params![
                        minute_ms as i64,
                        zone,
                        (10.0 + day as f64) / 3.0
                    ])
                    .unwrap();
            }
        }
    }
    let cutoff_ms = now_ms - now_ms % MINUTE_MS;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('rollup_raw_cutoff_ms', ?1)",
        [cutoff_ms as i64],
    )
    .unwrap();
    tx.commit().unwrap();
}

#[test]
fn issue_10_a_headroom_forecast_rule_fires_from_the_forecast_refreshed_from_the_database() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alarms.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "web-unsafe-soon"
kind = "headroom"
severity = "warning"
for = "0s"
runbook = "add hosts to the group before the date the forecast gives"
within = "30d"
scope = { group = "web" }
"#,
    )
    .unwrap();
    let mut collector = Collector::start_with(&format!(
        "[alarms]\nrules = \"{}\"\ninterval = \"200ms\"\n",
        rules.display()
    ));
    collector.process.stop_cleanly();
    seed_growing_group(&collector.db_path(), headroom_common::clock::now_ms());
    collector.restart();
    // A live host of the group puts it in the rule's scope; the forecast is computed from the database.
    let _agent = collector.start_agent_extra("web-live", &[("group", "web"), ("zone", "a")], FAST);
    let firing = wait_for(Duration::from_secs(90), || {
        let alarms = headroom_tests::api_get(collector.http, "/api/v1/alarms")?;
        alarms["alarms"]
            .as_array()?
            .iter()
            .find(|a| a["rule"] == "web-unsafe-soon" && a["subject"] == "web" && a["status"] == "firing")
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "the forecast rule never fired; collector alarms: {:?}; log: {}",
            headroom_tests::api_get(collector.http, "/api/v1/alarms"),
            collector.process.stderr_text()
        )
    });
    // The value is the days until unsafe: the line reaches 25.6 cores about six days after the last day.
    let days = firing["value"].as_f64().unwrap();
    assert!((4.0..8.0).contains(&days), "{firing}");
    let summary = firing["summary"].as_str().unwrap();
    assert!(
        summary.contains("forecast of") && summary.contains("cpu: between"),
        "{summary}"
    );
}
