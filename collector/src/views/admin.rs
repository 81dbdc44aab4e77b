//! Renders the identity lists, `cert list` and `token list`, as a table, CSV or JSON like every other table
//! command.

use super::render::{csv_rows, json, table, Format, Output, SCHEMA_VERSION};
use crate::identity::admin::{CertRow, TokenRow};
use serde::Serialize;
use std::collections::BTreeMap;

/// `cert list`: one row per issued certificate.
pub fn render_certs(certs: &[CertRow], output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    match format {
        Format::Json => json(&CertsDocument {
            schema_version: SCHEMA_VERSION,
            certs,
        }),
        Format::Csv => csv_rows(&certs.iter().map(CertCsvRow::from).collect::<Vec<_>>(), header),
        Format::Table => {
            let rows = certs
                .iter()
                .map(|cert| {
                    vec![
                        cert.host.clone(),
                        cert.serial.clone(),
                        join_labels(&cert.labels, ",", "-"),
                        cert.not_after.clone(),
                        cert.last_seen.clone().unwrap_or_else(|| "never".to_string()),
                        cert.state.clone(),
                    ]
                })
                .collect();
            let columns = ["host", "serial", "labels", "not after", "last seen", "state"];
            table(&columns, rows, columns.len(), header)
        }
    }
}

/// `token list`: one row per token, never its secret.
pub fn render_tokens(tokens: &[TokenRow], output: impl Into<Output>) -> String {
    let Output { format, header } = output.into();
    match format {
        Format::Json => json(&TokensDocument {
            schema_version: SCHEMA_VERSION,
            tokens,
        }),
        Format::Csv => csv_rows(&tokens.iter().map(TokenCsvRow::from).collect::<Vec<_>>(), header),
        Format::Table => {
            let rows = tokens
                .iter()
                .map(|token| {
                    vec![
                        token.id.clone(),
                        token.uses_left.to_string(),
                        token.expires.clone(),
                        token.state.clone(),
                        token.host.clone().unwrap_or_else(|| "any new".to_string()),
                        join_labels(&token.labels, ",", "-"),
                    ]
                })
                .collect();
            table(
                &["id", "uses left", "expires", "state", "host", "labels"],
                rows,
                1,
                header,
            )
        }
    }
}

#[derive(Serialize)]
struct CertsDocument<'a> {
    schema_version: u32,
    certs: &'a [CertRow],
}

#[derive(Serialize)]
struct TokensDocument<'a> {
    schema_version: u32,
    tokens: &'a [TokenRow],
}

/// A certificate as one flat CSV record: labels as `key=value;…`, `last_seen` empty when never seen.
#[derive(Default, Serialize)]
struct CertCsvRow {
    host: String,
    serial: String,
    labels: String,
    not_after: String,
    last_seen: String,
    state: String,
}

impl From<&CertRow> for CertCsvRow {
    fn from(cert: &CertRow) -> Self {
        CertCsvRow {
            host: cert.host.clone(),
            serial: cert.serial.clone(),
            labels: join_labels(&cert.labels, ";", ""),
            not_after: cert.not_after.clone(),
            last_seen: cert.last_seen.clone().unwrap_or_default(),
            state: cert.state.clone(),
        }
    }
}

/// A token as one flat CSV record: `host` empty when any new host may use it.
#[derive(Default, Serialize)]
struct TokenCsvRow {
    id: String,
    uses_left: u32,
    expires: String,
    state: String,
    host: String,
    labels: String,
}

impl From<&TokenRow> for TokenCsvRow {
    fn from(token: &TokenRow) -> Self {
        TokenCsvRow {
            id: token.id.clone(),
            uses_left: token.uses_left,
            expires: token.expires.clone(),
            state: token.state.clone(),
            host: token.host.clone().unwrap_or_default(),
            labels: join_labels(&token.labels, ";", ""),
        }
    }
}

fn join_labels(labels: &BTreeMap<String, String>, separator: &str, none: &str) -> String {
    if labels.is_empty() {
        return none.to_string();
    }
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertRow {
        CertRow {
            host: "web-1".to_string(),
            serial: "ab01".to_string(),
            labels: BTreeMap::from([
                ("group".to_string(), "web".to_string()),
                ("zone".to_string(), "eu-1a".to_string()),
            ]),
            not_after: "2027-01-01T00:00:00Z".to_string(),
            last_seen: None,
            state: "valid".to_string(),
        }
    }

    #[test]
    fn cert_list_in_every_format_with_and_without_header() {
        let certs = [cert()];
        let table = render_certs(&certs, Format::Table);
        assert!(table.trim_start().starts_with("host"), "{table}");
        assert!(
            table.contains("group=web,zone=eu-1a") && table.contains("never"),
            "{table}"
        );
        let bare = render_certs(
            &certs,
            Output {
                format: Format::Table,
                header: false,
            },
        );
        assert_eq!(bare.lines().count(), 1, "{bare}");
        assert!(bare.trim_start().starts_with("web-1"), "{bare}");
        let csv = render_certs(&certs, Format::Csv);
        assert_eq!(
            csv,
            "host,serial,labels,not_after,last_seen,state\nweb-1,ab01,group=web;zone=eu-1a,2027-01-01T00:00:00Z,,valid\n"
        );
        let bare = render_certs(
            &certs,
            Output {
                format: Format::Csv,
                header: false,
            },
        );
        assert_eq!(bare.lines().count(), 1, "{bare}");
        let document: serde_json::Value = serde_json::from_str(&render_certs(&certs, Format::Json)).unwrap();
        assert_eq!(document["schema_version"], SCHEMA_VERSION);
        assert_eq!(document["certs"][0]["labels"]["zone"], "eu-1a");
        assert!(document["certs"][0]["last_seen"].is_null());
        // No certificates: the CSV still names its columns.
        assert_eq!(render_certs(&[], Format::Csv).lines().count(), 1);
    }

    #[test]
    fn token_list_in_every_format() {
        let tokens = [TokenRow {
            id: "t1".to_string(),
            uses_left: 3,
            expires: "2027-01-01T00:00:00Z".to_string(),
            state: "valid".to_string(),
            host: None,
            labels: BTreeMap::new(),
        }];
        let table = render_tokens(&tokens, Format::Table);
        assert!(table.contains("any new"), "{table}");
        assert_eq!(table.lines().nth(1).unwrap().split_whitespace().nth(1), Some("3"));
        let csv = render_tokens(&tokens, Format::Csv);
        assert_eq!(
            csv,
            "id,uses_left,expires,state,host,labels\nt1,3,2027-01-01T00:00:00Z,valid,,\n"
        );
        let document: serde_json::Value =
            serde_json::from_str(&render_tokens(&tokens, Format::Json)).unwrap();
        assert_eq!(document["schema_version"], SCHEMA_VERSION);
        assert_eq!(document["tokens"][0]["uses_left"], 3);
        assert!(document["tokens"][0]["host"].is_null());
    }
}
