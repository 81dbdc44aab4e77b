//! TCP per-state counts and listeners, each tick: from netlink sock_diag when it works, else from
//! /proc/net/tcp{,6}; with the expensive full pass over every socket throttled on hosts with many sockets.
//!
//! Every tick gives each listening port's accept queue. A LISTEN-only dump finds the listening sockets (the
//! kernel skips the established table, but walks every bucket of the listening one: about 0.1 ms with
//! 16,384 buckets). On the ticks after it, netlink asks for each of those sockets by itself, which the
//! kernel answers by hash lookup, as long as nothing hints at a new listener (`KnownListeners`): a dump
//! runs again when a socket is gone, when the count of hashed TCP sockets that are neither ESTABLISHED nor
//! CLOSE_WAIT (listeners among them, from /proc/net/sockstat and snmp) has moved, with every full pass, and
//! at least every `LISTEN_DUMP_EVERY`. The full pass, which counts every other socket by state and ESTABLISHED sockets per
//! listening port, costs the kernel a walk of every bucket of the established hash whatever the socket count
//! (about 1 ms with 262,144 buckets) plus about a microsecond per socket it reports, so it runs only as often
//! as a CPU budget allows: each pass's own CPU time is measured, and the next one waits `cost / budget` (a
//! 1 ms pass under the default 0.01 % budget runs every 10 s), never longer than `full_dump_interval`. Once
//! the last pass saw more than `full_dump_max_sockets` sockets, the next waits `full_dump_interval`, or
//! longer if that pass would use more than the ceiling `full_dump_cpu_ceiling` of a core (0.2 % by default):
//! whatever the socket count, full passes never cost more than that.
//!
//! Above `full_dump_max_sockets`, when a quarter or more of the sockets are the client side of outgoing
//! connections, the netlink pass is also cheaper: the kernel reports only the ESTABLISHED sockets whose local
//! port is a listening one (a filter program in the request), and the ESTABLISHED total comes from the
//! kernel's own counter (`CurrEstab` less CLOSE_WAIT) read in the same tick (see `FullPassPolicy::pass_kind`). Between full passes the last counts are reported with their age (the
//! sampler refreshes ESTABLISHED and TIME_WAIT from the kernel's own counters, see `tcp_table::refresh`).

use super::netlink::{
    self, DiagSocket, NetlinkError, SocketId, ALL_STATES, ESTABLISHED_ONLY, LISTEN_ONLY, MAX_LOOKUPS,
};
use super::procfile::{is_absent, ProcFile};
use super::procnet::{self, past_listening_section};
use super::tcp_table::{self, ConnectionTally, ListenerSet, TcpTable};
use super::SampleError;
use headroom_common::wire::{SocketSource, TcpState, MAX_LISTENERS};
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest that lookups stand in for a LISTEN dump: a listener opened while another socket in the
/// hinted states closed, so that the hint did not move, shows up within this long.
pub(crate) const LISTEN_DUMP_EVERY: Duration = Duration::from_secs(10);

/// The listening sockets the last LISTEN dump found, asked for one by one on the ticks after it.
#[derive(Debug, Default)]
struct KnownListeners {
    sockets: Vec<SocketId>,
    /// When the dump that found them ran; None when lookups cannot stand in for it (too many sockets, or
    /// two that a lookup cannot tell apart).
    at: Option<Instant>,
    /// The hint (see `TcpSampler::sample`) when that dump ran.
    hint: Option<u64>,
    /// The kernel refused a lookup: a LISTEN dump every tick from then on.
    refused: bool,
    /// Ticks whose listeners came from lookups, and from dumps (for tests and the curious).
    lookup_ticks: u64,
    dump_ticks: u64,
}

impl KnownListeners {
    fn stand_in(&self, now: Instant, hint: Option<u64>) -> bool {
        !self.refused
            && hint.is_some()
            && hint == self.hint
            && self
                .at
                .is_some_and(|at| now.saturating_duration_since(at) < LISTEN_DUMP_EVERY)
    }

    /// After a LISTEN dump that found `self.sockets`.
    fn dumped(&mut self, now: Instant, hint: Option<u64>) {
        self.dump_ticks += 1;
        self.hint = hint;
        let mut keys: Vec<_> = self.sockets.iter().map(SocketId::listener_key).collect();
        keys.sort_unstable();
        let distinct = keys.windows(2).all(|pair| pair[0] != pair[1]);
        self.at = (self.sockets.len() <= MAX_LOOKUPS && distinct).then_some(now);
    }
}

/// What one tick learned about TCP sockets.
#[derive(Debug)]
pub(crate) struct TcpOutcome {
    pub source: SocketSource,
    /// The listening pass failed: no listeners and no fresh LISTEN count this tick.
    pub listeners_error: Option<SampleError>,
    /// The full pass was due and failed: no per-state counts this tick.
    pub states_error: Option<SampleError>,
    /// Listeners with ESTABLISHED counts from the last full pass, and per-state counts.
    pub table: TcpTable,
    /// Age of the per-state and per-port ESTABLISHED counts.
    pub states_age_ms: u32,
}

/// When the next full pass is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FullPassPolicy {
    /// Above this many sockets in the last pass, wait `max_interval` whatever the pass cost.
    pub max_sockets: u64,
    /// The longest wait between two full passes.
    pub max_interval: Duration,
    /// Share of one core the full passes may use, in parts per million (300 = 0.03 %); 0 runs a full pass
    /// every tick while the socket count is at most `max_sockets`.
    pub cpu_budget_ppm: u32,
    /// Above `max_sockets`, the share of one core the full passes may use at most, in parts per million: a
    /// pass that costs more than `max_interval` times this waits longer. 0: no ceiling.
    pub cpu_ceiling_ppm: u32,
}

/// How a full pass counts ESTABLISHED sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassKind {
    /// Every socket is reported and counted.
    Every,
    /// Only ESTABLISHED sockets on listening ports are reported; the ESTABLISHED total is this `CurrEstab`.
    ListeningPorts { curr_estab: u64 },
}

/// What the last complete full pass was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastFullPass {
    pub at: Instant,
    /// Sockets it saw, listeners included.
    pub sockets: u64,
    /// CPU time the pass took this thread (the kernel's walk is done in our recvmsg calls, so it counts here).
    pub cost: Duration,
    /// ESTABLISHED sockets it counted on no listening port: mostly the client side of outgoing connections.
    pub established_off_listeners: u64,
}

impl FullPassPolicy {
    /// The wait after a pass that saw `sockets` sockets and cost `cost` of CPU.
    pub(crate) fn wait_after(&self, sockets: u64, cost: Duration) -> Duration {
        if sockets > self.max_sockets {
            return self.max_interval.max(cost_over_share(cost, self.cpu_ceiling_ppm));
        }
        cost_over_share(cost, self.cpu_budget_ppm).min(self.max_interval)
    }

    /// How the next full pass should count. Reporting only the ESTABLISHED sockets on listening ports takes
    /// two walks of the established hash instead of one (the other states need a walk of their own), and
    /// saves the message the kernel fills for each socket it skips. Measured at 100,000 sockets on this
    /// project's benchmark machine: a walk costs about 0.15 µs a socket, a message about 0.6 µs, so the
    /// filter pays once a quarter or more of the sockets are ESTABLISHED on no listening port (the client
    /// side of outgoing connections: proxies, crawlers, load generators), and costs a fifth more on a server
    /// whose connections are nearly all incoming. So it is used above `max_sockets`, when the last pass saw
    /// that quarter, and when this tick's `CurrEstab` is known to give the ESTABLISHED total; the first pass,
    /// and every pass on a smaller host, reports every socket.
    pub(crate) fn pass_kind(&self, last: Option<LastFullPass>, curr_estab: Option<u64>) -> PassKind {
        match (last, curr_estab) {
            (Some(last), Some(curr_estab))
                if last.sockets > self.max_sockets
                    && last.established_off_listeners.saturating_mul(4) >= last.sockets =>
            {
                PassKind::ListeningPorts { curr_estab }
            }
            _ => PassKind::Every,
        }
    }

    /// Whether a full pass is due at `now`.
    pub(crate) fn due(&self, last: Option<LastFullPass>, now: Instant) -> bool {
        match last {
            None => true,
            Some(last) => now.saturating_duration_since(last.at) >= self.wait_after(last.sockets, last.cost),
        }
    }
}

/// The wait after which `cost` of CPU is `share_ppm` of the time; no wait when the share is 0 (no limit).
fn cost_over_share(cost: Duration, share_ppm: u32) -> Duration {
    if share_ppm == 0 {
        return Duration::ZERO;
    }
    let wait_ns = cost.as_nanos() * 1_000_000 / u128::from(share_ppm);
    Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX))
}

/// CPU time this thread has used so far.
fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we hand it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

#[derive(Debug)]
pub(crate) struct TcpSampler {
    netlink_enabled: bool,
    policy: FullPassPolicy,
    diag: Option<DiagSocket>,
    /// While netlink is failing, /proc is used until this instant, then netlink is tried again.
    netlink_retry_at: Option<Instant>,
    tcp: ProcFile,
    tcp6: ProcFile,
    listeners: ListenerSet,
    /// The last complete full pass.
    connections: ConnectionTally,
    /// The full pass in progress; swapped with `connections` only when it completes.
    scratch: ConnectionTally,
    /// The last complete full pass.
    last_full: Option<LastFullPass>,
    /// This thread's CPU time when the pass in progress started.
    pass_started_cpu: Duration,
    /// The filter program of the last pass that reported only listening ports, reused.
    port_filter: Vec<u8>,
    /// The listening ports that program was made for.
    filtered_ports: Vec<u16>,
    known: KnownListeners,
    /// The drop count summed over this tick's listening sockets, when the kernel gave every one.
    listener_drops: Option<u64>,
    /// This tick looked up the same listening sockets as the last, and their drops did not move.
    listen_drops_quiet: bool,
}

impl TcpSampler {
    pub(crate) fn new(proc_root: &Path, netlink_enabled: bool, policy: FullPassPolicy) -> TcpSampler {
        TcpSampler {
            netlink_enabled,
            policy,
            diag: None,
            netlink_retry_at: None,
            tcp: ProcFile::new(proc_root.join(procnet::TCP)),
            tcp6: ProcFile::new(proc_root.join(procnet::TCP6)),
            listeners: ListenerSet::default(),
            connections: ConnectionTally::default(),
            scratch: ConnectionTally::default(),
            last_full: None,
            pass_started_cpu: Duration::ZERO,
            port_filter: Vec::new(),
            filtered_ports: Vec::new(),
            known: KnownListeners::default(),
            listener_drops: None,
            listen_drops_quiet: false,
        }
    }

    /// Whether the kernel's ListenDrops and ListenOverflows (/proc/net/netstat) cannot have moved since the
    /// last tick: every listen drop, overflows included, raises the listening socket's own drop count
    /// (`tcp_listendrop`), and this tick found the same listening sockets as the last with the same sum of
    /// those counts. False whenever it cannot tell (a dump, /proc/net/tcp, a kernel without the figure).
    pub(crate) fn listen_drops_quiet(&self) -> bool {
        self.listen_drops_quiet
    }

    /// Ticks whose listeners came from per-socket lookups, and from LISTEN dumps, since start.
    pub(crate) fn listener_ticks(&self) -> (u64, u64) {
        (self.known.lookup_ticks, self.known.dump_ticks)
    }

    /// One tick. `curr_estab` is /proc/net/snmp's `CurrEstab` read this tick, if it could be: with it, a full
    /// pass on a host with many sockets need not report every ESTABLISHED socket. `listener_hint` is the
    /// count of hashed TCP sockets (sockstat's TCP and TCP6 `inuse`) less `CurrEstab`: listeners and sockets
    /// opening or closing. While it holds still, the listeners the last dump found are looked up one by one.
    pub(crate) fn sample(
        &mut self,
        now: Instant,
        curr_estab: Option<u64>,
        listener_hint: Option<u64>,
    ) -> TcpOutcome {
        self.listen_drops_quiet = false;
        let full_due = self.policy.due(self.last_full, now);
        let use_netlink = self.netlink_enabled && self.netlink_retry_at.is_none_or(|at| now >= at);
        let mut source = SocketSource::ProcNet;
        let mut errors = None;
        if use_netlink {
            match self.sample_netlink(full_due, now, curr_estab, listener_hint) {
                Ok(()) => {
                    if self.netlink_retry_at.take().is_some() {
                        tracing::info!("netlink sock_diag works again; tcp sockets come from it");
                    }
                    source = SocketSource::Netlink;
                    errors = Some((None, None));
                }
                Err(error) => {
                    // A socket that failed mid-dump may hold stale replies; start afresh next time.
                    self.diag = None;
                    if self.netlink_retry_at.is_none() {
                        tracing::warn!(
                            %error,
                            retry_s = self.policy.max_interval.as_secs(),
                            "netlink sock_diag failed; reading /proc/net/tcp and tcp6 instead until retry"
                        );
                    }
                    self.netlink_retry_at = Some(now + self.policy.max_interval);
                }
            }
        }
        let (listeners_error, states_error) = match errors {
            Some(errors) => errors,
            None => self.sample_procnet(full_due, now),
        };
        let mut table = tcp_table::combine(&self.listeners, &self.connections);
        if listeners_error.is_some() {
            table.listeners.clear();
        }
        let states_age_ms = self.last_full.map_or(0, |last| {
            u32::try_from(now.saturating_duration_since(last.at).as_millis()).unwrap_or(u32::MAX)
        });
        TcpOutcome {
            source,
            states_error,
            listeners_error,
            table,
            states_age_ms,
        }
    }

    fn sample_netlink(
        &mut self,
        full_due: bool,
        now: Instant,
        curr_estab: Option<u64>,
        listener_hint: Option<u64>,
    ) -> Result<(), NetlinkError> {
        let diag = match &mut self.diag {
            Some(diag) => diag,
            None => self.diag.insert(DiagSocket::open()?),
        };
        self.listeners.clear();
        let listeners = &mut self.listeners;
        let known = &mut self.known;
        let mut looked_up = false;
        let drops = std::cell::Cell::new(Some(0u64));
        let count_drops = |socket: &netlink::DiagSocketInfo| {
            let sum = drops
                .get()
                .zip(socket.drops)
                .map(|(sum, more)| sum + u64::from(more));
            drops.set(sum);
        };
        if !full_due && known.stand_in(now, listener_hint) {
            let mut listening = true;
            match diag.lookup(&known.sockets, &mut |socket| {
                listening &= socket.state == TcpState::Listen as u8;
                listeners.add(socket.local_port, socket.receive_queue, socket.send_queue);
                count_drops(socket);
            }) {
                Ok(0) if listening => looked_up = true,
                // A socket closed (or was replaced): this tick's dump finds what listens now.
                Ok(_) => listeners.clear(),
                Err(NetlinkError::Refused(error)) => {
                    tracing::info!(%error, "the kernel refused a sock_diag lookup; listeners come from dumps");
                    known.refused = true;
                    listeners.clear();
                }
                Err(error) => return Err(error),
            }
        }
        if looked_up {
            known.lookup_ticks += 1;
        } else {
            drops.set(Some(0));
            // Until this dump completes, lookups have nothing whole to stand in for.
            known.at = None;
            known.sockets.clear();
            let sockets = &mut known.sockets;
            diag.dump_listeners(&mut |socket| {
                if socket.state == TcpState::Listen as u8 {
                    listeners.add(socket.local_port, socket.receive_queue, socket.send_queue);
                    sockets.push(socket.id);
                    count_drops(socket);
                }
            })?;
            known.dumped(now, listener_hint);
        }
        // Same sockets as the last tick (looked up, not dumped) and the same drops: no listen drop since.
        let drops = drops.get();
        self.listen_drops_quiet = looked_up && drops.is_some() && drops == self.listener_drops;
        self.listener_drops = drops;
        if full_due {
            // LISTEN is left out: this tick's listening pass already counted those sockets, and leaving it
            // out spares the kernel a second walk of the listening table. NEW_SYN_RECV (bit 12) is in.
            self.pass_started_cpu = thread_cpu_time();
            self.scratch.start(&self.listeners);
            let scratch = &mut self.scratch;
            let mut count = |socket: &netlink::DiagSocketInfo| {
                if let Some(state) = TcpState::from_kernel(socket.state) {
                    scratch.add(state, socket.local_port);
                }
            };
            match self.policy.pass_kind(self.last_full, curr_estab) {
                PassKind::Every => {
                    diag.dump(ALL_STATES & !LISTEN_ONLY, &mut count)?;
                }
                PassKind::ListeningPorts { curr_estab } => {
                    // Two walks of the established hash, but the kernel fills a message only for the
                    // sockets a listener's counts need: the client side of outgoing connections, often
                    // half of all sockets or more, is skipped inside the kernel.
                    diag.dump(ALL_STATES & !LISTEN_ONLY & !ESTABLISHED_ONLY, &mut count)?;
                    let ports = self
                        .listeners
                        .listeners()
                        .iter()
                        .take(MAX_LISTENERS)
                        .map(|l| l.port);
                    if !self.filtered_ports.iter().copied().eq(ports.clone()) {
                        self.filtered_ports.clear();
                        self.filtered_ports.extend(ports);
                        netlink::local_port_filter(&self.filtered_ports, &mut self.port_filter);
                    }
                    if !self.filtered_ports.is_empty() {
                        diag.dump_filtered(ESTABLISHED_ONLY, &self.port_filter, &mut count)?;
                    }
                    scratch.established_total(curr_estab);
                }
            }
            self.finish_full_pass(now);
        }
        Ok(())
    }

    fn finish_full_pass(&mut self, now: Instant) {
        std::mem::swap(&mut self.scratch, &mut self.connections);
        let sockets = self.connections.sockets + u64::from(self.listeners.sockets);
        let cost = thread_cpu_time().saturating_sub(self.pass_started_cpu);
        self.last_full = Some(LastFullPass {
            at: now,
            sockets,
            cost,
            established_off_listeners: self.connections.established_off_listeners(),
        });
    }

    /// Whether this tick's per-state counts come from a full pass made this tick.
    pub(crate) fn full_pass_at(&self, now: Instant) -> bool {
        self.last_full.is_some_and(|last| last.at == now)
    }

    /// Returns the errors of the listening pass and of the full pass.
    fn sample_procnet(&mut self, full_due: bool, now: Instant) -> (Option<SampleError>, Option<SampleError>) {
        self.listener_drops = None;
        self.listeners.clear();
        if full_due {
            self.pass_started_cpu = thread_cpu_time();
            let tcp = match self.tcp.read() {
                Ok(text) => text,
                Err(source) => {
                    let error = || SampleError::io(self.tcp.path(), &source);
                    return (Some(error()), Some(error()));
                }
            };
            let tcp6 = match self.tcp6.read() {
                Ok(text) => Some(text),
                Err(source) if is_absent(&source) => None,
                Err(source) => {
                    let error = || SampleError::io(self.tcp6.path(), &source);
                    return (Some(error()), Some(error()));
                }
            };
            let mut listen = || -> Result<(), super::ParseError> {
                procnet::parse_listeners(tcp, procnet::TCP, &mut self.listeners)?;
                if let Some(tcp6) = tcp6 {
                    procnet::parse_listeners(tcp6, procnet::TCP6, &mut self.listeners)?;
                }
                Ok(())
            };
            if let Err(source) = listen() {
                let root = root_of(self.tcp.path());
                return (
                    Some(SampleError::parse(root, source.clone())),
                    Some(SampleError::parse(root, source)),
                );
            }
            self.scratch.start(&self.listeners);
            let mut connect = || -> Result<(), super::ParseError> {
                procnet::parse_connections(tcp, procnet::TCP, &mut self.scratch)?;
                if let Some(tcp6) = tcp6 {
                    procnet::parse_connections(tcp6, procnet::TCP6, &mut self.scratch)?;
                }
                Ok(())
            };
            if let Err(source) = connect() {
                return (None, Some(SampleError::parse(root_of(self.tcp.path()), source)));
            }
            self.finish_full_pass(now);
            (None, None)
        } else {
            // Only the listeners are needed, and the kernel prints them first: stop reading after them.
            let files = [(&mut self.tcp, procnet::TCP), (&mut self.tcp6, procnet::TCP6)];
            for (file, name) in files {
                let text = match file.read_until(past_listening_section) {
                    Ok(text) => text,
                    Err(source) if name == procnet::TCP6 && is_absent(&source) => continue,
                    Err(source) => return (Some(SampleError::io(file.path(), &source)), None),
                };
                if let Err(source) = procnet::parse_listeners(text, name, &mut self.listeners) {
                    return (Some(SampleError::parse(root_of(file.path()), source)), None);
                }
            }
            (None, None)
        }
    }
}

/// The proc root a /proc/net/tcp path hangs under, for error messages.
fn root_of(tcp_path: &Path) -> &Path {
    tcp_path.parent().and_then(Path::parent).unwrap_or(tcp_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(port: u16, cookie: u8) -> SocketId {
        let mut id = [0u8; 48];
        id[0..2].copy_from_slice(&port.to_be_bytes());
        id[40] = cookie;
        SocketId::new(libc::AF_INET as u8, id)
    }

    #[test]
    fn issue_12_lookups_stand_in_only_for_a_whole_recent_dump_under_the_same_hint() {
        let start = Instant::now();
        let mut known = KnownListeners::default();
        assert!(!known.stand_in(start, Some(1)), "no dump yet");
        known.sockets = vec![listener(22, 1), listener(80, 2)];
        known.dumped(start, Some(1));
        assert!(known.stand_in(start + Duration::from_secs(9), Some(1)));
        assert!(
            !known.stand_in(start + Duration::from_secs(1), Some(2)),
            "the hint moved"
        );
        assert!(!known.stand_in(start + Duration::from_secs(1), None), "no hint");
        assert!(!known.stand_in(start + LISTEN_DUMP_EVERY, Some(1)), "too old");
        // Two members of one SO_REUSEPORT group (same port and address, other cookies).
        known.sockets = vec![listener(80, 1), listener(80, 2)];
        known.dumped(start, Some(1));
        assert!(!known.stand_in(start, Some(1)));
        known.sockets = (0..=MAX_LOOKUPS as u16).map(|port| listener(port, 0)).collect();
        known.dumped(start, Some(1));
        assert!(
            !known.stand_in(start, Some(1)),
            "more sockets than one lookup takes"
        );
        known.sockets = vec![listener(22, 1)];
        known.dumped(start, Some(1));
        known.refused = true;
        assert!(!known.stand_in(start, Some(1)), "the kernel refused lookups");
    }

    fn policy(cpu_budget_ppm: u32) -> FullPassPolicy {
        FullPassPolicy {
            max_sockets: 20_000,
            max_interval: Duration::from_secs(30),
            cpu_budget_ppm,
            cpu_ceiling_ppm: 2_000,
        }
    }

    #[test]
    fn a_pass_waits_its_cost_over_the_budget() {
        // Issue 12: a 1 ms pass under a 0.03 % budget runs once every 3.33 s.
        let wait = policy(300).wait_after(40, Duration::from_millis(1));
        assert_eq!(wait, Duration::from_nanos(3_333_333_333));
        let wait = policy(10_000).wait_after(40, Duration::from_micros(100));
        assert_eq!(wait, Duration::from_millis(10));
    }

    #[test]
    fn the_wait_is_capped_and_many_sockets_wait_the_cap() {
        assert_eq!(
            policy(300).wait_after(40, Duration::from_secs(1)),
            Duration::from_secs(30)
        );
        assert_eq!(
            policy(300).wait_after(20_001, Duration::ZERO),
            Duration::from_secs(30)
        );
        assert_eq!(
            policy(0).wait_after(20_000, Duration::from_millis(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn issue_12_many_sockets_wait_the_interval_or_longer_under_the_ceiling() {
        // 100,000 sockets at ~60 ms a pass: under the 0.2 % ceiling every 30 s.
        let wait = policy(100).wait_after(100_000, Duration::from_millis(60));
        assert_eq!(wait, Duration::from_secs(30));
        // A million sockets at ~1 s a pass would be 3.3 % of a core every 30 s: it waits 500 s instead.
        let wait = policy(100).wait_after(1_000_000, Duration::from_secs(1));
        assert_eq!(wait, Duration::from_secs(500));
        // No ceiling: the interval whatever the cost, as before.
        let no_ceiling = FullPassPolicy {
            cpu_ceiling_ppm: 0,
            ..policy(100)
        };
        assert_eq!(
            no_ceiling.wait_after(1_000_000, Duration::from_secs(1)),
            Duration::from_secs(30)
        );
        // The ceiling never makes a pass on a small host wait longer than the interval.
        assert_eq!(
            policy(100).wait_after(40, Duration::from_secs(1)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn issue_12_only_a_busy_host_with_curr_estab_skips_client_sockets() {
        let start = Instant::now();
        // Half of the sockets are the client side of connections to the host itself, as in bench/footprint.sh.
        let pass = |sockets| LastFullPass {
            at: start,
            sockets,
            cost: Duration::from_millis(1),
            established_off_listeners: sockets / 2,
        };
        let policy = policy(100);
        assert_eq!(policy.pass_kind(None, Some(7)), PassKind::Every);
        assert_eq!(policy.pass_kind(Some(pass(20_000)), Some(7)), PassKind::Every);
        assert_eq!(
            policy.pass_kind(Some(pass(20_001)), Some(7)),
            PassKind::ListeningPorts { curr_estab: 7 }
        );
        // Without CurrEstab this tick the total would be unknown: count every socket.
        assert_eq!(policy.pass_kind(Some(pass(20_001)), None), PassKind::Every);
        // A server whose connections are nearly all incoming: the second walk would cost more than it saves.
        let server = LastFullPass {
            established_off_listeners: 20_000,
            ..pass(100_000)
        };
        assert_eq!(policy.pass_kind(Some(server), Some(7)), PassKind::Every);
        let quarter = LastFullPass {
            established_off_listeners: 25_000,
            ..pass(100_000)
        };
        assert_eq!(
            policy.pass_kind(Some(quarter), Some(7)),
            PassKind::ListeningPorts { curr_estab: 7 }
        );
    }

    #[test]
    fn due_follows_the_last_pass() {
        let start = Instant::now();
        let last = LastFullPass {
            at: start,
            sockets: 10,
            cost: Duration::from_millis(1),
            established_off_listeners: 0,
        };
        let policy = policy(300);
        assert!(policy.due(None, start));
        assert!(!policy.due(Some(last), start + Duration::from_secs(3)));
        assert!(policy.due(Some(last), start + Duration::from_millis(3334)));
    }

    #[test]
    fn thread_cpu_time_moves_forward() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > before);
    }
}
