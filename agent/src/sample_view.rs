//! `headroom-agent sample`: one sample of this host as JSON or as a table a person can read.

use headroom_common::derive::cpu_percentages;
use headroom_common::wire::{Sample, TcpState};

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A table of the second sample, with CPU busy taken over the time between the two.
pub fn render_table(before: &Sample, after: &Sample) -> String {
    let mut out = String::new();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["family", "metric", "value"]);
    let mut row = |family: &str, metric: &str, value: String| {
        table.add_row([family.to_string(), metric.to_string(), value]);
    };
    if let (Some(b), Some(a)) = (&before.cpu, &after.cpu) {
        row("cpu", "cores", a.cores.to_string());
        // The collector's derivation, so the figure matches what `fleet` shows for the same two readings.
        let busy = cpu_percentages(&b.total, &a.total).map_or("-".into(), |pct| format!("{:.1} %", pct.busy));
        row("cpu", "busy", busy);
        if let Some(load) = a.load {
            row(
                "cpu",
                "load 1/5/15",
                format!("{:.2} {:.2} {:.2}", load.one, load.five, load.fifteen),
            );
        }
    }
    if let Some(m) = &after.memory {
        row("memory", "total", mib(m.total_bytes));
        row("memory", "available", mib(m.available_bytes));
        let pct = if m.total_bytes > 0 {
            m.used_bytes as f64 * 100.0 / m.total_bytes as f64
        } else {
            0.0
        };
        row("memory", "used", format!("{} ({pct:.1} %)", mib(m.used_bytes)));
        row(
            "memory",
            "cached + buffers",
            mib(m.cached_bytes + m.buffers_bytes),
        );
        row(
            "memory",
            "swap used / total",
            format!("{} / {}", mib(m.swap_used_bytes), mib(m.swap_total_bytes)),
        );
    }
    if let Some(p) = &after.pressure {
        for (name, line) in [("cpu", p.cpu), ("memory", p.memory), ("io", p.io)] {
            if let Some(line) = line {
                row(
                    "pressure",
                    &format!("{name} some avg10"),
                    format!("{:.2} %", line.some_avg10),
                );
            }
        }
    }
    for interface in &after.network {
        row(
            "network",
            &interface.name,
            format!(
                "rx {} ({} pkts, {} err, {} drop)  tx {} ({} pkts, {} err, {} drop)",
                mib(interface.rx_bytes),
                interface.rx_packets,
                interface.rx_errors,
                interface.rx_drops,
                mib(interface.tx_bytes),
                interface.tx_packets,
                interface.tx_errors,
                interface.tx_drops
            ),
        );
    }
    if let Some(sockets) = &after.sockets {
        if let Some(states) = &sockets.tcp_states {
            for state in TcpState::ALL {
                row("tcp", state.name(), states.get(state).to_string());
            }
        }
        for listener in &sockets.listeners {
            let limit = if listener.accept_queue_limit > 0 {
                listener.accept_queue_limit.to_string()
            } else {
                "?".into()
            };
            row(
                "listen",
                &format!("port {}", listener.port),
                format!(
                    "{} established, accept queue {}/{}",
                    listener.established, listener.accept_queue, limit
                ),
            );
        }
        if let Some(s) = &sockets.sockstat {
            row(
                "sockstat",
                "tcp inuse/orphan/tw",
                format!("{} / {} / {}", s.tcp_inuse, s.tcp_orphan, s.tcp_time_wait),
            );
            row("sockstat", "udp inuse", (s.udp_inuse + s.udp6_inuse).to_string());
        }
        if let Some(t) = &sockets.tcp {
            row("tcp", "retransmitted segments", t.retrans_segs.to_string());
            row(
                "tcp",
                "listen overflows / drops",
                format!("{} / {}", t.listen_overflows, t.listen_drops),
            );
        }
        if let Some(c) = &sockets.conntrack {
            row("conntrack", "count / max", format!("{} / {}", c.count, c.max));
        }
        if let Some(p) = &sockets.ephemeral_ports {
            row("ports", "ephemeral range", format!("{}-{}", p.low, p.high));
        }
    }
    if !after.failed.is_empty() {
        let names: Vec<&str> = after.failed.iter().map(|f| f.name()).collect();
        row("errors", "families not read", names.join(", "));
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}
