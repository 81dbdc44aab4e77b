//! `headroom-agent enroll` and automatic renewal: get this host's certificate from the collector with a
//! one-time token, and renew it over a connection authenticated with the current one.
//!
//! The private key is made here and never leaves the host. Enrollment trusts the collector only by the CA
//! fingerprint the operator passes; a collector with another CA fails the handshake before anything (token
//! or request) is sent. Renewal keeps the key and replaces `agent.pem` atomically, and the running uplink
//! presents the new certificate at its next handshake through `ReloadableClientCert`.

use crate::config::TlsPaths;
use headroom_common::enroll::{
    renewal_state, EnrollMessage, EnrollReply, EnrollRequest, Issued, Refusal, RefusalReason, RenewRequest,
    RenewalState, ENROLL_ALPN, ENROLL_VERSION, MAX_ENROLL_FRAME_BYTES,
};
use headroom_common::pki::{self, read_pem};
use headroom_common::tls::{self, ReloadableClientCert};
use headroom_common::wire::{decode_payload, encode_frame, FrameDecoder};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long one enrollment or renewal exchange may take, handshake included.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// How often an agent whose certificate expired looks for a new one on disk (written by a new enrollment).
const EXPIRED_RECHECK: Duration = Duration::from_secs(10);

/// What `headroom-agent enroll` was asked to do.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// `HOST:PORT` of the collector's QUIC listener.
    pub collector: String,
    /// Name the collector's certificate must carry (defaults to the host part of `collector`).
    pub server_name: String,
    pub token: String,
    /// "SHA256:…" as `headroom-collector ca init` printed it.
    pub ca_fingerprint: String,
    /// The identity to ask for.
    pub host: String,
    /// Where ca.pem, agent.pem and agent.key go.
    pub paths: TlsPaths,
}

/// Why enrollment or renewal failed. `exit_code` maps it for the command line.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    Usage(String),
    #[error("the collector refused: {}", .0.message)]
    Refused(Refusal),
    #[error(
        "the collector at {collector} presented CA {seen}, not the pinned {pinned}; nothing was sent (check \
         --ca-fingerprint against \"headroom-collector ca init\" output, or whether something else answers at \
         that address)"
    )]
    PinMismatch {
        collector: String,
        pinned: String,
        seen: String,
    },
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Files(String),
}

impl EnrollError {
    /// 2 for bad usage, 1 for everything that failed at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnrollError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// The host part of `HOST:PORT` (brackets of an IPv6 literal removed), the default server name.
pub fn server_name_of(collector: &str) -> String {
    let host = collector.rsplit_once(':').map_or(collector, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']').to_string()
}

/// This machine's host name from the kernel, lowercased, as the default identity.
pub fn local_host_name(proc_root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join("sys/kernel/hostname")).ok()?;
    let name = text.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// The collector's enrollment port (its `enroll_listen`) when `--collector` names none.
pub const DEFAULT_ENROLL_PORT: u16 = 9602;

/// `collector` with the default enrollment port added when it names only a host ("collector.example",
/// "10.0.0.5", "[2001:db8::1]").
pub fn with_default_enroll_port(collector: &str) -> String {
    let has_port = match collector.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        collector.to_string()
    } else {
        format!("{collector}:{DEFAULT_ENROLL_PORT}")
    }
}

/// Enrolls this host: makes the key (0600), sends the request with the token over a pinned connection, and
/// writes ca.pem and agent.pem. A failed enrollment leaves existing files untouched.
pub async fn enroll(options: &EnrollOptions) -> Result<Issued, EnrollError> {
    pki::validate_host_name(&options.host)
        .map_err(|e| EnrollError::Usage(format!("{e} (pass --host with this host's lowercase DNS name)")))?;
    let pinned =
        pki::parse_fingerprint(&options.ca_fingerprint).map_err(|e| EnrollError::Usage(e.to_string()))?;
    if options.token.trim().is_empty() {
        return Err(EnrollError::Usage(
            "--token is empty (create one with \"headroom-collector token create\")".to_string(),
        ));
    }
    for dir in [&options.paths.key, &options.paths.cert, &options.paths.ca]
        .iter()
        .filter_map(|path| path.parent())
    {
        create_private_dir(dir)?;
    }
    let key_pem = pki::generate_key_pem().map_err(|e| EnrollError::Files(e.to_string()))?;
    let csr_der = pki::create_csr(&key_pem, &options.host).map_err(|e| EnrollError::Files(e.to_string()))?;
    let (tls, observation) =
        tls::client_config_pinned(&pinned, &[ENROLL_ALPN]).map_err(|e| EnrollError::Usage(e.to_string()))?;
    let message = EnrollMessage::Enroll(EnrollRequest {
        version: ENROLL_VERSION,
        host: options.host.clone(),
        token: options.token.trim().to_string(),
        csr_der,
    });
    let reply = exchange(&options.collector, &options.server_name, tls, &message)
        .await
        .map_err(|error| match error {
            EnrollError::Connect(detail) => EnrollError::Connect(format!(
                "{detail} (enrollment goes to the collector's enrollment port, its enroll_listen, UDP \
                 {DEFAULT_ENROLL_PORT} by default; the streaming port refuses hosts without a certificate)"
            )),
            other => other,
        });
    if let Some(seen) = observation.mismatch_seen() {
        return Err(EnrollError::PinMismatch {
            collector: options.collector.clone(),
            pinned,
            seen,
        });
    }
    let issued = match reply? {
        EnrollReply::Issued(issued) => issued,
        EnrollReply::Refused(refusal) => return Err(EnrollError::Refused(refusal)),
    };
    // The CA we were given must be the one we pinned, or a later connection would trust something else.
    let ca_fingerprint =
        pki::fingerprint_sha256(&issued.ca_pem).map_err(|e| EnrollError::Files(e.to_string()))?;
    if ca_fingerprint != pinned {
        return Err(EnrollError::PinMismatch {
            collector: options.collector.clone(),
            pinned,
            seen: ca_fingerprint,
        });
    }
    let files = |e: pki::PkiError| EnrollError::Files(e.to_string());
    pki::write_private_pem(&options.paths.key, &key_pem).map_err(files)?;
    pki::write_public_pem(&options.paths.ca, &issued.ca_pem).map_err(files)?;
    pki::write_public_pem(&options.paths.cert, &issued.cert_pem).map_err(files)?;
    Ok(issued)
}

/// Connects with `tls`, sends `message`, and reads the one reply.
async fn exchange(
    collector: &str,
    server_name: &str,
    tls: rustls::ClientConfig,
    message: &EnrollMessage,
) -> Result<EnrollReply, EnrollError> {
    let peer = resolve(collector).await?;
    let bind: SocketAddr = if peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| EnrollError::Connect(format!("cannot open a UDP socket on {bind}: {e}")))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| EnrollError::Connect(format!("tls configuration unusable for QUIC: {e}")))?;
    let frame = encode_frame(message).map_err(|e| EnrollError::Connect(e.to_string()))?;
    let result = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let connecting = endpoint
            .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), peer, server_name)
            .map_err(|e| EnrollError::Connect(format!("cannot connect to {peer}: {e}")))?;
        let connection = connecting
            .await
            .map_err(|e| EnrollError::Connect(format!("connecting to the collector at {peer}: {e}")))?;
        let outcome = async {
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| EnrollError::Connect(format!("collector at {peer}: {e}")))?;
            send.write_all(&frame)
                .await
                .map_err(|e| EnrollError::Connect(format!("sending to the collector at {peer}: {e}")))?;
            let _ = send.finish();
            let bytes = recv.read_to_end(MAX_ENROLL_FRAME_BYTES + 4).await.map_err(|e| {
                EnrollError::Connect(format!("reading the collector's answer from {peer}: {e}"))
            })?;
            let mut decoder = FrameDecoder::new(MAX_ENROLL_FRAME_BYTES);
            decoder.push(&bytes);
            let payload = decoder
                .next_frame()
                .map_err(|e| EnrollError::Connect(format!("collector at {peer}: {e}")))?
                .ok_or_else(|| {
                    EnrollError::Connect(format!("the collector at {peer} closed without an answer"))
                })?;
            decode_payload::<EnrollReply>(&payload, "enrollment reply")
                .map_err(|e| EnrollError::Connect(format!("collector at {peer}: {e}")))
        }
        .await;
        connection.close(0u32.into(), b"done");
        outcome
    })
    .await
    .unwrap_or_else(|_| {
        Err(EnrollError::Connect(format!(
            "no answer from the collector at {peer} within {EXCHANGE_TIMEOUT:?} (check the address and that \
             UDP reaches it)"
        )))
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

async fn resolve(collector: &str) -> Result<SocketAddr, EnrollError> {
    let mut addresses = tokio::net::lookup_host(collector).await.map_err(|e| {
        EnrollError::Usage(format!(
            "cannot resolve collector address {collector:?}: {e} (pass HOST:PORT)"
        ))
    })?;
    addresses
        .next()
        .ok_or_else(|| EnrollError::Usage(format!("collector address {collector:?} resolves to nothing")))
}

fn create_private_dir(dir: &Path) -> Result<(), EnrollError> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    headroom_common::files::create_dir_all(dir, headroom_common::files::PRIVATE_DIR).map_err(|e| {
        EnrollError::Files(format!(
            "creating {}: {e} (run as a user that may write there)",
            dir.display()
        ))
    })
}

/// Renews this host's certificate when due, for as long as the agent runs.
pub struct Renewer {
    pub collector: String,
    pub server_name: String,
    pub paths: TlsPaths,
    /// The certificate the uplink presents; renewed ones are put here.
    pub cert: Arc<ReloadableClientCert>,
}

/// What one renewal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub serial_hex: String,
    pub not_after_s: i64,
}

impl Renewer {
    /// The renewer for the files an agent config names, with the client certificate the uplink should use
    /// (build its TLS config with `tls::client_config_reloadable(ca, renewer.cert.clone(), ...)`).
    pub fn from_files(collector: &str, server_name: &str, paths: &TlsPaths) -> Result<Renewer, EnrollError> {
        let (cert_pem, key_pem) = read_pair(paths)?;
        let cert =
            ReloadableClientCert::new(&cert_pem, &key_pem).map_err(|e| EnrollError::Files(e.to_string()))?;
        Ok(Renewer {
            collector: collector.to_string(),
            server_name: server_name.to_string(),
            paths: paths.clone(),
            cert,
        })
    }

    /// Renews now: a request signed with the current key, over a connection authenticated with the current
    /// certificate. Writes agent.pem atomically and hands the new certificate to the uplink.
    pub async fn renew_now(&self) -> Result<Renewed, EnrollError> {
        let (_, key_pem) = read_pair(&self.paths)?;
        let ca_pem = read_pem(&self.paths.ca, "CA certificate", "enroll this host again")
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        let host = tls::identity_from_cert(&self.cert.current_cert_der())
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        let csr_der = pki::create_csr(&key_pem, &host).map_err(|e| EnrollError::Files(e.to_string()))?;
        let tls = tls::client_config_reloadable(&ca_pem, self.cert.clone(), &[ENROLL_ALPN])
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        let message = EnrollMessage::Renew(RenewRequest {
            version: ENROLL_VERSION,
            csr_der,
        });
        match exchange(&self.collector, &self.server_name, tls, &message).await? {
            EnrollReply::Issued(issued) => self.apply(&issued, &key_pem),
            EnrollReply::Refused(refusal) => Err(EnrollError::Refused(refusal)),
        }
    }

    /// Writes a renewed certificate and switches the uplink to it. A certificate that does not match the key
    /// is refused before anything is written.
    pub fn apply(&self, issued: &Issued, key_pem: &str) -> Result<Renewed, EnrollError> {
        let info = pki::cert_info(&issued.cert_pem).map_err(|e| EnrollError::Files(e.to_string()))?;
        // Checking the pair first keeps a broken answer from replacing a working certificate on disk.
        ReloadableClientCert::new(&issued.cert_pem, key_pem)
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        pki::write_public_pem(&self.paths.cert, &issued.cert_pem)
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        self.cert
            .replace(&issued.cert_pem, key_pem)
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        Ok(Renewed {
            serial_hex: info.serial_hex,
            not_after_s: info.not_after_s,
        })
    }

    /// Runs until `cancel`: sleeps until two thirds of the certificate's lifetime have passed, renews, and
    /// retries failures every `retry_after(lifetime)`. A certificate that expired is reported once, clearly.
    pub async fn run(self, cancel: CancellationToken) {
        let mut expired_reported = false;
        loop {
            let wait = match self.next_step() {
                Ok(Step::Wait(wait)) => wait,
                Ok(Step::Renew { lifetime_s }) => match self.renew_now().await {
                    Ok(renewed) => {
                        info!(serial = %renewed.serial_hex, not_after_s = renewed.not_after_s, "certificate renewed");
                        Duration::ZERO
                    }
                    Err(error) => {
                        let retry = retry_after(lifetime_s);
                        warn!(%error, retry_in = ?retry, "certificate renewal failed; will retry");
                        retry
                    }
                },
                Ok(Step::Expired { expired_for_s }) => match self.reload_from_disk() {
                    // The host was enrolled again while the agent ran: use the new pair from now on.
                    Ok(true) => {
                        info!(cert = %self.paths.cert.display(), "new certificate found on disk; using it");
                        expired_reported = false;
                        Duration::ZERO
                    }
                    _ => {
                        if !expired_reported {
                            let path = self.paths.cert.display().to_string();
                            error!(
                                "{}",
                                headroom_common::enroll::expired_message(&path, expired_for_s)
                            );
                            expired_reported = true;
                        }
                        EXPIRED_RECHECK
                    }
                },
                Err(error) => {
                    warn!(%error, "cannot read the certificate to plan its renewal");
                    Duration::from_secs(60)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Switches to the certificate and key on disk when they differ from the pair in use, and says whether it
    /// did. A pair caught half-written (new key, old certificate) does not match and is left for next time.
    fn reload_from_disk(&self) -> Result<bool, EnrollError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let (cert_pem, key_pem) = read_pair(&self.paths)?;
        let on_disk = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            EnrollError::Files(format!(
                "{}: {e} (enroll this host again)",
                self.paths.cert.display()
            ))
        })?;
        if on_disk == self.cert.current_cert_der() {
            return Ok(false);
        }
        self.cert
            .replace(&cert_pem, &key_pem)
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        Ok(true)
    }

    fn next_step(&self) -> Result<Step, EnrollError> {
        let info = pki::cert_info_der(&self.cert.current_cert_der())
            .map_err(|e| EnrollError::Files(e.to_string()))?;
        Ok(plan(info.not_before_s, info.not_after_s, unix_now_s()))
    }
}

/// The renewal loop's next move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Wait(Duration),
    Renew { lifetime_s: i64 },
    Expired { expired_for_s: i64 },
}

/// Pure: what to do about a certificate valid from `not_before_s` to `not_after_s` at `now_s`. Waits are
/// capped at an hour so a changed clock or file is noticed.
fn plan(not_before_s: i64, not_after_s: i64, now_s: i64) -> Step {
    match renewal_state(not_before_s, not_after_s, now_s) {
        RenewalState::NotYet { renew_at_s } => {
            Step::Wait(Duration::from_secs((renew_at_s - now_s).clamp(1, 3600) as u64))
        }
        RenewalState::Due => Step::Renew {
            lifetime_s: not_after_s - not_before_s,
        },
        RenewalState::Expired { expired_for_s } => Step::Expired { expired_for_s },
    }
}

/// Retry a failed renewal after a hundredth of the lifetime, between 1 s and 10 min: often enough to renew
/// well before expiry, rarely enough not to hammer a collector that is down.
fn retry_after(lifetime_s: i64) -> Duration {
    Duration::from_secs((lifetime_s / 100).clamp(1, 600) as u64)
}

fn read_pair(paths: &TlsPaths) -> Result<(String, String), EnrollError> {
    let fix = "enroll this host with \"headroom-agent enroll\"";
    let cert =
        read_pem(&paths.cert, "agent certificate", fix).map_err(|e| EnrollError::Files(e.to_string()))?;
    let key = read_pem(&paths.key, "agent key", fix).map_err(|e| EnrollError::Files(e.to_string()))?;
    Ok((cert, key))
}

fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The files `enroll` writes for a state directory, unless the config names others.
pub fn default_paths(state_dir: &Path) -> TlsPaths {
    TlsPaths::in_dir(state_dir, "agent")
}

/// The one line an operator sees for a refusal.
pub fn refusal_line(refusal: &Refusal) -> String {
    let what = match refusal.reason {
        RefusalReason::UnknownToken => "enrollment token not accepted",
        RefusalReason::Expired => "enrollment token expired",
        RefusalReason::UsedUp => "enrollment token used up",
        RefusalReason::BadRequest => "enrollment request refused",
        RefusalReason::NotAuthorized => "renewal refused",
        RefusalReason::Internal => "the collector failed",
    };
    format!("{what}: {}", refusal.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_plan_waits_then_renews_then_reports_expiry() {
        let start = 1_000_000;
        let end = start + 30 * 86_400;
        assert_eq!(plan(start, end, start), Step::Wait(Duration::from_secs(3600)));
        assert_eq!(
            plan(start, end, start + 20 * 86_400 - 30),
            Step::Wait(Duration::from_secs(30))
        );
        assert_eq!(
            plan(start, end, start + 20 * 86_400),
            Step::Renew {
                lifetime_s: 30 * 86_400
            }
        );
        assert_eq!(plan(start, end, end + 5), Step::Expired { expired_for_s: 5 });
    }

    #[test]
    fn retries_scale_with_the_lifetime_within_bounds() {
        assert_eq!(retry_after(30 * 86_400), Duration::from_secs(600));
        assert_eq!(retry_after(30), Duration::from_secs(1));
        assert_eq!(retry_after(6_000), Duration::from_secs(60));
    }

    #[test]
    fn enrollment_port_defaults_to_9602() {
        assert_eq!(
            with_default_enroll_port("collector.example"),
            "collector.example:9602"
        );
        assert_eq!(
            with_default_enroll_port("collector.example:7000"),
            "collector.example:7000"
        );
        assert_eq!(with_default_enroll_port("10.0.0.5"), "10.0.0.5:9602");
        assert_eq!(with_default_enroll_port("[2001:db8::1]"), "[2001:db8::1]:9602");
        assert_eq!(
            with_default_enroll_port("[2001:db8::1]:7000"),
            "[2001:db8::1]:7000"
        );
    }

    #[test]
    fn server_name_defaults_to_the_host_part() {
        assert_eq!(server_name_of("collector.example:4433"), "collector.example");
        assert_eq!(server_name_of("127.0.0.1:4433"), "127.0.0.1");
        assert_eq!(server_name_of("[::1]:4433"), "::1");
    }

    #[test]
    fn a_pair_enrolled_again_on_disk_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let paths = default_paths(dir.path());
        let now = SystemTime::now();
        let ca = pki::create_ca("test ca", now, 30).unwrap();
        let write_pair = |validity_s: u64| {
            let key = pki::generate_key_pem().unwrap();
            let csr = pki::create_csr(&key, "web-1").unwrap();
            let labels = Default::default();
            let cert =
                pki::sign_csr(&ca, &csr, "web-1", &labels, now, Duration::from_secs(validity_s)).unwrap();
            pki::write_private_pem(&paths.key, &key).unwrap();
            pki::write_public_pem(&paths.cert, &cert).unwrap();
            cert
        };
        write_pair(60);
        pki::write_public_pem(&paths.ca, &ca.cert_pem).unwrap();
        let renewer = Renewer::from_files("127.0.0.1:1", "localhost", &paths).unwrap();
        assert!(!renewer.reload_from_disk().unwrap(), "nothing changed on disk");
        let second = write_pair(3600);
        assert!(renewer.reload_from_disk().unwrap());
        use rustls::pki_types::pem::PemObject;
        let second_der = rustls::pki_types::CertificateDer::from_pem_slice(second.as_bytes()).unwrap();
        assert_eq!(renewer.cert.current_cert_der(), second_der);
        assert!(!renewer.reload_from_disk().unwrap());
    }

    #[test]
    fn applying_a_renewal_writes_the_cert_and_switches_the_uplink() {
        let dir = tempfile::tempdir().unwrap();
        let paths = default_paths(dir.path());
        let now = SystemTime::now();
        let ca = pki::create_ca("test ca", now, 30).unwrap();
        let key = pki::generate_key_pem().unwrap();
        let csr = pki::create_csr(&key, "web-1").unwrap();
        let labels = Default::default();
        let first = pki::sign_csr(&ca, &csr, "web-1", &labels, now, Duration::from_secs(60)).unwrap();
        pki::write_private_pem(&paths.key, &key).unwrap();
        pki::write_public_pem(&paths.cert, &first).unwrap();
        pki::write_public_pem(&paths.ca, &ca.cert_pem).unwrap();
        let renewer = Renewer::from_files("127.0.0.1:1", "localhost", &paths).unwrap();
        let second = pki::sign_csr(&ca, &csr, "web-1", &labels, now, Duration::from_secs(3600)).unwrap();
        let issued = Issued {
            host: "web-1".to_string(),
            cert_pem: second.clone(),
            ca_pem: ca.cert_pem.clone(),
            labels,
            not_after_s: 0,
        };
        let renewed = renewer.apply(&issued, &key).unwrap();
        assert_eq!(std::fs::read_to_string(&paths.cert).unwrap(), second);
        assert_eq!(renewed.serial_hex, pki::cert_info(&second).unwrap().serial_hex);
        use rustls::pki_types::pem::PemObject;
        let second_der = rustls::pki_types::CertificateDer::from_pem_slice(second.as_bytes()).unwrap();
        assert_eq!(renewer.cert.current_cert_der(), second_der);

        // A certificate for another key is refused and nothing changes.
        let other_key = pki::generate_key_pem().unwrap();
        let other_csr = pki::create_csr(&other_key, "web-1").unwrap();
        let wrong = pki::sign_csr(
            &ca,
            &other_csr,
            "web-1",
            &Default::default(),
            now,
            Duration::from_secs(60),
        )
        .unwrap();
        let bad = Issued {
            cert_pem: wrong,
            ..issued
        };
        assert!(renewer.apply(&bad, &key).is_err());
        assert_eq!(std::fs::read_to_string(&paths.cert).unwrap(), second);
    }
}
