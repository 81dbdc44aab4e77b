//! Whether an authenticated peer may renew its certificate, decided from its current certificate alone:
//! the new certificate keeps the identity and labels of the old one, so renewal cannot widen what a host is.

use super::revocation::Revocations;
use headroom_common::enroll::{renewal_state, Refusal, RefusalReason, RenewalState};
use std::collections::BTreeMap;

/// What a renewal is granted: the same identity and labels, under the old serial's name in the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalGrant {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub old_serial: String,
}

/// How early, before the agent's own renewal point, a request is still accepted: agents and collector
/// clocks differ a little, and a refused agent only retries much later.
fn renewal_clock_allowance_s(lifetime_s: i64) -> i64 {
    (lifetime_s / 30).min(3600)
}

/// Decides a renewal for the peer certificate `cert_der` (None: the peer presented no certificate) at
/// `now_s`. The TLS layer has already checked the chain and validity; this adds the revocation list, which
/// the handshake also checks, because a serial may be revoked between handshake and request, and the
/// renewal window: a certificate renews only once two thirds of its lifetime have passed (as the agent
/// does), so a stolen key cannot stock up on fresh certificates.
pub fn authorize_renewal(
    cert_der: Option<&[u8]>,
    revocations: &Revocations,
    now_s: i64,
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
    let info = headroom_common::pki::cert_info_der(cert_der).map_err(|e| bad(e.to_string()))?;
    let lifetime_s = (info.not_after_s - info.not_before_s).max(0);
    if let RenewalState::NotYet { renew_at_s } = renewal_state(
        info.not_before_s,
        info.not_after_s,
        now_s + renewal_clock_allowance_s(lifetime_s),
    ) {
        return Err(refuse(format!(
            "certificate {serial} of {host} is not due for renewal until unix time {renew_at_s} (two thirds \
             of its lifetime); the agent renews on its own then"
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
        let due_s = crate::identity::unix_s(now) + 2400;
        let grant = authorize_renewal(Some(&der), &revocations, due_s).unwrap();
        assert_eq!(grant.host, "web-1");
        assert_eq!(grant.labels, labels);

        revocations
            .revoke(std::slice::from_ref(&grant.old_serial), None, 1)
            .unwrap();
        let refusal = authorize_renewal(Some(&der), &revocations, due_s).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::NotAuthorized);
        assert!(refusal.message.contains("revoked"), "{}", refusal.message);
        assert_eq!(
            authorize_renewal(None, &revocations, due_s).unwrap_err().reason,
            RefusalReason::NotAuthorized
        );
    }

    /// Issue 11: renewal only in the renewal window (two thirds of the lifetime, less a small clock
    /// allowance), so one certificate cannot be turned into many.
    #[test]
    fn issue_11_renewal_only_in_the_renewal_window() {
        let now = SystemTime::now();
        let now_s = crate::identity::unix_s(now);
        let ca = create_ca("test ca", now, 30).unwrap();
        let key = generate_key_pem().unwrap();
        let csr = create_csr(&key, "web-1").unwrap();
        let pem = sign_csr(
            &ca,
            &csr,
            "web-1",
            &BTreeMap::new(),
            now,
            Duration::from_secs(3000),
        )
        .unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let revocations = Revocations::load(dir.path()).unwrap();
        let refusal = authorize_renewal(Some(&der), &revocations, now_s).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::NotAuthorized);
        assert!(
            refusal.message.contains("not due for renewal"),
            "{}",
            refusal.message
        );
        // Backdated by 300 s, so the lifetime is 3300 s and renewal is due 2200 s after not-before, 1900 s
        // from now; the clock allowance is 110 s.
        assert!(authorize_renewal(Some(&der), &revocations, now_s + 1700).is_err());
        assert!(authorize_renewal(Some(&der), &revocations, now_s + 1800).is_ok());
    }
}
