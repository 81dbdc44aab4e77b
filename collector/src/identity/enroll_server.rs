//! Serves one enrollment or renewal connection (ALPN `headroom-enroll/1`): read one request, decide, sign,
//! answer, close.
//!
//! `decide` holds the rules and touches only the identity files; `handle_enrollment` moves its frames over
//! QUIC. Attempts are logged with the peer address and the token id at most, never the token.

use super::registry::{CertRecord, IssuedBy, Registry};
use super::renew::authorize_renewal;
use super::revocation::Revocations;
use super::tokens::{TokenFile, TokenRefusal};
use super::unix_s;
use headroom_common::enroll::{
    EnrollMessage, EnrollReply, Issued, Refusal, RefusalReason, ENROLL_VERSION, MAX_ENROLL_FRAME_BYTES,
};
use headroom_common::pki::{cert_info, sign_csr, CertAndKey};
use headroom_common::wire::{decode_payload, encode_frame, FrameDecoder};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// Default lifetime of an agent certificate.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

/// How long an enrolling client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What enrollment needs: the CA to sign with and the identity files.
pub struct EnrollContext {
    pub ca: CertAndKey,
    pub tokens: TokenFile,
    pub registry: Registry,
    pub revocations: Revocations,
    /// Lifetime of issued certificates.
    pub validity: Duration,
}

impl EnrollContext {
    /// The context for the pki directory `pki_dir` (ca.pem, ca.key, tokens.json, certs.json), sharing
    /// `revocations` with the TLS verifier and ingest.
    pub fn load(
        pki_dir: &Path,
        revocations: Revocations,
        validity: Duration,
    ) -> Result<EnrollContext, crate::pki_cli::PkiCommandError> {
        Ok(EnrollContext {
            ca: crate::pki_cli::load_ca(pki_dir)?,
            tokens: TokenFile::in_dir(pki_dir),
            registry: Registry::in_dir(pki_dir),
            revocations,
            validity,
        })
    }
}

/// Decides one request. `peer_cert` is the client certificate of the connection (DER), if any.
pub fn decide(
    message: EnrollMessage,
    peer_cert: Option<&[u8]>,
    peer: SocketAddr,
    ctx: &EnrollContext,
    now: SystemTime,
) -> EnrollReply {
    let now_s = unix_s(now);
    let (host, labels, csr_der, issued_by) = match message {
        EnrollMessage::Enroll(request) => {
            if request.version != ENROLL_VERSION {
                return refused(
                    RefusalReason::BadRequest,
                    format!(
                        "enrollment version {} is not supported; this collector speaks version {ENROLL_VERSION} \
                         (use agent and collector of the same release)",
                        request.version
                    ),
                );
            }
            if let Err(error) = headroom_common::pki::validate_host_name(&request.host) {
                warn!(%peer, %error, "enrollment refused: bad host name");
                return refused(RefusalReason::BadRequest, error.to_string());
            }
            // A request that cannot be signed must not spend a use of the token.
            if let Err(error) = headroom_common::pki::verify_csr(&request.csr_der) {
                warn!(%peer, host = %request.host, %error, "enrollment refused: bad certificate request");
                return refused(RefusalReason::BadRequest, error.to_string());
            }
            let token_id = request
                .token
                .split_once('.')
                .map_or("?", |(id, _)| id)
                .to_string();
            let labels = match ctx.tokens.consume(&request.token, now_s) {
                Ok(Ok(labels)) => labels,
                Ok(Err(refusal)) => {
                    let reason = match refusal {
                        TokenRefusal::Unknown => RefusalReason::UnknownToken,
                        TokenRefusal::Expired { .. } => RefusalReason::Expired,
                        TokenRefusal::UsedUp { .. } => RefusalReason::UsedUp,
                    };
                    // An unknown token's id is whatever the client sent; it is not logged, only the reason.
                    let logged_id = if reason == RefusalReason::UnknownToken {
                        "-"
                    } else {
                        &token_id
                    };
                    warn!(%peer, host = %request.host, token_id = logged_id, ?reason, "enrollment refused");
                    return refused(reason, refusal.to_string());
                }
                Err(error) => {
                    warn!(%peer, %error, "enrollment failed: token file");
                    return internal();
                }
            };
            info!(%peer, host = %request.host, %token_id, "enrollment token accepted");
            (request.host, labels, request.csr_der, IssuedBy::Enroll)
        }
        EnrollMessage::Renew(request) => {
            if request.version != ENROLL_VERSION {
                return refused(
                    RefusalReason::BadRequest,
                    format!(
                        "renewal version {} is not supported; this collector speaks version {ENROLL_VERSION}",
                        request.version
                    ),
                );
            }
            let grant = match authorize_renewal(peer_cert, &ctx.revocations) {
                Ok(grant) => grant,
                Err(refusal) => {
                    warn!(%peer, reason = %refusal.message, "renewal refused");
                    return EnrollReply::Refused(refusal);
                }
            };
            info!(%peer, host = %grant.host, old_serial = %grant.old_serial, "renewing certificate");
            (grant.host, grant.labels, request.csr_der, IssuedBy::Renew)
        }
    };
    let cert_pem = match sign_csr(&ctx.ca, &csr_der, &host, &labels, now, ctx.validity) {
        Ok(pem) => pem,
        Err(error) => {
            warn!(%peer, %host, %error, "certificate request refused");
            return refused(RefusalReason::BadRequest, error.to_string());
        }
    };
    let info = match cert_info(&cert_pem) {
        Ok(info) => info,
        Err(_) => return internal(),
    };
    let record = CertRecord {
        host: host.clone(),
        serial: info.serial_hex.clone(),
        labels: labels.clone(),
        issued_at_s: now_s,
        not_after_s: info.not_after_s,
        issued_by,
        last_seen_s: None,
    };
    if let Err(error) = ctx.registry.record_issued(record) {
        // A certificate that is not in the registry could not be revoked by host name; refuse it.
        warn!(%peer, %host, %error, "cannot record the issued certificate");
        return internal();
    }
    info!(%peer, %host, serial = %info.serial_hex, not_after_s = info.not_after_s, ?issued_by, "certificate issued");
    EnrollReply::Issued(Issued {
        host,
        cert_pem,
        ca_pem: ctx.ca.cert_pem.clone(),
        labels,
        not_after_s: info.not_after_s,
    })
}

fn refused(reason: RefusalReason, message: String) -> EnrollReply {
    EnrollReply::Refused(Refusal { reason, message })
}

/// The details of an internal failure go to the collector's log, not to the agent.
fn internal() -> EnrollReply {
    refused(
        RefusalReason::Internal,
        "the collector could not complete the request (see its log); try again later".to_string(),
    )
}

/// The peer's leaf certificate (DER), if it presented one.
pub fn peer_cert_der(connection: &quinn::Connection) -> Option<Vec<u8>> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    chain.first().map(|cert| cert.to_vec())
}

/// Handles one connection that negotiated `ENROLL_ALPN`: one request, one reply, then close.
pub async fn handle_enrollment(connection: quinn::Connection, ctx: &EnrollContext) {
    let peer = connection.remote_address();
    let (mut send, mut recv) = match tokio::time::timeout(REQUEST_TIMEOUT, connection.accept_bi()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            info!(%peer, %error, "enrollment connection ended before its request");
            return;
        }
        Err(_) => {
            warn!(%peer, "no enrollment request within {REQUEST_TIMEOUT:?}; closing");
            connection.close(1u32.into(), b"no request");
            return;
        }
    };
    let message = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut recv)).await {
        Ok(Ok(message)) => message,
        Ok(Err(reason)) => {
            warn!(%peer, %reason, "enrollment request refused");
            let reply = refused(RefusalReason::BadRequest, reason);
            if let Ok(frame) = encode_frame(&reply) {
                let _ = send.write_all(&frame).await;
                let _ = send.finish();
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
            return;
        }
        Err(_) => {
            warn!(%peer, "enrollment request incomplete after {REQUEST_TIMEOUT:?}; closing");
            connection.close(1u32.into(), b"request timeout");
            return;
        }
    };
    let peer_cert = peer_cert_der(&connection);
    let reply = decide(message, peer_cert.as_deref(), peer, ctx, SystemTime::now());
    match encode_frame(&reply) {
        Ok(frame) => {
            let _ = send.write_all(&frame).await;
            let _ = send.finish();
        }
        Err(error) => warn!(%peer, %error, "cannot encode the enrollment reply"),
    }
    // The agent closes once it has the reply; closing first could discard the reply in flight.
    let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
}

/// Reads exactly one request frame; the request is small, so anything over the limit is refused unread.
async fn read_request(recv: &mut quinn::RecvStream) -> Result<EnrollMessage, String> {
    let mut decoder = FrameDecoder::new(MAX_ENROLL_FRAME_BYTES);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match decoder.next_frame() {
            Ok(Some(payload)) => {
                return decode_payload::<EnrollMessage>(&payload, "enrollment request")
                    .map_err(|e| e.to_string())
            }
            Ok(None) => {}
            Err(error) => return Err(error.to_string()),
        }
        match recv.read(&mut buffer).await {
            Ok(Some(n)) => decoder.push(&buffer[..n]),
            Ok(None) => return Err("the stream ended before a whole request arrived".to_string()),
            Err(error) => return Err(format!("read failed: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::enroll::{EnrollRequest, RenewRequest};
    use headroom_common::pki::{create_ca, create_csr, generate_key_pem, labels_from_cert};
    use rustls::pki_types::pem::PemObject;
    use std::collections::BTreeMap;

    struct Setup {
        _dir: tempfile::TempDir,
        ctx: EnrollContext,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = create_ca("test ca", SystemTime::now(), 30).unwrap();
        let ctx = EnrollContext {
            ca,
            tokens: TokenFile::in_dir(dir.path()),
            registry: Registry::in_dir(dir.path()),
            revocations: Revocations::load(dir.path()).unwrap(),
            validity: Duration::from_secs(3600),
        };
        Setup { _dir: dir, ctx }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4000))
    }

    fn enroll(host: &str, token: &str) -> EnrollMessage {
        let key = generate_key_pem().unwrap();
        EnrollMessage::Enroll(EnrollRequest {
            version: ENROLL_VERSION,
            host: host.to_string(),
            token: token.to_string(),
            csr_der: create_csr(&key, host).unwrap(),
        })
    }

    fn der_of(pem: &str) -> Vec<u8> {
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn enrollment_signs_with_token_labels_records_and_renews() {
        let setup = setup();
        let ctx = &setup.ctx;
        let labels = BTreeMap::from([("group".to_string(), "web".to_string())]);
        let now = SystemTime::now();
        let token = ctx
            .tokens
            .create(1, 3600, labels.clone(), unix_s(now))
            .unwrap()
            .token;
        let EnrollReply::Issued(issued) = decide(enroll("web-1", &token), None, peer(), ctx, now) else {
            panic!("refused");
        };
        assert_eq!(issued.host, "web-1");
        let der = der_of(&issued.cert_pem);
        assert_eq!(headroom_common::tls::identity_from_cert(&der).unwrap(), "web-1");
        assert_eq!(labels_from_cert(&der).unwrap(), labels);
        assert_eq!(issued.ca_pem, ctx.ca.cert_pem);
        let certs = ctx.registry.list().unwrap().certs;
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].issued_by, IssuedBy::Enroll);

        // The one use is spent.
        let EnrollReply::Refused(refusal) = decide(enroll("web-2", &token), None, peer(), ctx, now) else {
            panic!("a used-up token was accepted");
        };
        assert_eq!(refusal.reason, RefusalReason::UsedUp);
        assert!(!refusal.message.contains(token.split_once('.').unwrap().1));

        // Renewal keeps host and labels and needs the certificate.
        let key = generate_key_pem().unwrap();
        let renew = EnrollMessage::Renew(RenewRequest {
            version: ENROLL_VERSION,
            csr_der: create_csr(&key, "web-1").unwrap(),
        });
        let EnrollReply::Issued(renewed) = decide(renew.clone(), Some(&der), peer(), ctx, now) else {
            panic!("renewal refused");
        };
        let renewed_der = der_of(&renewed.cert_pem);
        assert_eq!(labels_from_cert(&renewed_der).unwrap(), labels);
        assert_ne!(renewed.cert_pem, issued.cert_pem);
        assert_eq!(ctx.registry.list().unwrap().certs.len(), 2);
        let EnrollReply::Refused(refusal) = decide(renew, None, peer(), ctx, now) else {
            panic!("renewal without a certificate was accepted");
        };
        assert_eq!(refusal.reason, RefusalReason::NotAuthorized);
    }

    #[test]
    fn bad_tokens_and_requests_are_refused_with_their_reason() {
        let setup = setup();
        let ctx = &setup.ctx;
        let now = SystemTime::now();
        let now_s = unix_s(now);
        let expired = ctx
            .tokens
            .create(5, 10, BTreeMap::new(), now_s - 100)
            .unwrap()
            .token;
        let good = ctx.tokens.create(5, 3600, BTreeMap::new(), now_s).unwrap().token;
        let reason = |message: EnrollMessage| match decide(message, None, peer(), ctx, now) {
            EnrollReply::Refused(refusal) => refusal.reason,
            EnrollReply::Issued(_) => panic!("issued"),
        };
        assert_eq!(reason(enroll("web-1", &expired)), RefusalReason::Expired);
        assert_eq!(reason(enroll("web-1", "0000.1111")), RefusalReason::UnknownToken);
        let mut bad_host = enroll("web-1", &good);
        if let EnrollMessage::Enroll(request) = &mut bad_host {
            request.host = "Web_1".to_string();
        }
        assert_eq!(reason(bad_host), RefusalReason::BadRequest);
        let mut bad_csr = enroll("web-1", &good);
        if let EnrollMessage::Enroll(request) = &mut bad_csr {
            request.csr_der = vec![0x30, 0x03, 1, 2, 3];
        }
        assert_eq!(reason(bad_csr), RefusalReason::BadRequest);
        let uses: Vec<u32> = ctx
            .tokens
            .list()
            .unwrap()
            .tokens
            .iter()
            .map(|t| t.uses_left)
            .collect();
        assert_eq!(uses, vec![5, 5], "refused requests spent no use");
        assert!(ctx.registry.list().unwrap().certs.is_empty());
    }

    /// The whole exchange over real QUIC on loopback: the agent's enroll (pinned, no certificate), a wrong
    /// pin, and a renewal authenticated with the enrolled certificate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agent_enrolls_and_renews_over_quic() {
        use headroom_agent::enroll::{enroll, EnrollError, EnrollOptions, Renewer};
        let setup = setup();
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let names = vec!["localhost".to_string()];
        let server =
            headroom_common::pki::issue_server_cert(&setup.ctx.ca, &names, now, Duration::from_secs(3600))
                .unwrap();
        let revocations: std::sync::Arc<dyn headroom_common::tls::RevocationCheck> =
            std::sync::Arc::new(setup.ctx.revocations.clone());
        let tls = headroom_common::tls::server_config_with_enrollment(
            &setup.ctx.ca.cert_pem,
            &server.cert_pem,
            &server.key_pem,
            Some(revocations),
        )
        .unwrap();
        let endpoint = quinn::Endpoint::server(
            crate::ingest::server_config(tls).unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .unwrap();
        let address = endpoint.local_addr().unwrap();
        let ctx = std::sync::Arc::new(setup);
        let serving = ctx.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let ctx = serving.clone();
                tokio::spawn(async move {
                    if let Ok(connection) = incoming.await {
                        handle_enrollment(connection, &ctx.ctx).await;
                    }
                });
            }
        });
        let token = ctx
            .ctx
            .tokens
            .create(1, 3600, BTreeMap::new(), unix_s(now))
            .unwrap()
            .token;
        let pin = headroom_common::pki::fingerprint_sha256(&ctx.ctx.ca.cert_pem).unwrap();
        let options = EnrollOptions {
            collector: address.to_string(),
            server_name: "localhost".to_string(),
            token: token.clone(),
            ca_fingerprint: format!("SHA256:{}", "00".repeat(32)),
            host: "web-1".to_string(),
            paths: headroom_agent::enroll::default_paths(dir.path()),
        };
        match enroll(&options).await {
            Err(EnrollError::PinMismatch { seen, .. }) => assert_eq!(seen, pin),
            other => panic!("{other:?}"),
        }
        assert!(!options.paths.key.exists());
        let options = EnrollOptions {
            ca_fingerprint: pin,
            ..options
        };
        let issued = enroll(&options).await.unwrap();
        assert_eq!(issued.host, "web-1");
        let first_serial = headroom_common::pki::cert_info(&issued.cert_pem)
            .unwrap()
            .serial_hex;
        match enroll(&options).await {
            Err(EnrollError::Refused(refusal)) => assert_eq!(refusal.reason, RefusalReason::UsedUp),
            other => panic!("{other:?}"),
        }
        let renewer = Renewer::from_files(&address.to_string(), "localhost", &options.paths).unwrap();
        let renewed = renewer.renew_now().await.unwrap();
        assert_ne!(renewed.serial_hex, first_serial);
        let on_disk = std::fs::read_to_string(&options.paths.cert).unwrap();
        assert_eq!(
            headroom_common::pki::cert_info(&on_disk).unwrap().serial_hex,
            renewed.serial_hex
        );

        // A revoked certificate cannot renew: the handshake refuses it.
        ctx.ctx
            .revocations
            .revoke(std::slice::from_ref(&renewed.serial_hex), None, 0)
            .unwrap();
        assert!(renewer.renew_now().await.is_err());
    }
}
