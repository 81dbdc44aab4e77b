//! The sampler against the running kernel, with TCP load made by the test on 127.0.0.1: per-state counts,
//! per-port ESTABLISHED counts and accept queues, through netlink sock_diag and through /proc/net/tcp.

use headroom_agent::sampler::netlink::{DiagSocket, LISTEN_ONLY};
use headroom_agent::sampler::{Sampler, SamplerConfig};
use headroom_common::wire::{Family, Listener, SocketSample, SocketSource, TcpState};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tests here change the host's socket counts; run them one at a time so they do not disturb each other.
static SERIAL: Mutex<()> = Mutex::new(());

const CONNECTIONS: usize = 50;

/// A sampler that makes a full dump every tick: these tests check the dump itself (the counts between dumps
/// are checked in `between_full_dumps.rs`). No socket-count cap either: on a host that holds more sockets than
/// the default cap (another workload with 100,000 connections), the dump would otherwise wait its longest
/// interval and these tests would read stale counts.
fn sampler(netlink: bool) -> Sampler {
    Sampler::new(SamplerConfig {
        netlink,
        full_dump_cpu_ppm: 0,
        full_dump_max_sockets: u32::MAX,
        ..SamplerConfig::default()
    })
}

fn sockets(sampler: &mut Sampler) -> SocketSample {
    let sample = sampler.sample(1, 0, Instant::now());
    assert!(
        !sample.failed.contains(&Family::TcpStates) && !sample.failed.contains(&Family::Listeners),
        "tcp families failed: {:?}",
        sample.failed
    );
    sample.sockets.expect("socket sample")
}

fn listener_on(sockets: &SocketSample, port: u16) -> Listener {
    sockets
        .listeners
        .iter()
        .find(|listener| listener.port == port)
        .unwrap_or_else(|| panic!("no listener on port {port} in {:?}", sockets.listeners))
        .clone()
}

fn established(sockets: &SocketSample) -> u32 {
    sockets.tcp_states.expect("tcp states").get(TcpState::Established)
}

/// A listener on 127.0.0.1 that accepts `CONNECTIONS` connections and keeps them open; returns the port,
/// the listener, the client sides, and the accepted sides once all are accepted.
fn accepted_connections() -> (u16, TcpListener, Vec<TcpStream>, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let acceptor = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        for _ in 0..CONNECTIONS {
            accepted.push(listener.accept().unwrap().0);
        }
        accepted_tx.send(accepted).unwrap();
        listener
    });
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let accepted = accepted_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let listener = acceptor.join().unwrap();
    (port, listener, clients, accepted)
}

/// Per-port count is exact; the host-wide ESTABLISHED count must rise by at least both sides of every
/// connection. Other processes may close connections meanwhile, so the host-wide check gets a few tries.
fn established_counts_rise(netlink: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut sampler = sampler(netlink);
    let expected_source = if netlink {
        SocketSource::Netlink
    } else {
        SocketSource::ProcNet
    };
    let mut deltas = Vec::new();
    for _attempt in 0..3 {
        let before = sockets(&mut sampler);
        let (port, listener, clients, accepted) = accepted_connections();
        let after = sockets(&mut sampler);
        assert_eq!(after.source, expected_source);
        assert_eq!(after.tcp_states_age_ms, 0);
        let counted = listener_on(&after, port);
        assert_eq!(counted.established, CONNECTIONS as u32, "{counted:?}");
        assert_eq!(counted.accept_queue, 0, "{counted:?}");
        assert!(after.tcp_states.expect("states").get(TcpState::Listen) >= 1);
        let delta = i64::from(established(&after)) - i64::from(established(&before));
        drop((listener, clients, accepted));
        if delta >= 2 * CONNECTIONS as i64 {
            return;
        }
        deltas.push(delta);
    }
    panic!(
        "ESTABLISHED rose by {deltas:?}, expected at least {} each time",
        2 * CONNECTIONS
    );
}

#[test]
fn established_counts_rise_with_netlink() {
    established_counts_rise(true);
}

#[test]
fn established_counts_rise_with_procfs() {
    established_counts_rise(false);
}

/// Sets a listening socket's backlog (calling listen(2) again on a listening socket only updates it).
fn set_backlog(listener: &TcpListener, backlog: i32) {
    // SAFETY: listen(2) on a descriptor the TcpListener owns and keeps open for the call.
    let result = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    assert_eq!(result, 0, "listen: {}", io::Error::last_os_error());
}

/// A listener with backlog 4 that never accepts, and as many connections as the kernel will queue.
fn full_accept_queue() -> (TcpListener, u16, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    set_backlog(&listener, 4);
    let port = listener.local_addr().unwrap().port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    // Linux queues backlog + 1 connections; the SYN of the next one is dropped, so it times out.
    let clients = (0..6)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(300)).ok())
        .collect();
    (listener, port, clients)
}

#[test]
fn accept_queue_and_its_limit_with_netlink() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_listener, port, clients) = full_accept_queue();
    assert_eq!(
        clients.len(),
        5,
        "the kernel should have queued backlog + 1 connections"
    );
    let after = sockets(&mut sampler(true));
    assert_eq!(after.source, SocketSource::Netlink);
    let listener = listener_on(&after, port);
    assert_eq!(listener.accept_queue, 5, "{listener:?}");
    assert_eq!(listener.accept_queue_limit, 4, "{listener:?}");
    // The queued connections are ESTABLISHED on the server side although never accepted.
    assert_eq!(listener.established, 5, "{listener:?}");
}

#[test]
fn accept_queue_with_procfs_has_no_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_listener, port, _clients) = full_accept_queue();
    let after = sockets(&mut sampler(false));
    assert_eq!(after.source, SocketSource::ProcNet);
    let listener = listener_on(&after, port);
    assert_eq!(listener.accept_queue, 5, "{listener:?}");
    assert_eq!(
        listener.accept_queue_limit, 0,
        "/proc does not show the backlog: {listener:?}"
    );
    assert_eq!(listener.established, 5, "{listener:?}");
}

/// With TCP_DEFER_ACCEPT the kernel keeps a connection whose client sent no data as a half-open request
/// socket (TCP_NEW_SYN_RECV): the handshake's last ACK is held back. Such sockets must be counted; the
/// kernel reports them as SYN_RECV through both netlink and /proc.
#[test]
fn half_open_connections_are_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let defer_s: libc::c_int = 30;
    // SAFETY: setsockopt(2) with a c_int option value that lives across the call.
    let result = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&defer_s as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "TCP_DEFER_ACCEPT: {}", io::Error::last_os_error());
    let port = listener.local_addr().unwrap().port();
    let half_open = |sockets: &SocketSample| {
        let states = sockets.tcp_states.expect("states");
        states.get(TcpState::SynRecv) + states.get(TcpState::NewSynRecv)
    };
    let mut netlink = sampler(true);
    let mut procfs = sampler(false);
    let before = (
        half_open(&sockets(&mut netlink)),
        half_open(&sockets(&mut procfs)),
    );
    let _clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let after_netlink = sockets(&mut netlink);
    let after_procfs = sockets(&mut procfs);
    assert!(
        half_open(&after_netlink) >= before.0 + 3,
        "netlink: {} half-open before, {} after",
        before.0,
        half_open(&after_netlink)
    );
    assert!(
        half_open(&after_procfs) >= before.1 + 3,
        "procfs: {} half-open before, {} after",
        before.1,
        half_open(&after_procfs)
    );
    // The server sides are not ESTABLISHED yet, so the port has none.
    assert_eq!(listener_on(&after_netlink, port).established, 0);
}

#[test]
fn a_live_sample_has_every_core_family() {
    let sample = sampler(true).sample(1, 0, Instant::now());
    let cpu = sample.cpu.expect("cpu");
    assert!(cpu.cores >= 1);
    assert_eq!(cpu.per_core.len(), cpu.cores as usize);
    assert!(cpu.load.is_some());
    let memory = sample.memory.expect("memory");
    assert!(memory.total_bytes > 0 && memory.available_bytes <= memory.total_bytes);
    let sockets = sample.sockets.expect("sockets");
    assert!(sockets.sockstat.is_some() && sockets.tcp.is_some() && sockets.ephemeral_ports.is_some());
    // Families a host may lack (pressure, conntrack) are absent, not failed.
    assert_eq!(sample.failed, Vec::<Family>::new());
    let (capacity, facts) = headroom_agent::sampler::host_facts(std::path::Path::new("/proc"));
    assert_eq!(capacity.cores, cpu.cores);
    assert!(capacity.memory_bytes > 0);
    assert!(!facts.kernel.is_empty());
    assert!(facts.boot_time_s > 1_000_000_000);
}

/// One legacy TCPDIAG_GETSOCK dump covers IPv4 and IPv6, and reports a LISTEN socket's backlog.
#[test]
fn one_netlink_dump_covers_both_families() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let Ok(v6) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    };
    set_backlog(&v6, 7);
    set_backlog(&v4, 9);
    let ports = [v4.local_addr().unwrap().port(), v6.local_addr().unwrap().port()];
    let mut diag = DiagSocket::open().unwrap();
    let mut seen = Vec::new();
    let count = diag
        .dump(LISTEN_ONLY, &mut |socket| {
            if ports.contains(&socket.local_port) {
                seen.push((socket.family, socket.local_port, socket.send_queue));
            }
        })
        .unwrap();
    assert!(count >= 2);
    assert_eq!(diag.uses_legacy_request(), Some(true));
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (libc::AF_INET as u8, ports[0], 9),
            (libc::AF_INET6 as u8, ports[1], 7)
        ]
    );

    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("::1", ports[1])).unwrap())
        .collect();
    let after = sockets(&mut sampler(true));
    assert_eq!(listener_on(&after, ports[1]).established, 3);
    drop(clients);
}
