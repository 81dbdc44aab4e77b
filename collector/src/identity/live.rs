//! Live streaming connections by host and by certificate serial: the newest connection of a host wins, and
//! connections holding a revoked serial are cut.
//!
//! Each connection task registers itself and gets a `CancellationToken` that it selects on; this registry
//! only cancels tokens, so it knows nothing of QUIC and is tested without sockets.

use super::revocation::{normalize_serial, Revocations};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Why a connection's token was cancelled, so its task can close with the right code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// A newer connection with the same identity arrived.
    Replaced,
    /// Its certificate was revoked.
    Revoked,
}

struct Entry {
    id: u64,
    serial: String,
    peer: SocketAddr,
    token: CancellationToken,
    reason: Arc<Mutex<Option<CutReason>>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_host: HashMap<String, Entry>,
    /// How many times each host's connection was replaced while still open; repeated replacements point at a
    /// cloned host rather than a reconnect.
    replacements: HashMap<String, u64>,
}

/// The registry, shared by all connection tasks (cheap to clone).
#[derive(Clone, Default)]
pub struct LiveConnections {
    inner: Arc<Mutex<Inner>>,
}

/// What the last [`LiveConnections::sweep`] looked at: the revocation list's generation and the number of
/// connections registered by then.
#[derive(Debug, Default)]
pub struct SweepMark(Option<(u64, u64)>);

/// Held by a connection task; dropping it removes the connection, unless a newer one already took its
/// place.
pub struct LiveGuard {
    inner: Arc<Mutex<Inner>>,
    host: String,
    id: u64,
    reason: Arc<Mutex<Option<CutReason>>>,
}

impl LiveGuard {
    /// Why the token was cancelled, if it was cancelled by this registry.
    pub fn cut_reason(&self) -> Option<CutReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner
            .by_host
            .get(&self.host)
            .is_some_and(|entry| entry.id == self.id)
        {
            inner.by_host.remove(&self.host);
        }
    }
}

impl LiveConnections {
    pub fn new() -> LiveConnections {
        LiveConnections::default()
    }

    /// Registers a connection of `host` authenticated with certificate `serial`. An older connection of the
    /// same host is cancelled (newest wins) and the event logged: either the agent reconnected before the old
    /// connection timed out, or two machines hold the same key.
    pub fn register(&self, host: &str, serial: &str, peer: SocketAddr) -> (CancellationToken, LiveGuard) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next_id += 1;
        let id = inner.next_id;
        let token = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        let entry = Entry {
            id,
            serial: normalize_serial(serial),
            peer,
            token: token.clone(),
            reason: reason.clone(),
        };
        if let Some(older) = inner.by_host.insert(host.to_string(), entry) {
            *older.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(CutReason::Replaced);
            older.token.cancel();
            let count = {
                let count = inner.replacements.entry(host.to_string()).or_insert(0);
                *count += 1;
                *count
            };
            warn!(
                %host, old_peer = %older.peer, new_peer = %peer, replacements = count,
                "second connection with the same identity; closing the older one (if this repeats, the \
                 host's key is in use on two machines: revoke it with \"headroom-collector cert revoke\")"
            );
        }
        let guard = LiveGuard {
            inner: self.inner.clone(),
            host: host.to_string(),
            id,
            reason,
        };
        (token, guard)
    }

    /// Cancels every connection whose serial is revoked; returns the (host, serial) pairs cut. Walks every
    /// connection under the registry's lock, with the list's read lock taken once; [`LiveConnections::sweep`]
    /// runs it only when something changed.
    pub fn cut_revoked(&self, revocations: &Revocations) -> Vec<(String, String)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut cut = Vec::new();
        revocations.with_list(|list| {
            for (host, entry) in &inner.by_host {
                if !entry.token.is_cancelled() && list.contains_normalized(&entry.serial) {
                    *entry.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(CutReason::Revoked);
                    entry.token.cancel();
                    warn!(%host, serial = %entry.serial, peer = %entry.peer, "certificate revoked; closing its connection");
                    cut.push((host.clone(), entry.serial.clone()));
                }
            }
        });
        cut
    }

    /// [`LiveConnections::cut_revoked`], if the list changed or a connection registered since the sweep that
    /// `mark` remembers; None when it had nothing to look at. A connection registered while its serial was
    /// being revoked (its handshake checked the list just before) is caught by the next sweep, as is every
    /// connection after a change of the list; with neither, the connections cannot have become revoked.
    pub fn sweep(&self, revocations: &Revocations, mark: &mut SweepMark) -> Option<Vec<(String, String)>> {
        // Read before the walk: a change during it makes the next sweep walk again.
        let seen = (revocations.generation(), self.registrations());
        if mark.0 == Some(seen) {
            return None;
        }
        mark.0 = Some(seen);
        Some(self.cut_revoked(revocations))
    }

    /// Connections registered so far.
    fn registrations(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).next_id
    }

    /// How many hosts are connected now.
    pub fn count(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).by_host.len()
    }

    /// Hosts connected now.
    pub fn hosts(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut hosts: Vec<String> = inner.by_host.keys().cloned().collect();
        hosts.sort();
        hosts
    }
}

/// Runs until `cancel`: every second, re-reads the revocation list if it changed on disk and cuts live
/// connections holding a revoked serial. The walk over every connection holds the registry's lock, which each
/// connecting host waits for, so it runs only after a change (`sweep`).
pub async fn run_revocation_sweeper(
    live: LiveConnections,
    revocations: Revocations,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mark = SweepMark::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = revocations.refresh() {
            warn!(%error, "cannot re-read the revocation list; keeping the previous one");
        }
        live.sweep(&revocations, &mut mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_newest_connection_of_a_host_wins() {
        let live = LiveConnections::new();
        let (first, first_guard) = live.register("web-1", "aa", peer(1));
        let (other, _other_guard) = live.register("web-2", "bb", peer(2));
        let (second, second_guard) = live.register("web-1", "aa", peer(3));
        assert!(first.is_cancelled());
        assert_eq!(first_guard.cut_reason(), Some(CutReason::Replaced));
        assert!(!second.is_cancelled());
        assert!(!other.is_cancelled());
        // The old task ending must not unregister the new connection.
        drop(first_guard);
        assert_eq!(live.hosts(), vec!["web-1".to_string(), "web-2".to_string()]);
        drop(second_guard);
        assert_eq!(live.hosts(), vec!["web-2".to_string()]);
    }

    #[test]
    fn revoked_serials_are_cut_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let revocations = Revocations::load(dir.path()).unwrap();
        let live = LiveConnections::new();
        let (revoked, revoked_guard) = live.register("web-1", "AA:01", peer(1));
        let (kept, _kept_guard) = live.register("web-2", "bb02", peer(2));
        assert!(live.cut_revoked(&revocations).is_empty());
        revocations
            .revoke(&["aa01".to_string()], Some("web-1"), 100)
            .unwrap();
        assert_eq!(
            live.cut_revoked(&revocations),
            vec![("web-1".to_string(), "aa01".to_string())]
        );
        assert!(revoked.is_cancelled());
        assert_eq!(revoked_guard.cut_reason(), Some(CutReason::Revoked));
        assert!(!kept.is_cancelled());
        // Already cut: not reported twice.
        assert!(live.cut_revoked(&revocations).is_empty());
    }

    #[test]
    fn issue_12_a_sweep_walks_the_connections_only_after_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let revocations = Revocations::load(dir.path()).unwrap();
        let live = LiveConnections::new();
        let mut mark = SweepMark::default();
        let (_kept, _kept_guard) = live.register("web-1", "bb02", peer(1));
        assert_eq!(live.sweep(&revocations, &mut mark), Some(vec![]));
        // Nothing registered, nothing revoked: nothing to walk.
        assert_eq!(live.sweep(&revocations, &mut mark), None);
        assert_eq!(live.sweep(&revocations, &mut mark), None);
        // The list changed: every connection is looked at.
        revocations
            .revoke(&["aa01".to_string()], Some("web-2"), 100)
            .unwrap();
        assert_eq!(live.sweep(&revocations, &mut mark), Some(vec![]));
        assert_eq!(live.sweep(&revocations, &mut mark), None);
        // A connection whose handshake checked the list just before its serial was revoked registers after
        // the sweep that followed the revocation: the next sweep cuts it.
        let (late, late_guard) = live.register("web-2", "AA:01", peer(2));
        assert_eq!(
            live.sweep(&revocations, &mut mark),
            Some(vec![("web-2".to_string(), "aa01".to_string())])
        );
        assert!(late.is_cancelled());
        assert_eq!(late_guard.cut_reason(), Some(CutReason::Revoked));
        assert_eq!(live.sweep(&revocations, &mut mark), None);
    }
}
