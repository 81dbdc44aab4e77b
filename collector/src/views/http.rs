//! The JSON API over the live fleet state: the fleet summary, the host list and a health check; served on
//! loopback, or over HTTPS with a bearer token (`views::access`).
//!
//! This is an edge: it reads the wall clock once per request and hands it to the pure fleet code.

use crate::live::fleet::FleetState;
use crate::views::metrics;
use crate::views::render::ApiError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use headroom_common::clock::now_ms;
use headroom_common::schema::{versioned, SCHEMA_HEADER, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// The fleet state shared between ingest (writer) and the API (reader).
pub type SharedFleet = Arc<Mutex<FleetState>>;

/// Body of `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// "ok", or "degraded" when storage refuses writes (agents then keep their samples).
    pub status: String,
    /// Hosts known to the collector, whatever their status.
    pub hosts: u64,
    /// "ok" or the last storage error as one line.
    #[serde(default)]
    pub storage: String,
    /// The remote_write exporter, when one is configured: backlog, retries, rows dropped or lost to a gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::export::ExportStatus>,
}

/// What the API handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub fleet: SharedFleet,
    /// Storage health; absent when the collector runs without a database (unit tests).
    pub store: Option<crate::store::StoreHandle>,
    /// Outliers, alarms and the database path for windowed views; absent in unit tests.
    pub analytics: Option<Arc<crate::analytics::Analytics>>,
    /// The remote_write exporter's status; absent when export is off.
    pub export: Option<crate::export::ExportMonitor>,
    /// The QUIC socket's port, for its kernel drop count in `/metrics`; absent in unit tests.
    pub quic_port: Option<u16>,
    /// The web view's settings, fleet history and cached sizing.
    pub web: Arc<crate::views::web::WebState>,
}

impl axum::extract::FromRef<ApiState> for crate::views::web::WebContext {
    fn from_ref(state: &ApiState) -> Self {
        crate::views::web::WebContext {
            fleet: state.fleet.clone(),
            analytics: state.analytics.clone(),
            web: state.web.clone(),
        }
    }
}

/// Locks the fleet. A writer that panicked leaves a state that is still whole (every update is a plain field
/// assignment), so serving it beats failing every request until restart.
pub(crate) fn lock(fleet: &SharedFleet) -> MutexGuard<'_, FleetState> {
    fleet.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ApiError { error: message })).into_response()
}

/// Query of `/api/v1/fleet`: without `by` and `window` the answer is the per group × zone summary.
#[derive(Debug, Deserialize)]
struct FleetQuery {
    by: Option<String>,
    window: Option<String>,
    /// Per-host statistic: mean (default), p50, p90, p99, p99.9, max.
    stat: Option<String>,
    /// Unix ms, or latest (the newest sample); default now.
    end: Option<String>,
}

/// Query of `/api/v1/outliers`.
#[derive(Debug, Deserialize)]
struct OutlierQuery {
    group: Option<String>,
}

async fn fleet_summary(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<FleetQuery>,
) -> Response {
    if query.by.is_some() || query.window.is_some() {
        return fleet_view(state, query).await;
    }
    // The fleet's lock is held for the copy only; ingest does not wait for the sorting.
    let draft = lock(&state.fleet).summary_draft(now_ms());
    let summary = draft.finish();
    Json(versioned(&summary)).into_response()
}

async fn fleet_view(state: ApiState, query: FleetQuery) -> Response {
    let by = match crate::views::parse_by(query.by.as_deref().unwrap_or("group,zone")) {
        Ok(by) => by,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let window = query.window.unwrap_or_else(|| "live".to_string());
    let stat = match query
        .stat
        .as_deref()
        .map(str::parse::<crate::views::Stat>)
        .transpose()
    {
        Ok(stat) => stat,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let end = match query.end.as_deref() {
        None => crate::views::end::EndAt::Now,
        Some("latest") => crate::views::end::EndAt::Latest,
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) => crate::views::end::EndAt::At(ms),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("end \"{ms}\" is not Unix milliseconds or latest"),
                )
            }
        },
    };
    let live = lock(&state.fleet).hosts(now_ms());
    let database = state
        .analytics
        .as_ref()
        .and_then(|a| a.settings().database.clone());
    // SQLite reads block; a read-only connection per request keeps them off the writer and the runtime.
    let result = tokio::task::spawn_blocking(move || {
        let store = match (&database, window.as_str()) {
            (Some(path), w) if w != "live" => {
                Some(crate::store::Store::open_read_only(path).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        crate::views::fleet_view(&live, store.as_ref(), by, &window, now_ms(), stat, end)
    })
    .await;
    match result {
        Ok(Ok(view)) => Json(versioned(&view)).into_response(),
        Ok(Err(message)) => error(StatusCode::BAD_REQUEST, message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("fleet view failed: {e}"),
        ),
    }
}

async fn outliers(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<OutlierQuery>,
) -> Response {
    match &state.analytics {
        Some(analytics) => Json(versioned(&analytics.outlier_report(query.group.as_deref()))).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "outliers are not computed here".to_string(),
        ),
    }
}

async fn alarms(State(state): State<ApiState>) -> Response {
    match &state.analytics {
        Some(analytics) => Json(versioned(&analytics.alarm_report())).into_response(),
        None => error(StatusCode::NOT_FOUND, "alarms are not evaluated here".to_string()),
    }
}

/// Data gaps per host (samples agents reported they could not keep), from the database.
async fn gaps(State(state): State<ApiState>) -> Response {
    let database = state
        .analytics
        .as_ref()
        .and_then(|a| a.settings().database.clone());
    let Some(path) = database else {
        return Json(std::collections::BTreeMap::<String, u64>::new()).into_response();
    };
    let result = tokio::task::spawn_blocking(move || {
        let store = crate::store::Store::open_read_only(&path).map_err(|e| e.to_string())?;
        crate::views::gap_counts(&store).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(counts)) => Json(counts).into_response(),
        Ok(Err(message)) => error(StatusCode::SERVICE_UNAVAILABLE, message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("gap count failed: {e}"),
        ),
    }
}

async fn hosts(State(state): State<ApiState>) -> Response {
    let hosts = lock(&state.fleet).hosts(now_ms());
    Json(hosts).into_response()
}

async fn host(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    let view = lock(&state.fleet).host(&name, now_ms());
    match view {
        Some(view) => Json(versioned(&view)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("unknown host {name:?}: see /api/v1/hosts"),
        ),
    }
}

async fn health(State(state): State<ApiState>) -> Response {
    let hosts = lock(&state.fleet).len() as u64;
    let storage = match state.store.as_ref().map(|store| store.health()) {
        Some(crate::store::StoreHealth::Degraded { error, .. }) => error,
        _ => "ok".to_string(),
    };
    let status = if storage == "ok" { "ok" } else { "degraded" };
    let health = Health {
        status: status.to_string(),
        hosts,
        storage,
        export: state.export.as_ref().map(|e| e.status()),
    };
    Json(versioned(&health)).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}: try /api/v1/fleet, /api/v1/hosts or /api/v1/health",
            uri.path()
        ),
    )
}

/// The API's routes over the given fleet state, without storage.
pub fn router(fleet: SharedFleet) -> Router {
    router_with(ApiState {
        fleet,
        store: None,
        analytics: None,
        export: None,
        quic_port: None,
        web: Arc::default(),
    })
}

/// The API's routes over the fleet state and storage.
pub fn router_with(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/fleet", get(fleet_summary))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{host}", get(host))
        .route("/api/v1/health", get(health))
        .route("/api/v1/outliers", get(outliers))
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/gaps", get(gaps))
        .route("/metrics", get(metrics_handler))
        .merge(crate::views::web::routes())
        .fallback(not_found)
        .with_state(state)
}

/// Serve until `shutdown` resolves, on exactly the given listener: every request passes `access` (Host
/// header, bearer token) first, and with a TLS config the connections are HTTPS.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    access: crate::views::access::Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The schema header goes outermost, so the access check's refusals carry it too.
    let app = router_with(state)
        .layer(axum::middleware::from_fn_with_state(
            access.policy.clone(),
            crate::views::access::check,
        ))
        .layer(axum::middleware::map_response(schema_header));
    match access.tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
        Some(tls) => {
            let listener = crate::views::access::TlsListener::new(listener, tls)?;
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
    }
}

/// Every JSON response says which version of `docs/API.md` its body follows, arrays and errors included.
async fn schema_header(mut response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json {
        response
            .headers_mut()
            .insert(SCHEMA_HEADER, axum::http::HeaderValue::from(SCHEMA_VERSION));
    }
    response
}

/// `GET /metrics`. The database reads run on a blocking thread.
async fn metrics_handler(
    axum::extract::State(state): axum::extract::State<ApiState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now_ms = headroom_common::clock::now_ms();
    let counts = lock(&state.fleet).counts(now_ms);
    let mut snapshot = metrics::Snapshot {
        connected_agents: counts.connected,
        hosts_up: counts.up,
        hosts_stale: counts.stale,
        hosts_down: counts.down,
        version: env!("CARGO_PKG_VERSION"),
        storage_degraded: matches!(
            state.store.as_ref().map(|s| s.health()),
            Some(crate::store::StoreHealth::Degraded { .. })
        ),
        export: state.export.as_ref().map(|e| e.status()),
        ..metrics::Snapshot::default()
    };
    snapshot.export_lag_seconds = snapshot.export.as_ref().map_or(0.0, |e| e.lag_seconds(now_ms));
    if let Some(analytics) = &state.analytics {
        let counts = analytics.scrape_counts();
        snapshot.alarm_deliveries = counts.delivered_batches;
        snapshot.alarm_delivery_failures = counts.failed_batches;
        snapshot.alarm_deliveries_dropped = counts.dropped_batches;
        snapshot.alarms_firing = counts.alarms_firing;
        snapshot.alarms_pending = counts.alarms_pending;
        snapshot.outliers_flagged = counts.outliers_flagged;
        if let Some(path) = analytics.settings().database.clone() {
            let read = tokio::task::spawn_blocking(move || {
                let bytes = metrics::database_bytes(&path);
                let lag = crate::store::read_rollup_marks(&path)
                    .ok()
                    .filter(|marks| marks.rolled_up_through_ms > 0)
                    .map(|marks| now_ms.saturating_sub(marks.rolled_up_through_ms) as f64 / 1000.0);
                (bytes, lag)
            })
            .await;
            if let Ok((bytes, lag)) = read {
                snapshot.database_bytes = bytes;
                snapshot.rollup_lag_seconds = lag;
            }
        }
    }
    snapshot.udp_receive_errors = state.quic_port.and_then(metrics::read_udp_drops);
    (
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(crate::telemetry::global(), snapshot),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fleet::{FleetSettings, HostStatus, HostView};
    use crate::live::summary::FleetSummary;
    use headroom_common::wire::{Capacity, Hello, HostFacts, MemorySample, Sample};

    fn shared_fleet() -> SharedFleet {
        let mut fleet = FleetState::new(FleetSettings::default());
        let hello = Hello {
            protocol_version: 1,
            agent_version: "0.1.0".into(),
            instance_id: 1,
            interval_ms: 1_000,
            labels: [("group".to_string(), "web".to_string())].into(),
            capacity: Capacity {
                cores: 2,
                memory_bytes: 2_000,
            },
            facts: HostFacts::default(),
        };
        let now = now_ms();
        fleet.on_hello("web-1", &hello, now);
        let sample = Sample {
            seq: 1,
            timestamp_ms: now,
            memory: Some(MemorySample {
                total_bytes: 2_000,
                used_bytes: 500,
                available_bytes: 1_500,
                ..Default::default()
            }),
            ..Default::default()
        };
        fleet.on_sample("web-1", sample, now);
        Arc::new(Mutex::new(fleet))
    }

    /// One GET over a real loopback socket with the shared client; returns the status code and the body.
    async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
        let client = headroom_common::http::Client::new(&Default::default()).unwrap();
        let response = client.get(&format!("http://{address}{path}"), &[]).await.unwrap();
        assert!(
            response
                .header("content-type")
                .is_some_and(|value| value.starts_with("application/json")),
            "{:?}",
            response.headers
        );
        assert_eq!(response.header("headroom-schema"), Some("1"), "{path}");
        (response.status, response.body)
    }

    #[tokio::test]
    async fn routes_return_json_over_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            ApiState {
                fleet: shared_fleet(),
                store: None,
                analytics: None,
                export: None,
                quic_port: None,
                web: Arc::default(),
            },
            crate::views::access::Access::loopback(address),
            async {
                let _ = stopped.await;
            },
        ));

        let (status, body) = get(address, "/api/v1/health").await;
        assert_eq!(status, 200);
        let health: Health = serde_json::from_str(&body).unwrap();
        assert_eq!(
            health,
            Health {
                status: "ok".into(),
                hosts: 1,
                storage: "ok".into(),
                export: None,
            }
        );

        let (status, body) = get(address, "/api/v1/fleet").await;
        assert_eq!(status, 200);
        let summary: FleetSummary = serde_json::from_str(&body).unwrap();
        assert_eq!(summary.hosts_up, 1);
        assert_eq!(summary.groups[0].group, "web");
        assert_eq!(
            summary.groups[0].value(crate::metrics::Metric::MemUsedPct, crate::metrics::Stat::Max),
            Some(25.0)
        );

        let (status, body) = get(address, "/api/v1/hosts").await;
        assert_eq!(status, 200);
        let hosts: Vec<HostView> = serde_json::from_str(&body).unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].host, "web-1");
        assert_eq!(hosts[0].status, HostStatus::Up);

        let (status, body) = get(address, "/api/v1/hosts/web-1").await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<HostView>(&body).unwrap().memory_bytes,
            2_000
        );

        let (status, body) = get(address, "/api/v1/hosts/nope").await;
        assert_eq!(status, 404);
        assert!(serde_json::from_str::<ApiError>(&body)
            .unwrap()
            .error
            .contains("nope"));

        let (status, body) = get(address, "/api/v2/whatever").await;
        assert_eq!(status, 404);
        let error: ApiError = serde_json::from_str(&body).unwrap();
        assert!(error.error.contains("/api/v2/whatever"), "{}", error.error);

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
