//! The operator's identity commands: `token create|list`, `cert list`, `cert revoke`. `create` and `revoke`
//! return the text to print, the lists return rows that `views::admin` renders; `main.rs` only parses arguments.

use super::registry::Registry;
use super::revocation::{normalize_serial, Revocations};
use super::tokens::{TokenError, TokenFile};
use super::StoreError;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Token(#[from] TokenError),
}

/// Parses repeated `--label KEY=VALUE` arguments.
pub fn parse_labels(pairs: &[String]) -> Result<BTreeMap<String, String>, AdminError> {
    let mut labels = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            AdminError::Usage(format!("--label {pair:?}: expected KEY=VALUE (e.g. group=web)"))
        })?;
        headroom_common::pki::validate_label(key, value)
            .map_err(|e| AdminError::Usage(format!("--label: {e}")))?;
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(AdminError::Usage(format!("--label: key {key:?} given twice")));
        }
    }
    Ok(labels)
}

/// `token create`: stores the token and returns the lines to print, the token itself among them (the only
/// time it is ever shown).
pub fn token_create(
    pki_dir: &Path,
    ttl_s: i64,
    uses: u32,
    labels: BTreeMap<String, String>,
    host: Option<String>,
    now_s: i64,
) -> Result<String, AdminError> {
    if let Some(host) = &host {
        headroom_common::pki::validate_host_name(host)
            .map_err(|e| AdminError::Usage(format!("--host: {e}")))?;
    }
    if uses == 0 {
        return Err(AdminError::Usage("--uses must be at least 1".to_string()));
    }
    if ttl_s <= 0 {
        return Err(AdminError::Usage(
            "--ttl must be longer than 0s (e.g. 24h)".to_string(),
        ));
    }
    // The CA certificate, not its key: the key may live only with a signer run by its own unit.
    if !pki_dir.join("ca.pem").exists() {
        return Err(AdminError::Usage(format!(
            "no CA in {} (run \"headroom-collector ca init\" first)",
            pki_dir.display()
        )));
    }
    let for_host = host
        .as_ref()
        .map(|host| format!(" for host {host} only"))
        .unwrap_or_default();
    let new = TokenFile::in_dir(pki_dir).create(uses, ttl_s, labels, host, now_s)?;
    Ok(format!(
        "{}\ntoken {} created{for_host}: {} uses, expires {}; it is shown only this once\n",
        new.token,
        new.record.id,
        uses,
        format_time(new.record.expires_at_s)
    ))
}

/// One enrollment token as `token list` shows it; never the secret (only its hash is stored anyway).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TokenRow {
    pub id: String,
    pub uses_left: u32,
    /// RFC 3339, UTC.
    pub expires: String,
    /// valid, used up or expired.
    pub state: String,
    /// The one host the token may enroll; `None`: any host not enrolled yet.
    pub host: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// `token list`: id, uses left, expiry, state, host and labels of every token.
pub fn token_rows(pki_dir: &Path, now_s: i64) -> Result<Vec<TokenRow>, AdminError> {
    let list = TokenFile::in_dir(pki_dir).list()?;
    Ok(list
        .tokens
        .into_iter()
        .map(|token| TokenRow {
            state: if token.expires_at_s <= now_s {
                "expired"
            } else if token.uses_left == 0 {
                "used up"
            } else {
                "valid"
            }
            .to_string(),
            id: token.id,
            uses_left: token.uses_left,
            expires: format_time(token.expires_at_s),
            host: token.host,
            labels: token.labels,
        })
        .collect())
}

/// One issued certificate as `cert list` shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CertRow {
    pub host: String,
    /// Lowercase hex, as `cert revoke --serial` takes it.
    pub serial: String,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub not_after: String,
    /// The last connection made with this certificate, RFC 3339; `None`: never.
    pub last_seen: Option<String>,
    /// valid, expired or revoked.
    pub state: String,
}

/// `cert list`: host, serial, labels, not-after, last seen, and whether it is revoked.
pub fn cert_rows(pki_dir: &Path, now_s: i64) -> Result<Vec<CertRow>, AdminError> {
    let list = Registry::in_dir(pki_dir).list()?;
    let revoked = Revocations::load(pki_dir)?;
    Ok(list
        .certs
        .into_iter()
        .map(|cert| CertRow {
            state: if revoked.is_revoked(&cert.serial) {
                "revoked"
            } else if cert.not_after_s <= now_s {
                "expired"
            } else {
                "valid"
            }
            .to_string(),
            host: cert.host,
            serial: cert.serial,
            labels: cert.labels,
            not_after: format_time(cert.not_after_s),
            last_seen: cert.last_seen_s.map(format_time),
        })
        .collect())
}

/// `cert revoke --host NAME | --serial S`: persists the revocation; a running collector cuts the
/// connection within a few seconds and refuses the certificate at every later handshake.
pub fn cert_revoke(
    pki_dir: &Path,
    host: Option<&str>,
    serial: Option<&str>,
    now_s: i64,
) -> Result<String, AdminError> {
    let revocations = Revocations::load(pki_dir)?;
    let (serials, host) = match (host, serial) {
        (Some(host), None) => {
            let serials = Registry::in_dir(pki_dir).list()?.live_serials_of(host, now_s);
            if serials.is_empty() {
                return Err(AdminError::Usage(format!(
                    "no unexpired certificate of {host:?} in the registry (see \"headroom-collector cert \
                     list\", or revoke by --serial)"
                )));
            }
            (serials, Some(host))
        }
        (None, Some(serial)) => {
            let serial = normalize_serial(serial);
            if serial.is_empty() || !serial.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(AdminError::Usage(format!(
                    "--serial {serial:?} is not hex (copy it from \"headroom-collector cert list\")"
                )));
            }
            let host = Registry::in_dir(pki_dir)
                .list()?
                .certs
                .into_iter()
                .find(|cert| cert.serial == serial)
                .map(|cert| cert.host);
            let added = revocations.revoke(std::slice::from_ref(&serial), host.as_deref(), now_s)?;
            return Ok(format!(
                "{} certificate {serial}{}\n",
                if added == 0 { "already revoked:" } else { "revoked" },
                host.map_or(String::new(), |h| format!(" of {h}"))
            ));
        }
        _ => {
            return Err(AdminError::Usage(
                "pass exactly one of --host or --serial".to_string(),
            ))
        }
    };
    let added = revocations.revoke(&serials, host, now_s)?;
    Ok(format!(
        "revoked {added} certificate(s) of {}: {}\n",
        host.unwrap_or("?"),
        serials.join(", ")
    ))
}

fn format_time(unix_s: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_s.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_list_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let labels = parse_labels(&["group=web".to_string(), "zone=eu-1a".to_string()]).unwrap();
        let created = token_create(dir.path(), 3600, 5, labels, None, 1_750_000_000).unwrap();
        let token = created.lines().next().unwrap();
        let secret = token.split_once('.').unwrap().1;
        let listed = token_rows(dir.path(), 1_750_000_000).unwrap();
        let printed = format!("{listed:?}");
        assert!(!printed.contains(secret), "{printed}");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, token.split_once('.').unwrap().0);
        assert_eq!(listed[0].labels.get("zone").map(String::as_str), Some("eu-1a"));
        assert_eq!((listed[0].uses_left, listed[0].state.as_str()), (5, "valid"));
        assert_eq!(token_rows(dir.path(), 1_750_003_600).unwrap()[0].state, "expired");
    }

    #[test]
    fn bad_labels_and_arguments_are_usage_errors() {
        for bad in ["group", "=web", "group=we b"] {
            assert!(
                matches!(parse_labels(&[bad.to_string()]), Err(AdminError::Usage(_))),
                "{bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            token_create(dir.path(), 3600, 1, BTreeMap::new(), None, 0),
            Err(AdminError::Usage(message)) if message.contains("ca init")
        ));
        assert!(matches!(
            cert_revoke(dir.path(), None, None, 0),
            Err(AdminError::Usage(_))
        ));
        assert!(matches!(
            cert_revoke(dir.path(), Some("web-1"), None, 0),
            Err(AdminError::Usage(_))
        ));
        assert!(cert_revoke(dir.path(), None, Some("AB:01"), 0)
            .unwrap()
            .contains("revoked certificate ab01"));
        assert!(Revocations::load(dir.path()).unwrap().is_revoked("ab01"));
    }
}
