//! `sizing` and `report` with `--source prometheus=URL`: the same per-group minute sums the database keeps in
//! `group_minutes`, computed with PromQL (`query_range`, 60 s steps) from the series the collectors export
//! over remote_write, so one report covers a fleet spread over many collectors. The queries, their minute
//! alignment and the assembly into the sizing model's input are pure (`queries.rs`); this file only sends
//! them through the shared HTTP client ([`headroom_common::http`]).

pub mod queries;

use std::time::Duration;

use headroom_common::http::{check_url, BlockingClient, ClientOptions, HttpError};

use crate::sizing::{size_with_scenarios, Scenario, SizingConfig, SizingInput, SizingReport, DAY_MS};
use crate::views::end::{stale_note, EndAt};
use crate::views::report_cli::{ReportError, Window};
use queries::{
    api_time, assemble, parse_answer, range_chunks, Answers, EdgeProbe, HostQuery, Labels, MinuteQuery,
    RangeEdges, Series,
};

/// Points per series in one `query_range`: a day of minutes, well under the engines' caps (Prometheus
/// refuses more than 11,000).
const CHUNK_MINUTES: u64 = DAY_MS / 60_000;

/// A large fleet's per-host answers over a long window are big; this bounds what one answer may hold.
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// Parses `--source prometheus=URL` into the URL (without a trailing slash).
pub fn parse_source(text: &str) -> Result<String, String> {
    let url = text.strip_prefix("prometheus=").ok_or_else(|| {
        format!("--source \"{text}\": expected prometheus=URL, like prometheus=http://127.0.0.1:9090")
    })?;
    check_url(url).map_err(|e| format!("--source: {e} (like prometheus=http://127.0.0.1:9090)"))?;
    Ok(url.trim_end_matches('/').to_string())
}

/// Options of one run against a query API.
#[derive(Debug, Clone)]
pub struct PromOptions {
    /// The query API's base URL (`/api/v1/query` is appended).
    pub url: String,
    pub window: Duration,
    /// "Now", Unix ms (the caller reads the clock).
    pub now_ms: u64,
    pub end: EndAt,
    pub scenarios: Vec<Scenario>,
}

/// The query API as the report reads it.
struct QueryApi {
    url: String,
    client: BlockingClient,
}

impl QueryApi {
    fn new(url: &str) -> Result<QueryApi, ReportError> {
        let client = BlockingClient::new(&ClientOptions {
            timeout: Duration::from_secs(120),
            max_body_bytes: MAX_ANSWER_BYTES,
            ..ClientOptions::default()
        })
        .map_err(|e| ReportError::Source(format!("prometheus source {url}: {e}")))?;
        Ok(QueryApi {
            url: url.to_string(),
            client,
        })
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<Series>, ReportError> {
        let promql = query.first().map(|(_, q)| *q).unwrap_or_default();
        let url = format!("{}{path}", self.url);
        let response = self.client.get(&url, query).map_err(|error| {
            let detail = match error {
                HttpError::Request { detail, .. } => detail,
                other => other.to_string(),
            };
            ReportError::Source(format!(
                "prometheus source {url}: {detail} (check that a Prometheus-compatible query API answers at {})",
                self.url
            ))
        })?;
        // Engines answer bad queries with 4xx and the same JSON shape; its error says more than the status.
        match parse_answer(&response.body) {
            Ok(series) if response.status == 200 => Ok(series),
            answer => {
                let detail = answer
                    .err()
                    .unwrap_or_else(|| "an answer with an error status".to_string());
                Err(ReportError::Source(format!(
                    "prometheus source {url}: HTTP {}: {detail} (query: {promql}; is {} a Prometheus-compatible \
                     query API holding the series of docs/METRICS.md?)",
                    response.status, self.url
                )))
            }
        }
    }

    /// An instant query at `at_ms`.
    fn instant(&self, promql: &str, at_ms: u64) -> Result<Vec<Series>, ReportError> {
        self.get("/api/v1/query", &[("query", promql), ("time", &api_time(at_ms))])
    }

    /// A range query with a 60 s step from `first_ms` to `last_ms` (evaluation instants).
    fn range(&self, promql: &str, first_ms: u64, last_ms: u64) -> Result<Vec<Series>, ReportError> {
        let step = queries::STEP_S.to_string();
        self.get(
            "/api/v1/query_range",
            &[
                ("query", promql),
                ("start", &api_time(first_ms)),
                ("end", &api_time(last_ms)),
                ("step", &step),
                // VictoriaMetrics otherwise aligns start and end to the step for its cache.
                ("nocache", "1"),
            ],
        )
    }
}

/// The newest minute with a sample in the window ending at `end_ms`, across hosts (Unix ms).
fn newest_seen_ms(answer: &[Series]) -> Option<u64> {
    answer
        .iter()
        .filter_map(|s| s.points.last())
        .map(|(_, seconds)| (seconds * 1000.0).round() as u64)
        .max()
}

/// Whether the engine's ranges include their left end, probed on its data near `at_ms` (`EdgeProbe`); an
/// engine with no sample there has no minute to get wrong either.
fn range_edges(api: &QueryApi, at_ms: u64) -> Result<RangeEdges, ReportError> {
    let newest = api.instant(&EdgeProbe::newest_sample_query(), at_ms)?;
    let Some((labels, probe_ms)) = EdgeProbe::target(&newest) else {
        return Ok(RangeEdges::LeftOpen);
    };
    let counted = api.instant(&EdgeProbe::count_query(), probe_ms)?;
    Ok(EdgeProbe::edges(labels, &counted))
}

/// Reads the window from the query API and runs the model, as `report_cli::build_report` does from a file.
pub fn build_report(options: &PromOptions, config: &SizingConfig) -> Result<SizingReport, ReportError> {
    let api = QueryApi::new(&options.url)?;
    let labels = Labels::new(&config.group_label, &config.zone_label);
    let end_ms = match options.end {
        EndAt::Latest => {
            let until_now = Window::ending_at(options.now_ms, options.window);
            let answer = api.instant(
                &HostQuery::LastSeen.promql(
                    &labels,
                    until_now.end_ms - until_now.start_ms,
                    config.percentile,
                ),
                until_now.end_ms - 1,
            )?;
            let newest = newest_seen_ms(&answer).ok_or_else(|| {
                ReportError::Usage(format!(
                    "--end latest: {} holds no headroom samples in the {} before now (pass --end TIME)",
                    options.url,
                    humantime::format_duration(options.window)
                ))
            })?;
            newest + 1
        }
        other => other.resolve(options.now_ms, None).unwrap_or(options.now_ms),
    };
    let window = Window::ending_at(end_ms, options.window);
    let length_ms = window.end_ms - window.start_ms;

    let mut answers = Answers::default();
    for query in HostQuery::ALL {
        let answer = api.instant(
            &query.promql(&labels, length_ms, config.percentile),
            window.end_ms - 1,
        )?;
        answers.hosts.push((query, answer));
    }
    let newest_ms = answers
        .hosts
        .iter()
        .find(|(query, _)| *query == HostQuery::LastSeen)
        .and_then(|(_, answer)| newest_seen_ms(answer));

    let edges = range_edges(&api, newest_ms.unwrap_or(window.end_ms - 1))?;
    for query in MinuteQuery::ALL {
        let promql = query.promql(&labels, edges);
        let mut series = Vec::new();
        for (first_ms, last_ms) in range_chunks(window, CHUNK_MINUTES) {
            series.extend(api.range(&promql, first_ms, last_ms)?);
        }
        answers.minutes.insert(query, series);
    }
    let input = SizingInput {
        window_start_ms: window.start_ms,
        window_end_ms: window.end_ms,
        groups: assemble(&answers, &labels, window),
    };
    let mut report = size_with_scenarios(&input, config, &options.scenarios);
    if input.groups.is_empty() {
        report.notes.push(format!(
            "{} holds no headroom series in this window: is [export.remote_write] of each collector sending \
             there? (docs/METRICS.md lists the series)",
            options.url
        ));
    }
    report.notes.extend(stale_note(newest_ms, end_ms));
    report.notes.push(format!(
        "read with PromQL from {} (per-minute sums at 60 s steps, as the database's group_minutes); \
         agent-reported data gaps stay in each collector's database and are not listed",
        options.url
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_takes_prometheus_and_an_http_url() {
        assert_eq!(
            parse_source("prometheus=http://127.0.0.1:9090/").unwrap(),
            "http://127.0.0.1:9090"
        );
        let error = parse_source("victoria=http://x").unwrap_err();
        assert!(error.contains("expected prometheus=URL"), "{error}");
        let error = parse_source("prometheus=ftp://x").unwrap_err();
        assert!(error.starts_with("--source:"), "{error}");
    }

    #[test]
    fn an_unreachable_api_is_named_with_the_fix() {
        // Bind and drop to find a port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let options = PromOptions {
            url: format!("http://{addr}"),
            window: Duration::from_secs(3_600),
            now_ms: 1_700_438_400_000,
            end: EndAt::Now,
            scenarios: Vec::new(),
        };
        let error = build_report(&options, &SizingConfig::default()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, ReportError::Source(_)), "{text}");
        assert!(text.contains(&format!("http://{addr}/api/v1/query")), "{text}");
        assert!(text.contains("query API answers at"), "{text}");
    }
}
