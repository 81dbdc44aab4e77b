//! QUIC transport settings of the streaming listener, sized from the protocol's own limits.
//!
//! What one connection can make the collector hold is bounded by its flow-control windows: bytes the agent
//! sent that the connection's task has not read yet (it does not read while a batch is being committed or
//! held back). An agent sends a few hundred bytes a second, and more only while it catches up, so the windows
//! are what decides memory when thousands of agents reconnect with a backlog at once.

use crate::quic::{AckFrequencyConfig, TransportConfig};
use headroom_common::wire::MAX_FRAME_BYTES;
use std::time::Duration;

/// The length prefix in front of every frame (`common::wire::encode_frame`).
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Room past one largest frame, so that the small frames an agent sends behind a full batch (its newest sample
/// as a `Live` message, a gap report, a clock reply, the goodbye) never wait for the window to reopen.
pub const WINDOW_MARGIN_BYTES: usize = 64 * 1024;

/// Receive window of the agent's one stream: a largest frame, its prefix and the margin. An agent can always
/// send a whole frame without waiting for the collector to read, and never more than that ahead of it.
pub const STREAM_RECEIVE_WINDOW_BYTES: u32 =
    (FRAME_PREFIX_BYTES + MAX_FRAME_BYTES + WINDOW_MARGIN_BYTES) as u32;

/// Receive window of the whole connection. An agent may open exactly one stream, so the connection needs no
/// more than that stream does.
pub const CONNECTION_RECEIVE_WINDOW_BYTES: u32 = STREAM_RECEIVE_WINDOW_BYTES;
const _: () = assert!(CONNECTION_RECEIVE_WINDOW_BYTES >= STREAM_RECEIVE_WINDOW_BYTES);

/// Unacknowledged bytes the collector keeps per connection for sending. It sends only welcomes,
/// acknowledgements, clock probes and refusals (tens of bytes each).
pub const SEND_WINDOW_BYTES: u64 = 64 * 1024;

/// How long a connection may stay silent: the agent sends a sample every interval and keep-alives besides.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The streaming listener's transport: one bidirectional stream, no unidirectional streams and no unreliable
/// datagrams (the protocol uses none, and quinn-proto would otherwise buffer up to 1.25 MB of unread datagrams per
/// connection), and the windows above.
pub fn streaming_transport() -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("30 s fits a varint")));
    transport.stream_receive_window(STREAM_RECEIVE_WINDOW_BYTES.into());
    transport.receive_window(CONNECTION_RECEIVE_WINDOW_BYTES.into());
    transport.send_window(SEND_WINDOW_BYTES);
    transport.datagram_receive_buffer_size(None);
    // With segmentation offload quinn-proto keeps a send buffer of ten datagrams (~14 KiB) per connection for
    // the whole connection's life; the collector sends a few small frames a second per agent, never a
    // burst worth batching, so one datagram's buffer (~1.5 KiB) is all a connection needs (issue 12).
    transport.enable_segmentation_offload(false);
    // Every acknowledgement the collector sends is a packet the agent must acknowledge in turn. Left to its
    // default, the agent waits its max_ack_delay (25 ms) for more to acknowledge together, and there never
    // is more: one more wake-up of the agent a sample, on every host. ACK_FREQUENCY with a threshold of 0
    // asks it to acknowledge at once, in the wake-up that received the packet (issue 12). The collector
    // receives as many packets either way; with jemalloc its CPU per sample was no higher with the request
    // in three alternating pairs (bench/RESULTS.md, "ACK_FREQUENCY again").
    let mut ack_frequency = AckFrequencyConfig::default();
    ack_frequency.ack_eliciting_threshold(0u32.into());
    transport.ack_frequency_config(Some(ack_frequency));
    transport
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::{encode_frame, FrameError};

    #[test]
    fn issue_12_the_largest_frame_fits_the_stream_window_with_its_margin() {
        // postcard writes a byte vector as its length (a 3-byte varint at this size) and the bytes, so this
        // payload is exactly the largest one the protocol accepts, and one byte more is refused.
        let largest = encode_frame(&vec![0u8; MAX_FRAME_BYTES - 3]).expect("largest frame encodes");
        assert_eq!(largest.len(), FRAME_PREFIX_BYTES + MAX_FRAME_BYTES);
        assert!(matches!(
            encode_frame(&vec![0u8; MAX_FRAME_BYTES - 2]),
            Err(FrameError::TooLarge { .. })
        ));
        let window = STREAM_RECEIVE_WINDOW_BYTES as usize;
        assert_eq!(window, largest.len() + WINDOW_MARGIN_BYTES);
    }

    #[test]
    fn issue_12_a_connection_is_bounded_to_one_stream_window() {
        // Before issue 12 a connection could hold 2 MiB received and unread, plus 256 KiB to send, plus
        // 1.25 MB of datagrams nobody reads.
        let per_connection = u64::from(CONNECTION_RECEIVE_WINDOW_BYTES) + SEND_WINDOW_BYTES;
        assert!(
            per_connection < (5 << 20) / 4,
            "{per_connection} bytes per connection"
        );
        let text = format!("{:?}", streaming_transport());
        for expected in [
            format!("stream_receive_window: {STREAM_RECEIVE_WINDOW_BYTES}"),
            format!("receive_window: {CONNECTION_RECEIVE_WINDOW_BYTES}"),
            format!("send_window: {SEND_WINDOW_BYTES}"),
            "datagram_receive_buffer_size: None".to_string(),
            "max_concurrent_uni_streams: 0".to_string(),
            "max_concurrent_bidi_streams: 1".to_string(),
        ] {
            assert!(text.contains(&expected), "{expected} not in {text}");
        }
    }

    #[test]
    fn issue_12_agents_are_asked_to_acknowledge_at_once() {
        let text = format!("{:?}", streaming_transport());
        assert!(
            text.contains("ack_frequency_config: Some(AckFrequencyConfig { ack_eliciting_threshold: 0"),
            "{text}"
        );
    }

    #[test]
    fn issue_12_a_connection_keeps_a_send_buffer_of_one_datagram() {
        // quinn-proto sizes each connection's lasting send buffer by the datagrams one segmentation-offload send
        // may carry (ten); without offload it holds one.
        let text = format!("{:?}", streaming_transport());
        assert!(text.contains("enable_segmentation_offload: false"), "{text}");
    }
}
