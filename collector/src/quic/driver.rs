//! The driver task of one endpoint and the table it drives: datagrams in, connections' packets and timers out.

use super::pace::{paced_wake, Pace};
use super::timers::{instant_at, ticks, timer_entry, Queued, TimerEntry};
use super::{EndpointConfig, ServerConfig};
use bytes::BytesMut;
use quinn_proto::{ConnectionError, ConnectionHandle, DatagramEvent, Dir, Event, StreamEvent};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;
use tokio::io::Interest;
use tokio::sync::Notify;
use tracing::{debug, error};

/// Receive buffers per read call (one `recvmmsg`). Each holds one datagram, or with receive offload several
/// from one peer.
const RECV_BUFFERS: usize = 16;

/// Bytes per receive buffer: the largest UDP payload, which is also the most receive offload coalesces.
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// Read calls per wake-up before the driver looks at its timers and the connections' writes again.
const RECV_CALLS_PER_TURN: usize = 8;

/// Packets one connection may send per turn, so that one peer cannot hold the lock for long.
const TRANSMITS_PER_TURN: usize = 16;

/// What an endpoint's handles and its driver share.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    /// Wakes the driver: a handle changed a connection that may now have packets to send.
    pub(super) driver: Notify,
    /// Non-blocking; read and written straight, registered with tokio's reactor only while the driver waits
    /// on its readiness (`pace.rs`).
    socket: std::net::UdpSocket,
    udp: quinn_udp::UdpSocketState,
    pub(super) local: SocketAddr,
    /// Whether the driver reads on a timer rather than on the socket's readiness, as last decided.
    pub(super) paced: AtomicBool,
    /// The driver task, for tests that stop it.
    #[cfg(test)]
    pub(super) driver_abort: std::sync::OnceLock<tokio::task::AbortHandle>,
}

pub(super) struct State {
    pub(super) endpoint: quinn_proto::Endpoint,
    pub(super) server_config: Arc<ServerConfig>,
    /// Indexed by quinn-proto's connection handle; a slot's generation tells a reused handle from the old one.
    pub(super) slots: Vec<Slot>,
    /// Live connections in `slots`.
    pub(super) connections: usize,
    pub(super) incoming: VecDeque<quinn_proto::Incoming>,
    pub(super) accept_waker: Option<Waker>,
    pub(super) idle_waker: Option<Waker>,
    pub(super) closed: bool,
    /// The driver ended without `close`: the endpoint serves nothing any more.
    pub(super) failed: bool,
    /// Connections to drive on the driver's next turn.
    dirty: Vec<usize>,
    /// Earliest deadline queued per connection; entries whose deadline moved are skipped when they come up.
    timers: BinaryHeap<Reverse<TimerEntry>>,
    /// Deadlines on the heap count nanoseconds from this instant.
    epoch: Instant,
    /// Wakers to wake once the lock is released.
    pub(super) to_wake: Vec<Waker>,
    send_buf: Vec<u8>,
    /// The deadline the driver sleeps until, and whether a timer queued since is earlier (the driver must
    /// then be woken to sleep less).
    armed: Option<Instant>,
    rearm: bool,
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) generation: u32,
    pub(super) conn: Option<Box<Conn>>,
}

/// One connection: quinn-proto's state and what its handles wait for.
pub(super) struct Conn {
    pub(super) proto: quinn_proto::Connection,
    /// Handles alive (the connecting future, the connection, its streams). At zero it is closed.
    pub(super) handles: u32,
    pub(super) connected: bool,
    pub(super) lost: Option<ConnectionError>,
    /// Handshake, accepting the stream, reads.
    pub(super) read_waker: Option<Waker>,
    /// Writes, waiting for the close.
    pub(super) write_waker: Option<Waker>,
    dirty: bool,
    queued: Queued,
}

impl Conn {
    fn wake(&mut self, to_wake: &mut Vec<Waker>) {
        to_wake.extend(self.read_waker.take());
        to_wake.extend(self.write_waker.take());
    }
}

impl Shared {
    pub(super) fn new(
        config: EndpointConfig,
        server: ServerConfig,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<Shared>> {
        socket.set_nonblocking(true)?;
        let udp = quinn_udp::UdpSocketState::new((&socket).into())?;
        let local = socket.local_addr()?;
        let server = Arc::new(server);
        let endpoint = quinn_proto::Endpoint::new(Arc::new(config), Some(server.clone()), true, None);
        Ok(Arc::new(Shared {
            state: Mutex::new(State {
                endpoint,
                server_config: server,
                slots: Vec::new(),
                connections: 0,
                incoming: VecDeque::new(),
                accept_waker: None,
                idle_waker: None,
                closed: false,
                failed: false,
                dirty: Vec::new(),
                timers: BinaryHeap::new(),
                epoch: Instant::now(),
                to_wake: Vec::new(),
                send_buf: Vec::with_capacity(1500),
                armed: None,
                rearm: false,
            }),
            driver: Notify::new(),
            socket,
            udp,
            local,
            paced: AtomicBool::new(false),
            #[cfg(test)]
            driver_abort: std::sync::OnceLock::new(),
        }))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one packet now. A full socket buffer drops it, as the network might: QUIC sends it again.
    pub(super) fn send(&self, transmit: &quinn_proto::Transmit, buf: &[u8]) {
        let packet = super::udp_transmit(transmit, buf);
        if let Err(error) = self.udp.send((&self.socket).into(), &packet) {
            debug!(%error, destination = %transmit.destination, "udp send failed; QUIC retransmits");
        }
    }

    /// Reads what fits in `slices` (one `recvmmsg`); `WouldBlock` when nothing waits.
    fn recv(
        &self,
        slices: &mut [IoSliceMut<'_>],
        metas: &mut [quinn_udp::RecvMeta],
    ) -> std::io::Result<usize> {
        self.udp.recv((&self.socket).into(), slices, metas)
    }
}

impl State {
    /// Takes in a connection quinn-proto just accepted; returns its index, generation and peer.
    pub(super) fn insert(
        &mut self,
        handle: usize,
        proto: quinn_proto::Connection,
    ) -> (usize, u32, SocketAddr) {
        if self.slots.len() <= handle {
            self.slots.resize_with(handle + 1, Slot::default);
        }
        let remote = proto.remote_address();
        let slot = &mut self.slots[handle];
        slot.generation = slot.generation.wrapping_add(1);
        slot.conn = Some(Box::new(Conn {
            proto,
            handles: 1,
            connected: false,
            lost: None,
            read_waker: None,
            write_waker: None,
            dirty: false,
            queued: Queued::default(),
        }));
        let generation = slot.generation;
        self.connections += 1;
        self.mark_dirty(handle);
        (handle, generation, remote)
    }

    /// The connection at `index` if it is still the one of `generation`.
    pub(super) fn conn(&mut self, index: usize, generation: u32) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.conn.as_deref_mut()
    }

    /// Queues the connection for the driver's next turn (the caller wakes the driver).
    pub(super) fn mark_dirty(&mut self, index: usize) {
        if let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_deref_mut()) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    /// Runs one connection at once, from a handle that just changed it (a write, a read that returned flow
    /// control credit, a close): its packets go out now rather than on the driver's next turn, which would
    /// cost a wake-up of the driver per acknowledgement. Returns whether the driver must be woken to re-arm
    /// its timer.
    pub(super) fn drive_now(&mut self, index: usize, shared: &Shared) -> bool {
        self.drive(index, Instant::now(), shared);
        std::mem::take(&mut self.rearm)
    }

    /// Runs one connection: its endpoint events, application events, packets and timer.
    fn drive(&mut self, index: usize, now: Instant, shared: &Shared) {
        let State {
            endpoint,
            slots,
            timers,
            epoch,
            to_wake,
            send_buf,
            connections,
            idle_waker,
            dirty,
            armed,
            rearm,
            ..
        } = self;
        let slot = &mut slots[index];
        let Some(conn) = slot.conn.as_deref_mut() else {
            return;
        };
        conn.dirty = false;
        let handle = ConnectionHandle(index);
        let mut woke = false;
        for _ in 0..2 {
            while let Some(event) = conn.proto.poll_endpoint_events() {
                if let Some(back) = endpoint.handle_event(handle, event) {
                    conn.proto.handle_event(back);
                }
            }
            while let Some(event) = conn.proto.poll() {
                match event {
                    Event::Connected => conn.connected = true,
                    Event::ConnectionLost { reason } => conn.lost = Some(reason),
                    Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => continue,
                    Event::HandshakeDataReady
                    | Event::DatagramReceived
                    | Event::DatagramsUnblocked
                    | Event::Stream(_) => {}
                }
                woke = true;
            }
            let mut sent_all = false;
            for _ in 0..TRANSMITS_PER_TURN {
                send_buf.clear();
                match conn.proto.poll_transmit(now, 1, send_buf) {
                    Some(transmit) => shared.send(&transmit, send_buf),
                    None => {
                        sent_all = true;
                        break;
                    }
                }
            }
            if !sent_all && !conn.dirty {
                // More to send: the rest goes on the next turn, after the other connections'.
                conn.dirty = true;
                dirty.push(index);
                shared.driver.notify_one();
            }
            if !conn.proto.is_drained() {
                break;
            }
        }
        if woke {
            conn.wake(to_wake);
        }
        if conn.proto.is_drained() {
            if conn.lost.is_none() {
                conn.lost = Some(ConnectionError::LocallyClosed);
            }
            conn.wake(to_wake);
            slot.conn = None;
            slot.generation = slot.generation.wrapping_add(1);
            *connections = connections.saturating_sub(1);
            if *connections == 0 {
                to_wake.extend(idle_waker.take());
            }
            return;
        }
        if let Some(deadline) = conn.proto.poll_timeout() {
            if conn.queued.earliest().is_none_or(|queued| deadline < queued) {
                conn.queued.insert(deadline);
                timers.push(Reverse(timer_entry(*epoch, deadline, index, slot.generation)));
                if armed.is_none_or(|armed| deadline < armed) {
                    *rearm = true;
                }
            }
        }
    }

    /// Fires the timers that are due.
    fn run_timers(&mut self, now: Instant) {
        let now_ticks = ticks(self.epoch, now);
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now_ticks {
                break;
            }
            self.timers.pop();
            let deadline = instant_at(self.epoch, at);
            let index = index as usize;
            let Some(conn) = self.conn(index, generation) else {
                continue;
            };
            if !conn.queued.remove(deadline) {
                continue;
            }
            match conn.proto.poll_timeout() {
                Some(due) if due <= now => {
                    conn.proto.handle_timeout(now);
                    self.mark_dirty(index);
                }
                // The deadline moved later (most often an acknowledgement stopped a retransmission timer):
                // queued again as it is, without running the connection, unless a later entry of the
                // connection comes up by then anyway.
                Some(due) if conn.queued.requeue_for(due) => {
                    let entry = timer_entry(self.epoch, due, index, generation);
                    self.timers.push(Reverse(entry));
                }
                _ => {}
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .peek()
            .map(|Reverse((at, _, _))| instant_at(self.epoch, *at))
    }

    /// Hands one received datagram to quinn-proto.
    fn on_datagram(&mut self, now: Instant, meta: &quinn_udp::RecvMeta, data: BytesMut, shared: &Shared) {
        let mut response = Vec::new();
        match self.endpoint.handle(
            now,
            meta.addr,
            meta.dst_ip,
            super::received_ecn(meta),
            data,
            &mut response,
        ) {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(conn) = self.slots.get_mut(handle.0).and_then(|s| s.conn.as_deref_mut()) {
                    conn.proto.handle_event(event);
                    self.mark_dirty(handle.0);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                if self.closed {
                    let transmit = self.endpoint.refuse(incoming, &mut response);
                    shared.send(&transmit, &response);
                } else {
                    self.incoming.push_back(incoming);
                    self.to_wake.extend(self.accept_waker.take());
                }
            }
            Some(DatagramEvent::Response(transmit)) => shared.send(&transmit, &response),
            None => {}
        }
    }
}

/// Waits for the driver. If it ends other than after `close` (a panic in the QUIC stack, or the runtime
/// stopping it), the endpoint is marked failed and closed, and every wait on it ends: `accept` returns
/// `None`, each connection's handles see it lost. The listener then stops instead of holding a port that
/// no longer answers, and the collector can exit for its service manager to restart it.
pub(super) async fn watch(shared: Arc<Shared>, driver: tokio::task::JoinHandle<()>) {
    let outcome = driver.await;
    let Err(error) = outcome else {
        return;
    };
    let mut wake = Vec::new();
    {
        let mut state = shared.lock();
        if state.closed && state.connections == 0 {
            return;
        }
        error!(local = %shared.local, %error, "the QUIC endpoint's driver ended; the listener stops");
        state.failed = true;
        state.closed = true;
        for slot in &mut state.slots {
            if let Some(conn) = slot.conn.as_deref_mut() {
                if conn.lost.is_none() {
                    conn.lost = Some(ConnectionError::LocallyClosed);
                }
                conn.wake(&mut wake);
            }
        }
        wake.extend(state.accept_waker.take());
        wake.extend(state.idle_waker.take());
        // Nothing drains connections any more: waiting for them to go idle would never end.
        state.connections = 0;
    }
    wake.into_iter().for_each(Waker::wake);
}

/// The socket registered with tokio's reactor, while the driver waits on its readiness: a second descriptor of
/// the same socket, so that leaving the reactor (dropping it) closes nothing the endpoint uses. `None` while
/// paced, or if the registration failed (the driver then reads on the timer: slower to answer a quiet
/// socket, never deaf).
fn register(shared: &Shared) -> Option<tokio::net::UdpSocket> {
    let registered = shared
        .socket
        .try_clone()
        .and_then(tokio::net::UdpSocket::from_std);
    match registered {
        Ok(registered) => Some(registered),
        Err(error) => {
            error!(local = %shared.local, %error, "cannot register the QUIC socket with the reactor; reading it every millisecond");
            None
        }
    }
}

/// Ready once the registered socket is (never when there is none).
async fn readable(registered: Option<&tokio::net::UdpSocket>) {
    match registered {
        Some(registered) => {
            let _ = registered.readable().await;
        }
        None => std::future::pending().await,
    }
}

/// The driver: runs until the endpoint is closed and its last connection has drained.
///
/// Each turn reads up to `RECV_CALLS_PER_TURN` batches, hands the datagrams to their connections, runs the
/// timers that are due and sends what the connections have. A turn that left datagrams in the socket is
/// followed by another at once (within tokio's budget for one poll); one that emptied it waits on readiness,
/// or on the pace (`pace.rs`).
pub(super) async fn run(shared: Arc<Shared>) {
    let mut buffers = vec![0u8; RECV_BUFFERS * RECV_BUFFER_BYTES];
    let mut metas = [quinn_udp::RecvMeta::default(); RECV_BUFFERS];
    let mut wake: Vec<Waker> = Vec::new();
    let mut dirty: Vec<usize> = Vec::new();
    let mut pace = Pace::new(Instant::now());
    let mut registered = register(&shared);
    let mut waits_paced = false;
    let mut emptied = true;
    loop {
        let wake_at = {
            let mut state = shared.lock();
            if state.closed && state.connections == 0 {
                break;
            }
            let timer = state.next_deadline();
            let wake_at = match (emptied, &registered) {
                // Datagrams wait: no sleep.
                (false, _) => Some(Instant::now()),
                (true, Some(_)) => timer,
                (true, None) => Some(paced_wake(Instant::now(), timer)),
            };
            state.armed = wake_at;
            state.rearm = false;
            wake_at
        };
        if emptied {
            let sleep = async {
                match wake_at {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shared.driver.notified() => {}
                _ = readable(registered.as_ref()) => {}
                _ = sleep => {}
            }
        } else {
            // Datagrams wait: read on, as a driver woken by readiness would, until tokio's budget for one poll
            // of a task runs out (128 units, so thousands of datagrams). Yielding after every turn instead let
            // thousands of handshake and catch-up tasks run between two reads in a reconnect storm, and the
            // socket's buffer overflowed.
            tokio::task::consume_budget().await;
        }
        let mut read = 0usize;
        emptied = false;
        for _ in 0..RECV_CALLS_PER_TURN {
            let received = {
                let mut slices: Vec<IoSliceMut> = buffers
                    .chunks_mut(RECV_BUFFER_BYTES)
                    .map(IoSliceMut::new)
                    .collect();
                match &registered {
                    // Through tokio's record of the socket's readiness, which a read that finds the socket empty
                    // clears (only what tokio saw before the read, so a datagram arriving since still wakes the
                    // driver). But a driver woken by its timer can run before the reactor has seen the
                    // datagrams that arrived meanwhile: where the record says "not readable" without asking the
                    // socket, the socket is asked straight, so that no timer runs against stale state.
                    Some(registered) => {
                        let mut asked = false;
                        let recorded = registered.try_io(Interest::READABLE, || {
                            asked = true;
                            shared.recv(&mut slices, &mut metas)
                        });
                        match recorded {
                            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock && !asked => {
                                shared.recv(&mut slices, &mut metas)
                            }
                            other => other,
                        }
                    }
                    None => shared.recv(&mut slices, &mut metas),
                }
            };
            let count = match received {
                Ok(count) => count,
                Err(error) => {
                    if error.kind() != std::io::ErrorKind::WouldBlock {
                        debug!(%error, "udp receive failed");
                    }
                    emptied = true;
                    break;
                }
            };
            read += count;
            let now = Instant::now();
            let mut state = shared.lock();
            for (meta, buffer) in metas.iter().zip(buffers.chunks(RECV_BUFFER_BYTES)).take(count) {
                let stride = meta.stride.max(1);
                for datagram in buffer[..meta.len].chunks(stride) {
                    state.on_datagram(now, meta, BytesMut::from(datagram), &shared);
                }
            }
            drive_dirty(&mut state, now, &shared, &mut dirty);
            wake.append(&mut state.to_wake);
            drop(state);
            wake.drain(..).for_each(Waker::wake);
            if count < RECV_BUFFERS {
                // Most likely empty. Paced, the rest (if any) waits for the next turn. On readiness, tokio's
                // record still says readable, so the driver comes straight back and a read clears it.
                emptied = true;
                break;
            }
        }
        let now = Instant::now();
        let mut state = shared.lock();
        state.run_timers(now);
        drive_dirty(&mut state, now, &shared, &mut dirty);
        wake.append(&mut state.to_wake);
        drop(state);
        wake.drain(..).for_each(Waker::wake);
        let paced = pace.observe(read, now);
        if paced != waits_paced {
            // Out of the reactor while paced (arrivals then wake nothing), back in it once quiet again.
            waits_paced = paced;
            registered = if paced { None } else { register(&shared) };
            shared.paced.store(paced, Ordering::Relaxed);
        }
    }
}

fn drive_dirty(state: &mut State, now: Instant, shared: &Shared, dirty: &mut Vec<usize>) {
    // Driving a connection can make another dirty only through a handle, which waits for the lock.
    std::mem::swap(&mut state.dirty, dirty);
    for index in dirty.drain(..) {
        state.drive(index, now, shared);
    }
}
