//! Readings of the collector's cost from /proc: CPU ticks, memory, bytes written and UDP receive drops.
//!
//! Each reading is a pure parser over the text of one /proc file, tested on captured text, plus a thin read.

use std::path::Path;

/// UDP counters of the whole host, from the `Udp:` lines of /proc/net/snmp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpCounters {
    pub in_datagrams: u64,
    pub in_errors: u64,
    pub rcvbuf_errors: u64,
}

/// The `Udp:` header and value lines of /proc/net/snmp, matched by column name (kernels add columns).
pub fn parse_udp_snmp(text: &str) -> Option<UdpCounters> {
    let mut lines = text.lines().filter(|line| line.starts_with("Udp:"));
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let column = |name: &str| -> Option<u64> {
        let index = header.iter().position(|h| *h == name)?;
        values.get(index)?.parse().ok()
    };
    Some(UdpCounters {
        in_datagrams: column("InDatagrams")?,
        in_errors: column("InErrors")?,
        rcvbuf_errors: column("RcvbufErrors")?,
    })
}

/// Packets dropped by UDP sockets (the last column of /proc/net/udp and udp6), split into those bound to
/// `port` and all others, so the collector's drops are told apart from the load generator's.
pub fn parse_udp_socket_drops(text: &str, port: u16) -> (u64, u64) {
    let mut on_port = 0;
    let mut others = 0;
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(drops)) = (fields.get(1), fields.last()) else {
            continue;
        };
        let Ok(drops) = drops.parse::<u64>() else {
            continue;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
        if local_port == Some(port) {
            on_port += drops;
        } else {
            others += drops;
        }
    }
    (on_port, others)
}

/// utime + stime in clock ticks from /proc/PID/stat. The command name may hold spaces and parentheses, so
/// fields are counted from the last ')'.
pub fn parse_stat_cpu_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15, i.e. indices 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   123 kB` line of /proc/PID/status, in KiB.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// `write_bytes` of /proc/PID/io: bytes the process caused to be sent to storage.
pub fn parse_io_write_bytes(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("write_bytes:"))
        .and_then(|value| value.trim().parse().ok())
}

/// The value at quantile `q` (0..=1) of sorted values by headroom's nearest-rank definition; 0 when empty.
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    headroom_common::percentile::nearest_rank_sorted(sorted, q).unwrap_or(0)
}

/// One look at a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessReading {
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub write_bytes: u64,
}

pub fn read_process(pid: u32) -> Option<ProcessReading> {
    let dir = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let io = std::fs::read_to_string(dir.join("io")).unwrap_or_default();
    Some(ProcessReading {
        cpu_ticks: parse_stat_cpu_ticks(&stat)?,
        rss_kib: parse_status_kib(&status, "VmRSS").unwrap_or(0),
        peak_rss_kib: parse_status_kib(&status, "VmHWM").unwrap_or(0),
        write_bytes: parse_io_write_bytes(&io).unwrap_or(0),
    })
}

/// Clock ticks per second for /proc/PID/stat times.
pub fn ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Host-wide UDP counters and the per-socket drops on and off `port`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdpReading {
    pub host: UdpCounters,
    pub collector_socket_drops: u64,
    pub other_socket_drops: u64,
}

pub fn read_udp(collector_port: u16) -> UdpReading {
    let host = std::fs::read_to_string("/proc/net/snmp")
        .ok()
        .and_then(|text| parse_udp_snmp(&text))
        .unwrap_or_default();
    let mut reading = UdpReading {
        host,
        ..Default::default()
    };
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let (on_port, others) = std::fs::read_to_string(file)
            .map(|text| parse_udp_socket_drops(&text, collector_port))
            .unwrap_or_default();
        reading.collector_socket_drops += on_port;
        reading.other_socket_drops += others;
    }
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 100\n\
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
Udp: 5000 3 17 4900 12 0 0 0 0\n\
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
UdpLite: 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn udp_counters_are_read_by_column_name_from_the_udp_lines_only() {
        let counters = parse_udp_snmp(SNMP).unwrap();
        assert_eq!(
            counters,
            UdpCounters {
                in_datagrams: 5000,
                in_errors: 17,
                rcvbuf_errors: 12
            }
        );
        assert_eq!(parse_udp_snmp("Ip: a\nIp: 1\n"), None);
    }

    #[test]
    fn socket_drops_split_between_the_collector_port_and_the_rest() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0100007F:2580 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 41\n\
  2: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0000000000000000 5\n\
  3: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 2\n";
        assert_eq!(parse_udp_socket_drops(text, 0x2580), (41, 7));
    }

    #[test]
    fn cpu_ticks_count_from_the_last_parenthesis() {
        let stat = "4242 (headroom (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn status_and_io_values_are_found_by_key() {
        let status = "Name:\theadroom\nVmHWM:\t  524288 kB\nVmRSS:\t  262144 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(262_144));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(524_288));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        let io = "rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 1228800\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io_write_bytes(io), Some(1_228_800));
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values: Vec<u32> = (1..=1000).collect();
        assert_eq!(quantile(&values, 0.5), 500);
        assert_eq!(quantile(&values, 0.99), 990);
        assert_eq!(quantile(&values, 0.999), 999);
        assert_eq!(quantile(&values, 1.0), 1000);
        assert_eq!(quantile(&[], 0.99), 0);
    }
}
