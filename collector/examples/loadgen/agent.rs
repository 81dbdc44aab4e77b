//! The simulated agents of one UDP socket, run as one event loop over quinn-proto's state machines.
//!
//! Each agent is a distinct host with its own certificate and QUIC connection, sampling once a second through
//! `SimSource` and streaming through `AgentSession` and `Outbox`, as the real uplink does, with the same
//! handshake and welcome timeouts, the same reconnect backoff and the same decision to give up on late
//! acknowledgements (`AckWatch`). It records when each sample left and when its ack came back.
//!
//! The agents are plain state: one task per socket reads datagrams in batches, routes each to its agent's
//! connection, and runs every agent's deadlines (its tick, its connection's timer, its timeouts) from one heap.
//! With a task, timers and a connection driver per agent, the generator needed as much CPU per sample as the
//! collector it measures, and could not offer 20,000 agents from one core (bench/RESULTS.md).

use bytes::BytesMut;
use headroom_agent::ack_watch::{AckVerdict, AckWatch, CHECK_EVERY};
use headroom_agent::run::SampleSource;
use headroom_collector::app::sim::{SimSource, SimSpec};
use headroom_collector::quic::{received_ecn, send_now};
use headroom_common::backoff::Backoff;
use headroom_common::clock::now_ms;
use headroom_common::session::{AgentEvent, AgentSession, Outbox};
use headroom_common::spread;
use headroom_common::wire::{Hello, PROTOCOL_VERSION};
use quinn_proto::{
    ConnectionHandle, DatagramEvent, Dir, Event, ReadError, StreamEvent, StreamId, WriteError,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

/// Unacknowledged samples one agent keeps, as the real agent's in-memory outbox (an hour at 1 Hz).
const OUTBOX_SAMPLES: usize = 3600;

/// The agent's uplink gives the QUIC handshake 10 s and the welcome 15 s more; the same here, so abandoned
/// attempts load the collector exactly as a real fleet's would.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

const TICK: Duration = Duration::from_secs(1);

/// Datagrams per receive call (one `recvmmsg`), and bytes per datagram buffer.
const RECV_BUFFERS: usize = 32;
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// Bytes asked of the kernel for each socket's receive buffer: a second of the collector's replies to 2,000
/// agents in a burst, with room.
const SOCKET_RECV_BYTES: usize = 8 << 20;

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
    /// Of the connect failures: refusals (QUIC CONNECTION_REFUSED), and attempts given up on at the handshake
    /// and at the welcome deadline; the rest were closed otherwise.
    pub refusals: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub welcome_timeouts: AtomicU64,
    pub disconnects: AtomicU64,
    /// UDP datagrams the agents sent, retransmissions and probes included: set against the samples acked and
    /// the host's loopback datagrams, it splits the packets of a sample between the agents and the collector.
    pub datagrams_sent: AtomicU64,
    pub stop: CancellationToken,
}

/// Everything one agent needs to run.
pub struct AgentSpec {
    pub index: usize,
    pub sim: SimSpec,
    pub client: quinn_proto::ClientConfig,
    pub instance_id: u64,
    /// When this agent first connects.
    pub start_at: Instant,
    /// When its first sample is taken; later ones follow every second, so phases spread over the second.
    pub first_tick_at: Instant,
}

/// Where an agent is between connections and within one.
enum Phase {
    /// Not connected: connects at this instant (its paced start, or the end of its backoff).
    Waiting(Instant),
    /// QUIC handshake under way, given up at the deadline.
    Handshake(Instant),
    /// Hello sent, welcome awaited until the deadline.
    Welcome(Instant),
    /// Welcomed: samples flow. With samples in flight, the ack watch is consulted at `check_at`.
    Streaming {
        watch: AckWatch,
        check_at: Option<Instant>,
    },
}

/// One QUIC connection of an agent.
struct Link {
    handle: ConnectionHandle,
    proto: quinn_proto::Connection,
    stream: Option<StreamId>,
    session: AgentSession,
    /// Frame bytes not yet accepted by the stream (flow control), from `written` on.
    pending: Vec<u8>,
    written: usize,
    readable: bool,
}

struct Agent {
    index: usize,
    client: quinn_proto::ClientConfig,
    hello: Hello,
    source: SimSource,
    seq: u64,
    outbox: Outbox,
    /// (seq, when its batch was written) for samples sent in this connection and not yet acked.
    sent_at: VecDeque<(u64, Instant)>,
    next_tick: Instant,
    phase: Phase,
    attempt: u32,
    /// The reconnect window the collector last gave (`AgentEvent::Spread`), in milliseconds.
    spread_ms: u64,
    link: Option<Link>,
    /// Connections given up on, kept until quinn-proto has drained them.
    closing: Vec<(ConnectionHandle, quinn_proto::Connection)>,
    /// The earliest deadline queued on the heap for this agent.
    queued: Option<Instant>,
    dirty: bool,
}

/// The event loop of one socket and the agents on it.
struct Driver {
    shared: Arc<Shared>,
    socket: tokio::net::UdpSocket,
    udp: quinn_udp::UdpSocketState,
    endpoint: quinn_proto::Endpoint,
    agents: Vec<Agent>,
    /// quinn-proto's connection handle → the agent (position in `agents`) that owns it.
    owner: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    dirty: Vec<usize>,
    send_buf: Vec<u8>,
    backoff: Backoff,
}

const NO_OWNER: usize = usize::MAX;

/// Runs the agents of one socket until `shared.stop` fires.
pub async fn run_socket(
    socket: std::net::UdpSocket,
    specs: Vec<AgentSpec>,
    shared: Arc<Shared>,
) -> std::io::Result<()> {
    socket.set_nonblocking(true)?;
    grow_receive_buffer(&socket);
    let udp = quinn_udp::UdpSocketState::new((&socket).into())?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let endpoint =
        quinn_proto::Endpoint::new(Arc::new(quinn_proto::EndpointConfig::default()), None, true, None);
    let agents: Vec<Agent> = specs.into_iter().map(Agent::new).collect();
    let mut driver = Driver {
        shared: shared.clone(),
        socket,
        udp,
        endpoint,
        owner: Vec::new(),
        timers: BinaryHeap::with_capacity(agents.len() * 2),
        dirty: Vec::new(),
        send_buf: Vec::with_capacity(1500),
        backoff: Backoff::default(),
        agents,
    };
    for position in 0..driver.agents.len() {
        driver.requeue(position);
    }
    let mut buffers = vec![0u8; RECV_BUFFERS * RECV_BUFFER_BYTES];
    let mut metas = [quinn_udp::RecvMeta::default(); RECV_BUFFERS];
    loop {
        let deadline = driver.timers.peek().map(|Reverse((at, _))| *at);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            _ = driver.socket.readable() => {}
            _ = sleep => {}
        }
        driver.receive(&mut buffers, &mut metas);
        let now = Instant::now();
        driver.run_timers(now);
        driver.drive_dirty(now);
    }
    driver.close_all();
    Ok(())
}

/// A larger receive buffer for the socket, as far as the kernel allows; the default drops replies when
/// thousands of agents share a socket and the generator is busy.
fn grow_receive_buffer(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let wanted = SOCKET_RECV_BYTES as libc::c_int;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&wanted as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Agent {
    fn new(spec: AgentSpec) -> Agent {
        let hello = Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            instance_id: spec.instance_id,
            interval_ms: 1000,
            labels: spec.sim.labels(),
            capacity: spec.sim.capacity(),
            facts: spec.sim.facts(),
        };
        Agent {
            index: spec.index,
            client: spec.client,
            hello,
            source: SimSource::new(spec.sim, spec.instance_id),
            seq: 0,
            outbox: Outbox::new(OUTBOX_SAMPLES),
            sent_at: VecDeque::new(),
            next_tick: spec.first_tick_at,
            phase: Phase::Waiting(spec.start_at),
            attempt: 0,
            spread_ms: 0,
            link: None,
            closing: Vec::new(),
            queued: None,
            dirty: false,
        }
    }

    fn take_sample(&mut self, shared: &Shared, now: Instant) {
        // A late tick is skipped, not made up, as tokio's `MissedTickBehavior::Skip` and the agent's sampler.
        while self.next_tick <= now {
            self.next_tick += TICK;
        }
        if !shared.sampling.load(Ordering::Relaxed) {
            return;
        }
        self.seq += 1;
        let sample = self.source.sample(self.seq, now_ms(), now);
        self.outbox.push(sample);
        shared.progress[self.index]
            .produced
            .store(self.seq, Ordering::Relaxed);
    }

    fn on_ack(&mut self, shared: &Shared, through_seq: u64) {
        let now = Instant::now();
        let recording = shared.recording.load(Ordering::Relaxed);
        let mut latencies = Vec::new();
        while let Some(&(seq, sent)) = self.sent_at.front() {
            if seq > through_seq {
                break;
            }
            self.sent_at.pop_front();
            if recording {
                latencies.push(now.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
            }
        }
        let previous = shared.progress[self.index]
            .acked
            .swap(through_seq, Ordering::Relaxed);
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

    /// The earliest instant this agent has something to do.
    fn wake_at(&mut self) -> Instant {
        let mut at = self.next_tick;
        let phase = match &self.phase {
            Phase::Waiting(t) | Phase::Handshake(t) | Phase::Welcome(t) => Some(*t),
            Phase::Streaming { check_at, .. } => *check_at,
        };
        let timers = self
            .link
            .iter_mut()
            .map(|link| &mut link.proto)
            .chain(self.closing.iter_mut().map(|(_, proto)| proto))
            .filter_map(|proto| proto.poll_timeout());
        for t in phase.into_iter().chain(timers) {
            at = at.min(t);
        }
        at
    }
}

/// Why a connection ended, for the coordinator's counts.
enum Failure {
    Connect,
    /// The collector refused the connection for load (QUIC CONNECTION_REFUSED).
    Refused,
    Disconnect,
}

impl Driver {
    /// Reads every datagram waiting on the socket and hands each to its connection.
    fn receive(&mut self, buffers: &mut [u8], metas: &mut [quinn_udp::RecvMeta]) {
        loop {
            let received = {
                let mut slices: Vec<IoSliceMut> = buffers
                    .chunks_mut(RECV_BUFFER_BYTES)
                    .map(IoSliceMut::new)
                    .collect();
                let (socket, udp) = (&self.socket, &self.udp);
                socket.try_io(Interest::READABLE, || udp.recv(socket.into(), &mut slices, metas))
            };
            let Ok(count) = received else {
                return;
            };
            let now = Instant::now();
            for (meta, buffer) in metas.iter().zip(buffers.chunks(RECV_BUFFER_BYTES)).take(count) {
                let stride = meta.stride.max(1);
                for datagram in buffer[..meta.len].chunks(stride) {
                    self.on_datagram(now, meta, BytesMut::from(datagram));
                }
            }
            if count < RECV_BUFFERS {
                return;
            }
        }
    }

    fn on_datagram(&mut self, now: Instant, meta: &quinn_udp::RecvMeta, data: BytesMut) {
        let mut response = Vec::new();
        match self.endpoint.handle(
            now,
            meta.addr,
            meta.dst_ip,
            received_ecn(meta),
            data,
            &mut response,
        ) {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                let Some(&position) = self.owner.get(handle.0) else {
                    return;
                };
                if position == NO_OWNER {
                    return;
                }
                if let Some(proto) = self.agents[position].proto_mut(handle) {
                    proto.handle_event(event);
                    self.mark_dirty(position);
                }
            }
            // Nothing connects to the generator: a stray handshake is dropped.
            Some(DatagramEvent::NewConnection(incoming)) => self.endpoint.ignore(incoming),
            Some(DatagramEvent::Response(transmit)) => self.send(&transmit, &response),
            None => {}
        }
    }

    fn send(&self, transmit: &quinn_proto::Transmit, buf: &[u8]) {
        // A full socket buffer drops the packet, as a network might: QUIC sends it again.
        let _ = send_now(&self.socket, &self.udp, transmit, buf);
        self.shared.datagrams_sent.fetch_add(1, Ordering::Relaxed);
    }

    fn mark_dirty(&mut self, position: usize) {
        let agent = &mut self.agents[position];
        if !agent.dirty {
            agent.dirty = true;
            self.dirty.push(position);
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, position))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let agent = &mut self.agents[position];
            if agent.queued != Some(at) {
                continue;
            }
            agent.queued = None;
            self.mark_dirty(position);
        }
    }

    fn drive_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for position in dirty.drain(..) {
            self.agents[position].dirty = false;
            self.drive(position, now);
        }
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Queues the agent's next deadline unless an earlier one is queued already.
    fn requeue(&mut self, position: usize) {
        let agent = &mut self.agents[position];
        let at = agent.wake_at();
        if agent.queued.is_none_or(|queued| at < queued) {
            agent.queued = Some(at);
            self.timers.push(Reverse((at, position)));
        }
    }

    /// Everything one agent has to do now: its timers, its tick, its connection's events, its packets.
    fn drive(&mut self, position: usize, now: Instant) {
        let shared = self.shared.clone();
        let agent = &mut self.agents[position];
        for proto in agent
            .link
            .iter_mut()
            .map(|link| &mut link.proto)
            .chain(agent.closing.iter_mut().map(|(_, proto)| proto))
        {
            if proto.poll_timeout().is_some_and(|t| t <= now) {
                proto.handle_timeout(now);
            }
        }
        if agent.next_tick <= now {
            agent.take_sample(&shared, now);
        }
        let mut failed = match agent.phase {
            Phase::Waiting(at) if at <= now => {
                self.connect(position, now);
                None
            }
            Phase::Handshake(deadline) if deadline <= now => {
                shared.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                Some(Failure::Connect)
            }
            Phase::Welcome(deadline) if deadline <= now => {
                shared.welcome_timeouts.fetch_add(1, Ordering::Relaxed);
                Some(Failure::Connect)
            }
            _ => None,
        };
        if failed.is_none() {
            failed = self.step_link(position, now, &shared);
        }
        if let Some(failure) = failed {
            self.fail(position, failure, now);
        }
        self.flush(position, now);
        self.requeue(position);
    }

    fn connect(&mut self, position: usize, now: Instant) {
        let shared = &self.shared;
        let agent = &mut self.agents[position];
        match self
            .endpoint
            .connect(now, agent.client.clone(), shared.server, &shared.server_name)
        {
            Ok((handle, proto)) => {
                if self.owner.len() <= handle.0 {
                    self.owner.resize(handle.0 + 1, NO_OWNER);
                }
                self.owner[handle.0] = position;
                agent.link = Some(Link {
                    handle,
                    proto,
                    stream: None,
                    session: AgentSession::new(),
                    pending: Vec::new(),
                    written: 0,
                    readable: false,
                });
                agent.phase = Phase::Handshake(now + HANDSHAKE_TIMEOUT);
            }
            Err(_) => {
                shared.connect_failures.fetch_add(1, Ordering::Relaxed);
                let delay = self.backoff.delay(agent.attempt, fastrand::f64());
                agent.attempt = agent.attempt.saturating_add(1);
                agent.phase = Phase::Waiting(now + delay);
            }
        }
    }

    /// Runs the agent's connection: its events, the welcome, acks, samples to send, the ack watch.
    fn step_link(&mut self, position: usize, now: Instant, shared: &Shared) -> Option<Failure> {
        let endpoint = &mut self.endpoint;
        let agent = &mut self.agents[position];
        let link = agent.link.as_mut()?;
        while let Some(event) = link.proto.poll_endpoint_events() {
            if let Some(back) = endpoint.handle_event(link.handle, event) {
                link.proto.handle_event(back);
            }
        }
        let streaming = matches!(agent.phase, Phase::Streaming { .. });
        while let Some(event) = link.proto.poll() {
            match event {
                Event::Connected => {
                    let Some(id) = link.proto.streams().open(Dir::Bi) else {
                        return Some(Failure::Connect);
                    };
                    link.stream = Some(id);
                    let Ok(frame) = link.session.hello_frame(&agent.hello) else {
                        return Some(Failure::Connect);
                    };
                    link.pending = frame;
                    link.written = 0;
                    agent.phase = Phase::Welcome(now + WELCOME_TIMEOUT);
                }
                Event::ConnectionLost { reason } => {
                    let refused = matches!(
                        &reason,
                        quinn_proto::ConnectionError::ConnectionClosed(close)
                            if close.error_code == quinn_proto::TransportErrorCode::CONNECTION_REFUSED
                    );
                    return Some(if streaming {
                        Failure::Disconnect
                    } else if refused {
                        Failure::Refused
                    } else {
                        Failure::Connect
                    });
                }
                Event::Stream(StreamEvent::Readable { .. }) => link.readable = true,
                _ => {}
            }
        }
        let failure = if streaming {
            Failure::Disconnect
        } else {
            Failure::Connect
        };
        let id = link.stream?;
        let events = if link.readable {
            link.readable = false;
            let mut bytes = Vec::new();
            let mut stream = link.proto.recv_stream(id);
            let Ok(mut chunks) = stream.read(true) else {
                return Some(failure);
            };
            let ended = loop {
                match chunks.next(usize::MAX) {
                    Ok(Some(chunk)) => bytes.extend_from_slice(&chunk.bytes),
                    Err(ReadError::Blocked) => break false,
                    Ok(None) | Err(ReadError::Reset(_)) => break true,
                }
            };
            let _ = chunks.finalize();
            if ended {
                return Some(failure);
            }
            match link.session.on_bytes(&bytes) {
                Ok(events) => events,
                Err(_) => return Some(failure),
            }
        } else {
            Vec::new()
        };
        for event in events {
            match event {
                AgentEvent::Welcomed { last_stored_seq, .. } => {
                    agent.attempt = 0;
                    shared.progress[agent.index]
                        .welcomes
                        .fetch_add(1, Ordering::Relaxed);
                    agent.outbox.resume(last_stored_seq);
                    if let Some(seq) = last_stored_seq {
                        agent.on_ack(shared, seq);
                    }
                    agent.sent_at.clear();
                    agent.phase = Phase::Streaming {
                        watch: AckWatch::new(now_ms()),
                        check_at: None,
                    };
                }
                AgentEvent::Acked(seq) => {
                    agent.on_ack(shared, seq);
                    if let Phase::Streaming { watch, .. } = &mut agent.phase {
                        watch.acked(now_ms());
                    }
                }
                AgentEvent::TimeProbe(_) => {}
                AgentEvent::Spread(window_ms) => agent.spread_ms = window_ms,
            }
        }
        let link = agent.link.as_mut()?;
        // Whatever was sampled and not yet sent goes out, oldest first, in the collector's batch size, once
        // the stream took the previous frame.
        loop {
            while link.written < link.pending.len() {
                match link.proto.send_stream(id).write(&link.pending[link.written..]) {
                    Ok(n) => link.written += n,
                    Err(WriteError::Blocked) => break,
                    Err(_) => return Some(failure),
                }
            }
            if link.written < link.pending.len() || !matches!(agent.phase, Phase::Streaming { .. }) {
                break;
            }
            let batch = agent.outbox.next_batch(link.session.max_batch_samples());
            if batch.is_empty() {
                break;
            }
            let Ok(frame) = link.session.batch_frame(&batch) else {
                return Some(failure);
            };
            // The clock starts before the write, so time spent blocked by flow control counts as latency.
            let sent = Instant::now();
            agent.sent_at.extend(batch.iter().map(|s| (s.seq, sent)));
            link.pending = frame;
            link.written = 0;
        }
        // As the agent's uplink: with samples in flight, a collector that sends nothing back is taken as gone,
        // one that answers packets but acknowledges slowly is waited for.
        if let Phase::Streaming { watch, check_at } = &mut agent.phase {
            let was_waiting = watch.waiting();
            watch.in_flight(!agent.sent_at.is_empty(), now_ms());
            if !watch.waiting() {
                *check_at = None;
            } else if !was_waiting || check_at.is_none() {
                *check_at = Some(now + CHECK_EVERY);
            } else if check_at.is_some_and(|at| at <= now) {
                let ms = now_ms();
                watch.datagrams_received(link.proto.stats().udp_rx.datagrams, ms);
                match watch.verdict(ms) {
                    AckVerdict::Keep => *check_at = Some(now + CHECK_EVERY),
                    AckVerdict::Silent | AckVerdict::Stalled => return Some(Failure::Disconnect),
                }
            }
        }
        None
    }

    /// Gives up on the agent's connection: it is closed and drained aside, and the agent reconnects after the
    /// uplink's backoff, sampling meanwhile.
    fn fail(&mut self, position: usize, failure: Failure, now: Instant) {
        let counter = match failure {
            Failure::Connect | Failure::Refused => &self.shared.connect_failures,
            Failure::Disconnect => &self.shared.disconnects,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if matches!(failure, Failure::Refused) {
            self.shared.refusals.fetch_add(1, Ordering::Relaxed);
        }
        let agent = &mut self.agents[position];
        if let Some(mut link) = agent.link.take() {
            link.proto.close(now, 0u32.into(), bytes::Bytes::new());
            agent.closing.push((link.handle, link.proto));
        }
        // As the agent's uplink: a refusal for load backs off to 8 s at most, any other failure to the cap,
        // and a connection lost while streaming waits a random part of the collector's reconnect window more.
        let delay = spread::retry_delay(
            &self.backoff,
            &mut agent.attempt,
            matches!(failure, Failure::Refused),
            false,
            matches!(failure, Failure::Disconnect).then_some(agent.spread_ms),
            [fastrand::f64(), fastrand::f64()],
        );
        agent.phase = Phase::Waiting(now + delay);
    }

    /// Sends the packets of the agent's connections and lets drained ones go.
    fn flush(&mut self, position: usize, now: Instant) {
        let Driver {
            endpoint,
            agents,
            owner,
            send_buf,
            socket,
            udp,
            shared,
            ..
        } = self;
        let agent = &mut agents[position];
        let protos = agent
            .link
            .iter_mut()
            .map(|link| (link.handle, &mut link.proto))
            .chain(agent.closing.iter_mut().map(|(handle, proto)| (*handle, proto)));
        let mut sent = 0u64;
        for (handle, proto) in protos {
            while let Some(event) = proto.poll_endpoint_events() {
                if let Some(back) = endpoint.handle_event(handle, event) {
                    proto.handle_event(back);
                }
            }
            loop {
                send_buf.clear();
                let Some(transmit) = proto.poll_transmit(now, 1, send_buf) else {
                    break;
                };
                let _ = send_now(socket, udp, &transmit, send_buf);
                sent += 1;
            }
        }
        if sent > 0 {
            shared.datagrams_sent.fetch_add(sent, Ordering::Relaxed);
        }
        // A connection that ended abruptly (a reset, an idle timeout) was freed in the endpoint as soon as it
        // said so, possibly a drive earlier, and its handle may already belong to another agent's new
        // connection: only an owner entry that is still this agent's is cleared, or that connection's packets
        // would be dropped from here on and its handshake would time out.
        agent.closing.retain(|(handle, proto)| {
            let drained = proto.is_drained();
            if drained && owner[handle.0] == position {
                owner[handle.0] = NO_OWNER;
            }
            !drained
        });
    }

    /// The run is over: every connection is closed with a reason the collector logs.
    fn close_all(&mut self) {
        let now = Instant::now();
        for position in 0..self.agents.len() {
            if let Some(link) = self.agents[position].link.as_mut() {
                link.proto.close(
                    now,
                    0u32.into(),
                    bytes::Bytes::from_static(b"load generator done"),
                );
            }
            self.flush(position, now);
        }
    }
}

impl Agent {
    fn proto_mut(&mut self, handle: ConnectionHandle) -> Option<&mut quinn_proto::Connection> {
        if let Some(link) = self.link.as_mut().filter(|link| link.handle == handle) {
            return Some(&mut link.proto);
        }
        self.closing
            .iter_mut()
            .find(|(h, _)| *h == handle)
            .map(|(_, proto)| proto)
    }
}
