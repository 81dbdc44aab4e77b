//! QUIC ingest: accept agents over mutual TLS, run one protocol session per connection, store and apply.
//!
//! This is the only part of the collector that knows QUIC. Each connection is its own task; whatever one
//! agent sends (garbage, an oversized frame, a message out of turn) ends that connection only, with a logged
//! reason, and never the collector. Samples are acknowledged only after the database committed them; while
//! a commit is pending the task does not read, so QUIC flow control slows the agent instead of a queue growing.
//!
//! This file is the listener (`serve`, `admit`, the server config); `connection.rs` runs one connection,
//! `stored.rs` its ordered path to the store, `context.rs` holds what the connection tasks share.

pub mod admission;
pub mod batches;
pub mod clock;
pub mod enroll;
pub mod handshake;
pub mod log_budget;
pub mod reload;
pub mod transport;
pub mod validate;

mod connection;
mod context;
mod line;
mod stored;

pub use connection::close_code;
pub use context::{lock_fleet, run_last_seen_writer, IngestContext, IngestSettings, LastSeen, SharedFleet};

use crate::quic::{Endpoint, Incoming, QuicServerConfig, ServerConfig};
use crate::telemetry::{self, refusal};
use connection::{handle_connection, Start};
use handshake::{Admit, HandshakeLimits, InProgress, Slot};
use line::Line;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Handshakes in progress at once. Past this, validated connections wait in line for a slot, a few seconds at
/// most (`HandshakeLimits::max_wait`), and past the line's length they are refused at once (the agents back
/// off with jitter) instead of queueing work the collector cannot finish before the agents give up on it.
pub const MAX_HANDSHAKES_IN_PROGRESS: usize = 256;

/// How often refusals for load are summarised in the log.
const LOAD_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The QUIC server configuration of the streaming listener: TLS 1.3 with a required client certificate,
/// per-connection windows sized from the frame limit (`transport`).
pub fn server_config(tls: rustls::ServerConfig) -> anyhow::Result<ServerConfig> {
    let crypto = QuicServerConfig::try_from(Arc::new(tls))
        .map_err(|e| anyhow::anyhow!("tls configuration unusable for QUIC: {e}"))?;
    let mut server = ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport::streaming_transport()));
    Ok(server)
}

/// Accept connections until `cancel` fires, then close them all and wait for their tasks.
pub async fn serve(endpoint: Endpoint, context: Arc<IngestContext>, cancel: CancellationToken) {
    let tasks = TaskTracker::new();
    let limits = context.settings.handshakes;
    let in_progress = InProgress::reporting("streaming");
    let mut refused_busy: u64 = 0;
    let mut refused_full: u64 = 0;
    let mut retried: u64 = 0;
    let mut last_load_log = tokio::time::Instant::now();
    // A slot's next handshake starts from whichever task frees it (`line`), so tasks are spawned through the
    // runtime's handle rather than from the current context.
    let runtime = tokio::runtime::Handle::current();
    let start: line::Start = Box::new({
        let context = context.clone();
        let cancel = cancel.clone();
        let tasks = tasks.clone();
        move |incoming: Incoming, slot: Slot| {
            let peer = incoming.remote_address();
            let connecting = incoming.accept();
            let context = context.clone();
            let cancel = cancel.clone();
            let start = Box::new(Start {
                peer,
                connecting,
                handshake_slot: slot,
                handshake_timeout: limits.timeout,
            });
            tasks.spawn_on(handle_connection(start, context, cancel), &runtime);
        }
    });
    // Validated connections waiting for a handshake slot, oldest first.
    let line = Line::new(limits, in_progress.clone(), start);
    loop {
        refused_busy += line.take_refused_late();
        if (refused_busy > 0 || refused_full > 0 || retried > 0)
            && last_load_log.elapsed() >= LOAD_LOG_INTERVAL
        {
            warn!(
                refused_busy,
                refused_full,
                retried,
                max_handshakes = MAX_HANDSHAKES_IN_PROGRESS,
                waiting = line.len(),
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
            refuse(incoming, refusal::FULL, &mut refused_full);
            continue;
        }
        match admit(
            incoming,
            &limits,
            &in_progress,
            line.len(),
            &mut retried,
            &mut refused_busy,
        ) {
            Admitted::Start(incoming, slot) => line.start(incoming, slot),
            Admitted::Wait(incoming) => {
                let waiting = in_progress.wait(incoming.remote_address().ip());
                line.push(incoming, waiting);
            }
            Admitted::Answered => {}
        }
    }
    // Every connection's task ends its stream with "collector stopping", and so does one whose handshake is
    // still finishing. Those still in line are dropped unanswered: the endpoint closes below.
    context.live.stop_all();
    line.stop();
    tasks.close();
    endpoint.close(close_code::STOPPING, b"collector stopping");
    tasks.wait().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// What [`admit`] did with a new connection.
pub(crate) enum Admitted {
    /// It has a handshake slot: start it.
    Start(Incoming, Slot),
    /// Every slot is taken: hold it in line.
    Wait(Incoming),
    /// A Retry or a refusal went back; nothing more to do.
    Answered,
}

/// Applies [`handshake::decide`] to one new connection, with `waiting` connections in line: sends the Retry
/// or refusal it calls for and counts it, or returns the connection with its handshake slot, or to be held.
pub(crate) fn admit(
    incoming: Incoming,
    limits: &HandshakeLimits,
    in_progress: &InProgress,
    waiting: usize,
    retried: &mut u64,
    refused: &mut u64,
) -> Admitted {
    let source = incoming.remote_address().ip();
    let (total, from_source) = in_progress.counts(source);
    match handshake::decide(
        limits,
        total,
        from_source,
        waiting,
        incoming.remote_address_validated(),
    ) {
        Admit::Accept => {
            let slot = in_progress.begin(source);
            Admitted::Start(incoming, slot)
        }
        Admit::Wait => Admitted::Wait(incoming),
        Admit::Retry => {
            *retried += 1;
            match incoming.retry() {
                Ok(()) => {
                    telemetry::global().handshake_retries.inc();
                }
                // Only an already validated address cannot be retried, and those are never sent here.
                Err(incoming) => incoming.ignore(),
            }
            Admitted::Answered
        }
        Admit::Refuse(reason) => {
            refuse(incoming, reason, refused);
            Admitted::Answered
        }
    }
}

/// Refuses a new connection for `reason` (a `connections_refused` label) and counts it in `counted`, the
/// caller's tally for its periodic log line.
pub(crate) fn refuse(incoming: Incoming, reason: &'static str, counted: &mut u64) {
    *counted += 1;
    telemetry::global().refused(reason);
    incoming.refuse();
}
