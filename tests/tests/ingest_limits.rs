//! Issue 11, end to end on loopback: per-connection limits of the streaming listener against a hostile
//! client (quinn used directly, with a certificate of the fleet).
//!
//! - a 1 MiB frame of empty samples closes that one connection, with bounded memory in the collector;
//! - a certificate that expires ends the live connection, as revocation does.

use headroom_common::wire::{
    encode_frame, AgentMessage, Batch, Capacity, CollectorMessage, FrameDecoder, Hello, HostFacts, Sample,
    ALPN, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use headroom_tests::Collector;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A kernel memory figure of the process, in KiB ("VmHWM" is the peak resident set).
fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn hello() -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "hostile-test".to_string(),
        instance_id: 7,
        interval_ms: 1_000,
        labels: Default::default(),
        capacity: Capacity {
            cores: 2,
            memory_bytes: 1 << 30,
        },
        facts: HostFacts::default(),
    }
}

/// A raw client with `state`'s certificate: connects, says hello, waits for the welcome.
async fn connect_and_hello(
    collector: &Collector,
    state: &Path,
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
        .connect_with(client, collector.quic, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&encode_frame(&AgentMessage::Hello(hello())).unwrap())
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
    let collector = Collector::start();
    let state = collector.issue("hostile-1");
    let pid = collector.process.pid();
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
    // The collector is still up and serves other agents.
    let _agent = collector.start_agent("honest-1", &[]);
    assert!(collector
        .wait_host("honest-1", 2, Duration::from_secs(30))
        .is_some());
}

#[test]
fn issue_11_certificate_expiry_cuts_a_live_connection() {
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
