//! Live streaming connections by host and by certificate serial: the newest connection of a host wins, and
//! connections holding a revoked serial are cut.
//!
//! Each connection task registers itself and gets a [`Cut`] that it waits on; this registry only sets them,
//! so it knows nothing of QUIC and is tested without sockets.

use super::revocation::{normalize_serial, Revocations};
use atomic_waker::AtomicWaker;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Why a connection was cut, so its task can close with the right code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// A newer connection with the same identity arrived.
    Replaced = 1,
    /// Its certificate was revoked.
    Revoked = 2,
    /// The collector is stopping ([`LiveConnections::stop_all`]).
    Stopping = 3,
}

/// One connection's end: set once, by the first reason to come, and awaited by the connection's task in
/// every turn of its loop. A poll is an atomic load and a waker registration; a `CancellationToken` per
/// connection plus the collector's own took four locks per turn, ~1 % of the collector's CPU at 5,000 agents
/// (issue 12).
#[derive(Debug, Default)]
pub struct Cut {
    reason: AtomicU8,
    waker: AtomicWaker,
}

impl Cut {
    /// Sets `reason` unless the connection was already cut; true if this call cut it.
    fn set(&self, reason: CutReason) -> bool {
        let set = self
            .reason
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if set {
            self.waker.wake();
        }
        set
    }

    /// Why the connection was cut, if it was.
    pub fn reason(&self) -> Option<CutReason> {
        match self.reason.load(Ordering::Acquire) {
            1 => Some(CutReason::Replaced),
            2 => Some(CutReason::Revoked),
            3 => Some(CutReason::Stopping),
            _ => None,
        }
    }

    /// Ready with the reason once the connection is cut; ready again on every later poll.
    pub fn wait(&self) -> CutWait<'_> {
        CutWait(self)
    }
}

/// The future of [`Cut::wait`].
pub struct CutWait<'a>(&'a Cut);

impl Future for CutWait<'_> {
    type Output = CutReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CutReason> {
        if let Some(reason) = self.0.reason() {
            return Poll::Ready(reason);
        }
        self.0.waker.register(cx.waker());
        // A cut between the load and the registration woke no one: look again.
        match self.0.reason() {
            Some(reason) => Poll::Ready(reason),
            None => Poll::Pending,
        }
    }
}

struct Entry {
    id: u64,
    serial: String,
    peer: SocketAddr,
    cut: Arc<Cut>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Set by `stop_all`: connections registered later are cut at once.
    stopped: bool,
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
    pub fn register(&self, host: &str, serial: &str, peer: SocketAddr) -> (Arc<Cut>, LiveGuard) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.next_id += 1;
        let id = inner.next_id;
        let cut = Arc::new(Cut::default());
        if inner.stopped {
            cut.set(CutReason::Stopping);
        }
        let entry = Entry {
            id,
            serial: normalize_serial(serial),
            peer,
            cut: cut.clone(),
        };
        if let Some(older) = inner.by_host.insert(host.to_string(), entry) {
            older.cut.set(CutReason::Replaced);
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
        };
        (cut, guard)
    }

    /// Cuts every connection, and every one registered from now on, with [`CutReason::Stopping`].
    pub fn stop_all(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.stopped = true;
        for entry in inner.by_host.values() {
            entry.cut.set(CutReason::Stopping);
        }
    }

    /// Cancels every connection whose serial is revoked; returns the (host, serial) pairs cut. Walks every
    /// connection under the registry's lock, with the list's read lock taken once; [`LiveConnections::sweep`]
    /// runs it only when something changed.
    pub fn cut_revoked(&self, revocations: &Revocations) -> Vec<(String, String)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut cut = Vec::new();
        revocations.with_list(|list| {
            for (host, entry) in &inner.by_host {
                if entry.cut.reason().is_none() && list.contains_normalized(&entry.serial) {
                    entry.cut.set(CutReason::Revoked);
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
        assert_eq!(first.reason(), Some(CutReason::Replaced));
        assert_eq!(second.reason(), None);
        assert_eq!(other.reason(), None);
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
        let (revoked, _revoked_guard) = live.register("web-1", "AA:01", peer(1));
        let (kept, _kept_guard) = live.register("web-2", "bb02", peer(2));
        assert!(live.cut_revoked(&revocations).is_empty());
        revocations
            .revoke(&["aa01".to_string()], Some("web-1"), 100)
            .unwrap();
        assert_eq!(
            live.cut_revoked(&revocations),
            vec![("web-1".to_string(), "aa01".to_string())]
        );
        assert_eq!(revoked.reason(), Some(CutReason::Revoked));
        assert_eq!(kept.reason(), None);
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
        let (late, _late_guard) = live.register("web-2", "AA:01", peer(2));
        assert_eq!(
            live.sweep(&revocations, &mut mark),
            Some(vec![("web-2".to_string(), "aa01".to_string())])
        );
        assert_eq!(late.reason(), Some(CutReason::Revoked));
        assert_eq!(live.sweep(&revocations, &mut mark), None);
    }

    #[test]
    fn issue_12_stopping_cuts_every_connection_and_every_later_one() {
        let live = LiveConnections::new();
        let (open, _open_guard) = live.register("web-1", "aa", peer(1));
        live.stop_all();
        assert_eq!(open.reason(), Some(CutReason::Stopping));
        // A handshake that finished while the collector stopped registers afterwards: cut at once.
        let (late, _late_guard) = live.register("web-2", "bb", peer(2));
        assert_eq!(late.reason(), Some(CutReason::Stopping));
        // The first reason stays.
        let (replaced, _replaced_guard) = LiveConnections::new().register("web-3", "cc", peer(3));
        assert!(replaced.set(CutReason::Replaced));
        assert!(!replaced.set(CutReason::Revoked));
        assert_eq!(replaced.reason(), Some(CutReason::Replaced));
    }

    #[tokio::test]
    async fn issue_12_a_task_waiting_on_its_cut_is_woken() {
        let live = LiveConnections::new();
        let (cut, _guard) = live.register("web-1", "aa", peer(1));
        let waiter = tokio::spawn(async move { cut.wait().await });
        // The waiter is parked before the cut comes (a cut before its first poll would not test the wake).
        tokio::task::yield_now().await;
        let (_newer, _newer_guard) = live.register("web-1", "aa", peer(2));
        let reason = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken within the deadline")
            .unwrap();
        assert_eq!(reason, CutReason::Replaced);
    }
}
