//! A flood of stalled QUIC handshakes, for the flood test and the flood bench (`bench/flood.sh`): the first
//! datagram (the Initial, a TLS ClientHello) of a new connection, sent at a steady rate from one or more
//! source addresses and never continued, so each one is a handshake the collector holds until it gives up.
//! Retry packets and everything else the collector answers are never read.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections one client endpoint starts before it is replaced, so that the flooder's own bookkeeping of
/// abandoned connections stays small however long it runs.
const CONNECTS_PER_ENDPOINT: u32 = 5_000;

/// What to flood.
#[derive(Debug, Clone)]
pub struct FloodSpec {
    /// The listener under attack.
    pub target: SocketAddr,
    /// Source addresses, used in turn (any of 127.0.0.0/8 can be bound on Linux without setup).
    pub sources: Vec<IpAddr>,
    /// New stalled handshakes per second, all sources together.
    pub per_s: f64,
    /// The ALPN the listener expects (a wrong one would be refused at once instead of stalling).
    pub alpn: Vec<u8>,
    /// The CA certificate, so the ClientHello is a genuine one for this collector.
    pub ca_pem: String,
}

/// A running flood; [`Flood::stop`] ends it.
pub struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    /// Starts flooding on a thread of its own.
    pub fn start(spec: FloodSpec) -> Flood {
        assert!(spec.per_s > 0.0 && !spec.sources.is_empty(), "{spec:?}");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || run(&spec, &stop, &sent))
        };
        Flood {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Initials sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the flood and returns how many Initials it sent.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.sent()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the flood thread panicked");
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.halt();
    }
}

fn client_config(spec: &FloodSpec) -> quinn_proto::ClientConfig {
    let tls = headroom_common::tls::client_config(&spec.ca_pem, None, &[spec.alpn.as_slice()])
        .expect("a client TLS config from the collector's CA");
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))
        .expect("a TLS 1.3 config usable for QUIC");
    quinn_proto::ClientConfig::new(Arc::new(crypto))
}

fn new_endpoint() -> quinn_proto::Endpoint {
    quinn_proto::Endpoint::new(
        Arc::new(quinn_proto::EndpointConfig::default()),
        None,
        false,
        None,
    )
}

fn run(spec: &FloodSpec, stop: &AtomicBool, sent: &AtomicU64) {
    let sockets: Vec<UdpSocket> = spec
        .sources
        .iter()
        .map(|source| {
            UdpSocket::bind(SocketAddr::new(*source, 0))
                .unwrap_or_else(|e| panic!("bind the flooding address {source}: {e}"))
        })
        .collect();
    let client = client_config(spec);
    let interval = Duration::from_secs_f64(1.0 / spec.per_s);
    let mut endpoint = new_endpoint();
    let mut connects: u32 = 0;
    let mut buf = Vec::with_capacity(1500);
    let started = Instant::now();
    let mut next: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        // Paced against the start, so a slow moment is caught up rather than lowering the rate.
        let due = started + interval.mul_f64(next as f64);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
            continue;
        }
        if connects >= CONNECTS_PER_ENDPOINT {
            endpoint = new_endpoint();
            connects = 0;
        }
        connects += 1;
        let socket = &sockets[next as usize % sockets.len()];
        next += 1;
        let Ok((_, mut connection)) = endpoint.connect(now, client.clone(), spec.target, "localhost") else {
            continue;
        };
        buf.clear();
        if let Some(transmit) = connection.poll_transmit(now, 1, &mut buf) {
            if socket.send_to(&buf[..transmit.size], spec.target).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
