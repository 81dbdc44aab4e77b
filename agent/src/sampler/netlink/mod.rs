//! A minimal NETLINK_SOCK_DIAG (INET_DIAG) client for TCP socket dumps, written against the kernel ABI
//! (include/uapi/linux/inet_diag.h, netlink.h) with one reusable receive buffer and no per-socket allocation.
//!
//! The preferred request is the legacy TCPDIAG_GETSOCK with `struct inet_diag_req`: the kernel answers it
//! as a dump of family AF_UNSPEC, walking the TCP hash tables once for IPv4 and IPv6 together. Kernels that
//! refuse it get SOCK_DIAG_BY_FAMILY with `struct inet_diag_req_v2`, once for AF_INET and once for AF_INET6.
//! For a LISTEN socket the kernel puts the accept-queue length in idiag_rqueue and the backlog in
//! idiag_wqueue. Listener requests also ask for the socket's memory figures (INET_DIAG_SKMEMINFO) for one of
//! them: the socket's drop count, which every listen drop and overflow raises (`tcp_listendrop`). Other
//! requests ask for no extension: the fixed part of each reply has all they need.
//!
//! A dump makes the kernel walk every bucket of a hash table, whatever is in it: the listening table has
//! 16,384 buckets on a 24 GiB host (`tcp_listen_portaddr_hash` in the boot log), about 0.1 ms a walk. A socket
//! a dump named can also be asked for by itself (`lookup`): the kernel finds it by hash, as it does for an
//! arriving packet, and answers for it alone.

mod lookup;

pub use lookup::{encode_lookups, parse_lookup_replies, LookupProgress, SocketId, MAX_LOOKUPS};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `nlmsg_type` of the legacy request (include/uapi/linux/inet_diag.h).
const TCPDIAG_GETSOCK: u16 = 18;
/// `nlmsg_type` of the per-family request (include/uapi/linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;

const NLMSG_HEADER_BYTES: usize = 16;
/// `struct inet_diag_sockid`: sport, dport, src[4], dst[4], if, cookie[2].
const SOCKID_BYTES: usize = 48;
/// `struct inet_diag_req`: family, src_len, dst_len, ext, id, states, dbs.
const LEGACY_REQUEST_BYTES: usize = 4 + SOCKID_BYTES + 8;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, id.
const V2_REQUEST_BYTES: usize = 8 + SOCKID_BYTES;
/// `struct inet_diag_msg`: family, state, timer, retrans, id, expires, rqueue, wqueue, uid, inode.
const DIAG_MSG_BYTES: usize = 4 + SOCKID_BYTES + 20;

/// The kernel caps one dump datagram at 32 KiB (netlink's max_recvmsg_len); a bigger buffer costs nothing.
const RECEIVE_BUFFER_BYTES: usize = 64 * 1024;

/// How long one receive may block before the dump is abandoned for this tick.
const RECEIVE_TIMEOUT_MS: i64 = 2_000;

/// TCP states as a kernel state mask: bit N is state N.
pub const fn state_mask(states: &[headroom_common::wire::TcpState]) -> u32 {
    let mut mask = 0u32;
    let mut i = 0;
    while i < states.len() {
        mask |= 1 << (states[i] as u32);
        i += 1;
    }
    mask
}

/// Every state from ESTABLISHED (1) to NEW_SYN_RECV (12). Masks that stop at CLOSING (0xFFE) leave
/// half-open request sockets out.
pub const ALL_STATES: u32 = 0xFFF << 1;
/// LISTEN (10) alone: the kernel then skips the established hash table entirely.
pub const LISTEN_ONLY: u32 = 1 << 10;
/// ESTABLISHED (1) alone.
pub const ESTABLISHED_ONLY: u32 = 1 << 1;

/// INET_DIAG_SKMEMINFO: the reply attribute of a socket's memory figures (`u32` each, SK_MEMINFO_*), and its
/// bit in a request's extension mask (`1 << (type - 1)`).
const INET_DIAG_SKMEMINFO: u16 = 7;
pub const EXT_MEMINFO: u8 = 1 << (INET_DIAG_SKMEMINFO - 1);
/// Index of SK_MEMINFO_DROPS among those figures (include/uapi/linux/sock_diag.h).
const SK_MEMINFO_DROPS: usize = 8;

/// `nlattr` type of a filter program attached to a dump request (INET_DIAG_REQ_BYTECODE).
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Filter program opcodes (INET_DIAG_BC_* in include/uapi/linux/inet_diag.h). Only comparisons that every
/// kernel with inet_diag knows are used (an equality test came later).
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
/// One `struct inet_diag_bc_op`: code (u8), yes (u8), no (u16). A port comparison is two of them, the
/// second holding the port in `no`.
const BC_OP_BYTES: usize = 4;
/// Program bytes per range of ports: local port >= low, local port <= high, and a jump to the end.
const BC_RANGE_BYTES: usize = 5 * BC_OP_BYTES;
/// Ranges one program may hold, as a jump's offset is a u16; a sample reports at most `MAX_LISTENERS`
/// listening ports, far fewer.
pub const MAX_FILTER_RANGES: usize = (u16::MAX as usize - BC_OP_BYTES) / BC_RANGE_BYTES;

/// Runs of consecutive ports in `ports` (sorted ascending) as (low, high), highest run first.
fn port_ranges_descending(ports: &[u16]) -> impl Iterator<Item = (u16, u16)> + '_ {
    let mut rest = ports;
    std::iter::from_fn(move || {
        let (&high, head) = rest.split_last()?;
        let mut low = high;
        rest = head;
        while let Some((&next, head)) = rest.split_last() {
            if next < low.saturating_sub(1) {
                break;
            }
            low = low.min(next);
            rest = head;
        }
        Some((low, high))
    })
}

/// Writes into `program` a sock_diag filter that accepts a socket whose local port is one of `ports` (sorted
/// ascending, as listeners are kept) and rejects every other, so that the kernel fills no message for the
/// sockets it rejects. Consecutive ports become one range. Returns false, with `program` empty, when there
/// is no port or more ranges than one program holds; an empty program filters nothing.
///
/// The kernel runs the program from its start: a true comparison moves on by `yes` bytes, a false one by
/// `no` bytes, a jump always by `no`; landing exactly on the end accepts, going past it rejects. Every op is
/// reached by `yes` steps from the start and every `no` lands on an op or 4 bytes past the end, which is
/// what the kernel's audit of a program checks. Ranges go highest first and a port above a range is
/// rejected at once, so the client side of an outgoing connection (an ephemeral port, above the services'
/// ports as a rule) costs the kernel one comparison.
pub fn local_port_filter(ports: &[u16], program: &mut Vec<u8>) -> bool {
    program.clear();
    let ranges = port_ranges_descending(ports).count();
    if ranges == 0 || ranges > MAX_FILTER_RANGES {
        return false;
    }
    // The last range has no jump: its second comparison accepts by reaching the end.
    let total = ranges * BC_RANGE_BYTES - BC_OP_BYTES;
    let reject = total + BC_OP_BYTES;
    let mut op = |code: u8, yes: usize, no: usize| {
        program.push(code);
        program.push(yes as u8);
        program.extend_from_slice(&(no as u16).to_ne_bytes());
    };
    for (index, (low, high)) in port_ranges_descending(ports).enumerate() {
        let at = index * BC_RANGE_BYTES;
        let last = index + 1 == ranges;
        // Above this range means above every range left: reject.
        op(BC_S_LE, 2 * BC_OP_BYTES, reject - at);
        op(0, 0, usize::from(high));
        // Below it: on to the next (lower) range, or past the end (reject) after the last one.
        let second = at + 2 * BC_OP_BYTES;
        let below = if last { reject } else { at + BC_RANGE_BYTES };
        op(BC_S_GE, 2 * BC_OP_BYTES, below - second);
        op(0, 0, usize::from(low));
        if !last {
            // Inside the range: jump to the end, which accepts.
            let jump = at + 4 * BC_OP_BYTES;
            op(BC_JMP, BC_OP_BYTES, total - jump);
        }
    }
    debug_assert_eq!(program.len(), total);
    true
}

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket: {0} (is the kernel built without inet_diag? set netlink = false to read /proc/net/tcp)")]
    Open(io::Error),
    #[error("cannot send the sock_diag request: {0}")]
    Send(io::Error),
    #[error("cannot receive the sock_diag reply: {0}")]
    Receive(io::Error),
    #[error("the kernel refused the sock_diag request: {0}")]
    Refused(io::Error),
    #[error("sock_diag reply of {len} bytes did not fit the {capacity}-byte buffer")]
    Truncated { len: usize, capacity: usize },
    #[error("malformed sock_diag reply: {0}")]
    Malformed(String),
}

/// The fields of one `inet_diag_msg` this agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagSocketInfo {
    pub id: SocketId,
    pub family: u8,
    /// Kernel state number (1 = ESTABLISHED … 12 = NEW_SYN_RECV).
    pub state: u8,
    pub local_port: u16,
    /// LISTEN: accept-queue length. Others: bytes not yet read by the application.
    pub receive_queue: u32,
    /// LISTEN: the backlog (accept-queue limit). Others: bytes not yet acknowledged by the peer.
    pub send_queue: u32,
    /// Packets the socket dropped (SK_MEMINFO_DROPS), when the request asked for `EXT_MEMINFO` and the
    /// kernel has the figure.
    pub drops: Option<u32>,
}

/// Which request shape to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// TCPDIAG_GETSOCK: one walk for both families.
    Legacy,
    /// SOCK_DIAG_BY_FAMILY for the given family.
    ByFamily(u8),
}

/// Writes one dump request into `out` and returns its length.
pub fn encode_request(kind: RequestKind, states: u32, ext: u8, seq: u32, out: &mut [u8; 128]) -> usize {
    out.fill(0);
    let (message_type, payload_bytes) = match kind {
        RequestKind::Legacy => (TCPDIAG_GETSOCK, LEGACY_REQUEST_BYTES),
        RequestKind::ByFamily(_) => (SOCK_DIAG_BY_FAMILY, V2_REQUEST_BYTES),
    };
    let len = NLMSG_HEADER_BYTES + payload_bytes;
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    out[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    out[4..6].copy_from_slice(&message_type.to_ne_bytes());
    out[6..8].copy_from_slice(&flags.to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel fills in our port id.
    let payload = &mut out[NLMSG_HEADER_BYTES..len];
    match kind {
        RequestKind::Legacy => {
            // Family is ignored by the kernel for this request (it dumps AF_UNSPEC); the id stays zero.
            payload[0] = libc::AF_INET as u8;
            payload[3] = ext;
            let states_at = 4 + SOCKID_BYTES;
            payload[states_at..states_at + 4].copy_from_slice(&states.to_ne_bytes());
        }
        RequestKind::ByFamily(family) => {
            payload[0] = family;
            payload[1] = libc::IPPROTO_TCP as u8;
            payload[2] = ext;
            payload[4..8].copy_from_slice(&states.to_ne_bytes());
        }
    }
    len
}

/// What a datagram of the reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    More,
    Done,
}

/// One netlink message of a datagram: its type, sequence number and payload.
pub(crate) struct Message<'a> {
    pub kind: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages of one datagram, in order; a length that does not fit ends them with an error.
pub(crate) fn messages(bytes: &[u8]) -> impl Iterator<Item = Result<Message<'_>, NetlinkError>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HEADER_BYTES {
            return None;
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < NLMSG_HEADER_BYTES || len > rest.len() {
            let error =
                NetlinkError::Malformed(format!("message length {len} with {} bytes left", rest.len()));
            rest = &[];
            return Some(Err(error));
        }
        let message = Message {
            kind: u16::from_ne_bytes([rest[4], rest[5]]),
            seq: u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]),
            payload: &rest[NLMSG_HEADER_BYTES..len],
        };
        let aligned = (len + 3) & !3;
        rest = &rest[aligned.min(rest.len())..];
        Some(Ok(message))
    })
}

/// The code of an NLMSG_ERROR message: 0 for an acknowledgement, else a negated errno.
pub(crate) fn error_code(payload: &[u8]) -> Result<i32, NetlinkError> {
    payload
        .get(0..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| NetlinkError::Malformed("error message without a code".into()))
}

/// The refusal an error code stands for. The kernel sends a negated errno; i32::MIN from a damaged reply has
/// no negation.
pub(crate) fn refusal(code: i32) -> NetlinkError {
    NetlinkError::Refused(io::Error::from_raw_os_error(code.saturating_neg()))
}

/// Visits every socket in one datagram of a dump reply. Messages for another sequence number (left over
/// from an abandoned dump) are skipped.
pub fn parse_datagram(
    bytes: &[u8],
    seq: u32,
    visit: &mut dyn FnMut(&DiagSocketInfo),
) -> Result<Progress, NetlinkError> {
    for message in messages(bytes) {
        let message = message?;
        if message.seq != seq {
            continue;
        }
        match message.kind {
            t if t == libc::NLMSG_DONE as u16 => return Ok(Progress::Done),
            t if t == libc::NLMSG_ERROR as u16 => match error_code(message.payload)? {
                // An acknowledgement; a dump ends with NLMSG_DONE, so keep reading.
                0 => continue,
                code => return Err(refusal(code)),
            },
            _ => visit(&diag_message(message.payload)?),
        }
    }
    Ok(Progress::More)
}

/// The fixed part of one `inet_diag_msg`.
pub(crate) fn diag_message(payload: &[u8]) -> Result<DiagSocketInfo, NetlinkError> {
    if payload.len() < DIAG_MSG_BYTES {
        return Err(NetlinkError::Malformed(format!(
            "inet_diag_msg of {} bytes, expected at least {DIAG_MSG_BYTES}",
            payload.len()
        )));
    }
    let u32_at =
        |at: usize| u32::from_ne_bytes([payload[at], payload[at + 1], payload[at + 2], payload[at + 3]]);
    let mut id = [0u8; SOCKID_BYTES];
    id.copy_from_slice(&payload[4..4 + SOCKID_BYTES]);
    // Attributes follow the fixed part, each 4-byte aligned; only the memory figures are read.
    let mut drops = None;
    let mut attributes = &payload[DIAG_MSG_BYTES..];
    while attributes.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if len < 4 || len > attributes.len() {
            return Err(NetlinkError::Malformed(format!(
                "attribute length {len} with {} bytes left",
                attributes.len()
            )));
        }
        if kind == INET_DIAG_SKMEMINFO {
            let at = 4 + SK_MEMINFO_DROPS * 4;
            drops = attributes[..len]
                .get(at..at + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        }
        attributes = &attributes[((len + 3) & !3).min(attributes.len())..];
    }
    Ok(DiagSocketInfo {
        id: SocketId::new(payload[0], id),
        family: payload[0],
        state: payload[1],
        // Ports are in network byte order.
        local_port: u16::from_be_bytes([payload[4], payload[5]]),
        receive_queue: u32_at(4 + SOCKID_BYTES + 4),
        send_queue: u32_at(4 + SOCKID_BYTES + 8),
        drops,
    })
}

/// An open NETLINK_SOCK_DIAG socket with its receive buffer.
#[derive(Debug)]
pub struct DiagSocket {
    fd: OwnedFd,
    buffer: Vec<u8>,
    seq: u32,
    /// None until the first dump found out whether the legacy request works.
    legacy_works: Option<bool>,
    /// The attribute that follows the request of the dump in progress (a filter program), reused.
    filter_attribute: Vec<u8>,
    /// The requests of the last `lookup`, reused.
    lookup_requests: Vec<u8>,
    /// Extensions the dump in progress asks for.
    ext: u8,
}

impl DiagSocket {
    pub fn open() -> Result<DiagSocket, NetlinkError> {
        // SAFETY: plain socket(2) call; the returned descriptor is checked before being owned.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if raw < 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            tv_sec: RECEIVE_TIMEOUT_MS / 1000,
            tv_usec: (RECEIVE_TIMEOUT_MS % 1000) * 1000,
        };
        // SAFETY: `timeout` is a valid timeval for the duration of the call and its size is passed.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        Ok(DiagSocket {
            fd,
            buffer: vec![0; RECEIVE_BUFFER_BYTES],
            seq: 0,
            legacy_works: None,
            filter_attribute: Vec::new(),
            lookup_requests: Vec::new(),
            ext: 0,
        })
    }

    /// Whether the kernel took the single-walk legacy request; `None` before the first dump.
    pub fn uses_legacy_request(&self) -> Option<bool> {
        self.legacy_works
    }

    /// Dumps every TCP socket (IPv4 and IPv6) whose state is in `states` (a mask: bit N is state N) and
    /// calls `visit` for each. Returns the number of sockets visited.
    pub fn dump(&mut self, states: u32, visit: &mut dyn FnMut(&DiagSocketInfo)) -> Result<u64, NetlinkError> {
        self.dump_filtered(states, &[], visit)
    }

    /// Dumps every listening TCP socket with its drop count (`DiagSocketInfo::drops`).
    pub fn dump_listeners(&mut self, visit: &mut dyn FnMut(&DiagSocketInfo)) -> Result<u64, NetlinkError> {
        self.ext = EXT_MEMINFO;
        let result = self.dump_filtered(LISTEN_ONLY, &[], visit);
        self.ext = 0;
        result
    }

    /// Like `dump`, for the sockets the filter `program` accepts (see `local_port_filter`); an empty
    /// program filters nothing.
    pub fn dump_filtered(
        &mut self,
        states: u32,
        program: &[u8],
        visit: &mut dyn FnMut(&DiagSocketInfo),
    ) -> Result<u64, NetlinkError> {
        self.filter_attribute.clear();
        if !program.is_empty() {
            let attribute_bytes = 4 + program.len();
            let attribute_len = u16::try_from(attribute_bytes)
                .map_err(|_| NetlinkError::Malformed(format!("a filter of {} bytes", program.len())))?;
            self.filter_attribute
                .extend_from_slice(&attribute_len.to_ne_bytes());
            self.filter_attribute
                .extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
            self.filter_attribute.extend_from_slice(program);
        }
        let mut count = 0u64;
        let mut counting = |socket: &DiagSocketInfo| {
            count += 1;
            visit(socket);
        };
        if self.legacy_works != Some(false) {
            match self.dump_one(RequestKind::Legacy, states, &mut counting) {
                Ok(()) => {
                    self.legacy_works = Some(true);
                    return Ok(count);
                }
                // Only a first refusal means "this kernel has no legacy request"; later ones are real errors.
                Err(NetlinkError::Refused(_)) if self.legacy_works.is_none() => {
                    self.legacy_works = Some(false);
                }
                Err(error) => return Err(error),
            }
        }
        self.dump_one(RequestKind::ByFamily(libc::AF_INET as u8), states, &mut counting)?;
        match self.dump_one(RequestKind::ByFamily(libc::AF_INET6 as u8), states, &mut counting) {
            Ok(()) => {}
            // A kernel without IPv6 has no AF_INET6 handler.
            Err(NetlinkError::Refused(error)) if error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(error) => return Err(error),
        }
        Ok(count)
    }

    /// One datagram into the buffer; returns its length.
    pub(crate) fn receive(&mut self) -> Result<usize, NetlinkError> {
        loop {
            // SAFETY: the buffer is valid for writes of its length; MSG_TRUNC makes the kernel report a
            // datagram's full length even when it did not fit, so truncation is detected below.
            let received = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buffer.as_mut_ptr().cast(),
                    self.buffer.len(),
                    libc::MSG_TRUNC,
                )
            };
            if received < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetlinkError::Receive(error));
            }
            let received = received as usize;
            if received > self.buffer.len() {
                return Err(NetlinkError::Truncated {
                    len: received,
                    capacity: self.buffer.len(),
                });
            }
            return Ok(received);
        }
    }

    fn dump_one(
        &mut self,
        kind: RequestKind,
        states: u32,
        visit: &mut dyn FnMut(&DiagSocketInfo),
    ) -> Result<(), NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut request = [0u8; 128];
        let len = encode_request(kind, states, self.ext, self.seq, &mut request);
        // The filter attribute, if any, follows the request in the same message (both are 4-byte aligned).
        let message_len = len + self.filter_attribute.len();
        request[0..4].copy_from_slice(&(message_len as u32).to_ne_bytes());
        let parts = [
            libc::iovec {
                iov_base: request.as_mut_ptr().cast(),
                iov_len: len,
            },
            libc::iovec {
                iov_base: self.filter_attribute.as_mut_ptr().cast(),
                iov_len: self.filter_attribute.len(),
            },
        ];
        loop {
            // SAFETY: both iovecs point at initialised memory we own that outlives the call, and `message`
            // is a zeroed msghdr with only the iovec fields set; sendmsg(2) to an unconnected netlink socket
            // goes to the kernel.
            let sent = unsafe {
                let mut message: libc::msghdr = std::mem::zeroed();
                message.msg_iov = parts.as_ptr().cast_mut();
                message.msg_iovlen = if self.filter_attribute.is_empty() { 1 } else { 2 };
                libc::sendmsg(self.fd.as_raw_fd(), &message, 0)
            };
            if sent >= 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(NetlinkError::Send(error));
            }
        }
        loop {
            let received = self.receive()?;
            if parse_datagram(&self.buffer[..received], self.seq, visit)? == Progress::Done {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::{TcpState, MAX_LISTENERS};

    fn message(message_type: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HEADER_BYTES + payload.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&message_type.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    /// Found by the netlink_dump fuzz target: an error message whose code is i32::MIN overflowed when negated.
    #[test]
    fn issue_11_an_error_code_of_i32_min_is_a_refusal_not_a_panic() {
        let datagram = message(libc::NLMSG_ERROR as u16, 1, &i32::MIN.to_ne_bytes());
        assert!(matches!(
            parse_datagram(&datagram, 1, &mut |_| {}),
            Err(NetlinkError::Refused(_))
        ));
    }

    fn diag_msg(state: u8, port: u16, rqueue: u32, wqueue: u32) -> Vec<u8> {
        let mut payload = vec![0u8; DIAG_MSG_BYTES];
        payload[0] = libc::AF_INET6 as u8;
        payload[1] = state;
        payload[4..6].copy_from_slice(&port.to_be_bytes());
        payload[56..60].copy_from_slice(&rqueue.to_ne_bytes());
        payload[60..64].copy_from_slice(&wqueue.to_ne_bytes());
        payload
    }

    #[test]
    fn masks_cover_every_state() {
        assert_eq!(ALL_STATES, state_mask(&TcpState::ALL));
        assert_eq!(
            ALL_STATES & (1 << 12),
            1 << 12,
            "NEW_SYN_RECV must be in the mask"
        );
        assert_eq!(LISTEN_ONLY, state_mask(&[TcpState::Listen]));
    }

    #[test]
    fn requests_have_the_kernel_layout() {
        let mut out = [0u8; 128];
        let len = encode_request(RequestKind::Legacy, LISTEN_ONLY, EXT_MEMINFO, 7, &mut out);
        assert_eq!(len, 16 + 60);
        assert_eq!(u32::from_ne_bytes(out[0..4].try_into().unwrap()), 76);
        assert_eq!(u16::from_ne_bytes(out[4..6].try_into().unwrap()), 18);
        assert_eq!(u16::from_ne_bytes(out[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(out[8..12].try_into().unwrap()), 7);
        // struct inet_diag_req's idiag_ext: the memory figures.
        assert_eq!(out[19], 0x40);
        assert_eq!(
            u32::from_ne_bytes(out[16 + 52..16 + 56].try_into().unwrap()),
            1 << 10
        );
        let len = encode_request(RequestKind::ByFamily(10), ALL_STATES, 0, 8, &mut out);
        assert_eq!(len, 16 + 56);
        assert_eq!(u16::from_ne_bytes(out[4..6].try_into().unwrap()), 20);
        assert_eq!(out[16], 10);
        assert_eq!(out[17], 6);
        assert_eq!(out[18], 0, "no extension asked for");
        assert_eq!(u32::from_ne_bytes(out[20..24].try_into().unwrap()), 0x1FFE);
    }

    #[test]
    fn datagram_yields_sockets_then_done_and_skips_stale_messages() {
        let mut datagram = message(18, 3, &diag_msg(10, 8080, 5, 4));
        datagram.extend(message(18, 2, &diag_msg(1, 1, 0, 0)));
        datagram.extend(message(18, 3, &diag_msg(1, 8080, 0, 0)));
        let mut seen = Vec::new();
        let progress = parse_datagram(&datagram, 3, &mut |s| seen.push(*s)).unwrap();
        assert_eq!(progress, Progress::More);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0],
            DiagSocketInfo {
                id: SocketId::new(libc::AF_INET6 as u8, {
                    let mut id = [0u8; SOCKID_BYTES];
                    id[0..2].copy_from_slice(&8080u16.to_be_bytes());
                    id
                }),
                family: libc::AF_INET6 as u8,
                state: 10,
                local_port: 8080,
                receive_queue: 5,
                send_queue: 4,
                drops: None,
            }
        );
        let done = message(libc::NLMSG_DONE as u16, 3, &0i32.to_ne_bytes());
        assert_eq!(parse_datagram(&done, 3, &mut |_| {}).unwrap(), Progress::Done);
    }

    #[test]
    fn issue_12_lookups_are_one_v2_request_each_naming_the_socket() {
        let mut id = [0u8; SOCKID_BYTES];
        id[0..2].copy_from_slice(&443u16.to_be_bytes());
        id[4..8].copy_from_slice(&[127, 0, 0, 1]);
        id[40..48].copy_from_slice(&77u64.to_ne_bytes());
        let sockets = [SocketId::new(2, id), SocketId::new(10, [0u8; SOCKID_BYTES])];
        let mut out = Vec::new();
        encode_lookups(&sockets, u32::MAX, &mut out);
        assert_eq!(out.len(), 2 * 72);
        for (index, request) in out.chunks(72).enumerate() {
            assert_eq!(u32::from_ne_bytes(request[0..4].try_into().unwrap()), 72);
            assert_eq!(u16::from_ne_bytes(request[4..6].try_into().unwrap()), 20);
            // NLM_F_REQUEST alone: not a dump.
            assert_eq!(u16::from_ne_bytes(request[6..8].try_into().unwrap()), 1);
            let seq = u32::from_ne_bytes(request[8..12].try_into().unwrap());
            assert_eq!(seq, u32::MAX.wrapping_add(index as u32));
            assert_eq!(request[16], sockets[index].family);
            assert_eq!(request[17], 6);
            assert_eq!(request[18], EXT_MEMINFO);
            assert_eq!(&request[24..72], &sockets[index].id[..]);
        }
    }

    #[test]
    fn issue_12_lookup_replies_are_found_gone_or_refused() {
        let mut datagram = message(20, 5, &diag_msg(10, 22, 1, 128));
        datagram.extend(message(
            libc::NLMSG_ERROR as u16,
            6,
            &(-libc::ENOENT).to_ne_bytes(),
        ));
        // Another request's leftovers.
        datagram.extend(message(20, 4, &diag_msg(10, 80, 0, 0)));
        let mut progress = LookupProgress::default();
        let mut seen = Vec::new();
        parse_lookup_replies(&datagram, 5, 2, &mut progress, &mut |s| seen.push(s.local_port)).unwrap();
        assert_eq!(progress, LookupProgress { answered: 2, gone: 1 });
        assert_eq!(seen, [22]);

        let refused = message(libc::NLMSG_ERROR as u16, 5, &(-libc::EINVAL).to_ne_bytes());
        let mut progress = LookupProgress::default();
        assert!(matches!(
            parse_lookup_replies(&refused, 5, 1, &mut progress, &mut |_| {}),
            Err(NetlinkError::Refused(_))
        ));
        let short = message(20, 5, &[0u8; 8]);
        assert!(matches!(
            parse_lookup_replies(&short, 5, 1, &mut progress, &mut |_| {}),
            Err(NetlinkError::Malformed(_))
        ));
    }

    #[test]
    fn issue_12_the_drop_count_comes_from_the_memory_figures() {
        let attribute = |kind: u16, figures: &[u32]| {
            let mut out = Vec::new();
            out.extend_from_slice(&((4 + 4 * figures.len()) as u16).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            for figure in figures {
                out.extend_from_slice(&figure.to_ne_bytes());
            }
            out
        };
        let mut payload = diag_msg(10, 80, 0, 128);
        // An attribute of another kind first (INET_DIAG_SHUTDOWN, one byte, padded), then the nine figures.
        payload.extend_from_slice(&[5, 0, 8, 0, 0, 0, 0, 0]);
        payload.extend(attribute(INET_DIAG_SKMEMINFO, &[0, 1, 2, 3, 4, 5, 6, 7, 42]));
        assert_eq!(diag_message(&payload).unwrap().drops, Some(42));
        // A kernel with fewer figures has no drop count.
        let mut payload = diag_msg(10, 80, 0, 128);
        payload.extend(attribute(INET_DIAG_SKMEMINFO, &[0, 1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(diag_message(&payload).unwrap().drops, None);
        let mut payload = diag_msg(10, 80, 0, 128);
        payload.extend_from_slice(&[200, 0, 7, 0]);
        assert!(matches!(diag_message(&payload), Err(NetlinkError::Malformed(_))));
    }

    #[test]
    fn issue_12_a_reuseport_group_shares_one_listener_key() {
        let mut a = [0u8; SOCKID_BYTES];
        a[0..2].copy_from_slice(&8080u16.to_be_bytes());
        let mut b = a;
        // Only the cookie differs.
        b[40] = 1;
        assert_eq!(
            SocketId::new(2, a).listener_key(),
            SocketId::new(2, b).listener_key()
        );
        assert_ne!(
            SocketId::new(2, a).listener_key(),
            SocketId::new(10, a).listener_key()
        );
    }

    /// The kernel's reading of a filter program (inet_diag_bc_run in net/ipv4/inet_diag.c), for the source
    /// port comparisons and jumps this module writes: true when the socket on `port` is reported.
    fn kernel_accepts(program: &[u8], port: u16) -> bool {
        kernel_run(program, port).0
    }

    /// Whether the socket on `port` is reported, and how many ops the kernel ran to decide.
    fn kernel_run(program: &[u8], port: u16) -> (bool, usize) {
        let len = program.len() as isize;
        let mut at = 0isize;
        let mut steps = 0;
        while at < len {
            steps += 1;
            let op = &program[at as usize..];
            let (yes, no) = (op[1] as isize, u16::from_ne_bytes([op[2], op[3]]) as isize);
            let operand = || u16::from_ne_bytes([op[6], op[7]]);
            let taken = match op[0] {
                BC_JMP => false,
                BC_S_GE => port >= operand(),
                BC_S_LE => port <= operand(),
                code => panic!("unexpected op {code}"),
            };
            at += if taken { yes } else { no };
        }
        (at == len, steps)
    }

    /// The kernel's audit of a program (inet_diag_bc_audit and valid_cc): every op reached by `yes` steps,
    /// each step at least one op (two for a comparison) and 4-byte aligned, every `no` at most 4 bytes past
    /// the end and, when inside the program, onto an op the `yes` steps reach.
    fn kernel_audit(program: &[u8]) -> Result<(), String> {
        let len = program.len();
        let mut reached = Vec::new();
        let mut at = 0;
        while at < len {
            reached.push(at);
            at += program[at + 1] as usize;
        }
        if at != len {
            return Err(format!("yes steps end at {at}, not {len}"));
        }
        for &at in &reached {
            let remaining = len - at;
            let (code, yes, no) = (
                program[at],
                program[at + 1] as usize,
                u16::from_ne_bytes([program[at + 2], program[at + 3]]) as usize,
            );
            let min_len = match code {
                BC_JMP => BC_OP_BYTES,
                BC_S_GE | BC_S_LE if remaining >= 2 * BC_OP_BYTES => 2 * BC_OP_BYTES,
                _ => return Err(format!("bad op {code} at {at}")),
            };
            if no < min_len || no > remaining + 4 || no % 4 != 0 {
                return Err(format!("no {no} at {at}"));
            }
            if no < remaining && !reached.contains(&(at + no)) {
                return Err(format!("no {no} at {at} lands inside an op"));
            }
            if yes < min_len || yes > remaining + 4 || yes % 4 != 0 {
                return Err(format!("yes {yes} at {at}"));
            }
        }
        Ok(())
    }

    #[test]
    fn issue_12_the_port_filter_accepts_exactly_the_listening_ports() {
        let cases: [&[u16]; 6] = [
            &[443],
            &[22, 80, 443],
            &[80, 81, 82, 8080],
            &[0, 1, 65535],
            &[1000, 1002, 1003, 1005, 65534, 65535],
            &[5, 5, 6],
        ];
        let mut program = Vec::new();
        for ports in cases {
            assert!(local_port_filter(ports, &mut program));
            kernel_audit(&program).unwrap_or_else(|e| panic!("{ports:?}: {e}"));
            for port in 0..=u16::MAX {
                assert_eq!(
                    kernel_accepts(&program, port),
                    ports.contains(&port),
                    "{ports:?}, port {port}"
                );
            }
        }
        // Two runs of ports: a range with a jump and a last one without.
        assert!(local_port_filter(&[80, 81, 82, 8080], &mut program));
        assert_eq!(program.len(), 2 * BC_RANGE_BYTES - BC_OP_BYTES);
        // The client side of an outgoing connection, on an ephemeral port above every listener, is
        // rejected by the first comparison.
        assert_eq!(kernel_run(&program, 45_000), (false, 1));
    }

    #[test]
    fn issue_12_a_filter_for_every_reported_listener_fits() {
        // The worst case: every reported listener on a port of its own, none adjacent.
        let ports: Vec<u16> = (0..MAX_LISTENERS as u16).map(|i| 1 + 2 * i).collect();
        let mut program = Vec::new();
        assert!(local_port_filter(&ports, &mut program));
        kernel_audit(&program).unwrap();
        assert!(kernel_accepts(&program, 2047) && !kernel_accepts(&program, 2048));
        assert!(!local_port_filter(&[], &mut program));
        assert!(program.is_empty());
    }

    #[test]
    fn kernel_error_and_bad_lengths_are_errors() {
        let error = message(libc::NLMSG_ERROR as u16, 1, &(-libc::EINVAL).to_ne_bytes());
        assert!(
            matches!(parse_datagram(&error, 1, &mut |_| {}), Err(NetlinkError::Refused(e)) if e.raw_os_error() == Some(libc::EINVAL))
        );
        let mut bad = message(18, 1, &diag_msg(1, 1, 0, 0));
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(matches!(
            parse_datagram(&bad, 1, &mut |_| {}),
            Err(NetlinkError::Malformed(_))
        ));
        let short = message(18, 1, &[0u8; 8]);
        assert!(matches!(
            parse_datagram(&short, 1, &mut |_| {}),
            Err(NetlinkError::Malformed(_))
        ));
    }
}
