//! Wire types of the agent ↔ collector protocol, version 2, and their length-prefixed postcard framing.
//!
//! These types are the only definition of what travels between agent and collector. Counters travel raw (as
//! the kernel reports them); the collector derives rates. Field order matters to postcard: new fields are only
//! ever appended, behind a protocol version bump.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Protocol version spoken by this build. Version 2 adds the clock probes (`TimeProbe`, `TimeReply`).
pub const PROTOCOL_VERSION: u16 = 2;

/// Oldest protocol version this build still speaks: a collector serves agents from `MIN_PROTOCOL_VERSION` to
/// `PROTOCOL_VERSION`, and answers each in the lower of its version and ours, so collectors are upgraded first.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// ALPN identifier of the streaming protocol.
pub const ALPN: &[u8] = b"headroom/1";

/// Largest frame (payload, without its 4-byte length prefix) either side accepts.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Most samples one batch may carry.
pub const MAX_BATCH_SAMPLES: usize = 512;

/// Most network interfaces one sample may carry.
pub const MAX_INTERFACES: usize = 256;

/// Most listening ports one sample may carry.
pub const MAX_LISTENERS: usize = 1024;

/// Most per-core CPU entries one sample may carry.
pub const MAX_CORES: usize = 4096;

/// Most labels a hello may carry, and the longest key or value.
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_LEN: usize = 128;

/// A message from the agent to the collector.
///
/// Variants differ in size (a sample versus a goodbye); each message lives only while it is encoded or
/// decoded, so boxing the large ones would add an allocation per message and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentMessage {
    Hello(Hello),
    Batch(Batch),
    /// The agent is shutting down cleanly; everything it sent has been sent.
    Goodbye,
    /// Samples the agent had to drop (its spool was full, or part of it was corrupt): a gap to record.
    Gap(GapReport),
    /// The newest sample, sent ahead of a backlog so the live view does not wait for catch-up. It is not
    /// stored from this message: it is stored when the ordered batches reach its sequence number.
    Live(Sample),
    /// Protocol 2: the answer to a `TimeProbe`, with the agent's clock (see `crate::clock_offset`).
    TimeReply(TimeReply),
}

/// A run of sequence numbers the agent could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapReport {
    pub from_seq: u64,
    pub to_seq: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    pub count: u64,
    /// Why: "spool_full", "corrupt" or "spool_write_failed".
    pub reason: String,
}

/// A message from the collector to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CollectorMessage {
    Welcome(Welcome),
    Ack(Ack),
    /// The collector refuses the session; the reason is one line meant for the agent's log.
    Refuse(Refuse),
    /// Protocol 2: the collector's clock, to be answered at once with a `TimeReply`.
    TimeProbe(TimeProbe),
}

/// The collector's clock when the probe left, for estimating the agent's clock offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeProbe {
    /// Chosen by the collector; echoed in the reply.
    pub id: u32,
    /// Collector clock, Unix milliseconds.
    pub collector_sent_ms: u64,
}

/// A probe echoed with the agent's clock when it read the probe and when it sent this reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReply {
    pub id: u32,
    pub collector_sent_ms: u64,
    /// Agent clock, Unix milliseconds.
    pub agent_received_ms: u64,
    /// Agent clock, Unix milliseconds.
    pub agent_sent_ms: u64,
}

/// First message of a session: who the agent says it is (labels, capacity) and what it speaks.
///
/// The host's identity is not here: the collector takes it from the client certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    pub agent_version: String,
    /// Random id chosen when the agent's state directory was created; a new id means a reinstall.
    pub instance_id: u64,
    /// Sampling interval in milliseconds.
    pub interval_ms: u32,
    /// Labels from the agent's config, e.g. group=web, zone=eu-1a.
    pub labels: BTreeMap<String, String>,
    pub capacity: Capacity,
    pub facts: HostFacts,
}

/// What the host can carry: the denominators of utilisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub cores: u32,
    pub memory_bytes: u64,
}

/// Descriptive facts about the host; informational only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub boot_time_s: u64,
}

/// The collector's answer to a hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u16,
    /// Host identity as the collector read it from the client certificate.
    pub host: String,
    /// Highest sequence number durably stored for this host and instance, if any; the agent resumes after it.
    pub last_stored_seq: Option<u64>,
    /// Most samples the collector accepts in one batch.
    pub max_batch_samples: u32,
}

/// Samples in sequence order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub samples: Vec<Sample>,
}

/// Acknowledges every sample of this host up to and including `through_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub through_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refuse {
    pub reason: String,
}

/// One sample of one host at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Per-host sequence number, starting at 1, without gaps.
    pub seq: u64,
    /// Wall-clock time of the sample, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub cpu: Option<CpuSample>,
    pub memory: Option<MemorySample>,
    pub pressure: Option<Pressure>,
    pub network: Vec<InterfaceCounters>,
    pub sockets: Option<SocketSample>,
    /// Families that failed to read this tick; the rest of the sample is intact.
    pub failed: Vec<Family>,
}

/// A metric family the agent reads; named in errors and in `Sample::failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    Cpu,
    LoadAverage,
    Memory,
    Pressure,
    Network,
    TcpStates,
    Listeners,
    Sockstat,
    Snmp,
    Conntrack,
    PortRange,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Cpu => "cpu",
            Family::LoadAverage => "loadavg",
            Family::Memory => "memory",
            Family::Pressure => "pressure",
            Family::Network => "network",
            Family::TcpStates => "tcp_states",
            Family::Listeners => "listeners",
            Family::Sockstat => "sockstat",
            Family::Snmp => "snmp",
            Family::Conntrack => "conntrack",
            Family::PortRange => "port_range",
        }
    }
}

/// Cumulative CPU time per state, in clock ticks (USER_HZ), as /proc/stat reports it.
///
/// Kernels without a column (steal before 2.6.11) report it as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Every tick counted, busy or not.
    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait
    }

    /// Ticks spent doing work (iowait counts as idle: the CPU was free to run something else).
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq + self.steal
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    pub total: CpuTimes,
    pub per_core: Vec<CpuTimes>,
    pub cores: u32,
    /// Load averages over 1, 5 and 15 minutes; absent when /proc/loadavg could not be read.
    pub load: Option<LoadAverage>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f32,
    pub five: f32,
    pub fifteen: f32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    pub total_bytes: u64,
    /// MemAvailable, or on kernels before 3.14 an estimate of free + buffers + cached.
    pub available_bytes: u64,
    /// total − available.
    pub used_bytes: u64,
    pub cached_bytes: u64,
    pub buffers_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// True when the kernel has no MemAvailable and `available_bytes` is the estimate.
    pub available_estimated: bool,
}

/// One line of a /proc/pressure file: the "some" average over 10 s (percent) and total stall time (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureLine {
    pub some_avg10: f32,
    pub some_total_us: u64,
}

/// Pressure stall information; each resource is absent where the kernel has no file for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu: Option<PressureLine>,
    pub memory: Option<PressureLine>,
    pub io: Option<PressureLine>,
}

/// Raw counters of one network interface, from /proc/net/dev.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// TCP states as the kernel numbers them (include/net/tcp_states.h). Index `state as usize - 1` in `TcpStates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    /// Half-open connection (request socket) awaiting the final ACK of the handshake, since Linux 4.4.
    NewSynRecv = 12,
}

impl TcpState {
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    /// The state with the kernel's number, if it is one.
    pub fn from_kernel(number: u8) -> Option<TcpState> {
        TcpState::ALL.get(usize::from(number).checked_sub(1)?).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::TimeWait => "time_wait",
            TcpState::Close => "close",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::Listen => "listen",
            TcpState::Closing => "closing",
            TcpState::NewSynRecv => "new_syn_recv",
        }
    }
}

/// Count of TCP sockets per state, IPv4 and IPv6 together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpStates {
    pub counts: [u32; 12],
}

impl TcpStates {
    pub fn get(&self, state: TcpState) -> u32 {
        self.counts[state as usize - 1]
    }

    pub fn add(&mut self, state: TcpState, n: u32) {
        let slot = &mut self.counts[state as usize - 1];
        *slot = slot.saturating_add(n);
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// Where the per-state counts came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocketSource {
    #[default]
    Netlink,
    ProcNet,
}

/// One listening TCP port (all addresses that listen on it merged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub port: u16,
    /// ESTABLISHED connections whose local port is this one.
    pub established: u32,
    /// Connections waiting in the accept queue (completed handshakes not yet accepted).
    pub accept_queue: u32,
    /// The accept queue's limit (the listen backlog); 0 when unknown (read from /proc, which does not show it).
    pub accept_queue_limit: u32,
}

/// /proc/net/sockstat and sockstat6.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sockstat {
    pub sockets_used: u64,
    pub tcp_inuse: u64,
    pub tcp_orphan: u64,
    pub tcp_time_wait: u64,
    pub tcp_alloc: u64,
    /// TCP buffer memory in pages.
    pub tcp_mem_pages: u64,
    pub tcp6_inuse: u64,
    pub udp_inuse: u64,
    pub udp6_inuse: u64,
}

/// Cumulative TCP counters from /proc/net/snmp (Tcp:) and /proc/net/netstat (TcpExt:).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCounters {
    pub active_opens: u64,
    pub passive_opens: u64,
    /// A gauge, not a counter: connections currently ESTABLISHED or CLOSE_WAIT.
    pub curr_estab: u64,
    pub retrans_segs: u64,
    pub in_errs: u64,
    pub out_rsts: u64,
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    pub count: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketSample {
    /// Per-state counts: LISTEN, ESTABLISHED and TIME_WAIT from this tick, the rest from the last full dump
    /// (docs/PROTOCOL.md); absent when it failed.
    pub tcp_states: Option<TcpStates>,
    /// How old the last full dump is, in milliseconds (0: this tick): the age of the per-port established
    /// counts and of the states other than LISTEN, ESTABLISHED and TIME_WAIT.
    pub tcp_states_age_ms: u32,
    pub source: SocketSource,
    /// Listening ports, sorted by port.
    pub listeners: Vec<Listener>,
    pub sockstat: Option<Sockstat>,
    pub tcp: Option<TcpCounters>,
    pub conntrack: Option<Conntrack>,
    pub ephemeral_ports: Option<PortRange>,
}

/// Errors from encoding or decoding a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame does not decode as a {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// Encode a message as a frame: a 4-byte big-endian length, then the postcard payload.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let payload = postcard::to_stdvec(message).map_err(|e| FrameError::Malformed {
        what: "message",
        detail: e.to_string(),
    })?;
    if payload.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Decode one frame payload (without its length prefix).
pub fn decode_payload<'a, T: Deserialize<'a>>(
    payload: &'a [u8],
    what: &'static str,
) -> Result<T, FrameError> {
    postcard::from_bytes(payload).map_err(|e| FrameError::Malformed {
        what,
        detail: e.to_string(),
    })
}

/// Splits a byte stream into frame payloads. Bytes go in with `push`; whole payloads come out of `next_frame`.
///
/// Memory stays bounded: a length prefix over `max` is an error before any of its payload is buffered.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buffer: Vec::new(),
            max,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The length a reader should try to fill next, so it never reads past a frame it cannot take.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole payload, `Ok(None)` if more bytes are needed, or an error for an oversized length.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let len =
            u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        let payload = self.buffer[4..4 + len].to_vec();
        self.buffer.drain(..4 + len);
        Ok(Some(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Sample {
        Sample {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq * 1000,
            cpu: Some(CpuSample {
                total: CpuTimes {
                    user: 10,
                    idle: 90,
                    ..Default::default()
                },
                per_core: vec![CpuTimes::default(); 2],
                cores: 2,
                load: Some(LoadAverage {
                    one: 0.5,
                    five: 0.25,
                    fifteen: 0.1,
                }),
            }),
            network: vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 1234,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn frames_round_trip_through_a_split_stream() {
        let a = encode_frame(&AgentMessage::Batch(Batch {
            samples: vec![sample(1), sample(2)],
        }))
        .unwrap();
        let b = encode_frame(&AgentMessage::Goodbye).unwrap();
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let mut decoder = FrameDecoder::default();
        let mut got = Vec::new();
        // Feed one byte at a time: frames must come out whole regardless of how the stream is cut.
        for byte in stream {
            decoder.push(&[byte]);
            while let Some(payload) = decoder.next_frame().unwrap() {
                got.push(decode_payload::<AgentMessage>(&payload, "agent message").unwrap());
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            AgentMessage::Batch(Batch {
                samples: vec![sample(1), sample(2)]
            })
        );
        assert_eq!(got[1], AgentMessage::Goodbye);
    }

    #[test]
    fn oversized_length_is_refused_before_buffering_the_payload() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&101u32.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
    }

    #[test]
    fn garbage_payload_is_a_malformed_error() {
        let err = decode_payload::<AgentMessage>(&[0xff, 0xff, 0xff], "agent message").unwrap_err();
        assert!(matches!(err, FrameError::Malformed { .. }), "{err}");
    }

    #[test]
    fn tcp_state_numbers_match_the_kernel() {
        assert_eq!(TcpState::from_kernel(1), Some(TcpState::Established));
        assert_eq!(TcpState::from_kernel(10), Some(TcpState::Listen));
        assert_eq!(TcpState::from_kernel(12), Some(TcpState::NewSynRecv));
        assert_eq!(TcpState::from_kernel(0), None);
        assert_eq!(TcpState::from_kernel(13), None);
        let mut states = TcpStates::default();
        states.add(TcpState::TimeWait, 3);
        assert_eq!(states.get(TcpState::TimeWait), 3);
        assert_eq!(states.total(), 3);
    }
}
