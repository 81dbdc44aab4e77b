//! Property tests for everything that decodes bytes a peer sent: the frame decoder, every message type of the
//! streaming and enrollment protocols, and the sessions fed garbage. None may panic, the frame decoder never
//! hands out more than its limit, and what one side encodes the other decodes unchanged.

use headroom_common::enroll::{EnrollMessage, EnrollReply};
use headroom_common::session::{AgentSession, CollectorSession};
use headroom_common::wire::{
    decode_payload, encode_frame, AgentMessage, CollectorMessage, FrameDecoder, GapReport, TimeReply,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Decode `payload` as every message type either side accepts; only errors, never a panic.
fn decode_as_everything(payload: &[u8]) {
    let _ = decode_payload::<AgentMessage>(payload, "agent message");
    let _ = decode_payload::<CollectorMessage>(payload, "collector message");
    let _ = decode_payload::<EnrollMessage>(payload, "enroll message");
    let _ = decode_payload::<EnrollReply>(payload, "enroll reply");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_frame_decoder_never_panics_and_never_yields_more_than_its_limit(
        chunks in vec(vec(any::<u8>(), 0..96), 0..24),
    ) {
        let mut decoder = FrameDecoder::new(256);
        'feed: for chunk in chunks {
            decoder.push(&chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(payload)) => {
                        prop_assert!(payload.len() <= 256);
                        decode_as_everything(&payload);
                    }
                    Ok(None) => break,
                    // An oversized length ends the connection; nothing after it is read.
                    Err(_) => break 'feed,
                }
            }
        }
    }

    #[test]
    fn arbitrary_payloads_decode_as_no_message_without_panicking(payload in vec(any::<u8>(), 0..512)) {
        decode_as_everything(&payload);
    }

    #[test]
    fn sessions_fed_garbage_end_with_an_error_not_a_panic(
        garbage in vec(any::<u8>(), 0..512),
        after_hello in any::<bool>(),
    ) {
        let mut collector = CollectorSession::new("web-1".into());
        if after_hello {
            let hello = headroom_common::wire::Hello {
                protocol_version: headroom_common::wire::PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                instance_id: 1,
                interval_ms: 1000,
                labels: Default::default(),
                capacity: Default::default(),
                facts: Default::default(),
            };
            collector.on_bytes(&AgentSession::new().hello_frame(&hello).unwrap()).unwrap();
            collector.welcome_frame(None).unwrap();
        }
        let _ = collector.on_bytes(&garbage);
        let _ = AgentSession::new().on_bytes(&garbage);
    }

    #[test]
    fn gap_reports_and_time_replies_survive_the_round_trip(
        from_seq in any::<u64>(), span in 0u64..1_000, from_ms in any::<u64>(), reason in 0usize..4,
        id in any::<u32>(), stamps in any::<(u64, u64, u64)>(),
    ) {
        let messages = [
            AgentMessage::Gap(GapReport {
                from_seq,
                to_seq: from_seq.saturating_add(span),
                from_ms,
                to_ms: from_ms.saturating_add(span),
                count: span + 1,
                reason: headroom_common::wire::GapReason::ALL[reason],
            }),
            AgentMessage::TimeReply(TimeReply {
                id,
                collector_sent_ms: stamps.0,
                agent_received_ms: stamps.1,
                agent_sent_ms: stamps.2,
            }),
        ];
        for message in messages {
            let frame = encode_frame(&message).unwrap();
            let mut decoder = FrameDecoder::default();
            decoder.push(&frame);
            let payload = decoder.next_frame().unwrap().unwrap();
            prop_assert_eq!(decode_payload::<AgentMessage>(&payload, "agent message").unwrap(), message);
        }
    }
}
