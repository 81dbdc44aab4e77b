//! Derivation, in one place: busy %, per-second rates and gauges computed from a sample and the one before
//! it. The collector derives every stored sample here (once, at ingest); `headroom-agent sample` uses the
//! same busy % for its table. Pure: samples in, numbers out.
//!
//! Counter resets: when a counter is lower than in the previous sample (a reboot, a driver reload, a 32-bit
//! counter that wrapped), the rate for that one step is `None`, never negative and never `value / Δt`. Dividing
//! the new value by Δt would assume the counter restarted from zero exactly at the previous sample, which is
//! false after a reboot (the host counted from boot, possibly long before) and false after a wrap (the wrap
//! width is unknown), so it would report a number that looks precise and is not. One missing step is honest;
//! the next step has a correct rate again.

use crate::wire::{CpuTimes, Family, InterfaceCounters, Listener, Sample, TcpState, TcpStates};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;

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
    /// PSI "some" avg10 of CPU, memory and IO, in percent. Named as in the metric catalogue; the names the
    /// JSON output had before (`psi_cpu_some_avg10`, …) are still read.
    #[serde(alias = "psi_cpu_some_avg10")]
    pub psi_cpu: Option<f64>,
    #[serde(alias = "psi_memory_some_avg10")]
    pub psi_memory: Option<f64>,
    #[serde(alias = "psi_io_some_avg10")]
    pub psi_io: Option<f64>,
    /// Summed over the interfaces the agent sent that were present in both samples.
    pub net_rx_bytes_per_s: Option<f64>,
    pub net_tx_bytes_per_s: Option<f64>,
    pub tcp_established: Option<u64>,
    pub tcp_time_wait: Option<u64>,
    /// Count per TCP state; empty when the per-state dump failed. Serialized as a map of state names.
    pub tcp_states: TcpStateCounts,
    /// How old the per-state and per-port counts were when the sample was taken.
    pub tcp_states_age_ms: Option<u32>,
    pub retrans_per_s: Option<f64>,
    pub listen_overflows_per_s: Option<f64>,
    pub listen_drops_per_s: Option<f64>,
    pub active_opens_per_s: Option<f64>,
    pub passive_opens_per_s: Option<f64>,
    pub conntrack_fill_pct: Option<f64>,
    /// The fullest accept queue among listeners whose limit is known, in percent of its limit.
    pub max_accept_queue_fill_pct: Option<f64>,
    /// Busy % of the busiest core between the two samples: a single-threaded service saturating one core
    /// shows here while the host's overall busy % stays low.
    pub cpu_busiest_core_pct: Option<f64>,
    pub listeners: Vec<Listener>,
    /// Names of the families that failed in the latest sample.
    pub failed: Vec<String>,
}

/// Count per TCP state as `HostMetrics` keeps it: the sample's fixed array, indexed by `TcpState`, so deriving
/// and copying it allocates nothing. The names appear only when it is serialized: a map from state name to
/// count in name order (`{}` when the per-state dump failed), the shape the API has always had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStateCounts(Option<TcpStates>);

/// `TcpState::ALL` in the order of their names, as a map keyed by name lists them.
const STATES_BY_NAME: [TcpState; 12] = [
    TcpState::Close,
    TcpState::CloseWait,
    TcpState::Closing,
    TcpState::Established,
    TcpState::FinWait1,
    TcpState::FinWait2,
    TcpState::LastAck,
    TcpState::Listen,
    TcpState::NewSynRecv,
    TcpState::SynRecv,
    TcpState::SynSent,
    TcpState::TimeWait,
];

impl TcpStateCounts {
    pub fn new(states: Option<TcpStates>) -> Self {
        TcpStateCounts(states)
    }

    /// The count in one state; `None` when the per-state dump failed.
    pub fn get(&self, state: TcpState) -> Option<u32> {
        self.0.map(|states| states.get(state))
    }

    /// True when the per-state dump failed (no counts at all, not zero counts).
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Number of states with a count: 12, or 0 when the dump failed.
    pub fn len(&self) -> usize {
        if self.0.is_some() {
            STATES_BY_NAME.len()
        } else {
            0
        }
    }

    /// (state name, count) in name order, as serialized.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.0
            .iter()
            .flat_map(|states| STATES_BY_NAME.iter().map(move |&s| (s.name(), states.get(s))))
    }
}

impl Serialize for TcpStateCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, count) in self.iter() {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TcpStateCounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = TcpStateCounts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map from TCP state name to count")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut states: Option<TcpStates> = None;
                while let Some((name, count)) = map.next_entry::<String, u32>()? {
                    let states = states.get_or_insert_with(TcpStates::default);
                    // A state this version does not know (a newer collector's) is left out, not an error.
                    if let Some(&state) = TcpState::ALL.iter().find(|s| s.name() == name) {
                        states.counts[state as usize - 1] = count;
                    }
                }
                Ok(TcpStateCounts(states))
            }
        }
        deserializer.deserialize_map(CountsVisitor)
    }
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

/// Busy % of the busiest core between two readings of the per-core counters, matched by position.
///
/// `None` when either reading has no per-core times or the core count changed (a CPU went on- or offline:
/// positions no longer name the same cores). A core whose counters went down is left out for the step.
pub fn busiest_core_pct(previous: &[CpuTimes], current: &[CpuTimes]) -> Option<f64> {
    if previous.is_empty() || previous.len() != current.len() {
        return None;
    }
    previous
        .iter()
        .zip(current)
        .filter_map(|(before, now)| cpu_percentages(before, now))
        .map(|pct| pct.busy)
        .reduce(f64::max)
}

/// The fullest accept queue among listeners whose limit is known, in percent of its limit.
pub fn max_accept_queue_fill_pct(listeners: &[Listener]) -> Option<f64> {
    listeners
        .iter()
        .filter(|l| l.accept_queue_limit > 0)
        .map(|l| f64::from(l.accept_queue) * 100.0 / f64::from(l.accept_queue_limit))
        .reduce(f64::max)
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
    // Interfaces nearly always come in the same order as last time, so the same position is tried first;
    // a name index is built only when that fails on a long list.
    let mut by_name: Option<HashMap<&str, &InterfaceCounters>> = None;
    let mut rx_per_s: Option<f64> = None;
    let mut tx_per_s: Option<f64> = None;
    for (position, interface) in current.iter().enumerate() {
        let name = interface.name.as_str();
        let old = match previous.get(position).filter(|old| old.name == name) {
            Some(old) => Some(old),
            None if previous.len() <= 16 => previous.iter().find(|old| old.name == name),
            None => by_name
                .get_or_insert_with(|| previous.iter().map(|i| (i.name.as_str(), i)).collect())
                .get(name)
                .copied(),
        };
        let Some(old) = old else {
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

impl HostMetrics {
    /// Makes `self` equal to `source`, reusing the lists' allocations: the live view overwrites a host's
    /// metrics in place every sample rather than dropping them and cloning new ones.
    pub fn copy_from(&mut self, source: &HostMetrics) {
        let mut listeners = std::mem::take(&mut self.listeners);
        let mut failed = std::mem::take(&mut self.failed);
        listeners.clone_from(&source.listeners);
        failed.clone_from(&source.failed);
        *self = HostMetrics {
            listeners,
            failed,
            ..*source
        };
    }
}

/// Everything derivable from the latest sample and, for rates, the one before it.
pub fn derive_metrics(previous: Option<&Sample>, current: &Sample) -> HostMetrics {
    let mut metrics = HostMetrics::default();
    derive_metrics_into(previous, current, &mut metrics);
    metrics
}

/// `derive_metrics` into `metrics`, whatever it held, reusing its lists' allocations (ingest derives every
/// sample into a row it reuses).
pub fn derive_metrics_into(previous: Option<&Sample>, current: &Sample, metrics: &mut HostMetrics) {
    let mut listeners = std::mem::take(&mut metrics.listeners);
    let mut failed = std::mem::take(&mut metrics.failed);
    listeners.clear();
    failed.clear();
    failed.extend(current.failed.iter().map(|f| f.name().to_string()));
    *metrics = HostMetrics {
        listeners,
        failed,
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
        if let Some(before) = before {
            metrics.cpu_busiest_core_pct = busiest_core_pct(&before.per_core, &cpu.per_core);
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
        metrics.psi_cpu = pressure.cpu.map(|l| f64::from(l.some_avg10));
        metrics.psi_memory = pressure.memory.map(|l| f64::from(l.some_avg10));
        metrics.psi_io = pressure.io.map(|l| f64::from(l.some_avg10));
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
            metrics.tcp_states = TcpStateCounts::new(Some(*states));
            metrics.tcp_states_age_ms = Some(sockets.tcp_states_age_ms);
        } else if let Some(sockstat) = &sockets.sockstat {
            // sockstat counts TIME_WAIT even when the per-state dump failed.
            metrics.tcp_time_wait = Some(sockstat.tcp_time_wait);
        }
        metrics.max_accept_queue_fill_pct = max_accept_queue_fill_pct(&sockets.listeners);
        metrics.listeners.extend_from_slice(&sockets.listeners);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CpuSample, MemorySample, SocketSample, TcpCounters, TcpStates};

    const T0_MS: u64 = 1_700_000_000_000;

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
    fn issue_12_long_interface_lists_match_by_name_in_any_order() {
        let previous: Vec<InterfaceCounters> =
            (0..40).map(|i| interface(&format!("veth{i}"), 0, 0)).collect();
        // Reversed, one gone and one new: every survivor is still paired with its own counters.
        let mut current: Vec<InterfaceCounters> = (1..40)
            .rev()
            .map(|i| interface(&format!("veth{i}"), 1_000 * i, 10 * i))
            .collect();
        current.push(interface("veth99", 1 << 40, 1 << 40));
        let rx: u64 = (1..40).map(|i| 1_000 * i).sum();
        let tx: u64 = (1..40).map(|i| 10 * i).sum();
        assert_eq!(
            network_rates(&previous, &current, 1_000),
            (Some(rx as f64), Some(tx as f64))
        );
        let short_reordered = [interface("b", 5, 5), interface("a", 7, 7)];
        assert_eq!(
            network_rates(
                &[interface("a", 1, 1), interface("b", 1, 1)],
                &short_reordered,
                1_000
            ),
            (Some(10.0), Some(10.0))
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
    fn socket_gauges_and_state_map_come_from_the_dump() {
        let mut states = TcpStates::default();
        states.add(TcpState::Established, 42);
        states.add(TcpState::TimeWait, 7);
        let mut current = sample(1, T0_MS, 0, 0, TcpCounters::default());
        let sockets = current.sockets.as_mut().unwrap();
        sockets.tcp_states = Some(states);
        sockets.tcp_states_age_ms = 4_000;
        sockets.conntrack = Some(crate::wire::Conntrack { count: 50, max: 200 });
        let metrics = derive_metrics(None, &current);
        assert_eq!(metrics.tcp_established, Some(42));
        assert_eq!(metrics.tcp_time_wait, Some(7));
        assert_eq!(metrics.tcp_states.get(TcpState::TimeWait), Some(7));
        assert_eq!(metrics.tcp_states.len(), 12);
        assert_eq!(metrics.tcp_states_age_ms, Some(4_000));
        assert_eq!(metrics.conntrack_fill_pct, Some(25.0));
    }

    #[test]
    fn issue_12_deriving_into_a_used_row_gives_what_a_fresh_derivation_gives() {
        let mut first = sample(1, T0_MS, 100, 900, TcpCounters::default());
        first.failed = vec![Family::Pressure];
        let sockets = first.sockets.as_mut().unwrap();
        sockets.listeners = vec![Listener::default(); 3];
        let mut states = TcpStates::default();
        states.add(TcpState::Listen, 3);
        sockets.tcp_states = Some(states);
        let second = sample(2, T0_MS + 1_000, 150, 1_850, TcpCounters::default());

        let mut reused = derive_metrics(None, &first);
        assert_eq!((reused.listeners.len(), reused.failed.len()), (3, 1));
        derive_metrics_into(Some(&first), &second, &mut reused);
        assert_eq!(reused, derive_metrics(Some(&first), &second));
        assert!(reused.listeners.is_empty() && reused.failed.is_empty() && reused.tcp_states.is_empty());

        let mut copy = derive_metrics(Some(&first), &second);
        copy.copy_from(&derive_metrics(None, &first));
        assert_eq!(copy, derive_metrics(None, &first));
    }

    #[test]
    fn issue_12_tcp_states_serialize_as_the_map_of_names_they_always_were() {
        let mut states = TcpStates::default();
        for (i, &state) in TcpState::ALL.iter().enumerate() {
            states.add(state, 100 + i as u32);
        }
        let counts = TcpStateCounts::new(Some(states));
        // The shape before the fixed array: a map of owned names, serialized in name order.
        let as_map: std::collections::BTreeMap<String, u32> = TcpState::ALL
            .iter()
            .map(|&s| (s.name().to_string(), states.get(s)))
            .collect();
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(json, serde_json::to_string(&as_map).unwrap());
        assert_eq!(serde_json::from_str::<TcpStateCounts>(&json).unwrap(), counts);
        assert_eq!(counts.get(TcpState::Listen), Some(109));

        let failed = TcpStateCounts::default();
        assert_eq!(serde_json::to_string(&failed).unwrap(), "{}");
        assert_eq!(serde_json::from_str::<TcpStateCounts>("{}").unwrap(), failed);
        assert_eq!((failed.len(), failed.get(TcpState::Established)), (0, None));
        // Inside HostMetrics the field keeps its name and shape.
        let metrics = HostMetrics {
            tcp_states: counts,
            ..HostMetrics::default()
        };
        let value = serde_json::to_value(&metrics).unwrap();
        assert_eq!(value["tcp_states"]["time_wait"], 105);
        assert_eq!(serde_json::from_value::<HostMetrics>(value).unwrap(), metrics);
    }

    #[test]
    fn busiest_core_is_the_largest_per_core_busy_share() {
        let core = |busy: u64, idle: u64| CpuTimes {
            user: busy,
            idle,
            ..Default::default()
        };
        let mut first = sample(1, T0_MS, 100, 900, TcpCounters::default());
        first.cpu.as_mut().unwrap().per_core = vec![core(0, 100), core(50, 50), core(10, 90)];
        let mut second = sample(2, T0_MS + 1_000, 200, 1_800, TcpCounters::default());
        // Core 1 ran 95 of 100 ticks; the others 10 and 20.
        second.cpu.as_mut().unwrap().per_core = vec![core(10, 190), core(145, 55), core(30, 170)];
        let metrics = derive_metrics(Some(&first), &second);
        assert_eq!(metrics.cpu_busiest_core_pct, Some(95.0));
        assert!(
            metrics.cpu_busy_pct.unwrap() < 20.0,
            "the host as a whole is mostly idle"
        );
        assert_eq!(derive_metrics(None, &second).cpu_busiest_core_pct, None);

        // A core that went offline between the samples: positions no longer match.
        assert_eq!(busiest_core_pct(&[core(0, 1), core(0, 1)], &[core(5, 5)]), None);
        // A core whose counters went down is skipped; the others still count.
        assert_eq!(
            busiest_core_pct(&[core(500, 500), core(0, 100)], &[core(1, 1), core(50, 150)]),
            Some(50.0)
        );
    }

    #[test]
    fn accept_queue_fill_ignores_listeners_with_unknown_limits() {
        let listener = |queue, limit| Listener {
            port: 80,
            established: 0,
            accept_queue: queue,
            accept_queue_limit: limit,
        };
        assert_eq!(max_accept_queue_fill_pct(&[listener(50, 0)]), None);
        let listeners = [listener(10, 100), listener(64, 128), listener(900, 0)];
        assert_eq!(max_accept_queue_fill_pct(&listeners), Some(50.0));
    }
}
