//! `headroom-collector demo`: a throwaway CA and state directory, a collector on loopback, a real agent
//! sampling this machine, and simulated hosts (`sim-…`) that connect like real agents. Prints the fleet
//! summary every few seconds until Ctrl-C (or `--duration`).

use crate::app::serve::{serve_with_web, web_settings, Bound};
use crate::app::sim::{demo_fleet, SimSource};
use crate::config::{Config, TlsPaths};
use crate::identity::pki_cli::{ca_init, cert_issue, load_ca};
use crate::live::fleet::HostView;
use crate::live::summary::FleetSummary;
use crate::views::client;
use crate::views::render::{render_fleet, Format};
use anyhow::Context;
use headroom_agent::run::{stream, StreamSettings};
use headroom_agent::uplink::UplinkConfig;
use headroom_common::backoff::Backoff;
use headroom_common::files;
use headroom_common::session::Outbox;
use headroom_common::wire::{Hello, PROTOCOL_VERSION};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The demo's outlier window: 5 s instead of a minute, flagged after 3 of the last 6 windows.
const DEMO_OUTLIER_WINDOW: Duration = Duration::from_secs(5);

const DEMO_NOTICE: &str =
    "demo: windows are shortened so things happen within a minute: outlier windows of 5 s \
(flagged after 3 of the last 6), alarms from a demo rules file after 10 s, charts every 5 s, sizing over the \
last hour. A real collector uses 1-minute outlier windows and your own rules.";

/// Alarm rules of the demo: the hot simulated host trips a threshold rule and an outlier rule.
const DEMO_RULES: &str = r#"# Demo alarm rules (the collector refuses to start on a mistake in this file).
[[rule]]
name = "demo-cpu-hot"
kind = "threshold"
severity = "warning"
for = "10s"
runbook = "Find the busiest processes (top -o %CPU), compare the host with its group on the group page, then move load off it or add hosts (see the group's sizing)."
summary = "{host} CPU busy {value} (limit {threshold})"
scope = { group = "web" }
metric = "cpu_busy_pct"
op = ">"
value = 85.0

[[rule]]
name = "demo-cpu-unlike-peers"
kind = "outlier"
severity = "info"
for = "0s"
runbook = "The host works much harder than its peers: check its load balancer weight and what runs only there."
metric = "cpu_busy_pct"
"#;

pub struct DemoOptions {
    pub simulated_hosts: usize,
    pub interval: Duration,
    pub print_every: Duration,
    /// Stop by itself after this long (None: until Ctrl-C).
    pub duration: Option<Duration>,
}

/// The name the real agent gets: `local-` and this machine's host name, made a valid identity.
fn local_host_name() -> String {
    let raw = sysinfo_hostname();
    let cleaned: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.');
    if cleaned.is_empty() {
        "local-host".into()
    } else {
        format!("local-{cleaned}")
    }
}

fn sysinfo_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub async fn run(options: DemoOptions, cancel: CancellationToken) -> anyhow::Result<()> {
    let state = tempfile::Builder::new()
        .prefix("headroom-demo-")
        .tempdir()
        .context("creating a temp dir")?;
    let root = state.path();
    let pki = root.join("collector/pki");
    let now = SystemTime::now();
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let outcome = ca_init(&pki, &names, false, now)?;
    println!("demo state in {} (removed on exit)", root.display());
    println!("throwaway CA {}", outcome.fingerprint);

    // Shorter windows than a real fleet's, so that within the first minute an outlier is flagged, an alarm
    // fires and the charts move; the fleet page and the terminal say so.
    let rules = root.join("demo-alarms.toml");
    files::write_atomic(&rules, DEMO_RULES.as_bytes(), files::PUBLIC_FILE)
        .context("writing the demo alarm rules")?;
    let mut config = Config {
        state_dir: root.join("collector"),
        listen: "127.0.0.1:0".parse().expect("literal address"),
        enroll_listen: Some("127.0.0.1:0".parse().expect("literal address")),
        http_listen: "127.0.0.1:0".parse().expect("literal address"),
        tls: TlsPaths {
            ca: pki.join("ca.pem"),
            cert: pki.join("server.pem"),
            key: pki.join("server.key"),
        },
        ..Config::default()
    };
    // The simulated hosts' certificates carry no labels; their hellos name group, zone and "simulated".
    config.identity.hello_label_keys.push("simulated".to_string());
    config.outliers.window = DEMO_OUTLIER_WINDOW;
    config.outliers.window_count = 6;
    config.outliers.flag_windows = 3;
    config.alarms.rules = Some(rules.clone());
    let web = crate::views::web::WebSettings {
        history_step_ms: 5_000,
        sizing_refresh_ms: 10_000,
        sizing_window: Duration::from_secs(3_600),
        notice: Some(DEMO_NOTICE.to_string()),
        ..web_settings(&config, &pki)
    };
    let tasks = TaskTracker::new();
    let (bound_sender, bound_receiver) = tokio::sync::oneshot::channel();
    let collector_cancel = CancellationToken::new();
    let collector = tokio::spawn(serve_with_web(
        config,
        web,
        collector_cancel.clone(),
        Some(bound_sender),
        false,
    ));
    let bound: Bound = match bound_receiver.await {
        Ok(bound) => bound,
        Err(_) => {
            return match collector.await {
                Ok(Err(e)) => Err(e),
                _ => Err(anyhow::anyhow!("collector stopped before it was listening")),
            }
        }
    };
    println!("collector: QUIC on {}, API on http://{}", bound.quic, bound.http);
    if let Some(enroll) = bound.enroll {
        println!(
            "  enrollment on {enroll}: headroom-collector token create --state-dir {}, then \
             headroom-agent enroll --collector {enroll} --server-name localhost --ca-fingerprint {} --token ...",
            root.join("collector").display(),
            outcome.fingerprint
        );
    }
    println!("  try: headroom-collector fleet --api {}", bound.http);
    println!(
        "web view: http://{}/fleet (collector metrics: http://{}/metrics)",
        bound.http, bound.http
    );
    println!("{DEMO_NOTICE}");
    println!("demo alarm rules: {}", rules.display());
    let sizing_config = write_sizing_config(root)?;
    println!(
        "  try: headroom-collector sizing --config {} --end latest",
        sizing_config.display()
    );

    let ca = load_ca(&pki)?;
    let agents_cancel = CancellationToken::new();

    // The real agent, sampling this machine through /proc and netlink.
    let local = local_host_name();
    let local_dir = root.join("agents").join(&local);
    cert_issue(&ca, &local, &local_dir, Duration::from_secs(86_400), now)?;
    let mut agent_config = headroom_agent::config::Config {
        state_dir: local_dir.clone(),
        collector: Some(headroom_agent::config::CollectorTarget {
            address: bound.quic.to_string(),
            addresses: vec![bound.quic.to_string()],
            server_name: "localhost".into(),
        }),
        tls: headroom_agent::config::TlsPaths::in_dir(&local_dir, "agent"),
        ..Default::default()
    };
    agent_config.sampling.interval = options.interval;
    agent_config.labels.insert("group".into(), "local".into());
    agent_config.labels.insert("zone".into(), "this-machine".into());
    {
        let cancel = agents_cancel.clone();
        tasks.spawn(async move {
            if let Err(e) = headroom_agent::run::run(agent_config, cancel).await {
                eprintln!("demo: real agent failed: {e:#}");
            }
        });
    }
    println!("real agent: {local} (group=local, zone=this-machine)");

    // Simulated hosts: synthetic numbers, real certificates, real QUIC, the same ingest path.
    let fleet = demo_fleet(options.simulated_hosts);
    for (index, spec) in fleet.into_iter().enumerate() {
        let dir = root.join("agents").join(&spec.host);
        cert_issue(&ca, &spec.host, &dir, Duration::from_secs(86_400), now)?;
        let settings = sim_settings(&dir, &spec, bound, options.interval)?;
        let source = SimSource::new(spec, index as u64 + 1);
        let cancel = agents_cancel.clone();
        tasks.spawn(async move {
            stream(settings, source, 1, cancel).await;
        });
    }
    println!(
        "simulated hosts: {} (named sim-…, groups web and db over zone-a/b/c; sim-web-4 runs hot)",
        options.simulated_hosts
    );
    tasks.close();

    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(options.print_every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {
                match fetch_views(bound).await {
                    Ok((summary, hosts)) => {
                        println!("\n{}", render_fleet(&summary, Format::Table));
                        println!("{}", host_line(&hosts));
                        if let Ok(page) = fetch_fleet_page(bound).await {
                            for line in page_lines(&page) {
                                println!("{line}");
                            }
                        }
                    }
                    Err(e) => eprintln!("demo: {e:#}"),
                }
                if options.duration.is_some_and(|d| started.elapsed() >= d) {
                    break;
                }
            }
        }
    }
    println!("stopping: agents flush and say goodbye, then the collector stops");
    agents_cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    collector_cancel.cancel();
    match collector.await {
        Ok(result) => result?,
        Err(e) => anyhow::bail!("collector task failed: {e}"),
    }
    drop(state);
    Ok(())
}

fn sim_settings(
    dir: &Path,
    spec: &crate::app::sim::SimSpec,
    bound: Bound,
    interval: Duration,
) -> anyhow::Result<StreamSettings> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let tls = headroom_common::tls::client_config(
        &read("ca.pem")?,
        Some((&read("agent.pem")?, &read("agent.key")?)),
        &[headroom_common::wire::ALPN],
    )?;
    Ok(StreamSettings {
        uplink: UplinkConfig {
            collectors: vec![bound.quic.to_string()],
            host: spec.host.clone(),
            server_name: "localhost".into(),
            tls: Arc::new(tls),
            backoff: Backoff::default(),
            flush_timeout: Duration::from_secs(2),
        },
        backlog: Box::new(Outbox::new(600)),
        hello: Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: format!("{}-sim", env!("CARGO_PKG_VERSION")),
            instance_id: fastrand::u64(1..),
            interval_ms: interval.as_millis() as u32,
            labels: spec.labels(),
            capacity: spec.capacity(),
            facts: spec.facts(),
        },
        interval,
        notify_systemd: false,
    })
}

/// The fleet summary and the host list, read through the HTTP API exactly as the `fleet` command reads them.
async fn fetch_views(bound: Bound) -> anyhow::Result<(FleetSummary, Vec<HostView>)> {
    let api = client::Api::plain(bound.http);
    let (fleet, hosts) = tokio::task::spawn_blocking(move || {
        Ok::<_, client::ClientError>((
            client::get(&api, "/api/v1/fleet")?,
            client::get(&api, "/api/v1/hosts")?,
        ))
    })
    .await??;
    Ok((
        serde_json::from_str(&fleet).context("decoding the fleet summary")?,
        serde_json::from_str(&hosts).context("decoding the host list")?,
    ))
}

/// The web view's fleet page as JSON, read like any client would.
async fn fetch_fleet_page(bound: Bound) -> anyhow::Result<crate::views::web::model::FleetPage> {
    let body =
        tokio::task::spawn_blocking(move || client::get(&client::Api::plain(bound.http), "/fleet.json"))
            .await??;
    serde_json::from_str(&body).context("decoding the fleet page")
}

/// What the fleet page flags, as terminal lines: outliers, alarms with their runbooks, sizing per group.
fn page_lines(page: &crate::views::web::model::FleetPage) -> Vec<String> {
    let mut lines = Vec::new();
    for outlier in &page.outliers {
        lines.push(format!("outlier: {}", outlier.explanation));
    }
    for alarm in &page.alarms {
        lines.push(format!(
            "alarm {} {} on {}: {} (runbook: {})",
            alarm.status, alarm.rule, alarm.subject, alarm.summary, alarm.runbook
        ));
    }
    for sizing in &page.sizing {
        lines.push(format!(
            "sizing {} over {}: {}{}, hosts to add {}",
            sizing.group,
            page.sizing_window,
            sizing.status,
            sizing
                .binding
                .as_ref()
                .map(|b| format!(", binding {b}"))
                .unwrap_or_default(),
            sizing.hosts_to_add
        ));
    }
    lines
}

/// The demo's collector config for `sizing` and `report`: its database, and the web group's balancer,
/// which gives every host the same share (so the 4-core sim-web-4 binds). The db group keeps the default
/// per-host memory: a database's buffer pool does not move to the survivors.
fn write_sizing_config(root: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let path = root.join("collector.toml");
    let text = format!(
        "state_dir = \"{}\"\n\n[sizing.groups.web]\nbalance = \"equal\"\n",
        root.join("collector").display()
    );
    files::write_atomic(&path, text.as_bytes(), files::PUBLIC_FILE)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// One compact line naming every host with its CPU busy share, hottest first, so the simulated (`sim-`) and
/// the real host stand out.
fn host_line(hosts: &[HostView]) -> String {
    let mut by_cpu: Vec<(&str, f64)> = hosts
        .iter()
        .map(|h| (h.host.as_str(), h.metrics.cpu_busy_pct.unwrap_or(0.0)))
        .collect();
    by_cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = by_cpu
        .iter()
        .map(|(host, cpu)| format!("{host} {cpu:.0}%"))
        .collect();
    format!("hosts by cpu: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::{Balance, MemoryMode};

    #[test]
    fn demo_sizing_config_gives_web_equal_balance_and_db_per_host_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_sizing_config(dir.path()).unwrap();
        let config = crate::config::load(&path).unwrap();
        assert_eq!(config.state_dir, dir.path().join("collector"));
        assert_eq!(config.sizing.for_group("web").balance, Balance::Equal);
        assert_eq!(config.sizing.for_group("db").memory, MemoryMode::PerHost);
    }
}
