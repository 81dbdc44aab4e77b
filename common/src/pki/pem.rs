//! PEM files: read with the file named in the error, written atomically with the mode the content needs.

use super::error::PkiError;
use crate::files;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;

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

/// [`files::write_atomic`] with the error naming the file.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    files::write_atomic(path, bytes, mode).map_err(|error| PkiError::Write {
        path: path.to_path_buf(),
        error,
    })
}

/// The first certificate of a PEM text, in DER.
pub(super) fn first_cert_der(cert_pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::BadCertificate("no \"BEGIN CERTIFICATE\" block found".to_string())
        }
        other => PkiError::BadCertificate(format!("malformed PEM: {other}")),
    })
}
