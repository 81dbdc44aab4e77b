//! Prometheus remote_write 1.0 messages (`prometheus.WriteRequest` and what it holds), written out with prost
//! derives so no `protoc` runs at build time, and the request body: protobuf, then snappy block compression.
//!
//! Field numbers follow `prompb/remote.proto` and `prompb/types.proto`; only the fields headroom sends are
//! declared (a decoder skips the rest).

use prost::Message;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: labels sorted by name, samples in timestamp order.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a Unix time in milliseconds.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`: type, help and unit of a metric family.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// `MetricType`: 1 counter, 2 gauge.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `MetricMetadata.type` of a gauge.
pub const METRIC_TYPE_GAUGE: i32 = 2;

/// The HTTP body of a remote_write 1.0 request: the protobuf encoding, snappy block-compressed.
pub fn encode_body(request: &WriteRequest) -> Vec<u8> {
    let protobuf = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&protobuf)
        .expect("snappy compresses any input below 4 GiB")
}

/// The inverse of [`encode_body`], for tests and for checking what was sent.
pub fn decode_body(body: &[u8]) -> Result<WriteRequest, String> {
    let protobuf = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(protobuf.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips_and_matches_the_protobuf_wire_format() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 5,
                }],
            }],
            metadata: vec![],
        };
        let body = encode_body(&request);
        assert_eq!(decode_body(&body).unwrap(), request);
        // Hand-encoded per remote.proto: timeseries (field 1, length-delimited) holding a label (field 1) and
        // a sample (field 2: double value = 1.0 as field 1, int64 timestamp = 5 as field 2).
        let expected: Vec<u8> = [
            &[0x0a, 0x1d][..],
            &[0x0a, 0x0e, 0x0a, 0x08],
            b"__name__",
            &[0x12, 0x02],
            b"up",
            &[0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x05],
        ]
        .concat();
        assert_eq!(request.encode_to_vec(), expected);
    }
}
