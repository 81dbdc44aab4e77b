//! The spool's record format: a small header with a checksum, then the postcard-encoded sample.
//!
//! A record is `magic (2 bytes) | payload length (u32 LE) | CRC-32 (u32 LE) | payload`. The CRC covers the
//! length bytes and the payload, so a flipped bit in either is caught. The magic lets a scan skip quickly past
//! garbage (zero-filled blocks after a power loss, a bad sector) to the next record without computing a CRC at
//! every byte offset. The checksum is CRC-32/ISO-HDLC (the zlib and Ethernet one), computed by `crc32fast`.

use headroom_common::wire::{decode_payload, encode_frame, Sample, MAX_FRAME_BYTES};

/// First two bytes of every record; neither is ASCII, so interface names in payloads rarely look like one.
pub const MAGIC: [u8; 2] = [0xC5, 0x7E];

/// Magic, length and CRC.
pub const HEADER_BYTES: usize = 10;

/// Longest payload a record may carry: the largest frame the protocol sends, since a sample that cannot be
/// sent is not worth keeping.
pub const MAX_PAYLOAD_BYTES: usize = MAX_FRAME_BYTES;

/// What lies at an offset of a segment.
///
/// Returned once per record and consumed at once, never stored, so the size of the `Record` variant costs
/// nothing that boxing the sample (an allocation per record) would save.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// A whole, valid record of `len_bytes` bytes (header included).
    Record { sample: Sample, len_bytes: usize },
    /// The bytes run out before the record does: a write cut short at the end of the file.
    Incomplete,
    /// Not a record: wrong magic, impossible length, checksum mismatch or a payload that does not decode.
    Invalid,
}

/// One record ready to append, or why the sample cannot be spooled.
pub fn encode_record(sample: &Sample) -> Result<Vec<u8>, String> {
    // encode_frame is the single place samples are turned into postcard; it prefixes a 4-byte length.
    let frame = encode_frame(sample).map_err(|e| e.to_string())?;
    let payload = &frame[4..];
    let len = (payload.len() as u32).to_le_bytes();
    let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&len);
    record.extend_from_slice(&record_crc(&len, payload).to_le_bytes());
    record.extend_from_slice(payload);
    Ok(record)
}

/// The record at the start of `bytes`.
pub fn parse_record(bytes: &[u8]) -> Parsed {
    match parse_header(bytes) {
        Header::Invalid => Parsed::Invalid,
        Header::Incomplete => Parsed::Incomplete,
        Header::Valid { payload_bytes, crc } => {
            let end = HEADER_BYTES + payload_bytes;
            if bytes.len() < end {
                return Parsed::Incomplete;
            }
            parse_payload(&bytes[2..6], crc, &bytes[HEADER_BYTES..end])
        }
    }
}

/// A record header read on its own, before its payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Valid { payload_bytes: usize, crc: u32 },
    Incomplete,
    Invalid,
}

pub fn parse_header(bytes: &[u8]) -> Header {
    let magic_seen = bytes.len().min(2);
    if bytes[..magic_seen] != MAGIC[..magic_seen] {
        return Header::Invalid;
    }
    if bytes.len() < HEADER_BYTES {
        return Header::Incomplete;
    }
    let payload_bytes = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
    // An empty payload cannot be a sample (postcard needs at least the seq), so zero is as wrong as too large.
    if payload_bytes == 0 || payload_bytes > MAX_PAYLOAD_BYTES {
        return Header::Invalid;
    }
    let crc = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    Header::Valid { payload_bytes, crc }
}

/// Check and decode a payload whose header (length bytes `len_le`, checksum `crc`) has been read.
pub fn parse_payload(len_le: &[u8], crc: u32, payload: &[u8]) -> Parsed {
    if record_crc(len_le, payload) != crc {
        return Parsed::Invalid;
    }
    match decode_payload::<Sample>(payload, "spooled sample") {
        Ok(sample) => Parsed::Record {
            sample,
            len_bytes: HEADER_BYTES + payload.len(),
        },
        Err(_) => Parsed::Invalid,
    }
}

/// The offset of the first whole, valid record at or after `from` whose seq is above `after_seq`, scanning
/// byte by byte. Only offsets that start with the magic cost a checksum, so a scan is linear in practice.
pub fn find_next_record(bytes: &[u8], from: usize, after_seq: Option<u64>) -> Option<usize> {
    let mut offset = from;
    while offset + HEADER_BYTES <= bytes.len() {
        let found = bytes[offset..].windows(2).position(|pair| pair == MAGIC)?;
        offset += found;
        if let Parsed::Record { sample, .. } = parse_record(&bytes[offset..]) {
            if after_seq.is_none_or(|after| sample.seq > after) {
                return Some(offset);
            }
        }
        offset += 1;
    }
    None
}

fn record_crc(len_le: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_le);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Sample {
        Sample {
            seq,
            timestamp_ms: 1_700_000_000_000 + seq * 1000,
            ..Default::default()
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC over "123456789".
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    /// A record written by the spool before its checksum moved to crc32fast (the table-driven loop it had
    /// until then): the on-disk format is unchanged, so spools written by older agents still read.
    #[test]
    fn records_written_before_crc32fast_still_read() {
        const OLD_RECORD_HEX: &str = "c57e0d000000df0240e32a80b883a1f732000000000000";
        let bytes: Vec<u8> = (0..OLD_RECORD_HEX.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&OLD_RECORD_HEX[i..i + 2], 16).unwrap())
            .collect();
        let expected = Sample {
            seq: 42,
            timestamp_ms: 1_750_000_000_000,
            ..Default::default()
        };
        assert_eq!(encode_record(&expected).unwrap(), bytes);
        match parse_record(&bytes) {
            Parsed::Record { sample, .. } => assert_eq!(sample, expected),
            other => panic!("old record did not parse: {other:?}"),
        }
    }

    #[test]
    fn a_record_parses_back_and_every_flipped_bit_is_caught() {
        let record = encode_record(&sample(7)).unwrap();
        match parse_record(&record) {
            Parsed::Record {
                sample: got,
                len_bytes,
            } => {
                assert_eq!(got, sample(7));
                assert_eq!(len_bytes, record.len());
            }
            other => panic!("expected a record, got {other:?}"),
        }
        for index in 0..record.len() {
            for bit in 0..8 {
                let mut damaged = record.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    !matches!(parse_record(&damaged), Parsed::Record { .. }),
                    "flipping bit {bit} of byte {index} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_cut_record_is_incomplete_not_invalid() {
        let record = encode_record(&sample(3)).unwrap();
        for cut in 1..record.len() {
            assert!(
                matches!(parse_record(&record[..cut]), Parsed::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_scan_skips_garbage_and_old_sequence_numbers() {
        let mut bytes = vec![0u8; 37];
        bytes.extend_from_slice(&MAGIC); // a stray magic that is not a record
        bytes.extend_from_slice(&[0xFF; 20]);
        let first = bytes.len();
        bytes.extend_from_slice(&encode_record(&sample(1)).unwrap());
        let second = bytes.len();
        bytes.extend_from_slice(&encode_record(&sample(2)).unwrap());
        assert_eq!(find_next_record(&bytes, 0, None), Some(first));
        assert_eq!(find_next_record(&bytes, 0, Some(1)), Some(second));
        assert_eq!(find_next_record(&bytes, first + 1, None), Some(second));
        assert_eq!(find_next_record(&bytes, 0, Some(2)), None);
    }
}
