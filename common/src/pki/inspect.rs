//! Reading certificates: serial, validity, names, labels and fingerprints.

use super::error::PkiError;
use super::issue::NOT_BEFORE_BACKDATE;
use super::names::LABEL_URI_PREFIX;
use super::pem::first_cert_der;
use std::collections::BTreeMap;

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

pub(super) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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
