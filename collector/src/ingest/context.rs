//! What every connection task shares: the live view, the store, the settings, identity and the last-seen
//! times written to the certificate registry in the background.

use super::admission::StoreShares;
use super::handshake::HandshakeLimits;
use super::validate::Limits;
use crate::identity::enroll_server::EnrollContext;
use crate::identity::labels::IgnoredLabelLog;
use crate::identity::live::LiveConnections;
use crate::identity::registry::Registry;
use crate::identity::revocation::Revocations;
use crate::live::fleet::FleetState;
use crate::store::StoreHandle;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How often last-seen times are written to the registry.
const LAST_SEEN_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Last-seen times of certificate serials, kept in memory and written to the registry in the background: a
/// file rewrite per connection would block the runtime threads exactly when a fleet reconnects at once.
#[derive(Default)]
pub struct LastSeen {
    pending: Mutex<std::collections::HashMap<String, i64>>,
}

impl LastSeen {
    pub fn note(&self, serial: &str, now_s: i64) {
        if serial.is_empty() {
            return;
        }
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.insert(serial.to_string(), now_s);
    }

    fn take(&self) -> Vec<(String, i64)> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.drain().collect()
    }
}

/// Write pending last-seen times every 10 s and once more on stop, in one file rewrite on a blocking thread.
pub async fn run_last_seen_writer(context: Arc<IngestContext>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(LAST_SEEN_FLUSH_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let seen = context.last_seen.take();
        if !seen.is_empty() {
            let registry = context.registry.clone();
            let written = tokio::task::spawn_blocking(move || registry.touch_many(&seen)).await;
            if let Ok(Err(error)) = written {
                debug!(%error, "cannot record last seen in the certificate registry");
            }
        }
        if stopping {
            return;
        }
    }
}

#[derive(Clone)]
pub struct IngestSettings {
    pub max_connections: u32,
    /// Label keys taken from a hello when the certificate carries no labels.
    pub hello_label_keys: Vec<String>,
    pub limits: Limits,
    /// Handshake slots: Retry threshold, per-source cap, timeout.
    pub handshakes: HandshakeLimits,
    /// Handshakes a second planned for when the whole fleet reconnects (`fleet.reconnect_rate`).
    pub reconnect_rate: u32,
}

pub type SharedFleet = Arc<Mutex<FleetState>>;

/// The fleet view, even if a task panicked while holding it: one agent's data must never take ingest
/// down for everyone (the view is per-host state that the next sample overwrites).
pub fn lock_fleet(fleet: &SharedFleet) -> std::sync::MutexGuard<'_, FleetState> {
    fleet.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every connection task shares.
pub struct IngestContext {
    pub fleet: SharedFleet,
    pub store: StoreHandle,
    pub settings: IngestSettings,
    /// Signing for renewals; `None` when enrollment is off (`enroll_listen = "off"`).
    pub enroll: Option<Arc<EnrollContext>>,
    pub live: LiveConnections,
    /// The revocation list, checked again after every handshake: a resumed TLS session does not verify the
    /// certificate it carries (`headroom_common::tls::check_client_cert_now`).
    pub revocations: Revocations,
    /// Hello labels ignored in favour of the certificate's, or not in the allow-list; logged once.
    pub ignored_labels: IgnoredLabelLog,
    /// Each host's share of the store writer, kept across its connections.
    pub store_shares: Mutex<StoreShares>,
    pub registry: Registry,
    pub last_seen: LastSeen,
    /// Recent readings for outliers and alarms.
    pub analytics: Arc<crate::analytics::Analytics>,
    /// Batches lent to connections for each commit.
    pub batches: super::batches::BatchPool,
}
