//! Enrollment and renewal messages (ALPN `headroom-enroll/1`) and the pure timing of certificate renewal.
//!
//! An agent without a certificate connects with `ENROLL_ALPN`, pins the collector's CA by fingerprint, and
//! sends one `EnrollMessage::Enroll` frame: its host name, the one-time token and a certificate request made
//! with a key that never leaves the host. The collector answers with one `EnrollReply` frame and closes.
//! Renewal is the same exchange over a connection authenticated with the current certificate:
//! `EnrollMessage::Renew` carries only a request, and the identity and labels come from that certificate.
//! Frames are those of `crate::wire` (4-byte big-endian length, postcard payload).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// ALPN identifier of enrollment and renewal.
pub const ENROLL_ALPN: &[u8] = b"headroom-enroll/1";

/// Version of the enrollment messages; a collector refuses a request of another version with a line that
/// names both.
pub const ENROLL_VERSION: u16 = 1;

/// Largest enrollment frame either side accepts: a request or a certificate with its CA is a few kilobytes.
pub const MAX_ENROLL_FRAME_BYTES: usize = 64 * 1024;

/// A message from the agent on an enrollment connection. Exactly one is sent per connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollMessage {
    Enroll(EnrollRequest),
    Renew(RenewRequest),
}

/// First enrollment of a host.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub version: u16,
    /// The identity asked for; validated by the collector like every host name.
    pub host: String,
    /// The one-time token as the operator gave it to the host.
    pub token: String,
    /// PKCS#10 request, DER, signed with the host's new key.
    pub csr_der: Vec<u8>,
}

/// Renewal by a host that holds a valid certificate (it authenticates the connection).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub version: u16,
    /// PKCS#10 request, DER, signed with the host's key.
    pub csr_der: Vec<u8>,
}

// The token is a secret: a logged request must not reveal it.
impl std::fmt::Debug for EnrollMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnrollMessage::Enroll(request) => f
                .debug_struct("Enroll")
                .field("version", &request.version)
                .field("host", &request.host)
                .field("csr_bytes", &request.csr_der.len())
                .finish_non_exhaustive(),
            EnrollMessage::Renew(request) => f
                .debug_struct("Renew")
                .field("version", &request.version)
                .field("csr_bytes", &request.csr_der.len())
                .finish(),
        }
    }
}

/// The collector's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollReply {
    Issued(Issued),
    Refused(Refusal),
}

/// A signed certificate and what the agent needs beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The host identity written into the certificate.
    pub host: String,
    pub cert_pem: String,
    /// The fleet CA, for `ca.pem` (the agent's trust anchor from now on).
    pub ca_pem: String,
    /// Labels granted by the token, also written into the certificate.
    pub labels: BTreeMap<String, String>,
    /// End of validity, unix seconds.
    pub not_after_s: i64,
}

/// Why the collector refused, and one line for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// One line, naming the fix; never contains the token.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalReason {
    /// No token with this id and secret exists.
    UnknownToken,
    Expired,
    UsedUp,
    /// The request does not parse, or the host name is not valid.
    BadRequest,
    /// Renewal without a certificate, or with a revoked one.
    NotAuthorized,
    /// The collector failed (writing its files, signing); trying later may help.
    Internal,
}

/// Where a certificate is in its life, for the agent's renewal loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalState {
    /// Nothing to do until this unix second.
    NotYet { renew_at_s: i64 },
    /// Two thirds of the lifetime have passed: renew now.
    Due,
    /// Expired this many seconds ago. The certificate cannot authenticate a renewal any more: the host has to
    /// enroll again.
    Expired { expired_for_s: i64 },
}

/// When a certificate valid from `not_before_s` to `not_after_s` should be renewed: once two thirds of its
/// lifetime have passed, which leaves a third (10 days of the default 30) to ride out a collector outage.
pub fn renewal_state(not_before_s: i64, not_after_s: i64, now_s: i64) -> RenewalState {
    if now_s >= not_after_s {
        return RenewalState::Expired {
            expired_for_s: now_s - not_after_s,
        };
    }
    let lifetime_s = (not_after_s - not_before_s).max(0);
    let renew_at_s = not_before_s + lifetime_s * 2 / 3;
    if now_s >= renew_at_s {
        RenewalState::Due
    } else {
        RenewalState::NotYet { renew_at_s }
    }
}

/// The line an agent logs when its certificate expired while it was away from the collector.
pub fn expired_message(cert_path: &str, expired_for_s: i64) -> String {
    format!(
        "certificate {cert_path} expired {} ago while the agent could not reach the collector; it cannot be \
         renewed any more: enroll this host again (headroom-agent enroll --collector HOST:PORT --token TOKEN \
         --ca-fingerprint SHA256:...)",
        describe_seconds(expired_for_s)
    )
}

fn describe_seconds(seconds: i64) -> String {
    match seconds {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3_600 => format!("{} hours", s / 3_600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_payload, encode_frame, FrameDecoder};

    const DAY_S: i64 = 86_400;

    #[test]
    fn renewal_is_due_after_two_thirds_of_the_lifetime() {
        let start = 1_750_000_000;
        let end = start + 30 * DAY_S;
        assert_eq!(
            renewal_state(start, end, start),
            RenewalState::NotYet {
                renew_at_s: start + 20 * DAY_S
            }
        );
        assert_eq!(
            renewal_state(start, end, start + 20 * DAY_S - 1),
            RenewalState::NotYet {
                renew_at_s: start + 20 * DAY_S
            }
        );
        assert_eq!(renewal_state(start, end, start + 20 * DAY_S), RenewalState::Due);
        assert_eq!(renewal_state(start, end, end - 1), RenewalState::Due);
        assert_eq!(
            renewal_state(start, end, end),
            RenewalState::Expired { expired_for_s: 0 }
        );
        assert_eq!(
            renewal_state(start, end, end + 3 * DAY_S),
            RenewalState::Expired {
                expired_for_s: 3 * DAY_S
            }
        );
    }

    #[test]
    fn short_lifetimes_renew_in_seconds() {
        // Tests issue certificates valid for seconds; the same rule must hold at that scale.
        assert_eq!(
            renewal_state(100, 130, 100),
            RenewalState::NotYet { renew_at_s: 120 }
        );
        assert_eq!(renewal_state(100, 130, 121), RenewalState::Due);
    }

    #[test]
    fn expired_message_says_to_enroll_again() {
        let line = expired_message("/var/lib/headroom-agent/agent.pem", 3 * DAY_S);
        assert!(line.contains("expired 3 days ago"), "{line}");
        assert!(line.contains("enroll this host again"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn messages_round_trip_through_frames() {
        let request = EnrollMessage::Enroll(EnrollRequest {
            version: ENROLL_VERSION,
            host: "web-1".to_string(),
            token: "secret-token".to_string(),
            csr_der: vec![1, 2, 3],
        });
        let frame = encode_frame(&request).unwrap();
        let mut decoder = FrameDecoder::new(MAX_ENROLL_FRAME_BYTES);
        decoder.push(&frame);
        let payload = decoder.next_frame().unwrap().unwrap();
        let back: EnrollMessage = decode_payload(&payload, "enroll message").unwrap();
        assert!(back == request);
        let reply = EnrollReply::Refused(Refusal {
            reason: RefusalReason::UsedUp,
            message: "token used up".to_string(),
        });
        let frame = encode_frame(&reply).unwrap();
        let back: EnrollReply = decode_payload(&frame[4..], "enroll reply").unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let request = EnrollMessage::Enroll(EnrollRequest {
            version: ENROLL_VERSION,
            host: "web-1".to_string(),
            token: "hunter2-token".to_string(),
            csr_der: vec![0; 10],
        });
        let text = format!("{request:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("web-1"), "{text}");
    }
}
