//! The host sampler: reads CPU, memory, pressure, network and socket figures from /proc once per tick into
//! a `wire::Sample`.
//!
//! Each family has a pure `parse` over the file's text (tested on fixtures captured from real kernels) and
//! is read through a `ProcFile` kept open under an injected proc root. A family that fails is listed in
//! `Sample::failed` and counted; the rest of the sample goes out.

pub mod cpu;
mod host;
pub mod memory;
pub mod misc;
pub mod netlink;
pub mod network;
pub mod pressure;
mod procfile;
pub mod procnet;
pub mod snmp;
mod sockets;
pub mod sockstat;
pub mod tcp_table;

pub use host::host_facts;
pub use network::InterfaceFilter;

use headroom_common::wire::{Family, Pressure, PressureLine, Sample, SocketSample};
use procfile::ProcFile;
use sockets::{FullPassPolicy, TcpSampler};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The default share of a core for full socket passes: 0.01 % (a 1 ms pass every 10 s). Issue 12 gives the
/// idle agent 0.10 % of a core in all; per-port ESTABLISHED counts and the rarer states are what waits.
pub const DEFAULT_FULL_DUMP_CPU_PPM: u32 = 100;

/// The default ceiling on full socket passes above `full_dump_max_sockets`: 0.2 % of a core. At 100,000
/// sockets a pass takes tens of milliseconds, so it still runs every `full_dump_interval`; with a million
/// it waits longer rather than take a percent of a core. Issue 12 gives the agent 0.40 % at 100,000 sockets.
pub const DEFAULT_FULL_DUMP_CPU_CEILING_PPM: u32 = 2_000;

/// What to sample and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Where procfs is mounted: "/proc" in production, a fixture directory in tests. /proc/sys is read
    /// under it too.
    pub proc_root: PathBuf,
    pub interfaces: InterfaceFilter,
    /// Read TCP sockets through netlink sock_diag; false reads /proc/net/tcp and tcp6 every time.
    pub netlink: bool,
    /// Above this many TCP sockets, the full per-state pass runs only every `full_dump_interval`.
    pub full_dump_max_sockets: u32,
    /// The longest wait between two full per-state passes.
    pub full_dump_interval: Duration,
    /// Share of one core the full passes may use, in parts per million (300 = 0.03 %); 0: every tick.
    pub full_dump_cpu_ppm: u32,
    /// Above `full_dump_max_sockets`, the most of one core the full passes may use, in parts per million;
    /// 0: no ceiling (a pass every `full_dump_interval` whatever it costs).
    pub full_dump_cpu_ceiling_ppm: u32,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            proc_root: PathBuf::from("/proc"),
            interfaces: InterfaceFilter::default(),
            netlink: true,
            full_dump_max_sockets: 20_000,
            full_dump_interval: Duration::from_secs(30),
            full_dump_cpu_ppm: DEFAULT_FULL_DUMP_CPU_PPM,
            full_dump_cpu_ceiling_ppm: DEFAULT_FULL_DUMP_CPU_CEILING_PPM,
        }
    }
}

/// A line of a /proc file that does not parse. `file` is relative to the proc root, e.g. "net/tcp";
/// `line` counts from 1, and is 0 when the fault is in the file as a whole (a missing line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: &'static str,
    pub line: usize,
    pub detail: String,
}

impl ParseError {
    pub(crate) fn at(file: &'static str, line: usize, detail: impl Into<String>) -> ParseError {
        ParseError {
            file,
            line,
            detail: detail.into(),
        }
    }

    pub(crate) fn whole(file: &'static str, detail: impl Into<String>) -> ParseError {
        ParseError::at(file, 0, detail)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.detail)
        } else {
            write!(f, "{}: line {}: {}", self.file, self.line, self.detail)
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a family could not be read this tick.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("{}: {detail}", path.display())]
    Io { path: PathBuf, detail: String },
    #[error("{}/{source}", root.display())]
    Parse { root: PathBuf, source: ParseError },
}

impl SampleError {
    pub(crate) fn io(path: &Path, error: &std::io::Error) -> SampleError {
        let hint = match error.kind() {
            std::io::ErrorKind::NotFound => " (is procfs mounted there? proc_root sets where it is read)",
            _ => "",
        };
        SampleError::Io {
            path: path.to_path_buf(),
            detail: format!("{error}{hint}"),
        }
    }

    pub(crate) fn parse(root: &Path, source: ParseError) -> SampleError {
        SampleError::Parse {
            root: root.to_path_buf(),
            source,
        }
    }
}

/// Which families are failing, so each start and end of a failure is logged once, and how often each
/// failed.
#[derive(Debug, Default)]
struct Health {
    failing: BTreeSet<Family>,
    counts: BTreeMap<Family, u64>,
}

impl Health {
    fn check<T>(
        &mut self,
        family: Family,
        result: Result<T, SampleError>,
        failed: &mut Vec<Family>,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                if self.failing.remove(&family) {
                    tracing::info!(family = family.name(), "family reads again");
                }
                Some(value)
            }
            Err(error) => {
                *self.counts.entry(family).or_default() += 1;
                if !failed.contains(&family) {
                    failed.push(family);
                }
                if self.failing.insert(family) {
                    tracing::warn!(
                        family = family.name(),
                        %error,
                        "cannot read family; it is left out of samples until it reads again"
                    );
                }
                None
            }
        }
    }
}

/// Reads and parses one file.
fn read_parse<T>(
    file: &mut ProcFile,
    root: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, SampleError> {
    parse(file.text()?).map_err(|source| SampleError::parse(root, source))
}

/// How often the load average is read: the kernel recomputes it every 5 s (`LOAD_FREQ`), so a read in
/// between returns the same figures.
const LOAD_AVERAGE_EVERY: Duration = Duration::from_secs(5);

/// How often the ephemeral port range is read: a sysctl an administrator changes, not a figure that moves.
const PORT_RANGE_EVERY: Duration = Duration::from_secs(60);

/// The longest that ListenOverflows and ListenDrops go without a read of /proc/net/netstat while the
/// listeners' own drop counts stand still: a bound for drops on a listener that opened and closed between
/// two ticks, which no lookup sees.
const NETSTAT_EVERY: Duration = Duration::from_secs(10);

/// ListenOverflows and ListenDrops. /proc/net/netstat is the costliest file of a tick (the kernel formats over
/// a hundred TcpExt fields and the MPTcpExt ones on every read, for these two), so it is read only when they
/// may have moved since the last read: not on a tick whose listening sockets are the last tick's with the
/// same drop counts (`TcpSampler::listen_drops_quiet`), for up to `NETSTAT_EVERY`.
#[derive(Debug, Default)]
struct ListenCounters {
    /// The last read, and when.
    last: Option<(Instant, [u64; 2])>,
    reads: u64,
}

impl ListenCounters {
    fn read(
        &mut self,
        netstat: &mut ProcFile,
        root: &Path,
        quiet: bool,
        now: Instant,
    ) -> Result<[u64; 2], SampleError> {
        if let Some((at, values)) = self.last {
            if quiet && now.saturating_duration_since(at) < NETSTAT_EVERY {
                return Ok(values);
            }
        }
        let text = netstat.text()?;
        let values = snmp::parse_listen_counters(text).map_err(|source| SampleError::parse(root, source))?;
        self.last = Some((now, values));
        self.reads += 1;
        Ok(values)
    }
}

/// A figure re-read only once `every` has passed since its last good read; in between, that read's value is
/// used again. A failed read is not kept, so the next tick tries again.
#[derive(Debug)]
struct Seldom<T> {
    every: Duration,
    last: Option<(Instant, T)>,
}

impl<T: Clone> Seldom<T> {
    fn new(every: Duration) -> Seldom<T> {
        Seldom { every, last: None }
    }

    fn get(&mut self, now: Instant, read: impl FnOnce() -> Result<T, SampleError>) -> Result<T, SampleError> {
        if let Some((at, value)) = &self.last {
            if now.saturating_duration_since(*at) < self.every {
                return Ok(value.clone());
            }
        }
        let value = read();
        self.last = value.as_ref().ok().map(|value| (now, value.clone()));
        value
    }
}

/// Samples this host. Holds its /proc files open between ticks.
#[derive(Debug)]
pub struct Sampler {
    root: PathBuf,
    interfaces: InterfaceFilter,
    stat: ProcFile,
    loadavg: ProcFile,
    meminfo: ProcFile,
    pressure: [ProcFile; 3],
    net_dev: ProcFile,
    sockstat: ProcFile,
    sockstat6: ProcFile,
    snmp: ProcFile,
    netstat: ProcFile,
    conntrack_count: ProcFile,
    conntrack_max: ProcFile,
    port_range: ProcFile,
    seldom_load: Seldom<headroom_common::wire::LoadAverage>,
    seldom_ports: Seldom<headroom_common::wire::PortRange>,
    listen: ListenCounters,
    tcp: TcpSampler,
    health: Health,
}

const PRESSURE_FILES: [&str; 3] = ["pressure/cpu", "pressure/memory", "pressure/io"];

impl Sampler {
    pub fn new(config: SamplerConfig) -> Sampler {
        let root = config.proc_root;
        let file = |relative: &str| ProcFile::whole_per_read(root.join(relative));
        Sampler {
            stat: file("stat"),
            loadavg: file("loadavg"),
            meminfo: file("meminfo"),
            pressure: PRESSURE_FILES.map(file),
            // One record per interface, handed out a page or so per read.
            net_dev: ProcFile::new(root.join("net/dev")),
            sockstat: file("net/sockstat"),
            sockstat6: file("net/sockstat6"),
            snmp: file("net/snmp"),
            netstat: file("net/netstat"),
            conntrack_count: file("sys/net/netfilter/nf_conntrack_count"),
            conntrack_max: file("sys/net/netfilter/nf_conntrack_max"),
            port_range: file("sys/net/ipv4/ip_local_port_range"),
            seldom_load: Seldom::new(LOAD_AVERAGE_EVERY),
            seldom_ports: Seldom::new(PORT_RANGE_EVERY),
            listen: ListenCounters::default(),
            tcp: TcpSampler::new(
                &root,
                config.netlink,
                FullPassPolicy {
                    max_sockets: u64::from(config.full_dump_max_sockets),
                    max_interval: config.full_dump_interval,
                    cpu_budget_ppm: config.full_dump_cpu_ppm,
                    cpu_ceiling_ppm: config.full_dump_cpu_ceiling_ppm,
                },
            ),
            interfaces: config.interfaces,
            health: Health::default(),
            root,
        }
    }

    /// One sample. Never fails: a family that fails is logged (once when it starts failing, once when it
    /// recovers), counted, listed in `sample.failed`, and the rest of the sample goes out.
    pub fn sample(&mut self, seq: u64, timestamp_ms: u64, now: Instant) -> Sample {
        let mut failed = Vec::new();
        let root = self.root.as_path();
        let health = &mut self.health;

        let stat = read_parse(&mut self.stat, root, cpu::parse_stat);
        let mut cpu = health.check(Family::Cpu, stat, &mut failed);
        let loadavg = &mut self.loadavg;
        let load = self
            .seldom_load
            .get(now, || read_parse(loadavg, root, cpu::parse_loadavg));
        let load = health.check(Family::LoadAverage, load, &mut failed);
        if let Some(cpu) = cpu.as_mut() {
            cpu.load = load;
        }

        let memory = read_parse(&mut self.meminfo, root, memory::parse_meminfo);
        let memory = health.check(Family::Memory, memory, &mut failed);

        let pressure = Self::read_pressure(&mut self.pressure, root);
        let pressure = health.check(Family::Pressure, pressure, &mut failed).flatten();

        let interfaces = &self.interfaces;
        let network = read_parse(&mut self.net_dev, root, |text| {
            network::parse_net_dev(text, interfaces)
        });
        let network = health
            .check(Family::Network, network, &mut failed)
            .unwrap_or_default();

        let sockets = self.sample_sockets(now, &mut failed);

        Sample {
            seq,
            timestamp_ms,
            cpu,
            memory,
            pressure,
            network,
            sockets,
            failed,
        }
    }

    /// Ticks since start whose listeners came from looking up the known listening sockets one by one, and
    /// from a LISTEN dump (see `sockets`).
    pub fn listener_ticks(&self) -> (u64, u64) {
        self.tcp.listener_ticks()
    }

    /// How many ticks each family has failed since start; families that never failed are absent.
    pub fn failure_counts(&self) -> &BTreeMap<Family, u64> {
        &self.health.counts
    }

    fn read_pressure(files: &mut [ProcFile; 3], root: &Path) -> Result<Option<Pressure>, SampleError> {
        let mut lines: [Option<PressureLine>; 3] = [None; 3];
        for ((file, name), line) in files.iter_mut().zip(PRESSURE_FILES).zip(lines.iter_mut()) {
            if let Some(text) = file.optional_text()? {
                *line = Some(pressure::parse_pressure(text, name).map_err(|e| SampleError::parse(root, e))?);
            }
        }
        // A kernel before 4.20, or one booted with psi=0, has none of the files.
        if lines.iter().all(Option::is_none) {
            return Ok(None);
        }
        let [cpu, memory, io] = lines;
        Ok(Some(Pressure { cpu, memory, io }))
    }

    fn sample_sockets(&mut self, now: Instant, failed: &mut Vec<Family>) -> Option<SocketSample> {
        let root = self.root.as_path();
        let health = &mut self.health;
        // The TCP counters first: with CurrEstab, a full pass on a host with many sockets can skip the
        // client side of outgoing connections (see `sockets`).
        let tcp = (|| {
            let snmp = self.snmp.text()?;
            snmp::parse_snmp_counters(snmp, [0, 0]).map_err(|source| SampleError::parse(root, source))
        })();
        let curr_estab = tcp.as_ref().ok().map(|counters| counters.curr_estab);
        let sockstat = (|| {
            let sockstat6 = self.sockstat6.optional_text()?;
            let sockstat = self.sockstat.text()?;
            sockstat::parse_sockstat(sockstat, sockstat6).map_err(|source| SampleError::parse(root, source))
        })();
        let listener_hint = match (&sockstat, curr_estab) {
            (Ok(sockstat), Some(curr_estab)) => {
                Some((sockstat.tcp_inuse + sockstat.tcp6_inuse).wrapping_sub(curr_estab))
            }
            _ => None,
        };
        let outcome = self.tcp.sample(now, curr_estab, listener_hint);
        let listen = self
            .listen
            .read(&mut self.netstat, root, self.tcp.listen_drops_quiet(), now);
        let tcp = tcp.and_then(|mut counters| {
            [counters.listen_overflows, counters.listen_drops] = listen?;
            Ok(counters)
        });
        let listeners_read = outcome.listeners_error.is_none();
        let mut tcp_states = None;
        let mut listeners = Vec::new();
        match outcome.listeners_error {
            Some(error) => {
                health.check::<()>(Family::Listeners, Err(error.clone()), failed);
                health.check::<()>(
                    Family::TcpStates,
                    Err(outcome.states_error.unwrap_or(error)),
                    failed,
                );
            }
            None => {
                health.check(Family::Listeners, Ok(()), failed);
                listeners = outcome.table.listeners;
                let states = match outcome.states_error {
                    Some(error) => Err(error),
                    None => Ok(outcome.table.states),
                };
                tcp_states = health.check(Family::TcpStates, states, failed);
            }
        }

        let sockstat = health.check(Family::Sockstat, sockstat, failed);

        let tcp = health.check(Family::Snmp, tcp, failed);

        // Between full passes, the states that move most come from the counters just read.
        if let (Some(states), false) = (tcp_states.as_mut(), self.tcp.full_pass_at(now)) {
            if let (Some(counters), Some(sockstat)) = (tcp.as_ref(), sockstat.as_ref()) {
                *states = tcp_table::refresh(*states, counters.curr_estab, sockstat.tcp_time_wait);
            }
        }

        let conntrack = Self::read_conntrack(&mut self.conntrack_count, &mut self.conntrack_max, root);
        let conntrack = health.check(Family::Conntrack, conntrack, failed).flatten();

        let port_range = &mut self.port_range;
        let ports = self
            .seldom_ports
            .get(now, || read_parse(port_range, root, misc::parse_port_range));
        let ephemeral_ports = health.check(Family::PortRange, ports, failed);

        let any = tcp_states.is_some()
            || listeners_read
            || sockstat.is_some()
            || tcp.is_some()
            || conntrack.is_some()
            || ephemeral_ports.is_some();
        any.then_some(SocketSample {
            tcp_states,
            tcp_states_age_ms: outcome.states_age_ms,
            source: outcome.source,
            listeners,
            sockstat,
            tcp,
            conntrack,
            ephemeral_ports,
        })
    }

    /// Reads of /proc/net/netstat since start.
    pub fn netstat_reads(&self) -> u64 {
        self.listen.reads
    }

    /// Conntrack counters exist only while the nf_conntrack module is loaded.
    fn read_conntrack(
        count: &mut ProcFile,
        max: &mut ProcFile,
        root: &Path,
    ) -> Result<Option<headroom_common::wire::Conntrack>, SampleError> {
        let (Some(count), Some(max)) = (count.optional_text()?, max.optional_text()?) else {
            return Ok(None);
        };
        misc::parse_conntrack(count, max)
            .map(Some)
            .map_err(|source| SampleError::parse(root, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seldom_figure_is_reread_after_its_interval_and_a_failed_read_is_not_kept() {
        let t0 = Instant::now();
        let mut seldom = Seldom::new(Duration::from_secs(5));
        let mut reads = 0;
        let mut read = |value: Result<u32, ()>| {
            reads += 1;
            value.map_err(|()| SampleError::io(Path::new("loadavg"), &std::io::Error::other("gone")))
        };
        assert_eq!(seldom.get(t0, || read(Ok(1))).unwrap(), 1);
        assert_eq!(
            seldom.get(t0 + Duration::from_secs(4), || read(Ok(2))).unwrap(),
            1
        );
        assert_eq!(
            seldom.get(t0 + Duration::from_secs(5), || read(Ok(3))).unwrap(),
            3
        );
        assert!(seldom
            .get(t0 + Duration::from_secs(10), || read(Err(())))
            .is_err());
        assert_eq!(
            seldom.get(t0 + Duration::from_secs(11), || read(Ok(4))).unwrap(),
            4
        );
        assert_eq!(reads, 4);
    }

    #[test]
    fn the_load_average_is_read_once_per_kernel_update() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("stat"),
            "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
        )
        .unwrap();
        let loadavg = |one: &str| {
            std::fs::write(root.path().join("loadavg"), format!("{one} 0.20 0.30 1/100 42\n")).unwrap();
        };
        loadavg("0.10");
        let mut sampler = Sampler::new(SamplerConfig {
            proc_root: root.path().to_path_buf(),
            netlink: false,
            ..SamplerConfig::default()
        });
        let one = |sample: Sample| sample.cpu.and_then(|cpu| cpu.load).map(|load| load.one);
        let t0 = Instant::now();
        assert_eq!(one(sampler.sample(1, 0, t0)), Some(0.10));
        loadavg("0.50");
        assert_eq!(
            one(sampler.sample(2, 1_000, t0 + Duration::from_secs(1))),
            Some(0.10)
        );
        assert_eq!(one(sampler.sample(6, 5_000, t0 + LOAD_AVERAGE_EVERY)), Some(0.50));
    }
}
