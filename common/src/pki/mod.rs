//! The private CA of a headroom fleet: creating it, issuing agent and collector certificates, storing keys.
//!
//! Every key is ECDSA P-256. Certificates are built in memory from a `now` passed in by the caller; the only
//! IO here is reading and writing PEM files, which the `ca` commands of the collector use.
//!
//! `issue.rs` builds certificates, keys and requests; `inspect.rs` reads certificates (serial, validity,
//! names, labels, fingerprints); `names.rs` checks host names and labels; `pem.rs` reads and writes the
//! files; `error.rs` is `PkiError`. Everything is re-exported here: callers name `common::pki::X`.

mod error;
mod inspect;
mod issue;
mod names;
mod pem;

pub use error::PkiError;
pub use inspect::{
    cert_info, cert_info_der, fingerprint_der, fingerprint_sha256, labels_from_cert, parse_fingerprint,
    serial_from_cert, CertInfo,
};
pub use issue::{
    create_ca, create_csr, generate_key_pem, issue_client_cert, issue_server_cert, sign_csr, verify_csr,
    CertAndKey, NOT_BEFORE_BACKDATE,
};
pub use names::{
    validate_host_name, validate_label, LABEL_URI_PREFIX, MAX_CERT_LABEL_LEN, MAX_HOST_NAME_LEN,
};
pub use pem::{read_pem, write_private_pem, write_public_pem};

#[cfg(test)]
mod tests;

/// Compares two byte strings in time that depends only on their lengths, never on where they first differ:
/// for secrets and tags an attacker may probe byte by byte.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}
