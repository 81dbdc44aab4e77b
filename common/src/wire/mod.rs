//! Wire types of the agent ↔ collector protocol, version 2, and their length-prefixed postcard framing.
//!
//! These types are the only definition of what travels between agent and collector. Counters travel raw (as
//! the kernel reports them); the collector derives rates. Field order matters to postcard: new fields are only
//! ever appended, behind a protocol version bump.
//!
//! `bounds.rs` holds the limits and the deserializers that enforce them while decoding, `messages.rs` the
//! session's messages, `sample.rs` one sample's readings and `frame.rs` the frame codec. Everything is
//! re-exported here: callers name `common::wire::X`.

mod bounds;
mod frame;
mod messages;
mod sample;

pub use bounds::{
    is_label_key, MAX_BATCH_SAMPLES, MAX_CORES, MAX_FAILED_FAMILIES, MAX_FRAME_BYTES, MAX_INTERFACES,
    MAX_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_LEN, MAX_LISTENERS,
};
pub use frame::*;
pub use messages::*;
pub use sample::*;

/// Protocol version spoken by this build. Version 2 adds the clock probes (`TimeProbe`, `TimeReply`);
/// version 3 the reconnect spread (`Spread`).
pub const PROTOCOL_VERSION: u16 = 3;

/// Oldest protocol version this build still speaks: a collector serves agents from `MIN_PROTOCOL_VERSION` to
/// `PROTOCOL_VERSION`, and answers each in the lower of its version and ours, so collectors are upgraded first.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// ALPN identifier of the streaming protocol.
pub const ALPN: &[u8] = b"headroom/1";
