//! QUIC ingest: accept agents over mutual TLS, run one protocol session per connection, store and apply.
//!
//! This is the only part of the collector that knows QUIC. Each connection is its own task; whatever one
//! agent sends (garbage, an oversized frame, a message out of turn) ends that connection only, with a logged
//! reason, and never the collector. Samples are acknowledged only after the database committed them; while
//! a commit is pending the task does not read, so QUIC flow control slows the agent instead of a queue growing.

pub mod admission;
pub mod clock;
pub mod enroll;
pub mod handshake;
pub mod reload;
pub mod validate;

use crate::identity::enroll_server::{handle_enrollment, peer_cert_der, EnrollContext, Listener};
use crate::identity::labels::IgnoredLabelLog;
use crate::identity::live::{CutReason, LiveConnections};
use crate::identity::registry::Registry;
use crate::ingest::validate::{validate_hello, validate_sample, Limits, SampleError};
use crate::live::fleet::{derive_metrics, FleetState};
use crate::store::{GapRow, HostBatch, HostInfo, SampleRow, StoreHandle};
use crate::telemetry::{self, refusal};
use admission::StoreShares;
use clock::{HostClock, SkewChange};
use handshake::{Admit, HandshakeLimits, InProgress, Slot};
use headroom_common::clock::now_ms;
use headroom_common::enroll::ENROLL_ALPN;
use headroom_common::session::{CollectorEvent, CollectorSession};
use headroom_common::wire::{GapReport, Hello, Sample};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    pub const REVOKED: u32 = 6;
    pub const REPLACED: u32 = 7;
    pub const STORAGE: u32 = 8;
    pub const EXPIRED: u32 = 9;
}

/// How long a new connection may take to open its stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Backlog samples one connection may store per second. Live samples are not held back (they are newer than
/// this bound's horizon), so an agent catching up on hours of spool cannot crowd out the rest of the fleet,
/// and its own live view is kept current by `Live` messages meanwhile.
const CATCH_UP_SAMPLES_PER_S: f64 = 2_000.0;

/// A sample older than this when it arrives counts as catch-up.
const CATCH_UP_AGE_MS: u64 = 10_000;

/// Handshakes in progress at once. Past this, new connections are refused at once (the agents back off with
/// jitter) instead of queueing work the collector cannot finish before the agents give up on it.
pub const MAX_HANDSHAKES_IN_PROGRESS: usize = 256;

/// How often refusals for load are summarised in the log, and last-seen times written to the registry.
const LOAD_LOG_INTERVAL: Duration = Duration::from_secs(10);
const LAST_SEEN_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Last-seen times of certificate serials, kept in memory and written to the registry in the background: a
/// file rewrite per connection would block the runtime threads exactly when a fleet reconnects at once.
#[derive(Default)]
pub struct LastSeen {
    pending: Mutex<std::collections::HashMap<String, i64>>,
}

impl LastSeen {
    pub fn note(&self, serial: &str, now_s: i64) {
        if serial.is_empty() {
            return;
        }
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.insert(serial.to_string(), now_s);
    }

    fn take(&self) -> Vec<(String, i64)> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.drain().collect()
    }
}

/// Write pending last-seen times every 10 s and once more on stop, in one file rewrite on a blocking thread.
pub async fn run_last_seen_writer(context: Arc<IngestContext>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(LAST_SEEN_FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let seen = context.last_seen.take();
        if !seen.is_empty() {
            let registry = context.registry.clone();
            let written = tokio::task::spawn_blocking(move || registry.touch_many(&seen)).await;
            if let Ok(Err(error)) = written {
                debug!(%error, "cannot record last seen in the certificate registry");
            }
        }
        if stopping {
            return;
        }
    }
}

#[derive(Clone)]
pub struct IngestSettings {
    pub max_connections: u32,
    /// Label keys taken from a hello when the certificate carries no labels.
    pub hello_label_keys: Vec<String>,
    pub limits: Limits,
    /// Handshake slots: Retry threshold, per-source cap, timeout.
    pub handshakes: HandshakeLimits,
}

pub type SharedFleet = Arc<Mutex<FleetState>>;

/// The fleet view, even if a task panicked while holding it: one agent's data must never take ingest
/// down for everyone (the view is per-host state that the next sample overwrites).
pub fn lock_fleet(fleet: &SharedFleet) -> std::sync::MutexGuard<'_, FleetState> {
    fleet.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every connection task shares.
pub struct IngestContext {
    pub fleet: SharedFleet,
    pub store: StoreHandle,
    pub settings: IngestSettings,
    /// Signing for renewals; `None` when enrollment is off (`enroll_listen = "off"`).
    pub enroll: Option<Arc<EnrollContext>>,
    pub live: LiveConnections,
    /// Hello labels ignored in favour of the certificate's, or not in the allow-list; logged once.
    pub ignored_labels: IgnoredLabelLog,
    /// Each host's share of the store writer, kept across its connections.
    pub store_shares: Mutex<StoreShares>,
    pub registry: Registry,
    pub last_seen: LastSeen,
    /// Recent readings for outliers and alarms.
    pub analytics: Arc<crate::analytics::Analytics>,
}

/// The QUIC server configuration of the streaming listener: TLS 1.3 with a required client certificate,
/// small per-connection windows.
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
pub async fn serve(endpoint: quinn::Endpoint, context: Arc<IngestContext>, cancel: CancellationToken) {
    let tasks = TaskTracker::new();
    let limits = context.settings.handshakes;
    let in_progress = InProgress::reporting("streaming");
    let mut refused_busy: u64 = 0;
    let mut refused_full: u64 = 0;
    let mut retried: u64 = 0;
    let mut last_load_log = tokio::time::Instant::now();
    loop {
        if (refused_busy > 0 || refused_full > 0 || retried > 0)
            && last_load_log.elapsed() >= LOAD_LOG_INTERVAL
        {
            warn!(
                refused_busy,
                refused_full,
                retried,
                max_handshakes = MAX_HANDSHAKES_IN_PROGRESS,
                per_source = limits.per_source,
                max_connections = context.settings.max_connections,
                "connections refused or sent a Retry for load in the last interval; agents retry with backoff"
            );
            refused_busy = 0;
            refused_full = 0;
            retried = 0;
            last_load_log = tokio::time::Instant::now();
        }
        let incoming = tokio::select! {
            _ = cancel.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        if endpoint.open_connections() >= context.settings.max_connections as usize {
            refused_full += 1;
            telemetry::global().refused(refusal::FULL);
            incoming.refuse();
            continue;
        }
        let Some(slot) = admit(incoming, &limits, &in_progress, &mut retried, &mut refused_busy) else {
            continue;
        };
        let (incoming, slot) = slot;
        let context = context.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            handle_connection(incoming, slot, limits.timeout, context, cancel).await;
        });
    }
    tasks.close();
    endpoint.close(close_code::STOPPING.into(), b"collector stopping");
    tasks.wait().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// Applies [`handshake::decide`] to one new connection: sends the Retry, refusal or nothing it calls for and
/// counts it, or returns the connection with its handshake slot.
pub(crate) fn admit(
    incoming: quinn::Incoming,
    limits: &HandshakeLimits,
    in_progress: &InProgress,
    retried: &mut u64,
    refused: &mut u64,
) -> Option<(quinn::Incoming, Slot)> {
    let source = incoming.remote_address().ip();
    let (total, from_source) = in_progress.counts(source);
    match handshake::decide(limits, total, from_source, incoming.remote_address_validated()) {
        Admit::Accept => Some((incoming, in_progress.begin(source))),
        Admit::Retry => {
            *retried += 1;
            match incoming.retry() {
                Ok(()) => {
                    telemetry::global().handshake_retries.inc();
                }
                // Only an already validated address cannot be retried, and those are never sent here.
                Err(error) => {
                    error.into_incoming().ignore();
                }
            }
            None
        }
        Admit::Refuse(reason) => {
            *refused += 1;
            telemetry::global().refused(reason);
            incoming.refuse();
            None
        }
        Admit::Ignore(reason) => {
            *refused += 1;
            telemetry::global().refused(reason);
            incoming.ignore();
            None
        }
    }
}

/// The host identity in the peer's certificate. The handshake already required one; this is the second
/// line of defence.
fn peer_host(connection: &quinn::Connection) -> Result<String, String> {
    let leaf = peer_cert_der(connection).ok_or("no client certificate (enroll this host first)")?;
    headroom_common::tls::identity_from_cert(&leaf).map_err(|e| e.to_string())
}

fn negotiated_alpn(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
}

/// Per-connection state of the ordered (stored) path.
struct Stream {
    host: String,
    instance_id: u64,
    hello: Option<HostInfo>,
    /// True once the hello went to the database with a batch.
    hello_stored: bool,
    /// The last stored sample, to derive rates for the next one.
    previous: Option<Sample>,
    last_seq: Option<u64>,
    rejected: u64,
    /// The hello's sampling interval.
    interval_ms: u32,
    /// When the last `Live` sample was applied.
    last_live_ms: Option<u64>,
    clock: HostClock,
}

async fn handle_connection(
    incoming: quinn::Incoming,
    handshake_slot: Slot,
    handshake_timeout: Duration,
    context: Arc<IngestContext>,
    cancel: CancellationToken,
) {
    let peer = incoming.remote_address();
    let handshake = async {
        match incoming.accept() {
            Ok(connecting) => connecting.await,
            Err(error) => Err(error),
        }
    };
    let connection = match tokio::time::timeout(handshake_timeout, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            // Most often a client without a certificate, with one from another CA, or a revoked one.
            warn!(%peer, %error, "handshake failed; connection refused");
            telemetry::global().refused(refusal::HANDSHAKE);
            return;
        }
        Err(_) => {
            // Dropping the unfinished connection closes it and frees its state.
            debug!(%peer, timeout = ?handshake_timeout, "handshake not finished in time; dropped");
            telemetry::global().refused(refusal::TIMEOUT);
            return;
        }
    };
    drop(handshake_slot);
    telemetry::global().handshakes.inc();
    if negotiated_alpn(&connection).as_deref() == Some(ENROLL_ALPN) {
        match &context.enroll {
            Some(enroll) => handle_enrollment(connection, enroll.clone(), Listener::Streaming).await,
            None => {
                info!(%peer, "renewal refused: enrollment is off on this collector");
                connection.close(
                    close_code::IDENTITY.into(),
                    b"renewal is off on this collector (enroll_listen = \"off\"); enroll the host again",
                );
            }
        }
        return;
    }
    let host = match peer_host(&connection) {
        Ok(host) => host,
        Err(reason) => {
            warn!(%peer, %reason, "no usable identity in the client certificate; connection refused");
            telemetry::global().refused(refusal::IDENTITY);
            connection.close(close_code::IDENTITY.into(), reason.as_bytes());
            return;
        }
    };
    let cert = peer_cert_der(&connection).unwrap_or_default();
    let serial = headroom_common::pki::serial_from_cert(&cert).unwrap_or_default();
    let (cut, live_guard) = context.live.register(&host, &serial, peer);
    context.last_seen.note(&serial, (now_ms() / 1000) as i64);
    // The handshake checked validity once; a certificate that expires later ends the connection then, as
    // revocation does, and the agent reconnects with its renewed certificate (or is refused).
    let (issued_s, not_after_s) = headroom_common::pki::cert_info_der(&cert)
        .map(|info| (info.issued_s(), info.not_after_s))
        .unwrap_or((0, 0));
    // A host never stored here can have sampled at most since its certificate was issued.
    let issued_ms = u64::try_from(issued_s).unwrap_or(0).saturating_mul(1000);
    let valid_for = Duration::from_secs(u64::try_from(not_after_s - (now_ms() / 1000) as i64).unwrap_or(0));
    let expiry = tokio::time::sleep(valid_for);
    tokio::pin!(expiry);
    let stream = tokio::select! {
        _ = cancel.cancelled() => return,
        _ = cut.cancelled() => return,
        _ = &mut expiry => {
            connection.close(close_code::EXPIRED.into(), b"certificate expired");
            return;
        }
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
    let mut state = Stream {
        host: host.clone(),
        instance_id: 0,
        hello: None,
        hello_stored: false,
        previous: None,
        last_seq: None,
        rejected: 0,
        interval_ms: 0,
        last_live_ms: None,
        clock: HostClock::default(),
    };
    let mut buffer = vec![0u8; 64 * 1024];
    let catch_up_started = tokio::time::Instant::now();
    let mut catch_up_stored: u64 = 0;
    let outcome: Result<&'static str, (u32, String)> = loop {
        let read = tokio::select! {
            // Stop, cut and expiry come before more data: a wait they ended early lands here.
            biased;
            _ = cancel.cancelled() => break Ok("collector stopping"),
            _ = cut.cancelled() => {
                let (code, reason) = match live_guard.cut_reason() {
                    Some(CutReason::Revoked) => (close_code::REVOKED, "certificate revoked (enroll this host again)"),
                    _ => (close_code::REPLACED, "replaced by a newer connection with the same identity"),
                };
                break Err((code, reason.to_string()));
            }
            _ = &mut expiry => break Err((
                close_code::EXPIRED,
                "certificate expired (the agent renews before this; enroll the host again)".to_string(),
            )),
            read = recv.read(&mut buffer) => read,
        };
        let n = match read {
            Ok(Some(n)) => n,
            Ok(None) => break Ok("agent ended the stream"),
            Err(error) => break Err((close_code::PROTOCOL, format!("read failed: {error}"))),
        };
        let events = match session.on_bytes(&buffer[..n]) {
            Ok(events) => events,
            Err(error) => {
                let _ = send.write_all(&session.refuse_frame(&error.to_string())).await;
                break Err((close_code::PROTOCOL, error.to_string()));
            }
        };
        let mut reply = Vec::new();
        let mut goodbye = false;
        let mut failure = None;
        let mut interrupted = false;
        for event in events {
            match event {
                CollectorEvent::Hello(mut hello) => {
                    // Every value is checked before any of it is logged or kept.
                    if let Err(error) = validate_hello(&hello) {
                        let _ = send.write_all(&session.refuse_frame(&error.to_string())).await;
                        let _ = send.finish();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        connection.close(close_code::PROTOCOL.into(), b"bad hello");
                        warn!(%host, %peer, %error, "hello refused");
                        telemetry::global().refused(refusal::HELLO);
                        return;
                    }
                    // Labels come from the certificate; the hello's count only where it grants none.
                    let granted = headroom_common::pki::labels_from_cert(&cert).unwrap_or_default();
                    hello.labels = context
                        .ignored_labels
                        .resolve(&host, &hello.labels, &granted, &context.settings.hello_label_keys)
                        .labels;
                    state.instance_id = hello.instance_id;
                    context.analytics.observe_capacity(
                        &host,
                        &hello.labels,
                        hello.capacity.cores,
                        hello.capacity.memory_bytes,
                        now_ms(),
                    );
                    state.interval_ms = hello.interval_ms;
                    state.hello = Some(HostInfo::from_hello(&hello));
                    state.hello_stored = false;
                    state.last_seq = context.store.last_seq(&host, hello.instance_id);
                    log_hello(&host, peer, &hello, state.last_seq);
                    let mut fleet = lock_fleet(&context.fleet);
                    fleet.on_hello(&host, &hello, now_ms());
                    // Rates of the first sample stored on this connection come from the last one stored on
                    // an earlier connection of the same instance.
                    state.previous = fleet.stored_previous(&host, hello.instance_id, state.last_seq);
                    drop(fleet);
                    // The session just reported the hello, so it is waiting for exactly this welcome.
                    if let Ok(frame) = session.welcome_frame(state.last_seq) {
                        reply.extend_from_slice(&frame);
                    }
                }
                CollectorEvent::Samples(samples) => {
                    let backlog = samples
                        .iter()
                        .filter(|s| s.timestamp_ms.saturating_add(CATCH_UP_AGE_MS) < now_ms())
                        .count();
                    let now = now_ms();
                    let away_ms = now.saturating_sub(context.store.last_seen_ms(&host).unwrap_or(issued_ms));
                    let count = samples.len() as u64;
                    let wait_ms = context
                        .store_shares
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .charge(&host, state.interval_ms, (CATCH_UP_AGE_MS, away_ms), count, now);
                    if wait_ms > 0 {
                        // Over its share of the store writer: these samples wait before they are stored
                        // (never acknowledged unstored), the stream is not read meanwhile, and QUIC flow
                        // control holds the agent back. What is already owed goes out first.
                        if !reply.is_empty() {
                            if let Err(error) = send.write_all(&std::mem::take(&mut reply)).await {
                                failure = Some((close_code::PROTOCOL, format!("write failed: {error}")));
                                break;
                            }
                        }
                        telemetry::global().samples_held_back.inc_by(count);
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                            _ = cancel.cancelled() => { interrupted = true; break; }
                            _ = cut.cancelled() => { interrupted = true; break; }
                            _ = &mut expiry => { interrupted = true; break; }
                        }
                    }
                    let arrived = std::time::Instant::now();
                    match store_samples(&context, &mut state, samples).await {
                        Ok(Some(seq)) => {
                            if let Ok(frame) = session.ack_frame(seq) {
                                reply.extend_from_slice(&frame);
                            }
                            telemetry::global().observe_ack(arrived.elapsed());
                        }
                        Ok(None) => {}
                        Err(reason) => {
                            failure = Some((close_code::STORAGE, reason));
                            break;
                        }
                    }
                    catch_up_stored += backlog as u64;
                }
                CollectorEvent::Live(mut sample) => {
                    let now = now_ms();
                    // One live update per half interval at most: more is an agent repeating itself.
                    let min_gap_ms = u64::from(state.interval_ms / 2);
                    if state.last_live_ms.is_some_and(|last| now < last + min_gap_ms) {
                        continue;
                    }
                    state.clock.place_live(&mut sample, now);
                    if validate_sample(&sample, state.last_seq).is_ok() {
                        state.last_live_ms = Some(now);
                        lock_fleet(&context.fleet).on_sample(&host, &sample, now);
                        observe_live(&context, &host, &sample, now);
                    }
                }
                CollectorEvent::Gap(gap) => {
                    // The agent counts what it dropped unacknowledged; some of it may have been stored here
                    // with the acknowledgement lost on the way back. Report only what is really missing.
                    let Some(gap) = trim_gap(gap, state.last_seq) else {
                        continue;
                    };
                    warn!(%host, from_seq = gap.from_seq, to_seq = gap.to_seq, count = gap.count,
                          reason = %gap.reason, "agent reports samples it could not keep");
                    let batch = HostBatch {
                        host: host.clone(),
                        instance_id: state.instance_id,
                        received_ms: now_ms(),
                        hello: state.hello.clone(),
                        rows: Vec::new(),
                        gaps: vec![GapRow {
                            from_seq: gap.from_seq,
                            to_seq: gap.to_seq,
                            from_ms: gap.from_ms,
                            to_ms: gap.to_ms,
                            count: gap.count,
                            reason: gap.reason.name().to_string(),
                        }],
                    };
                    if let Err(error) = context.store.commit(batch).await {
                        failure = Some((close_code::STORAGE, format!("storage unavailable: {error}")));
                        break;
                    }
                }
                CollectorEvent::TimeReply(time) => {
                    let now = now_ms();
                    if session.on_time_reply(&time, now).is_some() {
                        if let Some(offset_ms) = session.clock_offset_ms() {
                            on_clock(&context, &host, &mut state, offset_ms, now);
                        }
                    }
                }
                CollectorEvent::Goodbye => goodbye = true,
            }
        }
        // Clock probes ride along with whatever goes back: right after the welcome, then every 30 s.
        if let Some(frame) = session.probe_frame(now_ms()) {
            reply.extend_from_slice(&frame);
        }
        if !reply.is_empty() {
            if let Err(error) = send.write_all(&reply).await {
                break Err((close_code::PROTOCOL, format!("write failed: {error}")));
            }
        }
        if interrupted {
            // The loop's next turn says why (stop, cut or expiry); the samples held back were not stored
            // and are not acknowledged, so the agent sends them again.
            continue;
        }
        if let Some(failure) = failure {
            break Err(failure);
        }
        if goodbye {
            break Ok("agent said goodbye");
        }
        // Pace catch-up: hold the next read until the backlog stored so far fits the per-connection rate.
        let due = Duration::from_secs_f64(catch_up_stored as f64 / CATCH_UP_SAMPLES_PER_S);
        let wait = due.saturating_sub(catch_up_started.elapsed());
        if !wait.is_zero() {
            // The loop's next turn says why, if the wait ended early.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => {}
                _ = cut.cancelled() => {}
                _ = &mut expiry => {}
            }
        }
    };
    match &outcome {
        Ok(reason) => {
            info!(%host, %peer, reason, "agent disconnected");
            let _ = send.finish();
            connection.close(close_code::STOPPING.into(), reason.as_bytes());
        }
        Err((code, reason)) => {
            warn!(%host, %peer, %reason, "closing connection");
            connection.close((*code).into(), reason.as_bytes());
        }
    }
    if state.hello.is_some() {
        lock_fleet(&context.fleet).on_disconnect(&host, now_ms());
    }
    drop(live_guard);
}

/// Validate, derive rates, commit, then apply to the live view. Returns the sequence to acknowledge.
async fn store_samples(
    context: &IngestContext,
    state: &mut Stream,
    samples: Vec<Sample>,
) -> Result<Option<u64>, String> {
    let now = now_ms();
    let mut rows = Vec::with_capacity(samples.len());
    let mut accepted: Vec<Sample> = Vec::with_capacity(samples.len());
    for mut sample in samples {
        let seq = sample.seq;
        // Onto the collector's clock, whatever the host's clock says: a sample is never refused for its time.
        let clock_offset_ms = state.clock.place_stored(&mut sample, now);
        match validate_sample(&sample, state.last_seq) {
            Ok(()) => {
                // Rates come from the sample before: the previous one of this batch, or the last one stored.
                let previous = accepted.last().or(state.previous.as_ref());
                let metrics = derive_metrics(previous, &sample);
                if let Some(hello) = &state.hello {
                    context
                        .analytics
                        .observe(&state.host, &hello.labels, &metrics, sample.timestamp_ms, now);
                }
                let mut row = SampleRow::from_sample(&sample, metrics);
                row.clock_offset_ms = clock_offset_ms;
                rows.push(row);
                accepted.push(sample);
            }
            Err(error) => {
                state.rejected += 1;
                telemetry::global().rejected(rejection_reason(&error));
                // Log the first and then every hundredth, so a broken agent cannot flood the log.
                if state.rejected == 1 || state.rejected % 100 == 0 {
                    warn!(host = %state.host, seq, %error, rejected = state.rejected, "sample rejected");
                }
            }
        }
        // The session hands over only sequence numbers above the last one; a rejected sample is acknowledged
        // too, or the agent would resend it forever.
        state.last_seq = state.last_seq.max(Some(seq));
    }
    if rows.is_empty() {
        return Ok(state.last_seq);
    }
    // The live view needs only the newest sample of the batch, with the metrics already derived for it.
    let last_metrics = rows.last().map(|row: &SampleRow| row.metrics.clone());
    let stored_count = rows.len() as u64;
    let batch = HostBatch {
        host: state.host.clone(),
        instance_id: state.instance_id,
        received_ms: now,
        // The host's row needs the hello once per connection, not with every batch.
        hello: if state.hello_stored {
            None
        } else {
            state.hello.clone()
        },
        rows,
        gaps: Vec::new(),
    };
    match context.store.commit(batch).await {
        Ok(_outcome) => {
            telemetry::global().samples_ingested.inc_by(stored_count);
            state.hello_stored = true;
            if let (Some(last), Some(metrics)) = (accepted.pop(), last_metrics) {
                state.previous = Some(last.clone());
                let mut fleet = lock_fleet(&context.fleet);
                fleet.on_stored(&state.host, last, metrics, now);
            }
            Ok(state.last_seq)
        }
        Err(error) => Err(format!("storage unavailable, not acknowledging: {error}")),
    }
}

/// A new estimate of the host's clock offset: kept for placing its samples, shown in the fleet view, watched
/// by the clock-skew alarms, and logged when it crosses `fleet.max_clock_skew`.
fn on_clock(context: &IngestContext, host: &str, state: &mut Stream, offset_ms: i64, now: u64) {
    let max_skew_ms = context.settings.limits.max_clock_skew_ms;
    match state.clock.set_offset(offset_ms, max_skew_ms) {
        Some(SkewChange::Became { offset_ms }) => warn!(
            %host, offset_ms, max_skew_ms,
            "host clock is off; its samples are stored at corrected times (fix the host's clock: NTP)"
        ),
        Some(SkewChange::Recovered { offset_ms }) => info!(%host, offset_ms, "host clock is right again"),
        None => {}
    }
    lock_fleet(&context.fleet).on_clock(host, offset_ms, now);
    if let Some(hello) = &state.hello {
        context
            .analytics
            .observe_clock(host, &hello.labels, offset_ms, now);
    }
}

/// Feeds a live sample's derived metrics (from the fleet view, which paired it with the previous live one)
/// to the analytics. Live samples only flow while an agent catches up, so the copy is rare.
fn observe_live(context: &IngestContext, host: &str, sample: &Sample, now: u64) {
    let view = lock_fleet(&context.fleet).host(host, now);
    if let Some(view) = view {
        context
            .analytics
            .observe(host, &view.labels, &view.metrics, sample.timestamp_ms, now);
    }
}

/// The `reason` label of a rejected sample in `/metrics`.
fn rejection_reason(error: &SampleError) -> &'static str {
    match error {
        SampleError::Duplicate { .. } => "duplicate",
        SampleError::OutOfOrder { .. } => "out_of_order",
        SampleError::ZeroSeq => "zero_seq",
        SampleError::TooMany { .. } => "too_many_entries",
        SampleError::OutOfRange { .. }
        | SampleError::NotNonNegative { .. }
        | SampleError::OverTotal { .. } => "value_out_of_range",
        SampleError::BadInterfaceName { .. } => "bad_interface_name",
        _ => "invalid",
    }
}

/// The part of a contiguous gap above `last_stored`, with its start time interpolated; None if all of it is
/// stored. A gap that merged several runs (count below its span) cannot be split and is kept as reported.
fn trim_gap(mut gap: GapReport, last_stored: Option<u64>) -> Option<GapReport> {
    let Some(last) = last_stored else { return Some(gap) };
    if gap.to_seq <= last {
        return None;
    }
    let span = gap.to_seq - gap.from_seq + 1;
    if gap.from_seq <= last && gap.count == span {
        let trimmed = last + 1 - gap.from_seq;
        let step_ms = (gap.to_ms.saturating_sub(gap.from_ms)) / (span - 1).max(1);
        gap.from_seq = last + 1;
        gap.from_ms += step_ms * trimmed;
        gap.count -= trimmed;
    }
    Some(gap)
}

fn log_hello(host: &str, peer: SocketAddr, hello: &Hello, last_seq: Option<u64>) {
    let labels: Vec<String> = hello.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    info!(
        %host, %peer, agent = %hello.agent_version, labels = %labels.join(","),
        cores = hello.capacity.cores, ?last_seq, "agent connected"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(from_seq: u64, to_seq: u64, count: u64) -> GapReport {
        GapReport {
            from_seq,
            to_seq,
            from_ms: from_seq * 100,
            to_ms: to_seq * 100,
            count,
            reason: headroom_common::wire::GapReason::SpoolFull,
        }
    }

    #[test]
    fn a_gap_is_trimmed_to_what_is_not_stored() {
        assert_eq!(trim_gap(gap(6, 153, 148), None), Some(gap(6, 153, 148)));
        assert_eq!(trim_gap(gap(6, 153, 148), Some(3)), Some(gap(6, 153, 148)));
        // Sample 6 was stored but its acknowledgement never reached the agent.
        assert_eq!(trim_gap(gap(6, 153, 148), Some(6)), Some(gap(7, 153, 147)));
        assert_eq!(trim_gap(gap(6, 153, 148), Some(200)), None);
        // Merged runs cannot be split: kept as reported.
        assert_eq!(trim_gap(gap(6, 153, 100), Some(6)), Some(gap(6, 153, 100)));
    }
}
