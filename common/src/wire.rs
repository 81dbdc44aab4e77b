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

/// Longest label key.
pub const MAX_LABEL_KEY_LEN: usize = 63;

/// Most entries of `Sample::failed` (there are fewer families than this).
pub const MAX_FAILED_FAMILIES: usize = 32;

/// The one character set of label keys, wherever a label comes from (agent config, hello, enrollment
/// token, certificate): 1 to 63 of `a-z`, `0-9` and `_`. Keys become column values, Prometheus label names
/// and SAN URIs, and one rule keeps a key valid in all of them.
pub fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_LABEL_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

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
    /// Why. Travels as its name (a string, as in the first release); a name outside the enum fails the
    /// frame, so an agent cannot store arbitrary text as a reason.
    pub reason: GapReason,
}

/// Why samples are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// The spool reached its cap and its oldest samples were deleted.
    SpoolFull,
    /// The spool's files were damaged and these samples could not be read back.
    Corrupt,
    /// The spool could not be written (a full or failing disk) and the in-memory queue that stands in for it
    /// was full too.
    WriteFailed,
    /// An in-memory backlog (no spool) was full and dropped its oldest samples.
    OutboxFull,
}

impl GapReason {
    pub const ALL: [GapReason; 4] = [
        GapReason::SpoolFull,
        GapReason::Corrupt,
        GapReason::WriteFailed,
        GapReason::OutboxFull,
    ];

    /// The name on the wire, in the database and in views.
    pub fn name(self) -> &'static str {
        match self {
            GapReason::SpoolFull => "spool_full",
            GapReason::Corrupt => "corrupt",
            GapReason::WriteFailed => "spool_write_failed",
            GapReason::OutboxFull => "outbox_full",
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.name()
    }

    pub fn from_name(name: &str) -> Option<GapReason> {
        GapReason::ALL.into_iter().find(|reason| reason.name() == name)
    }
}

impl std::fmt::Display for GapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for GapReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for GapReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<GapReason, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = GapReason;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a gap reason (spool_full, corrupt, spool_write_failed or outbox_full)")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<GapReason, E> {
                GapReason::from_name(name).ok_or_else(|| E::custom("unknown gap reason"))
            }
        }
        deserializer.deserialize_str(Name)
    }
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
    #[serde(deserialize_with = "bounded::labels")]
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
    #[serde(deserialize_with = "bounded::samples")]
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
    #[serde(deserialize_with = "bounded::interfaces")]
    pub network: Vec<InterfaceCounters>,
    pub sockets: Option<SocketSample>,
    /// Families that failed to read this tick; the rest of the sample is intact.
    #[serde(deserialize_with = "bounded::families")]
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
    /// Every tick counted, busy or not. Saturating: the values come from agents, and absurd ones must
    /// not overflow (a panic in ingest, or a wrapped total in release builds).
    pub fn total(&self) -> u64 {
        self.busy().saturating_add(self.idle).saturating_add(self.iowait)
    }

    /// Ticks spent doing work (iowait counts as idle: the CPU was free to run something else).
    pub fn busy(&self) -> u64 {
        [self.nice, self.system, self.irq, self.softirq, self.steal]
            .into_iter()
            .fold(self.user, u64::saturating_add)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    pub total: CpuTimes,
    #[serde(deserialize_with = "bounded::cores")]
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
    #[serde(deserialize_with = "bounded::listeners")]
    pub listeners: Vec<Listener>,
    pub sockstat: Option<Sockstat>,
    pub tcp: Option<TcpCounters>,
    pub conntrack: Option<Conntrack>,
    pub ephemeral_ports: Option<PortRange>,
}

/// Deserializers that check a list's length while decoding, before its entries are built: postcard states
/// the length first, so a frame that claims more entries than the limit fails at once, and a 1 MiB frame of
/// tiny samples can never become hundreds of megabytes of decoded structs. The encoding is unchanged.
mod bounded {
    use super::*;
    use serde::de::{Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use std::marker::PhantomData;

    struct BoundedVec<T> {
        max: usize,
        what: &'static str,
        entries: PhantomData<T>,
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVec<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "at most {} {}", self.max, self.what)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let claimed = seq.size_hint().unwrap_or(0);
            if claimed > self.max {
                return Err(A::Error::invalid_length(claimed, &self));
            }
            let mut entries = Vec::with_capacity(claimed);
            while let Some(entry) = seq.next_element()? {
                if entries.len() == self.max {
                    return Err(A::Error::invalid_length(self.max + 1, &self));
                }
                entries.push(entry);
            }
            Ok(entries)
        }
    }

    fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
        max: usize,
        what: &'static str,
    ) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(BoundedVec {
            max,
            what,
            entries: PhantomData,
        })
    }

    pub fn samples<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Sample>, D::Error> {
        vec(d, MAX_BATCH_SAMPLES, "samples in a batch")
    }

    pub fn interfaces<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<InterfaceCounters>, D::Error> {
        vec(d, MAX_INTERFACES, "network interfaces")
    }

    pub fn families<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Family>, D::Error> {
        vec(d, MAX_FAILED_FAMILIES, "failed families")
    }

    pub fn cores<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CpuTimes>, D::Error> {
        vec(d, MAX_CORES, "per-core CPU entries")
    }

    pub fn listeners<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listener>, D::Error> {
        vec(d, MAX_LISTENERS, "listening ports")
    }

    struct BoundedLabels;

    impl<'de> Visitor<'de> for BoundedLabels {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "at most {MAX_LABELS} labels")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let claimed = map.size_hint().unwrap_or(0);
            if claimed > MAX_LABELS {
                return Err(A::Error::invalid_length(claimed, &self));
            }
            let mut labels = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if labels.len() == MAX_LABELS {
                    return Err(A::Error::invalid_length(MAX_LABELS + 1, &self));
                }
                labels.insert(key, value);
            }
            Ok(labels)
        }
    }

    pub fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        d.deserialize_map(BoundedLabels)
    }
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

/// Buffer capacity a `FrameDecoder` keeps between frames: a few live samples' worth.
pub const FRAME_DECODER_KEEP_BYTES: usize = 16 * 1024;

/// Splits a byte stream into frame payloads. Bytes go in with `push`; whole payloads come out of `next_frame`.
///
/// Memory stays bounded: a length prefix over `max` is an error before any of its payload is buffered, and
/// the buffer shrinks back to `FRAME_DECODER_KEEP_BYTES` once a large frame has been taken.
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
        // A catch-up batch grows the buffer to its size; a connection that is live again must not keep that
        // for as long as it lasts (thousands of them after a reconnect storm).
        if self.buffer.capacity() > FRAME_DECODER_KEEP_BYTES && self.buffer.len() <= FRAME_DECODER_KEEP_BYTES
        {
            self.buffer.shrink_to(FRAME_DECODER_KEEP_BYTES);
        }
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
    fn issue_12_the_decoder_gives_back_a_large_frames_buffer() {
        let batch = AgentMessage::Batch(Batch {
            samples: (1..=400).map(sample).collect(),
        });
        let large = encode_frame(&batch).unwrap();
        assert!(large.len() > FRAME_DECODER_KEEP_BYTES, "{} bytes", large.len());
        let small = encode_frame(&AgentMessage::Goodbye).unwrap();
        let mut decoder = FrameDecoder::default();
        decoder.push(&large);
        decoder.push(&small[..2]);
        assert!(decoder.buffer.capacity() >= large.len());
        assert_eq!(
            decode_payload::<AgentMessage>(&decoder.next_frame().unwrap().unwrap(), "m").unwrap(),
            batch
        );
        assert!(decoder.buffer.capacity() <= FRAME_DECODER_KEEP_BYTES);
        // What followed the large frame is kept.
        decoder.push(&small[2..]);
        let goodbye = decoder.next_frame().unwrap().unwrap();
        assert_eq!(
            decode_payload::<AgentMessage>(&goodbye, "m").unwrap(),
            AgentMessage::Goodbye
        );
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

    /// Issue 11: a batch claiming more samples than the limit fails while decoding, before the samples are
    /// built; so do over-long lists inside a sample and a hello with too many labels.
    #[test]
    fn issue_11_list_lengths_are_checked_while_decoding() {
        let empty = Sample::default();
        let over = AgentMessage::Batch(Batch {
            samples: vec![empty.clone(); MAX_BATCH_SAMPLES + 1],
        });
        let payload = postcard::to_stdvec(&over).unwrap();
        let error = decode_payload::<AgentMessage>(&payload, "agent message").unwrap_err();
        assert!(matches!(error, FrameError::Malformed { .. }), "{error}");
        let at_limit = AgentMessage::Batch(Batch {
            samples: vec![empty.clone(); MAX_BATCH_SAMPLES],
        });
        let payload = postcard::to_stdvec(&at_limit).unwrap();
        assert_eq!(
            decode_payload::<AgentMessage>(&payload, "agent message").unwrap(),
            at_limit
        );

        // A length prefix far beyond what follows is refused from the prefix alone.
        let mut forged = postcard::to_stdvec(&AgentMessage::Batch(Batch::default())).unwrap();
        forged.truncate(1);
        forged.extend_from_slice(&[0xff, 0xff, 0x0f]);
        assert!(decode_payload::<AgentMessage>(&forged, "agent message").is_err());

        let mut failed = empty.clone();
        failed.failed = vec![Family::Cpu; MAX_FAILED_FAMILIES + 1];
        let payload = postcard::to_stdvec(&AgentMessage::Live(failed)).unwrap();
        assert!(decode_payload::<AgentMessage>(&payload, "agent message").is_err());
        let mut interfaces = empty.clone();
        interfaces.network = vec![InterfaceCounters::default(); MAX_INTERFACES + 1];
        let payload = postcard::to_stdvec(&AgentMessage::Live(interfaces)).unwrap();
        assert!(decode_payload::<AgentMessage>(&payload, "agent message").is_err());
        let mut listeners = empty;
        listeners.sockets = Some(SocketSample {
            listeners: vec![Listener::default(); MAX_LISTENERS + 1],
            ..Default::default()
        });
        let payload = postcard::to_stdvec(&AgentMessage::Live(listeners)).unwrap();
        assert!(decode_payload::<AgentMessage>(&payload, "agent message").is_err());
    }

    #[test]
    fn gap_reasons_travel_as_their_names_and_unknown_ones_fail() {
        let gap = GapReport {
            from_seq: 1,
            to_seq: 2,
            from_ms: 3,
            to_ms: 4,
            count: 2,
            reason: GapReason::WriteFailed,
        };
        let payload = postcard::to_stdvec(&gap).unwrap();
        assert!(payload.windows(18).any(|w| w == b"spool_write_failed"));
        assert_eq!(decode_payload::<GapReport>(&payload, "gap").unwrap(), gap);
        let mut forged = payload.clone();
        let at = forged
            .windows(18)
            .position(|w| w == b"spool_write_failed")
            .unwrap();
        forged[at] = b'x';
        assert!(decode_payload::<GapReport>(&forged, "gap").is_err());
    }

    #[test]
    fn garbage_payload_is_a_malformed_error() {
        let err = decode_payload::<AgentMessage>(&[0xff, 0xff, 0xff], "agent message").unwrap_err();
        assert!(matches!(err, FrameError::Malformed { .. }), "{err}");
    }

    /// Issue 11: counters from agent data never overflow the sums.
    #[test]
    fn issue_11_cpu_totals_saturate() {
        let times = CpuTimes {
            user: u64::MAX,
            idle: u64::MAX,
            steal: 5,
            ..Default::default()
        };
        assert_eq!(times.busy(), u64::MAX);
        assert_eq!(times.total(), u64::MAX);
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
