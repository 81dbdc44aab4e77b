//! QUIC ingest: accept agents over mutual TLS, run one protocol session per connection, apply samples.
//!
//! This is the only part of the collector that knows QUIC. Each connection is its own task; whatever one
//! agent sends (garbage, an oversized frame, a message out of turn) ends that connection only, with a logged
//! reason, and never the collector.

use crate::fleet::FleetState;
use crate::validate::{validate_hello, validate_sample, Limits};
use headroom_common::session::{CollectorEvent, CollectorSession};
use headroom_common::wire::Hello;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Application close codes the collector uses.
pub mod close_code {
    pub const STOPPING: u32 = 0;
    pub const PROTOCOL: u32 = 2;
    pub const IDENTITY: u32 = 3;
    pub const OVERLOADED: u32 = 4;
    pub const TIMEOUT: u32 = 5;
}

/// How long a new connection may take to open its stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct IngestSettings {
    pub max_connections: u32,
    pub limits: Limits,
}

/// What the collector holds per host across connections: which agent instance and the last sequence applied.
#[derive(Default)]
pub struct Progress {
    hosts: Mutex<HashMap<String, (u64, u64)>>,
}

impl Progress {
    /// Last applied sequence number for this host if the same agent instance sent it.
    pub fn last_seq(&self, host: &str, instance_id: u64) -> Option<u64> {
        let hosts = self.hosts.lock().expect("progress lock poisoned");
        hosts
            .get(host)
            .filter(|(instance, _)| *instance == instance_id)
            .map(|(_, seq)| *seq)
    }

    pub fn record(&self, host: &str, instance_id: u64, seq: u64) {
        let mut hosts = self.hosts.lock().expect("progress lock poisoned");
        hosts.insert(host.to_string(), (instance_id, seq));
    }
}

pub type SharedFleet = Arc<Mutex<FleetState>>;

/// The QUIC server configuration: TLS 1.3 with client certificates, small per-connection windows.
pub fn server_config(tls: rustls::ServerConfig) -> anyhow::Result<quinn::ServerConfig> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls))
        .map_err(|e| anyhow::anyhow!("tls configuration unusable for QUIC: {e}"))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // An agent opens exactly one bidirectional stream; refusing more bounds per-connection state.
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_idle_timeout(Some(
        Duration::from_secs(30).try_into().expect("30 s fits a varint"),
    ));
    transport.stream_receive_window((1u32 << 20).into());
    transport.receive_window((2u32 << 20).into());
    transport.send_window(256 * 1024);
    server.transport_config(Arc::new(transport));
    Ok(server)
}

/// Accept connections until `cancel` fires, then close them all and wait for their tasks.
pub async fn serve(
    endpoint: quinn::Endpoint,
    fleet: SharedFleet,
    progress: Arc<Progress>,
    settings: IngestSettings,
    cancel: CancellationToken,
) {
    let tasks = TaskTracker::new();
    loop {
        let incoming = tokio::select! {
            _ = cancel.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        if endpoint.open_connections() >= settings.max_connections as usize {
            warn!(peer = %incoming.remote_address(), max = settings.max_connections,
                  "connection refused: collector at fleet.max_connections");
            incoming.refuse();
            continue;
        }
        let fleet = fleet.clone();
        let progress = progress.clone();
        let settings = settings.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            handle_connection(incoming, fleet, progress, settings, cancel).await;
        });
    }
    tasks.close();
    endpoint.close(close_code::STOPPING.into(), b"collector stopping");
    tasks.wait().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The host identity in the peer's certificate.
fn peer_host(connection: &quinn::Connection) -> Result<String, String> {
    let identity = connection.peer_identity().ok_or("no client certificate")?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| "unexpected peer identity type")?;
    let leaf = chain.first().ok_or("empty certificate chain")?;
    headroom_common::tls::identity_from_cert(leaf).map_err(|e| e.to_string())
}

async fn handle_connection(
    incoming: quinn::Incoming,
    fleet: SharedFleet,
    progress: Arc<Progress>,
    settings: IngestSettings,
    cancel: CancellationToken,
) {
    let peer = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            // Most often a client without a certificate, or with one from another CA.
            warn!(%peer, %error, "handshake failed; connection refused");
            return;
        }
    };
    let host = match peer_host(&connection) {
        Ok(host) => host,
        Err(reason) => {
            warn!(%peer, %reason, "no usable identity in the client certificate; connection refused");
            connection.close(close_code::IDENTITY.into(), reason.as_bytes());
            return;
        }
    };
    let stream = tokio::select! {
        _ = cancel.cancelled() => return,
        stream = tokio::time::timeout(HELLO_TIMEOUT, connection.accept_bi()) => stream,
    };
    let (mut send, mut recv) = match stream {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(%host, %peer, %error, "connection ended before opening its stream");
            return;
        }
        Err(_) => {
            warn!(%host, %peer, "no stream within {HELLO_TIMEOUT:?}; closing");
            connection.close(close_code::TIMEOUT.into(), b"no hello");
            return;
        }
    };
    let mut session = CollectorSession::new(host.clone());
    let mut instance_id = 0u64;
    let mut hello_seen = false;
    let mut last_seq: Option<u64> = None;
    let mut rejected: u64 = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    let outcome: Result<&'static str, String> = loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => break Ok("collector stopping"),
            read = recv.read(&mut buffer) => read,
        };
        let n = match read {
            Ok(Some(n)) => n,
            Ok(None) => break Ok("agent ended the stream"),
            Err(error) => break Err(format!("read failed: {error}")),
        };
        let events = match session.on_bytes(&buffer[..n]) {
            Ok(events) => events,
            Err(error) => {
                let _ = send.write_all(&session.refuse_frame(&error.to_string())).await;
                break Err(error.to_string());
            }
        };
        let mut reply = Vec::new();
        let mut goodbye = false;
        for event in events {
            match event {
                CollectorEvent::Hello(hello) => {
                    if let Err(error) = validate_hello(&hello) {
                        let _ = send.write_all(&session.refuse_frame(&error.to_string())).await;
                        let _ = send.finish();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        connection.close(close_code::PROTOCOL.into(), b"bad hello");
                        warn!(%host, %peer, %error, "hello refused");
                        return;
                    }
                    instance_id = hello.instance_id;
                    last_seq = progress.last_seq(&host, instance_id);
                    log_hello(&host, peer, &hello, last_seq);
                    fleet
                        .lock()
                        .expect("fleet lock poisoned")
                        .on_hello(&host, &hello, now_ms());
                    hello_seen = true;
                    // The session just reported the hello, so it is waiting for exactly this welcome.
                    if let Ok(frame) = session.welcome_frame(last_seq) {
                        reply.extend_from_slice(&frame);
                    }
                }
                CollectorEvent::Samples(samples) => {
                    let now = now_ms();
                    let mut fleet = fleet.lock().expect("fleet lock poisoned");
                    for sample in &samples {
                        match validate_sample(sample, last_seq, now, &settings.limits) {
                            Ok(()) => fleet.on_sample(&host, sample, now),
                            Err(error) => {
                                rejected += 1;
                                // Log the first and then every hundredth, so a broken agent cannot flood the log.
                                if rejected == 1 || rejected % 100 == 0 {
                                    warn!(%host, seq = sample.seq, %error, rejected, "sample rejected");
                                }
                            }
                        }
                        // The session hands over only sequence numbers above the last one, rejected or not;
                        // a rejected sample is acknowledged too, or the agent would resend it forever.
                        last_seq = last_seq.max(Some(sample.seq));
                    }
                    drop(fleet);
                    if let Some(seq) = last_seq {
                        progress.record(&host, instance_id, seq);
                        if let Ok(frame) = session.ack_frame(seq) {
                            reply.extend_from_slice(&frame);
                        }
                    }
                }
                CollectorEvent::Live(sample) => {
                    let now = now_ms();
                    if validate_sample(&sample, last_seq, now, &settings.limits).is_ok() {
                        fleet.lock().expect("fleet lock poisoned").on_sample(&host, &sample, now);
                    }
                }
                CollectorEvent::Gap(gap) => {
                    warn!(%host, from_seq = gap.from_seq, to_seq = gap.to_seq, count = gap.count,
                          reason = %gap.reason, "agent reports samples it could not keep");
                }
                CollectorEvent::Goodbye => goodbye = true,
            }
        }
        if !reply.is_empty() {
            if let Err(error) = send.write_all(&reply).await {
                break Err(format!("write failed: {error}"));
            }
        }
        if goodbye {
            break Ok("agent said goodbye");
        }
    };
    match &outcome {
        Ok(reason) => {
            info!(%host, %peer, reason, "agent disconnected");
            let _ = send.finish();
            connection.close(close_code::STOPPING.into(), reason.as_bytes());
        }
        Err(reason) => {
            warn!(%host, %peer, %reason, "closing connection");
            connection.close(close_code::PROTOCOL.into(), reason.as_bytes());
        }
    }
    if hello_seen {
        fleet
            .lock()
            .expect("fleet lock poisoned")
            .on_disconnect(&host, now_ms());
    }
}

fn log_hello(host: &str, peer: SocketAddr, hello: &Hello, last_seq: Option<u64>) {
    let labels: Vec<String> = hello.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    info!(
        %host, %peer, agent = %hello.agent_version, labels = %labels.join(","),
        cores = hello.capacity.cores, ?last_seq, "agent connected"
    );
}
