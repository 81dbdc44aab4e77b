//! The collector's QUIC endpoint: quinn-proto's state machines driven by one task per UDP socket.
//!
//! Every connection of a listener lives in one table behind one lock, next to the endpoint that routes
//! datagrams to it. The driver task (`driver.rs`) reads datagrams in batches, hands each to its connection,
//! sends what the connections have to send and runs their timers; the tasks that serve agents (`connection.rs`,
//! enrollment) read and write streams through the handles below, which lock the table for the moment of the
//! call. There is no task and no event queue per connection: an agent sends a few hundred bytes a second, and
//! at 20,000 agents a per-connection channel block and driver task were the larger part of what a connection
//! cost (issue 12, bench/RESULTS.md).
//!
//! A handle's futures register one waker per kind: the handshake, the stream's acceptance and its reads
//! share one slot, writes and `closed` the other. Each connection has one task using it, which polls at most
//! one of each at a time.

mod driver;
mod handles;
mod ids;
mod pace;
mod timers;

pub use handles::{Connecting, Connection, ReadError, RecvStream, SendStream, WriteError};
pub use quinn_proto::crypto::rustls::QuicServerConfig;
pub use quinn_proto::{AckFrequencyConfig, ConnectionError, EndpointConfig, ServerConfig, TransportConfig};

use bytes::Bytes;
use driver::Shared;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

/// Sends `transmit`'s packet (its bytes are the start of `buf`) on `socket` now, without waiting: a full
/// socket buffer drops it, as the network might, and QUIC sends it again. The load generator's agents send
/// the same way.
pub fn send_now(
    socket: &tokio::net::UdpSocket,
    udp: &quinn_udp::UdpSocketState,
    transmit: &quinn_proto::Transmit,
    buf: &[u8],
) -> std::io::Result<()> {
    let packet = udp_transmit(transmit, buf);
    socket.try_io(tokio::io::Interest::WRITABLE, || udp.send(socket.into(), &packet))
}

/// quinn-udp's view of `transmit`'s packet, whose bytes are the start of `buf`.
fn udp_transmit<'a>(transmit: &quinn_proto::Transmit, buf: &'a [u8]) -> quinn_udp::Transmit<'a> {
    quinn_udp::Transmit {
        destination: transmit.destination,
        ecn: transmit
            .ecn
            .and_then(|ecn| quinn_udp::EcnCodepoint::from_bits(ecn as u8)),
        contents: &buf[..transmit.size],
        segment_size: transmit.segment_size,
        src_ip: transmit.src_ip,
    }
}

/// The ECN codepoint a received datagram carried, as quinn-proto takes it.
pub fn received_ecn(meta: &quinn_udp::RecvMeta) -> Option<quinn_proto::EcnCodepoint> {
    meta.ecn
        .and_then(|ecn| quinn_proto::EcnCodepoint::from_bits(ecn as u8))
}

/// The shortest time between two stateless resets: none. quinn's default, one every 20 ms (50 a second),
/// would take 400 s to tell 20,000 agents that their collector was restarted, and each would meanwhile wait
/// out its ack deadline; and since the driver stamps a whole batch of received datagrams with one instant,
/// any interval at all answers at most one packet per batch. A reset answers only a packet that carries a
/// connection ID this collector's keyed generator issued (quinn drops the rest before this point) and is
/// smaller than that packet, so it amplifies nothing and costs about what receiving the packet did.
pub const MIN_RESET_INTERVAL: std::time::Duration = std::time::Duration::ZERO;

/// Key material for `purpose`, derived from the server's private key (which only the collector holds): the
/// same in every process started with the same key, and unrelated between purposes.
fn derived_key(purpose: &[u8], server_key: &[u8]) -> ring::digest::Digest {
    let mut material = purpose.to_vec();
    material.extend_from_slice(server_key);
    ring::digest::digest(&ring::digest::SHA256, &material)
}

/// Endpoint settings that survive restarts. After a crash, an agent's packets for its old connection reach
/// the new process, which must recognise their connection IDs as its own (quinn drops packets whose ID fails
/// its generator's check, and a generator keyed at random per process would fail them all) and answers with
/// a stateless reset the agent can verify; the agent then reconnects at once instead of waiting for its ack
/// deadline or idle timeout. Both keys are derived from the server's private key; resets are sent as fast
/// as `MIN_RESET_INTERVAL` allows.
pub fn restartable_config(server_key: &[u8]) -> EndpointConfig {
    let reset = derived_key(b"headroom stateless reset v1", server_key);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref());
    let ids = derived_key(b"headroom connection ids v2", server_key);
    let mut config = EndpointConfig::new(Arc::new(key));
    config.cid_generator(move || Box::new(ids::KeyedIds::new(ids.as_ref())));
    config.min_reset_interval(MIN_RESET_INTERVAL);
    config
}

/// One listener: a UDP socket, its connections and the task that drives them.
#[derive(Clone)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

impl Endpoint {
    /// Serves `server` on `socket` (bound, any mode). Must be called inside a tokio runtime: the driver task
    /// starts here and ends once the endpoint is closed and every connection has drained.
    pub fn new(
        config: EndpointConfig,
        server: ServerConfig,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Endpoint> {
        let shared = Shared::new(config, server, socket)?;
        let driver = tokio::spawn(driver::run(shared.clone()));
        #[cfg(test)]
        let _ = shared.driver_abort.set(driver.abort_handle());
        tokio::spawn(driver::watch(shared.clone(), driver));
        Ok(Endpoint { shared })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.shared.local)
    }

    /// The next new connection, before any handshake work; `None` once the endpoint is closed.
    pub async fn accept(&self) -> Option<Incoming> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if let Some(incoming) = state.incoming.pop_front() {
                return Poll::Ready(Some(Incoming {
                    shared: self.shared.clone(),
                    inner: Some(incoming),
                }));
            }
            if state.closed {
                return Poll::Ready(None);
            }
            state.accept_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Whether the endpoint stopped because its driver ended (see `driver::watch`), not because of `close`.
    pub fn has_failed(&self) -> bool {
        self.shared.lock().failed
    }

    /// Connections handshaking, open or closing.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().endpoint.open_connections()
    }

    /// The configuration for connections accepted from now on; open ones keep theirs.
    pub fn set_server_config(&self, server: ServerConfig) {
        let server = Arc::new(server);
        let mut state = self.shared.lock();
        state.endpoint.set_server_config(Some(server.clone()));
        state.server_config = server;
    }

    /// Closes every connection with `code` and `reason`, refuses new ones, and ends `accept`.
    pub fn close(&self, code: u32, reason: &[u8]) {
        let reason = Bytes::copy_from_slice(reason);
        let wake = {
            let mut state = self.shared.lock();
            state.closed = true;
            let now = Instant::now();
            let queued: VecDeque<_> = std::mem::take(&mut state.incoming);
            for incoming in queued {
                state.endpoint.ignore(incoming);
            }
            for index in 0..state.slots.len() {
                if let Some(conn) = state.slots[index].conn.as_mut() {
                    conn.proto.close(now, code.into(), reason.clone());
                    state.mark_dirty(index);
                }
            }
            state.accept_waker.take()
        };
        if let Some(waker) = wake {
            waker.wake();
        }
        self.shared.driver.notify_one();
    }

    /// Waits until every connection has drained (after `close`, or as they end by themselves).
    pub async fn wait_idle(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.connections == 0 {
                return Poll::Ready(());
            }
            state.idle_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A connection attempt nobody has answered yet. Dropped unanswered, it is ignored (no packet goes back).
pub struct Incoming {
    shared: Arc<Shared>,
    inner: Option<quinn_proto::Incoming>,
}

impl Incoming {
    fn take(&mut self) -> quinn_proto::Incoming {
        self.inner
            .take()
            .expect("an incoming connection is answered once")
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.inner
            .as_ref()
            .map(|i| i.remote_address())
            .unwrap_or(([0, 0, 0, 0], 0).into())
    }

    /// Whether the peer came back with a Retry token: it receives what is sent to its address.
    pub fn remote_address_validated(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.remote_address_validated())
    }

    /// Starts the handshake.
    pub fn accept(mut self) -> Result<Connecting, ConnectionError> {
        let incoming = self.take();
        let accepted = {
            let mut state = self.shared.lock();
            let server = state.server_config.clone();
            let mut buf = Vec::new();
            let state = &mut *state;
            match state
                .endpoint
                .accept(incoming, Instant::now(), &mut buf, Some(server))
            {
                Ok((handle, proto)) => Ok(state.insert(handle.0, proto)),
                Err(error) => {
                    if let Some(response) = error.response {
                        self.shared.send(&response, &buf);
                    }
                    Err(error.cause)
                }
            }
        };
        self.shared.driver.notify_one();
        accepted.map(|(index, generation, remote)| Connecting {
            conn: handles::ConnRef::new(self.shared.clone(), index, generation, remote),
        })
    }

    /// Sends a Retry: the peer must come back with a token that proves its address. A peer that already did
    /// cannot be sent another; it is handed back.
    pub fn retry(mut self) -> Result<(), Box<Incoming>> {
        let incoming = self.take();
        let mut state = self.shared.lock();
        let mut buf = Vec::new();
        match state.endpoint.retry(incoming, &mut buf) {
            Ok(transmit) => {
                self.shared.send(&transmit, &buf);
                Ok(())
            }
            Err(error) => {
                drop(state);
                self.inner = Some(error.into_incoming());
                Err(Box::new(self))
            }
        }
    }

    /// Refuses the connection with CONNECTION_REFUSED.
    pub fn refuse(mut self) {
        let incoming = self.take();
        let mut state = self.shared.lock();
        let mut buf = Vec::new();
        let transmit = state.endpoint.refuse(incoming, &mut buf);
        self.shared.send(&transmit, &buf);
    }

    /// Drops the attempt without answering.
    pub fn ignore(mut self) {
        let incoming = self.take();
        self.shared.lock().endpoint.ignore(incoming);
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(incoming) = self.inner.take() {
            self.shared.lock().endpoint.ignore(incoming);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
