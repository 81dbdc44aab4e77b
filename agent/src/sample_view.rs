//! `headroom-agent sample`: one sample of this host as rows of (family, metric, value), shown as a table in
//! human units, as CSV with raw numbers and their unit, or (in `main`) as the raw sample in JSON.

use headroom_common::derive::{counter_rate, cpu_percentages};
use headroom_common::units::{human_bytes, human_bytes_per_s};
use headroom_common::wire::{InterfaceCounters, Sample, TcpState};

/// One value with its unit, kept raw; only the table turns it into human units.
#[derive(Debug, Clone, PartialEq)]
pub enum Quantity {
    Count(u64),
    Number(f64),
    Percent(f64),
    Bytes(u64),
    BytesPerS(f64),
    PerS(f64),
    Text(String),
}

impl Quantity {
    /// As a table shows it: `3.2 GiB`, `12.0 KiB/s`, `41.5 %`.
    pub fn human(&self) -> String {
        match self {
            Quantity::Count(n) => n.to_string(),
            Quantity::Number(v) => format!("{v:.2}"),
            Quantity::Percent(v) => format!("{v:.1} %"),
            Quantity::Bytes(n) => human_bytes(*n as f64),
            Quantity::BytesPerS(v) => human_bytes_per_s(*v),
            Quantity::PerS(v) => format!("{v:.1}/s"),
            Quantity::Text(text) => text.clone(),
        }
    }

    /// The raw value and its unit name, as CSV carries them.
    pub fn raw(&self) -> (String, &'static str) {
        match self {
            Quantity::Count(n) => (n.to_string(), ""),
            Quantity::Number(v) => (v.to_string(), ""),
            Quantity::Percent(v) => (v.to_string(), "percent"),
            Quantity::Bytes(n) => (n.to_string(), "bytes"),
            Quantity::BytesPerS(v) => (v.to_string(), "bytes_per_s"),
            Quantity::PerS(v) => (v.to_string(), "per_s"),
            Quantity::Text(text) => (text.clone(), ""),
        }
    }
}

/// One line of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub family: &'static str,
    pub metric: String,
    pub value: Quantity,
}

/// An `f32` as the `f64` with the same shortest decimal form (7.02, not 7.019999980926514), for CSV.
fn widen(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// The readings of the second sample, with CPU busy and network rates taken over the time between the two.
pub fn readings(before: &Sample, after: &Sample) -> Vec<Reading> {
    let mut out = Vec::new();
    let mut push = |family: &'static str, metric: &str, value: Quantity| {
        out.push(Reading {
            family,
            metric: metric.to_string(),
            value,
        });
    };
    let elapsed_ms = after.timestamp_ms.saturating_sub(before.timestamp_ms);
    if let (Some(b), Some(a)) = (&before.cpu, &after.cpu) {
        push("cpu", "cores", Quantity::Count(u64::from(a.cores)));
        // The collector's derivation, so the figure matches what `fleet` shows for the same two readings.
        if let Some(pct) = cpu_percentages(&b.total, &a.total) {
            push("cpu", "busy", Quantity::Percent(pct.busy));
        }
        if let Some(load) = a.load {
            push("cpu", "load1", Quantity::Number(widen(load.one)));
            push("cpu", "load5", Quantity::Number(widen(load.five)));
            push("cpu", "load15", Quantity::Number(widen(load.fifteen)));
        }
    }
    if let Some(m) = &after.memory {
        push("memory", "total", Quantity::Bytes(m.total_bytes));
        push("memory", "available", Quantity::Bytes(m.available_bytes));
        push("memory", "used", Quantity::Bytes(m.used_bytes));
        if m.total_bytes > 0 {
            let pct = m.used_bytes as f64 * 100.0 / m.total_bytes as f64;
            push("memory", "used share", Quantity::Percent(pct));
        }
        push(
            "memory",
            "cached + buffers",
            Quantity::Bytes(m.cached_bytes + m.buffers_bytes),
        );
        push("memory", "swap used", Quantity::Bytes(m.swap_used_bytes));
        push("memory", "swap total", Quantity::Bytes(m.swap_total_bytes));
    }
    if let Some(p) = &after.pressure {
        for (name, line) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
            if let Some(line) = line {
                let metric = format!("{name} some avg10");
                push("pressure", &metric, Quantity::Percent(f64::from(line.some_avg10)));
            }
        }
    }
    for interface in &after.network {
        let earlier = before.network.iter().find(|i| i.name == interface.name);
        let mut interface_rate = |what: &str, pick: fn(&InterfaceCounters) -> u64, bytes: bool| {
            if let Some(per_s) = earlier.and_then(|b| counter_rate(pick(b), pick(interface), elapsed_ms)) {
                let metric = format!("{} {what}", interface.name);
                let value = if bytes {
                    Quantity::BytesPerS(per_s)
                } else {
                    Quantity::PerS(per_s)
                };
                push("network", &metric, value);
            }
        };
        interface_rate("rx", |i| i.rx_bytes, true);
        interface_rate("tx", |i| i.tx_bytes, true);
        interface_rate("rx packets", |i| i.rx_packets, false);
        interface_rate("tx packets", |i| i.tx_packets, false);
        let errors = interface.rx_errors + interface.tx_errors;
        let drops = interface.rx_drops + interface.tx_drops;
        push(
            "network",
            &format!("{} errors since boot", interface.name),
            Quantity::Count(errors),
        );
        push(
            "network",
            &format!("{} drops since boot", interface.name),
            Quantity::Count(drops),
        );
    }
    if let Some(sockets) = &after.sockets {
        if let Some(states) = &sockets.tcp_states {
            for state in TcpState::ALL {
                push("tcp", state.name(), Quantity::Count(u64::from(states.get(state))));
            }
        }
        for listener in &sockets.listeners {
            let port = listener.port;
            push(
                "listen",
                &format!("port {port} established"),
                Quantity::Count(u64::from(listener.established)),
            );
            push(
                "listen",
                &format!("port {port} accept queue"),
                Quantity::Count(u64::from(listener.accept_queue)),
            );
            if listener.accept_queue_limit > 0 {
                push(
                    "listen",
                    &format!("port {port} accept queue limit"),
                    Quantity::Count(u64::from(listener.accept_queue_limit)),
                );
            }
        }
        if let Some(s) = &sockets.sockstat {
            push("sockstat", "tcp inuse", Quantity::Count(s.tcp_inuse));
            push("sockstat", "tcp orphan", Quantity::Count(s.tcp_orphan));
            push("sockstat", "tcp time_wait", Quantity::Count(s.tcp_time_wait));
            push(
                "sockstat",
                "udp inuse",
                Quantity::Count(s.udp_inuse + s.udp6_inuse),
            );
        }
        if let (Some(t), Some(earlier)) = (&sockets.tcp, before.sockets.as_ref().and_then(|s| s.tcp)) {
            if let Some(per_s) = counter_rate(earlier.retrans_segs, t.retrans_segs, elapsed_ms) {
                push("tcp", "retransmitted segments", Quantity::PerS(per_s));
            }
        }
        if let Some(t) = &sockets.tcp {
            push(
                "tcp",
                "listen overflows since boot",
                Quantity::Count(t.listen_overflows),
            );
            push("tcp", "listen drops since boot", Quantity::Count(t.listen_drops));
        }
        if let Some(c) = &sockets.conntrack {
            push("conntrack", "count", Quantity::Count(c.count));
            push("conntrack", "max", Quantity::Count(c.max));
        }
        if let Some(p) = &sockets.ephemeral_ports {
            push("ports", "ephemeral low", Quantity::Count(u64::from(p.low)));
            push("ports", "ephemeral high", Quantity::Count(u64::from(p.high)));
        }
    }
    if !after.failed.is_empty() {
        let names: Vec<&str> = after.failed.iter().map(|f| f.name()).collect();
        push("errors", "families not read", Quantity::Text(names.join(", ")));
    }
    out
}

/// A borderless table in human units; `header` adds the column names.
pub fn render_table(readings: &[Reading], header: bool) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    if header {
        table.set_header(["family", "metric", "value"]);
    }
    for reading in readings {
        table.add_row([
            reading.family.to_string(),
            reading.metric.clone(),
            reading.value.human(),
        ]);
    }
    table
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect()
}

/// CSV with raw numbers: `family,metric,value,unit`; `header` adds that header row.
pub fn render_csv(readings: &[Reading], header: bool) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut write = |record: [&str; 4]| writer.write_record(record).expect("writing CSV to memory");
    if header {
        write(["family", "metric", "value", "unit"]);
    }
    for reading in readings {
        let (value, unit) = reading.value.raw();
        write([reading.family, &reading.metric, &value, unit]);
    }
    String::from_utf8(writer.into_inner().expect("writing CSV to memory")).expect("CSV is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::{CpuSample, CpuTimes, MemorySample};

    /// Two samples 250 ms apart: 25 of 100 ticks busy, 1 MiB received, 48 GiB of memory.
    fn pair() -> (Sample, Sample) {
        let at = |ms: u64, user: u64, idle: u64, rx_bytes: u64| Sample {
            seq: 1,
            timestamp_ms: ms,
            cpu: Some(CpuSample {
                total: CpuTimes {
                    user,
                    idle,
                    ..Default::default()
                },
                cores: 4,
                ..Default::default()
            }),
            memory: Some(MemorySample {
                total_bytes: 48 << 30,
                used_bytes: 12 << 30,
                available_bytes: 36 << 30,
                ..Default::default()
            }),
            network: vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes,
                ..Default::default()
            }],
            ..Default::default()
        };
        (at(1_000, 100, 100, 5 << 20), at(1_250, 125, 175, 6 << 20))
    }

    #[test]
    fn issue_15_table_shows_busy_over_the_interval_and_human_units() {
        let (before, after) = pair();
        let text = render_table(&readings(&before, &after), true);
        let line = |metric: &str| {
            text.lines()
                .find(|l| l.contains(metric))
                .unwrap_or_else(|| panic!("{metric} missing:\n{text}"))
                .to_string()
        };
        assert!(text.trim_start().starts_with("family"), "{text}");
        assert!(line("busy").ends_with("25.0 %"), "{text}");
        assert!(line("total").ends_with("48.0 GiB"), "{text}");
        assert!(line("eth0 rx ").ends_with("4.0 MiB/s"), "{text}");
        assert!(!render_table(&readings(&before, &after), false).contains("family"));
    }

    #[test]
    fn issue_15_csv_carries_raw_numbers_and_units() {
        let (before, after) = pair();
        let text = render_csv(&readings(&before, &after), true);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("family,metric,value,unit"));
        assert!(text.contains("\nmemory,total,51539607552,bytes\n"), "{text}");
        assert!(text.contains("\nnetwork,eth0 rx,4194304,bytes_per_s\n"), "{text}");
        assert!(text.contains("\ncpu,busy,25,percent\n"), "{text}");
        let headless = render_csv(&readings(&before, &after), false);
        assert!(headless.starts_with("cpu,cores,4,"), "{headless}");
    }
}
