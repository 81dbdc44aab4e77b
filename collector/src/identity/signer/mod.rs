//! The CA key's only holder: `headroom-collector signer`, a small process that reads `pki/ca.key` and signs
//! agent certificates for the enrollment server, so that a bug in the network-facing `serve` process cannot
//! hand out the key.
//!
//! `serve` starts it as a child on a pair of pipes (the default), or connects to one run by its own unit on a
//! Unix socket (`identity.signer_socket`). Either way the exchange is the same: the signer first sends
//! [`SignerHello`] with the CA certificate, then answers each [`SignRequest`] (a CSR and the enrollment
//! decision already taken: host, labels, lifetime) with a [`SignReply`]. Frames are a 4-byte big-endian length
//! and a postcard body. The signer checks the request on its own ([`check_and_sign`]): a well-formed,
//! self-signed CSR, a valid host name, at most [`MAX_LABELS`] valid labels, a lifetime within
//! `identity.cert_validity`'s bounds; what it signs is always a client-authentication leaf, never a CA.

mod process;

pub use process::{run_signer, Signer, SignerError};

use headroom_common::pki::{sign_csr, verify_csr, CertAndKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

/// Largest frame either side accepts: one CSR with labels fits in a few KiB.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most labels one certificate carries.
pub const MAX_LABELS: usize = 32;
/// Longest `identity.cert_validity`: a year is the most a certificate that is never revoked should live.
pub const CERT_VALIDITY_MAX: Duration = Duration::from_secs(365 * 86_400);

/// The signer's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerHello {
    /// The CA certificate the signer signs with (PEM), which enrollment hands to agents.
    pub ca_pem: String,
}

/// One certificate to sign: the requester's CSR and what the enrollment server decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    pub csr_der: Vec<u8>,
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub validity_s: u64,
}

/// The answer to one [`SignRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignReply {
    Signed { cert_pem: String },
    Refused { message: String },
}

/// Checks a request within the signer's caps and signs it; the refusal is one line for the collector's log.
pub fn check_and_sign(ca: &CertAndKey, request: &SignRequest, now: SystemTime) -> Result<String, String> {
    let validity = Duration::from_secs(request.validity_s);
    if validity.is_zero() || validity > CERT_VALIDITY_MAX {
        return Err(format!(
            "lifetime of {} s is outside 1 s to {} s",
            request.validity_s,
            CERT_VALIDITY_MAX.as_secs()
        ));
    }
    if request.labels.len() > MAX_LABELS {
        return Err(format!(
            "{} labels requested; a certificate carries at most {MAX_LABELS}",
            request.labels.len()
        ));
    }
    verify_csr(&request.csr_der).map_err(|error| error.to_string())?;
    // sign_csr validates the host and every label, takes only the public key from the request and writes a
    // client-auth, non-CA leaf.
    sign_csr(
        ca,
        &request.csr_der,
        &request.host,
        &request.labels,
        now,
        validity,
    )
    .map_err(|e| e.to_string())
}

/// Serves requests from `input` until it ends, answering on `output`; the hello must have been sent.
pub fn serve_requests(
    ca: &CertAndKey,
    input: &mut impl Read,
    output: &mut impl Write,
    now: impl Fn() -> SystemTime,
) -> std::io::Result<()> {
    while let Some(request) = read_frame::<SignRequest>(input)? {
        let reply = match check_and_sign(ca, &request, now()) {
            Ok(cert_pem) => {
                tracing::info!(host = %request.host, "signed an agent certificate");
                SignReply::Signed { cert_pem }
            }
            Err(message) => {
                tracing::warn!(host = %request.host, %message, "signing refused");
                SignReply::Refused { message }
            }
        };
        write_frame(output, &reply)?;
    }
    Ok(())
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(output: &mut impl Write, value: &T) -> std::io::Result<()> {
    let body = postcard::to_stdvec(value).map_err(std::io::Error::other)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "signer frame of {} bytes exceeds {MAX_FRAME_BYTES}",
            body.len()
        )));
    }
    output.write_all(&(body.len() as u32).to_be_bytes())?;
    output.write_all(&body)?;
    output.flush()
}

/// Reads one frame; `None` when the stream ended cleanly before it.
pub fn read_frame<T: DeserializeOwned>(input: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut length = [0u8; 4];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("signer frame of {length} bytes exceeds {MAX_FRAME_BYTES}"),
        ));
    }
    let mut body = vec![0u8; length];
    input.read_exact(&mut body)?;
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::pki::{cert_info, create_ca, create_csr, generate_key_pem, labels_from_cert};
    use rustls::pki_types::pem::PemObject;

    fn request(host: &str) -> SignRequest {
        let key = generate_key_pem().unwrap();
        SignRequest {
            csr_der: create_csr(&key, host).unwrap(),
            host: host.to_string(),
            labels: BTreeMap::from([("group".to_string(), "web".to_string())]),
            validity_s: 3600,
        }
    }

    #[test]
    fn issue_11_the_signer_signs_client_leaves_within_its_caps_only() {
        let ca = create_ca("test ca", SystemTime::now(), 30).unwrap();
        let now = SystemTime::now();
        let pem = check_and_sign(&ca, &request("web-1"), now).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(headroom_common::tls::identity_from_cert(&der).unwrap(), "web-1");
        assert_eq!(labels_from_cert(&der).unwrap()["group"], "web");
        let info = cert_info(&pem).unwrap();
        assert!(info.not_after_s <= crate::identity::unix_s(now) + 3600 + 60);

        let refused = |request: SignRequest| check_and_sign(&ca, &request, now).unwrap_err();
        assert!(refused(SignRequest {
            validity_s: 0,
            ..request("web-1")
        })
        .contains("lifetime"));
        assert!(refused(SignRequest {
            validity_s: 366 * 86_400,
            ..request("web-1")
        })
        .contains("lifetime"));
        let many: BTreeMap<String, String> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(refused(SignRequest {
            labels: many,
            ..request("web-1")
        })
        .contains("labels"));
        let mut garbage = request("web-1");
        garbage.csr_der.truncate(20);
        refused(garbage);
        let mut tampered = request("web-1");
        let last = tampered.csr_der.len() - 1;
        tampered.csr_der[last] ^= 0xff;
        refused(tampered);
        refused(SignRequest {
            host: "Not A Host".to_string(),
            ..request("web-1")
        });
        let bad_label = BTreeMap::from([("bad key".to_string(), "v".to_string())]);
        refused(SignRequest {
            labels: bad_label,
            ..request("web-1")
        });
    }

    #[test]
    fn issue_11_frames_round_trip_and_oversized_ones_are_refused() {
        let ca = create_ca("test ca", SystemTime::now(), 30).unwrap();
        let mut input = Vec::new();
        write_frame(&mut input, &request("web-1")).unwrap();
        write_frame(
            &mut input,
            &SignRequest {
                validity_s: 0,
                ..request("web-2")
            },
        )
        .unwrap();
        let mut output = Vec::new();
        serve_requests(&ca, &mut input.as_slice(), &mut output, SystemTime::now).unwrap();
        let mut replies = output.as_slice();
        assert!(matches!(
            read_frame::<SignReply>(&mut replies).unwrap(),
            Some(SignReply::Signed { .. })
        ));
        assert!(matches!(
            read_frame::<SignReply>(&mut replies).unwrap(),
            Some(SignReply::Refused { .. })
        ));
        assert_eq!(read_frame::<SignReply>(&mut replies).unwrap(), None);
        let huge = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(read_frame::<SignRequest>(&mut huge.as_slice()).is_err());
        // A frame cut short is an error, not a request.
        let cut = &input[..10];
        assert!(read_frame::<SignRequest>(&mut &cut[..]).is_err());
    }
}
