//! Which new QUIC connections get a handshake slot, as plain data.
//!
//! A handshake holds collector state (TLS, transport, a task) until it ends, so a peer that starts many and
//! never finishes them could take every slot. The rules: past a threshold of handshakes in progress, an
//! unvalidated source address is sent a QUIC Retry (it must prove it receives our packets before it gets a
//! slot); one source address holds at most a few slots; the last quarter of the slots is kept for validated
//! addresses; and the caller bounds each handshake with a timeout. When every slot is taken, a validated
//! connection waits in line for one, first come first served, for a few seconds at most (`max_wait`, well
//! inside an agent's connect timeout), and only a full line refuses: a fleet reconnecting at once after a
//! collector restart is then served as fast as handshakes finish, instead of being refused, backing off and
//! coming back in waves. The table of handshakes in progress per address lives here too; each slot is
//! released when its guard drops (handshake done, failed or timed out), which runs the table's release hook:
//! the streaming listener's line (`ingest::line`) gives the slot to the next in line from there.

use crate::telemetry::{self, refusal, ListenerLabel};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The thresholds of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Handshakes in progress at once, all addresses together.
    pub max_in_progress: usize,
    /// Past this many in progress, an unvalidated address is sent a Retry first.
    pub retry_above: usize,
    /// Handshakes in progress from one source address.
    pub per_source: usize,
    /// Slots at the top only validated addresses may take.
    pub reserved_validated: usize,
    /// How long one handshake may take before its slot is taken back.
    pub timeout: Duration,
    /// Validated connections held in line for a slot when every slot is taken (0: refuse at once).
    pub max_waiting: usize,
    /// The longest one waits in line; past it, it is refused when its turn comes (the agent may have given
    /// up meanwhile; it backs off and comes back).
    pub max_wait: Duration,
}

impl HandshakeLimits {
    /// The limits for `max_in_progress` slots: Retry past 32 (or an eighth, if smaller), 8 per address, the
    /// last 25 % for validated addresses, 5 s per handshake, and a line of eight times the slots, each
    /// waiting 3 s at most (an agent gives a connection attempt 5 s with several collectors, 10 s with one).
    pub fn with_slots(max_in_progress: usize) -> HandshakeLimits {
        let max_in_progress = max_in_progress.max(1);
        HandshakeLimits {
            max_in_progress,
            retry_above: 32.min(max_in_progress / 8),
            per_source: 8,
            reserved_validated: max_in_progress / 4,
            timeout: Duration::from_secs(5),
            max_waiting: 8 * max_in_progress,
            max_wait: Duration::from_secs(3),
        }
    }

    /// Whether a connection that has waited `waited` in line is still given a slot when its turn comes.
    pub fn still_wanted(&self, waited: Duration) -> bool {
        waited <= self.max_wait
    }
}

/// What to do with one new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Start the handshake.
    Accept,
    /// Send a QUIC Retry: the client comes back with a token proving its address.
    Retry,
    /// Hold it in line until a slot frees (validated addresses only).
    Wait,
    /// Send a refusal; the reason is a `connections_refused` label. Only validated addresses are refused.
    Refuse(&'static str),
}

/// The decision for a new connection, given the handshakes in progress overall and from its source address,
/// the connections waiting in line, and whether its address is validated (it came back with a Retry token).
///
/// An unvalidated address over its per-source share is sent a Retry rather than silence: many agents behind
/// one address (a NAT, or a load generator) reconnecting at once after a collector restart would otherwise
/// each wait out QUIC's retransmission timers and their own connect timeout before backing off. A Retry is
/// smaller than the Initial it answers (no amplification) and holds no state; the validated attempt is then
/// refused at once if the address still holds its share, and the agent backs off with jitter.
pub fn decide(
    limits: &HandshakeLimits,
    in_progress: usize,
    from_source: usize,
    waiting: usize,
    validated: bool,
) -> Admit {
    let shared_slots = limits.max_in_progress.saturating_sub(limits.reserved_validated);
    let over_source_share = from_source >= limits.per_source;
    if !validated && (in_progress > limits.retry_above || in_progress >= shared_slots || over_source_share) {
        return Admit::Retry;
    }
    if over_source_share {
        return Admit::Refuse(refusal::PER_SOURCE);
    }
    // Those already in line go first.
    if in_progress >= limits.max_in_progress || waiting > 0 {
        return if waiting < limits.max_waiting {
            Admit::Wait
        } else {
            Admit::Refuse(refusal::BUSY)
        };
    }
    Admit::Accept
}

/// Handshakes in progress, overall and per source address; the count per address includes its connections
/// waiting in line, so one address holds at most its share of slots and line together.
#[derive(Debug, Clone, Default)]
pub struct InProgress {
    inner: Arc<Mutex<Counts>>,
    /// The same total, exported on `/metrics`.
    gauge: Gauge,
    /// Run whenever a slot is released, by whoever releases it (`on_release`).
    released: Arc<Hook>,
}

/// What runs when a slot is released.
pub type ReleaseHook = Box<dyn Fn() + Send + Sync>;

/// The release hook, once set.
#[derive(Default)]
struct Hook(OnceLock<ReleaseHook>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Hook(set)"
        } else {
            "Hook(none)"
        })
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl InProgress {
    /// An empty table whose total is `headroom_collector_handshakes_in_progress{listener}`.
    pub fn reporting(listener: &'static str) -> InProgress {
        InProgress {
            inner: Arc::default(),
            gauge: telemetry::global()
                .handshakes_in_progress
                .get_or_create(&ListenerLabel { listener })
                .clone(),
            released: Arc::default(),
        }
    }

    /// Handshakes in progress, all addresses together.
    pub fn total(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).total
    }

    /// Sets what runs each time a slot is released, after the counts are updated and unlocked, in the task
    /// that released it (a hook may take a slot again). Set once; a second hook is ignored.
    pub fn on_release(&self, hook: ReleaseHook) {
        let _ = self.released.0.set(hook);
    }

    /// (in progress overall, in progress or waiting from `source`) right now.
    pub fn counts(&self, source: IpAddr) -> (usize, usize) {
        let counts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (counts.total, counts.by_source.get(&source).copied().unwrap_or(0))
    }

    /// Counts a connection from `source` waiting in line, until the returned guard drops.
    pub fn wait(&self, source: IpAddr) -> Waiting {
        let mut counts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counts.by_source.entry(source).or_insert(0);
        *entry = entry.saturating_add(1);
        Waiting {
            table: self.inner.clone(),
            source,
        }
    }

    /// Takes a slot for `source`, released when the returned guard drops.
    pub fn begin(&self, source: IpAddr) -> Slot {
        let mut counts = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_add(1);
        let entry = counts.by_source.entry(source).or_insert(0);
        *entry = entry.saturating_add(1);
        self.gauge.inc();
        Slot {
            table: self.inner.clone(),
            gauge: self.gauge.clone(),
            released: self.released.clone(),
            source,
        }
    }
}

/// One connection waiting in line, counted against its address's share.
#[derive(Debug)]
pub struct Waiting {
    table: Arc<Mutex<Counts>>,
    source: IpAddr,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        counts.release_source(self.source);
    }
}

impl Counts {
    fn release_source(&mut self, source: IpAddr) {
        if let Some(n) = self.by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

/// One handshake in progress; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    table: Arc<Mutex<Counts>>,
    gauge: Gauge,
    released: Arc<Hook>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
        let mut counts = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        counts.release_source(self.source);
        drop(counts);
        if let Some(hook) = self.released.0.get() {
            hook();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HandshakeLimits {
        HandshakeLimits::with_slots(256)
    }

    #[test]
    fn defaults_match_the_documented_thresholds() {
        let l = limits();
        assert_eq!((l.retry_above, l.per_source, l.reserved_validated), (32, 8, 64));
        assert_eq!(l.timeout, Duration::from_secs(5));
        assert_eq!(HandshakeLimits::with_slots(64).retry_above, 8);
    }

    #[test]
    fn a_quiet_collector_accepts_without_retry() {
        assert_eq!(decide(&limits(), 0, 0, 0, false), Admit::Accept);
        assert_eq!(decide(&limits(), 32, 7, 0, false), Admit::Accept);
    }

    #[test]
    fn issue_11_unvalidated_addresses_are_retried_past_the_threshold() {
        assert_eq!(decide(&limits(), 33, 0, 0, false), Admit::Retry);
        // Once validated, the same load is accepted.
        assert_eq!(decide(&limits(), 33, 0, 0, true), Admit::Accept);
    }

    #[test]
    fn issue_11_one_address_holds_at_most_per_source_slots() {
        assert_eq!(
            decide(&limits(), 10, 8, 0, true),
            Admit::Refuse(refusal::PER_SOURCE)
        );
        // An unproven address gets no refusal (it could be reflected at a spoofed victim), only a Retry.
        assert_eq!(decide(&limits(), 10, 8, 0, false), Admit::Retry);
    }

    #[test]
    fn issue_12_many_agents_behind_one_address_are_answered_not_left_to_time_out() {
        // A fleet behind one address reconnecting at once: every attempt past the address's share gets an
        // answer at once (a Retry, then a refusal once validated), so each agent backs off with its own
        // jitter instead of waiting for its connect timeout.
        let limits = limits();
        for from_source in limits.per_source..limits.per_source * 4 {
            for in_progress in [from_source, limits.max_in_progress - 1] {
                assert_eq!(decide(&limits, in_progress, from_source, 0, false), Admit::Retry);
                assert_eq!(
                    decide(&limits, in_progress, from_source, 0, true),
                    Admit::Refuse(refusal::PER_SOURCE)
                );
            }
        }
    }

    #[test]
    fn issue_11_the_last_quarter_is_for_validated_addresses() {
        let no_early_retry = HandshakeLimits {
            retry_above: usize::MAX,
            ..limits()
        };
        assert_eq!(decide(&no_early_retry, 191, 0, 0, false), Admit::Accept);
        assert_eq!(decide(&no_early_retry, 192, 0, 0, false), Admit::Retry);
        assert_eq!(decide(&no_early_retry, 192, 0, 0, true), Admit::Accept);
    }

    #[test]
    fn issue_12_all_slots_taken_puts_validated_addresses_in_line_until_the_line_is_full() {
        let limits = limits();
        assert_eq!(limits.max_waiting, 2048);
        assert_eq!(decide(&limits, 256, 0, 0, true), Admit::Wait);
        assert_eq!(decide(&limits, 256, 0, 2047, true), Admit::Wait);
        assert_eq!(decide(&limits, 256, 0, 2048, true), Admit::Refuse(refusal::BUSY));
        assert_eq!(decide(&limits, 255, 0, 0, true), Admit::Accept);
        // A free slot does not let a newcomer pass those already waiting for one.
        assert_eq!(decide(&limits, 10, 0, 1, true), Admit::Wait);
        // Unproven addresses are never held: they get a Retry, which holds nothing.
        assert_eq!(decide(&limits, 256, 0, 0, false), Admit::Retry);
        // Without a line (the enrollment listener), all slots taken refuses at once.
        let no_line = HandshakeLimits {
            max_waiting: 0,
            ..limits
        };
        assert_eq!(decide(&no_line, 256, 0, 0, true), Admit::Refuse(refusal::BUSY));
    }

    #[test]
    fn issue_12_a_turn_in_line_is_given_within_the_longest_wait_only() {
        let limits = limits();
        assert!(limits.still_wanted(Duration::from_millis(2_999)));
        assert!(limits.still_wanted(Duration::from_secs(3)));
        assert!(!limits.still_wanted(Duration::from_millis(3_001)));
    }

    #[test]
    fn issue_12_a_released_slot_runs_the_hook_with_the_counts_already_released() {
        let table = InProgress::default();
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        table.on_release(Box::new({
            let table = table.clone();
            let seen = seen.clone();
            // The hook may use the table: the counts are unlocked when it runs.
            move || seen.lock().unwrap().push(table.counts(source))
        }));
        let first = table.begin(source);
        let second = table.begin(source);
        assert!(seen.lock().unwrap().is_empty());
        drop(first);
        drop(second);
        assert_eq!(*seen.lock().unwrap(), vec![(1, 1), (0, 0)]);
    }

    #[test]
    fn issue_12_waiting_counts_against_the_address_share_not_the_slots() {
        let table = InProgress::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let slot = table.begin(a);
        let waiting: Vec<Waiting> = (0..7).map(|_| table.wait(a)).collect();
        assert_eq!(table.counts(a), (1, 8));
        // Its share is full: a proven address is refused, however many slots are free.
        assert_eq!(
            decide(&limits(), 1, 8, 7, true),
            Admit::Refuse(refusal::PER_SOURCE)
        );
        drop(waiting);
        assert_eq!(table.counts(a), (1, 1));
        drop(slot);
        assert_eq!(table.counts(a), (0, 0));
        assert!(table.inner.lock().unwrap().by_source.is_empty());
    }

    #[test]
    fn slots_are_counted_per_address_and_released_on_drop() {
        let table = InProgress::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let first = table.begin(a);
        let second = table.begin(a);
        let other = table.begin(b);
        assert_eq!(table.counts(a), (3, 2));
        assert_eq!(table.gauge.get(), 3);
        drop(first);
        assert_eq!(table.counts(a), (2, 1));
        drop(second);
        drop(other);
        assert_eq!(table.counts(a), (0, 0));
        assert_eq!(table.gauge.get(), 0);
        assert!(table.inner.lock().unwrap().by_source.is_empty());
    }
}
