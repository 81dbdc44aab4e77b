//! Building certificates in memory from a `now` passed in: the CA, agent and collector certificates, keys and
//! signing requests.

use super::error::PkiError;
use super::names::{validate_host_name, validate_label, LABEL_URI_PREFIX};
use super::pem::first_cert_der;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SecureRandom;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far before `now` a new certificate becomes valid. Agents and the collector run on different hosts
/// whose clocks drift; without this margin a certificate issued on a host with a fast clock would be "not yet
/// valid" on a host with a slow one for its first minutes. A certificate valid for less than 100 minutes is
/// backdated by a tenth of its validity instead, so that its renewal point (two thirds of the way from
/// `not_before` to `not_after`) still lies in the future when it is issued.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(10 * 60);

/// Length of a certificate serial number. Random and 16 bytes long, as RFC 5280 allows up to 20 and CAs
/// that cannot track serials are advised to use at least 64 random bits.
pub(super) const SERIAL_LEN_BYTES: usize = 16;

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

pub(super) fn unix_seconds(now: SystemTime) -> Result<i64, PkiError> {
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
