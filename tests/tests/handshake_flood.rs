//! Issue 11, end to end on loopback: a flood of stalled QUIC handshakes from 127.0.0.2 (Initial packets of
//! new connections that are never continued) while agents from 127.0.0.1 connect and stream. The per-source
//! cap and the Retry threshold keep the flooder to a few handshake slots, so the agents get theirs.

use headroom_common::wire::ALPN;
use headroom_tests::{http_get, Collector};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends the first datagram (the Initial) of a new QUIC connection to `target` every `every`, from
/// `source`, and never answers: each is a handshake the collector holds open until it gives up.
fn flood(
    source: &str,
    target: SocketAddr,
    ca_pem: String,
    every: Duration,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let socket = UdpSocket::bind(format!("{source}:0")).expect("bind the flooding address");
    let tls = headroom_common::tls::client_config(&ca_pem, None, &[ALPN]).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    let client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut endpoint = quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    );
    let mut buf = Vec::with_capacity(1500);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let (_, mut connection) = endpoint
            .connect(now, client.clone(), target, "localhost")
            .expect("a new client connection");
        buf.clear();
        if let Some(transmit) = connection.poll_transmit(now, 1, &mut buf) {
            if socket.send_to(&buf[..transmit.size], target).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(every);
    }
}

/// The value of a sample line `name` in a /metrics scrape, 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn issue_11_a_flood_of_stalled_handshakes_from_one_address_does_not_lock_out_agents() {
    let collector = Collector::start();
    let ca_pem = std::fs::read_to_string(collector.pki_dir().join("ca.pem")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, sent, target) = (stop.clone(), sent.clone(), collector.quic);
        std::thread::spawn(move || flood("127.0.0.2", target, ca_pem, Duration::from_millis(2), stop, sent))
    };
    // Without limits, 256 stalled handshakes (under a second of this flood) would fill every slot until
    // the 30 s idle timeout.
    let flooding = headroom_tests::wait_for(Duration::from_secs(30), || {
        (sent.load(Ordering::Relaxed) >= 600).then_some(())
    });
    assert!(flooding.is_some(), "the flooder did not get going");

    let hosts = ["calm-1", "calm-2", "calm-3"];
    let _agents: Vec<_> = hosts
        .iter()
        .map(|host| collector.start_agent(host, &[]))
        .collect();
    for host in hosts {
        assert!(
            collector.wait_host(host, 2, Duration::from_secs(30)).is_some(),
            "{host} did not stream during the flood ({} Initials sent): {}",
            sent.load(Ordering::Relaxed),
            collector.process.stderr_text()
        );
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();

    let scrape = http_get(collector.http, "/metrics", &[])
        .expect("GET /metrics")
        .body;
    let per_source = metric(
        &scrape,
        "headroom_collector_connections_refused_total{reason=\"handshakes_per_source\"}",
    );
    let retries = metric(&scrape, "headroom_collector_handshake_retries_total");
    assert!(
        per_source + retries >= 100.0,
        "the flooder's handshakes were not capped (per_source {per_source}, retries {retries}):\n{scrape}"
    );
}
