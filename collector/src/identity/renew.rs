//! Whether an authenticated peer may renew its certificate, decided from its current certificate alone:
//! the new certificate keeps the identity and labels of the old one, so renewal cannot widen what a host is.

use super::revocation::Revocations;
use headroom_common::enroll::{Refusal, RefusalReason};
use std::collections::BTreeMap;

/// What a renewal is granted: the same identity and labels, under the old serial's name in the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalGrant {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub old_serial: String,
}

/// Decides a renewal for the peer certificate `cert_der` (None: the peer presented no certificate). The TLS
/// layer has already checked the chain and validity; this adds the revocation list, which the handshake
/// also checks, because a serial may be revoked between handshake and request.
pub fn authorize_renewal(
    cert_der: Option<&[u8]>,
    revocations: &Revocations,
) -> Result<RenewalGrant, Refusal> {
    let refuse = |message: String| Refusal {
        reason: RefusalReason::NotAuthorized,
        message,
    };
    let cert_der = cert_der.ok_or_else(|| {
        refuse(
            "renewal needs the current certificate; a host without one must enroll with a token".to_string(),
        )
    })?;
    let bad = |error: String| refuse(format!("the presented certificate is unusable: {error}"));
    let host = headroom_common::tls::identity_from_cert(cert_der).map_err(|e| bad(e.to_string()))?;
    let serial = headroom_common::pki::serial_from_cert(cert_der).map_err(|e| bad(e.to_string()))?;
    if revocations.is_revoked(&serial) {
        return Err(refuse(format!(
            "certificate {serial} of {host} is revoked; enroll the host again with a new token"
        )));
    }
    let labels = headroom_common::pki::labels_from_cert(cert_der).map_err(|e| bad(e.to_string()))?;
    Ok(RenewalGrant {
        host,
        labels,
        old_serial: serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::pki::{create_ca, create_csr, generate_key_pem, sign_csr};
    use rustls::pki_types::pem::PemObject;
    use std::time::{Duration, SystemTime};

    #[test]
    fn renewal_keeps_identity_and_labels_and_refuses_revoked_or_missing_certs() {
        let now = SystemTime::now();
        let ca = create_ca("test ca", now, 30).unwrap();
        let key = generate_key_pem().unwrap();
        let csr = create_csr(&key, "web-1").unwrap();
        let labels = BTreeMap::from([("group".to_string(), "web".to_string())]);
        let pem = sign_csr(&ca, &csr, "web-1", &labels, now, Duration::from_secs(3600)).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let revocations = Revocations::load(dir.path()).unwrap();
        let grant = authorize_renewal(Some(&der), &revocations).unwrap();
        assert_eq!(grant.host, "web-1");
        assert_eq!(grant.labels, labels);

        revocations
            .revoke(std::slice::from_ref(&grant.old_serial), None, 1)
            .unwrap();
        let refusal = authorize_renewal(Some(&der), &revocations).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::NotAuthorized);
        assert!(refusal.message.contains("revoked"), "{}", refusal.message);
        assert_eq!(
            authorize_renewal(None, &revocations).unwrap_err().reason,
            RefusalReason::NotAuthorized
        );
    }
}
