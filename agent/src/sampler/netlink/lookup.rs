//! Asking the kernel for known sockets one by one (a SOCK_DIAG_BY_FAMILY request without NLM_F_DUMP): the
//! kernel finds each by hash, as for an arriving packet, where a dump walks every bucket of a table. Used for
//! the listening sockets a LISTEN dump found (see `sampler::sockets`).

use super::{
    diag_message, error_code, messages, refusal, DiagSocket, DiagSocketInfo, NetlinkError, EXT_MEMINFO,
    LISTEN_ONLY, NLMSG_HEADER_BYTES, SOCKID_BYTES, SOCK_DIAG_BY_FAMILY, V2_REQUEST_BYTES,
};
use std::io;
use std::os::fd::AsRawFd;

/// A socket as a dump reply named it: its family and its `struct inet_diag_sockid` as the kernel wrote it
/// (ports and addresses in network byte order, the cookie that tells this socket from a later one with the
/// same address). Enough to ask the kernel for this one socket again (`DiagSocket::lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketId {
    pub family: u8,
    pub(super) id: [u8; SOCKID_BYTES],
}

impl SocketId {
    pub fn new(family: u8, id: [u8; SOCKID_BYTES]) -> SocketId {
        SocketId { family, id }
    }

    /// What the kernel's lookup of a listening socket goes by: family, local port, local address and
    /// bound interface. Two listening sockets with one key (an SO_REUSEPORT group) cannot be told apart by a
    /// lookup: the kernel picks one member of the group, and the other's cookie does not match it.
    pub fn listener_key(&self) -> (u8, [u8; 2], [u8; 16], [u8; 4]) {
        let mut port = [0u8; 2];
        let mut address = [0u8; 16];
        let mut interface = [0u8; 4];
        port.copy_from_slice(&self.id[0..2]);
        address.copy_from_slice(&self.id[4..20]);
        interface.copy_from_slice(&self.id[36..40]);
        (self.family, port, address, interface)
    }
}

/// Most sockets one `lookup` asks for. Each costs the kernel a hash lookup and a reply, and this agent a
/// receive: past a few dozen, a dump of the listening table is cheaper.
pub const MAX_LOOKUPS: usize = 32;

/// One `SOCK_DIAG_BY_FAMILY` request for a single socket (no NLM_F_DUMP).
const LOOKUP_REQUEST_BYTES: usize = NLMSG_HEADER_BYTES + V2_REQUEST_BYTES;

/// Writes the requests for `sockets`, numbered from `first_seq`, into `out` (cleared first).
pub fn encode_lookups(sockets: &[SocketId], first_seq: u32, out: &mut Vec<u8>) {
    out.clear();
    for (index, socket) in sockets.iter().enumerate() {
        let seq = first_seq.wrapping_add(index as u32);
        out.extend_from_slice(&(LOOKUP_REQUEST_BYTES as u32).to_ne_bytes());
        out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        out.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        // struct inet_diag_req_v2: family, protocol, ext, pad, states, id.
        out.extend_from_slice(&[socket.family, libc::IPPROTO_TCP as u8, EXT_MEMINFO, 0]);
        out.extend_from_slice(&LISTEN_ONLY.to_ne_bytes());
        out.extend_from_slice(&socket.id);
    }
}

/// What the replies to one `lookup` said so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LookupProgress {
    /// Requests answered, found or not.
    pub answered: usize,
    /// Requests answered "no such socket" (closed, or another socket now has its address).
    pub gone: usize,
}

/// Reads one datagram of replies to `count` lookups numbered from `first_seq`: a found socket is visited, a
/// missing one (ENOENT) counted as gone, any other error is a refusal. Messages of other numbers (left over
/// from an abandoned request) are skipped.
pub fn parse_lookup_replies(
    bytes: &[u8],
    first_seq: u32,
    count: usize,
    progress: &mut LookupProgress,
    visit: &mut dyn FnMut(&DiagSocketInfo),
) -> Result<(), NetlinkError> {
    for message in messages(bytes) {
        let message = message?;
        if message.seq.wrapping_sub(first_seq) as usize >= count {
            continue;
        }
        if message.kind == libc::NLMSG_ERROR as u16 {
            match error_code(message.payload)? {
                0 => continue,
                code if code == -libc::ENOENT => progress.gone += 1,
                code => return Err(refusal(code)),
            }
        } else {
            visit(&diag_message(message.payload)?);
        }
        progress.answered += 1;
    }
    Ok(())
}

impl DiagSocket {
    /// Asks the kernel for each of `sockets` (at most `MAX_LOOKUPS`) by itself, all requests in one
    /// datagram, with its drop count, and calls `visit` for each one it still has. Returns how many it no longer has: a socket
    /// closed since the dump that named it, or one that a lookup cannot single out (see
    /// `SocketId::listener_key`).
    pub fn lookup(
        &mut self,
        sockets: &[SocketId],
        visit: &mut dyn FnMut(&DiagSocketInfo),
    ) -> Result<usize, NetlinkError> {
        let count = sockets.len();
        if count == 0 {
            return Ok(0);
        }
        if count > MAX_LOOKUPS {
            return Err(NetlinkError::Malformed(format!(
                "{count} lookups in one request, at most {MAX_LOOKUPS}"
            )));
        }
        let first_seq = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(count as u32);
        encode_lookups(sockets, first_seq, &mut self.lookup_requests);
        loop {
            // SAFETY: the buffer is initialised memory we own, valid for its length during the call;
            // send(2) on an unconnected netlink socket goes to the kernel.
            let sent = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    self.lookup_requests.as_ptr().cast(),
                    self.lookup_requests.len(),
                    0,
                )
            };
            if sent >= 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(NetlinkError::Send(error));
            }
        }
        // Each request gets exactly one answer: the socket, or an error message.
        let mut progress = LookupProgress::default();
        while progress.answered < count {
            let received = self.receive()?;
            parse_lookup_replies(&self.buffer[..received], first_seq, count, &mut progress, visit)?;
        }
        Ok(progress.gone)
    }
}
