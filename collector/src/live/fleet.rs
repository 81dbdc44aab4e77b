//! Live state of every host the collector has heard from: latest values, rates derived from consecutive
//! samples, and the Up / Stale / Down status. Pure: time comes in as `now_ms` (Unix milliseconds).
//!
//! Counter resets: when a counter is lower than in the previous sample (a reboot, a driver reload, a 32-bit
//! counter that wrapped), the rate for that one step is `None`, never negative and never `value / Δt`. Dividing
//! the new value by Δt would assume the counter restarted from zero exactly at the previous sample, which is
//! false after a reboot (the host counted from boot, possibly long before) and false after a wrap (the wrap
//! width is unknown), so it would report a number that looks precise and is not. One missing step is honest;
//! the next step has a correct rate again.

use crate::summary::{summarize, FleetSummary};
use headroom_common::wire::{CpuTimes, Family, Hello, InterfaceCounters, Listener, Sample, TcpState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Interval assumed for a host whose hello has not been seen, as the agent's default.
pub const DEFAULT_INTERVAL_MS: u32 = 1000;

/// When a host counts as Stale or Down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSettings {
    /// A host is Stale once nothing has been heard from it for this many of its own sampling intervals.
    pub stale_after_intervals: u32,
    /// A host is Down once nothing has been heard from it for this long.
    pub down_after_ms: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            stale_after_intervals: 3,
            down_after_ms: 60_000,
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

/// Values derived from a host's latest sample and the one before it.
///
/// Gauges (load, memory, pressure, socket counts) are there from the first sample; rates and CPU percentages
/// need two samples. Everything is `None` when its family failed or is absent on the host's kernel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostMetrics {
    /// Share of CPU time spent working (everything but idle and iowait), all cores together.
    pub cpu_busy_pct: Option<f64>,
    pub cpu_user_pct: Option<f64>,
    pub cpu_nice_pct: Option<f64>,
    pub cpu_system_pct: Option<f64>,
    pub cpu_idle_pct: Option<f64>,
    pub cpu_iowait_pct: Option<f64>,
    pub cpu_irq_pct: Option<f64>,
    pub cpu_softirq_pct: Option<f64>,
    pub cpu_steal_pct: Option<f64>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub mem_used_pct: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub swap_used_bytes: Option<u64>,
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_memory_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
    /// Summed over the interfaces the agent sent that were present in both samples.
    pub net_rx_bytes_per_s: Option<f64>,
    pub net_tx_bytes_per_s: Option<f64>,
    pub tcp_established: Option<u64>,
    pub tcp_time_wait: Option<u64>,
    /// Count per TCP state name; empty when the per-state dump failed.
    pub tcp_states: BTreeMap<String, u32>,
    /// How old the per-state and per-port counts were when the sample was taken.
    pub tcp_states_age_ms: Option<u32>,
    pub retrans_per_s: Option<f64>,
    pub listen_overflows_per_s: Option<f64>,
    pub listen_drops_per_s: Option<f64>,
    pub active_opens_per_s: Option<f64>,
    pub passive_opens_per_s: Option<f64>,
    pub conntrack_fill_pct: Option<f64>,
    pub listeners: Vec<Listener>,
    /// Names of the families that failed in the latest sample.
    pub failed: Vec<String>,
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
    #[serde(flatten)]
    pub metrics: HostMetrics,
}

/// Per-second rate of a counter between two readings `elapsed_ms` apart; `None` across a reset.
pub fn counter_rate(previous: u64, current: u64, elapsed_ms: u64) -> Option<f64> {
    if elapsed_ms == 0 {
        return None;
    }
    let delta = current.checked_sub(previous)?;
    Some(delta as f64 * 1000.0 / elapsed_ms as f64)
}

/// CPU time shares between two readings of the cumulative counters, in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuPercentages {
    pub busy: f64,
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

/// Busy % = Δbusy / Δtotal × 100; `None` when the total went down (a reboot) or did not move.
///
/// A single state may go backwards without a reboot: the kernel documents that iowait "will decrease in
/// certain conditions" (Documentation/filesystems/proc.rst). Such a state counts as 0 for the step rather
/// than discarding the step, and every share is clamped to 0..=100.
pub fn cpu_percentages(previous: &CpuTimes, current: &CpuTimes) -> Option<CpuPercentages> {
    let total_ticks = current.total().checked_sub(previous.total())?;
    if total_ticks == 0 {
        return None;
    }
    let busy_ticks = current.busy().checked_sub(previous.busy())?;
    let share = |ticks: u64| (ticks as f64 * 100.0 / total_ticks as f64).min(100.0);
    let state = |now: u64, before: u64| share(now.saturating_sub(before));
    Some(CpuPercentages {
        busy: share(busy_ticks),
        user: state(current.user, previous.user),
        nice: state(current.nice, previous.nice),
        system: state(current.system, previous.system),
        idle: state(current.idle, previous.idle),
        iowait: state(current.iowait, previous.iowait),
        irq: state(current.irq, previous.irq),
        softirq: state(current.softirq, previous.softirq),
        steal: state(current.steal, previous.steal),
    })
}

/// Received and transmitted bytes per second summed over interfaces, matched by name.
///
/// An interface that appears, or whose counters went down (recreated, driver reloaded), contributes nothing
/// for that step; one that disappeared is simply absent. `None` when no interface had a rate, so a host whose
/// network family failed does not read as idle.
pub fn network_rates(
    previous: &[InterfaceCounters],
    current: &[InterfaceCounters],
    elapsed_ms: u64,
) -> (Option<f64>, Option<f64>) {
    let before: HashMap<&str, &InterfaceCounters> = previous.iter().map(|i| (i.name.as_str(), i)).collect();
    let mut rx_per_s: Option<f64> = None;
    let mut tx_per_s: Option<f64> = None;
    for interface in current {
        let Some(old) = before.get(interface.name.as_str()) else {
            continue;
        };
        let rx = counter_rate(old.rx_bytes, interface.rx_bytes, elapsed_ms);
        let tx = counter_rate(old.tx_bytes, interface.tx_bytes, elapsed_ms);
        // Both directions reset together when an interface is recreated; if only one did, the other is
        // still a true measurement.
        if let Some(rx) = rx {
            rx_per_s = Some(rx_per_s.unwrap_or(0.0) + rx);
        }
        if let Some(tx) = tx {
            tx_per_s = Some(tx_per_s.unwrap_or(0.0) + tx);
        }
    }
    (rx_per_s, tx_per_s)
}

/// Everything derivable from the latest sample and, for rates, the one before it.
pub fn derive_metrics(previous: Option<&Sample>, current: &Sample) -> HostMetrics {
    let mut metrics = HostMetrics {
        failed: current.failed.iter().map(|f| f.name().to_string()).collect(),
        ..HostMetrics::default()
    };
    // Rates need the samples' own timestamps to move forward; a host clock stepped back gives no rates.
    let elapsed_ms = previous
        .and_then(|p| current.timestamp_ms.checked_sub(p.timestamp_ms))
        .filter(|&ms| ms > 0);
    let paired = previous.zip(elapsed_ms);

    if let Some(cpu) = &current.cpu {
        if let Some(load) = cpu.load {
            metrics.load1 = Some(f64::from(load.one));
            metrics.load5 = Some(f64::from(load.five));
            metrics.load15 = Some(f64::from(load.fifteen));
        }
        let before = paired.and_then(|(p, _)| p.cpu.as_ref());
        if let Some(pct) = before.and_then(|b| cpu_percentages(&b.total, &cpu.total)) {
            metrics.cpu_busy_pct = Some(pct.busy);
            metrics.cpu_user_pct = Some(pct.user);
            metrics.cpu_nice_pct = Some(pct.nice);
            metrics.cpu_system_pct = Some(pct.system);
            metrics.cpu_idle_pct = Some(pct.idle);
            metrics.cpu_iowait_pct = Some(pct.iowait);
            metrics.cpu_irq_pct = Some(pct.irq);
            metrics.cpu_softirq_pct = Some(pct.softirq);
            metrics.cpu_steal_pct = Some(pct.steal);
        }
    }

    if let Some(memory) = &current.memory {
        metrics.mem_used_bytes = Some(memory.used_bytes);
        metrics.mem_available_bytes = Some(memory.available_bytes);
        metrics.swap_used_bytes = Some(memory.swap_used_bytes);
        if memory.total_bytes > 0 {
            metrics.mem_used_pct = Some(memory.used_bytes as f64 * 100.0 / memory.total_bytes as f64);
        }
    }

    if let Some(pressure) = &current.pressure {
        metrics.psi_cpu_some_avg10 = pressure.cpu.map(|l| f64::from(l.some_avg10));
        metrics.psi_memory_some_avg10 = pressure.memory.map(|l| f64::from(l.some_avg10));
        metrics.psi_io_some_avg10 = pressure.io.map(|l| f64::from(l.some_avg10));
    }

    // The interface list cannot say "failed" by itself: an empty list after a failure is not zero traffic.
    let network_failed = |s: &Sample| s.failed.contains(&Family::Network);
    if let Some((before, elapsed_ms)) = paired {
        if !network_failed(current) && !network_failed(before) {
            let (rx, tx) = network_rates(&before.network, &current.network, elapsed_ms);
            metrics.net_rx_bytes_per_s = rx;
            metrics.net_tx_bytes_per_s = tx;
        }
    }

    if let Some(sockets) = &current.sockets {
        if let Some(states) = &sockets.tcp_states {
            metrics.tcp_established = Some(u64::from(states.get(TcpState::Established)));
            metrics.tcp_time_wait = Some(u64::from(states.get(TcpState::TimeWait)));
            metrics.tcp_states = TcpState::ALL
                .iter()
                .map(|&s| (s.name().to_string(), states.get(s)))
                .collect();
            metrics.tcp_states_age_ms = Some(sockets.tcp_states_age_ms);
        } else if let Some(sockstat) = &sockets.sockstat {
            // sockstat counts TIME_WAIT even when the per-state dump failed.
            metrics.tcp_time_wait = Some(sockstat.tcp_time_wait);
        }
        metrics.listeners = sockets.listeners.clone();
        if let Some(conntrack) = sockets.conntrack {
            if conntrack.max > 0 {
                metrics.conntrack_fill_pct = Some(conntrack.count as f64 * 100.0 / conntrack.max as f64);
            }
        }
        let before = paired.and_then(|(p, ms)| Some((p.sockets.as_ref()?.tcp?, ms)));
        if let (Some(tcp), Some((old, elapsed_ms))) = (sockets.tcp, before) {
            metrics.retrans_per_s = counter_rate(old.retrans_segs, tcp.retrans_segs, elapsed_ms);
            metrics.listen_overflows_per_s =
                counter_rate(old.listen_overflows, tcp.listen_overflows, elapsed_ms);
            metrics.listen_drops_per_s = counter_rate(old.listen_drops, tcp.listen_drops, elapsed_ms);
            metrics.active_opens_per_s = counter_rate(old.active_opens, tcp.active_opens, elapsed_ms);
            metrics.passive_opens_per_s = counter_rate(old.passive_opens, tcp.passive_opens, elapsed_ms);
        }
    }
    metrics
}

#[derive(Debug, Clone)]
struct HostEntry {
    labels: BTreeMap<String, String>,
    cores: u32,
    memory_bytes: u64,
    interval_ms: u32,
    agent_version: String,
    instance_id: Option<u64>,
    disconnected_ms: Option<u64>,
    last_seen_ms: u64,
    /// The latest sample, kept to derive the next step's rates.
    latest: Option<Sample>,
    metrics: HostMetrics,
}

impl HostEntry {
    fn new(now_ms: u64) -> Self {
        HostEntry {
            labels: BTreeMap::new(),
            cores: 0,
            memory_bytes: 0,
            interval_ms: DEFAULT_INTERVAL_MS,
            agent_version: String::new(),
            instance_id: None,
            disconnected_ms: None,
            last_seen_ms: now_ms,
            latest: None,
            metrics: HostMetrics::default(),
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

/// Live state of the fleet, one entry per host identity, kept in name order.
#[derive(Debug, Clone)]
pub struct FleetState {
    settings: FleetSettings,
    hosts: BTreeMap<String, HostEntry>,
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
    /// hello).
    pub fn on_hello(&mut self, host: &str, hello: &Hello, now_ms: u64) {
        let entry = self
            .hosts
            .entry(host.to_string())
            .or_insert_with(|| HostEntry::new(now_ms));
        // A new instance id is a reinstall: its sequence numbers and counters start over, so the previous
        // sample must not be paired with the next one.
        if entry.instance_id.is_some_and(|id| id != hello.instance_id) {
            entry.latest = None;
            entry.metrics = HostMetrics::default();
        }
        entry.instance_id = Some(hello.instance_id);
        entry.labels = hello.labels.clone();
        entry.cores = hello.capacity.cores;
        entry.memory_bytes = hello.capacity.memory_bytes;
        entry.interval_ms = hello.interval_ms;
        entry.agent_version = hello.agent_version.clone();
        entry.disconnected_ms = None;
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// A validated sample arrived; update latest values and rates derived from the previous sample.
    ///
    /// A sample not newer (by sequence number) than the latest one is ignored: the live view never moves
    /// backwards, whatever order a replay arrives in.
    pub fn on_sample(&mut self, host: &str, sample: &Sample, now_ms: u64) {
        let latest = self.hosts.get(host).and_then(|entry| entry.latest.as_ref());
        if latest.is_some_and(|latest| sample.seq <= latest.seq) {
            return;
        }
        let metrics = derive_metrics(latest, sample);
        self.on_stored(host, sample.clone(), metrics, now_ms);
    }

    /// A stored sample whose metrics ingest already derived (from the sample stored before it): it becomes the
    /// host's latest without a second derivation. Ignored when the live view already holds a newer sample.
    pub fn on_stored(&mut self, host: &str, mut sample: Sample, metrics: HostMetrics, now_ms: u64) {
        let entry = self
            .hosts
            .entry(host.to_string())
            .or_insert_with(|| HostEntry::new(now_ms));
        if entry
            .latest
            .as_ref()
            .is_some_and(|latest| sample.seq <= latest.seq)
        {
            return;
        }
        // Per-core times are not used for rates; dropping them keeps a many-core host's entry small.
        if let Some(cpu) = &mut sample.cpu {
            cpu.per_core = Vec::new();
        }
        entry.metrics = metrics;
        entry.latest = Some(sample);
        entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
    }

    /// The host's session closed. Its status then follows from the silence since its last sample, like any
    /// other host's: a close noticed by an idle timeout long after the host went quiet must not count as
    /// having heard from it.
    pub fn on_disconnect(&mut self, host: &str, now_ms: u64) {
        if let Some(entry) = self.hosts.get_mut(host) {
            entry.disconnected_ms = Some(now_ms);
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

    pub fn summary(&self, now_ms: u64) -> FleetSummary {
        summarize(&self.hosts(now_ms), now_ms)
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
            labels: entry.labels.clone(),
            cores: entry.cores,
            memory_bytes: entry.memory_bytes,
            interval_ms: entry.interval_ms,
            agent_version: entry.agent_version.clone(),
            last_seen_ms: entry.last_seen_ms,
            last_sample_ms: entry.latest.as_ref().map(|s| s.timestamp_ms),
            seq: entry.latest.as_ref().map(|s| s.seq),
            metrics: entry.metrics.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::{
        Capacity, CpuSample, HostFacts, MemorySample, SocketSample, TcpCounters, TcpStates,
    };

    const T0_MS: u64 = 1_700_000_000_000;

    fn hello(labels: &[(&str, &str)], instance_id: u64) -> Hello {
        Hello {
            protocol_version: 1,
            agent_version: "0.1.0".into(),
            instance_id,
            interval_ms: 1000,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capacity: Capacity {
                cores: 4,
                memory_bytes: 8 << 30,
            },
            facts: HostFacts::default(),
        }
    }

    fn interface(name: &str, rx_bytes: u64, tx_bytes: u64) -> InterfaceCounters {
        InterfaceCounters {
            name: name.into(),
            rx_bytes,
            tx_bytes,
            ..Default::default()
        }
    }

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
    fn rates_from_two_samples_are_exact() {
        let mut first = sample(1, T0_MS, 100, 900, TcpCounters::default());
        first.network = vec![interface("eth0", 1_000, 5_000), interface("eth1", 0, 0)];
        let mut second = sample(
            2,
            T0_MS + 2_000,
            400,
            1_500,
            TcpCounters {
                retrans_segs: 10,
                listen_overflows: 4,
                listen_drops: 6,
                active_opens: 20,
                passive_opens: 200,
                ..Default::default()
            },
        );
        second.network = vec![interface("eth0", 21_000, 9_000), interface("eth1", 2_000, 1_000)];

        let metrics = derive_metrics(Some(&first), &second);
        // Δrx = 20 000 + 2 000 over 2 s; Δtx = 4 000 + 1 000 over 2 s.
        assert_eq!(metrics.net_rx_bytes_per_s, Some(11_000.0));
        assert_eq!(metrics.net_tx_bytes_per_s, Some(2_500.0));
        assert_eq!(metrics.retrans_per_s, Some(5.0));
        assert_eq!(metrics.listen_overflows_per_s, Some(2.0));
        assert_eq!(metrics.listen_drops_per_s, Some(3.0));
        assert_eq!(metrics.active_opens_per_s, Some(10.0));
        assert_eq!(metrics.passive_opens_per_s, Some(100.0));
        // Δbusy = 300 of Δtotal = 900.
        assert_eq!(metrics.cpu_busy_pct, Some(300.0 * 100.0 / 900.0));
        assert_eq!(metrics.mem_used_pct, Some(25.0));

        let alone = derive_metrics(None, &second);
        assert_eq!(alone.cpu_busy_pct, None, "a rate needs two samples");
        assert_eq!(alone.retrans_per_s, None);
        assert_eq!(
            alone.mem_used_pct,
            Some(25.0),
            "a gauge is there from the first sample"
        );
    }

    #[test]
    fn a_stored_sample_takes_the_metrics_ingest_derived_and_never_moves_the_view_back() {
        let mut fleet = FleetState::new(FleetSettings::default());
        let first = sample(1, T0_MS, 100, 900, TcpCounters::default());
        let second = sample(2, T0_MS + 1_000, 400, 1_500, TcpCounters::default());
        let metrics = derive_metrics(Some(&first), &second);
        fleet.on_stored("web-1", second.clone(), metrics.clone(), T0_MS + 1_000);
        let view = fleet.host("web-1", T0_MS + 1_000).unwrap();
        assert_eq!(view.seq, Some(2));
        assert_eq!(view.metrics.cpu_busy_pct, metrics.cpu_busy_pct);
        // A live sample got ahead; a stored batch that ends before it must not replace it.
        let live = sample(5, T0_MS + 4_000, 700, 2_100, TcpCounters::default());
        fleet.on_sample("web-1", &live, T0_MS + 4_000);
        fleet.on_stored(
            "web-1",
            sample(3, T0_MS + 2_000, 500, 1_800, TcpCounters::default()),
            metrics,
            T0_MS + 4_000,
        );
        assert_eq!(fleet.host("web-1", T0_MS + 4_000).unwrap().seq, Some(5));
    }

    #[test]
    fn counter_reset_gives_no_rate_rather_than_a_negative_one() {
        let before = TcpCounters {
            retrans_segs: 1_000_000,
            ..Default::default()
        };
        let after = TcpCounters {
            retrans_segs: 5,
            ..Default::default()
        };
        let mut first = sample(1, T0_MS, 5_000, 5_000, before);
        first.network = vec![interface("eth0", 1 << 40, 1 << 40), interface("eth1", 100, 100)];
        let mut second = sample(2, T0_MS + 1_000, 10, 10, after);
        second.network = vec![interface("eth0", 10, 10), interface("eth1", 1_100, 600)];

        let metrics = derive_metrics(Some(&first), &second);
        assert_eq!(metrics.retrans_per_s, None);
        assert_eq!(metrics.cpu_busy_pct, None, "cpu total went down: a reboot");
        // eth0 was reset and is left out; eth1 is still measured.
        assert_eq!(metrics.net_rx_bytes_per_s, Some(1_000.0));
        assert_eq!(metrics.net_tx_bytes_per_s, Some(500.0));
        assert_eq!(counter_rate(10, 9, 1_000), None);
        assert_eq!(counter_rate(9, 10, 0), None);
    }

    #[test]
    fn cpu_busy_from_known_jiffies() {
        let previous = CpuTimes {
            user: 1_000,
            nice: 10,
            system: 500,
            idle: 8_000,
            iowait: 200,
            irq: 5,
            softirq: 15,
            steal: 20,
        };
        let current = CpuTimes {
            user: 1_300,
            nice: 10,
            system: 600,
            idle: 8_480,
            iowait: 250,
            irq: 10,
            softirq: 25,
            steal: 45,
        };
        // Δbusy = 300 + 0 + 100 + 5 + 10 + 25 = 440; Δtotal = 440 + 480 + 50 = 970.
        let pct = cpu_percentages(&previous, &current).unwrap();
        assert!((pct.busy - 44_000.0 / 970.0).abs() < 1e-9, "{}", pct.busy);
        assert!((pct.steal - 2_500.0 / 970.0).abs() < 1e-9);
        assert!((pct.iowait - 5_000.0 / 970.0).abs() < 1e-9);
        assert_eq!(cpu_percentages(&current, &current), None, "no ticks elapsed");

        // iowait going backwards on its own is a kernel quirk, not a reboot: the step still counts.
        let quirk = CpuTimes {
            iowait: 190,
            idle: 8_100,
            ..previous
        };
        let pct = cpu_percentages(&previous, &quirk).unwrap();
        assert_eq!(pct.iowait, 0.0);
        assert_eq!(pct.busy, 0.0);
    }

    #[test]
    fn interfaces_are_matched_by_name_when_they_come_and_go() {
        let previous = [interface("eth0", 0, 0), interface("veth1", 500, 500)];
        let current = [interface("eth0", 3_000, 1_000), interface("veth2", 9_999, 9_999)];
        assert_eq!(
            network_rates(&previous, &current, 1_000),
            (Some(3_000.0), Some(1_000.0))
        );
        let (rx, tx) = network_rates(&previous, &[interface("veth2", 1, 1)], 1_000);
        assert_eq!(
            (rx, tx),
            (None, None),
            "no interface in common means no rate, not zero"
        );
    }

    #[test]
    fn failed_network_family_is_not_zero_traffic() {
        let mut first = sample(1, T0_MS, 0, 0, TcpCounters::default());
        first.network = vec![interface("eth0", 0, 0)];
        let mut second = sample(2, T0_MS + 1_000, 0, 0, TcpCounters::default());
        second.failed = vec![Family::Network];
        let metrics = derive_metrics(Some(&first), &second);
        assert_eq!(metrics.net_rx_bytes_per_s, None);
        assert_eq!(metrics.failed, vec!["network".to_string()]);
    }

    #[test]
    fn status_goes_up_then_stale_then_down() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("web-1", &hello(&[("group", "web"), ("zone", "a")], 7), T0_MS);
        fleet.on_sample("web-1", &sample(1, T0_MS, 0, 0, TcpCounters::default()), T0_MS);
        let status = |fleet: &FleetState, now_ms: u64| fleet.hosts(now_ms)[0].status;
        assert_eq!(status(&fleet, T0_MS + 2_999), HostStatus::Up);
        assert_eq!(status(&fleet, T0_MS + 3_000), HostStatus::Stale);
        assert_eq!(status(&fleet, T0_MS + 59_999), HostStatus::Stale);
        assert_eq!(status(&fleet, T0_MS + 60_000), HostStatus::Down);

        // A fresh sample brings it back up.
        fleet.on_sample(
            "web-1",
            &sample(2, T0_MS + 70_000, 0, 0, TcpCounters::default()),
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
        fleet.on_sample("a", &sample(5, T0_MS, 10, 10, TcpCounters::default()), T0_MS);
        fleet.on_sample(
            "a",
            &sample(6, T0_MS + 1_000, 20, 20, TcpCounters::default()),
            T0_MS + 1_000,
        );
        fleet.on_sample(
            "a",
            &sample(4, T0_MS + 2_000, 0, 0, TcpCounters::default()),
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
        fleet.on_sample("a", &sample(900, T0_MS, 10, 10, TcpCounters::default()), T0_MS);
        fleet.on_hello("a", &hello(&[], 2), T0_MS + 1_000);
        // The new instance restarts at seq 1; it must be accepted and must not produce a rate.
        fleet.on_sample(
            "a",
            &sample(1, T0_MS + 1_000, 500, 500, TcpCounters::default()),
            T0_MS + 1_000,
        );
        let view = fleet.host("a", T0_MS + 1_000).unwrap();
        assert_eq!(view.seq, Some(1));
        assert_eq!(view.metrics.cpu_busy_pct, None);
    }

    #[test]
    fn socket_gauges_and_state_map_come_from_the_dump() {
        let mut states = TcpStates::default();
        states.add(TcpState::Established, 42);
        states.add(TcpState::TimeWait, 7);
        let mut current = sample(1, T0_MS, 0, 0, TcpCounters::default());
        let sockets = current.sockets.as_mut().unwrap();
        sockets.tcp_states = Some(states);
        sockets.tcp_states_age_ms = 4_000;
        sockets.conntrack = Some(headroom_common::wire::Conntrack { count: 50, max: 200 });
        let metrics = derive_metrics(None, &current);
        assert_eq!(metrics.tcp_established, Some(42));
        assert_eq!(metrics.tcp_time_wait, Some(7));
        assert_eq!(metrics.tcp_states.get("time_wait"), Some(&7));
        assert_eq!(metrics.tcp_states.len(), 12);
        assert_eq!(metrics.tcp_states_age_ms, Some(4_000));
        assert_eq!(metrics.conntrack_fill_pct, Some(25.0));
    }

    #[test]
    fn host_view_round_trips_through_json() {
        let mut fleet = FleetState::new(FleetSettings::default());
        fleet.on_hello("a", &hello(&[("group", "db")], 1), T0_MS);
        fleet.on_sample("a", &sample(1, T0_MS, 10, 10, TcpCounters::default()), T0_MS);
        fleet.on_sample(
            "a",
            &sample(2, T0_MS + 1_000, 30, 20, TcpCounters::default()),
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
}
