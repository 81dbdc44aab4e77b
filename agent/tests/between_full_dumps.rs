//! Per-state counts between full socket dumps (issue 12): ESTABLISHED and TIME_WAIT come from the kernel's
//! counters every tick and must agree with the full dump when it comes. The test runs in a network namespace
//! of its own, made by the test thread, so the counts are exact: no other process has sockets there.

use headroom_agent::sampler::netlink::{local_port_filter, DiagSocket, ESTABLISHED_ONLY};
use headroom_agent::sampler::{Sampler, SamplerConfig};
use headroom_common::wire::{Family, SocketSample, TcpState, TcpStates};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CONNECTIONS: u32 = 50;

/// A sampler whose first tick makes a full dump and whose later ticks (for an hour) do not.
fn sampler_with_rare_dumps() -> Sampler {
    Sampler::new(SamplerConfig {
        // The thread's own view of /proc/net, so the namespace this thread made is the one read.
        proc_root: PathBuf::from("/proc/thread-self"),
        full_dump_interval: Duration::from_secs(3600),
        full_dump_cpu_ppm: 1,
        ..SamplerConfig::default()
    })
}

fn sockets(sampler: &mut Sampler) -> SocketSample {
    let sample = sampler.sample(1, 0, Instant::now());
    for family in [Family::TcpStates, Family::Sockstat, Family::Snmp] {
        assert!(
            !sample.failed.contains(&family),
            "{family:?} failed: {:?}",
            sample.failed
        );
    }
    sample.sockets.expect("a socket sample")
}

fn states(sockets: &SocketSample) -> TcpStates {
    sockets.tcp_states.expect("tcp states")
}

/// A new network namespace for this thread, with its loopback up.
fn enter_private_network() -> Result<(), String> {
    // SAFETY: unshare and the ioctls only touch this thread's namespace and the ifreq we own.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(format!(
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            ));
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) == 0 && {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) == 0
        };
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if !ok {
            return Err(format!("bringing lo up: {error}"));
        }
    }
    Ok(())
}

fn connections(listener: &TcpListener) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let port = listener.local_addr().unwrap().port();
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let accepted = (0..CONNECTIONS).map(|_| listener.accept().unwrap().0).collect();
    (clients, accepted)
}

/// Polls a fresh full dump until `wanted` holds, with a deadline.
fn full_dump_until(wanted: impl Fn(&TcpStates) -> bool) -> TcpStates {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let states = states(&sockets(&mut sampler_with_rare_dumps()));
        if wanted(&states) {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "the full dump never showed the expected states: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scenario() {
    let mut between = sampler_with_rare_dumps();
    let first = sockets(&mut between);
    assert_eq!(first.tcp_states_age_ms, 0, "the first tick makes a full dump");
    assert_eq!(
        states(&first).get(TcpState::Established),
        0,
        "a new namespace has no connections"
    );

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (clients, accepted) = connections(&listener);

    // Both sides of every connection, seen between dumps through CurrEstab, and by a full dump alike.
    let estimate = states(&sockets(&mut between));
    let dump = full_dump_until(|s| s.get(TcpState::Established) == 2 * CONNECTIONS);
    assert_eq!(
        estimate.get(TcpState::Established),
        dump.get(TcpState::Established)
    );
    assert_eq!(estimate.get(TcpState::TimeWait), 0);

    // The clients close first and so end in TIME_WAIT once the servers close too.
    drop(clients);
    drop(accepted);
    let dump = full_dump_until(|s| {
        s.get(TcpState::TimeWait) == CONNECTIONS
            && s.get(TcpState::Established) == 0
            && s.get(TcpState::LastAck) == 0
            && s.get(TcpState::FinWait2) == 0
    });
    let later = sockets(&mut between);
    assert!(later.tcp_states_age_ms > 0, "that tick was between full dumps");
    let estimate = states(&later);
    assert_eq!(estimate.get(TcpState::TimeWait), dump.get(TcpState::TimeWait));
    assert_eq!(
        estimate.get(TcpState::Established),
        dump.get(TcpState::Established)
    );
    assert_eq!(estimate.get(TcpState::Listen), dump.get(TcpState::Listen));
    drop(listener);
}

/// A sampler that treats every host as busy: after its first pass, every full pass (one each tick) reports
/// only the ESTABLISHED sockets on listening ports and takes the total from CurrEstab.
fn sampler_for_busy_hosts() -> Sampler {
    Sampler::new(SamplerConfig {
        proc_root: PathBuf::from("/proc/thread-self"),
        full_dump_max_sockets: 0,
        full_dump_interval: Duration::ZERO,
        full_dump_cpu_ppm: 0,
        full_dump_cpu_ceiling_ppm: 0,
        ..SamplerConfig::default()
    })
}

/// Issue 12: the cheaper pass of busy hosts gives the counts the full pass gives.
fn listening_ports_scenario() {
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let (first_clients, first_accepted) = connections(&first);
    let (second_clients, second_accepted) = connections(&second);
    // Two more server sides, accepted and then left half-closed by their clients: CLOSE_WAIT, which
    // CurrEstab counts too.
    let (closing_clients, closing_accepted) = {
        let port = first.local_addr().unwrap().port();
        let clients: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let accepted: Vec<TcpStream> = (0..2).map(|_| first.accept().unwrap().0).collect();
        (clients, accepted)
    };
    drop(closing_clients);
    let ports = [&first, &second].map(|listener| listener.local_addr().unwrap().port());

    // The kernel takes the filter program and reports exactly the server sides on the first port.
    let mut program = Vec::new();
    assert!(local_port_filter(&ports[..1], &mut program));
    let mut diag = DiagSocket::open().unwrap();
    let mut seen = 0u32;
    diag.dump_filtered(ESTABLISHED_ONLY, &program, &mut |socket| {
        assert_eq!(socket.local_port, ports[0], "a socket outside the filter");
        seen += 1;
    })
    .unwrap();
    assert_eq!(seen, CONNECTIONS);

    let mut busy = sampler_for_busy_hosts();
    // Both ends of the half-closed connections settled: CLOSE_WAIT on the server, FIN_WAIT2 on the client.
    let exact = full_dump_until(|s| {
        s.get(TcpState::Established) == 4 * CONNECTIONS
            && s.get(TcpState::CloseWait) == 2
            && s.get(TcpState::FinWait2) == 2
    });
    let _ = sockets(&mut busy);
    let filtered = sockets(&mut busy);
    assert_eq!(filtered.tcp_states_age_ms, 0, "a full pass every tick");
    assert_eq!(states(&filtered), exact);
    for port in ports {
        let listener = filtered
            .listeners
            .iter()
            .find(|l| l.port == port)
            .expect("a listener");
        assert_eq!(listener.established, CONNECTIONS, "port {port}");
    }
    drop((
        first_clients,
        first_accepted,
        second_clients,
        second_accepted,
        closing_accepted,
    ));
    drop((first, second));
}

/// One tick, and whether its listeners came from per-socket lookups (true) or from a LISTEN dump (false).
fn tick(sampler: &mut Sampler) -> (SocketSample, bool) {
    let (lookups_before, dumps_before) = sampler.listener_ticks();
    let sample = sockets(sampler);
    let (lookups, dumps) = sampler.listener_ticks();
    assert_eq!(
        lookups + dumps,
        lookups_before + dumps_before + 1,
        "one source a tick"
    );
    (sample, lookups > lookups_before)
}

fn listener(sockets: &SocketSample, port: u16) -> Option<headroom_common::wire::Listener> {
    sockets.listeners.iter().find(|l| l.port == port).cloned()
}

fn port(listener: &TcpListener) -> u16 {
    listener.local_addr().unwrap().port()
}

/// A listener on 127.0.0.1:`port` (0: any) with SO_REUSEPORT set and the given backlog.
fn reuseport_listener(port: u16, backlog: i32) -> TcpListener {
    listener_with(port, backlog, true)
}

/// A listener on 127.0.0.1:`port` (0: any) with the given backlog, in an SO_REUSEPORT group or not.
fn listener_with(port: u16, backlog: i32, reuseport: bool) -> TcpListener {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns until TcpListener takes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        let set = !reuseport
            || libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEPORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0;
        assert!(set, "SO_REUSEPORT: {}", std::io::Error::last_os_error());
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let bound = libc::bind(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(
            libc::listen(fd, backlog),
            0,
            "listen: {}",
            std::io::Error::last_os_error()
        );
        TcpListener::from_raw_fd(fd)
    }
}

/// Issue 12: between LISTEN dumps, listeners come from looking each known listening socket up by itself,
/// and say what a dump would; a new listener, a closed one and a group that lookups cannot tell apart all
/// bring the dump back.
fn listener_lookups_scenario() {
    let mut sampler = sampler_with_rare_dumps();
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let (sample, looked_up) = tick(&mut sampler);
    assert!(!looked_up, "the first tick dumps");
    assert_eq!(listener(&sample, port(&first)).unwrap().accept_queue, 0);

    // Nothing moved: the next tick looks the listener up.
    let (sample, looked_up) = tick(&mut sampler);
    assert!(looked_up, "nothing moved, yet the tick dumped");
    let limit = listener(&sample, port(&first)).unwrap().accept_queue_limit;
    assert!(limit > 0, "a lookup reports the backlog");

    // Three connections wait in the accept queue. Connections do not move the hint (they are ESTABLISHED
    // on both sides), so lookups go on, and report the queue.
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port(&first))).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (sample, looked_up) = tick(&mut sampler);
        if looked_up && listener(&sample, port(&first)).unwrap().accept_queue == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lookups never showed the accept queue of 3"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (sample, looked_up) = tick(&mut sampler);
    assert!(looked_up);
    let found = listener(&sample, port(&first)).unwrap();
    assert_eq!((found.accept_queue, found.accept_queue_limit), (3, limit));

    // A new listener moves the hint: that tick dumps and finds it, the next looks both up.
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let (sample, looked_up) = tick(&mut sampler);
    assert!(!looked_up, "a new listener must bring a dump");
    assert!(listener(&sample, port(&second)).is_some());
    let (sample, looked_up) = tick(&mut sampler);
    assert!(looked_up);
    assert!(listener(&sample, port(&first)).is_some() && listener(&sample, port(&second)).is_some());

    // One listener closes as another opens: the hint holds still, but the closed one's lookup finds
    // nothing, and the same tick dumps.
    let second_port = port(&second);
    drop(second);
    let third = TcpListener::bind("127.0.0.1:0").unwrap();
    let (sample, looked_up) = tick(&mut sampler);
    assert!(!looked_up);
    assert!(
        listener(&sample, second_port).is_none(),
        "a closed listener is reported"
    );
    assert!(listener(&sample, port(&third)).is_some());

    // Two sockets of an SO_REUSEPORT group share address and port: a lookup would find only one of them, so
    // every tick dumps, and the port's queue limit is the sum of both backlogs.
    let group = reuseport_listener(0, 7);
    let partner = reuseport_listener(port(&group), 9);
    for _ in 0..3 {
        let (sample, looked_up) = tick(&mut sampler);
        assert!(!looked_up, "a reuseport group was looked up");
        assert_eq!(listener(&sample, port(&group)).unwrap().accept_queue_limit, 16);
    }
    drop((clients, first, third, group, partner));
}

/// ListenOverflows and ListenDrops as the kernel has them now, from this thread's namespace.
fn kernel_listen_counters() -> (u64, u64) {
    let netstat = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap();
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let value = |wanted: &str| {
        let at = names.split_whitespace().position(|name| name == wanted).unwrap();
        values.split_whitespace().nth(at).unwrap().parse::<u64>().unwrap()
    };
    (value("ListenOverflows"), value("ListenDrops"))
}

fn sampled_listen_counters(sockets: &SocketSample) -> (u64, u64) {
    let tcp = sockets.tcp.expect("tcp counters");
    (tcp.listen_overflows, tcp.listen_drops)
}

/// Issue 12: /proc/net/netstat, the costliest file of a tick, is read for ListenOverflows and ListenDrops
/// only when a listening socket's own drop count moved (or its listeners changed); in between, the last
/// values stand, and they are still the kernel's.
fn listen_counters_scenario() {
    let mut sampler = sampler_with_rare_dumps();
    let listener = listener_with(0, 1, false);
    let address = listener.local_addr().unwrap();
    let (first, looked_up) = tick(&mut sampler);
    assert!(!looked_up);
    assert_eq!(sampled_listen_counters(&first), kernel_listen_counters());
    let reads = sampler.netstat_reads();
    for _ in 0..3 {
        let (sample, looked_up) = tick(&mut sampler);
        assert!(looked_up);
        assert_eq!(sampled_listen_counters(&sample), kernel_listen_counters());
    }
    assert_eq!(
        sampler.netstat_reads(),
        reads,
        "quiet ticks read /proc/net/netstat"
    );

    // A backlog of 1 holds two connections; the SYNs of the others overflow the accept queue.
    let mut clients = Vec::new();
    for _ in 0..6 {
        if let Ok(client) = TcpStream::connect_timeout(&address, Duration::from_millis(100)) {
            clients.push(client);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while kernel_listen_counters().0 == 0 {
        assert!(Instant::now() < deadline, "the accept queue never overflowed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the connections that did not make it go, so that the listeners stay the same from here.
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = kernel_listen_counters();
        let reads = sampler.netstat_reads();
        let (sample, looked_up) = tick(&mut sampler);
        let after = kernel_listen_counters();
        if looked_up && before == after {
            // Read this tick (its drops moved) or not (they did not): the kernel's values either way.
            assert_eq!(sampled_listen_counters(&sample), after);
            if sampler.netstat_reads() == reads {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "ticks never went quiet after the overflow"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(listener);
}

/// Runs `scenario` on a thread in a network namespace of its own; skips with a reason when the namespace
/// cannot be made (not root) unless HEADROOM_E2E=1.
fn in_private_network(scenario: fn()) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let required = std::env::var("HEADROOM_E2E").is_ok_and(|v| v == "1");
    let outcome = std::thread::spawn(move || {
        enter_private_network()?;
        scenario();
        Ok::<(), String>(())
    })
    .join()
    .expect("the scenario thread panicked");
    match outcome {
        Ok(()) => {}
        Err(reason) if !root && !required => {
            eprintln!("skipped: a network namespace of the test's own needs root ({reason})")
        }
        Err(reason) => panic!("cannot make a network namespace for the test: {reason}"),
    }
}

#[test]
fn issue_12_counts_between_full_dumps_agree_with_the_dump() {
    in_private_network(scenario);
}

#[test]
fn issue_12_the_pass_over_listening_ports_counts_like_the_full_pass() {
    in_private_network(listening_ports_scenario);
}

#[test]
fn issue_12_listeners_are_looked_up_between_listen_dumps() {
    in_private_network(listener_lookups_scenario);
}

#[test]
fn issue_12_netstat_is_read_when_a_listener_dropped() {
    in_private_network(listen_counters_scenario);
}
