//! Live state of every host the collector has heard from: latest values, the metrics derived from
//! consecutive samples (`headroom_common::derive`), and the Up / Stale / Down status. Pure: time comes in as
//! `now_ms` (Unix milliseconds).

use headroom_common::wire::{Hello, Sample};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

// Derivation moved to `headroom_common::derive`; these paths stay while callers move.
pub use headroom_common::derive::{derive_metrics, HostMetrics};

/// Interval assumed for a host whose hello has not been seen, as the agent's default.
pub const DEFAULT_INTERVAL_MS: u32 = 1000;

/// When a host counts as Stale or Down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSettings {
    /// A host is Stale once nothing has been heard from it for this many of its own sampling intervals.
    pub stale_after_intervals: u32,
    /// A host is Down once nothing has been heard from it for this long.
    pub down_after_ms: u64,
    /// A host whose clock is further than this from the collector's, either way, is flagged `clock_skewed`.
    pub max_clock_skew_ms: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            stale_after_intervals: 3,
            down_after_ms: 60_000,
            max_clock_skew_ms: 300_000,
        }
    }
}

/// Liveness of a host as the collector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Up,
    Stale,
    Down,
}

impl HostStatus {
    pub fn name(self) -> &'static str {
        match self {
            HostStatus::Up => "up",
            HostStatus::Stale => "stale",
            HostStatus::Down => "down",
        }
    }
}

/// Status of a host that has been silent for `silent_ms` and samples every `interval_ms`.
///
/// Down is never declared before the host has had its full stale window: a host sampling every 60 s is not
/// down after 60 s of silence, so the down threshold is the larger of `down_after_ms` and the stale window.
pub fn host_status(silent_ms: u64, interval_ms: u32, settings: &FleetSettings) -> HostStatus {
    let stale_after_ms = u64::from(settings.stale_after_intervals) * u64::from(interval_ms);
    if silent_ms >= settings.down_after_ms.max(stale_after_ms) {
        HostStatus::Down
    } else if silent_ms >= stale_after_ms {
        HostStatus::Stale
    } else {
        HostStatus::Up
    }
}

/// One host as the API and the command line show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    /// Identity from the host's client certificate.
    pub host: String,
    pub status: HostStatus,
    /// Whether a session with the host is open now.
    pub connected: bool,
    /// When the host's last session closed, collector clock; `None` while connected.
    pub disconnected_ms: Option<u64>,
    /// The "group" label, "" when absent.
    pub group: String,
    /// The "zone" label, "" when absent.
    pub zone: String,
    pub labels: BTreeMap<String, String>,
    pub cores: u32,
    pub memory_bytes: u64,
    pub interval_ms: u32,
    pub agent_version: String,
    /// When the collector last heard from the host (hello or sample), collector clock.
    pub last_seen_ms: u64,
    /// Timestamp of the latest sample, host clock.
    pub last_sample_ms: Option<u64>,
    /// Sequence number of the latest sample.
    pub seq: Option<u64>,
    /// How far the host's clock is ahead of the collector's (negative: behind), as last estimated; its samples
    /// are stored at times corrected by it. `None` until an agent speaking protocol 2 answered a probe.
    pub clock_offset_ms: Option<i64>,
    /// The offset is past `fleet.max_clock_skew`: the host's clock needs fixing (NTP).
    pub clock_skewed: bool,
    #[serde(flatten)]
    pub metrics: HostMetrics,
}

#[derive(Debug, Clone)]
struct HostEntry {
    /// Shared with the analytics' copy of the host (issue 12).
    labels: Arc<BTreeMap<String, String>>,
    cores: u32,
    memory_bytes: u64,
    interval_ms: u32,
    agent_version: String,
    instance_id: Option<u64>,
    disconnected_ms: Option<u64>,
    last_seen_ms: u64,
    /// The latest sample, kept to derive the next step's rates.
    latest: Option<Arc<Sample>>,
    /// The latest sample committed to the database, which may be older than `latest` while a live sample
    /// is ahead of a backlog. The next connection of the same instance derives its first stored sample's
    /// rates from it (`stored_previous`).
    stored: Option<Arc<Sample>>,
    metrics: HostMetrics,
    clock_offset_ms: Option<i64>,
}

impl HostEntry {
    fn new(now_ms: u64) -> Self {
        HostEntry {
            labels: Arc::default(),
            cores: 0,
            memory_bytes: 0,
            interval_ms: DEFAULT_INTERVAL_MS,
            agent_version: String::new(),
            instance_id: None,
            disconnected_ms: None,
            last_seen_ms: now_ms,
            latest: None,
            stored: None,
            metrics: HostMetrics::default(),
            clock_offset_ms: None,
        }
    }
}

/// How many hosts are connected, and in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub connected: u64,
    pub up: u64,
    pub stale: u64,
    pub down: u64,
}

/// Per-core times are dropped from the samples the live state keeps, which keeps a many-core host's entry
/// small; the price is that the first sample stored after a reconnect has every rate but the busiest core's.
fn strip_per_core(mut sample: Sample) -> Sample {
    if let Some(cpu) = &mut sample.cpu {
        cpu.per_core = Vec::new();
    }
    sample
}

/// `strip_per_core` of a shared sample: copied only when it has per-core times to drop.
fn strip_shared_per_core(sample: Arc<Sample>) -> Arc<Sample> {
    if sample.cpu.as_ref().is_none_or(|cpu| cpu.per_core.is_empty()) {
        return sample;
    }
    Arc::new(strip_per_core(Arc::unwrap_or_clone(sample)))
}

/// Makes `sample` the host's latest, with its metrics copied into the entry's in place, unless the entry
/// already holds a newer one.
fn update_latest(entry: &mut HostEntry, sample: Arc<Sample>, metrics: &HostMetrics, now_ms: u64) {
    if entry
        .latest
        .as_ref()
        .is_some_and(|latest| sample.seq <= latest.seq)
    {
        return;
    }
    entry.metrics.copy_from(metrics);
    entry.latest = Some(sample);
    entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
}

/// What a fleet-wide figure reads of one host, borrowed for a walk ([`FleetState::glance`]).
#[derive(Debug, Clone, Copy)]
pub struct HostGlance<'a> {
    /// The "group" label, "" without one.
    pub group: &'a str,
    /// The "zone" label, "" without one.
    pub zone: &'a str,
    pub status: HostStatus,
    pub metrics: &'a HostMetrics,
}

/// Live state of the fleet, one entry per host identity, kept in name order.
#[derive(Debug, Clone)]
pub struct FleetState {
    settings: FleetSettings,
    /// Entries are boxed: the map's nodes hold up to 11 entries and are about half full when hosts arrive in
    /// name order, so an entry in place (over 700 bytes) cost twice its size per host (issue 12).
    hosts: BTreeMap<String, Box<HostEntry>>,
}

impl FleetState {
    pub fn new(settings: FleetSettings) -> Self {
        FleetState {
            settings,
            hosts: BTreeMap::new(),
        }
    }

    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// Number of hosts ever heard from since the collector started.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// A host connected and said hello (identity from its certificate, labels, capacity and facts from the
    /// hello). Returns the host's labels, for the analytics to share: a reconnect with the same labels keeps
    /// the copy it had.
    pub fn on_hello(&mut self, host: &str, hello: &Hello, now_ms: u64) -> Arc<BTreeMap<String, String>> {
        let entry = self.entry(host, now_ms);
        // A new instance id is a reinstall: its sequence numbers and counters start over, so the previous
        // sample must not be paired with the next one.
        if entry.instance_id.is_some_and(|id| id != hello.instance_id) {
            entry.latest = None;
            entry.stored = None;
            entry.metrics = HostMetrics::default();
        }
        entry.instance_id = Some(hello.instance_id);
        if *entry.labels != hello.labels {
            entry.labels = Arc::new(hello.labels.clone());
        }
        entry.cores = hello.capacity.cores;
        entry.memory_bytes = hello.capacity.memory_bytes;
        entry.interval_ms = hello.interval_ms;
        entry.agent_version = hello.agent_version.clone();
        entry.disconnected_ms = None;
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
        Arc::clone(&entry.labels)
    }

    /// A validated sample arrived; update latest values and rates derived from the previous sample.
    ///
    /// A sample not newer (by sequence number) than the latest one is ignored: the live view never moves
    /// backwards, whatever order a replay arrives in.
    pub fn on_sample(&mut self, host: &str, sample: Sample, now_ms: u64) {
        let latest = self.hosts.get(host).and_then(|entry| entry.latest.as_deref());
        if latest.is_some_and(|latest| sample.seq <= latest.seq) {
            return;
        }
        let metrics = derive_metrics(latest, &sample);
        let entry = self.entry(host, now_ms);
        update_latest(entry, Arc::new(strip_per_core(sample)), &metrics, now_ms);
    }

    /// A stored sample whose metrics ingest already derived (from the sample stored before it): it is
    /// remembered as the host's last stored sample, and becomes the host's latest without a second
    /// derivation unless the live view already holds a newer sample.
    ///
    /// The sample is shared with the connection that stored it (its next sample's rates come from it), so
    /// nothing is copied; its per-core times are dropped when the connection closes (`on_disconnect`).
    pub fn on_stored(&mut self, host: &str, sample: Arc<Sample>, metrics: &HostMetrics, now_ms: u64) {
        // One lookup for a known host, the common case (its hello made the entry): this runs for every batch.
        let entry = match self.hosts.get_mut(host) {
            Some(entry) => entry,
            None => self.entry(host, now_ms),
        };
        if entry.stored.as_ref().is_none_or(|stored| sample.seq > stored.seq) {
            entry.stored = Some(Arc::clone(&sample));
        }
        update_latest(entry, sample, metrics, now_ms);
    }

    /// The host's entry, created on first sight; the name is copied only then.
    fn entry(&mut self, host: &str, now_ms: u64) -> &mut HostEntry {
        // Looked up first so that the common case, a known host, allocates no key.
        if !self.hosts.contains_key(host) {
            self.hosts
                .insert(host.to_string(), Box::new(HostEntry::new(now_ms)));
        }
        self.hosts.get_mut(host).expect("inserted above")
    }

    /// The sample to derive the first stored sample of a new connection from: the host's last stored
    /// sample, when it belongs to `instance_id` and is the one the store last committed (`last_stored_seq`).
    /// Without it the first row after every reconnect would have no CPU % and no rates.
    pub fn stored_previous(
        &self,
        host: &str,
        instance_id: u64,
        last_stored_seq: Option<u64>,
    ) -> Option<Arc<Sample>> {
        let entry = self.hosts.get(host)?;
        if entry.instance_id != Some(instance_id) {
            return None;
        }
        entry
            .stored
            .as_ref()
            .filter(|stored| Some(stored.seq) == last_stored_seq)
            .cloned()
    }

    /// A new estimate of how far the host's clock is ahead of ours.
    pub fn on_clock(&mut self, host: &str, offset_ms: i64, now_ms: u64) {
        self.entry(host, now_ms).clock_offset_ms = Some(offset_ms);
    }

    /// The host's session closed. Its status then follows from the silence since its last sample, like any
    /// other host's: a close noticed by an idle timeout long after the host went quiet must not count as
    /// having heard from it.
    pub fn on_disconnect(&mut self, host: &str, now_ms: u64) {
        if let Some(entry) = self.hosts.get_mut(host) {
            entry.disconnected_ms = Some(now_ms);
            // While connected, the entry shared its samples with the connection; kept beyond it, they drop
            // their per-core times, which keeps a many-core host's entry small. One copy still serves as
            // both the latest and the last stored sample when they are the same.
            let same = match (&entry.latest, &entry.stored) {
                (Some(latest), Some(stored)) => Arc::ptr_eq(latest, stored),
                _ => false,
            };
            entry.latest = entry.latest.take().map(strip_shared_per_core);
            entry.stored = if same {
                entry.latest.clone()
            } else {
                entry.stored.take().map(strip_shared_per_core)
            };
        }
    }

    /// Sequence number of the host's latest sample, for validating the next one.
    pub fn last_seq(&self, host: &str) -> Option<u64> {
        self.hosts.get(host)?.latest.as_ref().map(|s| s.seq)
    }

    /// One host's view, if it has ever been heard from.
    pub fn host(&self, host: &str, now_ms: u64) -> Option<HostView> {
        self.hosts.get(host).map(|entry| self.view(host, entry, now_ms))
    }

    /// Every host, sorted by host name.
    pub fn hosts(&self, now_ms: u64) -> Vec<HostView> {
        self.hosts
            .iter()
            .map(|(name, entry)| self.view(name, entry, now_ms))
            .collect()
    }

    /// Walks every host in name order, lending what a fleet-wide figure reads of it without building its
    /// view: the caller copies numbers out, and the lock on the fleet that ingest waits for is held for that
    /// copy only. Cloning 20,000 views (labels, listeners, strings) under the lock for the web view's
    /// summary was most of the 150 ms a minute that held every acknowledgement (issue 12).
    pub fn glance(&self, now_ms: u64, mut visit: impl FnMut(HostGlance<'_>)) {
        for entry in self.hosts.values() {
            let silent_ms = now_ms.saturating_sub(entry.last_seen_ms);
            let label = |key: &str| entry.labels.get(key).map_or("", String::as_str);
            visit(HostGlance {
                group: label("group"),
                zone: label("zone"),
                status: host_status(silent_ms, entry.interval_ms, &self.settings),
                metrics: &entry.metrics,
            });
        }
    }

    /// Hosts with an open session and hosts per status, without building every host's view.
    pub fn counts(&self, now_ms: u64) -> FleetCounts {
        let mut counts = FleetCounts::default();
        for entry in self.hosts.values() {
            counts.connected += u64::from(entry.disconnected_ms.is_none());
            let silent_ms = now_ms.saturating_sub(entry.last_seen_ms);
            match host_status(silent_ms, entry.interval_ms, &self.settings) {
                HostStatus::Up => counts.up += 1,
                HostStatus::Stale => counts.stale += 1,
                HostStatus::Down => counts.down += 1,
            }
        }
        counts
    }

    fn view(&self, host: &str, entry: &HostEntry, now_ms: u64) -> HostView {
        let silent_ms = now_ms.saturating_sub(entry.last_seen_ms);
        let label = |key: &str| entry.labels.get(key).cloned().unwrap_or_default();
        HostView {
            host: host.to_string(),
            status: host_status(silent_ms, entry.interval_ms, &self.settings),
            connected: entry.disconnected_ms.is_none(),
            disconnected_ms: entry.disconnected_ms,
            group: label("group"),
            zone: label("zone"),
            labels: BTreeMap::clone(&entry.labels),
            cores: entry.cores,
            memory_bytes: entry.memory_bytes,
            interval_ms: entry.interval_ms,
            agent_version: entry.agent_version.clone(),
            last_seen_ms: entry.last_seen_ms,
            last_sample_ms: entry.latest.as_ref().map(|s| s.timestamp_ms),
            seq: entry.latest.as_ref().map(|s| s.seq),
            clock_offset_ms: entry.clock_offset_ms,
            clock_skewed: entry
                .clock_offset_ms
                .is_some_and(|offset| offset.unsigned_abs() > self.settings.max_clock_skew_ms),
            metrics: entry.metrics.clone(),
        }
    }
}

/// A hello with `labels` and `instance_id`, for the live view's tests.
#[cfg(test)]
pub(crate) fn test_hello(labels: &[(&str, &str)], instance_id: u64) -> Hello {
    Hello {
        protocol_version: 1,
        agent_version: "0.1.0".into(),
        instance_id,
        interval_ms: 1000,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        capacity: headroom_common::wire::Capacity {
            cores: 4,
            memory_bytes: 8 << 30,
        },
        facts: headroom_common::wire::HostFacts::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::{CpuSample, CpuTimes, MemorySample, SocketSample, TcpCounters};

    const T0_MS: u64 = 1_700_000_000_000;

    use super::test_hello as hello;

    fn sample(seq: u64, timestamp_ms: u64, busy: u64, idle: u64, tcp: TcpCounters) -> Sample {
        Sample {
            seq,
            timestamp_ms,
            cpu: Some(CpuSample {
                total: CpuTimes {
                    user: busy,
                    idle,
                    ..Default::default()
                },
                cores: 4,
                ..Default::default()
            }),
            memory: Some(MemorySample {
                total_bytes: 1000,
                used_bytes: 250,
                available_bytes: 750,
                ..Default::default()
            }),
            sockets: Some(SocketSample {
                tcp: Some(tcp),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn issue_11_a_host_clock_past_the_skew_limit_is_flagged_with_its_offset() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("web-1", &hello(&[("group", "web")], 1), T0_MS);
        let view = fleet.host("web-1", T0_MS).unwrap();
        assert_eq!((view.clock_offset_ms, view.clock_skewed), (None, false));
        fleet.on_clock("web-1", -600_000, T0_MS);
        let view = fleet.host("web-1", T0_MS).unwrap();
        assert_eq!((view.clock_offset_ms, view.clock_skewed), (Some(-600_000), true));
        fleet.on_clock("web-1", 1_500, T0_MS);
        assert!(!fleet.host("web-1", T0_MS).unwrap().clock_skewed);
    }

    #[test]
    fn a_stored_sample_takes_the_metrics_ingest_derived_and_never_moves_the_view_back() {
        let mut fleet = FleetState::new(FleetSettings::default());
        let first = sample(1, T0_MS, 100, 900, TcpCounters::default());
        let second = sample(2, T0_MS + 1_000, 400, 1_500, TcpCounters::default());
        let metrics = derive_metrics(Some(&first), &second);
        fleet.on_stored("web-1", Arc::new(second.clone()), &metrics, T0_MS + 1_000);
        let view = fleet.host("web-1", T0_MS + 1_000).unwrap();
        assert_eq!(view.seq, Some(2));
        assert_eq!(view.metrics.cpu_busy_pct, metrics.cpu_busy_pct);
        // A live sample got ahead; a stored batch that ends before it must not replace it.
        let live = sample(5, T0_MS + 4_000, 700, 2_100, TcpCounters::default());
        fleet.on_sample("web-1", live, T0_MS + 4_000);
        fleet.on_stored(
            "web-1",
            Arc::new(sample(3, T0_MS + 2_000, 500, 1_800, TcpCounters::default())),
            &metrics,
            T0_MS + 4_000,
        );
        assert_eq!(fleet.host("web-1", T0_MS + 4_000).unwrap().seq, Some(5));
    }

    #[test]
    fn status_goes_up_then_stale_then_down() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("web-1", &hello(&[("group", "web"), ("zone", "a")], 7), T0_MS);
        fleet.on_sample("web-1", sample(1, T0_MS, 0, 0, TcpCounters::default()), T0_MS);
        let status = |fleet: &FleetState, now_ms: u64| fleet.hosts(now_ms)[0].status;
        assert_eq!(status(&fleet, T0_MS + 2_999), HostStatus::Up);
        assert_eq!(status(&fleet, T0_MS + 3_000), HostStatus::Stale);
        assert_eq!(status(&fleet, T0_MS + 59_999), HostStatus::Stale);
        assert_eq!(status(&fleet, T0_MS + 60_000), HostStatus::Down);

        // A fresh sample brings it back up.
        fleet.on_sample(
            "web-1",
            sample(2, T0_MS + 70_000, 0, 0, TcpCounters::default()),
            T0_MS + 70_000,
        );
        assert_eq!(status(&fleet, T0_MS + 70_500), HostStatus::Up);

        // A disconnected host goes down after the same silence.
        fleet.on_disconnect("web-1", T0_MS + 71_000);
        let view = &fleet.hosts(T0_MS + 72_000)[0];
        assert!(!view.connected);
        assert_eq!(view.disconnected_ms, Some(T0_MS + 71_000));
        assert_eq!(view.status, HostStatus::Up);
        assert_eq!(status(&fleet, T0_MS + 129_999), HostStatus::Stale);
        assert_eq!(status(&fleet, T0_MS + 130_000), HostStatus::Down);
        assert_eq!((view.group.as_str(), view.zone.as_str()), ("web", "a"));
    }

    #[test]
    fn slow_hosts_get_their_whole_stale_window_before_down() {
        let settings = FleetSettings::default();
        assert_eq!(host_status(90_000, 60_000, &settings), HostStatus::Up);
        assert_eq!(host_status(180_000, 60_000, &settings), HostStatus::Down);
    }

    #[test]
    fn hosts_are_sorted_and_old_or_repeated_samples_are_ignored() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("b", &hello(&[], 1), T0_MS);
        fleet.on_hello("a", &hello(&[], 1), T0_MS);
        fleet.on_sample("a", sample(5, T0_MS, 10, 10, TcpCounters::default()), T0_MS);
        fleet.on_sample(
            "a",
            sample(6, T0_MS + 1_000, 20, 20, TcpCounters::default()),
            T0_MS + 1_000,
        );
        fleet.on_sample(
            "a",
            sample(4, T0_MS + 2_000, 0, 0, TcpCounters::default()),
            T0_MS + 2_000,
        );
        let hosts = fleet.hosts(T0_MS + 2_000);
        assert_eq!(
            hosts.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(hosts[0].seq, Some(6));
        assert_eq!(hosts[0].metrics.cpu_busy_pct, Some(50.0));
        assert_eq!(hosts[1].seq, None);
        assert_eq!(hosts[1].group, "");
        assert_eq!(fleet.last_seq("a"), Some(6));
    }

    #[test]
    fn a_reinstall_does_not_pair_samples_across_instances() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("a", &hello(&[], 1), T0_MS);
        fleet.on_sample("a", sample(900, T0_MS, 10, 10, TcpCounters::default()), T0_MS);
        fleet.on_hello("a", &hello(&[], 2), T0_MS + 1_000);
        // The new instance restarts at seq 1; it must be accepted and must not produce a rate.
        fleet.on_sample(
            "a",
            sample(1, T0_MS + 1_000, 500, 500, TcpCounters::default()),
            T0_MS + 1_000,
        );
        let view = fleet.host("a", T0_MS + 1_000).unwrap();
        assert_eq!(view.seq, Some(1));
        assert_eq!(view.metrics.cpu_busy_pct, None);
    }

    #[test]
    fn host_view_round_trips_through_json() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("a", &hello(&[("group", "db")], 1), T0_MS);
        fleet.on_sample("a", sample(1, T0_MS, 10, 10, TcpCounters::default()), T0_MS);
        fleet.on_sample(
            "a",
            sample(2, T0_MS + 1_000, 30, 20, TcpCounters::default()),
            T0_MS + 1_000,
        );
        let hosts = fleet.hosts(T0_MS + 1_000);
        let json = serde_json::to_string(&hosts).unwrap();
        assert!(json.contains("\"status\":\"up\""), "{json}");
        assert!(
            json.contains("\"cpu_busy_pct\":"),
            "metrics are flattened into the host: {json}"
        );
        let back: Vec<HostView> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hosts);
    }

    #[test]
    fn issue_12_a_stored_sample_is_shared_not_copied_until_its_connection_closes() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("a", &hello(&[], 1), T0_MS);
        let mut stored = sample(7, T0_MS, 100, 900, TcpCounters::default());
        stored.cpu.as_mut().unwrap().per_core = vec![CpuTimes::default(); 4];
        let shared = Arc::new(stored);
        fleet.on_stored("a", Arc::clone(&shared), &HostMetrics::default(), T0_MS);
        let previous = fleet.stored_previous("a", 1, Some(7)).unwrap();
        assert!(
            Arc::ptr_eq(&previous, &shared),
            "the connection's own copy, per-core times and all"
        );
        drop(previous);

        fleet.on_disconnect("a", T0_MS + 1_000);
        let kept = fleet.stored_previous("a", 1, Some(7)).unwrap();
        assert!(!Arc::ptr_eq(&kept, &shared));
        assert!(
            kept.cpu.as_ref().unwrap().per_core.is_empty(),
            "kept beyond the connection: stripped"
        );
        assert_eq!(kept.seq, 7);
        let latest = fleet.hosts.get("a").unwrap().latest.clone().unwrap();
        assert!(
            Arc::ptr_eq(&kept, &latest),
            "one copy serves as latest and stored"
        );
    }

    #[test]
    fn a_reconnect_derives_from_the_last_stored_sample_even_with_a_live_one_ahead_issue_9() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("a", &hello(&[], 1), T0_MS);
        let stored = sample(7, T0_MS, 100, 900, TcpCounters::default());
        fleet.on_stored("a", Arc::new(stored.clone()), &HostMetrics::default(), T0_MS);
        fleet.on_disconnect("a", T0_MS + 1_000);
        // The next connection's live sample gets ahead of its backlog.
        fleet.on_hello("a", &hello(&[], 1), T0_MS + 5_000);
        fleet.on_sample(
            "a",
            sample(12, T0_MS + 5_000, 600, 1_400, TcpCounters::default()),
            T0_MS + 5_000,
        );
        let previous = fleet
            .stored_previous("a", 1, Some(7))
            .expect("seeded from the live state");
        assert_eq!(previous.seq, 7);
        let first_after = sample(8, T0_MS + 1_000, 150, 1_350, TcpCounters::default());
        // Δbusy = 50 of Δtotal = 500.
        assert_eq!(
            derive_metrics(Some(&*previous), &first_after).cpu_busy_pct,
            Some(10.0)
        );
        // Not when the store committed something else, nor for another instance.
        assert_eq!(fleet.stored_previous("a", 1, Some(6)), None);
        assert_eq!(fleet.stored_previous("a", 2, Some(7)), None);
        fleet.on_hello("a", &hello(&[], 2), T0_MS + 9_000);
        assert_eq!(
            fleet.stored_previous("a", 2, Some(7)),
            None,
            "a reinstall forgets it"
        );
    }
}
