//! The collector service: open the database, bind QUIC and the loopback HTTP API, run ingest, stop cleanly.

use crate::analytics::alarms::{
    self,
    deliver::{self, SenderSettings},
};
use crate::analytics::outliers::OutlierSettings;
use crate::analytics::{AnalyticsSettings, SettingsError};
use crate::config::Config;
use crate::identity::enroll_server::{EnrollContext, Listener};
use crate::identity::labels::IgnoredLabelLog;
use crate::identity::live::{run_revocation_sweeper, LiveConnections};
use crate::identity::pki_cli::pki_dir;
use crate::identity::registry::Registry;
use crate::identity::revocation::Revocations;
use crate::ingest::handshake::HandshakeLimits;
use crate::ingest::reload::load_server_config;
use crate::ingest::validate::Limits;
use crate::ingest::{self, IngestContext, IngestSettings};
use crate::live::fleet::{FleetSettings, FleetState};
use crate::quic;
use crate::store::{spawn_writer_with, Store, WriterSettings};
use crate::views::http::ApiState;
use anyhow::Context;
use headroom_common::clock::now_ms;
use headroom_common::files;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Batches that may wait for the database writer before `commit` waits (one per connection at most).
const STORE_QUEUE: usize = 4096;

/// The addresses the collector actually bound (useful when the config asked for port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub quic: SocketAddr,
    pub http: SocketAddr,
    /// The enrollment listener, when enrollment is on.
    pub enroll: Option<SocketAddr>,
}

/// The collector's database file.
pub fn database_path(config: &Config) -> PathBuf {
    config.state_dir.join("headroom.db")
}

/// Run until `cancel` fires. `bound` learns the bound addresses once both listeners are up.
pub async fn serve(
    config: Config,
    cancel: CancellationToken,
    bound: Option<oneshot::Sender<Bound>>,
    notify_systemd: bool,
) -> anyhow::Result<()> {
    let web = web_settings(&config, &pki_dir(&config.state_dir));
    serve_with_web(config, web, cancel, bound, notify_systemd).await
}

/// `serve` with the web view's settings given (the demo shortens its steps).
pub async fn serve_with_web(
    config: Config,
    web: crate::views::web::WebSettings,
    cancel: CancellationToken,
    bound: Option<oneshot::Sender<Bound>>,
    notify_systemd: bool,
) -> anyhow::Result<()> {
    // The database may be read by the service's group (a planner's report job); the pki directory inside is
    // created 0700 by `ca init`.
    files::create_dir_all(&config.state_dir, files::GROUP_DIR).with_context(|| {
        format!(
            "creating state directory {} (check state_dir)",
            config.state_dir.display()
        )
    })?;
    let pki = pki_dir(&config.state_dir);
    // The token and HTTPS files are read before anything binds: a missing one stops the start.
    let http_access = crate::views::access::Access::load(config.http_listen, &config.http)
        .map_err(|message| anyhow::anyhow!(message))?;
    let revocations = Revocations::load(&pki)?;
    let streaming_config = load_server_config(&config.tls, &revocations, Listener::Streaming)?;
    // This process never reads the CA key: with enrollment on, the signer (a child process, or one run by its
    // own unit on a socket) holds it and signs; without enrollment nothing signs at all.
    let enrollment = match config.enroll_listen {
        Some(address) => {
            let (signer, ca_pem) = start_signer(&config).await?;
            Some((
                address,
                load_server_config(&config.tls, &revocations, Listener::Enrollment)?,
                Arc::new(EnrollContext::new(
                    &pki,
                    signer,
                    ca_pem,
                    revocations.clone(),
                    config.identity.cert_validity,
                )),
            ))
        }
        None => None,
    };
    let (store, report) = Store::open(&database_path(&config), now_ms())?;
    if report.check_ok {
        info!("{}", report.line());
    } else {
        warn!("{}", report.line());
    }
    let (store, writer) = spawn_writer_with(
        store,
        WriterSettings {
            queue_capacity: STORE_QUEUE,
            retention: config.retention,
            ..WriterSettings::default()
        },
    );

    let socket = std::net::UdpSocket::bind(config.listen).with_context(|| {
        format!(
            "cannot listen on udp {}: another process may hold it (change listen in the config)",
            config.listen
        )
    })?;
    let receive_buffer_bytes = enlarge_receive_buffer(&socket, UDP_RECEIVE_BUFFER_BYTES);
    if receive_buffer_bytes < UDP_RECEIVE_BUFFER_BYTES {
        warn!(
            receive_buffer_bytes,
            wanted = UDP_RECEIVE_BUFFER_BYTES,
            "udp receive buffer capped by net.core.rmem_max; raise it (sysctl) so bursts are not dropped"
        );
    }
    let endpoint = quic::Endpoint::new(
        quic::restartable_config(&std::fs::read(&config.tls.key).unwrap_or_default()),
        streaming_config,
        socket,
    )
    .with_context(|| format!("cannot start QUIC on udp {}", config.listen))?;
    let enroll_endpoint = match enrollment {
        Some((address, server_config, context)) => {
            let socket = std::net::UdpSocket::bind(address).with_context(|| {
                format!(
                    "cannot listen on udp {address} for enrollment: another process may hold it (change \
                     enroll_listen in the config, or set it to \"off\")"
                )
            })?;
            let endpoint = quic::Endpoint::new(
                quic::restartable_config(&std::fs::read(&config.tls.key).unwrap_or_default()),
                server_config,
                socket,
            )
            .with_context(|| format!("cannot start QUIC on udp {address}"))?;
            Some((endpoint, context))
        }
        None => None,
    };
    let http_listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on tcp {}: another process may hold it, or the address is not on this host \
                 (change http_listen in the config)",
                config.http_listen
            )
        })?;
    let addresses = Bound {
        quic: endpoint.local_addr().context("reading the bound udp address")?,
        http: http_listener
            .local_addr()
            .context("reading the bound tcp address")?,
        enroll: match &enroll_endpoint {
            Some((endpoint, _)) => Some(endpoint.local_addr().context("reading the bound udp address")?),
            None => None,
        },
    };
    let fleet = Arc::new(Mutex::new(FleetState::new(FleetSettings {
        stale_after_intervals: config.fleet.stale_after_intervals,
        down_after_ms: config.fleet.down_after.as_millis() as u64,
        max_clock_skew_ms: config.fleet.max_clock_skew.as_millis() as u64,
    })));
    let live = LiveConnections::new();
    let analytics = crate::analytics::Analytics::new(analytics_settings(&config)?);
    analytics.keep_history(store.clone());
    let analytics_task = tokio::spawn(crate::analytics::run(analytics.clone(), cancel.clone()));
    let forecast_task = analytics.wants_forecast().then(|| {
        tokio::spawn(refresh_forecasts(
            analytics.clone(),
            config.sizing.clone(),
            database_path(&config),
            cancel.clone(),
        ))
    });
    let context = Arc::new(IngestContext {
        fleet: fleet.clone(),
        store: store.clone(),
        settings: IngestSettings {
            max_connections: config.fleet.max_connections,
            hello_label_keys: config.identity.hello_label_keys.clone(),
            limits: Limits {
                max_clock_skew_ms: config.fleet.max_clock_skew.as_millis() as u64,
            },
            handshakes: HandshakeLimits {
                per_source: config.fleet.handshakes_per_source as usize,
                timeout: config.fleet.handshake_timeout,
                ..HandshakeLimits::with_slots(ingest::MAX_HANDSHAKES_IN_PROGRESS)
            },
            reconnect_rate: config.fleet.reconnect_rate,
        },
        enroll: enroll_endpoint.as_ref().map(|(_, context)| context.clone()),
        live: live.clone(),
        revocations: revocations.clone(),
        ignored_labels: IgnoredLabelLog::default(),
        store_shares: Default::default(),
        registry: Registry::in_dir(&pki),
        last_seen: Default::default(),
        analytics: analytics.clone(),
        batches: Default::default(),
    });
    let mut endpoints = vec![(endpoint.clone(), Listener::Streaming)];
    if let Some((enroll, _)) = &enroll_endpoint {
        endpoints.push((enroll.clone(), Listener::Enrollment));
    }
    let reloader = tokio::spawn(crate::ingest::reload::run_server_cert_reloader(
        endpoints,
        config.tls.clone(),
        revocations.clone(),
        cancel.clone(),
    ));
    let enroll_handshakes = HandshakeLimits {
        per_source: config.fleet.handshakes_per_source as usize,
        timeout: config.fleet.handshake_timeout,
        max_waiting: 0,
        ..HandshakeLimits::with_slots(ingest::enroll::MAX_IN_PROGRESS)
    };
    let mut enroll_task = enroll_endpoint.map(|(endpoint, context)| {
        tokio::spawn(ingest::enroll::serve_enrollment(
            endpoint,
            context,
            enroll_handshakes,
            cancel.clone(),
        ))
    });
    let sweeper = tokio::spawn(run_revocation_sweeper(live, revocations, cancel.clone()));
    let last_seen = tokio::spawn(ingest::run_last_seen_writer(context.clone(), cancel.clone()));
    let mut ingest = tokio::spawn(ingest::serve(endpoint, context, cancel.clone()));
    // The exporter reads the database on its own connection and task; ingest never waits for it.
    let export = match config.export.clone() {
        Some(remote_write) => Some(crate::export::spawn(
            remote_write,
            database_path(&config),
            store.clone(),
            cancel.clone(),
        )?),
        None => None,
    };
    let api = ApiState {
        fleet,
        store: Some(store.clone()),
        analytics: Some(analytics),
        export: export.as_ref().map(|(_, monitor)| monitor.clone()),
        quic_port: Some(addresses.quic.port()),
        web: crate::views::web::WebState::new(web),
    };
    let web_task = tokio::spawn(crate::views::web::run(
        axum::extract::FromRef::from_ref(&api),
        cancel.clone(),
    ));
    let http = tokio::spawn(crate::views::http::serve(
        http_listener,
        api,
        http_access,
        cancel.clone().cancelled_owned(),
    ));
    match addresses.enroll {
        Some(enroll) => info!(quic = %addresses.quic, %enroll, http = %addresses.http, "collector listening"),
        None => info!(
            quic = %addresses.quic, http = %addresses.http,
            "collector listening; enrollment and renewal are off (enroll_listen = \"off\")"
        ),
    }
    if let Some(bound) = bound {
        let _ = bound.send(addresses);
    }
    if notify_systemd {
        notify_ready_and_watchdog(&cancel);
    }
    // A listener ends by itself only when its endpoint failed (`quic::Endpoint::has_failed`, logged there):
    // the collector then stops and exits with an error, for its service manager to restart it, rather than
    // keep running with a port that no longer answers.
    let (mut ingest_done, mut enroll_done) = (false, false);
    let failed_listener = tokio::select! {
        // A stop asked for ends the listeners too: it is looked at first, so that is not taken for a failure.
        biased;
        _ = cancel.cancelled() => None,
        _ = &mut ingest => {
            ingest_done = true;
            Some(addresses.quic)
        }
        _ = async {
            match enroll_task.as_mut() {
                Some(task) => {
                    let _ = task.await;
                }
                None => std::future::pending().await,
            }
        } => {
            enroll_done = true;
            addresses.enroll
        }
    };
    if let Some(address) = failed_listener {
        error!(%address, "a QUIC listener stopped; stopping the collector so that it is restarted");
        cancel.cancel();
    }
    if notify_systemd {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }
    if !ingest_done {
        let _ = ingest.await;
    }
    if let Some(enroll_task) = enroll_task.filter(|_| !enroll_done) {
        let _ = enroll_task.await;
    }
    let _ = last_seen.await;
    let _ = sweeper.await;
    let _ = analytics_task.await;
    if let Some(task) = forecast_task {
        let _ = task.await;
    }
    let _ = reloader.await;
    let _ = web_task.await;
    if let Some((task, _)) = export {
        let _ = task.await;
    }
    let http_result = http.await;
    // Every connection task has ended, so this is the last handle: the writer commits what is queued and exits.
    drop(store);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    match http_result {
        Ok(result) => result.context("http api")?,
        Err(e) => anyhow::bail!("http api task failed: {e}"),
    }
    if let Some(address) = failed_listener {
        anyhow::bail!("the QUIC listener on udp {address} stopped (its error is logged above); start the collector again");
    }
    info!("collector stopped");
    Ok(())
}

/// The signer on `identity.signer_socket`, or a child started from this executable.
async fn start_signer(config: &Config) -> anyhow::Result<(crate::identity::signer::Signer, String)> {
    use crate::identity::signer::Signer;
    let socket = config.identity.signer_socket.clone();
    let state_dir = config.state_dir.clone();
    let started = tokio::task::spawn_blocking(move || match socket {
        Some(path) => Signer::connect(&path),
        None => {
            let program = std::env::current_exe().map_err(|error| {
                crate::identity::signer::SignerError::Unavailable(format!(
                    "cannot find this executable: {error}"
                ))
            })?;
            Signer::spawn(&program, &state_dir)
        }
    })
    .await
    .context("starting the signer")?;
    Ok(started?)
}

/// The web view's settings from the config: sizing as `[sizing]` says, the certificate registry in `pki`.
pub fn web_settings(config: &Config, pki: &std::path::Path) -> crate::views::web::WebSettings {
    crate::views::web::WebSettings {
        sizing: config.sizing.clone(),
        pki_dir: Some(pki.to_path_buf()),
        ..crate::views::web::WebSettings::default()
    }
}

/// Receive buffer asked for on the QUIC socket. Every agent shares this one socket, and the default (about
/// 208 KiB) overflows when thousands of connections send in the same few milliseconds (a reconnect storm,
/// or a moment the runtime is busy); 16 MiB holds about 12,000 full datagrams. Linux grants at most
/// `net.core.rmem_max`; less is logged at start (docs/SCALE.md).
const UDP_RECEIVE_BUFFER_BYTES: usize = 16 << 20;

/// Computes the sizing report of the groups `headroom` rules with `within` watch, over the sizing window,
/// from the database, on the background thread at low priority (`background.rs`) with a read-only
/// connection, and hands it to the analytics: the alarm evaluation itself never reads the database. When, and for which groups, is
/// [`crate::analytics::alarms::forecast_refresh::ForecastRefresh::plan`]'s decision, asked every [`FORECAST_POLL_MS`].
async fn refresh_forecasts(
    analytics: Arc<crate::analytics::Analytics>,
    sizing: crate::sizing::SizingConfig,
    database: PathBuf,
    cancel: CancellationToken,
) {
    use crate::analytics::alarms::forecast_refresh::ForecastRefresh;
    let mut refresh = ForecastRefresh::new(crate::analytics::FORECAST_REFRESH_MS);
    let mut ticker = tokio::time::interval(Duration::from_millis(FORECAST_POLL_MS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = now_ms();
        let Some(groups) = refresh.plan(now, &analytics.forecast_groups()) else {
            continue;
        };
        let options = crate::views::report_cli::ReportOptions {
            db: database.clone(),
            window: sizing.window,
            now_ms: now,
            end: crate::views::end::EndAt::Now,
            scenarios: Vec::new(),
            progress: false,
            // A forecast of days does not move with the last minute or two; the raw tail past the rollup
            // would be over a million rows at 20,000 hosts for each refresh.
            rolled_up_only: true,
        };
        let for_task = sizing.clone();
        let wanted = groups.clone();
        // At low priority, as the web view's sizing refresh: ingest keeps the CPU it needs.
        let outcome = crate::background::run(move || {
            crate::views::report_cli::build_report_of(&options, &for_task, Some(&wanted))
        })
        .await
        .ok_or("the forecast's computation panicked");
        let succeeded = match outcome {
            Ok(Ok(report)) => {
                analytics.set_forecast(&report, now);
                true
            }
            Ok(Err(error)) => {
                warn!(%error, "forecast for headroom alarms not computed");
                false
            }
            Err(error) => {
                warn!(%error, "forecast for headroom alarms failed");
                false
            }
        };
        refresh.record(now, groups, succeeded);
    }
}

/// How often the forecast task asks whether a refresh is due (cheap: it reads the hosts' labels).
const FORECAST_POLL_MS: u64 = 10_000;

/// Ask for `bytes` of receive buffer; returns what the kernel granted (it caps the request at
/// net.core.rmem_max and reports double the usable size, so the answer is halved back).
fn enlarge_receive_buffer(socket: &std::net::UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let mut granted: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt/getsockopt on a descriptor the socket owns, with pointers to live c_ints and their
    // exact sizes.
    unsafe {
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let wanted_ptr = (&wanted as *const libc::c_int).cast();
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, wanted_ptr, size);
        let granted_ptr = (&mut granted as *mut libc::c_int).cast();
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, granted_ptr, &mut length);
    }
    usize::try_from(granted).unwrap_or(0) / 2
}

fn notify_ready_and_watchdog(cancel: &CancellationToken) {
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

/// The analytics runtime's settings from the validated config (here, so that analytics does not depend on the
/// config layer); reads the rules file and the alarm receivers' CA file (the only IO
/// here), and checks that the delivery client can be built with that CA.
pub fn analytics_settings(config: &Config) -> Result<AnalyticsSettings, SettingsError> {
    let rules = config.alarms.rules.as_deref().map(alarms::load).transpose()?;
    for warning in rules.iter().flat_map(|r| &r.warnings) {
        tracing::warn!("{warning}");
    }
    let alarm_ca_pem = match &config.alarms.ca {
        None => None,
        Some(path) => {
            let ca_error = |detail: String| SettingsError::Ca {
                path: path.clone(),
                detail,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let settings = SenderSettings {
                extra_roots_pem: Some(pem.clone()),
                ..SenderSettings::default()
            };
            deliver::delivery_client(&settings).map_err(|e| ca_error(e.to_string()))?;
            Some(pem)
        }
    };
    let outliers = OutlierSettings {
        peer_label: config.outliers.peer_label.clone(),
        threshold_score: config.outliers.threshold,
        window_count: config.outliers.window_count,
        flag_windows: config.outliers.flag_windows,
        clear_windows: config.outliers.flag_windows,
        window_ms: config.outliers.window.as_millis() as u64,
        min_group_hosts: config.outliers.min_group_hosts,
        relative_floor: config.outliers.relative_floor,
    };
    Ok(AnalyticsSettings {
        rules,
        rules_file: config.alarms.rules.clone(),
        alertmanager: config.alarms.alertmanager.clone(),
        webhook: config.alarms.webhook.clone(),
        alarm_ca_pem,
        alarm_interval_ms: config.alarms.interval.as_millis() as u64,
        outliers,
        database: Some(config.state_dir.join("headroom.db")),
        api_url: format!("http://{}", config.http_listen),
        sizing: config.sizing.clone(),
    })
}
