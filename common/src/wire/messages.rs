//! The messages of a session: what the agent sends, what the collector answers.

use super::bounds::{self, MAX_BATCH_SAMPLES};
use super::sample::Sample;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

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
    /// Protocol 3: how far apart the collector's agents should come back when they lose it.
    Spread(Spread),
}

/// After losing this collector (its restart, its host's failure), wait a random time from 0 to `window_ms`
/// before the first reconnect attempt, so that a whole fleet does not arrive in the same second. The collector
/// sizes the window from how many agents it holds and how many handshakes a second it plans to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spread {
    pub window_ms: u64,
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
    #[serde(deserialize_with = "bounds::labels")]
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
    #[serde(deserialize_with = "bounded_samples")]
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

fn bounded_samples<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Sample>, D::Error> {
    bounds::vec(d, MAX_BATCH_SAMPLES, "samples in a batch")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode_payload;

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
}
