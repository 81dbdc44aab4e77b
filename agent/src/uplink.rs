//! The agent's connection to the collector: QUIC with mutual TLS, reconnecting with capped, jittered backoff.
//!
//! This is one of the two places in headroom that know QUIC (the other is the collector's ingest). The
//! protocol itself lives in `headroom_common::session`; this file only moves its frames and waits.

use crate::ack_watch::{AckVerdict, AckWatch, CHECK_EVERY, SILENCE_TIMEOUT, STALLED_TIMEOUT};
use crate::backlog::SharedBacklog;
use crate::collectors::CollectorChoice;
use headroom_common::backoff::Backoff;
use headroom_common::clock::now_ms;
use headroom_common::session::{AgentEvent, AgentSession, SessionError};
use headroom_common::spread;
use headroom_common::wire::Hello;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Where and how to connect.
#[derive(Clone)]
pub struct UplinkConfig {
    /// `host:port` of each collector's QUIC listener (at least one); resolved at every attempt. With several,
    /// the host streams to its rendezvous-hashing choice and fails over in order (`crate::collectors`).
    pub collectors: Vec<String>,
    /// The name the collectors are ranked by: the host name from the agent's certificate.
    pub host: String,
    /// Name the collector's certificate must carry.
    pub server_name: String,
    pub tls: Arc<rustls::ClientConfig>,
    pub backoff: Backoff,
    /// How long a clean shutdown waits for the last acknowledgement.
    pub flush_timeout: Duration,
}

/// Most samples sent and not yet acknowledged.
pub const MAX_IN_FLIGHT: usize = 1024;

/// What the uplink is doing, for whoever wants to watch (tests, the demo, readiness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UplinkStatus {
    Connecting,
    /// Welcomed by the collector under this identity.
    Connected {
        host: String,
    },
    /// The last attempt failed; the line says why and what to do.
    Failed {
        reason: String,
    },
    Stopped,
}

/// Counts at the end of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UplinkReport {
    pub acked_through: Option<u64>,
    pub unacked: usize,
    pub dropped: u64,
}

enum Ended {
    Cancelled,
    /// Left a fallback collector (after flushing) because the preferred one is due to be tried again.
    Handover,
}

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("cannot resolve collector address {address}: {detail} (check collector.address)")]
    Resolve { address: String, detail: String },
    #[error("{0}")]
    Connect(String),
    /// The collector answered the connection attempt with a refusal (QUIC CONNECTION_REFUSED): it is up,
    /// and every handshake slot and its line were taken.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("timed out after {0:?} waiting for the collector")]
    Timeout(Duration),
}

/// Stream the backlog to the collector until `cancel` fires, reconnecting as needed. On cancel it sends what
/// it holds, waits up to `flush_timeout` for the acknowledgement, and says goodbye.
pub async fn run_uplink(
    config: UplinkConfig,
    hello: Hello,
    outbox: SharedBacklog,
    cancel: CancellationToken,
    status: watch::Sender<UplinkStatus>,
) -> UplinkReport {
    let outbox = &outbox;
    let mut acked_through = None;
    let mut attempt: u32 = 0;
    let mut last_reason = String::new();
    let mut learned = Learned::default();
    let endpoints = Endpoints::default();
    let mut choice = CollectorChoice::new(&config.host, config.collectors.clone());
    loop {
        status.send_replace(UplinkStatus::Connecting);
        learned.welcomed = false;
        let index = choice.pick(now_ms());
        let address = choice.address(index).to_string();
        // On a fallback collector, hand over to a better one once its skip has run out.
        let handover_at = choice
            .better_due_ms(index)
            .map(|due| tokio::time::Instant::now() + Duration::from_millis(due.saturating_sub(now_ms())));
        let result = session(
            &config,
            &address,
            choice.len() > 1,
            handover_at,
            &endpoints,
            &hello,
            outbox,
            &mut acked_through,
            &mut learned,
            &cancel,
            &status,
        )
        .await;
        if learned.welcomed {
            attempt = 0;
            choice.succeeded(index);
        }
        let refused = matches!(result, Err(UplinkError::Refused(_)));
        match result {
            Ok(Ended::Cancelled) => break,
            Ok(Ended::Handover) => {
                info!(from = %address, "handing over to the preferred collector");
                continue;
            }
            Err(error) => {
                choice.failed(index, now_ms());
                let reason = error.to_string();
                // Say it once per distinct reason: a collector that is down for an hour is one line, not 3,600.
                if reason != last_reason {
                    warn!(collector = %address, %reason, "uplink failed; retrying with backoff");
                    last_reason = reason.clone();
                } else {
                    debug!(collector = %address, %reason, "uplink failed again");
                }
                status.send_replace(UplinkStatus::Failed { reason });
            }
        }
        let delay = spread::retry_delay(
            &config.backoff,
            &mut attempt,
            refused,
            choice.pick(now_ms()) != index,
            learned.welcomed.then_some(learned.spread_ms),
            [fastrand::f64(), fastrand::f64()],
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => break,
        }
    }
    outbox.with(|b| b.flush());
    endpoints.close().await;
    status.send_replace(UplinkStatus::Stopped);
    let report = UplinkReport {
        acked_through,
        unacked: outbox.with(|b| b.len()),
        dropped: outbox.with(|b| b.dropped()),
    };
    if report.unacked > 0 || report.dropped > 0 {
        warn!(
            unacked = report.unacked,
            dropped = report.dropped,
            "uplink stopped with samples not stored"
        );
    }
    report
}

/// One client endpoint per address family, made on first use and reused across reconnects.
#[derive(Default)]
struct Endpoints {
    v4: std::sync::Mutex<Option<quinn::Endpoint>>,
    v6: std::sync::Mutex<Option<quinn::Endpoint>>,
}

impl Endpoints {
    fn for_peer(&self, peer: SocketAddr) -> Result<quinn::Endpoint, UplinkError> {
        let (slot, bind): (_, SocketAddr) = if peer.is_ipv4() {
            (&self.v4, "0.0.0.0:0".parse().expect("literal address"))
        } else {
            (&self.v6, "[::]:0".parse().expect("literal address"))
        };
        let mut slot = slot.lock().expect("endpoint lock poisoned");
        if let Some(endpoint) = slot.as_ref() {
            return Ok(endpoint.clone());
        }
        let endpoint = client_endpoint(bind)
            .map_err(|e| UplinkError::Connect(format!("cannot open a UDP socket on {bind}: {e}")))?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    async fn close(&self) {
        let all: Vec<quinn::Endpoint> = [&self.v4, &self.v6]
            .iter()
            .filter_map(|slot| slot.lock().expect("endpoint lock poisoned").take())
            .collect();
        for endpoint in all {
            let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        }
    }
}

/// quinn's runtime for the uplink's endpoints: tokio for tasks and sockets, a timerfd for each connection's
/// timer, so that it wakes the agent once at each deadline (see `crate::timer`); tokio's timer where a
/// timerfd cannot be had.
#[derive(Debug)]
pub struct QuicRuntime;

impl quinn::Runtime for QuicRuntime {
    fn new_timer(&self, deadline: std::time::Instant) -> std::pin::Pin<Box<dyn quinn::AsyncTimer>> {
        match crate::timer::TimerFd::new().and_then(|timer| timer.set(deadline, None).map(|()| timer)) {
            Ok(timer) => Box::pin(QuicTimer { timer }),
            Err(error) => {
                tracing::debug!(%error, "no timerfd for a QUIC connection; using tokio's timer");
                quinn::TokioRuntime.new_timer(deadline)
            }
        }
    }

    fn spawn(&self, future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) {
        quinn::TokioRuntime.spawn(future);
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        quinn::TokioRuntime.wrap_udp_socket(socket)
    }
}

#[derive(Debug)]
struct QuicTimer {
    timer: crate::timer::TimerFd,
}

impl quinn::AsyncTimer for QuicTimer {
    fn reset(self: std::pin::Pin<&mut Self>, deadline: std::time::Instant) {
        if let Err(error) = self.timer.set(deadline, None) {
            // Cannot happen with a valid descriptor and setting; the idle timeout still ends a stuck
            // connection from the collector's side.
            tracing::warn!(%error, "cannot set the QUIC connection's timer");
        }
    }

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context) -> std::task::Poll<()> {
        // An error (not expected of a timerfd) counts as expiry: the connection re-checks its own timers.
        self.timer.poll_fired(cx).map(|_| ())
    }
}

/// A QUIC client endpoint bound to `bind` (dual-stack when it is IPv6) on `QuicRuntime`.
fn client_endpoint(bind: std::net::SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if bind.is_ipv6() {
        if let Err(error) = socket.set_only_v6(false) {
            tracing::debug!(%error, "cannot make the UDP socket dual-stack");
        }
    }
    socket.bind(&bind.into())?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket.into(),
        Arc::new(QuicRuntime),
    )
}

fn client_config(config: &UplinkConfig) -> Result<quinn::ClientConfig, UplinkError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config.tls.clone())
        .map_err(|e| UplinkError::Connect(format!("tls configuration unusable for QUIC: {e}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(10)));
    transport.max_idle_timeout(Some(
        Duration::from_secs(30).try_into().expect("30 s fits a varint"),
    ));
    client.transport_config(Arc::new(transport));
    Ok(client)
}

/// What a session learned that the next attempt needs.
#[derive(Debug, Default)]
struct Learned {
    /// The collector welcomed us in this session.
    welcomed: bool,
    /// The last reconnect window a collector gave (`AgentEvent::Spread`), in milliseconds; kept across
    /// sessions, since it is needed just when the collector that gave it is gone.
    spread_ms: u64,
}

#[allow(clippy::too_many_arguments)]
async fn session(
    config: &UplinkConfig,
    address: &str,
    several: bool,
    handover_at: Option<tokio::time::Instant>,
    endpoints: &Endpoints,
    hello: &Hello,
    outbox: &SharedBacklog,
    acked_through: &mut Option<u64>,
    learned: &mut Learned,
    cancel: &CancellationToken,
    status: &watch::Sender<UplinkStatus>,
) -> Result<Ended, UplinkError> {
    let peer = resolve(address).await?;
    let endpoint = endpoints.for_peer(peer)?;
    let connecting = endpoint
        .connect_with(client_config(config)?, peer, &config.server_name)
        .map_err(|e| UplinkError::Connect(format!("cannot connect to {peer}: {e}")))?;
    // With other collectors to go to, a dead one is given up on sooner.
    let connect_timeout = Duration::from_secs(if several { 5 } else { 10 });
    let connection = tokio::select! {
        _ = cancel.cancelled() => return Ok(Ended::Cancelled),
        result = tokio::time::timeout(connect_timeout, connecting) => result
            .map_err(|_| UplinkError::Timeout(connect_timeout))?
            .map_err(|e| connect_error(&e, peer))?,
    };
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| UplinkError::Connect(describe_connection_error(&e, peer)))?;
    let mut protocol = AgentSession::new();
    write(&mut send, &protocol.hello_frame(hello)?, &connection, peer).await?;

    let mut buffer = vec![0u8; 16 * 1024];
    // With TLS 1.3 the client's handshake completes before the server has checked our certificate, so only
    // the welcome proves we are in: until then, a close from the server is a refusal of us.
    let welcome_deadline = tokio::time::sleep(Duration::from_secs(15));
    tokio::pin!(welcome_deadline);
    // With samples in flight, a collector that sends nothing back is taken as gone, and one that answers
    // packets but is slow to acknowledge is waited for (`ack_watch`): checked every second while waiting.
    let mut ack_watch = AckWatch::new(now_ms());
    // Cleared whenever nothing waits for an acknowledgement, so that it wakes the agent only when it checks.
    let mut ack_check = crate::timer::Deadline::new();
    let handover = tokio::time::sleep_until(handover_at.unwrap_or_else(tokio::time::Instant::now));
    tokio::pin!(handover);
    loop {
        // The clock starts when samples go out into an empty window and stops when the window empties.
        let was_waiting = ack_watch.waiting();
        ack_watch.in_flight(outbox.with(|b| b.in_flight()) > 0, now_ms());
        let waiting_for_ack = ack_watch.waiting();
        if waiting_for_ack && !was_waiting {
            ack_check.set(std::time::Instant::now() + CHECK_EVERY);
        } else if !waiting_for_ack {
            ack_check.clear();
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                if protocol.is_streaming() {
                    flush(config, &mut protocol, &mut send, &mut recv, outbox, acked_through, &connection, peer)
                        .await;
                }
                connection.close(0u32.into(), b"agent stopping");
                return Ok(Ended::Cancelled);
            }
            _ = &mut handover, if handover_at.is_some() && protocol.is_streaming() => {
                flush(config, &mut protocol, &mut send, &mut recv, outbox, acked_through, &connection, peer).await;
                connection.close(0u32.into(), b"agent returning to its preferred collector");
                return Ok(Ended::Handover);
            }
            _ = &mut welcome_deadline, if !protocol.is_streaming() => {
                connection.close(1u32.into(), b"no welcome");
                return Err(UplinkError::Timeout(Duration::from_secs(15)));
            }
            _ = ack_check.fired(), if waiting_for_ack => {
                let now = now_ms();
                ack_watch.datagrams_received(connection.stats().udp_rx.datagrams, now);
                let reason = match ack_watch.verdict(now) {
                    AckVerdict::Keep => {
                        ack_check.set(std::time::Instant::now() + CHECK_EVERY);
                        continue;
                    }
                    AckVerdict::Silent => format!(
                        "collector {peer} sent nothing for {SILENCE_TIMEOUT:?} with samples in flight; reconnecting"
                    ),
                    AckVerdict::Stalled => format!(
                        "collector {peer} answered but acknowledged nothing for {STALLED_TIMEOUT:?}; reconnecting"
                    ),
                };
                connection.close(1u32.into(), b"no acknowledgement");
                return Err(UplinkError::Connect(reason));
            }
            read = recv.read(&mut buffer) => {
                let n = match read {
                    Ok(Some(n)) => n,
                    Ok(None) => return Err(UplinkError::Connect(format!("collector {peer} ended the stream"))),
                    Err(e) => return Err(UplinkError::Connect(describe_read_error(&e, &connection, peer))),
                };
                let received_ms = now_ms();
                for event in protocol.on_bytes(&buffer[..n])? {
                    match event {
                        AgentEvent::Welcomed { host, last_stored_seq, .. } => {
                            let backlog = outbox.with(|b| b.len());
                            info!(collector = %peer, %host, ?last_stored_seq, backlog, "connected");
                            learned.welcomed = true;
                            let gaps = outbox.with(|b| {
                                b.resume(last_stored_seq);
                                b.take_gaps()
                            });
                            for gap in gaps {
                                warn!(from_seq = gap.from_seq, to_seq = gap.to_seq, count = gap.count,
                                      reason = %gap.reason, "reporting samples that could not be kept");
                                write(&mut send, &protocol.gap_frame(&gap)?, &connection, peer).await?;
                            }
                            if last_stored_seq.is_some() {
                                *acked_through = last_stored_seq.max(*acked_through);
                            }
                            status.send_replace(UplinkStatus::Connected { host });
                        }
                        AgentEvent::Acked(seq) => {
                            outbox.with(|b| b.ack(seq));
                            *acked_through = Some(seq).max(*acked_through);
                            ack_watch.acked(now_ms());
                        }
                        AgentEvent::TimeProbe(probe) => {
                            // Answered before anything else goes out, so the collector knows our clock before
                            // it stores the next batch.
                            let frame = protocol.time_reply_frame(&probe, received_ms, now_ms())?;
                            write(&mut send, &frame, &connection, peer).await?;
                        }
                        AgentEvent::Spread(window_ms) => {
                            if window_ms != learned.spread_ms {
                                info!(collector = %address, window_ms, "reconnects after losing this collector are spread over its window");
                            }
                            learned.spread_ms = window_ms;
                        }
                    }
                }
                send_pending(&mut protocol, &mut send, outbox, &connection, peer).await?;
            }
            _ = outbox.arrived() => {
                // Behind a backlog, the newest sample goes ahead for the live view.
                if protocol.is_streaming() {
                    let behind = outbox.with(|b| (b.unsent() > protocol.max_batch_samples()).then(|| b.newest()));
                    if let Some(Some(newest)) = behind {
                        write(&mut send, &protocol.live_frame(&newest)?, &connection, peer).await?;
                    }
                }
                send_pending(&mut protocol, &mut send, outbox, &connection, peer).await?;
            }
        }
    }
}

async fn send_pending(
    protocol: &mut AgentSession,
    send: &mut quinn::SendStream,
    outbox: &SharedBacklog,
    connection: &quinn::Connection,
    peer: SocketAddr,
) -> Result<(), UplinkError> {
    if !protocol.is_streaming() {
        return Ok(());
    }
    loop {
        // A bounded window of unacknowledged samples: catch-up after an outage goes at the pace the collector
        // commits, and neither side ever holds more than the window in flight.
        let max = protocol.max_batch_samples();
        let batch = outbox.with(|b| {
            let room = MAX_IN_FLIGHT.saturating_sub(b.in_flight());
            if room == 0 {
                Vec::new()
            } else {
                b.next_batch(max.min(room))
            }
        });
        if batch.is_empty() {
            return Ok(());
        }
        write(send, &protocol.batch_frame(&batch)?, connection, peer).await?;
    }
}

/// Send what is left, wait for its acknowledgement within the flush timeout, then say goodbye.
#[allow(clippy::too_many_arguments)]
async fn flush(
    config: &UplinkConfig,
    protocol: &mut AgentSession,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    outbox: &SharedBacklog,
    acked_through: &mut Option<u64>,
    connection: &quinn::Connection,
    peer: SocketAddr,
) {
    if send_pending(protocol, send, outbox, connection, peer)
        .await
        .is_err()
    {
        return;
    }
    let mut buffer = vec![0u8; 4096];
    let wait_for_acks = async {
        while !outbox.with(|b| b.is_empty()) {
            let Ok(Some(n)) = recv.read(&mut buffer).await else {
                return;
            };
            let Ok(events) = protocol.on_bytes(&buffer[..n]) else {
                return;
            };
            for event in events {
                if let AgentEvent::Acked(seq) = event {
                    outbox.with(|b| b.ack(seq));
                    *acked_through = Some(seq).max(*acked_through);
                }
            }
        }
    };
    let _ = tokio::time::timeout(config.flush_timeout, wait_for_acks).await;
    if let Ok(frame) = protocol.goodbye_frame() {
        let _ = send.write_all(&frame).await;
    }
    let _ = send.finish();
    // Give the goodbye a moment to leave before the connection closes.
    let _ = tokio::time::timeout(Duration::from_millis(200), send.stopped()).await;
}

async fn write(
    send: &mut quinn::SendStream,
    frame: &[u8],
    connection: &quinn::Connection,
    peer: SocketAddr,
) -> Result<(), UplinkError> {
    send.write_all(frame).await.map_err(|e| {
        let reason = match connection.close_reason() {
            Some(close) => describe_connection_error(&close, peer),
            None => format!("writing to collector {peer}: {e}"),
        };
        UplinkError::Connect(reason)
    })
}

async fn resolve(address: &str) -> Result<SocketAddr, UplinkError> {
    let mut addresses = tokio::net::lookup_host(address)
        .await
        .map_err(|e| UplinkError::Resolve {
            address: address.to_string(),
            detail: e.to_string(),
        })?;
    addresses.next().ok_or_else(|| UplinkError::Resolve {
        address: address.to_string(),
        detail: "no address".into(),
    })
}

fn describe_read_error(error: &quinn::ReadError, connection: &quinn::Connection, peer: SocketAddr) -> String {
    match connection.close_reason() {
        Some(close) => describe_connection_error(&close, peer),
        None => format!("reading from collector {peer}: {error}"),
    }
}

/// One line a sysadmin can act on, for the ways a connection ends.
/// A failed connection attempt: a refusal for load apart from every other failure, for the backoff.
fn connect_error(error: &quinn::ConnectionError, peer: SocketAddr) -> UplinkError {
    let described = describe_connection_error(error, peer);
    match error {
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            UplinkError::Refused(described)
        }
        _ => UplinkError::Connect(described),
    }
}

pub fn describe_connection_error(error: &quinn::ConnectionError, peer: SocketAddr) -> String {
    use quinn::ConnectionError as E;
    match error {
        E::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            // QUIC carries TLS alerts as CRYPTO_ERROR 0x100 + alert number (RFC 9001, section 4.8).
            if (0x100..0x200).contains(&code) {
                format!(
                    "collector {peer} refused our certificate: {}",
                    describe_alert((code - 0x100) as u8)
                )
            } else {
                let reason = String::from_utf8_lossy(&close.reason);
                format!(
                    "collector {peer} closed the connection: {} {reason}",
                    close.error_code
                )
            }
        }
        E::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            format!("collector {peer} closed the connection: {reason}")
        }
        E::TransportError(error) => {
            let text = error.to_string();
            if text.contains("certificate")
                || text.contains("UnknownIssuer")
                || text.contains("NotValidForName")
            {
                format!(
                    "the collector at {peer} did not prove its identity: {text} (check tls.ca and collector.server_name)"
                )
            } else {
                format!("connection to collector {peer} failed: {text}")
            }
        }
        E::TimedOut => format!("collector {peer} did not answer (is it running, and is UDP open to it?)"),
        other => format!("connection to collector {peer} failed: {other}"),
    }
}

fn describe_alert(alert: u8) -> &'static str {
    match alert {
        116 => "no client certificate was presented (set tls.cert and tls.key, or enroll the host)",
        48 => "it is not issued by the collector's CA (enroll this host again or fix tls.cert)",
        42 | 43 => "it is not acceptable (enroll this host again)",
        44 => "it has been revoked (enroll this host again)",
        45 => "it has expired (enroll this host again)",
        46 => "it could not be checked (enroll this host again)",
        120 => "no common application protocol (upgrade the older side)",
        _ => "the TLS handshake failed (check tls.* in the agent config)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(code: quinn::TransportErrorCode) -> quinn::ConnectionError {
        quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: code,
            frame_type: None,
            reason: Default::default(),
        })
    }

    #[test]
    fn issue_12_a_refusal_for_load_is_told_apart_from_other_failures() {
        let peer: SocketAddr = "127.0.0.1:9600".parse().unwrap();
        let refused = connect_error(&closed(quinn::TransportErrorCode::CONNECTION_REFUSED), peer);
        assert!(matches!(refused, UplinkError::Refused(_)), "{refused:?}");
        assert!(refused.to_string().contains("127.0.0.1:9600"), "{refused}");
        for other in [
            closed(quinn::TransportErrorCode::PROTOCOL_VIOLATION),
            closed(quinn::TransportErrorCode::crypto(42)),
            quinn::ConnectionError::TimedOut,
            quinn::ConnectionError::Reset,
        ] {
            assert!(
                matches!(connect_error(&other, peer), UplinkError::Connect(_)),
                "{other}"
            );
        }
    }
}
