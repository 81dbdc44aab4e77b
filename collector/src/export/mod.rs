//! Prometheus remote_write export: stored samples go to a Prometheus-compatible engine (Prometheus,
//! VictoriaMetrics, Mimir, Thanos receive) with nothing lost on the way.
//!
//! The raw table is the queue: the exporter reads rows after a cursor kept in the database, on its own
//! read-only connection and its own task, builds one request per batch (`series`), sends it, and persists the
//! cursor through the writer once the remote answered 2xx. 5xx, 429 and network errors are retried with
//! capped, jittered backoff (`headroom_common::backoff`); other 4xx drop the batch and count its rows. After
//! a restart or kill -9 it resumes from the cursor, so at most the batch in flight is sent twice (engines
//! collapse a sample sent twice at the same timestamp). Rows that raw retention deletes before they are sent
//! are recorded as an export gap by the writer and shown in `/api/v1/health`. Ingest never waits for export.

pub mod config;
pub mod proto;
pub mod series;

pub use config::{RemoteAuth, RemoteWriteConfig};

use crate::store::{Store, StoreHandle};
use headroom_common::backoff::Backoff;
use headroom_common::http::{Client, ClientOptions};
use serde::{Deserialize, Serialize};
use series::{SeriesBuilder, Verdict};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The exporter's state for `/api/v1/health` and the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportStatus {
    /// The receiver URL.
    pub url: String,
    /// "starting", "sending", "idle" (caught up), "retrying" (the remote fails; see `last_error`).
    pub state: String,
    pub last_error: String,
    /// Last `samples.id` the remote acknowledged, and the newest stored: their difference is the backlog.
    pub cursor: i64,
    pub newest_row: i64,
    pub backlog_rows: i64,
    /// Since this process started.
    pub sent_rows: u64,
    pub sent_samples: u64,
    pub sent_bytes: u64,
    pub requests: u64,
    pub retries: u64,
    /// Rows left out because a host's clock went back (not after its previous exported sample).
    pub out_of_order_rows: u64,
    /// Durable, from the database: rows refused for good by the remote, and rows raw retention deleted before
    /// they were sent (with the time span they covered). Never silent.
    pub dropped_rows: u64,
    pub gap_rows: u64,
    pub gap_from_ms: u64,
    pub gap_to_ms: u64,
    /// Collector CPU time spent reading and encoding batches, in microseconds (the sending is not counted).
    pub prepare_cpu_us: u64,
    /// Sample time of the oldest stored row the remote has not acknowledged; `None` when caught up.
    #[serde(default)]
    pub oldest_unsent_ms: Option<u64>,
}

impl ExportStatus {
    /// How far behind the export is at `now_ms`: the age of the oldest unacknowledged row, 0 when caught up.
    pub fn lag_seconds(&self, now_ms: u64) -> f64 {
        self.oldest_unsent_ms
            .map_or(0.0, |oldest| now_ms.saturating_sub(oldest) as f64 / 1000.0)
    }

    /// One line about rows that will never reach the remote, or None when nothing was lost.
    pub fn loss_line(&self) -> Option<String> {
        if self.gap_rows == 0 && self.dropped_rows == 0 {
            return None;
        }
        let mut parts = Vec::new();
        if self.gap_rows > 0 {
            parts.push(format!(
                "{} rows from {} to {} were deleted by raw retention before they were sent (export gap)",
                self.gap_rows,
                headroom_common::names::rfc3339_millis(self.gap_from_ms),
                headroom_common::names::rfc3339_millis(self.gap_to_ms)
            ));
        }
        if self.dropped_rows > 0 {
            parts.push(format!(
                "{} rows were refused for good (HTTP 4xx)",
                self.dropped_rows
            ));
        }
        Some(format!(
            "export to {}: {}; see the collector log, and raise storage.raw_retention if the remote is often away",
            self.url,
            parts.join("; ")
        ))
    }
}

/// Shared view of the exporter's status.
#[derive(Debug, Clone, Default)]
pub struct ExportMonitor(Arc<Mutex<ExportStatus>>);

impl ExportMonitor {
    pub fn status(&self) -> ExportStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut ExportStatus)) {
        change(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A batch ready to send.
struct Prepared {
    body: Vec<u8>,
    /// Sample time of the batch's first row: the oldest unsent while it is on the way.
    first_ts_ms: u64,
    rows: usize,
    samples: usize,
    last_id: i64,
    out_of_order: usize,
}

/// What one read of the queue found.
enum Read {
    /// Fewer rows than a batch, not built yet: the caller may wait for more. The first row's sample time.
    Partial(u64),
    Empty,
    Batch(Prepared),
}

/// The blocking side: the read connection and the series builder, moved into `spawn_blocking` per batch.
struct Reader {
    db: PathBuf,
    store: Option<Store>,
    builder: SeriesBuilder,
    batch_size: usize,
}

impl Reader {
    fn store(&mut self) -> Result<&Store, String> {
        if self.store.is_none() {
            self.store = Some(Store::open_read_only(&self.db).map_err(|e| e.to_string())?);
        }
        Ok(self.store.as_ref().expect("just opened"))
    }

    /// Read after `cursor`; a short read is only built when `build_partial`.
    fn read(&mut self, cursor: i64, build_partial: bool, monitor: &ExportMonitor) -> Result<Read, String> {
        let started = thread_cpu_time();
        let batch_size = self.batch_size;
        let result = self.read_inner(cursor, batch_size, build_partial, monitor);
        if result.is_err() {
            // Reopen next time: the file may have been replaced or the connection broken.
            self.store = None;
        }
        let spent = thread_cpu_time().saturating_sub(started);
        monitor.update(|s| s.prepare_cpu_us += spent.as_micros() as u64);
        result
    }

    fn read_inner(
        &mut self,
        cursor: i64,
        batch_size: usize,
        build_partial: bool,
        monitor: &ExportMonitor,
    ) -> Result<Read, String> {
        let store = self.store()?;
        let rows = store
            .export_rows_after(cursor, batch_size)
            .map_err(|e| e.to_string())?;
        let newest = store.last_row_id().map_err(|e| e.to_string())?;
        let progress = store
            .export_progress()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        monitor.update(|s| {
            s.newest_row = newest;
            s.backlog_rows = newest.saturating_sub(s.cursor);
            s.gap_rows = progress.gap_rows;
            s.gap_from_ms = progress.gap_from_ms;
            s.gap_to_ms = progress.gap_to_ms;
            s.dropped_rows = progress.dropped_rows;
        });
        if rows.is_empty() {
            return Ok(Read::Empty);
        }
        let first_ts_ms = rows[0].ts_ms;
        if rows.len() < batch_size && !build_partial {
            return Ok(Read::Partial(first_ts_ms));
        }
        if self.builder.needs_hosts(&rows) {
            let hosts = self.store()?.export_hosts().map_err(|e| e.to_string())?;
            self.builder.set_hosts(hosts);
        }
        let batch = self.builder.build(&rows);
        Ok(Read::Batch(Prepared {
            body: proto::encode_body(&batch.request),
            first_ts_ms,
            rows: batch.rows,
            samples: batch.samples,
            last_id: batch.last_id,
            out_of_order: batch.out_of_order,
        }))
    }
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), for the exporter's cost accounting.
fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// Start the exporter on the current runtime. It first makes sure the cursor exists in the database, so
/// retention starts recording gaps from now on.
pub fn spawn(
    config: RemoteWriteConfig,
    db: PathBuf,
    store: StoreHandle,
    cancel: CancellationToken,
) -> anyhow::Result<(JoinHandle<()>, ExportMonitor)> {
    let client = http_client(&config)?;
    let monitor = ExportMonitor::default();
    monitor.update(|s| {
        s.url = config.url.clone();
        s.state = "starting".into();
    });
    let task = tokio::spawn(run(config, client, db, store, monitor.clone(), cancel));
    Ok((task, monitor))
}

/// The exporter's client: the shared one (`headroom_common::http`), trusting `tls_ca` besides the system's
/// store, with the configured timeout. Response bodies are bounded: only an error's first lines are shown.
fn http_client(config: &RemoteWriteConfig) -> anyhow::Result<Client> {
    let extra_roots_pem = match &config.tls_ca {
        None => None,
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "export.remote_write.tls_ca {}: {e} (point it at the receiver's CA certificate, PEM)",
                path.display()
            )
        })?),
    };
    Client::new(&ClientOptions {
        timeout: config.timeout,
        extra_roots_pem,
        max_body_bytes: 64 * 1024,
    })
    .map_err(|e| match &config.tls_ca {
        Some(path) => anyhow::anyhow!(
            "export.remote_write.tls_ca {}: not a PEM certificate ({e})",
            path.display()
        ),
        None => anyhow::anyhow!("export.remote_write: cannot build the HTTP client: {e}"),
    })
}

/// The Authorization header value, read from its file now so a rotated secret is picked up.
fn authorization(auth: &RemoteAuth) -> Result<Option<String>, String> {
    let read = |path: &PathBuf, key: &str| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .map_err(|e| format!("export.remote_write.{key} {}: {e}", path.display()))
    };
    Ok(match auth {
        RemoteAuth::None => None,
        RemoteAuth::BearerTokenFile(path) => Some(format!("Bearer {}", read(path, "bearer_token_file")?)),
        RemoteAuth::Basic {
            username,
            password_file,
        } => {
            let password = read(password_file, "basic_auth_password_file")?;
            let pair = format!("{username}:{password}");
            Some(format!("Basic {}", base64(pair.as_bytes())))
        }
    })
}

/// Standard base64 with padding (RFC 4648), for basic auth.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One POST of a batch: Ok(status) or the transport error as one line.
async fn post(client: &Client, config: &RemoteWriteConfig, body: &[u8]) -> Result<(u16, String), String> {
    let authorization = authorization(&config.auth)?;
    let mut headers = vec![
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    if let Some(value) = &authorization {
        headers.push(("Authorization", value));
    }
    let response = client
        .post(&config.url, &headers, body.to_vec())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status;
    let text = if response.is_success() {
        String::new()
    } else {
        response
            .body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(300)
            .collect()
    };
    Ok((status, text))
}

/// Wait `delay` unless cancelled; false when cancelled.
async fn pause(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

type ReadTask = JoinHandle<(Reader, Result<Read, String>)>;

fn spawn_read(mut reader: Reader, cursor: i64, build_partial: bool, monitor: ExportMonitor) -> ReadTask {
    tokio::task::spawn_blocking(move || {
        let result = reader.read(cursor, build_partial, &monitor);
        (reader, result)
    })
}

async fn run(
    config: RemoteWriteConfig,
    client: Client,
    db: PathBuf,
    store: StoreHandle,
    monitor: ExportMonitor,
    cancel: CancellationToken,
) {
    let backoff = Backoff {
        initial: config.min_backoff,
        cap: config.max_backoff,
    };
    // Where the remote's acknowledgements reached, from the database; created on first start.
    let mut cursor = loop {
        let db_path = db.clone();
        let found = tokio::task::spawn_blocking(move || {
            Store::open_read_only(&db_path)
                .and_then(|s| s.export_progress())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match found {
            Ok(Some(progress)) => break progress.cursor,
            Ok(None) => match store.save_export_progress(0, 0).await {
                Ok(()) => break 0,
                Err(error) => warn!(%error, "export: cannot create the export cursor; retrying"),
            },
            Err(error) => warn!(%error, "export: cannot read the export cursor; retrying"),
        }
        if !pause(config.min_backoff.max(Duration::from_secs(1)), &cancel).await {
            return;
        }
    };
    info!(url = %config.url, cursor, "remote_write export started");
    monitor.update(|s| s.cursor = cursor);
    let reader = Reader {
        db,
        store: None,
        builder: SeriesBuilder::new(&config.labels),
        batch_size: config.batch_size,
    };
    let mut next = spawn_read(reader, cursor, false, monitor.clone());
    // A short read waits `batch_wait` once for more rows, then goes out as it is.
    let mut waited = false;
    loop {
        let (reader, result) = tokio::select! {
            _ = cancel.cancelled() => break,
            joined = &mut next => match joined {
                Ok(pair) => pair,
                Err(error) => {
                    warn!(%error, "export reader task failed; export stops until restart");
                    monitor.update(|s| { s.state = "failed".into(); s.last_error = error.to_string(); });
                    return;
                }
            },
        };
        let prepared = match result {
            Err(error) => {
                warn!(%error, "export: reading stored rows failed; retrying");
                monitor.update(|s| s.last_error = error.clone());
                if !pause(config.batch_wait.max(Duration::from_secs(1)), &cancel).await {
                    break;
                }
                next = spawn_read(reader, cursor, false, monitor.clone());
                continue;
            }
            Ok(Read::Empty) => {
                monitor.update(|s| {
                    s.state = "idle".into();
                    s.oldest_unsent_ms = None;
                });
                waited = false;
                if !pause(config.batch_wait, &cancel).await {
                    break;
                }
                next = spawn_read(reader, cursor, false, monitor.clone());
                continue;
            }
            Ok(Read::Partial(first_ts_ms)) if !waited => {
                waited = true;
                monitor.update(|s| s.oldest_unsent_ms = Some(first_ts_ms));
                if !pause(config.batch_wait, &cancel).await {
                    break;
                }
                next = spawn_read(reader, cursor, true, monitor.clone());
                continue;
            }
            Ok(Read::Partial(_)) => {
                next = spawn_read(reader, cursor, true, monitor.clone());
                continue;
            }
            Ok(Read::Batch(prepared)) => prepared,
        };
        monitor.update(|s| s.oldest_unsent_ms = Some(prepared.first_ts_ms));
        waited = false;
        // Read and encode the next batch while this one is on the wire.
        next = spawn_read(reader, prepared.last_id, false, monitor.clone());
        let dropped = if prepared.samples == 0 {
            0
        } else {
            match send(&client, &config, &backoff, &prepared, &monitor, &cancel).await {
                Some(Verdict::Sent) => 0,
                Some(_) => prepared.rows as u64,
                None => break,
            }
        };
        cursor = prepared.last_id;
        if let Err(error) = store.save_export_progress(cursor, dropped).await {
            warn!(%error, "export: cannot save the cursor; export stops until restart");
            monitor.update(|s| {
                s.state = "failed".into();
                s.last_error = error.to_string();
            });
            return;
        }
        monitor.update(|s| {
            s.cursor = cursor;
            s.backlog_rows = s.newest_row.saturating_sub(cursor);
            s.out_of_order_rows += prepared.out_of_order as u64;
        });
    }
    // Let a read in progress finish so its connection closes cleanly.
    next.abort();
    info!(cursor, "remote_write export stopped");
}

/// Send one batch until the remote takes it (Sent) or refuses it for good (Drop); None when cancelled.
async fn send(
    client: &Client,
    config: &RemoteWriteConfig,
    backoff: &Backoff,
    batch: &Prepared,
    monitor: &ExportMonitor,
    cancel: &CancellationToken,
) -> Option<Verdict> {
    let mut attempt = 0u32;
    loop {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return None,
            outcome = post(client, config, &batch.body) => outcome,
        };
        monitor.update(|s| s.requests += 1);
        let (verdict, error) = match outcome {
            Ok((status, _)) if series::verdict(status) == Verdict::Sent => (Verdict::Sent, String::new()),
            Ok((status, text)) => (
                series::verdict(status),
                format!("{}: HTTP {status}: {text}", config.url),
            ),
            Err(error) => (Verdict::Retry, error),
        };
        match verdict {
            Verdict::Sent => {
                monitor.update(|s| {
                    s.state = "sending".into();
                    s.last_error.clear();
                    s.sent_rows += batch.rows as u64;
                    s.sent_samples += batch.samples as u64;
                    s.sent_bytes += batch.body.len() as u64;
                });
                if attempt > 0 {
                    info!(url = %config.url, attempts = attempt + 1, "remote_write delivers again");
                }
                return Some(Verdict::Sent);
            }
            Verdict::Drop => {
                warn!(%error, rows = batch.rows, "remote_write refused a batch for good (4xx); its rows are dropped and counted");
                monitor.update(|s| s.last_error = error);
                return Some(Verdict::Drop);
            }
            Verdict::Retry => {
                let delay = backoff.delay(attempt, fastrand::f64());
                if attempt == 0 {
                    warn!(%error, ?delay, "remote_write failed; retrying with backoff (rows wait in the database)");
                }
                monitor.update(|s| {
                    s.state = "retrying".into();
                    s.last_error = error;
                    s.retries += 1;
                });
                attempt = attempt.saturating_add(1);
                if !pause(delay, cancel).await {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_one_line_and_silence_means_none() {
        let mut status = ExportStatus {
            url: "http://127.0.0.1:9090/api/v1/write".into(),
            ..ExportStatus::default()
        };
        assert_eq!(status.loss_line(), None);
        status.gap_rows = 40;
        status.gap_from_ms = 1_700_000_000_000;
        status.gap_to_ms = 1_700_000_060_000;
        status.dropped_rows = 2;
        let line = status.loss_line().unwrap();
        assert!(line.contains("40 rows from 2023-11-14T22:13:20.000Z"), "{line}");
        assert!(line.contains("2 rows were refused"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn basic_auth_is_base64_of_user_and_password() {
        assert_eq!(base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn credentials_are_read_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        assert_eq!(
            authorization(&RemoteAuth::BearerTokenFile(token.clone())).unwrap(),
            Some("Bearer s3cret".to_string())
        );
        let missing = authorization(&RemoteAuth::BearerTokenFile(dir.path().join("none"))).unwrap_err();
        assert!(
            missing.contains("export.remote_write.bearer_token_file"),
            "{missing}"
        );
        assert_eq!(authorization(&RemoteAuth::None).unwrap(), None);
    }
}
