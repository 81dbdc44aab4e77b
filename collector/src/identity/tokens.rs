//! One-time enrollment tokens: created by the operator, shown once, stored only as a SHA-256 hash, and
//! consumed by enrollments until their uses run out or they expire.
//!
//! A token reads `<id>.<secret>`: the id (8 hex digits) finds the record, the secret (32 random bytes in
//! hex) is compared by hash in constant time. The checks are pure functions of the records, the presented
//! token and `now`; `TokenFile` adds the file and its lock.

use super::{read_json, write_json, FileLock, StoreError};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bytes of randomness in a token secret.
const SECRET_BYTES: usize = 32;

/// One token as stored. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub id: String,
    /// SHA-256 of the secret part, lowercase hex.
    pub secret_sha256: String,
    pub uses_left: u32,
    pub created_at_s: i64,
    pub expires_at_s: i64,
    /// Labels every certificate enrolled with this token carries.
    pub labels: BTreeMap<String, String>,
    /// The one host this token may enroll (`token create --host`), even while that host holds a valid
    /// certificate: the way to enroll a re-imaged host again. Its older certificates are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The contents of `tokens.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenList {
    pub tokens: Vec<TokenRecord>,
}

/// Why a presented token does not admit an enrollment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("unknown enrollment token (check it was copied whole, or create one with \"headroom-collector token create\")")]
    Unknown,
    #[error("enrollment token {id} expired (create a new one with \"headroom-collector token create\")")]
    Expired { id: String },
    #[error(
        "enrollment token {id} has no uses left (create a new one with \"headroom-collector token create\")"
    )]
    UsedUp { id: String },
    #[error(
        "enrollment token {id} was created for host {bound} only, not {host} (create one for {host} with \
             \"headroom-collector token create --host {host}\")"
    )]
    OtherHost { id: String, bound: String, host: String },
    #[error(
        "host {host} already has a valid certificate; if it was re-imaged, revoke the old one first \
             (\"headroom-collector cert revoke --host {host}\") or enroll with a token made for it \
             (\"headroom-collector token create --host {host}\")"
    )]
    HostEnrolled { host: String },
}

/// A new token: the record to store and the text to show the operator once.
pub struct NewToken {
    pub record: TokenRecord,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the system random number generator failed")]
    Random,
    #[error("{0}")]
    Label(#[from] headroom_common::pki::PkiError),
}

/// Makes a token with `uses` uses, valid for `ttl_s` seconds from `now_s`, granting `labels`, for any host
/// not enrolled yet or (with `host`) for that one host only.
pub fn new_token(
    uses: u32,
    ttl_s: i64,
    labels: BTreeMap<String, String>,
    host: Option<String>,
    now_s: i64,
) -> Result<NewToken, TokenError> {
    for (key, value) in &labels {
        headroom_common::pki::validate_label(key, value)?;
    }
    if let Some(host) = &host {
        headroom_common::pki::validate_host_name(host)?;
    }
    let random = ring::rand::SystemRandom::new();
    let mut id = [0u8; 4];
    let mut secret = [0u8; SECRET_BYTES];
    random.fill(&mut id).map_err(|_| TokenError::Random)?;
    random.fill(&mut secret).map_err(|_| TokenError::Random)?;
    let id = hex(&id);
    let secret = hex(&secret);
    Ok(NewToken {
        record: TokenRecord {
            id: id.clone(),
            secret_sha256: sha256_hex(&secret),
            uses_left: uses,
            created_at_s: now_s,
            expires_at_s: now_s.saturating_add(ttl_s),
            labels,
            host,
        },
        token: format!("{id}.{secret}"),
    })
}

/// Finds the record that `presented` opens and checks it is unexpired with uses left. Returns its index.
///
/// The secret is compared by hash in constant time, so the time taken does not tell an attacker how much
/// of a guess was right; an unknown id and a wrong secret give the same refusal.
pub fn check(records: &[TokenRecord], presented: &str, now_s: i64) -> Result<usize, TokenRefusal> {
    let (id, secret) = presented.trim().split_once('.').ok_or(TokenRefusal::Unknown)?;
    let index = records
        .iter()
        .position(|record| record.id == id)
        .ok_or(TokenRefusal::Unknown)?;
    let record = &records[index];
    let presented_hash = sha256_hex(secret);
    if !constant_time_eq(presented_hash.as_bytes(), record.secret_sha256.as_bytes()) {
        return Err(TokenRefusal::Unknown);
    }
    if now_s >= record.expires_at_s {
        return Err(TokenRefusal::Expired {
            id: record.id.clone(),
        });
    }
    if record.uses_left == 0 {
        return Err(TokenRefusal::UsedUp {
            id: record.id.clone(),
        });
    }
    Ok(index)
}

/// Whether token `record` may enroll `host`, which does (`host_enrolled`) or does not hold a valid,
/// unrevoked certificate. A token made for one host enrolls only that host, enrolled or not; any other token
/// enrolls only hosts without a valid certificate, so a token holder cannot take over a host's name.
pub fn admit_host(record: &TokenRecord, host: &str, host_enrolled: bool) -> Result<(), TokenRefusal> {
    match &record.host {
        Some(bound) if bound != host => Err(TokenRefusal::OtherHost {
            id: record.id.clone(),
            bound: bound.clone(),
            host: host.to_string(),
        }),
        Some(_) => Ok(()),
        None if host_enrolled => Err(TokenRefusal::HostEnrolled {
            host: host.to_string(),
        }),
        None => Ok(()),
    }
}

/// What a token admitted: the labels it grants, and whether it was made for this host (so the host's older
/// certificates are to be revoked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub labels: BTreeMap<String, String>,
    pub host_bound: bool,
}

/// Checks `presented` for `host` and, when it admits, takes one use. The token is checked before the host,
/// so only a holder of a valid token learns whether a host name is enrolled.
pub fn consume(
    list: &mut TokenList,
    presented: &str,
    host: &str,
    host_enrolled: bool,
    now_s: i64,
) -> Result<Admitted, TokenRefusal> {
    let index = check(&list.tokens, presented, now_s)?;
    let record = &mut list.tokens[index];
    admit_host(record, host, host_enrolled)?;
    record.uses_left -= 1;
    Ok(Admitted {
        labels: record.labels.clone(),
        host_bound: record.host.is_some(),
    })
}

/// `tokens.json` in the pki directory.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    pub fn in_dir(pki_dir: &Path) -> TokenFile {
        TokenFile {
            path: pki_dir.join("tokens.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn list(&self) -> Result<TokenList, StoreError> {
        read_json(&self.path)
    }

    /// Stores a new token and returns the text to show once.
    pub fn create(
        &self,
        uses: u32,
        ttl_s: i64,
        labels: BTreeMap<String, String>,
        host: Option<String>,
        now_s: i64,
    ) -> Result<NewToken, TokenError> {
        let new = new_token(uses, ttl_s, labels, host, now_s)?;
        let _lock = FileLock::acquire(&self.path)?;
        let mut list: TokenList = read_json(&self.path)?;
        list.tokens.push(new.record.clone());
        write_json(&self.path, &list)?;
        Ok(new)
    }

    /// Consumes one use of `presented` under the file lock. The outer error is the file failing; the inner
    /// one is the token refused.
    pub fn consume(
        &self,
        presented: &str,
        host: &str,
        host_enrolled: bool,
        now_s: i64,
    ) -> Result<Result<Admitted, TokenRefusal>, StoreError> {
        let _lock = FileLock::acquire(&self.path)?;
        let mut list: TokenList = read_json(&self.path)?;
        let outcome = consume(&mut list, presented, host, host_enrolled, now_s);
        if outcome.is_ok() {
            write_json(&self.path, &list)?;
        }
        Ok(outcome)
    }
}

/// Token hashes (both SHA-256 hex, 64 bytes) are compared in time that does not depend on where they differ.
pub(crate) use headroom_common::pki::constant_time_eq;

fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_S: i64 = 1_750_000_000;
    const DAY_S: i64 = 86_400;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("group".to_string(), "web".to_string()),
            ("zone".to_string(), "eu-1a".to_string()),
        ])
    }

    #[test]
    fn a_token_admits_until_its_uses_run_out() {
        let new = new_token(2, DAY_S, labels(), None, NOW_S).unwrap();
        let mut list = TokenList {
            tokens: vec![new.record.clone()],
        };
        assert_eq!(
            consume(&mut list, &new.token, "web-1", false, NOW_S)
                .unwrap()
                .labels,
            labels()
        );
        assert_eq!(list.tokens[0].uses_left, 1);
        consume(&mut list, &new.token, "web-2", false, NOW_S + 1).unwrap();
        assert_eq!(
            consume(&mut list, &new.token, "web-3", false, NOW_S + 2),
            Err(TokenRefusal::UsedUp {
                id: new.record.id.clone()
            })
        );
        assert_eq!(list.tokens[0].uses_left, 0);
    }

    #[test]
    fn a_token_expires_at_its_ttl() {
        let new = new_token(5, DAY_S, labels(), None, NOW_S).unwrap();
        let records = vec![new.record.clone()];
        assert_eq!(check(&records, &new.token, NOW_S + DAY_S - 1), Ok(0));
        assert_eq!(
            check(&records, &new.token, NOW_S + DAY_S),
            Err(TokenRefusal::Expired {
                id: new.record.id.clone()
            })
        );
    }

    #[test]
    fn wrong_secrets_and_ids_are_unknown() {
        let new = new_token(5, DAY_S, BTreeMap::new(), None, NOW_S).unwrap();
        let other = new_token(5, DAY_S, BTreeMap::new(), None, NOW_S).unwrap();
        let records = vec![new.record.clone()];
        let (id, secret) = new.token.split_once('.').unwrap();
        let mut flipped = secret.to_string();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.replace_range(flipped.len() - 1.., last);
        for bad in [
            format!("{id}.{flipped}"),
            other.token.clone(),
            format!("{id}{secret}"),
            String::new(),
            format!("{id}."),
        ] {
            assert_eq!(check(&records, &bad, NOW_S), Err(TokenRefusal::Unknown), "{bad}");
        }
    }

    /// Issue 11: a token holder cannot enroll under the name of a host that holds a valid certificate,
    /// unless the token was made for that host; a token made for one host enrolls no other, and refusals
    /// spend no use.
    #[test]
    fn issue_11_an_enrolled_host_name_needs_a_token_made_for_it() {
        let any = new_token(5, DAY_S, labels(), None, NOW_S).unwrap();
        let bound = new_token(5, DAY_S, labels(), Some("web-1".to_string()), NOW_S).unwrap();
        let mut list = TokenList {
            tokens: vec![any.record.clone(), bound.record.clone()],
        };
        let refusal = consume(&mut list, &any.token, "web-1", true, NOW_S).unwrap_err();
        assert_eq!(
            refusal,
            TokenRefusal::HostEnrolled {
                host: "web-1".to_string()
            }
        );
        let message = refusal.to_string();
        assert!(message.contains("cert revoke --host web-1"), "{message}");
        assert!(message.contains("token create --host web-1"), "{message}");
        assert!(matches!(
            consume(&mut list, &bound.token, "web-2", false, NOW_S),
            Err(TokenRefusal::OtherHost { .. })
        ));
        assert_eq!(list.tokens[0].uses_left, 5);
        assert_eq!(list.tokens[1].uses_left, 5);
        let admitted = consume(&mut list, &bound.token, "web-1", true, NOW_S).unwrap();
        assert!(admitted.host_bound);
        assert!(
            !consume(&mut list, &any.token, "web-2", false, NOW_S)
                .unwrap()
                .host_bound
        );
        // An unknown token learns nothing about which hosts are enrolled.
        assert_eq!(
            consume(&mut list, "00000000.00", "web-1", true, NOW_S),
            Err(TokenRefusal::Unknown)
        );
        assert!(new_token(1, DAY_S, labels(), Some("Web_1".to_string()), NOW_S).is_err());
    }

    #[test]
    fn constant_time_comparison_compares() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abcd", b"xbcd"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
    }

    #[test]
    fn the_secret_is_not_stored() {
        let new = new_token(1, DAY_S, labels(), None, NOW_S).unwrap();
        let secret = new.token.split_once('.').unwrap().1;
        assert_eq!(secret.len(), 2 * SECRET_BYTES);
        let stored = serde_json::to_string(&new.record).unwrap();
        assert!(!stored.contains(secret), "{stored}");
        assert_ne!(
            new_token(1, DAY_S, labels(), None, NOW_S).unwrap().token,
            new.token
        );
    }

    #[test]
    fn labels_that_cannot_go_into_a_certificate_are_refused() {
        let bad = BTreeMap::from([("group".to_string(), "web=1".to_string())]);
        assert!(matches!(
            new_token(1, DAY_S, bad, None, NOW_S),
            Err(TokenError::Label(_))
        ));
    }

    #[test]
    fn the_file_persists_uses_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile::in_dir(dir.path());
        let new = file.create(1, DAY_S, labels(), None, NOW_S).unwrap();
        assert_eq!(
            file.consume(&new.token, "web-1", false, NOW_S).unwrap(),
            Ok(Admitted {
                labels: labels(),
                host_bound: false
            })
        );
        assert!(matches!(
            file.consume(&new.token, "web-1", false, NOW_S).unwrap(),
            Err(TokenRefusal::UsedUp { .. })
        ));
        assert_eq!(file.list().unwrap().tokens[0].uses_left, 0);
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
