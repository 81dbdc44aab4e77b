//! The private CA of a headroom fleet: creating it, issuing agent and collector certificates, storing keys.
//!
//! Every key is ECDSA P-256. Certificates are built in memory from a `now` passed in by the caller; the only
//! IO here is reading and writing PEM files, which the `ca` commands of the collector use.

use crate::files;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SecureRandom;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far before `now` a new certificate becomes valid. Agents and the collector run on different hosts
/// whose clocks drift; without this margin a certificate issued on a host with a fast clock would be "not yet
/// valid" on a host with a slow one for its first minutes. A certificate valid for less than 100 minutes is
/// backdated by a tenth of its validity instead, so that its renewal point (two thirds of the way from
/// `not_before` to `not_after`) still lies in the future when it is issued.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(10 * 60);

/// Longest host name accepted as an identity (the DNS limit).
pub const MAX_HOST_NAME_LEN: usize = 253;

/// Longest single label of a host name (the DNS limit).
const MAX_LABEL_LEN: usize = 63;

/// Length of a certificate serial number. Random and 16 bytes long, as RFC 5280 allows up to 20 and CAs
/// that cannot track serials are advised to use at least 64 random bits.
const SERIAL_LEN_BYTES: usize = 16;

/// A certificate and its private key, both PEM encoded.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

// The key is deliberately left out so that logging a `CertAndKey` cannot leak it.
impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// What `cert_info` reads out of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number as lowercase hex without separators.
    pub serial_hex: String,
    /// End of validity, unix seconds.
    pub not_after_s: i64,
    /// Start of validity, unix seconds.
    pub not_before_s: i64,
    /// DNS subject alternative names, in certificate order.
    pub dns_names: Vec<String>,
}

/// Everything that can go wrong creating, issuing, reading or writing certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("reading {path}: {error}{fix}", error = describe_io(error), fix = fix_suffix(fix))]
    Read {
        path: PathBuf,
        error: io::Error,
        fix: String,
    },
    #[error("{path}: no PEM block found, expected {what}{fix}", fix = fix_suffix(fix))]
    NotPem {
        path: PathBuf,
        what: String,
        fix: String,
    },
    #[error("writing {path}: {error} (check that the directory exists and is writable)",
        error = describe_io(error))]
    Write { path: PathBuf, error: io::Error },
    #[error("invalid host name {host:?}: {reason}")]
    InvalidHostName { host: String, reason: String },
    #[error("no names given for the server certificate (pass the collector's DNS name or IP address)")]
    NoServerNames,
    #[error("validity of {validity_s}s from unix time {now_s} is out of range (use a shorter validity)")]
    ValidityOutOfRange { now_s: i64, validity_s: u64 },
    #[error("the clock is before 1970 (fix the system clock)")]
    ClockBeforeEpoch,
    #[error("reading the CA: {0} (pass the ca.crt and ca.key written by \"headroom-collector ca init\")")]
    BadCa(String),
    #[error(
        "the CA private key does not match the CA certificate (use the ca.key created together with ca.crt)"
    )]
    CaKeyMismatch,
    #[error("certificate PEM: {0}")]
    BadCertificate(String),
    #[error("generating {what}: {error}")]
    Generate { what: &'static str, error: rcgen::Error },
    #[error("the system random number generator failed")]
    Random,
    #[error("invalid label {label:?}: {reason}")]
    InvalidLabel { label: String, reason: String },
    #[error("certificate request: {0} (the agent must send a PKCS#10 request signed with its own key)")]
    BadRequest(String),
    #[error("CA fingerprint {0:?} is not SHA256: followed by 64 hex digits (copy it from \"headroom-collector ca init\")")]
    BadFingerprint(String),
}

/// Renders an IO error without Rust's trailing "(os error N)", which means nothing to an operator.
fn describe_io(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text[..cut].to_string(),
        _ => text,
    }
}

fn fix_suffix(fix: &str) -> String {
    if fix.is_empty() {
        String::new()
    } else {
        format!(" ({fix})")
    }
}

/// Creates a self-signed CA that may sign leaf certificates only (path length 0).
pub fn create_ca(common_name: &str, now: SystemTime, validity_days: u32) -> Result<CertAndKey, PkiError> {
    let validity = Duration::from_secs(u64::from(validity_days) * 86_400);
    let mut params = base_params(common_name, now, validity)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = new_key("the CA key")?;
    let cert = params.self_signed(&key).map_err(|error| PkiError::Generate {
        what: "the CA certificate",
        error,
    })?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Client certificate for an agent: subject CN and one DNS SAN = host (the host's identity); client-auth EKU.
pub fn issue_client_cert(
    ca: &CertAndKey,
    host: &str,
    now: SystemTime,
    validity: Duration,
) -> Result<CertAndKey, PkiError> {
    validate_host_name(host)?;
    let mut params = base_params(host, now, validity)?;
    params.subject_alt_names = vec![SanType::DnsName(dns_san(host)?)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_leaf(ca, params, "the client certificate")
}

/// Server certificate for the collector: DNS SANs for names, IP SANs for names that parse as IPs;
/// server-auth EKU. The subject CN is the first name.
pub fn issue_server_cert(
    ca: &CertAndKey,
    names: &[String],
    now: SystemTime,
    validity: Duration,
) -> Result<CertAndKey, PkiError> {
    let first = names.first().ok_or(PkiError::NoServerNames)?;
    let mut sans = Vec::with_capacity(names.len());
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => {
                validate_host_name(name)?;
                sans.push(SanType::DnsName(dns_san(name)?));
            }
        }
    }
    let mut params = base_params(first, now, validity)?;
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign_leaf(ca, params, "the server certificate")
}

/// Validate a host name for use as identity: 1..=253 chars, DNS-label charset [a-z0-9-.] (lowercase), no
/// leading dot.
///
/// Labels must also be non-empty, at most 63 characters and must not begin or end with '-', so that every
/// accepted name is also a valid DNS name in a certificate.
pub fn validate_host_name(host: &str) -> Result<(), PkiError> {
    let invalid = |reason: String| {
        Err(PkiError::InvalidHostName {
            host: host.to_string(),
            reason,
        })
    };
    if host.is_empty() {
        return invalid("it is empty (set the host name, e.g. \"web-17\")".to_string());
    }
    if host.len() > MAX_HOST_NAME_LEN {
        return invalid(format!(
            "it is {} characters long, the limit is {MAX_HOST_NAME_LEN}",
            host.len()
        ));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '.'))
    {
        let reason = if bad.is_ascii_uppercase() {
            format!(
                "it contains uppercase {bad:?} (host names are lowercase: use {:?})",
                host.to_ascii_lowercase()
            )
        } else {
            format!("it contains {bad:?} (only a-z, 0-9, '-' and '.' are allowed)")
        };
        return invalid(reason);
    }
    if host.starts_with('.') {
        return invalid("it starts with '.'".to_string());
    }
    if host.ends_with('.') {
        return invalid("it ends with '.' (drop the trailing dot)".to_string());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return invalid("it contains an empty label \"..\"".to_string());
        }
        if label.len() > MAX_LABEL_LEN {
            return invalid(format!(
                "label {label:?} is longer than {MAX_LABEL_LEN} characters"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid(format!("label {label:?} begins or ends with '-'"));
        }
    }
    Ok(())
}

/// Reads a PEM file, naming the file, what it should hold and how to fix a failure in the error.
///
/// `what` describes the content ("the CA key"), `fix` the remedy (`run "headroom-collector ca init" first`).
pub fn read_pem(path: &Path, what: &str, fix: &str) -> Result<String, PkiError> {
    let text = std::fs::read_to_string(path).map_err(|error| PkiError::Read {
        path: path.to_path_buf(),
        error,
        fix: fix.to_string(),
    })?;
    if !text.contains("-----BEGIN ") {
        return Err(PkiError::NotPem {
            path: path.to_path_buf(),
            what: what.to_string(),
            fix: fix.to_string(),
        });
    }
    Ok(text)
}

/// Write a private key PEM atomically (temp file in the same dir, mode 0600 from creation, fsync, rename).
pub fn write_private_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_atomically(path, pem.as_bytes(), files::PRIVATE_FILE)
}

/// Write a certificate PEM atomically, mode 0644.
pub fn write_public_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_atomically(path, pem.as_bytes(), files::PUBLIC_FILE)
}

/// SHA-256 of the DER of the first certificate in a PEM, formatted "SHA256:" + lowercase hex.
pub fn fingerprint_sha256(cert_pem: &str) -> Result<String, PkiError> {
    let der = first_cert_der(cert_pem)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(format!("SHA256:{}", to_hex(digest.as_ref())))
}

/// Serial number (hex), validity and DNS names of the first certificate in a PEM.
pub fn cert_info(cert_pem: &str) -> Result<CertInfo, PkiError> {
    cert_info_der(&first_cert_der(cert_pem)?)
}

/// Serial number (hex), validity and DNS names of a certificate in DER.
pub fn cert_info_der(der: &[u8]) -> Result<CertInfo, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|error| PkiError::BadCertificate(format!("not a valid X.509 certificate: {error}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|error| PkiError::BadCertificate(format!("bad subject alternative names: {error}")))?;
    let dns_names = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        serial_hex: to_hex(cert.raw_serial()),
        not_after_s: cert.validity().not_after.timestamp(),
        not_before_s: cert.validity().not_before.timestamp(),
        dns_names,
    })
}

impl CertInfo {
    /// When the certificate was issued (unix seconds): `not_before` undoes the backdating of
    /// `NOT_BEFORE_BACKDATE` (ten minutes, or a tenth of the validity for short ones, so a tenth of the
    /// validity plus backdate is an eleventh of the whole span).
    pub fn issued_s(&self) -> i64 {
        let span_s = self.not_after_s.saturating_sub(self.not_before_s).max(0);
        let backdate_s = (NOT_BEFORE_BACKDATE.as_secs() as i64).min(span_s / 11);
        self.not_before_s.saturating_add(backdate_s)
    }
}

fn first_cert_der(cert_pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::BadCertificate("no \"BEGIN CERTIFICATE\" block found".to_string())
        }
        other => PkiError::BadCertificate(format!("malformed PEM: {other}")),
    })
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Subject, validity window and a random serial; the parts every certificate here shares.
fn base_params(
    common_name: &str,
    now: SystemTime,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let now_s = unix_seconds(now)?;
    let out_of_range = || PkiError::ValidityOutOfRange {
        now_s,
        validity_s: validity.as_secs(),
    };
    let validity_s = i64::try_from(validity.as_secs()).map_err(|_| out_of_range())?;
    let backdate_s = NOT_BEFORE_BACKDATE.as_secs().min(validity.as_secs() / 10) as i64;
    let not_before_s = now_s - backdate_s;
    let not_after_s = now_s.checked_add(validity_s).ok_or_else(out_of_range)?;
    let mut params = CertificateParams::default();
    params.not_before =
        time::OffsetDateTime::from_unix_timestamp(not_before_s).map_err(|_| out_of_range())?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after_s).map_err(|_| out_of_range())?;
    params.serial_number = Some(random_serial()?);
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    Ok(params)
}

fn unix_seconds(now: SystemTime) -> Result<i64, PkiError> {
    let since_epoch = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::ClockBeforeEpoch)?;
    Ok(since_epoch.as_secs() as i64)
}

/// A positive serial with a non-zero first byte, so that it always encodes as exactly 16 bytes.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; SERIAL_LEN_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

fn new_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|error| PkiError::Generate { what, error })
}

fn dns_san(name: &str) -> Result<rcgen::string::Ia5String, PkiError> {
    rcgen::string::Ia5String::try_from(name).map_err(|error| PkiError::InvalidHostName {
        host: name.to_string(),
        reason: error.to_string(),
    })
}

/// Signs a leaf certificate (new key, digital-signature key usage) with the CA.
fn sign_leaf(
    ca: &CertAndKey,
    mut params: CertificateParams,
    what: &'static str,
) -> Result<CertAndKey, PkiError> {
    let issuer = load_issuer(ca)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let key = new_key("a leaf key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|error| PkiError::Generate { what, error })?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Loads the CA as an issuer, refusing a key that does not belong to the certificate: certificates signed by
/// the wrong key would only fail later, at every handshake, far from the mistake.
fn load_issuer(ca: &CertAndKey) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|error| PkiError::BadCa(format!("CA key: {error}")))?;
    let der =
        first_cert_der(&ca.cert_pem).map_err(|error| PkiError::BadCa(format!("CA certificate: {error}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|error| PkiError::BadCa(format!("CA certificate: {error}")))?;
    if !cert.is_ca() {
        return Err(PkiError::BadCa(
            "the CA certificate is not marked as a CA".to_string(),
        ));
    }
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::CaKeyMismatch);
    }
    Issuer::from_ca_cert_der(&der, key).map_err(|error| PkiError::BadCa(format!("CA certificate: {error}")))
}

/// Prefix of the SAN URIs that carry the labels an enrollment token granted: `urn:headroom:label:KEY=VALUE`.
pub const LABEL_URI_PREFIX: &str = "urn:headroom:label:";

/// Longest label key or value written into a certificate.
pub const MAX_CERT_LABEL_LEN: usize = 63;

/// Checks a label for a certificate: the key in the one label-key character set (`wire::is_label_key`:
/// 1..=63 of `a-z`, `0-9`, `_`), the value 1..=63 characters of `[A-Za-z0-9._-]`, so that it fits a SAN URI
/// without escaping and cannot smuggle a '=' into the key.
pub fn validate_label(key: &str, value: &str) -> Result<(), PkiError> {
    if !crate::wire::is_label_key(key) {
        return Err(PkiError::InvalidLabel {
            label: format!("{key}={value}"),
            reason: format!(
                "the key must be 1 to {} of a-z, 0-9 and _, like \"zone\"",
                crate::wire::MAX_LABEL_KEY_LEN
            ),
        });
    }
    let reason = if value.is_empty() {
        Some("is empty".to_string())
    } else if value.len() > MAX_CERT_LABEL_LEN {
        Some(format!("is longer than {MAX_CERT_LABEL_LEN} characters"))
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|bad| format!("contains {bad:?} (only A-Z, a-z, 0-9, '.', '_' and '-' are allowed)"))
    };
    if let Some(reason) = reason {
        return Err(PkiError::InvalidLabel {
            label: format!("{key}={value}"),
            reason: format!("the value {reason}"),
        });
    }
    Ok(())
}

/// A new ECDSA P-256 private key, PEM encoded; the agent creates it on its own host and never sends it.
pub fn generate_key_pem() -> Result<String, PkiError> {
    Ok(new_key("the host key")?.serialize_pem())
}

/// A certificate signing request (DER) for `host` made with the private key in `key_pem`.
///
/// The collector takes only the public key from it; the names in the certificate come from the validated
/// request, so nothing else here needs to be trusted.
pub fn create_csr(key_pem: &str, host: &str) -> Result<Vec<u8>, PkiError> {
    validate_host_name(host)?;
    let key = KeyPair::from_pem(key_pem).map_err(|error| PkiError::Generate {
        what: "the request key",
        error,
    })?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, host);
    params.distinguished_name = name;
    let csr = params
        .serialize_request(&key)
        .map_err(|error| PkiError::Generate {
            what: "the certificate request",
            error,
        })?;
    Ok(csr.der().to_vec())
}

/// Signs an agent certificate for `host` with the public key of `csr_der`.
///
/// Only the public key (after checking the request's self-signature, which proves the requester holds the
/// private key) is taken from the request. The subject and DNS SAN are `host`; every label becomes a SAN URI
/// `urn:headroom:label:KEY=VALUE`; the usage is client authentication. Returns the certificate PEM.
pub fn sign_csr(
    ca: &CertAndKey,
    csr_der: &[u8],
    host: &str,
    labels: &BTreeMap<String, String>,
    now: SystemTime,
    validity: Duration,
) -> Result<String, PkiError> {
    validate_host_name(host)?;
    let csr_der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der);
    let request = rcgen::CertificateSigningRequestParams::from_der(&csr_der)
        .map_err(|error| PkiError::BadRequest(error.to_string()))?;
    let mut params = base_params(host, now, validity)?;
    let mut sans = vec![SanType::DnsName(dns_san(host)?)];
    for (key, value) in labels {
        validate_label(key, value)?;
        let uri = format!("{LABEL_URI_PREFIX}{key}={value}");
        let uri =
            rcgen::string::Ia5String::try_from(uri.as_str()).map_err(|error| PkiError::InvalidLabel {
                label: format!("{key}={value}"),
                reason: error.to_string(),
            })?;
        sans.push(SanType::URI(uri));
    }
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let issuer = load_issuer(ca)?;
    let cert = params
        .signed_by(&request.public_key, &issuer)
        .map_err(|error| PkiError::Generate {
            what: "the agent certificate",
            error,
        })?;
    Ok(cert.pem())
}

/// Checks that `csr_der` is a request `sign_csr` can use (it parses, and its self-signature is valid).
pub fn verify_csr(csr_der: &[u8]) -> Result<(), PkiError> {
    let csr_der = rustls_pki_types::CertificateSigningRequestDer::from(csr_der);
    rcgen::CertificateSigningRequestParams::from_der(&csr_der)
        .map(|_| ())
        .map_err(|error| PkiError::BadRequest(error.to_string()))
}

/// The labels written into a certificate by `sign_csr` (SAN URIs `urn:headroom:label:KEY=VALUE`). Other
/// URIs are ignored; a malformed label URI is an error, as only the collector writes them.
pub fn labels_from_cert(cert_der: &[u8]) -> Result<BTreeMap<String, String>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|error| PkiError::BadCertificate(format!("not a valid X.509 certificate: {error}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|error| PkiError::BadCertificate(format!("bad subject alternative names: {error}")))?;
    let mut labels = BTreeMap::new();
    let Some(san) = san else {
        return Ok(labels);
    };
    for name in &san.value.general_names {
        let x509_parser::extensions::GeneralName::URI(uri) = name else {
            continue;
        };
        let Some(pair) = uri.strip_prefix(LABEL_URI_PREFIX) else {
            continue;
        };
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| PkiError::BadCertificate(format!("label URI {uri:?} has no '='")))?;
        labels.insert(key.to_string(), value.to_string());
    }
    Ok(labels)
}

/// Serial number of a certificate (DER) as lowercase hex, the form `cert list` and `cert revoke` use.
pub fn serial_from_cert(cert_der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|error| PkiError::BadCertificate(format!("not a valid X.509 certificate: {error}")))?;
    Ok(to_hex(cert.raw_serial()))
}

/// SHA-256 of a certificate's DER, formatted "SHA256:" + lowercase hex (as `fingerprint_sha256` for PEM).
pub fn fingerprint_der(cert_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert_der);
    format!("SHA256:{}", to_hex(digest.as_ref()))
}

/// Normalises a fingerprint typed by an operator: "SHA256:" prefix optional, case and ':' separators
/// ignored. Returns the canonical "SHA256:" + 64 lowercase hex digits.
pub fn parse_fingerprint(text: &str) -> Result<String, PkiError> {
    let trimmed = text.trim();
    let hex_part = trimmed
        .strip_prefix("SHA256:")
        .or_else(|| trimmed.strip_prefix("sha256:"))
        .unwrap_or(trimmed);
    let hex: String = hex_part
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(PkiError::BadFingerprint(text.to_string()));
    }
    Ok(format!("SHA256:{hex}"))
}

/// [`files::write_atomic`] with the error naming the file.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    files::write_atomic(path, bytes, mode).map_err(|error| PkiError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn accepts_and_rejects_host_names() {
        for good in ["web-17.eu-1a", "a", "db01", "x.y.z", &"a".repeat(63)] {
            assert!(validate_host_name(good).is_ok(), "{good:?} should be accepted");
        }
        let too_long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".");
        assert_eq!(too_long.len(), 254);
        let long_label = "a".repeat(64);
        for bad in [
            "",
            "Web",
            "a b",
            "../x",
            ".a",
            "a.",
            "a..b",
            "-a",
            "a-",
            "a_b",
            &too_long,
            &long_label,
        ] {
            assert!(validate_host_name(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn uppercase_host_name_error_suggests_lowercase() {
        let message = validate_host_name("Web").unwrap_err().to_string();
        assert!(message.contains("\"web\""), "{message}");
    }

    #[test]
    fn private_pem_is_0600_and_public_pem_is_0644() {
        let dir = tempfile::tempdir().unwrap();
        let ca = create_ca("test ca", now(), 30).unwrap();
        let key_path = dir.path().join("ca.key");
        let cert_path = dir.path().join("ca.crt");
        write_private_pem(&key_path, &ca.key_pem).unwrap();
        write_public_pem(&cert_path, &ca.cert_pem).unwrap();
        assert_eq!(mode_of(&key_path), 0o600);
        assert_eq!(mode_of(&cert_path), 0o644);
        assert_eq!(std::fs::read_to_string(&key_path).unwrap(), ca.key_pem);
        assert_eq!(
            read_pem(&cert_path, "the CA certificate", "").unwrap(),
            ca.cert_pem
        );
        // No temporary file is left beside the written ones.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn rewriting_a_key_replaces_it_and_keeps_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_pem(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn write_into_missing_directory_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("ca.key");
        let message = write_private_pem(&path, "x").unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("writing {}: ", path.display())),
            "{message}"
        );
    }

    #[test]
    fn read_pem_errors_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.key");
        let fix = "run \"headroom-collector ca init\" first";
        let message = read_pem(&missing, "the CA key", fix).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "reading {}: No such file or directory (run \"headroom-collector ca init\" first)",
                missing.display()
            )
        );
        let not_pem = dir.path().join("empty.key");
        std::fs::write(&not_pem, "").unwrap();
        let message = read_pem(&not_pem, "the CA key", fix).unwrap_err().to_string();
        assert!(
            message.contains("empty.key: no PEM block found, expected the CA key"),
            "{message}"
        );
    }

    #[test]
    fn fingerprint_is_sha256_of_the_der() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let fingerprint = fingerprint_sha256(&ca.cert_pem).unwrap();
        let hex = fingerprint.strip_prefix("SHA256:").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{hex}");
        let der = first_cert_der(&ca.cert_pem).unwrap();
        let expected = ring::digest::digest(&ring::digest::SHA256, &der);
        assert_eq!(hex, to_hex(expected.as_ref()));
        let other = create_ca("test ca", now(), 30).unwrap();
        assert_ne!(fingerprint, fingerprint_sha256(&other.cert_pem).unwrap());
        assert!(fingerprint_sha256("not a certificate").is_err());
    }

    #[test]
    fn cert_info_round_trip() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let validity = Duration::from_secs(7 * 86_400);
        let client = issue_client_cert(&ca, "web-17.eu-1a", now(), validity).unwrap();
        let info = cert_info(&client.cert_pem).unwrap();
        let now_s = unix_seconds(now()).unwrap();
        assert_eq!(info.not_after_s, now_s + 7 * 86_400);
        assert_eq!(info.not_before_s, now_s - NOT_BEFORE_BACKDATE.as_secs() as i64);
        assert_eq!(info.issued_s(), now_s);
        assert_eq!(info.dns_names, vec!["web-17.eu-1a".to_string()]);
        assert_eq!(info.serial_hex.len(), 2 * SERIAL_LEN_BYTES, "{}", info.serial_hex);

        // A certificate of seconds is backdated by a tenth of its life, so renewal is not due at once.
        let short = issue_client_cert(&ca, "web-17.eu-1a", now(), Duration::from_secs(30)).unwrap();
        let short_info = cert_info(&short.cert_pem).unwrap();
        assert_eq!(short_info.not_before_s, now_s - 3);
        assert_eq!(short_info.issued_s(), now_s);
        assert!(matches!(
            crate::enroll::renewal_state(short_info.not_before_s, short_info.not_after_s, now_s),
            crate::enroll::RenewalState::NotYet { .. }
        ));

        let ca_info = cert_info(&ca.cert_pem).unwrap();
        assert_eq!(ca_info.not_after_s, now_s + 30 * 86_400);
        assert!(ca_info.dns_names.is_empty());
        assert_ne!(ca_info.serial_hex, info.serial_hex);
    }

    #[test]
    fn serials_are_random() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let serial = |host: &str| {
            let cert = issue_client_cert(&ca, host, now(), Duration::from_secs(86_400)).unwrap();
            cert_info(&cert.cert_pem).unwrap().serial_hex
        };
        // The same subject issued twice must still get two serials.
        assert_ne!(serial("web-1"), serial("web-1"));
    }

    #[test]
    fn server_cert_has_dns_and_ip_names() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let names = vec![
            "collector.example".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let server = issue_server_cert(&ca, &names, now(), Duration::from_secs(86_400)).unwrap();
        let der = first_cert_der(&server.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let rendered: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert_eq!(rendered.len(), 3, "{rendered:?}");
        assert_eq!(
            cert_info(&server.cert_pem).unwrap().dns_names,
            vec!["collector.example".to_string()]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
    }

    #[test]
    fn server_cert_needs_a_valid_name() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let day = Duration::from_secs(86_400);
        assert!(matches!(
            issue_server_cert(&ca, &[], now(), day),
            Err(PkiError::NoServerNames)
        ));
        let bad = vec!["Collector".to_string()];
        assert!(matches!(
            issue_server_cert(&ca, &bad, now(), day),
            Err(PkiError::InvalidHostName { .. })
        ));
    }

    #[test]
    fn client_cert_refuses_an_invalid_host() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let result = issue_client_cert(&ca, "../x", now(), Duration::from_secs(86_400));
        assert!(matches!(result, Err(PkiError::InvalidHostName { .. })));
    }

    #[test]
    fn issuing_with_a_foreign_ca_key_is_refused() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let other = create_ca("other ca", now(), 30).unwrap();
        let mixed = CertAndKey {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem,
        };
        let result = issue_client_cert(&mixed, "web-1", now(), Duration::from_secs(86_400));
        assert!(matches!(result, Err(PkiError::CaKeyMismatch)), "{result:?}");
    }

    #[test]
    fn a_leaf_cannot_act_as_ca() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let leaf = issue_client_cert(&ca, "web-1", now(), Duration::from_secs(86_400)).unwrap();
        let result = issue_client_cert(&leaf, "web-2", now(), Duration::from_secs(86_400));
        assert!(matches!(result, Err(PkiError::BadCa(_))), "{result:?}");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn csr_signing_takes_the_key_from_the_request_and_names_from_the_caller() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let key = generate_key_pem().unwrap();
        // The request asks for another name; only its public key is used.
        let csr = create_csr(&key, "evil-host").unwrap();
        verify_csr(&csr).unwrap();
        let labels = BTreeMap::from([
            ("group".to_string(), "web".to_string()),
            ("zone".to_string(), "eu-1a".to_string()),
        ]);
        let pem = sign_csr(&ca, &csr, "web-1", &labels, now(), Duration::from_secs(3600)).unwrap();
        let der = first_cert_der(&pem).unwrap();
        assert_eq!(cert_info(&pem).unwrap().dns_names, vec!["web-1".to_string()]);
        assert_eq!(labels_from_cert(&der).unwrap(), labels);
        assert_eq!(
            serial_from_cert(&der).unwrap(),
            cert_info(&pem).unwrap().serial_hex
        );
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let request_key = KeyPair::from_pem(&key).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            request_key.public_key_raw()
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.is_ca());
    }

    #[test]
    fn tampered_requests_and_bad_labels_are_refused() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let key = generate_key_pem().unwrap();
        let mut csr = create_csr(&key, "web-1").unwrap();
        let middle = csr.len() / 2;
        csr[middle] ^= 0x01;
        assert!(matches!(verify_csr(&csr), Err(PkiError::BadRequest(_))));
        let good = create_csr(&key, "web-1").unwrap();
        let bad_labels = BTreeMap::from([("group".to_string(), "a=b".to_string())]);
        let result = sign_csr(&ca, &good, "web-1", &bad_labels, now(), Duration::from_secs(60));
        assert!(matches!(result, Err(PkiError::InvalidLabel { .. })), "{result:?}");
        let result = sign_csr(
            &ca,
            &good,
            "Web 1",
            &BTreeMap::new(),
            now(),
            Duration::from_secs(60),
        );
        assert!(
            matches!(result, Err(PkiError::InvalidHostName { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn certificates_without_label_uris_have_no_labels() {
        let ca = create_ca("test ca", now(), 30).unwrap();
        let client = issue_client_cert(&ca, "web-1", now(), Duration::from_secs(60)).unwrap();
        let der = first_cert_der(&client.cert_pem).unwrap();
        assert!(labels_from_cert(&der).unwrap().is_empty());
    }

    #[test]
    fn fingerprints_are_normalised() {
        let canonical = format!("SHA256:{}", "ab".repeat(32));
        let with_colons: Vec<String> = (0..32).map(|_| "AB".to_string()).collect();
        for typed in [
            canonical.clone(),
            "ab".repeat(32),
            format!("sha256:{}", "AB".repeat(32)),
            format!("SHA256:{}", with_colons.join(":")),
        ] {
            assert_eq!(parse_fingerprint(&typed).unwrap(), canonical, "{typed}");
        }
        for bad in ["", "SHA256:abc", &format!("SHA256:{}", "zz".repeat(32))] {
            assert!(
                matches!(parse_fingerprint(bad), Err(PkiError::BadFingerprint(_))),
                "{bad}"
            );
        }
        let ca = create_ca("test ca", now(), 30).unwrap();
        let der = first_cert_der(&ca.cert_pem).unwrap();
        assert_eq!(fingerprint_der(&der), fingerprint_sha256(&ca.cert_pem).unwrap());
    }
}
