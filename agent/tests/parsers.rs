//! Parsers and the whole sampler against /proc files captured from real kernels (tests/fixtures/<case>/proc)
//! and hand-made files in the formats of older kernels.

use headroom_agent::sampler::{
    cpu, memory, misc, network, pressure, procnet, snmp, sockstat, tcp_table::TcpTable, InterfaceFilter,
    ParseError, Sampler, SamplerConfig,
};
use headroom_common::wire::{
    Conntrack, CpuTimes, Family, InterfaceCounters, Listener, LoadAverage, MemorySample, PortRange,
    PressureLine, SocketSource, Sockstat, TcpCounters, TcpState, TcpStates,
};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KIB: u64 = 1024;

fn proc_root(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
        .join("proc")
}

/// The files of one fixture case.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn file(&self, relative: &str) -> String {
        let path = self.root.join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }

    fn optional(&self, relative: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(relative)).ok()
    }
}

/// Parses files of fixture `case` with `parse` and asserts the result is exactly `expected`.
fn check<T: PartialEq + Debug>(
    case: &str,
    parse: impl FnOnce(&Fixture) -> Result<T, ParseError>,
    expected: T,
) {
    let fixture = Fixture {
        root: proc_root(case),
    };
    match parse(&fixture) {
        Ok(actual) => assert_eq!(actual, expected, "fixture {case}"),
        Err(error) => panic!("fixture {case}: {error}"),
    }
}

fn times(values: [u64; 8]) -> CpuTimes {
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values;
    CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    }
}

fn listener(port: u16, established: u32, accept_queue: u32) -> Listener {
    Listener {
        port,
        established,
        accept_queue,
        accept_queue_limit: 0,
    }
}

fn states(counts: &[(TcpState, u32)]) -> TcpStates {
    let mut states = TcpStates::default();
    for &(state, n) in counts {
        states.add(state, n);
    }
    states
}

// ---- CPU ----

#[test]
fn stat_live_6_18_has_steal() {
    check(
        "live-6.18",
        |f| cpu::parse_stat(&f.file("stat")).map(|s| (s.total, s.per_core, s.cores)),
        (
            times([65193, 15, 11592, 227320, 477, 0, 125, 13]),
            vec![
                times([31452, 8, 5240, 115552, 79, 0, 45, 5]),
                times([33741, 6, 6352, 111768, 398, 0, 79, 7]),
            ],
            2,
        ),
    );
}

#[test]
fn stat_node_exporter_eight_cores() {
    check(
        "node_exporter",
        |f| cpu::parse_stat(&f.file("stat")).map(|s| (s.total, s.cores, s.per_core[7])),
        (
            times([301854, 612, 111922, 8979004, 3552, 2, 3944, 0]),
            8,
            times([29098, 268, 10164, 1139282, 555, 0, 31, 0]),
        ),
    );
}

#[test]
fn stat_old_kernel_without_steal_column() {
    check(
        "old-kernel",
        |f| cpu::parse_stat(&f.file("stat")).map(|s| (s.total, s.cores)),
        (times([79440, 311, 25150, 4102771, 9012, 145, 833, 0]), 2),
    );
}

#[test]
fn loadavg_fixtures() {
    let load = |one, five, fifteen| LoadAverage { one, five, fifteen };
    check(
        "live-6.18",
        |f| cpu::parse_loadavg(&f.file("loadavg")),
        load(0.08, 0.25, 0.38),
    );
    check(
        "node_exporter",
        |f| cpu::parse_loadavg(&f.file("loadavg")),
        load(0.21, 0.37, 0.39),
    );
    check(
        "old-kernel",
        |f| cpu::parse_loadavg(&f.file("loadavg")),
        load(0.42, 0.31, 0.27),
    );
}

// ---- memory ----

fn memory_sample(
    total: u64,
    available: u64,
    cached: u64,
    buffers: u64,
    swap: (u64, u64),
    estimated: bool,
) -> MemorySample {
    MemorySample {
        total_bytes: total * KIB,
        available_bytes: available * KIB,
        used_bytes: (total - available) * KIB,
        cached_bytes: cached * KIB,
        buffers_bytes: buffers * KIB,
        swap_total_bytes: swap.0 * KIB,
        swap_used_bytes: (swap.0 - swap.1) * KIB,
        available_estimated: estimated,
    }
}

#[test]
fn meminfo_live_6_18_uses_mem_available() {
    check(
        "live-6.18",
        |f| memory::parse_meminfo(&f.file("meminfo")),
        memory_sample(24684092, 24306176, 533852, 2592, (0, 0), false),
    );
}

#[test]
fn meminfo_without_mem_available_is_estimated() {
    // free + buffers + cached.
    check(
        "node_exporter",
        |f| memory::parse_meminfo(&f.file("meminfo")),
        memory_sample(
            3742148,
            225472 + 22040 + 930888,
            930888,
            22040,
            (4194300, 3155360),
            true,
        ),
    );
    check(
        "procfs",
        |f| memory::parse_meminfo(&f.file("meminfo")),
        memory_sample(
            15666184,
            440324 + 1020128 + 12007640,
            12007640,
            1020128,
            (0, 0),
            true,
        ),
    );
    check(
        "old-kernel",
        |f| memory::parse_meminfo(&f.file("meminfo")),
        memory_sample(
            2049280,
            512000 + 102400 + 716800,
            716800,
            102400,
            (1048572, 786428),
            true,
        ),
    );
}

// ---- pressure ----

#[test]
fn pressure_fixtures() {
    let line = |some_avg10, some_total_us| PressureLine {
        some_avg10,
        some_total_us,
    };
    let all = |f: &Fixture| -> Result<[PressureLine; 3], ParseError> {
        Ok([
            pressure::parse_pressure(&f.file("pressure/cpu"), "pressure/cpu")?,
            pressure::parse_pressure(&f.file("pressure/memory"), "pressure/memory")?,
            pressure::parse_pressure(&f.file("pressure/io"), "pressure/io")?,
        ])
    };
    check(
        "live-6.18",
        all,
        [line(0.0, 41705799), line(0.0, 0), line(0.0, 4064990)],
    );
    check(
        "node_exporter",
        all,
        [line(0.0, 14036781), line(0.0, 0), line(0.18, 159886802)],
    );
}

#[test]
fn pressure_irq_file_has_only_a_full_line() {
    let text = Fixture {
        root: proc_root("node_exporter"),
    }
    .file("pressure/irq");
    let error = pressure::parse_pressure(&text, "pressure/irq").unwrap_err();
    assert_eq!(error.to_string(), "pressure/irq: no \"some\" line");
}

// ---- network ----

fn interface(name: &str, rx: [u64; 4], tx: [u64; 4]) -> InterfaceCounters {
    InterfaceCounters {
        name: name.to_string(),
        rx_bytes: rx[0],
        rx_packets: rx[1],
        rx_errors: rx[2],
        rx_drops: rx[3],
        tx_bytes: tx[0],
        tx_packets: tx[1],
        tx_errors: tx[2],
        tx_drops: tx[3],
    }
}

#[test]
fn net_dev_default_filter() {
    let parse = |f: &Fixture| network::parse_net_dev(&f.file("net/dev"), &InterfaceFilter::default());
    check(
        "live-6.18",
        parse,
        vec![
            interface("ifb0", [0; 4], [0; 4]),
            interface("ifb1", [0; 4], [0; 4]),
            interface("eth0", [196896241, 8171, 0, 0], [592139, 5436, 0, 0]),
        ],
    );
    check(
        "procfs",
        parse,
        vec![interface(
            "eth0",
            [874354587, 1036395, 0, 0],
            [563352563, 732147, 0, 0],
        )],
    );
    check(
        "old-kernel",
        parse,
        vec![interface(
            "eth0",
            [4294967296, 3021887, 2, 5],
            [987654321, 2011563, 1, 3],
        )],
    );
}

#[test]
fn net_dev_without_exclusions_keeps_every_interface_in_order() {
    let everything = InterfaceFilter {
        include: Vec::new(),
        exclude: Vec::new(),
    };
    check(
        "procfs",
        |f| {
            network::parse_net_dev(&f.file("net/dev"), &everything)
                .map(|v| v.into_iter().map(|i| i.name).collect())
        },
        vec![
            "vethf345468".to_string(),
            "lo".into(),
            "docker0".into(),
            "eth0".into(),
        ],
    );
}

// ---- TCP sockets from /proc/net/tcp{,6} ----

fn tcp_table(f: &Fixture) -> Result<TcpTable, ParseError> {
    procnet::parse_tcp(&f.file("net/tcp"), f.optional("net/tcp6").as_deref())
}

#[test]
fn tcp_live_6_18_known_load() {
    // See tests/fixtures/README.md: 32881 has 3 accepted connections, 33327 has 5 waiting in a full accept
    // queue (server sides ESTABLISHED), [::1]:40473 has 2, 2024 has none. Each connection is two ESTABLISHED
    // sockets (client and server), so 20 in all.
    check(
        "live-6.18",
        tcp_table,
        TcpTable {
            states: states(&[(TcpState::Established, 20), (TcpState::Listen, 4)]),
            listeners: vec![
                listener(2024, 0, 0),
                listener(32881, 3, 0),
                listener(33327, 5, 5),
                listener(40473, 2, 0),
            ],
        },
    );
}

#[test]
fn tcp_procfs_listeners_on_one_port_merge() {
    // Three LISTEN sockets on port 22 with rx_queue 1, 0 and 1; tcp6 has two CLOSE sockets.
    check(
        "procfs",
        tcp_table,
        TcpTable {
            states: states(&[(TcpState::Listen, 3), (TcpState::Close, 2)]),
            listeners: vec![listener(22, 0, 2)],
        },
    );
}

#[test]
fn tcp_old_kernel_without_tcp6() {
    check(
        "old-kernel",
        tcp_table,
        TcpTable {
            states: states(&[
                (TcpState::Listen, 1),
                (TcpState::Established, 1),
                (TcpState::TimeWait, 1),
            ]),
            listeners: vec![listener(22, 1, 0)],
        },
    );
}

// ---- sockstat, snmp, conntrack, port range ----

#[test]
fn sockstat_fixtures() {
    let parse = |f: &Fixture| {
        sockstat::parse_sockstat(&f.file("net/sockstat"), f.optional("net/sockstat6").as_deref())
    };
    check(
        "live-6.18",
        parse,
        Sockstat {
            sockets_used: 32,
            tcp_inuse: 19,
            tcp_orphan: 0,
            tcp_time_wait: 0,
            tcp_alloc: 24,
            tcp_mem_pages: 0,
            tcp6_inuse: 0,
            udp_inuse: 0,
            udp6_inuse: 0,
        },
    );
    check(
        "node_exporter",
        parse,
        Sockstat {
            sockets_used: 229,
            tcp_inuse: 4,
            tcp_orphan: 0,
            tcp_time_wait: 4,
            tcp_alloc: 17,
            tcp_mem_pages: 1,
            tcp6_inuse: 17,
            udp_inuse: 0,
            udp6_inuse: 9,
        },
    );
    check(
        "procfs",
        parse,
        Sockstat {
            sockets_used: 1602,
            tcp_inuse: 35,
            tcp_orphan: 0,
            tcp_time_wait: 4,
            tcp_alloc: 59,
            tcp_mem_pages: 22,
            tcp6_inuse: 0,
            udp_inuse: 12,
            udp6_inuse: 0,
        },
    );
}

#[test]
fn tcp_counters_fixtures() {
    let parse = |f: &Fixture| snmp::parse_tcp_counters(&f.file("net/snmp"), &f.file("net/netstat"));
    let counters = |[active_opens, passive_opens, curr_estab, retrans_segs, in_errs, out_rsts, listen_overflows, listen_drops]: [u64; 8]| {
        TcpCounters {
            active_opens,
            passive_opens,
            curr_estab,
            retrans_segs,
            in_errs,
            out_rsts,
            listen_overflows,
            listen_drops,
        }
    };
    check("live-6.18", parse, counters([449, 373, 0, 3, 0, 78, 0, 0]));
    check(
        "node_exporter",
        parse,
        counters([3556, 230, 0, 227, 5, 1003, 0, 0]),
    );
    check("old-kernel", parse, counters([2210, 1893, 1, 812, 0, 311, 7, 9]));
}

#[test]
fn conntrack_and_port_range_fixtures() {
    let conntrack = |f: &Fixture| {
        misc::parse_conntrack(
            &f.file("sys/net/netfilter/nf_conntrack_count"),
            &f.file("sys/net/netfilter/nf_conntrack_max"),
        )
    };
    check(
        "live-6.18",
        conntrack,
        Conntrack {
            count: 0,
            max: 262144,
        },
    );
    check(
        "node_exporter",
        conntrack,
        Conntrack {
            count: 123,
            max: 65536,
        },
    );
    let range = |f: &Fixture| misc::parse_port_range(&f.file("sys/net/ipv4/ip_local_port_range"));
    check(
        "live-6.18",
        range,
        PortRange {
            low: 32768,
            high: 60999,
        },
    );
    check(
        "old-kernel",
        range,
        PortRange {
            low: 32768,
            high: 61000,
        },
    );
}

// ---- the whole sampler ----

fn procfs_config(root: PathBuf) -> SamplerConfig {
    SamplerConfig {
        proc_root: root,
        netlink: false,
        ..SamplerConfig::default()
    }
}

#[test]
fn sampler_on_live_6_18_reads_every_family() {
    let mut sampler = Sampler::new(procfs_config(proc_root("live-6.18")));
    let sample = sampler.sample(7, 1_700_000_000_000, Instant::now());
    assert_eq!(sample.failed, Vec::<Family>::new());
    assert!(sampler.failure_counts().is_empty());
    assert_eq!(sample.seq, 7);
    assert_eq!(sample.timestamp_ms, 1_700_000_000_000);
    let cpu = sample.cpu.expect("cpu");
    assert_eq!(cpu.cores, 2);
    assert_eq!(cpu.load.expect("load").fifteen, 0.38);
    assert_eq!(sample.memory.expect("memory").available_bytes, 24306176 * KIB);
    let pressure = sample.pressure.expect("pressure");
    assert_eq!(pressure.io.expect("io").some_total_us, 4064990);
    assert_eq!(sample.network.len(), 3);
    let sockets = sample.sockets.expect("sockets");
    assert_eq!(sockets.source, SocketSource::ProcNet);
    assert_eq!(sockets.tcp_states_age_ms, 0);
    assert_eq!(
        sockets.tcp_states,
        Some(states(&[(TcpState::Established, 20), (TcpState::Listen, 4)]))
    );
    assert_eq!(
        sockets.listeners,
        vec![
            listener(2024, 0, 0),
            listener(32881, 3, 0),
            listener(33327, 5, 5),
            listener(40473, 2, 0)
        ]
    );
    assert_eq!(sockets.sockstat.expect("sockstat").tcp_alloc, 24);
    assert_eq!(sockets.tcp.expect("tcp").out_rsts, 78);
    assert_eq!(
        sockets.conntrack,
        Some(Conntrack {
            count: 0,
            max: 262144
        })
    );
    assert_eq!(
        sockets.ephemeral_ports,
        Some(PortRange {
            low: 32768,
            high: 60999
        })
    );
}

#[test]
fn sampler_on_old_kernel_reads_every_family_it_has() {
    let mut sampler = Sampler::new(procfs_config(proc_root("old-kernel")));
    let sample = sampler.sample(1, 0, Instant::now());
    assert_eq!(sample.failed, Vec::<Family>::new());
    assert!(sample.memory.expect("memory").available_estimated);
    assert_eq!(sample.cpu.expect("cpu").total.steal, 0);
    // No /proc/pressure, no conntrack module, no IPv6: absent, not failed.
    assert_eq!(sample.pressure, None);
    let sockets = sample.sockets.expect("sockets");
    assert_eq!(sockets.conntrack, None);
    assert_eq!(sockets.sockstat.expect("sockstat").tcp6_inuse, 0);
    assert_eq!(sockets.listeners, vec![listener(22, 1, 0)]);
}

#[test]
fn sampler_lists_exactly_the_families_a_fixture_lacks() {
    // node_exporter's set has no net/dev, no net/tcp and no ip_local_port_range.
    let mut sampler = Sampler::new(procfs_config(proc_root("node_exporter")));
    let expected = vec![
        Family::Network,
        Family::Listeners,
        Family::TcpStates,
        Family::PortRange,
    ];
    let first = sampler.sample(1, 0, Instant::now());
    assert_eq!(first.failed, expected);
    assert!(first.cpu.is_some() && first.memory.is_some() && first.pressure.is_some());
    let sockets = first
        .sockets
        .expect("the socket families that read are still sent");
    assert_eq!(sockets.tcp_states, None);
    assert_eq!(
        sockets.conntrack,
        Some(Conntrack {
            count: 123,
            max: 65536
        })
    );
    let second = sampler.sample(2, 1000, Instant::now());
    assert_eq!(second.failed, expected);
    let counts: Vec<(Family, u64)> = sampler.failure_counts().iter().map(|(&f, &n)| (f, n)).collect();
    assert_eq!(
        counts,
        vec![
            (Family::Network, 2),
            (Family::TcpStates, 2),
            (Family::Listeners, 2),
            (Family::PortRange, 2)
        ]
    );
}

#[test]
fn sampler_names_file_and_line_of_a_malformed_file_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proc");
    copy_tree(&proc_root("live-6.18"), &root);
    std::fs::write(root.join("loadavg"), "0.1 zero 0.3 1/2 3\n").unwrap();
    let mut sampler = Sampler::new(procfs_config(root.clone()));
    let sample = sampler.sample(1, 0, Instant::now());
    assert_eq!(sample.failed, vec![Family::LoadAverage]);
    assert_eq!(sample.cpu.expect("cpu stays").load, None);
    std::fs::write(root.join("loadavg"), "0.1 0.2 0.3 1/2 3\n").unwrap();
    let sample = sampler.sample(2, 0, Instant::now());
    assert!(sample.failed.is_empty());
    assert_eq!(sampler.failure_counts().get(&Family::LoadAverage), Some(&1));
}

#[test]
fn busy_host_reads_listeners_every_tick_and_the_full_table_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proc");
    copy_tree(&proc_root("live-6.18"), &root);
    let mut sampler = Sampler::new(SamplerConfig {
        // Every table counts as busy, so full passes are throttled.
        full_dump_max_sockets: 0,
        full_dump_interval: Duration::from_secs(30),
        ..procfs_config(root.clone())
    });
    let start = Instant::now();
    let first = sampler.sample(1, 0, start).sockets.expect("sockets");
    assert_eq!(first.tcp_states_age_ms, 0);
    assert_eq!(first.listeners[2], listener(33327, 5, 5));

    // One of the five waiting connections is accepted and closed: the accept queue drops to 4 and one
    // server-side socket is gone. Listeners are fresh; per-state and per-port counts stay from the last pass.
    let tcp = std::fs::read_to_string(root.join("net/tcp")).unwrap();
    let tcp = tcp
        .replace("0A 00000000:00000005", "0A 00000000:00000004")
        .lines()
        .filter(|line| !line.contains("0100007F:822F 0100007F:AA10"))
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    std::fs::write(root.join("net/tcp"), tcp).unwrap();
    // The kernel's counters move at once: CurrEstab 19 and one socket in TIME_WAIT (the fixture's own
    // counters were captured at another moment than its tables, so the test sets them).
    let snmp = std::fs::read_to_string(root.join("net/snmp")).unwrap().replace(
        "Tcp: 1 200 120000 -1 449 373 1 68 0 ",
        "Tcp: 1 200 120000 -1 449 373 1 68 19 ",
    );
    std::fs::write(root.join("net/snmp"), snmp).unwrap();
    let sockstat = std::fs::read_to_string(root.join("net/sockstat"))
        .unwrap()
        .replace("orphan 0 tw 0", "orphan 0 tw 1");
    std::fs::write(root.join("net/sockstat"), sockstat).unwrap();
    let second = sampler
        .sample(2, 0, start + Duration::from_secs(1))
        .sockets
        .expect("sockets");
    assert_eq!(second.tcp_states_age_ms, 1000);
    assert_eq!(second.listeners[2], listener(33327, 5, 4));
    // Issue 12: between passes ESTABLISHED and TIME_WAIT follow the counters; per-port counts keep their age.
    let states = second.tcp_states.expect("kept");
    assert_eq!(states.get(TcpState::Established), 19);
    assert_eq!(states.get(TcpState::TimeWait), 1);
    assert_eq!(second.listeners[2].established, first.listeners[2].established);

    let third = sampler
        .sample(3, 0, start + Duration::from_secs(31))
        .sockets
        .expect("sockets");
    assert_eq!(third.tcp_states_age_ms, 0);
    assert_eq!(third.listeners[2], listener(33327, 4, 4));
    assert_eq!(third.tcp_states.expect("fresh").get(TcpState::Established), 19);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let mut permissions = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            std::fs::set_permissions(&target, permissions).unwrap();
        }
    }
}
