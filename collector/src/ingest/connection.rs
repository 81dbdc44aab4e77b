//! One agent connection: identity from the certificate, the hello, then the session's events until it ends,
//! with catch-up pacing. Whatever the agent sends ends this connection only, with a logged reason.

use super::clock::HostClock;
use super::context::{lock_fleet, IngestContext};
use super::handshake::Slot;
use super::log_budget::{warn_handshake_failed, LogBudget};
use super::stored::{on_clock, store_samples, trim_gap, Stream};
use super::validate::{validate_hello, validate_sample};
use crate::identity::enroll_server::{handle_enrollment, Listener};
use crate::identity::live::{Cut, CutReason, LiveGuard};
use crate::quic::{Connecting, Connection, ConnectionError, ReadError, RecvStream, SendStream};
use crate::store::{GapRow, HostBatch, HostInfo, QueueSlot, StoreHandle};
use crate::telemetry::{self, refusal};
use headroom_common::clock::now_ms;
use headroom_common::enroll::ENROLL_ALPN;
use headroom_common::session::{CollectorEvent, CollectorSession, SessionError};
use headroom_common::spread;
use headroom_common::tls::ClientCertNow;
use headroom_common::wire::Hello;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
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

/// Most bytes one read takes from a connection's stream: more than its receive window, so whatever arrived.
const READ_AT_ONCE_BYTES: usize = 1 << 20;

/// Appends `more` to `events`, adjacent sample batches as one batch, in order: stored in one commit and
/// acknowledged once. Anything else between them (a live sample, a gap report) keeps its place.
fn push_merged(events: &mut Vec<CollectorEvent>, more: Vec<CollectorEvent>) {
    for event in more {
        match (events.last_mut(), event) {
            (Some(CollectorEvent::Samples(into)), CollectorEvent::Samples(batch)) => into.extend(batch),
            (_, event) => events.push(event),
        }
    }
}

/// The events of one read's chunks. A read of one event, the usual case while a connection keeps up, keeps
/// the session's vector as it is.
fn decode_read(
    session: &mut CollectorSession,
    chunks: &mut Vec<bytes::Bytes>,
) -> Result<Vec<CollectorEvent>, SessionError> {
    let mut events = Vec::new();
    for chunk in chunks.drain(..) {
        let more = session.on_bytes(&chunk)?;
        if events.is_empty() && more.len() <= 1 {
            events = more;
        } else {
            push_merged(&mut events, more);
        }
    }
    Ok(events)
}

/// Waits for what the agent sent and takes it; then, once `past_hello`, waits for a place in the store's queue
/// before any of it is decoded. Past the hello an agent sends samples, and when the writer is behind
/// (thousands of agents back at once, each with the backlog of the outage) the samples wait as the bytes that
/// arrived, smaller than the rows decoded from them, and no more connections hold decoded rows than the queue
/// has places, besides the group the writer is committing (issue 12, bench/RESULTS.md). Also returns when the
/// bytes were taken, which a clock reply among them is timed by.
async fn read_with_slot(
    recv: &mut RecvStream,
    chunks: &mut Vec<bytes::Bytes>,
    store: &StoreHandle,
    past_hello: bool,
) -> (Result<bool, ReadError>, u64, Option<QueueSlot>) {
    let read = recv.read_available(READ_AT_ONCE_BYTES, chunks).await;
    let read_ms = now_ms();
    // A stopped writer fails the commit that follows, with its reason.
    let slot = match read {
        Ok(true) if past_hello => match store.try_reserve() {
            Some(slot) => Some(slot),
            None => {
                let _waiting = WaitingRead::count();
                store.reserve().await.ok()
            }
        },
        _ => None,
    };
    (read, read_ms, slot)
}

/// One read counted in `store_reads_waiting` for as long as it lives, however its wait ends.
struct WaitingRead;

impl WaitingRead {
    fn count() -> WaitingRead {
        telemetry::global().store_reads_waiting.inc();
        WaitingRead
    }
}

impl Drop for WaitingRead {
    fn drop(&mut self) {
        telemetry::global().store_reads_waiting.dec();
    }
}

/// Whether a sample stamped `timestamp_ms` is catch-up (backlog) when it arrives at `now_ms`.
fn is_catch_up(timestamp_ms: u64, now_ms: u64) -> bool {
    timestamp_ms.saturating_add(CATCH_UP_AGE_MS) < now_ms
}

/// How long to hold the connection's next read so that the `stored` catch-up samples since pacing started
/// `elapsed` ago stay within `CATCH_UP_SAMPLES_PER_S`.
fn catch_up_wait(stored: u64, elapsed: Duration) -> Duration {
    Duration::from_secs_f64(stored as f64 / CATCH_UP_SAMPLES_PER_S).saturating_sub(elapsed)
}

/// The host identity in the peer's certificate. The handshake already required one; this is the second
/// line of defence.
fn peer_host(connection: &Connection) -> Result<String, String> {
    let leaf = connection
        .peer_cert_der()
        .ok_or("no client certificate (enroll this host first)")?;
    headroom_common::tls::identity_from_cert(&leaf).map_err(|e| e.to_string())
}

/// Failed handshakes get at most 20 warning lines a minute: a client that fails handshakes as fast as it can
/// must not fill the disk with the log.
static HANDSHAKE_WARNINGS: std::sync::Mutex<LogBudget> = std::sync::Mutex::new(LogBudget::new(20, 60_000));

/// A connection the endpoint accepted, started by `Incoming::accept` (`connecting`): `handshake_slot` is
/// released once the handshake ended, whichever way.
pub(super) struct Start {
    pub peer: SocketAddr,
    pub connecting: Result<Connecting, ConnectionError>,
    pub handshake_slot: Slot,
    pub handshake_timeout: Duration,
}

/// A connection past its handshake and the checks of its certificate, with its stream open.
struct Open {
    connection: Connection,
    peer: SocketAddr,
    host: String,
    cut: Arc<Cut>,
    live_guard: LiveGuard,
    /// When the certificate was issued: a host never stored here can have sampled at most since then.
    issued_ms: u64,
    /// Its labels are read at the hello; until then the certificate is all the task keeps of it.
    cert: Option<Vec<u8>>,
    /// When the certificate expires.
    expires: tokio::time::Instant,
    send: SendStream,
    recv: RecvStream,
}

/// Runs one connection from its handshake on. Every connected agent holds one task of this future for as long
/// as it is connected (issue 12): what comes before the stream (handshake, checks, a renewal) runs boxed and is
/// freed once the stream is open, and the arguments come boxed, since an async function keeps its arguments
/// beside its own locals for its whole life.
pub(super) async fn handle_connection(
    start: Box<Start>,
    context: Arc<IngestContext>,
    cancel: CancellationToken,
) {
    let Some(open) = Box::pin(open_stream(start, &context, &cancel)).await else {
        return;
    };
    stream(open, &context).await;
}

/// The handshake, the checks of the client certificate and the agent's stream; `None` when the connection
/// ended on the way (refused, timed out, cut, a renewal served, or the collector stopping).
async fn open_stream(
    start: Box<Start>,
    context: &Arc<IngestContext>,
    cancel: &CancellationToken,
) -> Option<Box<Open>> {
    let Start {
        peer,
        connecting,
        handshake_slot,
        handshake_timeout,
    } = *start;
    let handshake = async {
        match connecting {
            Ok(connecting) => connecting.await,
            Err(error) => Err(error),
        }
    };
    let connection = match tokio::time::timeout(handshake_timeout, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            // Most often a client without a certificate, with one from another CA, or a revoked one.
            warn_handshake_failed(
                &HANDSHAKE_WARNINGS,
                now_ms(),
                peer,
                &error,
                "handshake failed; connection refused",
            );
            telemetry::global().refused(refusal::HANDSHAKE);
            return None;
        }
        Err(_) => {
            // Dropping the unfinished connection closes it and frees its state.
            debug!(%peer, timeout = ?handshake_timeout, "handshake not finished in time; dropped");
            telemetry::global().refused(refusal::TIMEOUT);
            return None;
        }
    };
    drop(handshake_slot);
    telemetry::global().handshakes.inc();
    // A resumed TLS session carries the certificate of the full handshake it resumes, unverified since:
    // check now that it is still valid and not revoked, whichever kind of handshake this was.
    let leaf = connection.peer_cert_der().unwrap_or_default();
    let revocations: &dyn headroom_common::tls::RevocationCheck = &context.revocations;
    if let Err(refused) =
        headroom_common::tls::check_client_cert_now(&leaf, (now_ms() / 1000) as i64, Some(revocations))
    {
        let code = match refused {
            ClientCertNow::Revoked => close_code::REVOKED,
            ClientCertNow::Expired | ClientCertNow::NotYetValid => close_code::EXPIRED,
            ClientCertNow::Unreadable(_) => close_code::IDENTITY,
        };
        warn!(%peer, reason = %refused, "client certificate refused after the handshake");
        telemetry::global().refused(refusal::HANDSHAKE);
        connection.close(code, refused.to_string().as_bytes());
        return None;
    }
    if connection.alpn().as_deref() == Some(ENROLL_ALPN) {
        match &context.enroll {
            Some(enroll) => {
                Box::pin(handle_enrollment(connection, enroll.clone(), Listener::Streaming)).await
            }
            None => {
                info!(%peer, "renewal refused: enrollment is off on this collector");
                connection.close(
                    close_code::IDENTITY,
                    b"renewal is off on this collector (enroll_listen = \"off\"); enroll the host again",
                );
            }
        }
        return None;
    }
    let host = match peer_host(&connection) {
        Ok(host) => host,
        Err(reason) => {
            warn!(%peer, %reason, "no usable identity in the client certificate; connection refused");
            telemetry::global().refused(refusal::IDENTITY);
            connection.close(close_code::IDENTITY, reason.as_bytes());
            return None;
        }
    };
    let serial = headroom_common::pki::serial_from_cert(&leaf).unwrap_or_default();
    let (cut, live_guard) = context.live.register(&host, &serial, peer);
    context.last_seen.note(&serial, (now_ms() / 1000) as i64);
    // The handshake checked validity once; a certificate that expires later ends the connection then, as
    // revocation does, and the agent reconnects with its renewed certificate (or is refused).
    let (issued_s, not_after_s) = headroom_common::pki::cert_info_der(&leaf)
        .map(|info| (info.issued_s(), info.not_after_s))
        .unwrap_or((0, 0));
    let issued_ms = u64::try_from(issued_s).unwrap_or(0).saturating_mul(1000);
    let valid_for = Duration::from_secs(u64::try_from(not_after_s - (now_ms() / 1000) as i64).unwrap_or(0));
    let expires = tokio::time::Instant::now() + valid_for;
    let stream = tokio::select! {
        _ = cancel.cancelled() => return None,
        _ = cut.wait() => return None,
        _ = tokio::time::sleep_until(expires) => {
            connection.close(close_code::EXPIRED, b"certificate expired");
            return None;
        }
        stream = tokio::time::timeout(HELLO_TIMEOUT, connection.accept_bi()) => stream,
    };
    let (send, recv) = match stream {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(%host, %peer, %error, "connection ended before opening its stream");
            return None;
        }
        Err(_) => {
            warn!(%host, %peer, "no stream within {HELLO_TIMEOUT:?}; closing");
            connection.close(close_code::TIMEOUT, b"no hello");
            return None;
        }
    };
    Some(Box::new(Open {
        connection,
        peer,
        host,
        cut,
        live_guard,
        issued_ms,
        cert: Some(leaf),
        expires,
        send,
        recv,
    }))
}

/// The agent's stream, from its hello to its end: samples stored and acknowledged, live samples, gap
/// reports, clock probes.
async fn stream(open: Box<Open>, context: &IngestContext) {
    let Open {
        connection,
        peer,
        host,
        cut,
        live_guard,
        issued_ms,
        mut cert,
        expires,
        mut send,
        mut recv,
    } = *open;
    let expiry = tokio::time::sleep_until(expires);
    tokio::pin!(expiry);
    let mut session = CollectorSession::new(host.clone());
    let mut state = Stream {
        host: host.clone(),
        instance_id: 0,
        hello: None,
        previous: None,
        last_seq: None,
        rejected: 0,
        interval_ms: 0,
        last_live_ms: None,
        clock: HostClock::default(),
        analytics: None,
        last_stored_ms: None,
    };
    let catch_up_started = tokio::time::Instant::now();
    let mut catch_up_stored: u64 = 0;
    // What goes back after each read, all in one write; the buffer is kept from read to read.
    let mut reply = Vec::new();
    // The chunks of one read; kept from read to read.
    let mut chunks = Vec::new();
    // Waited on by every turn of the loop; the collector's stop comes the same way (`LiveConnections::stop_all`).
    let cut_off = cut.wait();
    tokio::pin!(cut_off);
    let outcome: Result<&'static str, (u32, String)> = loop {
        let (read, read_ms, mut slot) = tokio::select! {
            // Stop, cut and expiry come before more data: a wait they ended early lands here.
            biased;
            reason = &mut cut_off => {
                let (code, reason) = match reason {
                    CutReason::Stopping => break Ok("collector stopping"),
                    CutReason::Revoked => (close_code::REVOKED, "certificate revoked (enroll this host again)"),
                    CutReason::Replaced => (close_code::REPLACED, "replaced by a newer connection with the same identity"),
                };
                break Err((code, reason.to_string()));
            }
            _ = &mut expiry => break Err((
                close_code::EXPIRED,
                "certificate expired (the agent renews before this; enroll the host again)".to_string(),
            )),
            // Chunks come straight from quinn-proto's receive buffers: no read buffer of our own per connection.
            // Everything received so far comes at once, so a task that waited its turn takes its backlog in
            // one turn, one commit and one acknowledgement.
            read = read_with_slot(&mut recv, &mut chunks, &context.store, state.past_hello()) => read,
        };
        match read {
            Ok(true) => {}
            Ok(false) => break Ok("agent ended the stream"),
            Err(error) => break Err((close_code::PROTOCOL, format!("read failed: {error}"))),
        }
        let events = match decode_read(&mut session, &mut chunks) {
            Ok(events) => events,
            Err(error) => {
                let _ = send.write_all(&session.refuse_frame(&error.to_string())).await;
                break Err((close_code::PROTOCOL, error.to_string()));
            }
        };
        reply.clear();
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
                        connection.close(close_code::PROTOCOL, b"bad hello");
                        warn!(%host, %peer, %error, "hello refused");
                        telemetry::global().refused(refusal::HELLO);
                        return;
                    }
                    // Labels come from the certificate; the hello's count only where it grants none.
                    // Read once: the session takes one hello, and the certificate is not kept past it.
                    let granted = cert
                        .take()
                        .and_then(|cert| headroom_common::pki::labels_from_cert(&cert).ok())
                        .unwrap_or_default();
                    hello.labels = context
                        .ignored_labels
                        .resolve(&host, &hello.labels, &granted, &context.settings.hello_label_keys)
                        .labels;
                    state.instance_id = hello.instance_id;
                    state.interval_ms = hello.interval_ms;
                    state.hello = Some(HostInfo::from_hello(&hello));
                    state.last_seq = context.store.last_seq(&host, hello.instance_id);
                    log_hello(&host, peer, &hello, state.last_seq);
                    let mut fleet = lock_fleet(&context.fleet);
                    let labels = fleet.on_hello(&host, &hello, now_ms());
                    // Rates of the first sample stored on this connection come from the last one stored on
                    // an earlier connection of the same instance.
                    state.previous = fleet.stored_previous(&host, hello.instance_id, state.last_seq);
                    drop(fleet);
                    // The analytics share the live view's copy of the labels.
                    state.analytics = Some(context.analytics.bind(
                        &host,
                        &labels,
                        hello.capacity.cores,
                        hello.capacity.memory_bytes,
                        now_ms(),
                    ));
                    // The session just reported the hello, so it is waiting for exactly this welcome.
                    if let Ok(frame) = session.welcome_frame(state.last_seq) {
                        reply.extend_from_slice(&frame);
                    }
                }
                CollectorEvent::Samples(samples) => {
                    let now = now_ms();
                    let backlog = samples
                        .iter()
                        .filter(|s| is_catch_up(s.timestamp_ms, now))
                        .count();
                    // Since this connection's last commit, or before its first, since the store last heard of the host.
                    let last_seen_ms = state.last_stored_ms.or_else(|| context.store.last_seen_ms(&host));
                    let away_ms = now.saturating_sub(last_seen_ms.unwrap_or(issued_ms));
                    let count = samples.len() as u64;
                    let wait_ms = context
                        .store_shares
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .charge(&host, state.interval_ms, (CATCH_UP_AGE_MS, away_ms), count, now);
                    if wait_ms > 0 {
                        // Over its share of the store writer: these samples wait before they are stored
                        // (never acknowledged unstored), the stream is not read meanwhile, and QUIC flow
                        // control holds the agent back. What is already owed goes out first, and the
                        // queue's place is for others meanwhile.
                        slot = None;
                        if !reply.is_empty() {
                            let written = send.write_all(&reply).await;
                            reply.clear();
                            if let Err(error) = written {
                                failure = Some((close_code::PROTOCOL, format!("write failed: {error}")));
                                break;
                            }
                        }
                        telemetry::global().samples_held_back.inc_by(count);
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                            _ = &mut cut_off => { interrupted = true; break; }
                            _ = &mut expiry => { interrupted = true; break; }
                        }
                    }
                    let arrived = std::time::Instant::now();
                    // Boxed: its future (~2 KiB, a batch and a sample held across the commit) would otherwise
                    // size this task for the whole connection's life, for one allocation per batch.
                    match Box::pin(store_samples(context, &mut state, samples, slot.take())).await {
                        Ok(Some(seq)) => {
                            // An ack of a few bytes always encodes.
                            let _ = session.push_ack_frame(seq, &mut reply);
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
                        let sample_ms = sample.timestamp_ms;
                        lock_fleet(&context.fleet).on_sample(&host, *sample, now);
                        observe_live(context, &host, sample_ms, now);
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
                        hello: state.hello.take(),
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
                    if let Err(error) = Box::pin(context.store.commit_in(slot.take(), batch)).await {
                        failure = Some((close_code::STORAGE, format!("storage unavailable: {error}")));
                        break;
                    }
                }
                CollectorEvent::TimeReply(time) => {
                    // Timed by its arrival, not by the wait for the store that may have followed it.
                    if session.on_time_reply(&time, read_ms).is_some() {
                        if let Some(offset_ms) = session.clock_offset_ms() {
                            on_clock(context, &host, &mut state, offset_ms, now_ms());
                        }
                    }
                }
                CollectorEvent::Goodbye => goodbye = true,
            }
        }
        // Clock probes ride along with whatever goes back: right after the welcome, then every 30 s; so does
        // the reconnect spread, 10 s after the welcome and then when the fleet's size moved.
        let now = now_ms();
        if let Some(frame) = session.probe_frame(now) {
            reply.extend_from_slice(&frame);
        }
        let window = || spread::window_ms(context.live.count(), context.settings.reconnect_rate);
        if let Some(frame) = session.spread_frame(now, window) {
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
        let wait = catch_up_wait(catch_up_stored, catch_up_started.elapsed());
        if !wait.is_zero() {
            // The loop's next turn says why, if the wait ended early.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut cut_off => {}
                _ = &mut expiry => {}
            }
        }
    };
    match &outcome {
        Ok(reason) => {
            info!(%host, %peer, reason, "agent disconnected");
            let _ = send.finish();
            connection.close(close_code::STOPPING, reason.as_bytes());
        }
        Err((code, reason)) => {
            warn!(%host, %peer, %reason, "closing connection");
            connection.close(*code, reason.as_bytes());
        }
    }
    if state.past_hello() {
        lock_fleet(&context.fleet).on_disconnect(&host, now_ms());
    }
    drop(live_guard);
}

/// Feeds a live sample's derived metrics (from the fleet view, which paired it with the previous live one)
/// to the analytics. Live samples only flow while an agent catches up, so the copy is rare.
fn observe_live(context: &IngestContext, host: &str, sample_ms: u64, now: u64) {
    let view = lock_fleet(&context.fleet).host(host, now);
    if let Some(view) = view {
        context
            .analytics
            .observe(host, &view.labels, &view.metrics, sample_ms, now);
    }
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
    use crate::quic::tests::{pair, within};
    use headroom_common::wire::Sample;

    fn samples(seqs: &[u64]) -> CollectorEvent {
        CollectorEvent::Samples(
            seqs.iter()
                .map(|&seq| Sample {
                    seq,
                    ..Sample::default()
                })
                .collect(),
        )
    }

    fn shape(events: &[CollectorEvent]) -> Vec<String> {
        events
            .iter()
            .map(|event| match event {
                CollectorEvent::Samples(batch) => {
                    format!("{:?}", batch.iter().map(|s| s.seq).collect::<Vec<_>>())
                }
                CollectorEvent::Live(sample) => format!("live {}", sample.seq),
                CollectorEvent::Goodbye => "goodbye".to_string(),
                _ => "other".to_string(),
            })
            .collect()
    }

    fn merge_adjacent_samples(events: Vec<CollectorEvent>) -> Vec<CollectorEvent> {
        let mut merged = Vec::new();
        push_merged(&mut merged, events);
        merged
    }

    #[test]
    fn issue_12_the_sample_batches_of_one_read_are_stored_as_one_in_order() {
        let live = || {
            CollectorEvent::Live(Box::new(Sample {
                seq: 9,
                ..Sample::default()
            }))
        };
        let events = vec![
            samples(&[1, 2]),
            samples(&[3]),
            samples(&[4, 5]),
            live(),
            samples(&[6]),
            samples(&[7]),
            CollectorEvent::Goodbye,
        ];
        assert_eq!(
            shape(&merge_adjacent_samples(events)),
            ["[1, 2, 3, 4, 5]", "live 9", "[6, 7]", "goodbye"]
        );
        assert_eq!(shape(&merge_adjacent_samples(vec![samples(&[1])])), ["[1]"]);
        assert!(merge_adjacent_samples(Vec::new()).is_empty());
    }

    /// Issue 12: a connection past its hello takes what arrived, then waits for a place in the store's queue
    /// before it decodes any of it; before the hello (which needs no place) it does not wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issue_12_past_the_hello_a_read_waits_for_a_place_in_the_store_queue() {
        let pair = pair(crate::quic::TransportConfig::default());
        let accepting = async {
            let incoming = pair.server.accept().await.expect("an incoming connection");
            incoming.accept().expect("accepted").await.expect("handshake")
        };
        let (client, server) = within(async { tokio::join!(pair.connect(), accepting) }).await;
        let client = client.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = crate::store::Store::open(&dir.path().join("headroom.db"), now_ms()).unwrap();
        // A queue of one place, taken.
        let (store, writer) = crate::store::spawn_writer(store, 1);
        let held = store.reserve().await.unwrap();

        let (mut client_send, _client_recv) = within(client.open_bi()).await.unwrap();
        client_send.write_all(b"hello").await.unwrap();
        let (_server_send, mut recv) = within(server.accept_bi()).await.unwrap();
        let mut chunks = Vec::new();
        let (read, _, slot) = within(read_with_slot(&mut recv, &mut chunks, &store, false)).await;
        assert!(read.unwrap());
        assert!(slot.is_none(), "the hello is read without a place");
        assert_eq!(chunks.concat(), b"hello");

        chunks.clear();
        client_send.write_all(b"samples").await.unwrap();
        let waiting = telemetry::global().store_reads_waiting.get();
        let mut reading = Box::pin(read_with_slot(&mut recv, &mut chunks, &store, true));
        within(async {
            loop {
                tokio::select! {
                    _ = &mut reading => panic!("a read past the hello went on without a place"),
                    _ = tokio::task::yield_now() => {}
                }
                if telemetry::global().store_reads_waiting.get() > waiting {
                    break;
                }
            }
        })
        .await;
        // The place frees: the read goes on with it and with what arrived.
        drop(held);
        let (read, _, slot) = within(reading).await;
        assert!(read.unwrap());
        assert!(slot.is_some(), "the read holds a place for its commit");
        assert_eq!(chunks.concat(), b"samples");
        assert!(
            store.try_reserve().is_none(),
            "the place is the read's until used or dropped"
        );
        drop(slot);
        assert!(store.try_reserve().is_some());
        drop(store);
        writer.join().unwrap();
    }

    /// The size of the future a function returns, from the function alone (no arguments needed).
    fn future_size<F, A, B, C, Fut>(_: &F) -> usize
    where
        F: Fn(A, B, C) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Issue 12: every connected agent holds one task of this future for as long as it is connected. The
    /// handshake, a renewal, a gap report and the store's commit are boxed, so the rare paths do not size it
    /// (2,872 bytes in a release build where it was 4,496 with them in place), and so are the arguments and
    /// everything before the stream, which the task kept beside the stream's state: 1,760 bytes where it was
    /// 2,088.
    #[test]
    fn issue_12_a_connections_task_is_not_sized_by_its_rare_paths() {
        let size = future_size(&handle_connection);
        assert!(size <= 1_850, "handle_connection's future is {size} bytes");
    }

    /// Issue 9: the catch-up pace ARCHITECTURE.md states. Samples more than 10 s old are backlog; backlog is
    /// stored at most 2,000 a second per connection, and a connection that stays under that pace is not held.
    #[test]
    fn issue_9_catch_up_is_paced_at_2000_samples_a_second_per_connection() {
        let now_ms = 1_000_000;
        assert!(is_catch_up(now_ms - 10_001, now_ms));
        assert!(!is_catch_up(now_ms - 10_000, now_ms));
        assert!(
            !is_catch_up(now_ms + 5_000, now_ms),
            "a clock ahead is live, not backlog"
        );
        // 6,000 backlog samples stored within the first second: the next read waits until 3 s have passed.
        assert_eq!(
            catch_up_wait(6_000, Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            catch_up_wait(2_000, Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        // At or under the pace nothing waits.
        assert_eq!(catch_up_wait(2_000, Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(catch_up_wait(0, Duration::ZERO), Duration::ZERO);
        // Over a long catch-up the stored count follows the elapsed time at exactly the pace.
        let stored = 2_000 * 3_600;
        assert_eq!(catch_up_wait(stored, Duration::from_secs(3_600)), Duration::ZERO);
        assert_eq!(
            catch_up_wait(stored + 2_000, Duration::from_secs(3_600)),
            Duration::from_secs(1)
        );
    }
}
