//! Ingest load benchmark: thousands of simulated agents, each a distinct host with its own client certificate
//! and its own mutual-TLS QUIC connection, stream one sample a second to a running collector. Reports ingest
//! rate, ack latency percentiles, the collector's CPU, memory, bytes written and UDP receive drops, checks
//! the database holds every acknowledged sample exactly once, and optionally measures a reconnect storm.
//!
//! Run it through `bench/ingest.sh`, which builds, starts the collector and collects the figures:
//! `cargo run --release -p headroom-collector --example loadgen -- --help` lists the options.

mod agent;
mod measure;

use agent::{AgentSpec, Progress, Shared};
use anyhow::Context;
use clap::Parser;
use headroom_collector::app::sim::SimSpec;
use headroom_collector::identity::pki_cli::{load_ca, pki_dir};
use headroom_common::pki::{issue_client_cert, CertAndKey};
use measure::{quantile, read_process, read_udp, ticks_per_s, ProcessReading, UdpReading};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(about = "Simulated agents streaming to a running collector over mutual-TLS QUIC")]
struct Args {
    /// The collector's state directory: its CA (pki/ca.pem, pki/ca.key) signs the agents' certificates, and
    /// headroom.db is checked at the end.
    #[arg(long)]
    state_dir: PathBuf,
    /// The collector's QUIC address; loopback only.
    #[arg(long)]
    server: SocketAddr,
    /// Name in the collector's server certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// File holding the collector's PID (rewritten by the restart command of a storm).
    #[arg(long)]
    pid_file: PathBuf,
    /// Simulated agents, 1 to 50000.
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Agents sharing one UDP socket, at most (there are at least as many sockets as source addresses).
    #[arg(long, default_value_t = 2000)]
    agents_per_socket: usize,
    /// Loopback source addresses the agents are spread over (127.0.0.1 ... 127.0.0.250, 127.0.1.1, ...), 1 to
    /// 5000: one
    /// socket per address at least, so every address carries agents. A real fleet comes from as many
    /// addresses as hosts, and the collector limits handshakes in progress per source address; with few
    /// addresses that limit, not the collector's capacity, paces a storm.
    #[arg(long, default_value_t = 1)]
    source_addresses: u16,
    /// New connections per second while the fleet starts.
    #[arg(long, default_value_t = 1000)]
    connect_per_s: u32,
    /// Seconds of steady streaming after every agent connected, before measuring.
    #[arg(long, default_value_t = 10)]
    warmup_s: u64,
    /// Length of the measurement window, 5 to 600 s.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// After the window: kill -9 the collector, run this shell command to start it again (it must write the
    /// new PID to --pid-file and return), and measure until every agent has caught up.
    #[arg(long)]
    storm_restart: Option<String>,
    /// Longest the storm measurement waits for every agent to catch up.
    #[arg(long, default_value_t = 120)]
    storm_timeout_s: u64,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Host names of the simulated agents; also what the database check looks for.
const HOST_PREFIX: &str = "load-";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        anyhow::bail!(
            "--server {}: the load generator only targets loopback addresses",
            args.server
        );
    }
    if !(1..=50_000).contains(&args.agents)
        || !(5..=600).contains(&args.duration_s)
        || args.warmup_s > 600
        || args.storm_timeout_s > 600
        || args.agents_per_socket == 0
        || args.connect_per_s == 0
        || !(1..=16).contains(&args.threads)
        || !(1..=MAX_SOURCE_ADDRESSES).contains(&args.source_addresses)
        || (args.source_addresses > 1 && !args.server.is_ipv4())
    {
        anyhow::bail!(
            "--agents 1..50000, --duration-s 5..600, --warmup-s and --storm-timeout-s at most 600, \
             --source-addresses 1..5000 (more than one only towards an IPv4 server)"
        );
    }
    let ca = load_ca(&pki_dir(&args.state_dir)).context("loading the collector's CA")?;

    let started = Instant::now();
    let certs = issue_certs(&ca, args.agents, args.threads)?;
    let issue_s = started.elapsed().as_secs_f64();
    eprintln!(
        "issued {} client certificates in {issue_s:.2} s ({:.0} per second on {} threads)",
        args.agents,
        args.agents as f64 / issue_s,
        args.threads
    );
    let started = Instant::now();
    let clients = client_configs(&ca.cert_pem, &certs)?;
    let config_s = started.elapsed().as_secs_f64();
    drop(certs);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut report = runtime.block_on(run(&args, clients))?;
    report["certificates"] = json!({
        "issued": args.agents,
        "issue_s": issue_s,
        "issued_per_s": args.agents as f64 / issue_s,
        "threads": args.threads,
        "client_config_s": config_s,
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One P-256 client certificate per agent, each a distinct host, signed by the collector's CA.
fn issue_certs(ca: &CertAndKey, count: usize, threads: usize) -> anyhow::Result<Vec<CertAndKey>> {
    let now = SystemTime::now();
    let validity = Duration::from_secs(2 * 86_400);
    let chunk = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    let range = worker * chunk..((worker + 1) * chunk).min(count);
                    range
                        .map(|index| issue_client_cert(ca, &host_name(index), now, validity))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for worker in workers {
            let issued = worker
                .join()
                .map_err(|_| anyhow::anyhow!("certificate worker panicked"))?;
            all.extend(issued.context("issuing a client certificate")?);
        }
        Ok(all)
    })
}

fn host_name(index: usize) -> String {
    format!("{HOST_PREFIX}{:05}", index + 1)
}

fn client_configs(ca_pem: &str, certs: &[CertAndKey]) -> anyhow::Result<Vec<quinn_proto::ClientConfig>> {
    // The same transport settings as the agent's uplink.
    let mut transport = quinn_proto::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(10)));
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    let transport = Arc::new(transport);
    certs
        .iter()
        .map(|cert| {
            let tls =
                headroom_common::tls::client_config(ca_pem, Some((&cert.cert_pem, &cert.key_pem)), &[])?;
            let crypto = quinn_proto::crypto::rustls::QuicClientConfig::try_from(tls)?;
            let mut client = quinn_proto::ClientConfig::new(Arc::new(crypto));
            client.transport_config(transport.clone());
            Ok(client)
        })
        .collect()
}

/// A varied fleet: three groups over three zones, sizes and loads spread by index.
fn sim_spec(index: usize) -> SimSpec {
    const GIB: u64 = 1 << 30;
    let groups = ["web", "db", "cache"];
    let zones = ["zone-a", "zone-b", "zone-c"];
    let group = groups[index % groups.len()];
    let cores = [4u32, 8, 16, 32][(index / 3) % 4];
    SimSpec {
        host: host_name(index),
        group: group.into(),
        zone: zones[(index / 9) % zones.len()].into(),
        cores,
        memory_bytes: u64::from(cores) * 4 * GIB,
        cpu_busy: 0.15 + 0.6 * ((index * 37) % 100) as f64 / 100.0,
        memory_used: 0.4 + 0.4 * ((index * 53) % 100) as f64 / 100.0,
        established: 100 + ((index * 97) % 3000) as u32,
        rx_bytes_per_s: 1.0e6 + ((index * 13) % 50) as f64 * 1.0e6,
    }
}

fn read_pid(path: &Path) -> anyhow::Result<u32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading pid file {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("pid file {}: not a number", path.display()))
}

/// Everything read at one instant, to difference over a window.
struct Snapshot {
    at: Instant,
    collector: ProcessReading,
    generator: ProcessReading,
    udp: UdpReading,
    samples_acked: u64,
    agent_datagrams: u64,
}

fn snapshot(pid: u32, port: u16, shared: &Shared) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        collector: read_process(pid).unwrap_or_default(),
        generator: read_process(std::process::id()).unwrap_or_default(),
        udp: read_udp(port),
        samples_acked: shared.samples_acked.load(Ordering::Relaxed),
        agent_datagrams: shared.datagrams_sent.load(Ordering::Relaxed),
    }
}

fn database_bytes(state_dir: &Path) -> u64 {
    ["headroom.db", "headroom.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(state_dir.join(name)).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Costs over a window between two snapshots.
fn window_figures(before: &Snapshot, after: &Snapshot) -> Value {
    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let samples = after.samples_acked - before.samples_acked;
    let tick_us = 1e6 / ticks_per_s() as f64;
    let collector_cpu_us = (after.collector.cpu_ticks - before.collector.cpu_ticks) as f64 * tick_us;
    let generator_cpu_us = (after.generator.cpu_ticks - before.generator.cpu_ticks) as f64 * tick_us;
    let written = after
        .collector
        .write_bytes
        .saturating_sub(before.collector.write_bytes);
    // Every loopback datagram is received once, by the collector or by an agent: what the agents did not send,
    // the collector did.
    let loopback = after.udp.host.in_datagrams - before.udp.host.in_datagrams;
    let from_agents = after.agent_datagrams - before.agent_datagrams;
    let per_sample = |n: u64| n as f64 / samples.max(1) as f64;
    json!({
        "seconds": seconds,
        "agent_datagrams_per_sample": per_sample(from_agents),
        "collector_datagrams_per_sample": per_sample(loopback.saturating_sub(from_agents)),
        "samples_acked": samples,
        "ingest_per_s": samples as f64 / seconds,
        "collector_cpu_pct_of_core": collector_cpu_us / seconds / 1e4,
        "collector_cpu_us_per_sample": collector_cpu_us / samples.max(1) as f64,
        "collector_rss_start_mib": before.collector.rss_kib as f64 / 1024.0,
        "collector_rss_mib": after.collector.rss_kib as f64 / 1024.0,
        "collector_peak_rss_mib": after.collector.peak_rss_kib as f64 / 1024.0,
        "collector_written_bytes_per_sample": written as f64 / samples.max(1) as f64,
        "generator_cpu_pct_of_core": generator_cpu_us / seconds / 1e4,
        "udp_rcvbuf_errors": after.udp.host.rcvbuf_errors - before.udp.host.rcvbuf_errors,
        "udp_in_errors": after.udp.host.in_errors - before.udp.host.in_errors,
        "udp_in_datagrams": after.udp.host.in_datagrams - before.udp.host.in_datagrams,
        "collector_socket_drops":
            after.udp.collector_socket_drops.saturating_sub(before.udp.collector_socket_drops),
        "generator_socket_drops": after.udp.other_socket_drops.saturating_sub(before.udp.other_socket_drops),
    })
}

fn latency_figures(latencies_us: &mut [u32]) -> Value {
    latencies_us.sort_unstable();
    let ms = |q: f64| quantile(latencies_us, q) as f64 / 1000.0;
    json!({
        "acks": latencies_us.len(),
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": ms(1.0),
        "over_1s": latencies_us.iter().filter(|&&us| us > 1_000_000).count(),
    })
}

fn count_where(shared: &Shared, test: impl Fn(usize, &Progress) -> bool) -> usize {
    shared
        .progress
        .iter()
        .enumerate()
        .filter(|(i, p)| test(*i, p))
        .count()
}

/// The most source addresses: 127.0.0.1 to 127.0.19.250.
const MAX_SOURCE_ADDRESSES: u16 = 5000;

/// The `index`th loopback source address: 250 per third octet, from 127.0.0.1.
fn source_address(index: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, (index / 250) as u8, (index % 250 + 1) as u8)
}

async fn run(args: &Args, clients: Vec<quinn_proto::ClientConfig>) -> anyhow::Result<Value> {
    let count = clients.len();
    let shared = Arc::new(Shared {
        server: args.server,
        server_name: args.server_name.clone(),
        progress: (0..count).map(|_| Progress::default()).collect(),
        recording: AtomicBool::new(false),
        sampling: AtomicBool::new(true),
        latencies_us: Mutex::new(Vec::new()),
        samples_acked: AtomicU64::new(0),
        connect_failures: AtomicU64::new(0),
        refusals: AtomicU64::new(0),
        handshake_timeouts: AtomicU64::new(0),
        welcome_timeouts: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        datagrams_sent: AtomicU64::new(0),
        stop: CancellationToken::new(),
    });
    let per_socket = args
        .agents_per_socket
        .min(count.div_ceil(usize::from(args.source_addresses)))
        .max(1);
    let sockets = count.div_ceil(per_socket);
    let bind = |socket: usize| -> SocketAddr {
        if args.server.is_ipv4() {
            SocketAddr::from((source_address(socket % usize::from(args.source_addresses)), 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        }
    };
    let t0 = Instant::now();
    let mut per_socket_specs: Vec<Vec<AgentSpec>> = (0..sockets).map(|_| Vec::new()).collect();
    for (index, client) in clients.into_iter().enumerate() {
        let start_at = t0 + Duration::from_secs_f64(index as f64 / f64::from(args.connect_per_s));
        // Phases spread evenly over the second, so the fleet's samples do not arrive in one burst.
        let mut first_tick_at = t0 + Duration::from_micros((index as u64 * 1_000_000) / count as u64);
        while first_tick_at < start_at {
            first_tick_at += Duration::from_secs(1);
        }
        per_socket_specs[index / per_socket].push(AgentSpec {
            index,
            sim: sim_spec(index),
            client,
            instance_id: fastrand::u64(1..),
            start_at,
            first_tick_at,
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, specs) in per_socket_specs.into_iter().enumerate() {
        let socket =
            std::net::UdpSocket::bind(bind(socket)).context("binding the load generator's UDP sockets")?;
        tasks.spawn(agent::run_socket(socket, specs, shared.clone()));
    }

    // Connect phase, bounded: the paced starts plus a minute.
    let connect_deadline =
        Duration::from_secs_f64(count as f64 / f64::from(args.connect_per_s)) + Duration::from_secs(60);
    let mut all_connected_s = None;
    while t0.elapsed() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if count_where(&shared, |_, p| p.welcomes.load(Ordering::Relaxed) > 0) == count {
            all_connected_s = Some(t0.elapsed().as_secs_f64());
            break;
        }
    }
    let connected = count_where(&shared, |_, p| p.welcomes.load(Ordering::Relaxed) > 0);
    eprintln!(
        "{connected} of {count} agents connected after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    tokio::time::sleep(Duration::from_secs(args.warmup_s)).await;
    let mut pid = read_pid(&args.pid_file)?;
    let port = args.server.port();
    let before = snapshot(pid, port, &shared);
    let db_before = database_bytes(&args.state_dir);
    shared.latencies_us.lock().expect("latency lock poisoned").clear();
    shared.recording.store(true, Ordering::Relaxed);
    let mut previous = snapshot(pid, port, &shared);
    // The collector's RSS at every progress line: a single reading can land in a rollup pass's transient
    // memory, so flatness is judged on the readings of the window's first and last minutes (bench/ingest.sh).
    let mut rss_readings_mib = vec![before.collector.rss_kib as f64 / 1024.0];
    let window_end = Instant::now() + Duration::from_secs(args.duration_s);
    let mut latencies_seen = 0usize;
    while Instant::now() < window_end {
        let step = window_end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(10));
        tokio::time::sleep(step).await;
        let now = snapshot(pid, port, &shared);
        let step_figures = window_figures(&previous, &now);
        // The acks of this line alone, so that a tail can be placed in time (a once-a-minute pass, say).
        let mut line_latencies = {
            let latencies = shared.latencies_us.lock().expect("latency lock poisoned");
            latencies[latencies_seen.min(latencies.len())..].to_vec()
        };
        latencies_seen += line_latencies.len();
        line_latencies.sort_unstable();
        eprintln!(
            "  {:>5.1} s: {:>7.0} samples/s acked, collector {:>5.1} % cpu, {:>6.1} MiB, rcvbuf errors +{}, \
             ack p99 {:.0} ms, max {:.0} ms, datagrams a sample: agent {:.2}, collector {:.2}",
            now.at.duration_since(before.at).as_secs_f64(),
            step_figures["ingest_per_s"].as_f64().unwrap_or(0.0),
            step_figures["collector_cpu_pct_of_core"].as_f64().unwrap_or(0.0),
            step_figures["collector_rss_mib"].as_f64().unwrap_or(0.0),
            step_figures["udp_rcvbuf_errors"],
            quantile(&line_latencies, 0.99) as f64 / 1000.0,
            quantile(&line_latencies, 1.0) as f64 / 1000.0,
            step_figures["agent_datagrams_per_sample"].as_f64().unwrap_or(0.0),
            step_figures["collector_datagrams_per_sample"]
                .as_f64()
                .unwrap_or(0.0),
        );
        rss_readings_mib.push(now.collector.rss_kib as f64 / 1024.0);
        previous = now;
    }
    shared.recording.store(false, Ordering::Relaxed);
    let after = snapshot(pid, port, &shared);
    let db_after = database_bytes(&args.state_dir);
    let mut steady = window_figures(&before, &after);
    let samples_in_window = after.samples_acked - before.samples_acked;
    steady["database_growth_bytes_per_sample"] =
        json!(db_after.saturating_sub(db_before) as f64 / samples_in_window.max(1) as f64);
    steady["collector_rss_readings_mib"] = json!(rss_readings_mib);
    let latency = {
        let mut latencies = std::mem::take(&mut *shared.latencies_us.lock().expect("latency lock poisoned"));
        latency_figures(&mut latencies)
    };

    let storm = match &args.storm_restart {
        Some(command) => {
            let (figures, new_pid) = reconnect_storm(args, command, pid, &shared).await?;
            pid = new_pid;
            Some(figures)
        }
        None => None,
    };

    // Drain: stop sampling and wait, bounded, until everything sampled is acknowledged.
    shared.sampling.store(false, Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs(30);
    let mut behind = count;
    while Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        behind = count_where(&shared, |_, p| {
            p.acked.load(Ordering::Relaxed) < p.produced.load(Ordering::Relaxed)
        });
        if behind == 0 {
            break;
        }
    }
    let produced: u64 = shared
        .progress
        .iter()
        .map(|p| p.produced.load(Ordering::Relaxed))
        .sum();
    let acked: u64 = shared
        .progress
        .iter()
        .map(|p| p.acked.load(Ordering::Relaxed))
        .sum();
    let end = read_process(pid).unwrap_or_default();
    shared.stop.cancel();
    while let Ok(Some(done)) = tokio::time::timeout(Duration::from_secs(10), tasks.join_next()).await {
        done.context("a socket's agents panicked")?
            .context("running a socket's agents")?;
    }
    let database = check_database(&args.state_dir.join("headroom.db"), acked, produced)?;

    Ok(json!({
        "agents": count,
        "warmup_s": args.warmup_s,
        "sockets": sockets,
        "source_addresses": usize::from(args.source_addresses).min(sockets),
        "connect": {
            "per_s_requested": args.connect_per_s,
            "connected": connected,
            "all_connected_s": all_connected_s,
        },
        "steady": steady,
        "ack_latency": latency,
        "storm": storm,
        "totals": {
            "produced": produced,
            "acked": acked,
            "agents_behind_after_drain": behind,
            "connect_failures": shared.connect_failures.load(Ordering::Relaxed),
            "refusals": shared.refusals.load(Ordering::Relaxed),
            "handshake_timeouts": shared.handshake_timeouts.load(Ordering::Relaxed),
            "welcome_timeouts": shared.welcome_timeouts.load(Ordering::Relaxed),
            "disconnects": shared.disconnects.load(Ordering::Relaxed),
            "collector_peak_rss_mib": end.peak_rss_kib as f64 / 1024.0,
        },
        "database": database,
    }))
}

/// kill -9 the collector with every agent connected, restart it, and time until every agent has
/// reconnected and has everything it sampled acknowledged (at most two samples behind, i.e. live again).
async fn reconnect_storm(
    args: &Args,
    command: &str,
    pid: u32,
    shared: &Shared,
) -> anyhow::Result<(Value, u32)> {
    let welcomes_before: Vec<u32> = shared
        .progress
        .iter()
        .map(|p| p.welcomes.load(Ordering::Relaxed))
        .collect();
    let rcvbuf_errors_before = read_udp(args.server.port()).host.rcvbuf_errors;
    // Connect failures by kind, counted from the kill on.
    let failures = |shared: &Shared| {
        [
            shared.connect_failures.load(Ordering::Relaxed),
            shared.refusals.load(Ordering::Relaxed),
            shared.handshake_timeouts.load(Ordering::Relaxed),
            shared.welcome_timeouts.load(Ordering::Relaxed),
        ]
    };
    let failures_before = failures(shared);
    let killed_at = Instant::now();
    // SAFETY: kill(2) with a PID we were given and a constant signal has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
        anyhow::bail!("kill -9 {pid}: {}", std::io::Error::last_os_error());
    }
    // A process blocked in disk IO dies only when that IO completes, and its socket is released only then:
    // wait, bounded, until the port can be bound again, so the restart does not fail on "address in use".
    let mut port_free_s = None;
    for _ in 0..600 {
        if std::net::UdpSocket::bind(args.server).is_ok() {
            port_free_s = Some(killed_at.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(
        port_free_s.is_some(),
        "udp {} still bound 30 s after kill -9 {pid}",
        args.server
    );
    let command = command.to_string();
    let restart =
        tokio::task::spawn_blocking(move || std::process::Command::new("sh").arg("-c").arg(command).status());
    let status = tokio::time::timeout(Duration::from_secs(30), restart)
        .await
        .context("the storm restart command did not return within 30 s")?
        .context("the storm restart command's thread failed")?
        .context("running the storm restart command")?;
    anyhow::ensure!(status.success(), "the storm restart command failed: {status}");
    let restarted_s = killed_at.elapsed().as_secs_f64();
    let new_pid = read_pid(&args.pid_file)?;
    let count = shared.progress.len();
    let reconnected = |i: usize, p: &Progress| p.welcomes.load(Ordering::Relaxed) > welcomes_before[i];
    let caught_up = |i: usize, p: &Progress| {
        reconnected(i, p) && p.acked.load(Ordering::Relaxed) + 2 >= p.produced.load(Ordering::Relaxed)
    };
    let deadline = killed_at + Duration::from_secs(args.storm_timeout_s);
    let (mut all_reconnected_s, mut all_caught_up_s) = (None, None);
    let mut peak_rss_kib = 0;
    let mut last_print = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss_kib = peak_rss_kib.max(read_process(new_pid).map_or(0, |r| r.rss_kib));
        let back = count_where(shared, reconnected);
        let live = count_where(shared, caught_up);
        if all_reconnected_s.is_none() && back == count {
            all_reconnected_s = Some(killed_at.elapsed().as_secs_f64());
        }
        if live == count {
            all_caught_up_s = Some(killed_at.elapsed().as_secs_f64());
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "  storm {:>5.1} s: {back} reconnected, {live} caught up of {count}",
                killed_at.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
    }
    let udp_after = read_udp(args.server.port());
    let [failed, refused, handshake_timeouts, welcome_timeouts] = {
        let after = failures(shared);
        [0, 1, 2, 3].map(|i| after[i] - failures_before[i])
    };
    let figures = json!({
        "connect_failures": failed,
        "refusals": refused,
        "handshake_timeouts": handshake_timeouts,
        "welcome_timeouts": welcome_timeouts,
        "port_free_after_kill_s": port_free_s,
        "restart_command_returned_s": restarted_s,
        "all_reconnected_s": all_reconnected_s,
        "all_caught_up_s": all_caught_up_s,
        "reconnected": count_where(shared, reconnected),
        "caught_up": count_where(shared, caught_up),
        "collector_peak_rss_mib": peak_rss_kib as f64 / 1024.0,
        "udp_rcvbuf_errors": udp_after.host.rcvbuf_errors - rcvbuf_errors_before,
        // The restarted collector has a new socket whose drop count starts at zero.
        "collector_socket_drops": udp_after.collector_socket_drops,
    });
    Ok((figures, new_pid))
}

/// Every acknowledged sample is in the database exactly once.
fn check_database(path: &Path, acked: u64, produced: u64) -> anyhow::Result<Value> {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {} read-only", path.display()))?;
    db.busy_timeout(Duration::from_secs(10))?;
    let pattern = format!("{HOST_PREFIX}%");
    let stored: u64 = db.query_row(
        "SELECT COUNT(*) FROM samples JOIN hosts ON hosts.id = samples.host_id WHERE hosts.name LIKE ?1",
        [&pattern],
        |row| row.get(0),
    )?;
    let duplicates: u64 = db.query_row(
        "SELECT COUNT(*) FROM (SELECT host_id, seq FROM samples GROUP BY host_id, seq HAVING COUNT(*) > 1)",
        [],
        |row| row.get(0),
    )?;
    let page_size: u64 = db.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let pages: u64 = db.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let files = database_bytes(path.parent().unwrap_or(Path::new(".")));
    Ok(json!({
        "stored_rows": stored,
        "acked": acked,
        // A sample can be committed and its ack lost (a connection cut right after the commit), so stored may
        // exceed acked; the agent resends it and the collector drops the duplicate.
        "every_ack_stored_once": stored >= acked && stored <= produced && duplicates == 0,
        "duplicate_rows": duplicates,
        "file_bytes": files,
        "file_bytes_per_row": files as f64 / stored.max(1) as f64,
        "pages_bytes_per_row": (page_size * pages) as f64 / stored.max(1) as f64,
    }))
}
