//! Serves one enrollment or renewal connection (ALPN `headroom-enroll/1`): read one request, decide, sign,
//! answer, close.
//!
//! `decide` holds the rules and touches only the identity files; `handle_enrollment` moves its frames over
//! QUIC. Attempts are logged with the peer address and the token id at most, never the token.

use super::registry::{CertRecord, IssuedBy, Registry};
use super::renew::authorize_renewal;
use super::revocation::{normalize_serial, Revocations};
use super::signer::{SignRequest, Signer, SignerError};
use super::tokens::{TokenFile, TokenRefusal};
use super::unix_s;
use crate::quic::{Connection, RecvStream};
use headroom_common::enroll::{
    EnrollMessage, EnrollReply, Issued, Refusal, RefusalReason, ENROLL_VERSION, MAX_ENROLL_FRAME_BYTES,
};
use headroom_common::pki::cert_info;
use headroom_common::wire::{decode_payload, encode_frame, FrameDecoder};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// Default lifetime of an agent certificate.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

/// How long an enrolling client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What enrollment needs: the signer (the only holder of the CA key), the CA certificate it signs with, and
/// the identity files.
pub struct EnrollContext {
    pub signer: Signer,
    /// The CA certificate (PEM) as the signer reported it, handed to enrolled agents.
    pub ca_pem: String,
    pub tokens: TokenFile,
    pub registry: Registry,
    pub revocations: Revocations,
    /// Lifetime of issued certificates.
    pub validity: Duration,
    /// Held while one request is decided.
    pub decide_lock: std::sync::Mutex<()>,
}

impl EnrollContext {
    /// Serials of `host`'s certificates that are unexpired at `now_s` and not revoked.
    pub fn valid_serials_of(&self, host: &str, now_s: i64) -> Result<Vec<String>, super::StoreError> {
        let mut serials = self.registry.list()?.live_serials_of(host, now_s);
        serials.retain(|serial| !self.revocations.is_revoked(serial));
        Ok(serials
            .into_iter()
            .map(|serial| normalize_serial(&serial))
            .collect())
    }
}

impl EnrollContext {
    /// The context for the pki directory `pki_dir` (tokens.json, certs.json), signing through `signer` with
    /// the CA certificate `ca_pem`, sharing `revocations` with the TLS verifier and ingest.
    pub fn new(
        pki_dir: &Path,
        signer: Signer,
        ca_pem: String,
        revocations: Revocations,
        validity: Duration,
    ) -> EnrollContext {
        EnrollContext {
            signer,
            ca_pem,
            tokens: TokenFile::in_dir(pki_dir),
            registry: Registry::in_dir(pki_dir),
            revocations,
            validity,
            decide_lock: Default::default(),
        }
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
    // Enrollment and renewal read the registry, then sign and record; one at a time, so two requests for
    // one host cannot both pass the check.
    let _serialized = ctx.decide_lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut superseded: Vec<String> = Vec::new();
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
            let enrolled = match ctx.valid_serials_of(&request.host, now_s) {
                Ok(serials) => serials,
                Err(error) => {
                    warn!(%peer, %error, "enrollment failed: certificate registry");
                    return internal();
                }
            };
            let admitted = match ctx.tokens.consume(
                &request.token,
                &request.host,
                !enrolled.is_empty(),
                now_s,
            ) {
                Ok(Ok(admitted)) => admitted,
                Ok(Err(refusal)) => {
                    let reason = match refusal {
                        TokenRefusal::Unknown => RefusalReason::UnknownToken,
                        TokenRefusal::Expired { .. } => RefusalReason::Expired,
                        TokenRefusal::UsedUp { .. } => RefusalReason::UsedUp,
                        TokenRefusal::OtherHost { .. } | TokenRefusal::HostEnrolled { .. } => {
                            RefusalReason::NotAuthorized
                        }
                    };
                    // An unknown token's id is whatever the client sent; it is not logged, only the reason.
                    let logged_id = if reason == RefusalReason::UnknownToken {
                        "-"
                    } else {
                        &token_id
                    };
                    warn!(%peer, host = %request.host, token_id = logged_id, ?reason, %refusal, "enrollment refused");
                    return refused(reason, refusal.to_string());
                }
                Err(error) => {
                    warn!(%peer, %error, "enrollment failed: token file");
                    return internal();
                }
            };
            info!(%peer, host = %request.host, %token_id, "enrollment token accepted");
            // A token made for this host replaces its certificates (a re-imaged host): the old ones are revoked
            // once the new one is recorded, so the host never holds two.
            if admitted.host_bound {
                superseded = enrolled;
            }
            let labels = admitted.labels;
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
            let grant = match authorize_renewal(peer_cert, &ctx.revocations, now_s) {
                Ok(grant) => grant,
                Err(refusal) => {
                    warn!(%peer, reason = %refusal.message, "renewal refused");
                    return EnrollReply::Refused(refusal);
                }
            };
            info!(%peer, host = %grant.host, old_serial = %grant.old_serial, "renewing certificate");
            // The presented certificate and the new one stay valid; any other (a renewal whose answer never
            // reached the agent) is revoked, so a host holds at most one certificate beside its current one.
            superseded = match ctx.valid_serials_of(&grant.host, now_s) {
                Ok(serials) => serials
                    .into_iter()
                    .filter(|serial| *serial != normalize_serial(&grant.old_serial))
                    .collect(),
                Err(error) => {
                    warn!(%peer, %error, "renewal failed: certificate registry");
                    return internal();
                }
            };
            (grant.host, grant.labels, request.csr_der, IssuedBy::Renew)
        }
    };
    let request = SignRequest {
        csr_der,
        host: host.clone(),
        labels: labels.clone(),
        validity_s: ctx.validity.as_secs(),
    };
    let cert_pem = match ctx.signer.sign(&request) {
        Ok(pem) => pem,
        Err(SignerError::Refused(message)) => {
            warn!(%peer, %host, %message, "certificate request refused");
            return refused(RefusalReason::BadRequest, message);
        }
        Err(error @ SignerError::Unavailable(_)) => {
            warn!(%peer, %host, %error, "cannot sign");
            return internal();
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
    if !superseded.is_empty() {
        match ctx.revocations.revoke(&superseded, Some(&host), now_s) {
            Ok(_) => {
                info!(%peer, %host, serials = %superseded.join(","), "older certificates of the host revoked")
            }
            Err(error) => {
                warn!(%peer, %host, %error, "cannot revoke the host's older certificates; refusing");
                return internal();
            }
        }
    }
    info!(%peer, %host, serial = %info.serial_hex, not_after_s = info.not_after_s, ?issued_by, "certificate issued");
    EnrollReply::Issued(Issued {
        host,
        cert_pem,
        ca_pem: ctx.ca_pem.clone(),
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

/// Which listener a request arrived on. Enrollment with a token belongs on the enrollment listener; the
/// streaming listener, which requires a certificate in the handshake, serves renewals only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Streaming,
    Enrollment,
}

/// Handles one connection that negotiated `ENROLL_ALPN`: one request, one reply, then close. The decision
/// (files, signing) runs on a blocking thread.
pub async fn handle_enrollment(connection: Connection, ctx: Arc<EnrollContext>, listener: Listener) {
    let peer = connection.remote_address();
    let (mut send, mut recv) = match tokio::time::timeout(REQUEST_TIMEOUT, connection.accept_bi()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            info!(%peer, %error, "enrollment connection ended before its request");
            return;
        }
        Err(_) => {
            warn!(%peer, "no enrollment request within {REQUEST_TIMEOUT:?}; closing");
            connection.close(1, b"no request");
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
            connection.close(1, b"request timeout");
            return;
        }
    };
    let peer_cert = connection.peer_cert_der();
    let reply = if listener == Listener::Streaming && matches!(message, EnrollMessage::Enroll(_)) {
        warn!(%peer, "enrollment request on the streaming listener refused");
        refused(
            RefusalReason::BadRequest,
            "enroll on the collector's enrollment port (enroll_listen, UDP 9602 by default), not the streaming \
             port"
                .to_string(),
        )
    } else {
        let decided = tokio::task::spawn_blocking(move || {
            decide(message, peer_cert.as_deref(), peer, &ctx, SystemTime::now())
        })
        .await;
        decided.unwrap_or_else(|_| internal())
    };
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
async fn read_request(recv: &mut RecvStream) -> Result<EnrollMessage, String> {
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
        ca: headroom_common::pki::CertAndKey,
        ctx: EnrollContext,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = create_ca("test ca", SystemTime::now(), 30).unwrap();
        let ctx = EnrollContext {
            signer: Signer::InProcess(ca.clone()),
            ca_pem: ca.cert_pem.clone(),
            tokens: TokenFile::in_dir(dir.path()),
            registry: Registry::in_dir(dir.path()),
            revocations: Revocations::load(dir.path()).unwrap(),
            validity: Duration::from_secs(3600),
            decide_lock: Default::default(),
        };
        Setup { _dir: dir, ca, ctx }
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
            .create(1, 3600, labels.clone(), None, unix_s(now))
            .unwrap()
            .token;
        let EnrollReply::Issued(issued) = decide(enroll("web-1", &token), None, peer(), ctx, now) else {
            panic!("refused");
        };
        assert_eq!(issued.host, "web-1");
        let der = der_of(&issued.cert_pem);
        assert_eq!(headroom_common::tls::identity_from_cert(&der).unwrap(), "web-1");
        assert_eq!(labels_from_cert(&der).unwrap(), labels);
        assert_eq!(issued.ca_pem, ctx.ca_pem);
        let certs = ctx.registry.list().unwrap().certs;
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].issued_by, IssuedBy::Enroll);

        // The one use is spent.
        let EnrollReply::Refused(refusal) = decide(enroll("web-2", &token), None, peer(), ctx, now) else {
            panic!("a used-up token was accepted");
        };
        assert_eq!(refusal.reason, RefusalReason::UsedUp);
        assert!(!refusal.message.contains(token.split_once('.').unwrap().1));

        // Renewal keeps host and labels and needs the certificate; it is due after two thirds of the
        // lifetime (3600 s, backdated by 360 s).
        let key = generate_key_pem().unwrap();
        let renew = EnrollMessage::Renew(RenewRequest {
            version: ENROLL_VERSION,
            csr_der: create_csr(&key, "web-1").unwrap(),
        });
        let due = now + Duration::from_secs(2400);
        let EnrollReply::Issued(renewed) = decide(renew.clone(), Some(&der), peer(), ctx, due) else {
            panic!("renewal refused");
        };
        let renewed_der = der_of(&renewed.cert_pem);
        assert_eq!(labels_from_cert(&renewed_der).unwrap(), labels);
        assert_ne!(renewed.cert_pem, issued.cert_pem);
        assert_eq!(ctx.registry.list().unwrap().certs.len(), 2);
        let EnrollReply::Refused(refusal) = decide(renew, None, peer(), ctx, due) else {
            panic!("renewal without a certificate was accepted");
        };
        assert_eq!(refusal.reason, RefusalReason::NotAuthorized);
    }

    fn serial_of(issued: &Issued) -> String {
        cert_info(&issued.cert_pem).unwrap().serial_hex
    }

    /// Issue 11: a second token cannot take over an enrolled host name; a token made for the host can, and
    /// revokes the host's older certificate; renewing twice from one certificate leaves one extra valid.
    #[test]
    fn issue_11_takeover_refused_and_at_most_one_extra_certificate() {
        let setup = setup();
        let ctx = &setup.ctx;
        let now = SystemTime::now();
        let now_s = unix_s(now);
        let token = ctx
            .tokens
            .create(5, 3600, BTreeMap::new(), None, now_s)
            .unwrap()
            .token;
        let EnrollReply::Issued(first) = decide(enroll("web-1", &token), None, peer(), ctx, now) else {
            panic!("refused");
        };
        let EnrollReply::Refused(refusal) = decide(enroll("web-1", &token), None, peer(), ctx, now) else {
            panic!("a second enrollment of web-1 was accepted");
        };
        assert_eq!(refusal.reason, RefusalReason::NotAuthorized);
        assert!(
            refusal.message.contains("cert revoke --host web-1"),
            "{}",
            refusal.message
        );
        assert_eq!(
            ctx.valid_serials_of("web-1", now_s).unwrap(),
            vec![serial_of(&first)]
        );

        // Revoking the certificate first frees the name.
        ctx.revocations
            .revoke(&[serial_of(&first)], Some("web-1"), now_s)
            .unwrap();
        let EnrollReply::Issued(second) = decide(enroll("web-1", &token), None, peer(), ctx, now) else {
            panic!("enrollment after revocation refused");
        };

        // A token made for web-1 replaces its certificate.
        let bound = ctx
            .tokens
            .create(1, 3600, BTreeMap::new(), Some("web-1".to_string()), now_s)
            .unwrap()
            .token;
        let EnrollReply::Issued(third) = decide(enroll("web-1", &bound), None, peer(), ctx, now) else {
            panic!("host-bound enrollment refused");
        };
        assert!(ctx.revocations.is_revoked(&serial_of(&second)));
        assert_eq!(
            ctx.valid_serials_of("web-1", now_s).unwrap(),
            vec![serial_of(&third)]
        );

        // Renewal before the window is refused; in it, twice from the same certificate, only the newest
        // renewal stays valid beside the presented certificate.
        let third_der = der_of(&third.cert_pem);
        let key = generate_key_pem().unwrap();
        let renew = EnrollMessage::Renew(RenewRequest {
            version: ENROLL_VERSION,
            csr_der: create_csr(&key, "web-1").unwrap(),
        });
        let EnrollReply::Refused(early) = decide(renew.clone(), Some(&third_der), peer(), ctx, now) else {
            panic!("renewal outside the window accepted");
        };
        assert!(early.message.contains("not due"), "{}", early.message);
        let due = now + Duration::from_secs(2400);
        let EnrollReply::Issued(lost) = decide(renew.clone(), Some(&third_der), peer(), ctx, due) else {
            panic!("renewal refused");
        };
        let EnrollReply::Issued(kept) = decide(renew, Some(&third_der), peer(), ctx, due) else {
            panic!("repeated renewal refused");
        };
        assert!(ctx.revocations.is_revoked(&serial_of(&lost)));
        let mut valid = ctx.valid_serials_of("web-1", unix_s(due)).unwrap();
        valid.sort();
        let mut expected = vec![serial_of(&third), serial_of(&kept)];
        expected.sort();
        assert_eq!(valid, expected);
    }

    #[test]
    fn bad_tokens_and_requests_are_refused_with_their_reason() {
        let setup = setup();
        let ctx = &setup.ctx;
        let now = SystemTime::now();
        let now_s = unix_s(now);
        let expired = ctx
            .tokens
            .create(5, 10, BTreeMap::new(), None, now_s - 100)
            .unwrap()
            .token;
        let good = ctx
            .tokens
            .create(5, 3600, BTreeMap::new(), None, now_s)
            .unwrap()
            .token;
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

    /// Binds `server` on loopback and serves every connection with `handle_enrollment` as `listener`.
    fn spawn_listener(
        server: crate::quic::ServerConfig,
        ctx: Arc<EnrollContext>,
        listener: Listener,
    ) -> SocketAddr {
        let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let config = crate::quic::EndpointConfig::default();
        let endpoint = crate::quic::Endpoint::new(config, server, socket).unwrap();
        let address = endpoint.local_addr().unwrap();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let Ok(connecting) = incoming.accept() else {
                        return;
                    };
                    if let Ok(connection) = connecting.await {
                        handle_enrollment(connection, ctx, listener).await;
                    }
                });
            }
        });
        address
    }

    /// The whole exchange over real QUIC on loopback: the agent's enroll (pinned, no certificate) on the
    /// enrollment listener, a wrong pin, the streaming listener refusing a client without a certificate,
    /// and a renewal authenticated with the enrolled certificate on the streaming listener once it is due.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agent_enrolls_and_renews_over_quic() {
        use headroom_agent::enroll::{enroll, EnrollError, EnrollOptions, Renewer};
        let mut setup = setup();
        // Renewal is due two thirds into the lifetime: 8 s (backdated by 1 s) makes it due after about 5 s,
        // 3 s before the first certificate expires.
        setup.ctx.validity = Duration::from_secs(8);
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let names = vec!["localhost".to_string()];
        let server =
            headroom_common::pki::issue_server_cert(&setup.ca, &names, now, Duration::from_secs(3600))
                .unwrap();
        let revocations: Arc<dyn headroom_common::tls::RevocationCheck> =
            Arc::new(setup.ctx.revocations.clone());
        let enrollment_tls = headroom_common::tls::server_config_enrollment(
            &setup.ctx.ca_pem,
            &server.cert_pem,
            &server.key_pem,
            Some(revocations.clone()),
        )
        .unwrap();
        let streaming_tls = headroom_common::tls::server_config_streaming(
            &setup.ctx.ca_pem,
            &server.cert_pem,
            &server.key_pem,
            Some(revocations),
        )
        .unwrap();
        let _dir_kept = setup._dir;
        let ctx = Arc::new(setup.ctx);
        let address = spawn_listener(
            crate::ingest::enroll::enroll_server_config(enrollment_tls).unwrap(),
            ctx.clone(),
            Listener::Enrollment,
        );
        let streaming = spawn_listener(
            crate::ingest::server_config(streaming_tls).unwrap(),
            ctx.clone(),
            Listener::Streaming,
        );
        struct Holder {
            ctx: Arc<EnrollContext>,
        }
        let ctx = Holder { ctx };
        let token = ctx
            .ctx
            .tokens
            .create(1, 3600, BTreeMap::new(), None, unix_s(now))
            .unwrap()
            .token;
        let pin = headroom_common::pki::fingerprint_sha256(&ctx.ctx.ca_pem).unwrap();
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
        // The streaming listener does not complete a handshake without a client certificate.
        let streaming_enroll = EnrollOptions {
            collector: streaming.to_string(),
            host: "web-2".to_string(),
            paths: headroom_agent::enroll::default_paths(&dir.path().join("other")),
            ..options.clone()
        };
        assert!(matches!(
            enroll(&streaming_enroll).await,
            Err(EnrollError::Connect(_))
        ));
        let renewer = Renewer::from_files(&streaming.to_string(), "localhost", &options.paths).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let renewed = loop {
            match renewer.renew_now().await {
                Ok(renewed) => break renewed,
                Err(EnrollError::Refused(refusal)) if tokio::time::Instant::now() < deadline => {
                    assert!(refusal.message.contains("not due"), "{}", refusal.message);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => panic!("renewal failed: {error:?}"),
            }
        };
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
