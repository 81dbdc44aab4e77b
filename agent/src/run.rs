//! The agent service: sample every interval, hand samples to the uplink, tell systemd how it is going.

use crate::backlog::{Backlog, SharedBacklog, SpoolBacklog};
use crate::config::Config;
use crate::enroll::Renewer;
use crate::sampler::{host_facts, InterfaceFilter, Sampler, SamplerConfig};
use crate::state::AgentState;
use crate::uplink::{run_uplink, UplinkConfig, UplinkReport, UplinkStatus};
use anyhow::Context;
use headroom_common::backoff::Backoff;
use headroom_common::wire::{Hello, Sample, PROTOCOL_VERSION};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Where the samples come from: the real host, or a generator (the demo's simulated hosts).
pub trait SampleSource: Send {
    fn sample(&mut self, seq: u64, timestamp_ms: u64, now: Instant) -> Sample;
}

impl SampleSource for Sampler {
    fn sample(&mut self, seq: u64, timestamp_ms: u64, now: Instant) -> Sample {
        Sampler::sample(self, seq, timestamp_ms, now)
    }
}

/// Everything `stream` needs, already validated and loaded.
pub struct StreamSettings {
    pub uplink: UplinkConfig,
    /// Where unacknowledged samples wait.
    pub backlog: Box<dyn Backlog>,
    pub hello: Hello,
    pub interval: Duration,
    /// Notify systemd (READY after the first sample, WATCHDOG pings); off in the demo and tests.
    pub notify_systemd: bool,
}

/// Build the TLS client configuration from the files named in the config, with the certificate behind a
/// `ReloadableClientCert` so that a renewal reaches the uplink's next handshake without a restart. Returns
/// the renewer that keeps that certificate current.
pub fn tls_from_config(
    config: &Config,
    target: &crate::config::CollectorTarget,
) -> anyhow::Result<(Arc<rustls::ClientConfig>, Renewer)> {
    let ca = std::fs::read_to_string(&config.tls.ca).with_context(|| {
        format!(
            "reading ca {}: cannot open it (enroll this host, or set tls.ca in the config)",
            config.tls.ca.display()
        )
    })?;
    let renewer = Renewer::from_files(&target.address, &target.server_name, &config.tls)
        .map_err(|e| anyhow::anyhow!("tls files in the agent config: {e}"))?;
    let tls = headroom_common::tls::client_config_reloadable(
        &ca,
        renewer.cert.clone(),
        &[headroom_common::wire::ALPN],
    )
    .map_err(|e| anyhow::anyhow!("tls files in the agent config: {e}"))?;
    Ok((Arc::new(tls), renewer))
}

/// The name this host's collectors are ranked by: the DNS name in its certificate (its identity), or the
/// machine's host name when the certificate cannot be read (the handshake will then say why).
fn rank_name(config: &Config) -> String {
    std::fs::read_to_string(&config.tls.cert)
        .ok()
        .and_then(|pem| headroom_common::pki::cert_info(&pem).ok())
        .and_then(|info| info.dns_names.into_iter().next())
        .unwrap_or_else(|| host_facts(&config.sampling.proc_root).1.hostname)
}

/// Sampler settings from the config.
pub fn sampler_config(config: &Config) -> SamplerConfig {
    SamplerConfig {
        proc_root: config.sampling.proc_root.clone(),
        interfaces: InterfaceFilter {
            include: config.network.include.clone(),
            exclude: config.network.exclude.clone(),
        },
        netlink: config.sampling.netlink,
        full_dump_max_sockets: config.sampling.full_dump_max_sockets,
        full_dump_interval: config.sampling.full_dump_interval,
        full_dump_cpu_ppm: config.sampling.full_dump_cpu_ppm,
        full_dump_cpu_ceiling_ppm: config.sampling.full_dump_cpu_ceiling_ppm,
    }
}

/// The service, as `headroom-agent run` starts it.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<UplinkReport> {
    let target = config.collector.clone().context(
        "config: collector.address is not set (add a [collector] section with address = \"HOST:PORT\")",
    )?;
    let (tls, renewer) = tls_from_config(&config, &target)?;
    let mut state = AgentState::open(&config.state_dir)?;
    let spool_dir = config.state_dir.join(crate::spool::SPOOL_DIR_NAME);
    let (spool, report) = crate::spool::Spool::open(&spool_dir, config.spool_max_bytes)?;
    if report.samples > 0 {
        info!(
            samples = report.samples,
            bytes = report.bytes,
            "spool holds samples from before; they go first"
        );
    }
    // The spool saw every sequence number this instance ever sent (a sample is spooled before it is sent), so
    // it is the authority on where to continue; the state file covers a spool that was emptied and removed.
    let first_seq = state.next_seq().max(spool.last_seq().map_or(1, |seq| seq + 1));
    let (capacity, facts) = host_facts(&config.sampling.proc_root);
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id: state.instance_id(),
        interval_ms: config
            .sampling
            .interval
            .as_millis()
            .try_into()
            .unwrap_or(u32::MAX),
        labels: config.labels.clone(),
        capacity,
        facts,
    };
    let settings = StreamSettings {
        uplink: UplinkConfig {
            host: rank_name(&config),
            collectors: target.addresses,
            server_name: target.server_name,
            tls,
            backoff: Backoff::default(),
            flush_timeout: Duration::from_secs(3),
        },
        backlog: Box::new(SpoolBacklog::with_memory_max(
            spool,
            config.spool_memory_max_samples,
        )),
        hello,
        interval: config.sampling.interval,
        notify_systemd: true,
    };
    let sampler = Sampler::new(sampler_config(&config));
    // Renewal runs beside the stream; it only swaps the certificate the next handshake presents.
    let renewal = tokio::spawn(renewer.run(cancel.child_token()));
    let (report, next_seq) = stream(settings, sampler, first_seq, cancel).await;
    // A renewal caught mid-exchange is dropped: the certificate file is replaced atomically, so it holds the
    // old certificate or the new one, and the next start picks up whichever it is.
    renewal.abort();
    let _ = renewal.await;
    state.save_next_seq(next_seq)?;
    Ok(report)
}

/// The sampling tick: a timerfd (`timer::Ticker`, one wake-up a tick), or tokio's interval where a timerfd
/// cannot be had.
enum Tick {
    Fd(crate::timer::Ticker, Duration),
    Tokio(tokio::time::Interval),
}

impl Tick {
    fn new(period: Duration) -> Tick {
        match crate::timer::Ticker::new(period) {
            Ok(ticker) => Tick::Fd(ticker, period),
            Err(error) => {
                tracing::debug!(%error, "no timerfd for the tick; using tokio's interval");
                Tick::tokio(period)
            }
        }
    }

    fn tokio(period: Duration) -> Tick {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Tick::Tokio(interval)
    }

    async fn tick(&mut self) {
        match self {
            Tick::Fd(ticker, period) => {
                if let Err(error) = ticker.tick().await {
                    tracing::warn!(%error, "the tick's timerfd failed; using tokio's interval");
                    *self = Tick::tokio(*period);
                }
            }
            Tick::Tokio(interval) => {
                interval.tick().await;
            }
        }
    }
}

/// The watchdog timeout systemd set for this process (WatchdogSec= in the unit), if any.
fn watchdog_timeout() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// When to ping systemd's watchdog: once half its timeout has passed since the last ping, on a sample tick
/// (a tick that does not come, because the agent hangs, is what the watchdog is for). Not every tick: each
/// ping is a socket, a datagram and a wake-up of the service manager, every second on every host.
#[derive(Debug, Clone, Copy)]
pub struct WatchdogPacer {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl WatchdogPacer {
    /// `timeout`: the watchdog's (None: no watchdog, never a ping).
    pub fn new(timeout: Option<Duration>) -> WatchdogPacer {
        WatchdogPacer {
            every: timeout.map(|timeout| timeout / 2),
            last: None,
        }
    }

    /// Whether to ping at `now`; true counts as a ping.
    pub fn due(&mut self, now: Instant) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// Sample every interval and stream until cancelled. Returns the uplink's report and the next unused
/// sequence number.
pub async fn stream<S: SampleSource>(
    settings: StreamSettings,
    mut source: S,
    first_seq: u64,
    cancel: CancellationToken,
) -> (UplinkReport, u64) {
    let backlog = SharedBacklog::new(settings.backlog);
    let (status_sender, mut status) = watch::channel(UplinkStatus::Connecting);
    let uplink = tokio::spawn(run_uplink(
        settings.uplink,
        settings.hello,
        backlog.clone(),
        cancel.child_token(),
        status_sender,
    ));

    // Only under a service manager that asked for them: no environment lookup or socket per tick otherwise.
    let notify_systemd = settings.notify_systemd && std::env::var_os("NOTIFY_SOCKET").is_some();
    let mut watchdog = WatchdogPacer::new(notify_systemd.then(watchdog_timeout).flatten());
    let mut ticker = Tick::new(settings.interval);
    let mut seq = first_seq;
    let mut ready_sent = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = status.changed() => {
                if let UplinkStatus::Failed { reason } = &*status.borrow_and_update() {
                    tracing::debug!(%reason, "uplink status");
                }
            }
            _ = ticker.tick() => {
                let timestamp_ms = headroom_common::clock::now_ms();
                let sample = source.sample(seq, timestamp_ms, Instant::now());
                seq += 1;
                // Straight into the spool: the sample is durable before the uplink ever sees it.
                backlog.push(sample);
                if notify_systemd && !ready_sent {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                    ready_sent = true;
                    info!("first sample taken; ready");
                }
                if watchdog.due(Instant::now()) {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
        }
    }
    if notify_systemd {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }
    // The uplink saw the same cancellation: it flushes what it has and says goodbye.
    let report = uplink.await.unwrap_or_default();
    (report, seq)
}

#[cfg(test)]
mod tests {
    use super::WatchdogPacer;
    use std::time::{Duration, Instant};

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_not_every_tick() {
        let start = Instant::now();
        let mut pacer = WatchdogPacer::new(Some(Duration::from_secs(30)));
        let pings: Vec<u64> = (0..61)
            .filter(|&second| pacer.due(start + Duration::from_secs(second)))
            .collect();
        assert_eq!(pings, [0, 15, 30, 45, 60]);
    }

    #[test]
    fn without_a_watchdog_there_is_no_ping() {
        let mut pacer = WatchdogPacer::new(None);
        assert!(!pacer.due(Instant::now()));
    }
}
