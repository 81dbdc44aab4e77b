//! One simulated agent: a distinct host with its own certificate and QUIC connection, sampling once a second
//! through `SimSource` and streaming through `AgentSession` and `Outbox`, as the real uplink does, with the
//! same reconnect backoff and the same decision to give up on late acknowledgements (`ack_watch`). It records when each sample left and when its ack came back.

use headroom_agent::ack_watch::{AckVerdict, AckWatch, CHECK_EVERY};
use headroom_agent::run::SampleSource;
use headroom_collector::app::sim::{SimSource, SimSpec};
use headroom_common::backoff::Backoff;
use headroom_common::clock::now_ms;
use headroom_common::session::{AgentEvent, AgentSession, Outbox};
use headroom_common::wire::{Hello, PROTOCOL_VERSION};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Unacknowledged samples one agent keeps, as the real agent's in-memory outbox (an hour at 1 Hz).
const OUTBOX_SAMPLES: usize = 3600;

/// The agent's uplink gives the QUIC handshake 10 s and the welcome 15 s more; the same here, so abandoned
/// attempts load the collector exactly as a real fleet's would.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

/// Progress of one agent, read by the coordinator.
#[derive(Default)]
pub struct Progress {
    /// Highest sequence number sampled.
    pub produced: AtomicU64,
    /// Highest sequence number the collector acknowledged.
    pub acked: AtomicU64,
    /// Welcomes received: one per successful (re)connection.
    pub welcomes: AtomicU32,
}

/// What every agent shares with the coordinator.
pub struct Shared {
    pub server: SocketAddr,
    pub server_name: String,
    pub progress: Vec<Progress>,
    /// While true, ack latencies are kept (the measurement window).
    pub recording: AtomicBool,
    /// While true, agents sample; cleared before the final drain so acks can catch up.
    pub sampling: AtomicBool,
    pub latencies_us: Mutex<Vec<u32>>,
    pub samples_acked: AtomicU64,
    pub connect_failures: AtomicU64,
    pub disconnects: AtomicU64,
    pub stop: CancellationToken,
}

/// Everything one agent needs to run.
pub struct AgentSpec {
    pub index: usize,
    pub sim: SimSpec,
    pub client: quinn::ClientConfig,
    pub instance_id: u64,
    /// When this agent first connects.
    pub start_at: tokio::time::Instant,
    /// When its first sample is taken; later ones follow every second, so phases spread over the second.
    pub first_tick_at: tokio::time::Instant,
}

struct Local {
    source: SimSource,
    seq: u64,
    outbox: Outbox,
    /// (seq, when its batch was written) for samples sent in this connection and not yet acked.
    sent_at: VecDeque<(u64, Instant)>,
}

impl Local {
    fn take_sample(&mut self, shared: &Shared, index: usize) {
        if !shared.sampling.load(Ordering::Relaxed) {
            return;
        }
        self.seq += 1;
        let sample = self.source.sample(self.seq, now_ms(), Instant::now());
        self.outbox.push(sample);
        shared.progress[index].produced.store(self.seq, Ordering::Relaxed);
    }

    fn on_ack(&mut self, shared: &Shared, index: usize, through_seq: u64) {
        let now = Instant::now();
        let recording = shared.recording.load(Ordering::Relaxed);
        let mut latencies = Vec::new();
        while self.sent_at.front().is_some_and(|(seq, _)| *seq <= through_seq) {
            if let Some((_, sent)) = self.sent_at.pop_front() {
                if recording {
                    latencies.push(now.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
                }
            }
        }
        let previous = shared.progress[index].acked.swap(through_seq, Ordering::Relaxed);
        shared
            .samples_acked
            .fetch_add(through_seq.saturating_sub(previous), Ordering::Relaxed);
        self.outbox.ack(through_seq);
        if !latencies.is_empty() {
            shared
                .latencies_us
                .lock()
                .expect("latency lock poisoned")
                .extend(latencies);
        }
    }
}

/// Run one agent until `shared.stop` fires.
pub async fn run(spec: AgentSpec, endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    let index = spec.index;
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id: spec.instance_id,
        interval_ms: 1000,
        labels: spec.sim.labels(),
        capacity: spec.sim.capacity(),
        facts: spec.sim.facts(),
    };
    let mut local = Local {
        source: SimSource::new(spec.sim.clone(), spec.instance_id),
        seq: 0,
        outbox: Outbox::new(OUTBOX_SAMPLES),
        sent_at: VecDeque::new(),
    };
    let mut ticker = tokio::time::interval_at(spec.first_tick_at, Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tokio::select! {
        _ = tokio::time::sleep_until(spec.start_at) => {}
        _ = shared.stop.cancelled() => return,
    }
    let backoff = Backoff::default();
    let mut attempt: u32 = 0;
    loop {
        let connected = {
            let connecting = connect(&endpoint, &spec.client, &shared, &hello);
            tokio::pin!(connecting);
            loop {
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    _ = ticker.tick() => local.take_sample(&shared, index),
                    result = &mut connecting => break result,
                }
            }
        };
        match connected {
            Ok((connection, send, recv, session, last_stored_seq)) => {
                attempt = 0;
                shared.progress[index].welcomes.fetch_add(1, Ordering::Relaxed);
                local.outbox.resume(last_stored_seq);
                if let Some(seq) = last_stored_seq {
                    local.on_ack(&shared, index, seq);
                }
                local.sent_at.clear();
                let ended = stream(
                    &connection,
                    &mut local,
                    &shared,
                    index,
                    &mut ticker,
                    send,
                    recv,
                    session,
                )
                .await;
                if ended {
                    connection.close(0u32.into(), b"load generator done");
                    return;
                }
                shared.disconnects.fetch_add(1, Ordering::Relaxed);
            }
            Err(()) => {
                shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The same capped, jittered backoff as the agent's uplink, sampling meanwhile.
        let delay = backoff.delay(attempt, fastrand::f64());
        attempt = attempt.saturating_add(1);
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = ticker.tick() => local.take_sample(&shared, index),
                _ = &mut wait => break,
            }
        }
    }
}

type Connected = (
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
    AgentSession,
    Option<u64>,
);

/// Connect, say hello and wait for the welcome, within `CONNECT_TIMEOUT`.
async fn connect(
    endpoint: &quinn::Endpoint,
    client: &quinn::ClientConfig,
    shared: &Shared,
    hello: &Hello,
) -> Result<Connected, ()> {
    let connecting = endpoint
        .connect_with(client.clone(), shared.server, &shared.server_name)
        .map_err(|_| ())?;
    let connection = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
        .await
        .map_err(|_| ())?
        .map_err(|_| ())?;
    let attempt = async {
        let (mut send, mut recv) = connection.open_bi().await.map_err(|_| ())?;
        let mut session = AgentSession::new();
        let frame = session.hello_frame(hello).map_err(|_| ())?;
        send.write_all(&frame).await.map_err(|_| ())?;
        let mut buffer = vec![0u8; 4096];
        loop {
            let n = recv.read(&mut buffer).await.map_err(|_| ())?.ok_or(())?;
            for event in session.on_bytes(&buffer[..n]).map_err(|_| ())? {
                if let AgentEvent::Welcomed { last_stored_seq, .. } = event {
                    return Ok((connection, send, recv, session, last_stored_seq));
                }
            }
        }
    };
    tokio::time::timeout(WELCOME_TIMEOUT, attempt)
        .await
        .map_err(|_| ())?
}

/// Stream samples and read acks until the connection fails (false) or the run stops (true).
#[allow(clippy::too_many_arguments)]
async fn stream(
    connection: &quinn::Connection,
    local: &mut Local,
    shared: &Shared,
    index: usize,
    ticker: &mut tokio::time::Interval,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut session: AgentSession,
) -> bool {
    let mut buffer = vec![0u8; 1024];
    // Whatever was sampled while disconnected goes out first, oldest first, in the collector's batch size.
    if send_unsent(local, &mut send, &session).await.is_err() {
        return false;
    }
    // As the agent's uplink: with samples in flight, a collector that sends nothing back is taken as gone,
    // one that answers packets but acknowledges slowly is waited for.
    let mut ack_watch = AckWatch::new(now_ms());
    let ack_check = tokio::time::sleep(CHECK_EVERY);
    tokio::pin!(ack_check);
    loop {
        let was_waiting = ack_watch.waiting();
        ack_watch.in_flight(!local.sent_at.is_empty(), now_ms());
        let waiting_for_ack = ack_watch.waiting();
        if waiting_for_ack && !was_waiting {
            ack_check
                .as_mut()
                .reset(tokio::time::Instant::now() + CHECK_EVERY);
        }
        tokio::select! {
            _ = shared.stop.cancelled() => return true,
            _ = &mut ack_check, if waiting_for_ack => {
                let now = now_ms();
                ack_watch.datagrams_received(connection.stats().udp_rx.datagrams, now);
                match ack_watch.verdict(now) {
                    AckVerdict::Keep => ack_check.as_mut().reset(tokio::time::Instant::now() + CHECK_EVERY),
                    AckVerdict::Silent | AckVerdict::Stalled => return false,
                }
            }
            _ = ticker.tick() => {
                local.take_sample(shared, index);
                if send_unsent(local, &mut send, &session).await.is_err() {
                    return false;
                }
            }
            read = recv.read(&mut buffer) => {
                let n = match read {
                    Ok(Some(n)) => n,
                    Ok(None) | Err(_) => return false,
                };
                match session.on_bytes(&buffer[..n]) {
                    Ok(events) => {
                        for event in events {
                            if let AgentEvent::Acked(seq) = event {
                                local.on_ack(shared, index, seq);
                                ack_watch.acked(now_ms());
                            }
                        }
                    }
                    Err(_) => return false,
                }
            }
        }
    }
}

async fn send_unsent(
    local: &mut Local,
    send: &mut quinn::SendStream,
    session: &AgentSession,
) -> Result<(), ()> {
    loop {
        let batch = local.outbox.next_batch(session.max_batch_samples());
        if batch.is_empty() {
            return Ok(());
        }
        let frame = session.batch_frame(&batch).map_err(|_| ())?;
        // The clock starts before the write, so time spent blocked by flow control counts as latency.
        let sent = Instant::now();
        local.sent_at.extend(batch.iter().map(|s| (s.seq, sent)));
        send.write_all(&frame).await.map_err(|_| ())?;
    }
}
