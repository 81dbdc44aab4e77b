//! TCP per-state counts and listeners, each tick: from netlink sock_diag when it works, else from
//! /proc/net/tcp{,6}; with the expensive full pass over every socket throttled on hosts with many sockets.
//!
//! Every tick a LISTEN-only pass gives each listening port's accept queue (cheap: the kernel skips the
//! established table). The full pass, which counts every other socket by state and ESTABLISHED sockets per
//! listening port, runs every tick while the last one saw at most `full_dump_max_sockets` sockets, and
//! otherwise once per `full_dump_interval`; between full passes the last counts are reported with their age.

use super::netlink::{DiagSocket, NetlinkError, ALL_STATES, LISTEN_ONLY};
use super::procfile::{is_absent, ProcFile};
use super::procnet::{self, past_listening_section};
use super::tcp_table::{self, ConnectionTally, ListenerSet, TcpTable};
use super::SampleError;
use headroom_common::wire::{SocketSource, TcpState};
use std::path::Path;
use std::time::{Duration, Instant};

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

#[derive(Debug)]
pub(crate) struct TcpSampler {
    netlink_enabled: bool,
    full_dump_max_sockets: u64,
    full_dump_interval: Duration,
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
    /// When the last full pass completed and how many sockets (listeners included) it saw.
    last_full: Option<(Instant, u64)>,
}

impl TcpSampler {
    pub(crate) fn new(
        proc_root: &Path,
        netlink_enabled: bool,
        full_dump_max_sockets: u32,
        full_dump_interval: Duration,
    ) -> TcpSampler {
        TcpSampler {
            netlink_enabled,
            full_dump_max_sockets: u64::from(full_dump_max_sockets),
            full_dump_interval,
            diag: None,
            netlink_retry_at: None,
            tcp: ProcFile::new(proc_root.join(procnet::TCP)),
            tcp6: ProcFile::new(proc_root.join(procnet::TCP6)),
            listeners: ListenerSet::default(),
            connections: ConnectionTally::default(),
            scratch: ConnectionTally::default(),
            last_full: None,
        }
    }

    fn full_pass_due(&self, now: Instant) -> bool {
        match self.last_full {
            None => true,
            Some((at, sockets)) => {
                sockets <= self.full_dump_max_sockets
                    || now.saturating_duration_since(at) >= self.full_dump_interval
            }
        }
    }

    pub(crate) fn sample(&mut self, now: Instant) -> TcpOutcome {
        let full_due = self.full_pass_due(now);
        let use_netlink = self.netlink_enabled && self.netlink_retry_at.is_none_or(|at| now >= at);
        let mut source = SocketSource::ProcNet;
        let mut errors = None;
        if use_netlink {
            match self.sample_netlink(full_due, now) {
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
                            retry_s = self.full_dump_interval.as_secs(),
                            "netlink sock_diag failed; reading /proc/net/tcp and tcp6 instead until retry"
                        );
                    }
                    self.netlink_retry_at = Some(now + self.full_dump_interval);
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
        let states_age_ms = self.last_full.map_or(0, |(at, _)| {
            u32::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u32::MAX)
        });
        TcpOutcome {
            source,
            states_error,
            listeners_error,
            table,
            states_age_ms,
        }
    }

    fn sample_netlink(&mut self, full_due: bool, now: Instant) -> Result<(), NetlinkError> {
        let diag = match &mut self.diag {
            Some(diag) => diag,
            None => self.diag.insert(DiagSocket::open()?),
        };
        self.listeners.clear();
        let listeners = &mut self.listeners;
        diag.dump(LISTEN_ONLY, &mut |socket| {
            if socket.state == TcpState::Listen as u8 {
                listeners.add(socket.local_port, socket.receive_queue, socket.send_queue);
            }
        })?;
        if full_due {
            // LISTEN is left out: this tick's listening pass already counted those sockets, and leaving it
            // out spares the kernel a second walk of the listening table. NEW_SYN_RECV (bit 12) is in.
            self.scratch.start(&self.listeners);
            let scratch = &mut self.scratch;
            diag.dump(ALL_STATES & !LISTEN_ONLY, &mut |socket| {
                if let Some(state) = TcpState::from_kernel(socket.state) {
                    scratch.add(state, socket.local_port);
                }
            })?;
            self.finish_full_pass(now);
        }
        Ok(())
    }

    fn finish_full_pass(&mut self, now: Instant) {
        std::mem::swap(&mut self.scratch, &mut self.connections);
        let sockets = self.connections.sockets + u64::from(self.listeners.sockets);
        self.last_full = Some((now, sockets));
    }

    /// Returns the errors of the listening pass and of the full pass.
    fn sample_procnet(&mut self, full_due: bool, now: Instant) -> (Option<SampleError>, Option<SampleError>) {
        self.listeners.clear();
        if full_due {
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
