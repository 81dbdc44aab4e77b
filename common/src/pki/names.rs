//! The names a certificate carries: host names as identities and labels in SAN URIs, checked so that every
//! accepted one is valid where it ends up.

use super::error::PkiError;

/// Longest host name accepted as an identity (the DNS limit).
pub const MAX_HOST_NAME_LEN: usize = 253;

/// Longest single label of a host name (the DNS limit).
const MAX_LABEL_LEN: usize = 63;

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
