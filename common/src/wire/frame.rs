//! The frame codec: a 4-byte big-endian length, then the postcard payload.

use super::bounds::MAX_FRAME_BYTES;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    let mut frame = Vec::new();
    encode_frame_into(message, &mut frame)?;
    Ok(frame)
}

/// Appends a message's frame to `out` (many frames can share one write); on an error `out` is unchanged.
pub fn encode_frame_into<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let encoded = postcard::to_io(message, &mut *out).map(|_| ());
    let len = out.len() - start - 4;
    let failure = match encoded {
        Err(e) => Some(FrameError::Malformed {
            what: "message",
            detail: e.to_string(),
        }),
        Ok(()) if len > MAX_FRAME_BYTES => Some(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        }),
        Ok(()) => None,
    };
    if let Some(failure) = failure {
        out.truncate(start);
        return Err(failure);
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
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
/// Memory stays bounded: a length prefix over `max` is an error before any of its payload is buffered, the
/// buffer shrinks back to `FRAME_DECODER_KEEP_BYTES` once a large frame has been taken, and it is freed
/// whenever every buffered byte has been taken.
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
        let Some(len) = self.whole_frame()? else {
            return Ok(None);
        };
        let payload = self.buffer[4..4 + len].to_vec();
        self.consume(len);
        Ok(Some(payload))
    }

    /// The next whole frame decoded as a `T` straight from the buffer (no copy of its payload), `Ok(None)` if
    /// more bytes are needed. The frame is consumed whether or not it decodes.
    pub fn next_message<T: DeserializeOwned>(&mut self, what: &'static str) -> Result<Option<T>, FrameError> {
        let Some(len) = self.whole_frame()? else {
            return Ok(None);
        };
        let message = decode_payload(&self.buffer[4..4 + len], what);
        self.consume(len);
        message.map(Some)
    }

    /// The payload length of the frame at the front, if all of it is buffered.
    fn whole_frame(&self) -> Result<Option<usize>, FrameError> {
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
        Ok(Some(len))
    }

    fn consume(&mut self, len: usize) {
        if self.buffer.len() == 4 + len {
            // The common case: a live agent's one frame a second arrives whole. Between frames a connection
            // holds no buffer, which at 20,000 connections is ~20 MB (a frame's ~1 KiB each) for one
            // allocation a frame (issue 12).
            self.buffer = Vec::new();
            return;
        }
        self.buffer.drain(..4 + len);
        // A catch-up batch grows the buffer to its size; a connection that is live again must not keep that
        // for as long as it lasts (thousands of them after a reconnect storm).
        if self.buffer.capacity() > FRAME_DECODER_KEEP_BYTES && self.buffer.len() <= FRAME_DECODER_KEEP_BYTES
        {
            self.buffer.shrink_to(FRAME_DECODER_KEEP_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::wire::*;

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
    fn issue_12_the_decoder_holds_no_buffer_between_whole_frames() {
        let frame = encode_frame(&AgentMessage::Batch(Batch {
            samples: vec![sample(1)],
        }))
        .unwrap();
        let mut decoder = FrameDecoder::default();
        decoder.push(&frame[..10]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert!(decoder.buffer.capacity() > 0, "a partial frame is kept");
        decoder.push(&frame[10..]);
        decoder.push(&frame[..3]);
        assert!(decoder.next_frame().unwrap().is_some());
        assert_eq!(decoder.buffered(), 3, "the next frame's first bytes are kept");
        decoder.push(&frame[3..]);
        assert!(decoder.next_frame().unwrap().is_some());
        assert_eq!(decoder.buffer.capacity(), 0, "nothing buffered, nothing held");
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
        let payload = decoder.next_frame().unwrap().unwrap();
        assert_eq!(decode_payload::<AgentMessage>(&payload, "m").unwrap(), batch);
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

    #[test]
    fn garbage_payload_is_a_malformed_error() {
        let err = decode_payload::<AgentMessage>(&[0xff, 0xff, 0xff], "agent message").unwrap_err();
        assert!(matches!(err, FrameError::Malformed { .. }), "{err}");
    }
}
