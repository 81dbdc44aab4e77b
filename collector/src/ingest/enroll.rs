//! The enrollment listener (`enroll_listen`, UDP 9602 by default): its own QUIC endpoint, so that clients
//! without a certificate never reach the streaming port. Small flow-control windows (a request is a few
//! kilobytes), a per-source-address rate limit on new connections, a cap on enrollments in progress, and
//! the file and signing work on blocking threads, off the async runtime.

use super::admission::SourceRate;
use super::handshake::{HandshakeLimits, InProgress};
use super::log_budget::{warn_handshake_failed, LogBudget};
use super::{admit, refuse, Admitted};
use crate::identity::enroll_server::{handle_enrollment, EnrollContext, Listener};
use crate::quic::{Endpoint, QuicServerConfig, ServerConfig, TransportConfig};
use crate::telemetry::{self, refusal};
use headroom_common::enroll::MAX_ENROLL_FRAME_BYTES;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// Failed enrollment handshakes get at most 20 warning lines a minute, like those on the streaming port.
static ENROLL_WARNINGS: std::sync::Mutex<LogBudget> = std::sync::Mutex::new(LogBudget::new(20, 60_000));

/// New enrollment connections one source address may open at once, and per second after that. A rollout
/// enrolls each host once; a burst of 20 lets a NAT'd rack enroll together.
const SOURCE_BURST: u32 = 20;
const SOURCE_PER_S: f64 = 2.0;
/// Source addresses remembered by the rate limit.
const MAX_SOURCES: usize = 10_000;
/// Enrollment connections served at once; past it, new ones are refused (the agent says so and exits).
pub const MAX_IN_PROGRESS: usize = 64;
/// How often refusals are summarised in the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// QUIC transport of the enrollment listener: one stream, windows just over one request frame, a short
/// idle timeout. A client holding a connection open gets little memory and not for long.
pub fn enroll_server_config(tls: rustls::ServerConfig) -> anyhow::Result<ServerConfig> {
    let crypto = QuicServerConfig::try_from(Arc::new(tls))
        .map_err(|e| anyhow::anyhow!("tls configuration unusable for QUIC: {e}"))?;
    let mut server = ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(enroll_transport()));
    Ok(server)
}

/// The enrollment listener's QUIC transport (see [`enroll_server_config`]).
fn enroll_transport() -> TransportConfig {
    let window = (MAX_ENROLL_FRAME_BYTES + 4) as u32;
    let mut transport = TransportConfig::default();
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_idle_timeout(Some(
        Duration::from_secs(10).try_into().expect("10 s fits a varint"),
    ));
    transport.stream_receive_window(window.into());
    transport.receive_window(window.into());
    transport.send_window(u64::from(window));
    transport
}

/// Accepts enrollment connections until `cancel` fires.
pub async fn serve_enrollment(
    endpoint: Endpoint,
    context: Arc<EnrollContext>,
    limits: HandshakeLimits,
    cancel: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let serving = Arc::new(tokio::sync::Semaphore::new(MAX_IN_PROGRESS));
    let in_progress = InProgress::reporting("enrollment");
    let mut retried: u64 = 0;
    let mut rate = SourceRate::new(SOURCE_BURST, SOURCE_PER_S, MAX_SOURCES);
    let mut refused_rate: u64 = 0;
    let mut refused_busy: u64 = 0;
    let mut last_log = tokio::time::Instant::now();
    let started = tokio::time::Instant::now();
    loop {
        if (refused_rate > 0 || refused_busy > 0 || retried > 0) && last_log.elapsed() >= REFUSAL_LOG_INTERVAL
        {
            warn!(
                refused_rate,
                refused_busy,
                retried,
                "enrollment connections refused or sent a Retry in the last interval (per-source limits, or too many at once)"
            );
            refused_rate = 0;
            refused_busy = 0;
            retried = 0;
            last_log = tokio::time::Instant::now();
        }
        let incoming = tokio::select! {
            _ = cancel.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        let now_ms = started.elapsed().as_millis() as u64;
        if !rate.admit(incoming.remote_address().ip(), now_ms) {
            refuse(incoming, refusal::ENROLL_RATE, &mut refused_rate);
            continue;
        }
        // The enrollment listener keeps no line (its limits have none): a busy one refuses at once.
        let (incoming, slot) = match admit(
            incoming,
            &limits,
            &in_progress,
            0,
            &mut retried,
            &mut refused_busy,
        ) {
            Admitted::Start(incoming, slot) => (incoming, slot),
            Admitted::Wait(incoming) => {
                refuse(incoming, refusal::BUSY, &mut refused_busy);
                continue;
            }
            Admitted::Answered => continue,
        };
        let Ok(permit) = serving.clone().try_acquire_owned() else {
            refuse(incoming, refusal::BUSY, &mut refused_busy);
            continue;
        };
        let context = context.clone();
        tasks.spawn(async move {
            let peer = incoming.remote_address();
            let connecting = match incoming.accept() {
                Ok(connecting) => connecting,
                Err(error) => {
                    telemetry::global().refused(refusal::HANDSHAKE);
                    warn_handshake_failed(&ENROLL_WARNINGS, now_ms, peer, &error, "enrollment handshake failed");
                    return;
                }
            };
            match tokio::time::timeout(limits.timeout, connecting).await {
                Ok(Ok(connection)) => {
                    drop(slot);
                    handle_enrollment(connection, context, Listener::Enrollment).await;
                }
                Ok(Err(error)) => {
                    telemetry::global().refused(refusal::HANDSHAKE);
                    warn_handshake_failed(
                        &ENROLL_WARNINGS,
                        now_ms,
                        peer,
                        &error,
                        "enrollment handshake failed",
                    );
                }
                Err(_) => {
                    // A flood of these is counted, not logged one by one.
                    debug!(%peer, timeout = ?limits.timeout, "enrollment handshake not finished in time; dropped");
                    telemetry::global().refused(refusal::TIMEOUT);
                }
            }
            drop(permit);
        });
    }
    tasks.close();
    endpoint.close(0, b"collector stopping");
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9: SECURITY.md's promise for UDP 9602. One stream whose windows hold one 64 KiB request (and its
    /// 4-byte length), no other streams, a 10 s idle timeout; 20 new connections per source address at once
    /// and 2 a second after that; 64 enrollments in progress.
    #[test]
    fn issue_9_the_enrollment_listener_has_the_documented_limits() {
        let text = format!("{:?}", enroll_transport());
        let window = 64 * 1024 + 4;
        for expected in [
            format!("stream_receive_window: {window}"),
            format!("receive_window: {window}"),
            format!("send_window: {window}"),
            "max_concurrent_bidi_streams: 1".to_string(),
            "max_concurrent_uni_streams: 0".to_string(),
            "max_idle_timeout: Some(10000)".to_string(),
        ] {
            assert!(text.contains(&expected), "{expected} not in {text}");
        }
        assert_eq!((SOURCE_BURST, SOURCE_PER_S, MAX_IN_PROGRESS), (20, 2.0, 64));
    }
}
