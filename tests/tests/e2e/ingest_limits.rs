//! Issue 11, end to end on loopback: per-connection limits of the streaming listener against a hostile
//! client (quinn used directly, with a certificate of the fleet).
//!
//! - a 1 MiB frame of empty samples closes that one connection, with bounded memory in the collector, while
//!   another agent keeps streaming;
//! - an agent sending 100 times its rate is held to its share of the store writer, and the other agents'
//!   acknowledgements stay within the latency target meanwhile;
//! - a certificate that expires ends the live connection, as revocation does.

use headroom_common::wire::{
    encode_frame, AgentMessage, Batch, Capacity, CollectorMessage, FrameDecoder, Hello, HostFacts, Sample,
    ALPN, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use headroom_tests::Collector;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A kernel memory figure of the process, in KiB ("VmHWM" is the peak resident set).
fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn hello(interval_ms: u32) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "hostile-test".to_string(),
        instance_id: 7,
        interval_ms,
        labels: Default::default(),
        capacity: Capacity {
            cores: 2,
            memory_bytes: 1 << 30,
        },
        facts: HostFacts::default(),
    }
}

/// A raw client with `state`'s certificate: connects, says hello (sampling every second), waits for the
/// welcome.
async fn connect_and_hello(
    collector: &Collector,
    state: &Path,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    connect_with_interval(collector.quic, state, 1_000).await
}

async fn connect_with_interval(
    collector: SocketAddr,
    state: &Path,
    interval_ms: u32,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let read = |name: &str| std::fs::read_to_string(state.join(name)).unwrap();
    let tls = headroom_common::tls::client_config(
        &read("ca.pem"),
        Some((&read("agent.pem"), &read("agent.key"))),
        &[ALPN],
    )
    .unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(2)));
    client.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connection = endpoint
        .connect_with(client, collector, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&encode_frame(&AgentMessage::Hello(hello(interval_ms))).unwrap())
        .await
        .unwrap();
    let mut decoder = FrameDecoder::default();
    let mut buffer = vec![0u8; 4096];
    let welcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(payload) = decoder.next_frame().unwrap() {
                break headroom_common::wire::decode_payload::<CollectorMessage>(&payload, "reply").unwrap();
            }
            let n = recv.read(&mut buffer).await.unwrap().unwrap();
            decoder.push(&buffer[..n]);
        }
    })
    .await
    .expect("no welcome");
    assert!(matches!(welcome, CollectorMessage::Welcome(_)), "{welcome:?}");
    (endpoint, connection, send, recv)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn issue_11_a_frame_of_empty_samples_closes_one_connection_with_bounded_memory() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let state = collector.issue("hostile-1");
    let pid = collector.process.pid();
    let _agent = collector.start_agent("honest-1", &[]);
    let before = collector
        .wait_host("honest-1", 2, Duration::from_secs(30))
        .expect("honest-1 never streamed")["seq"]
        .as_u64()
        .unwrap();
    // An empty sample encodes to 8 bytes: one frame of 1 MiB holds about 131,000 of them, which decoded
    // whole would be about 80 MB of structs.
    let count = (MAX_FRAME_BYTES - 16) / 8;
    let frame = encode_frame(&AgentMessage::Batch(Batch {
        samples: vec![Sample::default(); count],
    }))
    .unwrap();
    assert!(frame.len() <= MAX_FRAME_BYTES + 4, "{}", frame.len());
    let peak_before_kib = status_kib(pid, "VmHWM");
    let closed = runtime().block_on(async {
        let (endpoint, connection, mut send, _recv) = connect_and_hello(&collector, &state).await;
        let _ = send.write_all(&frame).await;
        let reason = tokio::time::timeout(Duration::from_secs(30), connection.closed())
            .await
            .expect("the collector kept the connection open");
        endpoint.close(0u32.into(), b"done");
        reason.to_string()
    });
    assert!(closed.contains("closed by peer"), "{closed}");
    let grown_kib = status_kib(pid, "VmHWM").saturating_sub(peak_before_kib);
    eprintln!("collector peak RSS grew by {grown_kib} KiB for one hostile frame of {count} samples");
    assert!(grown_kib < 24 * 1024, "peak RSS grew by {grown_kib} KiB");
    // The other agent kept streaming through it.
    assert!(collector
        .wait_host("honest-1", before + 3, Duration::from_secs(30))
        .is_some());
}

/// A sample as an agent would stamp it now; every optional family left out (valid, and small).
fn sample_now(seq: u64) -> Sample {
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Sample {
        seq,
        timestamp_ms,
        ..Sample::default()
    }
}

/// Reads the collector's messages and keeps the highest acknowledged sequence number in `acked`.
async fn count_acks(mut recv: quinn::RecvStream, acked: Arc<AtomicU64>) {
    let mut decoder = FrameDecoder::default();
    let mut buffer = vec![0u8; 4096];
    while let Ok(Some(n)) = recv.read(&mut buffer).await {
        decoder.push(&buffer[..n]);
        while let Ok(Some(payload)) = decoder.next_frame() {
            let message = headroom_common::wire::decode_payload::<CollectorMessage>(&payload, "reply");
            if let Ok(CollectorMessage::Ack(ack)) = message {
                acked.fetch_max(ack.through_seq, Ordering::SeqCst);
            }
        }
    }
}

/// Sends one sample a second for `samples` seconds and returns each one's acknowledgement latency.
async fn honest_latencies(collector: SocketAddr, state: PathBuf, samples: u64) -> Vec<Duration> {
    let (endpoint, _connection, mut send, recv) = connect_with_interval(collector, &state, 1_000).await;
    let acked = Arc::new(AtomicU64::new(0));
    tokio::spawn(count_acks(recv, acked.clone()));
    let mut latencies = Vec::new();
    for seq in 1..=samples {
        let started = Instant::now();
        let frame = encode_frame(&AgentMessage::Batch(Batch {
            samples: vec![sample_now(seq)],
        }))
        .unwrap();
        send.write_all(&frame).await.unwrap();
        while acked.load(Ordering::SeqCst) < seq {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "sample {seq} never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
    }
    endpoint.close(0u32.into(), b"done");
    latencies
}

/// The acknowledgement latency targets of the ingest benchmark (`bench/RESULTS.md`): p99 within 250 ms and
/// p99.9 within 1 s. With a few dozen samples the slowest one stands for both, held to the looser bound
/// (a debug build on a shared machine).
const ACK_LATENCY_TARGET: Duration = Duration::from_secs(1);

#[test]
fn issue_11_an_agent_sending_100_times_its_rate_is_slowed_and_others_keep_their_latency() {
    let _suite = headroom_tests::exclusive();
    let collector = Collector::start();
    let issued = Instant::now();
    let flooder = collector.issue("flood-1");
    let honest = [collector.issue("honest-1"), collector.issue("honest-2")];
    const WINDOW_S: u64 = 8;
    let (flood_acked, latencies) = runtime().block_on(async {
        // The flooder says it samples every second and sends 100 samples a second, each stamped now.
        let (endpoint, _connection, mut send, recv) =
            connect_with_interval(collector.quic, &flooder, 1_000).await;
        let acked = Arc::new(AtomicU64::new(0));
        tokio::spawn(count_acks(recv, acked.clone()));
        let flood = tokio::spawn(async move {
            let mut seq = 0;
            loop {
                let samples = (0..10)
                    .map(|_| {
                        seq += 1;
                        sample_now(seq)
                    })
                    .collect();
                let frame = encode_frame(&AgentMessage::Batch(Batch { samples })).unwrap();
                if send.write_all(&frame).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let honest_runs: Vec<_> = honest
            .iter()
            .map(|state| tokio::spawn(honest_latencies(collector.quic, state.clone(), WINDOW_S)))
            .collect();
        let mut latencies = Vec::new();
        for run in honest_runs {
            latencies.extend(run.await.unwrap());
        }
        flood.abort();
        endpoint.close(0u32.into(), b"done");
        (acked.load(Ordering::SeqCst), latencies)
    });
    // Its share: twice the rate its interval implies since its certificate was issued, plus a burst of twice
    // the 10 s catch-up window and 32 (52 samples at 1 s); 100 times the rate would be 800 in this window.
    let share = 52 + 2 * (issued.elapsed().as_secs() + 2);
    eprintln!("flooder: {flood_acked} samples acknowledged in about {WINDOW_S} s (share {share})");
    assert!(
        flood_acked <= share,
        "the flooder got {flood_acked} samples stored"
    );
    assert!(
        flood_acked >= 50,
        "the flooder was cut off rather than slowed: {flood_acked}"
    );
    let mut sorted = latencies.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = *sorted.last().unwrap();
    eprintln!("honest agents' ack latency under the flood: median {median:?}, max {max:?}");
    assert!(max <= ACK_LATENCY_TARGET, "{sorted:?}");
}

#[test]
fn issue_11_certificate_expiry_cuts_a_live_connection() {
    let _suite = headroom_tests::shared();
    // Enrolled certificates live 12 s here; the raw client never renews.
    let collector = Collector::start_with("[identity]\ncert_validity = \"12s\"\n");
    let token = collector.create_token(&[]);
    let state = collector.dir.path().join("agents/expiring-1");
    let out = collector.enroll_into(&state, "expiring-1", &token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = std::time::Instant::now();
    let closed = runtime().block_on(async {
        let (endpoint, connection, _send, _recv) = connect_and_hello(&collector, &state).await;
        let reason = tokio::time::timeout(Duration::from_secs(60), connection.closed())
            .await
            .expect("the connection outlived its certificate");
        endpoint.close(0u32.into(), b"done");
        reason.to_string()
    });
    assert!(closed.contains("certificate expired"), "{closed}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "closed too early: {closed}"
    );
}
