//! What the tasks serving agents hold: a connection, its stream's two halves, the handshake in progress.
//! Each call locks the endpoint's table for its moment, never across an await.

use super::driver::{Shared, State};
use bytes::Bytes;
use quinn_proto::{ConnectionError, Dir, ReadableError, StreamId, VarInt};
use std::fmt;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// One counted reference to a connection. The last one dropped closes it (code 0), as an unused QUIC
/// connection should be.
pub(super) struct ConnRef {
    shared: Arc<Shared>,
    index: usize,
    generation: u32,
    remote: SocketAddr,
}

impl ConnRef {
    /// A reference the table already counted (`Conn::handles`).
    pub(super) fn new(shared: Arc<Shared>, index: usize, generation: u32, remote: SocketAddr) -> ConnRef {
        ConnRef {
            shared,
            index,
            generation,
            remote,
        }
    }

    /// Another reference, counted by the caller that holds the lock.
    fn adopt(&self) -> ConnRef {
        ConnRef::new(self.shared.clone(), self.index, self.generation, self.remote)
    }

    /// Runs `f` on the table; when `f` says the connection has packets to send, they are sent before the
    /// lock is released.
    fn locked<R>(&self, f: impl FnOnce(&mut State, usize, u32) -> (R, bool)) -> R {
        let mut wake = Vec::new();
        let (result, wake_driver) = {
            let mut state = self.shared.lock();
            let (result, changed) = f(&mut state, self.index, self.generation);
            let mut wake_driver = false;
            if changed {
                wake_driver = state.drive_now(self.index, &self.shared);
                std::mem::swap(&mut state.to_wake, &mut wake);
            }
            (result, wake_driver)
        };
        wake.into_iter().for_each(Waker::wake);
        if wake_driver {
            self.shared.driver.notify_one();
        }
        result
    }
}

impl Drop for ConnRef {
    fn drop(&mut self) {
        self.locked(|state, index, generation| {
            let Some(conn) = state.conn(index, generation) else {
                return ((), false);
            };
            conn.handles -= 1;
            if conn.handles > 0 || conn.proto.is_closed() {
                return ((), false);
            }
            conn.proto.close(Instant::now(), 0u32.into(), Bytes::new());
            ((), true)
        })
    }
}

/// The reason a connection that is gone from the table ended with, as far as its handles can tell.
fn gone() -> ConnectionError {
    ConnectionError::LocallyClosed
}

/// A handshake in progress. Dropped before it completes, the connection is closed.
pub struct Connecting {
    pub(super) conn: ConnRef,
}

impl Future for Connecting {
    type Output = Result<Connection, ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let conn = &this.conn;
        conn.locked(|state, index, generation| {
            let Some(c) = state.conn(index, generation) else {
                return (Poll::Ready(Err(gone())), false);
            };
            if let Some(lost) = &c.lost {
                return (Poll::Ready(Err(lost.clone())), false);
            }
            if c.connected {
                c.handles += 1;
                return (Poll::Ready(Ok(Connection { conn: conn.adopt() })), false);
            }
            c.read_waker = Some(cx.waker().clone());
            (Poll::Pending, false)
        })
    }
}

/// An established connection.
pub struct Connection {
    conn: ConnRef,
}

impl Connection {
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote
    }

    /// The peer's leaf certificate (DER), if it presented one.
    pub fn peer_cert_der(&self) -> Option<Vec<u8>> {
        self.conn.locked(|state, index, generation| {
            let leaf = state.conn(index, generation).and_then(|c| {
                let identity = c.proto.crypto_session().peer_identity()?;
                let chain = identity
                    .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()?;
                chain.first().map(|cert| cert.to_vec())
            });
            (leaf, false)
        })
    }

    /// quinn-proto's counters of the connection: datagrams and frames each way, packets lost, the path's RTT.
    pub fn stats(&self) -> quinn_proto::ConnectionStats {
        self.conn.locked(|state, index, generation| {
            let stats = state
                .conn(index, generation)
                .map(|c| c.proto.stats())
                .unwrap_or_default();
            (stats, false)
        })
    }

    /// The application protocol the handshake settled on.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.conn.locked(|state, index, generation| {
            let protocol = state.conn(index, generation).and_then(|c| {
                let data = c.proto.crypto_session().handshake_data()?;
                data.downcast::<quinn_proto::crypto::rustls::HandshakeData>()
                    .ok()?
                    .protocol
            });
            (protocol, false)
        })
    }

    /// The bidirectional stream the peer opens.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        poll_fn(|cx| {
            self.conn.locked(|state, index, generation| {
                let Some(c) = state.conn(index, generation) else {
                    return (Poll::Ready(Err(gone())), false);
                };
                if let Some(id) = c.proto.streams().accept(Dir::Bi) {
                    c.handles += 2;
                    let send = SendStream {
                        conn: self.conn.adopt(),
                        id,
                    };
                    let recv = RecvStream {
                        conn: self.conn.adopt(),
                        id,
                        ended: None,
                    };
                    return (Poll::Ready(Ok((send, recv))), true);
                }
                if let Some(lost) = &c.lost {
                    return (Poll::Ready(Err(lost.clone())), false);
                }
                c.read_waker = Some(cx.waker().clone());
                (Poll::Pending, false)
            })
        })
        .await
    }

    /// Closes the connection with an application error code and reason; unsent data is abandoned.
    pub fn close(&self, code: u32, reason: &[u8]) {
        let reason = Bytes::copy_from_slice(reason);
        self.conn
            .locked(|state, index, generation| match state.conn(index, generation) {
                Some(c) => {
                    c.proto.close(Instant::now(), code.into(), reason);
                    ((), true)
                }
                None => ((), false),
            })
    }

    /// Waits until the connection has ended, by either side.
    pub async fn closed(&self) {
        poll_fn(|cx| {
            self.conn.locked(|state, index, generation| {
                let Some(c) = state.conn(index, generation) else {
                    return (Poll::Ready(()), false);
                };
                if c.lost.is_some() {
                    return (Poll::Ready(()), false);
                }
                c.write_waker = Some(cx.waker().clone());
                (Poll::Pending, false)
            })
        })
        .await
    }
}

/// Why a read ended.
#[derive(Debug)]
pub enum ReadError {
    ConnectionLost(ConnectionError),
    Reset(VarInt),
    ClosedStream,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::ConnectionLost(error) => write!(f, "connection lost: {error}"),
            ReadError::Reset(code) => write!(f, "stream reset by the peer (code {code})"),
            ReadError::ClosedStream => f.write_str("the stream is closed"),
        }
    }
}

/// Why a write failed.
#[derive(Debug)]
pub enum WriteError {
    ConnectionLost(ConnectionError),
    Stopped(VarInt),
    ClosedStream,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::ConnectionLost(error) => write!(f, "connection lost: {error}"),
            WriteError::Stopped(code) => write!(f, "stream stopped by the peer (code {code})"),
            WriteError::ClosedStream => f.write_str("the stream is closed"),
        }
    }
}

/// The receiving half of the peer's stream.
pub struct RecvStream {
    conn: ConnRef,
    id: StreamId,
    /// How the stream ended, seen by `read_available` behind chunks it returned first: `None` inside for
    /// finished by the peer, else the reset's code. The next read reports it.
    ended: Option<Option<VarInt>>,
}

impl RecvStream {
    /// Reads into `buf`; `None` once the peer finished the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let mut chunks = Vec::new();
        if !self.read_available(buf.len(), &mut chunks).await? {
            return Ok(None);
        }
        let mut filled = 0;
        for chunk in chunks {
            buf[filled..filled + chunk.len()].copy_from_slice(&chunk);
            filled += chunk.len();
        }
        Ok(Some(filled))
    }

    /// Waits for data, then appends every chunk received so far, up to `max_bytes` in all, to `out`: a task
    /// that fell behind takes in one call what arrived while it waited, instead of a call and a turn per
    /// packet. `false` once the peer finished the stream (nothing appended).
    pub async fn read_available(
        &mut self,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<bool, ReadError> {
        match self.ended {
            Some(None) => return Ok(false),
            Some(Some(code)) => return Err(ReadError::Reset(code)),
            None => {}
        }
        poll_fn(|cx| self.poll_available(cx, max_bytes.max(1), out)).await
    }

    fn poll_available(
        &mut self,
        cx: &mut Context<'_>,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> Poll<Result<bool, ReadError>> {
        let id = self.id;
        let ended = &mut self.ended;
        self.conn.locked(|state, index, generation| {
            let Some(c) = state.conn(index, generation) else {
                return (Poll::Ready(Err(ReadError::ConnectionLost(gone()))), false);
            };
            let mut stream = c.proto.recv_stream(id);
            let mut chunks = match stream.read(true) {
                Ok(chunks) => chunks,
                Err(ReadableError::ClosedStream | ReadableError::IllegalOrderedRead) => {
                    return (Poll::Ready(Err(ReadError::ClosedStream)), false)
                }
            };
            let mut taken = 0;
            let outcome = loop {
                match chunks.next(max_bytes - taken) {
                    Ok(Some(chunk)) => {
                        taken += chunk.bytes.len();
                        out.push(chunk.bytes);
                        if taken >= max_bytes {
                            break None;
                        }
                    }
                    Ok(None) => break Some(Ok(None)),
                    Err(quinn_proto::ReadError::Reset(code)) => break Some(Ok(Some(code))),
                    Err(quinn_proto::ReadError::Blocked) => break Some(Err(())),
                }
            };
            let credit = chunks.finalize().should_transmit();
            // How the stream ended is kept: quinn-proto frees a stream once it said so, and every later call
            // reports the same end.
            if let Some(Ok(end)) = outcome {
                *ended = Some(end);
            }
            let poll = match outcome {
                // Data first; the end waits for the next call.
                _ if taken > 0 => Poll::Ready(Ok(true)),
                Some(Ok(None)) => Poll::Ready(Ok(false)),
                Some(Ok(Some(code))) => Poll::Ready(Err(ReadError::Reset(code))),
                _ => match &c.lost {
                    Some(lost) => Poll::Ready(Err(ReadError::ConnectionLost(lost.clone()))),
                    None => {
                        c.read_waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                },
            };
            (poll, credit)
        })
    }
}

/// The sending half of the peer's stream.
pub struct SendStream {
    conn: ConnRef,
    id: StreamId,
}

impl SendStream {
    /// Writes all of `data`, waiting for flow control credit as needed.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let mut written = 0;
        let id = self.id;
        poll_fn(|cx| {
            self.conn.locked(|state, index, generation| {
                let Some(c) = state.conn(index, generation) else {
                    return (Poll::Ready(Err(WriteError::ConnectionLost(gone()))), false);
                };
                let mut wrote = false;
                loop {
                    if written == data.len() {
                        return (Poll::Ready(Ok(())), wrote);
                    }
                    if let Some(lost) = &c.lost {
                        return (Poll::Ready(Err(WriteError::ConnectionLost(lost.clone()))), wrote);
                    }
                    match c.proto.send_stream(id).write(&data[written..]) {
                        Ok(n) => {
                            written += n;
                            wrote = true;
                        }
                        Err(quinn_proto::WriteError::Blocked) => {
                            c.write_waker = Some(cx.waker().clone());
                            return (Poll::Pending, wrote);
                        }
                        Err(quinn_proto::WriteError::Stopped(code)) => {
                            return (Poll::Ready(Err(WriteError::Stopped(code))), wrote)
                        }
                        Err(quinn_proto::WriteError::ClosedStream) => {
                            return (Poll::Ready(Err(WriteError::ClosedStream)), wrote)
                        }
                    }
                }
            })
        })
        .await
    }

    /// Ends the stream once what was written is delivered.
    pub fn finish(&mut self) -> Result<(), WriteError> {
        let id = self.id;
        self.conn.locked(|state, index, generation| {
            let Some(c) = state.conn(index, generation) else {
                return (Err(WriteError::ConnectionLost(gone())), false);
            };
            match c.proto.send_stream(id).finish() {
                Ok(()) => (Ok(()), true),
                Err(quinn_proto::FinishError::Stopped(code)) => (Err(WriteError::Stopped(code)), false),
                Err(quinn_proto::FinishError::ClosedStream) => (Err(WriteError::ClosedStream), false),
            }
        })
    }
}
