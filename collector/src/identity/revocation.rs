//! The persisted list of revoked certificate serials, and the handle the TLS verifier and ingest share.
//!
//! `cert revoke` (a separate process) writes `revoked.json`; the running collector notices the change with
//! `refresh`, which it calls every second, and bumps a generation counter so that live connections holding a
//! newly revoked serial are cut (see `live::LiveConnections::cut_revoked`).

use super::{read_json, write_json, FileLock, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use tokio::sync::watch;

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedEntry {
    /// The host the certificate was issued to, when known.
    pub host: Option<String>,
    pub revoked_at_s: i64,
}

/// The contents of `revoked.json`: serial (lowercase hex) → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedList {
    pub serials: BTreeMap<String, RevokedEntry>,
}

impl RevokedList {
    /// Adds serials; returns how many were not revoked before.
    pub fn revoke(&mut self, serials: &[String], host: Option<&str>, now_s: i64) -> usize {
        let mut added = 0;
        for serial in serials {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                self.serials.entry(normalize_serial(serial))
            {
                slot.insert(RevokedEntry {
                    host: host.map(str::to_string),
                    revoked_at_s: now_s,
                });
                added += 1;
            }
        }
        added
    }

    pub fn contains(&self, serial: &str) -> bool {
        self.contains_normalized(&normalize_serial(serial))
    }

    /// Whether `serial`, already as [`normalize_serial`] gives it, is revoked.
    pub fn contains_normalized(&self, serial: &str) -> bool {
        self.serials.contains_key(serial)
    }
}

/// Serials are compared as lowercase hex without separators, whichever way an operator typed them.
pub fn normalize_serial(serial: &str) -> String {
    serial
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Shared, reloadable view of `revoked.json`.
#[derive(Debug, Clone)]
pub struct Revocations {
    path: PathBuf,
    list: Arc<RwLock<RevokedList>>,
    /// When the file was last read; a different modification time means another process changed it.
    seen_modified: Arc<RwLock<Option<SystemTime>>>,
    generation: watch::Sender<u64>,
}

impl Revocations {
    /// Loads `revoked.json` from `pki_dir` (empty when absent).
    pub fn load(pki_dir: &Path) -> Result<Revocations, StoreError> {
        let path = pki_dir.join("revoked.json");
        let modified = modified(&path);
        let list: RevokedList = read_json(&path)?;
        Ok(Revocations {
            path,
            list: Arc::new(RwLock::new(list)),
            seen_modified: Arc::new(RwLock::new(modified)),
            generation: watch::Sender::new(0),
        })
    }

    pub fn is_revoked(&self, serial: &str) -> bool {
        self.list
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(serial)
    }

    /// Runs `f` on the list under one read lock, for a check of many serials.
    pub fn with_list<R>(&self, f: impl FnOnce(&RevokedList) -> R) -> R {
        f(&self.list.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// A snapshot of the list.
    pub fn snapshot(&self) -> RevokedList {
        self.list
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Bumped whenever the list grows; watchers re-check their connections.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Revokes serials, persisting them first: a revocation that is not on disk would be forgotten at the
    /// next restart. Returns how many were new.
    pub fn revoke(&self, serials: &[String], host: Option<&str>, now_s: i64) -> Result<usize, StoreError> {
        let _lock = FileLock::acquire(&self.path)?;
        let mut on_disk: RevokedList = read_json(&self.path)?;
        let added = on_disk.revoke(serials, host, now_s);
        if added > 0 {
            write_json(&self.path, &on_disk)?;
        }
        self.install(on_disk);
        Ok(added)
    }

    /// Re-reads the file if another process changed it. Returns true when the list changed.
    pub fn refresh(&self) -> Result<bool, StoreError> {
        let modified_now = modified(&self.path);
        {
            let seen = self.seen_modified.read().unwrap_or_else(|p| p.into_inner());
            if *seen == modified_now {
                return Ok(false);
            }
        }
        let list: RevokedList = read_json(&self.path)?;
        Ok(self.install(list))
    }

    fn install(&self, list: RevokedList) -> bool {
        *self.seen_modified.write().unwrap_or_else(|p| p.into_inner()) = modified(&self.path);
        let mut current = self.list.write().unwrap_or_else(|p| p.into_inner());
        if *current == list {
            return false;
        }
        *current = list;
        drop(current);
        self.generation.send_modify(|generation| *generation += 1);
        true
    }
}

impl headroom_common::tls::RevocationCheck for Revocations {
    fn is_revoked(&self, serial_hex: &str) -> bool {
        Revocations::is_revoked(self, serial_hex)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_is_idempotent_and_serials_are_normalized() {
        let mut list = RevokedList::default();
        assert_eq!(list.revoke(&["AB:CD:01".to_string()], Some("web-1"), 100), 1);
        assert_eq!(list.revoke(&["abcd01".to_string()], None, 200), 0);
        assert!(list.contains("ABCD01"));
        assert!(!list.contains("abcd02"));
        assert_eq!(list.serials["abcd01"].revoked_at_s, 100);
    }

    #[test]
    fn revocations_persist_and_another_process_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let service = Revocations::load(dir.path()).unwrap();
        let mut generations = service.subscribe();
        assert!(!service.is_revoked("aa01"));

        // The CLI is another process with its own handle on the same file.
        let cli = Revocations::load(dir.path()).unwrap();
        assert_eq!(cli.revoke(&["aa01".to_string()], Some("web-1"), 100).unwrap(), 1);
        assert!(cli.is_revoked("aa01"));
        assert!(!service.is_revoked("aa01"), "not yet refreshed");

        assert!(service.refresh().unwrap());
        assert!(service.is_revoked("aa01"));
        assert!(generations.has_changed().unwrap());
        assert_eq!(*generations.borrow_and_update(), 1);
        assert!(!service.refresh().unwrap(), "nothing changed since");

        // A restart reads it back.
        let restarted = Revocations::load(dir.path()).unwrap();
        assert!(restarted.is_revoked("aa01"));
        assert_eq!(
            restarted.snapshot().serials["aa01"].host.as_deref(),
            Some("web-1")
        );
    }
}
