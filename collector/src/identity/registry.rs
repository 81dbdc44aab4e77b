//! The certificates the collector issued (`certs.json`): host, serial, labels, validity and when each was
//! last seen, for `cert list` and for `cert revoke --host`.

use super::revocation::normalize_serial;
use super::{read_json, write_json, FileLock, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a certificate came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuedBy {
    /// `headroom-agent enroll` with a token.
    Enroll,
    /// Automatic renewal over an authenticated connection.
    Renew,
    /// `headroom-collector cert issue` (the key travelled by hand).
    Issue,
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRecord {
    pub host: String,
    /// Lowercase hex.
    pub serial: String,
    pub labels: BTreeMap<String, String>,
    pub issued_at_s: i64,
    pub not_after_s: i64,
    pub issued_by: IssuedBy,
    /// The last connection authenticated with this certificate, unix seconds.
    pub last_seen_s: Option<i64>,
}

/// The contents of `certs.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertList {
    pub certs: Vec<CertRecord>,
}

impl CertList {
    /// Serials of the certificates of `host` that have not expired at `now_s`: what `cert revoke --host`
    /// revokes (expired ones can no longer connect anyway).
    pub fn live_serials_of(&self, host: &str, now_s: i64) -> Vec<String> {
        self.certs
            .iter()
            .filter(|cert| cert.host == host && cert.not_after_s > now_s)
            .map(|cert| cert.serial.clone())
            .collect()
    }

    /// Records a connection; returns false when the serial is not in the list (a certificate issued before
    /// the registry existed, or by another collector sharing the CA).
    pub fn touch(&mut self, serial: &str, now_s: i64) -> bool {
        let serial = normalize_serial(serial);
        match self.certs.iter_mut().find(|cert| cert.serial == serial) {
            Some(cert) => {
                cert.last_seen_s = Some(now_s);
                true
            }
            None => false,
        }
    }

    /// Drops records that expired more than `keep_expired_s` ago, so the file does not grow forever with
    /// monthly renewals.
    pub fn prune(&mut self, now_s: i64, keep_expired_s: i64) {
        self.certs
            .retain(|cert| cert.not_after_s.saturating_add(keep_expired_s) > now_s);
    }
}

/// How long an expired certificate stays listed.
pub const KEEP_EXPIRED_S: i64 = 90 * 86_400;

/// `certs.json` in the pki directory.
#[derive(Debug, Clone)]
pub struct Registry {
    path: PathBuf,
}

impl Registry {
    pub fn in_dir(pki_dir: &Path) -> Registry {
        Registry {
            path: pki_dir.join("certs.json"),
        }
    }

    pub fn list(&self) -> Result<CertList, StoreError> {
        read_json(&self.path)
    }

    pub fn record_issued(&self, record: CertRecord) -> Result<(), StoreError> {
        let now_s = record.issued_at_s;
        self.update(|list| {
            list.prune(now_s, KEEP_EXPIRED_S);
            list.certs.push(record);
        })
    }

    /// Notes that `serial` just authenticated a connection.
    pub fn touch(&self, serial: &str, now_s: i64) -> Result<bool, StoreError> {
        let mut found = false;
        self.update(|list| found = list.touch(serial, now_s))?;
        Ok(found)
    }

    /// Records many last-seen times in one rewrite of the file; returns how many serials were known.
    pub fn touch_many(&self, seen: &[(String, i64)]) -> Result<usize, StoreError> {
        let mut found = 0;
        self.update(|list| {
            found = seen
                .iter()
                .filter(|(serial, now_s)| list.touch(serial, *now_s))
                .count();
        })?;
        Ok(found)
    }

    fn update(&self, change: impl FnOnce(&mut CertList)) -> Result<(), StoreError> {
        let _lock = FileLock::acquire(&self.path)?;
        let mut list: CertList = read_json(&self.path)?;
        change(&mut list);
        write_json(&self.path, &list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, serial: &str, not_after_s: i64) -> CertRecord {
        CertRecord {
            host: host.to_string(),
            serial: serial.to_string(),
            labels: BTreeMap::new(),
            issued_at_s: 0,
            not_after_s,
            issued_by: IssuedBy::Enroll,
            last_seen_s: None,
        }
    }

    #[test]
    fn live_serials_skip_other_hosts_and_expired_certs() {
        let list = CertList {
            certs: vec![
                record("web-1", "01", 100),
                record("web-1", "02", 300),
                record("web-2", "03", 300),
            ],
        };
        assert_eq!(list.live_serials_of("web-1", 200), vec!["02".to_string()]);
        assert!(list.live_serials_of("db-1", 200).is_empty());
    }

    #[test]
    fn records_persist_with_last_seen_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::in_dir(dir.path());
        registry.record_issued(record("web-1", "0a", 1_000)).unwrap();
        assert!(registry.touch("0A", 500).unwrap());
        assert!(!registry.touch("ff", 500).unwrap());
        let mut later = record("web-1", "0b", 2_000_000);
        later.issued_at_s = 1_000 + KEEP_EXPIRED_S + 1;
        registry.record_issued(later).unwrap();
        let list = registry.list().unwrap();
        assert_eq!(list.certs.len(), 1, "{list:?}");
        assert_eq!(list.certs[0].serial, "0b");

        let mut fresh = CertList {
            certs: vec![record("web-1", "0a", 1_000)],
        };
        fresh.touch("0a", 500);
        assert_eq!(fresh.certs[0].last_seen_s, Some(500));
    }
}
