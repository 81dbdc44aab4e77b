//! The collector service: bind QUIC and the loopback HTTP API, run ingest, stop cleanly on cancel.

use crate::config::Config;
use crate::fleet::{FleetSettings, FleetState};
use crate::ingest::{self, IngestSettings, Progress};
use crate::validate::Limits;
use anyhow::Context;
use headroom_common::pki::read_pem;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The addresses the collector actually bound (useful when the config asked for port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub quic: SocketAddr,
    pub http: SocketAddr,
}

/// The TLS server configuration from the files the config names.
pub fn load_tls(config: &Config) -> anyhow::Result<rustls::ServerConfig> {
    let fix = "run \"headroom-collector ca init\" or set tls.* in the collector config";
    let ca = read_pem(&config.tls.ca, "CA certificate", fix)?;
    let cert = read_pem(&config.tls.cert, "server certificate", fix)?;
    let key = read_pem(&config.tls.key, "server key", fix)?;
    headroom_common::tls::server_config(&ca, &cert, &key, &[headroom_common::wire::ALPN])
        .map_err(|e| anyhow::anyhow!("tls files in the collector config: {e}"))
}

/// Run until `cancel` fires. `bound` learns the bound addresses once both listeners are up.
pub async fn serve(
    config: Config,
    cancel: CancellationToken,
    bound: Option<oneshot::Sender<Bound>>,
    notify_systemd: bool,
) -> anyhow::Result<()> {
    let tls = load_tls(&config)?;
    let endpoint =
        quinn::Endpoint::server(ingest::server_config(tls)?, config.listen).with_context(|| {
            format!(
                "cannot listen on udp {}: another process may hold it (change listen in the config)",
                config.listen
            )
        })?;
    let http_listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on tcp {}: (change http_listen in the config)",
                config.http_listen
            )
        })?;
    let addresses = Bound {
        quic: endpoint.local_addr().context("reading the bound udp address")?,
        http: http_listener
            .local_addr()
            .context("reading the bound tcp address")?,
    };
    let fleet = Arc::new(Mutex::new(FleetState::new(FleetSettings {
        stale_after_intervals: config.fleet.stale_after_intervals,
        down_after_ms: config.fleet.down_after.as_millis() as u64,
    })));
    let settings = IngestSettings {
        max_connections: config.fleet.max_connections,
        limits: Limits {
            max_clock_skew_ms: config.fleet.max_clock_skew.as_millis() as u64,
        },
    };
    let ingest = tokio::spawn(ingest::serve(
        endpoint,
        fleet.clone(),
        Arc::new(Progress::default()),
        settings,
        cancel.clone(),
    ));
    let http = tokio::spawn(crate::http::serve(
        http_listener,
        fleet,
        cancel.clone().cancelled_owned(),
    ));
    info!(quic = %addresses.quic, http = %addresses.http, "collector listening");
    if let Some(bound) = bound {
        let _ = bound.send(addresses);
    }
    if notify_systemd {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let mut watchdog_usec = 0u64;
        if sd_notify::watchdog_enabled(false, &mut watchdog_usec) && watchdog_usec > 0 {
            let period = Duration::from_micros(watchdog_usec / 2);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = ticker.tick() => { let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]); }
                    }
                }
            });
        }
    }
    cancel.cancelled().await;
    if notify_systemd {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }
    let _ = ingest.await;
    match http.await {
        Ok(result) => result.context("http api")?,
        Err(e) => anyhow::bail!("http api task failed: {e}"),
    }
    info!("collector stopped");
    Ok(())
}
