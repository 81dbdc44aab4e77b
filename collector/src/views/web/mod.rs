//! The operator's web view on the collector's HTTP listener: `/fleet`, `/groups/{group}`, `/hosts/{host}`,
//! `/alarms`, and the full sizing report at `/report.html` and `/report.csv`.
//!
//! Every page is one model (`model.rs`, pure) rendered either as HTML (`html.rs`) or as JSON, chosen by
//! `Accept: application/json` or a `.json` suffix on the same path, so both forms come from the same code.
//! This file is the edge: it reads the clock, takes the locks, runs database reads on blocking threads, and
//! records the fleet page's last hour (`history.rs`) and the sizing report in the background.

pub mod chart;
pub mod history;
pub mod html;
pub mod model;

use crate::background::Lane;
use crate::live::fleet::FleetState;
use crate::metrics::{metrics_in, Place};
use crate::sizing::ReportFormat;
use crate::sizing::{SizingConfig, SizingReport};
use crate::store::kept_stats::KeptHostStats;
use crate::store::Metric;
use axum::extract::FromRef;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use headroom_common::clock::now_ms;
use history::FleetHistory;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The fleet page keeps one hour of history per row.
const HISTORY_WINDOW_MS: u64 = 3_600_000;

/// How early a refresh tick may come and still refresh ([`WebState::sizing_stale`]).
const REFRESH_SLACK_MS: u64 = 1_000;

/// How the web view runs.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// One fleet-history point per this long.
    pub history_step_ms: u64,
    /// The sizing report is recomputed in the background this often.
    pub sizing_refresh_ms: u64,
    /// The window sizing reads (the peak percentile is taken over it).
    pub sizing_window: Duration,
    pub sizing: SizingConfig,
    /// Where the certificate registry lives, for the host page.
    pub pki_dir: Option<PathBuf>,
    /// A line shown first on the fleet page.
    pub notice: Option<String>,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            history_step_ms: 60_000,
            sizing_refresh_ms: 60_000,
            sizing_window: Duration::from_secs(86_400),
            sizing: SizingConfig::default(),
            pki_dir: None,
            notice: None,
        }
    }
}

/// What the pages read: the live fleet, the analytics (outliers, alarms, the database for sizing) and the
/// web view's own state. The HTTP listener's state gives one (`FromRef`), so the pages know nothing of the
/// JSON API's state.
#[derive(Clone)]
pub struct WebContext {
    pub fleet: Arc<Mutex<FleetState>>,
    /// Absent in unit tests.
    pub analytics: Option<Arc<crate::analytics::Analytics>>,
    pub web: Arc<WebState>,
}

/// The web view's state: its settings, the fleet history and the latest sizing report.
#[derive(Debug)]
pub struct WebState {
    settings: WebSettings,
    history: Mutex<FleetHistory>,
    sizing: Mutex<Option<(u64, Arc<SizingReport>)>>,
    /// Each host's memory over the sizing window, kept between refreshes.
    kept_memory: Mutex<Option<KeptHostStats>>,
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl WebState {
    pub fn new(settings: WebSettings) -> Arc<WebState> {
        Arc::new(WebState {
            history: Mutex::new(FleetHistory::new(settings.history_step_ms, HISTORY_WINDOW_MS)),
            settings,
            sizing: Mutex::new(None),
            kept_memory: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &WebSettings {
        &self.settings
    }

    fn sizing_window_text(&self) -> String {
        humantime::format_duration(self.settings.sizing_window).to_string()
    }

    fn cached_sizing(&self) -> Option<Arc<SizingReport>> {
        guard(&self.sizing).as_ref().map(|(_, report)| report.clone())
    }

    /// Whether the sizing report is due again at `now_ms`. A tick of the refresh task that comes up to
    /// [`REFRESH_SLACK_MS`] before the report is a period old counts: the task's ticks are a period apart on
    /// the monotonic clock and reports are stamped with the wall clock, so without the slack a tick came a
    /// few milliseconds early and every other one refreshed (every two minutes at the default minute).
    fn sizing_stale(&self, now_ms: u64) -> bool {
        guard(&self.sizing)
            .as_ref()
            .is_none_or(|(at, _)| now_ms + REFRESH_SLACK_MS >= at + self.settings.sizing_refresh_ms)
    }
}

impl Default for WebState {
    fn default() -> Self {
        let settings = WebSettings::default();
        WebState {
            history: Mutex::new(FleetHistory::new(settings.history_step_ms, HISTORY_WINDOW_MS)),
            settings,
            sizing: Mutex::new(None),
            kept_memory: Mutex::new(None),
        }
    }
}

/// Runs the sizing model over the window ending now, from the database (a read-only connection).
fn compute_sizing(state: &WebContext, window: Duration, now_ms: u64) -> Result<SizingReport, String> {
    compute_sizing_with(state, window, now_ms, None)
}

/// [`compute_sizing`], each host's memory from `kept` when given (the window then starts on the hour).
fn compute_sizing_with(
    state: &WebContext,
    window: Duration,
    now_ms: u64,
    kept: Option<&mut KeptHostStats>,
) -> Result<SizingReport, String> {
    let database = state
        .analytics
        .as_ref()
        .and_then(|a| a.settings().database.clone())
        .ok_or("sizing needs the collector database")?;
    let options = crate::views::report_cli::ReportOptions {
        db: database,
        window,
        now_ms,
        end: crate::views::end::EndAt::Now,
        scenarios: Vec::new(),
        progress: false,
        rolled_up_only: true,
    };
    let config = &state.web.settings.sizing;
    match kept {
        Some(kept) => crate::views::report_cli::build_report_kept(&options, config, kept),
        None => crate::views::report_cli::build_report(&options, config),
    }
    .map_err(|e| e.to_string())
}

/// Recomputes the cached sizing report when it is stale; returns it or why not.
async fn refresh_sizing(state: &WebContext) -> Result<Arc<SizingReport>, String> {
    let now = now_ms();
    if !state.web.sizing_stale(now) {
        if let Some(report) = state.web.cached_sizing() {
            return Ok(report);
        }
    }
    let for_task = state.clone();
    let window = state.web.settings.sizing_window;
    let mut kept = guard(&state.web.kept_memory)
        .take()
        .unwrap_or_else(|| KeptHostStats::new(Metric::MemUsedBytes));
    // Refreshed once a minute whether anyone looks or not: at low priority, so ingest keeps the CPU, and
    // reading each host's memory only from the rollups added since the last refresh.
    let (report, kept) = crate::background::run(move || {
        let report = compute_sizing_with(&for_task, window, now, Some(&mut kept));
        (report, kept)
    })
    .await
    .ok_or("sizing failed: the report's computation panicked")?;
    *guard(&state.web.kept_memory) = Some(kept);
    let report = Arc::new(report?);
    *guard(&state.web.sizing) = Some((now, report.clone()));
    Ok(report)
}

/// Records the fleet history every step and refreshes the sizing report, until `cancel`.
pub async fn run(state: WebContext, cancel: CancellationToken) {
    let tick_ms = state
        .web
        .settings
        .history_step_ms
        .min(state.web.settings.sizing_refresh_ms)
        .clamp(1_000, 60_000);
    let mut ticker = tokio::time::interval(Duration::from_millis(tick_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = now_ms();
        if guard(&state.web.history).due(now) {
            // Copied under the fleet's lock, sorted and ranked on the low-priority passes thread: done whole on
            // this task at 20,000 hosts, it held a runtime thread and the lock ingest waits for once a minute,
            // most of the 150 ms that held every acknowledgement (issue 12).
            let draft = guard(&state.fleet).summary_draft(now);
            match crate::background::run_on(Lane::Passes, move || draft.finish()).await {
                Some(summary) => guard(&state.web.history).record(&summary, now),
                None => tracing::warn!("the fleet summary for the web view's history failed"),
            }
        }
        if state.analytics.is_some() && state.web.sizing_stale(now) {
            if let Err(error) = refresh_sizing(&state).await {
                tracing::debug!(%error, "sizing for the web view not computed");
            }
        }
    }
}

/// Whether the request asked for JSON: a `.json` suffix (already stripped into `suffix`) or the Accept
/// header naming `application/json` before any HTML type.
pub fn wants_json(headers: &HeaderMap, suffix: bool) -> bool {
    if suffix {
        return true;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = accept.find("application/json");
    let html = accept.find("text/html");
    match (json, html) {
        (Some(j), Some(h)) => j < h,
        (Some(_), None) => true,
        _ => false,
    }
}

/// `name` without a trailing `.json`, and whether it had one.
fn strip_json(name: &str) -> (&str, bool) {
    match name.strip_suffix(".json") {
        Some(stem) => (stem, true),
        None => (name, false),
    }
}

/// The page as JSON or HTML; pages are never cached (they describe now).
fn respond<T: Serialize>(json: bool, page: &T, render: fn(&T) -> String) -> Response {
    let no_store = (header::CACHE_CONTROL, "no-store");
    if json {
        let body = serde_json::to_string(&headroom_common::schema::versioned(page))
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        ([(header::CONTENT_TYPE, "application/json"), no_store], body).into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                no_store,
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
                     form-action 'none'; frame-ancestors 'none'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            render(page),
        )
            .into_response()
    }
}

fn not_found(json: bool, message: String) -> Response {
    if json {
        (
            StatusCode::NOT_FOUND,
            axum::Json(crate::views::render::ApiError { error: message }),
        )
            .into_response()
    } else {
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang="en" { head { meta charset="utf-8"; title { "Not found · headroom" } link rel="icon" href="data:,"; }
            body { main { h1 { "Not found" } p { (message) } p { a href="/fleet" { "Back to the fleet" } } } } }
        };
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page.into_string(),
        )
            .into_response()
    }
}

fn reports(state: &WebContext) -> (crate::analytics::OutlierReport, crate::analytics::AlarmReport) {
    match &state.analytics {
        Some(analytics) => (analytics.outlier_report(None), analytics.alarm_report()),
        None => Default::default(),
    }
}

/// The fleet page's model at `now_ms` (also what the benchmark renders).
pub fn fleet_model(state: &WebContext, now: u64) -> model::FleetPage {
    let hosts = guard(&state.fleet).hosts(now);
    let (outliers, alarms) = reports(state);
    let history = guard(&state.web.history).clone();
    let sizing = state.web.cached_sizing();
    model::fleet_page(
        &hosts,
        model::FleetInputs {
            outliers: &outliers,
            alarms: &alarms,
            history: &history,
            sizing: sizing.as_deref(),
            sizing_window: state.web.sizing_window_text(),
            notice: state.web.settings.notice.clone(),
        },
        now,
    )
}

async fn fleet_json(State(state): State<WebContext>) -> Response {
    respond(true, &fleet_model(&state, now_ms()), html::fleet)
}

async fn fleet(State(state): State<WebContext>, headers: HeaderMap) -> Response {
    respond(
        wants_json(&headers, false),
        &fleet_model(&state, now_ms()),
        html::fleet,
    )
}

#[derive(Debug, Deserialize)]
struct SortQuery {
    sort: Option<String>,
    order: Option<String>,
}

async fn group(
    State(state): State<WebContext>,
    Path(name): Path<String>,
    Query(query): Query<SortQuery>,
    headers: HeaderMap,
) -> Response {
    let (name, suffix) = strip_json(&name);
    let json = wants_json(&headers, suffix);
    let now = now_ms();
    let hosts = guard(&state.fleet).hosts(now);
    if !hosts.iter().any(|h| h.group == name) {
        return not_found(json, format!("no host in group {name:?}: see /fleet"));
    }
    let (outliers, alarms) = reports(&state);
    let sizing = if state.analytics.is_some() {
        refresh_sizing(&state).await.map(Some)
    } else {
        Ok(None)
    };
    let page = model::group_page(
        name,
        &hosts,
        model::GroupInputs {
            outliers: &outliers,
            alarms: &alarms,
            sizing: sizing.as_ref().map(|s| s.as_deref()).map_err(Clone::clone),
            sizing_window: state.web.sizing_window_text(),
        },
        model::parse_sort(query.sort.as_deref(), query.order.as_deref()),
        now,
    );
    respond(json, &page, html::group)
}

/// What the host page reads from the database and the registry, on a blocking thread.
fn host_rows(
    state: &WebContext,
    host: &str,
    now: u64,
) -> (
    Vec<crate::store::history::RecentPoint>,
    Vec<crate::store::history::HourPoint>,
    Vec<crate::store::query::StoredGap>,
    Vec<crate::identity::registry::CertRecord>,
) {
    const DAY_MS: u64 = 86_400_000;
    let certificates = state
        .web
        .settings
        .pki_dir
        .as_ref()
        .and_then(|dir| crate::identity::registry::Registry::in_dir(dir).list().ok())
        .map(|list| list.certs)
        .unwrap_or_default();
    let database = state
        .analytics
        .as_ref()
        .and_then(|a| a.settings().database.clone());
    let Some(store) = database.and_then(|path| crate::store::Store::open_read_only(&path).ok()) else {
        return (Vec::new(), Vec::new(), Vec::new(), certificates);
    };
    let recent = store
        .host_recent(
            host,
            now.saturating_sub(HISTORY_WINDOW_MS),
            &metrics_in(Place::HostLastHour),
        )
        .unwrap_or_default();
    let hours = store
        .host_hours(
            host,
            now.saturating_sub(30 * DAY_MS),
            now,
            &metrics_in(Place::HostDays),
        )
        .unwrap_or_default();
    let gaps = store
        .gaps(now.saturating_sub(30 * DAY_MS), now.saturating_add(1))
        .unwrap_or_default()
        .into_iter()
        .filter(|g| g.host == host)
        .collect();
    (recent, hours, gaps, certificates)
}

/// The host page's model (also what the benchmark renders); `None` for an unknown host.
pub fn host_model(state: &WebContext, name: &str, now: u64) -> Option<model::HostPage> {
    let view = guard(&state.fleet).host(name, now)?;
    let (outliers, alarms) = reports(state);
    let (last_hour, last_30_days, gaps, certificates) = host_rows(state, name, now);
    Some(model::host_page(
        view,
        model::HostInputs {
            outliers: &outliers,
            alarms: &alarms,
            last_hour,
            last_30_days,
            gaps,
            certificates,
        },
        now,
    ))
}

async fn host(State(state): State<WebContext>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (name, suffix) = strip_json(&name);
    let json = wants_json(&headers, suffix);
    let name = name.to_string();
    let for_task = state.clone();
    let lookup = name.clone();
    let page = tokio::task::spawn_blocking(move || host_model(&for_task, &lookup, now_ms())).await;
    match page {
        Ok(Some(page)) => respond(json, &page, html::host),
        Ok(None) => not_found(json, format!("unknown host {name:?}: see /fleet")),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("host page failed: {e}"),
        )
            .into_response(),
    }
}

/// The alarms page's model: resolved alarms and gaps of the last day come from the database.
fn alarms_model(state: &WebContext, now: u64) -> model::AlarmsPage {
    const DAY_MS: u64 = 86_400_000;
    let (outliers, alarms) = reports(state);
    let database = state
        .analytics
        .as_ref()
        .and_then(|a| a.settings().database.clone());
    let store = database.and_then(|path| crate::store::Store::open_read_only(&path).ok());
    let from = now.saturating_sub(DAY_MS);
    let gaps = store
        .as_ref()
        .and_then(|s| s.gaps(from, now.saturating_add(1)).ok())
        .unwrap_or_default();
    let resolved = store
        .as_ref()
        .and_then(|s| s.alarm_history(from, now.saturating_add(1)).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|event| event.status == "resolved")
        .map(|event| model::ResolvedAlarm {
            rule: event.rule,
            severity: event.severity,
            subject: event.subject,
            summary: event.summary,
            runbook: event.runbook,
            fired_ms: event.fired_ms,
            resolved_ms: event.at_ms,
        })
        .rev()
        .collect();
    model::alarms_page(&alarms, &outliers, resolved, &gaps, now)
}

async fn alarms_page(State(state): State<WebContext>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let json = wants_json(&headers, uri.path().ends_with(".json"));
    let for_task = state.clone();
    match tokio::task::spawn_blocking(move || alarms_model(&for_task, now_ms())).await {
        Ok(page) => respond(json, &page, html::alarms),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("alarms page failed: {e}"),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    window: Option<String>,
}

/// The full sizing report over `?window=` (default: the web view's sizing window), as HTML or CSV.
async fn report(
    State(state): State<WebContext>,
    Query(query): Query<ReportQuery>,
    uri: axum::http::Uri,
) -> Response {
    let format = if uri.path().ends_with(".csv") {
        ReportFormat::Csv
    } else {
        ReportFormat::Html
    };
    let window = match query.window.as_deref().map(humantime::parse_duration) {
        None => state.web.settings.sizing_window,
        Some(Ok(window)) if window >= Duration::from_secs(60) => window,
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "window: give a duration of at least a minute, like 7d or 24h".to_string(),
            )
                .into_response()
        }
    };
    let for_task = state.clone();
    let now = now_ms();
    let built = tokio::task::spawn_blocking(move || compute_sizing(&for_task, window, now)).await;
    let report = match built {
        Ok(Ok(report)) => report,
        Ok(Err(message)) => return (StatusCode::SERVICE_UNAVAILABLE, message).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("report failed: {e}")).into_response(),
    };
    let content_type = match format {
        ReportFormat::Csv => "text/csv; charset=utf-8",
        _ => "text/html; charset=utf-8",
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        crate::sizing::render(&report, format),
    )
        .into_response()
}

/// The web view's routes, for a router whose state gives a [`WebContext`].
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    WebContext: FromRef<S>,
{
    Router::new()
        .route("/", get(|| async { Redirect::to("/fleet") }))
        .route("/fleet", get(fleet))
        .route("/fleet.json", get(fleet_json))
        .route("/groups/{group}", get(group))
        .route("/hosts/{host}", get(host))
        .route("/alarms", get(alarms_page))
        .route("/alarms.json", get(alarms_page))
        .route("/report.html", get(report))
        .route("/report.csv", get(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_chosen_by_suffix_or_accept_header() {
        let mut headers = HeaderMap::new();
        assert!(!wants_json(&headers, false));
        assert!(wants_json(&headers, true));
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(wants_json(&headers, false));
        headers.insert(
            header::ACCEPT,
            "text/html,application/xhtml+xml,application/json;q=0.9"
                .parse()
                .unwrap(),
        );
        assert!(!wants_json(&headers, false));
        assert_eq!(strip_json("web.json"), ("web", true));
        assert_eq!(strip_json("web"), ("web", false));
    }

    #[test]
    fn issue_12_a_tick_a_little_early_still_refreshes_the_sizing() {
        let state = WebState::new(WebSettings::default());
        let at = 1_700_000_000_000;
        assert!(state.sizing_stale(at), "no report yet");
        let report = crate::sizing::size_with_scenarios(
            &crate::sizing::SizingInput {
                window_start_ms: at - 3_600_000,
                window_end_ms: at,
                groups: Vec::new(),
            },
            &SizingConfig::default(),
            &[],
        );
        *guard(&state.sizing) = Some((at, Arc::new(report)));
        let period = state.settings.sizing_refresh_ms;
        assert!(!state.sizing_stale(at + period / 2));
        assert!(!state.sizing_stale(at + period - REFRESH_SLACK_MS - 1));
        // The next tick, a few milliseconds before the report is a period old by the wall clock.
        assert!(state.sizing_stale(at + period - 3));
        assert!(state.sizing_stale(at + period));
    }
}
