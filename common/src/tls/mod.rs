//! rustls configurations for mutual TLS between agent and collector, and the host identity of a peer.
//!
//! Both sides speak TLS 1.3 only, through the ring provider chosen explicitly (never a process-wide default),
//! and trust only the fleet's own CA. Early data stays off: QUIC accepts the configs as they are, and a
//! replayed 0-RTT batch would be a duplicate sample.

use crate::pki::{validate_host_name, PkiError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

mod resumption;

pub use resumption::{check_client_cert_now, ClientCertNow};

/// Everything that can go wrong building a TLS configuration or reading a peer's identity.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no certificate found in PEM for {what} (expected a \"BEGIN CERTIFICATE\" block)")]
    NoCertificate { what: &'static str },
    #[error("no private key found in PEM for {what} (expected a \"BEGIN PRIVATE KEY\" block)")]
    NoPrivateKey { what: &'static str },
    #[error("malformed PEM for {what}: {detail} (re-issue the file)")]
    BadPem { what: &'static str, detail: String },
    #[error("the CA certificate cannot be a trust anchor: {error} (pass the fleet's ca.crt)")]
    BadTrustAnchor { error: rustls::Error },
    #[error("the {what} certificate and private key do not match (use the key issued with the certificate)")]
    KeyMismatch { what: &'static str },
    #[error("building the {what}: {error}")]
    Config { what: &'static str, error: String },
    #[error("peer certificate is not valid X.509: {0}")]
    BadPeerCertificate(String),
    #[error("peer certificate has neither a DNS name nor a common name (issue it from the fleet CA)")]
    NoIdentity,
    #[error("peer certificate identity: {0}")]
    InvalidIdentity(PkiError),
}

/// Collector side: requires a client certificate chaining to `ca_pem` (WebPkiClientVerifier), presents
/// cert/key.
///
/// `ca_pem` may hold several CA certificates; all are trusted, which lets a fleet roll over to a new CA. An
/// empty `alpn` means `crate::wire::ALPN`.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let roots = Arc::new(root_store(ca_pem)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|error| TlsError::Config {
            what: "client certificate verifier",
            error: error.to_string(),
        })?;
    let certs = certificates(cert_pem, "server certificate")?;
    let key = private_key(key_pem, "server certificate")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config {
            what: "server TLS config",
            error: error.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|error| key_error(error, "server", "server TLS config"))?;
    config.alpn_protocols = alpn_list(alpn);
    config.max_early_data_size = 0;
    no_resumption(&mut config);
    Ok(config)
}

/// An HTTPS server (the collector's HTTP listener when it is not on loopback): presents cert/key, asks for
/// no client certificate (the API's callers authenticate with a bearer token), HTTP/1.1 over TLS 1.3.
pub fn https_server_config(cert_pem: &str, key_pem: &str) -> Result<ServerConfig, TlsError> {
    let certs = certificates(cert_pem, "HTTPS certificate")?;
    let key = private_key(key_pem, "HTTPS certificate")?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config {
            what: "HTTPS server config",
            error: error.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| key_error(error, "HTTPS", "HTTPS server config"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// Agent side: trusts only `ca_pem` as root, presents the client cert/key (None = no client cert).
///
/// An empty `alpn` means `crate::wire::ALPN`.
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config {
            what: "client TLS config",
            error: error.to_string(),
        })?
        .with_root_certificates(root_store(ca_pem)?);
    let mut config = match client {
        Some((cert_pem, key_pem)) => {
            let certs = certificates(cert_pem, "client certificate")?;
            let key = private_key(key_pem, "client certificate")?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|error| key_error(error, "client", "client TLS config"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn_list(alpn);
    config.enable_early_data = false;
    Ok(config)
}

/// The host identity from a peer certificate (DER): the first DNS SAN, else the subject CN; validated with
/// `validate_host_name`.
pub fn identity_from_cert(cert_der: &[u8]) -> Result<String, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|error| TlsError::BadPeerCertificate(error.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|error| TlsError::BadPeerCertificate(format!("subject alternative names: {error}")))?;
    let first_dns = san.and_then(|ext| {
        ext.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
    });
    let identity = match first_dns {
        Some(dns) => dns,
        None => {
            let common_name = cert
                .subject()
                .iter_common_name()
                .next()
                .ok_or(TlsError::NoIdentity)?;
            common_name
                .as_str()
                .map_err(|error| TlsError::BadPeerCertificate(format!("common name: {error}")))?
                .to_string()
        }
    };
    validate_host_name(&identity).map_err(TlsError::InvalidIdentity)?;
    Ok(identity)
}

/// Asks whether a certificate serial (lowercase hex, as `pki::serial_from_cert` gives it) is revoked. The
/// collector's revocation list implements it; the TLS verifier consults it at every handshake.
pub trait RevocationCheck: Send + Sync + std::fmt::Debug {
    fn is_revoked(&self, serial_hex: &str) -> bool;
}

/// Collector side, the streaming listener: a client certificate chaining to `ca_pem`, unexpired and not
/// revoked, is **required** in the handshake, so a client without one gets a TLS alert and never a
/// completed handshake (nor the receive windows that come with it). Speaks the streaming protocol
/// (`wire::ALPN`) and renewal (`enroll::ENROLL_ALPN`), which needs the current certificate anyway.
pub fn server_config_streaming(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    revocations: Option<Arc<dyn RevocationCheck>>,
) -> Result<ServerConfig, TlsError> {
    collector_server_config(
        ca_pem,
        cert_pem,
        key_pem,
        revocations,
        true,
        vec![crate::wire::ALPN.to_vec(), crate::enroll::ENROLL_ALPN.to_vec()],
    )
}

/// Collector side, the enrollment listener (`enroll::ENROLL_ALPN` only).
///
/// A client certificate is verified when presented (chaining to `ca_pem`, unexpired, serial not revoked:
/// a revoked one is refused with the `certificate_revoked` alert) but is not required, because an agent that
/// is enrolling has none yet.
pub fn server_config_enrollment(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    revocations: Option<Arc<dyn RevocationCheck>>,
) -> Result<ServerConfig, TlsError> {
    collector_server_config(
        ca_pem,
        cert_pem,
        key_pem,
        revocations,
        false,
        vec![crate::enroll::ENROLL_ALPN.to_vec()],
    )
}

/// The two collector configurations. The server's own chain is sent with the CA certificates appended, so
/// that an agent pinning the CA by fingerprint finds it in the chain.
fn collector_server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    revocations: Option<Arc<dyn RevocationCheck>>,
    require_client_cert: bool,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let roots = Arc::new(root_store(ca_pem)?);
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
    let builder = if require_client_cert {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let inner = builder.build().map_err(|error| TlsError::Config {
        what: "client certificate verifier",
        error: error.to_string(),
    })?;
    let verifier = Arc::new(RevokingClientVerifier { inner, revocations });
    let mut chain = certificates(cert_pem, "server certificate")?;
    for ca in certificates(ca_pem, "CA certificate")? {
        if !chain.contains(&ca) {
            chain.push(ca);
        }
    }
    let key = private_key(key_pem, "server certificate")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config {
            what: "server TLS config",
            error: error.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|error| key_error(error, "server", "server TLS config"))?;
    config.alpn_protocols = alpn;
    config.max_early_data_size = 0;
    if require_client_cert {
        resumption::with_tickets(&mut config, ca_pem, cert_pem, key_pem)?;
    } else {
        no_resumption(&mut config);
    }
    Ok(config)
}

/// Every connection gets a full handshake.
fn no_resumption(config: &mut ServerConfig) {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
}

/// The fleet's client verifier plus the revocation list.
#[derive(Debug)]
struct RevokingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revocations: Option<Arc<dyn RevocationCheck>>,
}

impl ClientCertVerifier for RevokingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if let Some(revocations) = &self.revocations {
            let serial = crate::pki::serial_from_cert(end_entity)
                .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
            if revocations.is_revoked(&serial) {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Revoked,
                ));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the pinning verifier saw when the pin did not match, for the one line the agent prints.
#[derive(Debug, Default)]
pub struct PinObservation {
    seen: std::sync::Mutex<Option<String>>,
}

impl PinObservation {
    /// The fingerprint of the CA the collector presented (the last certificate of its chain), once a
    /// handshake was refused for a pin mismatch.
    pub fn mismatch_seen(&self) -> Option<String> {
        self.seen.lock().map(|seen| seen.clone()).unwrap_or(None)
    }
}

/// Agent side, before it has a certificate: trusts the collector only if its chain contains a certificate
/// whose SHA-256 fingerprint is `pinned` (as `ca init` prints it), and the leaf is valid for `server_name`
/// under that certificate. No client certificate is presented.
///
/// The verifier refuses during the handshake, so nothing (no token, no request) is sent to a collector
/// with another CA. The returned `PinObservation` says which fingerprint it saw.
pub fn client_config_pinned(
    pinned: &str,
    alpn: &[&[u8]],
) -> Result<(ClientConfig, Arc<PinObservation>), TlsError> {
    let pinned = crate::pki::parse_fingerprint(pinned).map_err(|error| TlsError::Config {
        what: "CA pin",
        error: error.to_string(),
    })?;
    let observation = Arc::new(PinObservation::default());
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier {
        pinned,
        provider: provider.clone(),
        observation: observation.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config {
            what: "client TLS config",
            error: error.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(alpn);
    config.enable_early_data = false;
    Ok((config, observation))
}

#[derive(Debug)]
struct PinnedCaVerifier {
    /// Canonical "SHA256:" + lowercase hex.
    pinned: String,
    provider: Arc<CryptoProvider>,
    observation: Arc<PinObservation>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity).chain(intermediates.iter());
        let Some(anchor) = chain
            .clone()
            .find(|cert| crate::pki::fingerprint_der(cert) == self.pinned)
        else {
            let seen = chain
                .last()
                .map(|cert| crate::pki::fingerprint_der(cert))
                .unwrap_or_default();
            if let Ok(mut slot) = self.observation.seen.lock() {
                *slot = Some(seen.clone());
            }
            return Err(rustls::Error::General(format!(
                "collector CA fingerprint mismatch: pinned {}, collector presented {seen}",
                self.pinned
            )));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|error| rustls::Error::General(format!("pinned CA unusable: {error}")))?;
        let rest: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|cert| *cert != anchor)
            .cloned()
            .collect();
        webpki.verify_server_cert(end_entity, &rest, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The agent's client certificate, replaceable while connections use it: a renewed certificate is put in
/// with `replace` and every later handshake presents it, without rebuilding the TLS config or restarting.
///
/// It also holds the sessions the collector's tickets let the agent resume: a ticket carries the
/// certificate of the handshake that earned it, so replacing the certificate forgets them, and the next
/// connection is a full handshake with the renewed one.
#[derive(Debug)]
pub struct ReloadableClientCert {
    current: std::sync::RwLock<Arc<CertifiedKey>>,
    sessions: Arc<resumption::SessionsOfOneCert>,
}

impl ReloadableClientCert {
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<ReloadableClientCert>, TlsError> {
        Ok(Arc::new(ReloadableClientCert {
            current: std::sync::RwLock::new(certified_key(cert_pem, key_pem)?),
            sessions: Arc::new(resumption::SessionsOfOneCert::new()),
        }))
    }

    /// Use this certificate and key from the next handshake on. A pair that does not match is refused and
    /// the current one stays.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let next = certified_key(cert_pem, key_pem)?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = next;
        // Tickets carry the old certificate: a resumed session would present it again.
        self.sessions.forget();
        Ok(())
    }

    /// The leaf certificate (DER) presented now.
    pub fn current_cert_der(&self) -> CertificateDer<'static> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        current.cert[0].clone()
    }
}

impl ResolvesClientCert for ReloadableClientCert {
    fn resolve(&self, _root_hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(current.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = certificates(cert_pem, "client certificate")?;
    let key = private_key(key_pem, "client certificate")?;
    CertifiedKey::from_der(certs, key, &provider())
        .map(Arc::new)
        .map_err(|error| key_error(error, "client", "client certificate"))
}

/// Agent side with a replaceable client certificate: trusts only `ca_pem`, presents whatever `cert` holds at
/// each handshake. An empty `alpn` means `crate::wire::ALPN`.
pub fn client_config_reloadable(
    ca_pem: &str,
    cert: Arc<ReloadableClientCert>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsError::Config {
            what: "client TLS config",
            error: error.to_string(),
        })?
        .with_root_certificates(root_store(ca_pem)?)
        .with_client_cert_resolver(cert.clone());
    config.resumption = rustls::client::Resumption::store(cert.sessions.clone());
    config.alpn_protocols = alpn_list(alpn);
    config.enable_early_data = false;
    Ok(config)
}

/// The ring provider, passed to every builder so that no process-wide default is needed or consulted.
/// ring with its TLS 1.3 suites only. rustls compiles TLS 1.2 suites in when any crate of the build enables
/// them (the HTTP client does), so the QUIC and enrollment configs name their suites explicitly.
///
/// TLS13_AES_128_GCM_SHA256 is preferred (the others stay allowed): its key schedule runs on SHA-256, which
/// this hardware computes with SHA extensions, where SHA-384's runs in software. In a fleet's reconnect after
/// a collector restart the SHA-384 key schedule was the largest single item of the collector's profile
/// (4.7 %, bench/RESULTS.md), and every packet's AES needs 10 rounds instead of 14.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suite.version() == &rustls::version::TLS13);
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    if alpn.is_empty() {
        vec![crate::wire::ALPN.to_vec()]
    } else {
        alpn.iter().map(|protocol| protocol.to_vec()).collect()
    }
}

fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, "CA certificate")? {
        roots
            .add(cert)
            .map_err(|error| TlsError::BadTrustAnchor { error })?;
    }
    Ok(roots)
}

fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::BadPem {
            what,
            detail: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn private_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey { what },
        other => TlsError::BadPem {
            what,
            detail: other.to_string(),
        },
    })
}

/// rustls checks that a certificate and its key belong together; say so plainly when they do not.
fn key_error(error: rustls::Error, side: &'static str, config: &'static str) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch { what: side },
        other => TlsError::Config {
            what: config,
            error: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{create_ca, issue_client_cert, issue_server_cert, CertAndKey};
    use rustls::{CertificateError, ClientConnection, Connection, ServerConnection};
    use rustls_pki_types::ServerName;
    use std::time::{Duration, SystemTime};

    const HOST: &str = "web-17.eu-1a";
    const DAY: Duration = Duration::from_secs(86_400);

    /// A CA with a collector certificate for "localhost" and 127.0.0.1. The certificates are issued for the
    /// real clock because rustls checks validity against it.
    struct Fleet {
        ca: CertAndKey,
        server: CertAndKey,
    }

    fn fleet() -> Fleet {
        fleet_named("headroom test ca")
    }

    fn fleet_named(ca_name: &str) -> Fleet {
        let now = SystemTime::now();
        let ca = create_ca(ca_name, now, 30).unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let server = issue_server_cert(&ca, &names, now, DAY).unwrap();
        Fleet { ca, server }
    }

    impl Fleet {
        fn client_cert(&self, host: &str) -> CertAndKey {
            issue_client_cert(&self.ca, host, SystemTime::now(), DAY).unwrap()
        }

        /// The streaming listener's config with this fleet's CA and server certificate.
        fn streaming_config(&self) -> Arc<ServerConfig> {
            let config = server_config_streaming(
                &self.ca.cert_pem,
                &self.server.cert_pem,
                &self.server.key_pem,
                None,
            );
            Arc::new(config.unwrap())
        }

        /// A client config presenting `cert`, and a connection maker to "localhost" with it.
        fn connector(&self, cert: &CertAndKey) -> impl Fn() -> ClientConnection {
            let pair = Some((cert.cert_pem.as_str(), cert.key_pem.as_str()));
            let client = Arc::new(client_config(&self.ca.cert_pem, pair, &[]).unwrap());
            move || ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap()
        }

        fn server(&self) -> ServerConnection {
            let config = server_config(
                &self.ca.cert_pem,
                &self.server.cert_pem,
                &self.server.key_pem,
                &[],
            )
            .unwrap();
            ServerConnection::new(Arc::new(config)).unwrap()
        }

        fn client(&self, cert: Option<&CertAndKey>) -> ClientConnection {
            connect(&self.ca.cert_pem, cert, "localhost")
        }
    }

    fn connect(ca_pem: &str, cert: Option<&CertAndKey>, server_name: &str) -> ClientConnection {
        let pair = cert.map(|cert| (cert.cert_pem.as_str(), cert.key_pem.as_str()));
        let config = client_config(ca_pem, pair, &[]).unwrap();
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        ClientConnection::new(Arc::new(config), name).unwrap()
    }

    /// Which side gave up on the handshake, and why.
    #[derive(Debug)]
    enum Failure {
        Client(rustls::Error),
        Server(rustls::Error),
    }

    /// Moves all pending TLS bytes from one connection to the other. Returns the receiver's error, if any.
    fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
        let mut buffer = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buffer).unwrap();
        }
        let mut unread = &buffer[..];
        while !unread.is_empty() {
            to.read_tls(&mut unread).unwrap();
            to.process_new_packets()?;
        }
        Ok(())
    }

    /// Drives both connections in memory until both finish the handshake or one side fails. A server that
    /// refuses the client still gets to send its alert, which the client then reports.
    fn handshake(
        client: ClientConnection,
        server: ServerConnection,
    ) -> Result<(Connection, Connection), Failure> {
        let mut client = Connection::from(client);
        let mut server = Connection::from(server);
        for _ in 0..16 {
            transfer(&mut client, &mut server).map_err(|error| {
                let _ = transfer(&mut server, &mut client);
                Failure::Server(error)
            })?;
            transfer(&mut server, &mut client).map_err(Failure::Client)?;
            if !client.is_handshaking() && !server.is_handshaking() {
                // TLS 1.3 clients finish before the server has seen their certificate; one more round lets
                // the server judge it.
                transfer(&mut client, &mut server).map_err(Failure::Server)?;
                return Ok((client, server));
            }
        }
        panic!("handshake did not finish in 16 rounds");
    }

    #[test]
    fn client_with_fleet_cert_connects_and_is_identified() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let (_, server) = handshake(fleet.client(Some(&cert)), fleet.server()).unwrap();
        let peer = server
            .peer_certificates()
            .expect("server sees the client certificate");
        assert_eq!(identity_from_cert(&peer[0]).unwrap(), HOST);
    }

    #[test]
    fn tls13_and_alpn_are_negotiated() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let (client, server) = handshake(fleet.client(Some(&cert)), fleet.server()).unwrap();
        for side in [&client, &server] {
            assert_eq!(side.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
            assert_eq!(side.alpn_protocol(), Some(crate::wire::ALPN));
        }
    }

    #[test]
    fn client_without_cert_is_refused() {
        let fleet = fleet();
        let failure = handshake(fleet.client(None), fleet.server()).unwrap_err();
        assert!(
            matches!(failure, Failure::Server(rustls::Error::NoCertificatesPresented)),
            "{failure:?}"
        );
    }

    /// Another fleet's CA is told apart by its name, or, when both fleets kept the same CA name, by the
    /// signature that the name's owner did not make.
    const FOREIGN_CAS: [(&str, CertificateError); 2] = [
        ("other fleet ca", CertificateError::UnknownIssuer),
        ("headroom test ca", CertificateError::BadSignature),
    ];

    #[test]
    fn client_with_cert_from_another_ca_is_refused() {
        let fleet = fleet();
        for (ca_name, reason) in FOREIGN_CAS {
            let foreign = fleet_named(ca_name).client_cert(HOST);
            let failure = handshake(fleet.client(Some(&foreign)), fleet.server()).unwrap_err();
            let expected = rustls::Error::InvalidCertificate(reason);
            assert!(
                matches!(&failure, Failure::Server(error) if *error == expected),
                "{ca_name}: {failure:?}"
            );
        }
    }

    #[test]
    fn expired_client_cert_is_refused() {
        let fleet = fleet();
        let long_ago = SystemTime::now() - 3 * DAY;
        let expired = issue_client_cert(&fleet.ca, HOST, long_ago, DAY).unwrap();
        let failure = handshake(fleet.client(Some(&expired)), fleet.server()).unwrap_err();
        assert!(
            matches!(
                &failure,
                Failure::Server(rustls::Error::InvalidCertificate(
                    CertificateError::ExpiredContext { .. }
                ))
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn client_trusting_another_ca_refuses_the_server() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        for (ca_name, reason) in FOREIGN_CAS {
            let other = fleet_named(ca_name);
            let client = connect(&other.ca.cert_pem, Some(&cert), "localhost");
            let failure = handshake(client, fleet.server()).unwrap_err();
            let expected = rustls::Error::InvalidCertificate(reason);
            assert!(
                matches!(&failure, Failure::Client(error) if *error == expected),
                "{ca_name}: {failure:?}"
            );
        }
    }

    #[test]
    fn client_reaches_server_by_ip_address() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let client = connect(&fleet.ca.cert_pem, Some(&cert), "127.0.0.1");
        handshake(client, fleet.server()).unwrap();
    }

    #[test]
    fn client_refuses_a_server_name_not_in_the_cert() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let client = connect(&fleet.ca.cert_pem, Some(&cert), "collector.example");
        let failure = handshake(client, fleet.server()).unwrap_err();
        assert!(
            matches!(
                &failure,
                Failure::Client(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn agent_cert_cannot_serve_as_collector_cert() {
        // An agent's certificate carries only the client-auth usage; a stolen one must not let its holder
        // impersonate the collector.
        let fleet = fleet();
        let agent = fleet.client_cert("localhost");
        let config = server_config(&fleet.ca.cert_pem, &agent.cert_pem, &agent.key_pem, &[]).unwrap();
        let server = ServerConnection::new(Arc::new(config)).unwrap();
        let cert = fleet.client_cert(HOST);
        let failure = handshake(fleet.client(Some(&cert)), server).unwrap_err();
        assert!(
            matches!(
                &failure,
                Failure::Client(rustls::Error::InvalidCertificate(
                    CertificateError::InvalidPurposeContext { .. }
                ))
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn alpn_mismatch_fails_the_handshake() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let pair = Some((cert.cert_pem.as_str(), cert.key_pem.as_str()));
        let config = client_config(&fleet.ca.cert_pem, pair, &[b"other/1"]).unwrap();
        let client =
            ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
        let failure = handshake(client, fleet.server()).unwrap_err();
        assert!(
            matches!(failure, Failure::Server(rustls::Error::NoApplicationProtocol)),
            "{failure:?}"
        );
    }

    #[test]
    fn configs_are_tls13_only_without_early_data() {
        let fleet = fleet();
        let server = server_config(
            &fleet.ca.cert_pem,
            &fleet.server.cert_pem,
            &fleet.server.key_pem,
            &[],
        )
        .unwrap();
        let client = client_config(&fleet.ca.cert_pem, None, &[b"x/1", b"y/2"]).unwrap();
        assert_eq!(server.max_early_data_size, 0);
        assert!(!client.enable_early_data);
        assert_eq!(server.alpn_protocols, vec![crate::wire::ALPN.to_vec()]);
        assert_eq!(client.alpn_protocols, vec![b"x/1".to_vec(), b"y/2".to_vec()]);
        for provider in [server.crypto_provider(), client.crypto_provider()] {
            assert!(provider
                .cipher_suites
                .iter()
                .all(|suite| suite.version() == &rustls::version::TLS13));
            assert_eq!(
                provider.cipher_suites.len(),
                3,
                "every TLS 1.3 suite of ring stays allowed"
            );
        }
    }

    #[test]
    fn issue_12_handshakes_settle_on_aes_128_gcm_with_sha256() {
        let fleet = fleet();
        let connect = fleet.connector(&fleet.client_cert(HOST));
        let server = ServerConnection::new(fleet.streaming_config()).unwrap();
        let (client, server) = handshake_ok(connect(), server);
        for side in [&client, &server] {
            assert_eq!(
                side.negotiated_cipher_suite().map(|suite| suite.suite()),
                Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
            );
        }
    }

    #[test]
    fn configs_convert_to_quic_configs() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let server = server_config(
            &fleet.ca.cert_pem,
            &fleet.server.cert_pem,
            &fleet.server.key_pem,
            &[],
        )
        .unwrap();
        let pair = Some((cert.cert_pem.as_str(), cert.key_pem.as_str()));
        let client = client_config(&fleet.ca.cert_pem, pair, &[]).unwrap();
        quinn_proto::crypto::rustls::QuicServerConfig::try_from(Arc::new(server)).unwrap();
        quinn_proto::crypto::rustls::QuicClientConfig::try_from(Arc::new(client)).unwrap();
    }

    #[test]
    fn missing_or_mismatched_keys_are_named() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let error = client_config(&fleet.ca.cert_pem, Some((&cert.cert_pem, "")), &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no private key found in PEM for client certificate (expected a \"BEGIN PRIVATE KEY\" block)"
        );
        let error = client_config(&fleet.ca.cert_pem, Some(("", &cert.key_pem)), &[]).unwrap_err();
        assert!(
            matches!(
                error,
                TlsError::NoCertificate {
                    what: "client certificate"
                }
            ),
            "{error}"
        );
        let error = server_config("", &fleet.server.cert_pem, &fleet.server.key_pem, &[]).unwrap_err();
        assert!(
            matches!(
                error,
                TlsError::NoCertificate {
                    what: "CA certificate"
                }
            ),
            "{error}"
        );
        let error =
            server_config(&fleet.ca.cert_pem, &fleet.server.cert_pem, &cert.key_pem, &[]).unwrap_err();
        assert!(
            matches!(error, TlsError::KeyMismatch { what: "server" }),
            "{error}"
        );
    }

    #[test]
    fn several_cas_are_all_trusted() {
        let fleet = fleet();
        let other = fleet_named("next year's ca");
        let both = format!("{}{}", other.ca.cert_pem, fleet.ca.cert_pem);
        let config = server_config(&both, &fleet.server.cert_pem, &fleet.server.key_pem, &[]).unwrap();
        let server = ServerConnection::new(Arc::new(config)).unwrap();
        let cert = other.client_cert("web-2");
        let (_, server) = handshake(fleet.client(Some(&cert)), server).unwrap();
        assert_eq!(
            identity_from_cert(&server.peer_certificates().unwrap()[0]).unwrap(),
            "web-2"
        );
    }

    #[test]
    fn identity_falls_back_to_the_common_name_and_is_validated() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let self_signed = |common_name: &str| {
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, common_name);
            params.self_signed(&key).unwrap().der().to_vec()
        };
        assert_eq!(identity_from_cert(&self_signed("db-3")).unwrap(), "db-3");
        // A DNS name wins over the common name.
        let mut params =
            rcgen::CertificateParams::new(vec!["10.0.0.9".to_string(), "web-9".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "db-3");
        let with_san = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(identity_from_cert(&with_san).unwrap(), "web-9");
        let error = identity_from_cert(&self_signed("../etc")).unwrap_err();
        assert!(matches!(error, TlsError::InvalidIdentity(_)), "{error}");
        assert!(matches!(
            identity_from_cert(b"garbage"),
            Err(TlsError::BadPeerCertificate(_))
        ));
    }

    fn revocation_list(revoked: &[String]) -> Arc<dyn RevocationCheck> {
        #[derive(Debug)]
        struct List(Vec<String>);
        impl RevocationCheck for List {
            fn is_revoked(&self, serial_hex: &str) -> bool {
                self.0.iter().any(|serial| serial == serial_hex)
            }
        }
        Arc::new(List(revoked.to_vec()))
    }

    /// The collector's enrollment listener, with `revoked` serials refused.
    fn enrolling_server(fleet: &Fleet, revoked: &[String]) -> ServerConnection {
        let check = revocation_list(revoked);
        let config = server_config_enrollment(
            &fleet.ca.cert_pem,
            &fleet.server.cert_pem,
            &fleet.server.key_pem,
            Some(check),
        )
        .unwrap();
        ServerConnection::new(Arc::new(config)).unwrap()
    }

    /// The collector's streaming listener, with `revoked` serials refused.
    fn streaming_server(fleet: &Fleet, revoked: &[String]) -> ServerConnection {
        let config = server_config_streaming(
            &fleet.ca.cert_pem,
            &fleet.server.cert_pem,
            &fleet.server.key_pem,
            Some(revocation_list(revoked)),
        )
        .unwrap();
        ServerConnection::new(Arc::new(config)).unwrap()
    }

    fn pinned_client(pin: &str) -> (ClientConnection, Arc<PinObservation>) {
        let (config, observation) = client_config_pinned(pin, &[crate::enroll::ENROLL_ALPN]).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        (
            ClientConnection::new(Arc::new(config), name).unwrap(),
            observation,
        )
    }

    #[test]
    fn pinned_client_enrolls_without_a_certificate() {
        let fleet = fleet();
        let pin = crate::pki::fingerprint_sha256(&fleet.ca.cert_pem).unwrap();
        let (client, observation) = pinned_client(&pin);
        let (client, server) = handshake(client, enrolling_server(&fleet, &[])).unwrap();
        assert!(server.peer_certificates().is_none());
        assert_eq!(client.alpn_protocol(), Some(crate::enroll::ENROLL_ALPN));
        assert_eq!(observation.mismatch_seen(), None);
    }

    #[test]
    fn pinned_client_refuses_another_ca_and_names_what_it_saw() {
        let fleet = fleet();
        let other = fleet_named("other fleet ca");
        let pin = crate::pki::fingerprint_sha256(&other.ca.cert_pem).unwrap();
        let (client, observation) = pinned_client(&pin);
        let failure = handshake(client, enrolling_server(&fleet, &[])).unwrap_err();
        let seen = crate::pki::fingerprint_sha256(&fleet.ca.cert_pem).unwrap();
        match failure {
            Failure::Client(rustls::Error::General(message)) => {
                assert!(message.contains(&seen), "{message}");
                assert!(message.contains(&pin), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(observation.mismatch_seen(), Some(seen));
    }

    #[test]
    fn pinned_client_still_checks_the_server_name() {
        let fleet = fleet();
        let pin = crate::pki::fingerprint_sha256(&fleet.ca.cert_pem).unwrap();
        let (config, _) = client_config_pinned(&pin, &[crate::enroll::ENROLL_ALPN]).unwrap();
        let name = ServerName::try_from("collector.example").unwrap();
        let client = ClientConnection::new(Arc::new(config), name).unwrap();
        let failure = handshake(client, enrolling_server(&fleet, &[])).unwrap_err();
        assert!(
            matches!(
                &failure,
                Failure::Client(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext { .. }
                ))
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn enrolling_server_verifies_presented_certs_and_refuses_revoked_ones() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let renewing = |cert: &CertAndKey| {
            let pair = (cert.cert_pem.as_str(), cert.key_pem.as_str());
            let config =
                client_config(&fleet.ca.cert_pem, Some(pair), &[crate::enroll::ENROLL_ALPN]).unwrap();
            ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
        };
        let (_, server) = handshake(renewing(&cert), enrolling_server(&fleet, &[])).unwrap();
        assert_eq!(
            identity_from_cert(&server.peer_certificates().unwrap()[0]).unwrap(),
            HOST
        );

        let serial = crate::pki::cert_info(&cert.cert_pem).unwrap().serial_hex;
        let failure = handshake(renewing(&cert), enrolling_server(&fleet, &[serial])).unwrap_err();
        assert!(
            matches!(
                failure,
                Failure::Server(rustls::Error::InvalidCertificate(CertificateError::Revoked))
            ),
            "{failure:?}"
        );
        let foreign = fleet_named("other fleet ca").client_cert(HOST);
        assert!(handshake(renewing(&foreign), enrolling_server(&fleet, &[])).is_err());
    }

    /// Issue 11: the streaming listener requires a client certificate in the handshake itself; a client
    /// without one gets an alert, while a certified one (streaming or renewing) gets through.
    #[test]
    fn issue_11_streaming_server_requires_a_client_certificate() {
        let fleet = fleet();
        let failure = handshake(fleet.client(None), streaming_server(&fleet, &[])).unwrap_err();
        assert!(
            matches!(failure, Failure::Server(rustls::Error::NoCertificatesPresented)),
            "{failure:?}"
        );
        let cert = fleet.client_cert(HOST);
        let (client, server) = handshake(fleet.client(Some(&cert)), streaming_server(&fleet, &[])).unwrap();
        assert_eq!(client.alpn_protocol(), Some(crate::wire::ALPN));
        assert!(server.peer_certificates().is_some());
        let serial = crate::pki::cert_info(&cert.cert_pem).unwrap().serial_hex;
        assert!(handshake(fleet.client(Some(&cert)), streaming_server(&fleet, &[serial])).is_err());
        // The enrollment listener speaks only enrollment.
        let failure = handshake(fleet.client(None), enrolling_server(&fleet, &[])).unwrap_err();
        assert!(
            matches!(failure, Failure::Server(rustls::Error::NoApplicationProtocol)),
            "{failure:?}"
        );
    }

    /// A revocation list that can grow while a server config uses it, as the collector's does.
    #[derive(Debug, Default)]
    struct GrowingList(std::sync::Mutex<Vec<String>>);

    impl RevocationCheck for GrowingList {
        fn is_revoked(&self, serial_hex: &str) -> bool {
            self.0.lock().unwrap().iter().any(|serial| serial == serial_hex)
        }
    }

    /// A handshake that must succeed; `handshake` delivers the ticket the server sends after it.
    fn handshake_ok(client: ClientConnection, server: ServerConnection) -> (Connection, Connection) {
        handshake(client, server).unwrap()
    }

    #[test]
    fn issue_12_streaming_sessions_resume_with_the_client_identity_of_the_full_handshake() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let revoked = Arc::new(GrowingList::default());
        let server = Arc::new(
            server_config_streaming(
                &fleet.ca.cert_pem,
                &fleet.server.cert_pem,
                &fleet.server.key_pem,
                Some(revoked.clone()),
            )
            .unwrap(),
        );
        let pair = Some((cert.cert_pem.as_str(), cert.key_pem.as_str()));
        let client = Arc::new(client_config(&fleet.ca.cert_pem, pair, &[]).unwrap());
        let connect =
            || ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        let accept = || ServerConnection::new(server.clone()).unwrap();

        let (_, first) = handshake_ok(connect(), accept());
        assert_eq!(first.handshake_kind(), Some(rustls::HandshakeKind::Full));
        let identity = first.peer_certificates().unwrap()[0].clone();

        // The resumed handshake skips the certificates and signatures, and the server sees the client
        // certificate of the full handshake: the identity is bound to the ticket.
        let (resumed_client, resumed) = handshake_ok(connect(), accept());
        assert_eq!(resumed.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        assert_eq!(
            resumed_client.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        assert_eq!(resumed.peer_certificates().unwrap()[0], identity);
        assert_eq!(
            identity_from_cert(&resumed.peer_certificates().unwrap()[0]).unwrap(),
            HOST
        );
        assert_eq!(
            check_client_cert_now(&identity, now_s(), Some(revoked.as_ref())),
            Ok(())
        );

        // Revoked in between: rustls resumes anyway (its verifier is not called again), which is why the
        // collector checks every handshake's certificate with `check_client_cert_now`.
        let serial = crate::pki::cert_info(&cert.cert_pem).unwrap().serial_hex;
        revoked.0.lock().unwrap().push(serial);
        let (_, after_revocation) = handshake(connect(), accept()).unwrap();
        assert_eq!(
            after_revocation.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        );
        let presented = after_revocation.peer_certificates().unwrap()[0].clone();
        assert_eq!(
            check_client_cert_now(&presented, now_s(), Some(revoked.as_ref())),
            Err(ClientCertNow::Revoked)
        );
        // Without a ticket (another agent process with the same key), the full handshake refuses it in the
        // verifier.
        let fresh = client_config(&fleet.ca.cert_pem, pair, &[]).unwrap();
        let fresh =
            ClientConnection::new(Arc::new(fresh), ServerName::try_from("localhost").unwrap()).unwrap();
        let failure = handshake(fresh, accept()).unwrap_err();
        assert!(
            matches!(
                failure,
                Failure::Server(rustls::Error::InvalidCertificate(CertificateError::Revoked))
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn issue_12_a_restart_resumes_and_other_files_or_another_listener_make_a_full_handshake() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let streaming = |server: &CertAndKey| {
            let config =
                server_config_streaming(&fleet.ca.cert_pem, &server.cert_pem, &server.key_pem, None).unwrap();
            Arc::new(config)
        };
        let pair = Some((cert.cert_pem.as_str(), cert.key_pem.as_str()));
        let client = Arc::new(client_config(&fleet.ca.cert_pem, pair, &[]).unwrap());
        let connect =
            || ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        let before_restart = streaming(&fleet.server);
        let (_, first) = handshake_ok(connect(), ServerConnection::new(before_restart).unwrap());
        assert_eq!(first.handshake_kind(), Some(rustls::HandshakeKind::Full));
        // A restarted collector builds its configuration anew from the same files: the ticket key is the
        // same, so the fleet resumes, with the identity of its full handshake.
        let (_, resumed) = handshake_ok(
            connect(),
            ServerConnection::new(streaming(&fleet.server)).unwrap(),
        );
        assert_eq!(resumed.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        assert_eq!(
            identity_from_cert(&resumed.peer_certificates().unwrap()[0]).unwrap(),
            HOST
        );
        // A new server certificate (and key) derives another ticket key: the ticket is refused, the handshake
        // is full and the client certificate verified again.
        let names = vec!["localhost".to_string()];
        let replaced = issue_server_cert(&fleet.ca, &names, SystemTime::now(), DAY).unwrap();
        let (_, server) = handshake_ok(connect(), ServerConnection::new(streaming(&replaced)).unwrap());
        assert_eq!(server.handshake_kind(), Some(rustls::HandshakeKind::Full));
        // The enrollment listener issues no tickets at all.
        let enrolling = enrolling_server(&fleet, &[]);
        let renewing =
            Arc::new(client_config(&fleet.ca.cert_pem, pair, &[crate::enroll::ENROLL_ALPN]).unwrap());
        let connect =
            || ClientConnection::new(renewing.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        handshake_ok(connect(), enrolling);
        let (_, again) = handshake_ok(connect(), enrolling_server(&fleet, &[]));
        assert_eq!(again.handshake_kind(), Some(rustls::HandshakeKind::Full));
    }

    #[test]
    fn issue_12_an_agent_refused_a_few_times_still_resumes() {
        let fleet = fleet();
        let server = fleet.streaming_config();
        let connect = fleet.connector(&fleet.client_cert(HOST));
        handshake_ok(connect(), ServerConnection::new(server.clone()).unwrap());
        // Attempts refused before any TLS answer (the collector busy): each took a ticket for its hello.
        for _ in 1..resumption::TICKETS_PER_HANDSHAKE {
            drop(connect());
        }
        let (_, resumed) = handshake_ok(connect(), ServerConnection::new(server).unwrap());
        assert_eq!(resumed.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    }

    #[test]
    fn issue_12_tickets_open_in_their_period_and_the_next_only_and_under_their_own_files_only() {
        use super::resumption::TicketKeys;
        let fleet = fleet();
        let keys = TicketKeys::derive(&fleet.ca.cert_pem, &fleet.server.cert_pem, &fleet.server.key_pem);
        let again = TicketKeys::derive(&fleet.ca.cert_pem, &fleet.server.cert_pem, &fleet.server.key_pem);
        let other = fleet_named("another ca");
        let elsewhere = TicketKeys::derive(&other.ca.cert_pem, &fleet.server.cert_pem, &fleet.server.key_pem);
        let start = 1_000 * TicketKeys::PERIOD_S + 17;
        let ticket = keys.seal_at(b"session state", start).unwrap();
        assert!(
            !ticket.windows(13).any(|w| w == b"session state"),
            "sealed, not in the clear"
        );
        // The same files in another process open it, in its period and the next; not after, not before.
        assert_eq!(
            again.open_at(&ticket, start).as_deref(),
            Some(&b"session state"[..])
        );
        let next = start + TicketKeys::PERIOD_S;
        assert_eq!(
            again.open_at(&ticket, next).as_deref(),
            Some(&b"session state"[..])
        );
        assert_eq!(again.open_at(&ticket, next + TicketKeys::PERIOD_S), None);
        assert_eq!(again.open_at(&ticket, start - TicketKeys::PERIOD_S), None);
        assert_eq!(
            u64::from(TicketKeys::LIFETIME_S),
            2 * TicketKeys::PERIOD_S,
            "the lifetime announced is the longest a ticket opens"
        );
        // Another CA derives other keys; a changed byte, a moved period or a cut ticket opens nowhere.
        assert_eq!(elsewhere.open_at(&ticket, start), None);
        for index in [0, 7, 8, 19, 20, ticket.len() - 1] {
            let mut tampered = ticket.clone();
            tampered[index] ^= 1;
            assert_eq!(keys.open_at(&tampered, start), None, "byte {index} changed");
        }
        assert_eq!(keys.open_at(&ticket[..ticket.len() - 1], start), None);
        assert_eq!(keys.open_at(&ticket[..10], start), None);
        // Two tickets of the same state differ (a fresh nonce each).
        assert_ne!(keys.seal_at(b"session state", start).unwrap(), ticket);
    }

    #[test]
    fn issue_12_a_renewed_certificate_forgets_the_tickets_of_the_old_one() {
        let fleet = fleet();
        let first = fleet.client_cert("web-1");
        let second = fleet.client_cert("web-2");
        let server = Arc::new(
            server_config_streaming(
                &fleet.ca.cert_pem,
                &fleet.server.cert_pem,
                &fleet.server.key_pem,
                None,
            )
            .unwrap(),
        );
        let cert = ReloadableClientCert::new(&first.cert_pem, &first.key_pem).unwrap();
        let client = Arc::new(client_config_reloadable(&fleet.ca.cert_pem, cert.clone(), &[]).unwrap());
        let connect = || {
            let client =
                ClientConnection::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
            let (_, server) = handshake_ok(client, ServerConnection::new(server.clone()).unwrap());
            let identity = identity_from_cert(&server.peer_certificates().unwrap()[0]).unwrap();
            (server.handshake_kind(), identity)
        };
        assert_eq!(
            connect(),
            (Some(rustls::HandshakeKind::Full), "web-1".to_string())
        );
        assert_eq!(
            connect(),
            (Some(rustls::HandshakeKind::Resumed), "web-1".to_string())
        );
        cert.replace(&second.cert_pem, &second.key_pem).unwrap();
        assert_eq!(
            connect(),
            (Some(rustls::HandshakeKind::Full), "web-2".to_string())
        );
        assert_eq!(
            connect(),
            (Some(rustls::HandshakeKind::Resumed), "web-2".to_string())
        );
    }

    #[test]
    fn issue_12_a_certificate_is_checked_against_its_validity_now() {
        let fleet = fleet();
        let cert = fleet.client_cert(HOST);
        let der = certificates(&cert.cert_pem, "client certificate").unwrap()[0].to_vec();
        let info = crate::pki::cert_info_der(&der).unwrap();
        assert_eq!(check_client_cert_now(&der, info.not_after_s, None), Ok(()));
        assert_eq!(
            check_client_cert_now(&der, info.not_after_s + 1, None),
            Err(ClientCertNow::Expired)
        );
        assert_eq!(
            check_client_cert_now(&der, info.not_before_s - 1, None),
            Err(ClientCertNow::NotYetValid)
        );
        assert!(matches!(
            check_client_cert_now(b"garbage", info.not_before_s, None),
            Err(ClientCertNow::Unreadable(_))
        ));
    }

    fn now_s() -> i64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn reloadable_client_cert_presents_the_replacement() {
        let fleet = fleet();
        let first = fleet.client_cert("web-1");
        let second = fleet.client_cert("web-2");
        let cert = ReloadableClientCert::new(&first.cert_pem, &first.key_pem).unwrap();
        let config = Arc::new(client_config_reloadable(&fleet.ca.cert_pem, cert.clone(), &[]).unwrap());
        let connect = || {
            let client =
                ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
            let (_, server) = handshake(client, fleet.server()).unwrap();
            identity_from_cert(&server.peer_certificates().unwrap()[0]).unwrap()
        };
        assert_eq!(connect(), "web-1");
        // A mismatched pair is refused and the current certificate stays.
        assert!(cert.replace(&second.cert_pem, &first.key_pem).is_err());
        assert_eq!(connect(), "web-1");
        cert.replace(&second.cert_pem, &second.key_pem).unwrap();
        assert_eq!(connect(), "web-2");
    }
}
