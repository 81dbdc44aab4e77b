//! Small text helpers shared by the collector's outputs: Prometheus label names (alarms, remote_write),
//! query-string encoding and RFC 3339 times.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::time::Duration;

/// `[a-zA-Z_][a-zA-Z0-9_]*`, the label-name syntax of Prometheus and Alertmanager.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` made a valid label name: other characters become `_`, and a leading digit (or nothing) gets a `_`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Everything but RFC 3986 unreserved characters is percent-encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` for a query-string value (UTF-8; everything but unreserved characters).
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds, like `2023-11-14T22:13:20.000Z`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_checked_and_made_valid() {
        assert_eq!(label_name("service-tier"), "service_tier");
        assert_eq!(label_name("1zone"), "_1zone");
        assert_eq!(label_name(""), "_");
        assert!(is_label_name("collector") && is_label_name("_x1"));
        assert!(!is_label_name("a.b") && !is_label_name("9a") && !is_label_name(""));
        for raw in ["rack-id", "9", "zone", "a b"] {
            assert!(is_label_name(&label_name(raw)), "{raw}");
        }
    }

    #[test]
    fn query_values_and_times_are_encoded() {
        assert_eq!(percent_encode("up{host=\"a b\"}"), "up%7Bhost%3D%22a%20b%22%7D");
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(rfc3339_millis(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }
}
