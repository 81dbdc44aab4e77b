//! One step of the handshake flood bench (`bench/flood.sh`): floods a running collector's streaming port with
//! stalled QUIC handshakes at a set rate from one or more loopback addresses, and meanwhile connects
//! well-behaved agents from 127.0.0.1 (a full mutual-TLS handshake, a hello, the collector's welcome) at a
//! steady pace. Prints one Markdown table row: the flood rate sent, how many agents connected within the
//! deadline and how fast (p50, p99), the peak of handshakes in progress, refusals and Retries by reason, and
//! the collector's RSS growth per hostile handshake it held. Loopback only.

use clap::Parser;
use headroom_common::percentile::nearest_rank_sorted;
use headroom_common::wire::{
    decode_payload, encode_frame, AgentMessage, Capacity, CollectorMessage, FrameDecoder, Hello, HostFacts,
    ALPN, PROTOCOL_VERSION,
};
use headroom_tests::flood::{Flood, FloodSpec};
use headroom_tests::{http_get, scraped_value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "One step of the handshake flood bench against a running collector on loopback")]
struct Args {
    /// The collector's streaming address (`listen`).
    #[arg(long)]
    target: SocketAddr,
    /// The collector's HTTP address, for `/metrics`.
    #[arg(long)]
    http: SocketAddr,
    /// The collector's PID, for its RSS.
    #[arg(long)]
    pid: u32,
    /// A directory of agent identities, one subdirectory each holding agent.pem, agent.key and ca.pem (what
    /// `headroom-collector cert issue --out` writes).
    #[arg(long)]
    agents_dir: PathBuf,
    /// Stalled handshakes per second, all flooding addresses together.
    #[arg(long)]
    rate: f64,
    /// Flooding addresses: 127.0.0.2 onwards.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Length of the step.
    #[arg(long, default_value_t = 15)]
    duration_s: u64,
    /// Well-behaved agent connections started per second during the step.
    #[arg(long, default_value_t = 4.0)]
    connects_per_s: f64,
    /// An agent that has no welcome this long after it started connecting counts as locked out (the agent's
    /// own handshake timeout is 10 s).
    #[arg(long, default_value_t = 10)]
    deadline_s: u64,
}

/// A well-behaved agent's identity.
struct Identity {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.target.ip().is_loopback() && args.http.ip().is_loopback(),
        "--target and --http must be loopback addresses"
    );
    anyhow::ensure!((1..=250).contains(&args.sources), "--sources must be 1 to 250");
    let identities = read_identities(&args.agents_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = scrape(args.http)?;
    let rss_before_kib = rss_kib(args.pid)?;
    let sources: Vec<IpAddr> = (0..args.sources)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
        .collect();
    let flood = Flood::start(FloodSpec {
        target: args.target,
        sources,
        per_s: args.rate,
        alpn: ALPN.to_vec(),
        ca_pem: identities[0].ca_pem.clone(),
    });
    let started = Instant::now();
    let (connect_ms, peak_in_progress, rss_peak_kib) =
        runtime.block_on(run_step(&args, Arc::new(identities), started))?;
    let sent = flood.stop();
    let sent_per_s = sent as f64 / started.elapsed().as_secs_f64();
    let after = scrape(args.http)?;

    let attempts = connect_ms.len();
    let mut connected: Vec<f64> = connect_ms.into_iter().flatten().collect();
    connected.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        nearest_rank_sorted(&connected, q)
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "-".into())
    };
    let delta = |name: &str| scraped_value(&after, name) - scraped_value(&before, name);
    let refused = |reason: &str| {
        delta(&format!(
            "headroom_collector_connections_refused_total{{reason=\"{reason}\"}}"
        ))
    };
    let growth_kib = rss_peak_kib.saturating_sub(rss_before_kib);
    let per_hostile = if peak_in_progress > 0 {
        format!("{:.1}", growth_kib as f64 / peak_in_progress as f64)
    } else {
        "-".into()
    };
    println!(
        "| {} | {:.0} | {:.0} | {}/{} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
        args.sources,
        args.rate,
        sent_per_s,
        connected.len(),
        attempts,
        quantile(0.5),
        quantile(0.99),
        peak_in_progress,
        delta("headroom_collector_handshake_retries_total"),
        refused("handshakes_per_source"),
        refused("handshakes_busy"),
        refused("handshake_timeout"),
        rss_before_kib / 1024,
        growth_kib,
        per_hostile,
    );
    Ok(())
}

/// Connects agents at a steady pace for the step and watches the collector meanwhile. Returns each agent's
/// time to welcome in ms (None: not within the deadline), the peak of handshakes in progress on the
/// streaming listener and the collector's peak RSS.
async fn run_step(
    args: &Args,
    identities: Arc<Vec<Identity>>,
    started: Instant,
) -> anyhow::Result<(Vec<Option<f64>>, u64, u64)> {
    let duration = Duration::from_secs(args.duration_s);
    let deadline = Duration::from_secs(args.deadline_s);
    let connect_every = Duration::from_secs_f64(1.0 / args.connects_per_s.max(0.1));
    let mut attempts = tokio::task::JoinSet::new();
    let mut next_connect = started;
    let mut next_watch = started;
    let mut peak_in_progress: u64 = 0;
    let mut rss_peak_kib: u64 = 0;
    let mut index = 0usize;
    while started.elapsed() < duration {
        let now = Instant::now();
        if now >= next_connect {
            let identities = identities.clone();
            let (target, slot) = (args.target, index % identities.len());
            attempts.spawn(async move {
                let began = Instant::now();
                let endpoint =
                    quinn::Endpoint::client("127.0.0.1:0".parse().expect("a loopback address")).ok()?;
                let welcomed =
                    tokio::time::timeout(deadline, connect_once(&endpoint, target, &identities[slot]))
                        .await
                        .is_ok_and(|result| result.is_ok())
                        .then(|| began.elapsed().as_secs_f64() * 1000.0);
                // Closing is not part of the connect time; give it a moment, bounded.
                endpoint.close(0u32.into(), b"bench");
                let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
                welcomed
            });
            index += 1;
            next_connect += connect_every;
        }
        if now >= next_watch {
            // Scrapes and /proc reads run on this thread; they are short and the agents' handshakes are
            // driven by the same runtime between them.
            let http = args.http;
            if let Ok(text) = tokio::task::spawn_blocking(move || scrape(http)).await? {
                let value = scraped_value(
                    &text,
                    "headroom_collector_handshakes_in_progress{listener=\"streaming\"}",
                );
                peak_in_progress = peak_in_progress.max(value as u64);
            }
            rss_peak_kib = rss_peak_kib.max(rss_kib(args.pid)?);
            next_watch += Duration::from_millis(250);
        }
        let wake = next_connect.min(next_watch);
        tokio::time::sleep(wake.saturating_duration_since(Instant::now())).await;
    }
    let mut results = Vec::new();
    while let Some(result) = attempts.join_next().await {
        results.push(result?);
    }
    Ok((results, peak_in_progress, rss_peak_kib))
}

/// One well-behaved agent: handshake with its certificate, hello, welcome.
async fn connect_once(
    endpoint: &quinn::Endpoint,
    target: SocketAddr,
    identity: &Identity,
) -> anyhow::Result<()> {
    let tls = headroom_common::tls::client_config(
        &identity.ca_pem,
        Some((&identity.cert_pem, &identity.key_pem)),
        &[ALPN],
    )?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))?;
    let client = quinn::ClientConfig::new(Arc::new(crypto));
    let connection = endpoint.connect_with(client, target, "localhost")?.await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "flood-bench".into(),
        instance_id: 1,
        interval_ms: 1000,
        labels: Default::default(),
        capacity: Capacity {
            cores: 1,
            memory_bytes: 1 << 30,
        },
        facts: HostFacts::default(),
    };
    send.write_all(&encode_frame(&AgentMessage::Hello(hello))?)
        .await?;
    let mut decoder = FrameDecoder::default();
    let mut buffer = vec![0u8; 4096];
    let reply = loop {
        if let Some(payload) = decoder.next_frame()? {
            break decode_payload::<CollectorMessage>(&payload, "reply")?;
        }
        let n = recv
            .read(&mut buffer)
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream ended before the welcome"))?;
        decoder.push(&buffer[..n]);
    };
    anyhow::ensure!(
        matches!(reply, CollectorMessage::Welcome(_)),
        "no welcome: {reply:?}"
    );
    Ok(())
}

fn read_identities(dir: &std::path::Path) -> anyhow::Result<Vec<Identity>> {
    let mut identities = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let read = |name: &str| {
            std::fs::read_to_string(path.join(name))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.join(name).display()))
        };
        identities.push(Identity {
            ca_pem: read("ca.pem")?,
            cert_pem: read("agent.pem")?,
            key_pem: read("agent.key")?,
        });
    }
    anyhow::ensure!(
        !identities.is_empty(),
        "{}: no agent identities (cert issue --out DIR/NAME)",
        dir.display()
    );
    Ok(identities)
}

fn scrape(http: SocketAddr) -> anyhow::Result<String> {
    Ok(http_get(http, "/metrics", &[])
        .ok_or_else(|| anyhow::anyhow!("GET http://{http}/metrics failed"))?
        .body)
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/status has no VmRSS"))
}
