//! End to end with a real Alertmanager on loopback: one host goes silent (its agent stops) and another goes
//! hot (the test opens hundreds of loopback TCP connections, so its established-connection count crosses a
//! threshold); both alerts reach Alertmanager with their runbooks, and both resolve when the hosts recover.

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
