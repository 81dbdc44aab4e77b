//! Everything that can go wrong creating, issuing, reading or writing certificates and keys.

use std::io;
use std::path::PathBuf;

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
