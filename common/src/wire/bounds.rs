//! The protocol's limits, and deserializers that enforce them while decoding.
//!
//! Postcard states a list's length first, so a frame that claims more entries than the limit fails at once,
//! before its entries are built, and a 1 MiB frame of tiny samples can never become hundreds of megabytes of
//! decoded structs. The encoding is unchanged.

use serde::de::{Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::marker::PhantomData;

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

/// A list of at most `max` entries; `what` names them in the error. Each bounded field has a small wrapper
/// beside its type that fixes `max` and `what`, for `#[serde(deserialize_with = ...)]`.
pub(super) fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
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

/// At most `MAX_LABELS` labels.
pub(super) fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    d.deserialize_map(BoundedLabels)
}

#[cfg(test)]
mod tests {
    use crate::wire::*;

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
}
