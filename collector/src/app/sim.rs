//! Simulated hosts for the demo: believable counters from a seeded generator, streamed like a real agent.
//!
//! Only the numbers are synthetic. Each simulated host has its own certificate and its own QUIC connection and
//! goes through the same uplink, protocol session and ingest as a real agent. Every name starts with `sim-`.

use headroom_agent::run::SampleSource;
use headroom_common::wire::{
    Capacity, CpuSample, CpuTimes, HostFacts, InterfaceCounters, Listener, LoadAverage, MemorySample, Sample,
    SocketSample, SocketSource, Sockstat, TcpCounters, TcpState, TcpStates,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// One simulated host: who it is and how loaded.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub host: String,
    pub group: String,
    pub zone: String,
    pub cores: u32,
    pub memory_bytes: u64,
    /// Mean CPU busy share, 0..1.
    pub cpu_busy: f64,
    pub memory_used: f64,
    pub established: u32,
    pub rx_bytes_per_s: f64,
}

impl SimSpec {
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            ("group".to_string(), self.group.clone()),
            ("zone".to_string(), self.zone.clone()),
            ("simulated".to_string(), "true".to_string()),
        ]
        .into()
    }

    pub fn capacity(&self) -> Capacity {
        Capacity {
            cores: self.cores,
            memory_bytes: self.memory_bytes,
        }
    }

    pub fn facts(&self) -> HostFacts {
        HostFacts {
            hostname: self.host.clone(),
            os: "simulated".into(),
            kernel: "simulated".into(),
            boot_time_s: 0,
        }
    }
}

/// The demo fleet: two groups over three zones, one web host visibly hot.
pub fn demo_fleet(count: usize) -> Vec<SimSpec> {
    const GIB: u64 = 1 << 30;
    let zones = ["zone-a", "zone-b", "zone-c"];
    (0..count)
        .map(|i| {
            // Each run of three hosts (two web, one db) fills one zone, so both groups span every zone.
            let web = i % 3 != 2;
            let group = if web { "web" } else { "db" };
            let zone = zones[(i / 3) % zones.len()];
            let host = format!("sim-{group}-{}", i + 1);
            let hot = i == 3;
            SimSpec {
                host,
                group: group.into(),
                zone: zone.into(),
                // The hot host is a smaller one behind the same round-robin balancer: it gets the same share
                // as its 8-core peers, which is why it runs hot (the demo's config says balance = "equal").
                cores: if hot {
                    4
                } else if web {
                    8
                } else {
                    16
                },
                memory_bytes: if web { 16 * GIB } else { 64 * GIB },
                cpu_busy: if hot {
                    0.93
                } else if web {
                    0.28 + 0.03 * (i % 4) as f64
                } else {
                    0.42
                },
                memory_used: if web { 0.55 } else { 0.78 },
                established: if hot {
                    4200
                } else if web {
                    900 + 40 * i as u32
                } else {
                    300
                },
                rx_bytes_per_s: if web { 4.0e6 } else { 1.5e7 },
            }
        })
        .collect()
}

/// Generates samples for one `SimSpec`, with noise from a seeded generator.
pub struct SimSource {
    spec: SimSpec,
    rng: fastrand::Rng,
    cpu: CpuTimes,
    rx_bytes: u64,
    tx_bytes: u64,
    retrans: u64,
    overflows: u64,
    last: Option<Instant>,
}

impl SimSource {
    pub fn new(spec: SimSpec, seed: u64) -> Self {
        SimSource {
            spec,
            rng: fastrand::Rng::with_seed(seed),
            cpu: CpuTimes::default(),
            rx_bytes: 0,
            tx_bytes: 0,
            retrans: 0,
            overflows: 0,
            last: None,
        }
    }

    fn noise(&mut self, spread: f64) -> f64 {
        (self.rng.f64() - 0.5) * 2.0 * spread
    }
}

impl SampleSource for SimSource {
    fn sample(&mut self, seq: u64, timestamp_ms: u64, now: Instant) -> Sample {
        let elapsed_s = self
            .last
            .map_or(1.0, |last| now.duration_since(last).as_secs_f64().max(0.001));
        self.last = Some(now);
        // 100 clock ticks per second per core, as USER_HZ on Linux.
        let ticks = (elapsed_s * 100.0 * f64::from(self.spec.cores)).round() as u64;
        let busy_share = (self.spec.cpu_busy + self.noise(0.04)).clamp(0.0, 1.0);
        let busy = (ticks as f64 * busy_share) as u64;
        self.cpu.user += busy * 7 / 10;
        self.cpu.system += busy - busy * 7 / 10;
        self.cpu.idle += ticks - busy;
        let rx = self.spec.rx_bytes_per_s * elapsed_s * (1.0 + self.noise(0.1));
        self.rx_bytes += rx as u64;
        self.tx_bytes += (rx * 1.6) as u64;
        self.retrans += self.rng.u64(0..4);
        if self.spec.cpu_busy > 0.9 {
            self.overflows += self.rng.u64(0..3);
        }
        let total = self.spec.memory_bytes;
        let used = (total as f64 * (self.spec.memory_used + self.noise(0.01)).clamp(0.0, 1.0)) as u64;
        let established = (f64::from(self.spec.established) * (1.0 + self.noise(0.05))) as u32;
        let mut states = TcpStates::default();
        states.add(TcpState::Established, established);
        states.add(TcpState::TimeWait, established / 3);
        states.add(TcpState::Listen, 2);
        let load = busy_share * f64::from(self.spec.cores);
        Sample {
            seq,
            timestamp_ms,
            cpu: Some(CpuSample {
                total: self.cpu,
                per_core: Vec::new(),
                cores: self.spec.cores,
                load: Some(LoadAverage {
                    one: load as f32,
                    five: load as f32,
                    fifteen: load as f32,
                }),
            }),
            memory: Some(MemorySample {
                total_bytes: total,
                available_bytes: total - used,
                used_bytes: used,
                cached_bytes: (total - used) / 2,
                buffers_bytes: 0,
                swap_total_bytes: 0,
                swap_used_bytes: 0,
                available_estimated: false,
            }),
            pressure: None,
            network: vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: self.rx_bytes,
                tx_bytes: self.tx_bytes,
                rx_packets: self.rx_bytes / 1000,
                tx_packets: self.tx_bytes / 1000,
                ..Default::default()
            }],
            sockets: Some(SocketSample {
                tcp_states: Some(states),
                tcp_states_age_ms: 0,
                source: SocketSource::Netlink,
                listeners: vec![Listener {
                    port: if self.spec.group == "web" { 443 } else { 5432 },
                    established,
                    accept_queue: if self.spec.cpu_busy > 0.9 {
                        self.rng.u32(20..128)
                    } else {
                        0
                    },
                    accept_queue_limit: 128,
                }],
                sockstat: Some(Sockstat {
                    tcp_inuse: u64::from(established) + 2,
                    tcp_time_wait: u64::from(established / 3),
                    ..Default::default()
                }),
                tcp: Some(TcpCounters {
                    curr_estab: u64::from(established),
                    retrans_segs: self.retrans,
                    listen_overflows: self.overflows,
                    listen_drops: self.overflows,
                    ..Default::default()
                }),
                conntrack: None,
                ephemeral_ports: None,
            }),
            failed: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn demo_fleet_spans_two_groups_three_zones_and_has_one_hot_host() {
        let fleet = demo_fleet(9);
        let groups: std::collections::BTreeSet<_> = fleet.iter().map(|s| s.group.as_str()).collect();
        let zones: std::collections::BTreeSet<_> = fleet.iter().map(|s| s.zone.as_str()).collect();
        assert_eq!(groups.len(), 2);
        assert_eq!(zones.len(), 3);
        assert!(fleet.iter().all(|s| s.host.starts_with("sim-")));
        assert_eq!(fleet.iter().filter(|s| s.cpu_busy > 0.9).count(), 1);
        let hot = fleet.iter().find(|s| s.cpu_busy > 0.9).unwrap();
        assert_eq!((hot.host.as_str(), hot.cores), ("sim-web-4", 4));
    }

    #[test]
    fn counters_only_grow_and_busy_share_follows_the_spec() {
        let spec = demo_fleet(9).remove(3);
        let mut source = SimSource::new(spec, 1);
        let start = Instant::now();
        let a = source.sample(1, 1000, start);
        let b = source.sample(2, 2000, start + Duration::from_secs(1));
        let (ca, cb) = (a.cpu.unwrap().total, b.cpu.unwrap().total);
        assert!(cb.total() > ca.total());
        let busy = headroom_common::derive::cpu_percentages(&ca, &cb).unwrap().busy;
        assert!(busy > 85.0, "hot host busy {busy} %");
        assert!(b.network[0].rx_bytes > a.network[0].rx_bytes);
    }
}
