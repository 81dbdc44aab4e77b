//! The PromQL side of `sizing`/`report --source prometheus=URL`, as pure data: the query texts, the minute
//! alignment of `query_range`, parsing the API's JSON answers, and folding the answers into the sizing
//! model's input. No IO: `mod.rs` sends the queries and hands the answers here.
//!
//! The database's `group_minutes` hold, per group and minute `[m, m + 60 s)`, the sum over the hosts that
//! reported of each host's mean over the minute. The queries are evaluated at `t = m + 60 s - 1 ms`, the
//! minute's last millisecond, with a range that then holds exactly the minute's samples for the
//! millisecond timestamps the exporter writes, the same minute the rollup uses. Engines disagree on the
//! range's left end (`RangeEdges`): Prometheus before 3.0 includes it, so `x[1m]` there would also take a
//! sample stamped at the previous minute's last millisecond and count it in two minutes.

use crate::export::series::{export_name, label_name, HOST_CORES, HOST_MEMORY, PORT_ESTABLISHED};
use crate::metrics::Metric;
use crate::sizing::{GroupInput, HostInput, MinuteSum, MINUTE_MS};
use crate::views::report_cli::{Window, UNGROUPED};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One step of `query_range`: a minute.
pub const STEP_S: u64 = 60;

/// How far before the end of a minute its evaluation instant lies: the minute's last millisecond.
const EVAL_BEFORE_END_MS: u64 = 1;

/// The labels the group and zone are read from (the `[sizing]` labels, as the exporter writes label names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub group: String,
    pub zone: String,
}

impl Labels {
    pub fn new(group_label: &str, zone_label: &str) -> Labels {
        Labels {
            group: label_name(group_label),
            zone: label_name(zone_label),
        }
    }
}

/// The evaluation instant (Unix ms) of the minute starting at `minute_start_ms`.
pub fn eval_ms(minute_start_ms: u64) -> u64 {
    minute_start_ms + MINUTE_MS - EVAL_BEFORE_END_MS
}

/// The minute an evaluation instant stands for.
pub fn minute_of_eval(eval_ms: u64) -> u64 {
    (eval_ms + EVAL_BEFORE_END_MS).saturating_sub(MINUTE_MS)
}

/// Seconds with millisecond precision, as the query API takes times.
pub fn api_time(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Which samples a range selector `x[r]` evaluated at `t` holds: Prometheus before 3.0 takes `[t - r, t]`
/// (both ends), Prometheus 3 `(t - r, t]`. `mod.rs` asks the engine which (`EdgeProbe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEdges {
    Closed,
    LeftOpen,
}

impl RangeEdges {
    /// The range that, evaluated at a minute's last millisecond (`eval_ms`), holds exactly that minute's
    /// samples `[m, m + 60 s)`.
    pub fn minute_range(self) -> String {
        let range_ms = match self {
            RangeEdges::Closed => MINUTE_MS - 1,
            RangeEdges::LeftOpen => MINUTE_MS,
        };
        format!("{range_ms}ms")
    }
}

/// Finding an engine's `RangeEdges` from its data: take one series' newest sample at or before an instant
/// (`timestamp(x)`), then count that series' samples in `x[1ms]` evaluated 1 ms after it. With both ends
/// included the sample is counted; with the left end open it is not (the series has no sample 1 ms later:
/// it is the newest one, and agents sample at most every 100 ms).
pub struct EdgeProbe;

impl EdgeProbe {
    /// The instant query that finds each series' newest sample time (as the value, in seconds).
    pub fn newest_sample_query() -> String {
        format!("timestamp({})", HOST_CORES.name)
    }

    /// The series to probe and the instant (Unix ms) to evaluate `count_query` at: 1 ms after its sample.
    /// None when the engine holds no sample before the instant asked.
    pub fn target(newest: &[Series]) -> Option<(&BTreeMap<String, String>, u64)> {
        let series = newest.iter().find(|s| !s.points.is_empty())?;
        let sample_ms = (series.points[0].1 * 1000.0).round() as u64;
        Some((&series.labels, sample_ms + 1))
    }

    /// The instant query that counts each series' samples in the millisecond before it.
    pub fn count_query() -> String {
        format!("count_over_time({}[1ms])", HOST_CORES.name)
    }

    /// The edges, from `count_query`'s answer for the series `target` chose (compared without the metric
    /// name, which engines keep or drop differently).
    pub fn edges(labels: &BTreeMap<String, String>, counted: &[Series]) -> RangeEdges {
        let without_name = |labels: &BTreeMap<String, String>| {
            labels
                .iter()
                .filter(|(name, _)| *name != "__name__")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let wanted = without_name(labels);
        let holds_the_sample = counted
            .iter()
            .any(|s| without_name(&s.labels) == wanted && s.points.iter().any(|(_, count)| *count >= 1.0));
        if holds_the_sample {
            RangeEdges::Closed
        } else {
            RangeEdges::LeftOpen
        }
    }
}

/// The per-minute group sums, each one `query_range` with a 60 s step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MinuteQuery {
    /// Busy cores: each host's mean busy ratio times its cores, summed.
    CpuBusyCores,
    /// Used memory: each host's mean, summed.
    MemoryUsedBytes,
    /// Hosts with at least one sample in the minute.
    HostsReporting,
    /// Established connections per listening port: each host's mean over the samples listing the port.
    EstablishedByPort,
}

impl MinuteQuery {
    pub const ALL: [MinuteQuery; 4] = [
        MinuteQuery::CpuBusyCores,
        MinuteQuery::MemoryUsedBytes,
        MinuteQuery::HostsReporting,
        MinuteQuery::EstablishedByPort,
    ];

    /// The PromQL. Series are first reduced to one per host (`max`/`avg by (host, group)`), so a host whose
    /// series also carry a collector's extra labels, or that moved between collectors, counts once.
    /// `edges` picks the range that holds exactly one minute on this engine.
    pub fn promql(self, labels: &Labels, edges: RangeEdges) -> String {
        let group = &labels.group;
        let cores = HOST_CORES.name;
        let minute = edges.minute_range();
        match self {
            MinuteQuery::CpuBusyCores => format!(
                "sum by ({group}) (avg by (host, {group}) (avg_over_time({busy}[{minute}])) \
                 * on (host, {group}) max by (host, {group}) (max_over_time({cores}[{minute}])))",
                busy = export_name(Metric::CpuBusyPct).name
            ),
            MinuteQuery::MemoryUsedBytes => format!(
                "sum by ({group}) (avg by (host, {group}) (avg_over_time({used}[{minute}])))",
                used = export_name(Metric::MemUsedBytes).name
            ),
            MinuteQuery::HostsReporting => {
                format!("count by ({group}) (max by (host, {group}) (count_over_time({cores}[{minute}])))")
            }
            MinuteQuery::EstablishedByPort => format!(
                "sum by ({group}, port) (avg by (host, {group}, port) (avg_over_time({port}[{minute}])))",
                port = PORT_ESTABLISHED.name
            ),
        }
    }
}

/// What is read once per host over the whole window (instant queries at the window's last millisecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostQuery {
    /// Cores at the host's newest sample in the window.
    Cores,
    /// Memory at the host's newest sample in the window.
    MemoryBytes,
    /// The first and the last minute with a sample (a one-minute subquery over the window).
    FirstSeen,
    LastSeen,
    /// The host's used memory at the peak percentile over the window.
    MemoryUsedPeak,
}

impl HostQuery {
    pub const ALL: [HostQuery; 5] = [
        HostQuery::Cores,
        HostQuery::MemoryBytes,
        HostQuery::FirstSeen,
        HostQuery::LastSeen,
        HostQuery::MemoryUsedPeak,
    ];

    /// The PromQL for a window of `window_ms` and a peak `percentile` (0–100).
    pub fn promql(self, labels: &Labels, window_ms: u64, percentile: f64) -> String {
        let (group, zone) = (&labels.group, &labels.zone);
        let by = format!("host, {group}, {zone}");
        let range = format!("{window_ms}ms");
        match self {
            HostQuery::Cores => format!("max by ({by}) (last_over_time({}[{range}]))", HOST_CORES.name),
            HostQuery::MemoryBytes => {
                format!("max by ({by}) (last_over_time({}[{range}]))", HOST_MEMORY.name)
            }
            HostQuery::FirstSeen => format!(
                "min by (host) (min_over_time(timestamp(count_over_time({}[1m]))[{range}:1m]))",
                HOST_CORES.name
            ),
            HostQuery::LastSeen => format!(
                "max by (host) (max_over_time(timestamp(count_over_time({}[1m]))[{range}:1m]))",
                HOST_CORES.name
            ),
            HostQuery::MemoryUsedPeak => format!(
                "max by (host) (quantile_over_time({}, {}[{range}]))",
                (percentile / 100.0).clamp(0.0, 1.0),
                export_name(Metric::MemUsedBytes).name
            ),
        }
    }
}

/// One series of an answer: its labels and its (Unix ms, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(u64, f64)>,
}

impl Series {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSeries>,
}

#[derive(Deserialize)]
struct ApiSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Parses a `/api/v1/query` or `/api/v1/query_range` answer (a vector or a matrix); the error is what the
/// engine said, or why the body is not an answer.
pub fn parse_answer(body: &str) -> Result<Vec<Series>, String> {
    let answer: ApiAnswer =
        serde_json::from_str(body).map_err(|e| format!("not a Prometheus API answer ({e})"))?;
    if answer.status != "success" {
        return Err(answer
            .error
            .unwrap_or_else(|| format!("status {}", answer.status)));
    }
    let data = answer.data.ok_or("the answer has no data")?;
    if data.result_type != "vector" && data.result_type != "matrix" {
        return Err(format!(
            "a {} answer where a vector or matrix was expected",
            data.result_type
        ));
    }
    let point = |(time_s, text): (f64, String)| -> Result<(u64, f64), String> {
        let value = text
            .parse::<f64>()
            .map_err(|_| format!("value \"{text}\" is not a number"))?;
        Ok(((time_s * 1000.0).round() as u64, value))
    };
    data.result
        .into_iter()
        .map(|series| {
            let points = match series.value {
                Some(single) => vec![point(single)?],
                None => series.values.into_iter().map(point).collect::<Result<_, _>>()?,
            };
            Ok(Series {
                labels: series.metric,
                points,
            })
        })
        .collect()
}

/// The `query_range` calls that cover `window`, at most `chunk_minutes` points each (engines cap the points
/// per series): (first evaluation instant, last evaluation instant), Unix ms.
pub fn range_chunks(window: Window, chunk_minutes: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut minute = window.start_ms;
    while minute < window.end_ms {
        let last_minute = (minute + (chunk_minutes.max(1) - 1) * MINUTE_MS).min(window.end_ms - MINUTE_MS);
        out.push((eval_ms(minute), eval_ms(last_minute)));
        minute = last_minute + MINUTE_MS;
    }
    out
}

/// The answers the report is built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// Every `query_range` answer of each minute query, all chunks.
    pub minutes: BTreeMap<MinuteQuery, Vec<Series>>,
    /// Each host query's answer.
    pub hosts: Vec<(HostQuery, Vec<Series>)>,
}

fn group_name(value: &str) -> String {
    if value.is_empty() {
        UNGROUPED.to_string()
    } else {
        value.to_string()
    }
}

/// The sizing model's groups from the answers: hosts seen in `window` with their capacity, zone and span,
/// and the per-minute sums. A host without cores is left out (it has no capacity series).
pub fn assemble(answers: &Answers, labels: &Labels, window: Window) -> Vec<GroupInput> {
    let value_by_host = |query: HostQuery| -> BTreeMap<String, (f64, &Series)> {
        answers
            .hosts
            .iter()
            .filter(|(q, _)| *q == query)
            .flat_map(|(_, series)| series.iter())
            .filter_map(|s| Some((s.label("host").to_string(), (s.points.last()?.1, s))))
            .collect()
    };
    let cores = value_by_host(HostQuery::Cores);
    let memory = value_by_host(HostQuery::MemoryBytes);
    let first = value_by_host(HostQuery::FirstSeen);
    let last = value_by_host(HostQuery::LastSeen);
    let peak = value_by_host(HostQuery::MemoryUsedPeak);

    let mut groups: BTreeMap<String, GroupInput> = BTreeMap::new();
    for (host, (host_cores, series)) in &cores {
        let name = group_name(series.label(&labels.group));
        let group = groups.entry(name.clone()).or_insert_with(|| GroupInput {
            name,
            hosts: Vec::new(),
            minutes: Vec::new(),
        });
        let zone = series.label(&labels.zone);
        // A subquery step is a minute: the first step that saw the host holds its first sample within the
        // preceding minute.
        let first_seen_ms = first
            .get(host)
            .map(|(s, _)| ((s * 1000.0).round() as u64).saturating_sub(MINUTE_MS))
            .unwrap_or(window.start_ms)
            .clamp(window.start_ms, window.end_ms - 1);
        let last_seen_ms = last
            .get(host)
            .map(|(s, _)| (s * 1000.0).round() as u64)
            .unwrap_or(window.end_ms - 1)
            .clamp(window.start_ms, window.end_ms - 1);
        group.hosts.push(HostInput {
            name: host.clone(),
            zone: (!zone.is_empty()).then(|| zone.to_string()),
            cores: *host_cores,
            memory_bytes: memory.get(host).map(|(v, _)| *v).unwrap_or(0.0),
            first_seen_ms,
            last_seen_ms,
            memory_used_peak_bytes: peak.get(host).map(|(v, _)| *v),
        });
    }

    let mut minutes: BTreeMap<(String, u64), MinuteSum> = BTreeMap::new();
    for (query, answer) in &answers.minutes {
        for series in answer {
            let name = group_name(series.label(&labels.group));
            let port = series.label("port").parse::<u16>().ok();
            for &(at_ms, value) in &series.points {
                let minute_start_ms = minute_of_eval(at_ms);
                if minute_start_ms < window.start_ms || minute_start_ms >= window.end_ms || !value.is_finite()
                {
                    continue;
                }
                let sum = minutes
                    .entry((name.clone(), minute_start_ms))
                    .or_insert_with(|| MinuteSum {
                        minute_start_ms,
                        cpu_busy_cores: 0.0,
                        memory_used_bytes: 0.0,
                        established_by_port: Vec::new(),
                        hosts_reporting: 0,
                    });
                match query {
                    MinuteQuery::CpuBusyCores => sum.cpu_busy_cores += value,
                    MinuteQuery::MemoryUsedBytes => sum.memory_used_bytes += value,
                    MinuteQuery::HostsReporting => sum.hosts_reporting += value.round() as u32,
                    MinuteQuery::EstablishedByPort => {
                        if let Some(port) = port {
                            match sum.established_by_port.iter_mut().find(|(p, _)| *p == port) {
                                Some((_, total)) => *total += value,
                                None => sum.established_by_port.push((port, value)),
                            }
                        }
                    }
                }
            }
        }
    }
    for ((name, _), mut sum) in minutes {
        sum.established_by_port.sort_by_key(|(port, _)| *port);
        // Minutes of a group whose hosts all lack capacity series have nowhere to go.
        if let Some(group) = groups.get_mut(&name) {
            group.minutes.push(sum);
        }
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Monday at 00:00 UTC.
    const T0: u64 = 1_700_438_400_000;

    fn window(minutes: u64) -> Window {
        Window {
            start_ms: T0,
            end_ms: T0 + minutes * MINUTE_MS,
        }
    }

    #[test]
    fn a_minute_is_evaluated_at_its_last_millisecond_so_1m_covers_exactly_it() {
        assert_eq!(eval_ms(T0), T0 + 59_999);
        assert_eq!(minute_of_eval(T0 + 59_999), T0);
        assert_eq!(api_time(T0 + 59_999), "1700438459.999");
        // Three chunks of at most two minutes over five minutes: the last one is short.
        assert_eq!(
            range_chunks(window(5), 2),
            vec![
                (eval_ms(T0), eval_ms(T0 + MINUTE_MS)),
                (eval_ms(T0 + 2 * MINUTE_MS), eval_ms(T0 + 3 * MINUTE_MS)),
                (eval_ms(T0 + 4 * MINUTE_MS), eval_ms(T0 + 4 * MINUTE_MS)),
            ]
        );
    }

    #[test]
    fn queries_group_by_the_sizing_labels_and_reduce_to_one_series_per_host() {
        let labels = Labels::new("service", "zone");
        let cpu = MinuteQuery::CpuBusyCores.promql(&labels, RangeEdges::LeftOpen);
        assert_eq!(
            cpu,
            "sum by (service) (avg by (host, service) (avg_over_time(headroom_cpu_busy_ratio[60000ms])) * on \
             (host, service) max by (host, service) (max_over_time(headroom_host_cpu_cores[60000ms])))"
        );
        let peak = HostQuery::MemoryUsedPeak.promql(&labels, 3_600_000, 99.9);
        assert_eq!(
            peak,
            "max by (host) (quantile_over_time(0.9990000000000001, headroom_memory_used_bytes[3600000ms]))"
        );
        // A label the exporter would rename is looked up under its exported name.
        assert_eq!(Labels::new("team-name", "zone").group, "team_name");
    }

    #[test]
    fn issue_9_a_minute_range_takes_no_sample_of_the_previous_minute_on_either_engine() {
        // A range evaluated at the minute's last millisecond reaches back to the minute's first millisecond
        // on both kinds of engine, never to the previous minute's last one (counted twice otherwise).
        for (edges, range_ms) in [
            (RangeEdges::Closed, MINUTE_MS - 1),
            (RangeEdges::LeftOpen, MINUTE_MS),
        ] {
            let first_held_ms = match edges {
                RangeEdges::Closed => eval_ms(T0) - range_ms,
                RangeEdges::LeftOpen => eval_ms(T0) - range_ms + 1,
            };
            assert_eq!(first_held_ms, T0, "{edges:?}");
            assert_eq!(edges.minute_range(), format!("{range_ms}ms"));
            for query in MinuteQuery::ALL {
                let text = query.promql(&Labels::new("group", "zone"), edges);
                assert!(
                    text.contains(&format!("[{range_ms}ms]")) && !text.contains("[1m]"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn the_edge_probe_reads_closed_when_the_sample_is_counted_and_left_open_when_not() {
        let newest = parse_answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"host":"a"},"value":[1700000100.5,"1700000099.999"]}]}}"#,
        )
        .unwrap();
        let (labels, at_ms) = EdgeProbe::target(&newest).unwrap();
        assert_eq!(at_ms, 1_700_000_100_000);
        let counted = |body: &str| parse_answer(body).unwrap();
        let closed = counted(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"host":"b"},"value":[1700000100,"1"]},
                {"metric":{"__name__":"headroom_host_cpu_cores","host":"a"},"value":[1700000100,"1"]}]}}"#,
        );
        assert_eq!(EdgeProbe::edges(labels, &closed), RangeEdges::Closed);
        // Another series' sample in that millisecond says nothing about this one.
        let open = counted(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"host":"b"},"value":[1700000100,"1"]}]}}"#,
        );
        assert_eq!(EdgeProbe::edges(labels, &open), RangeEdges::LeftOpen);
        assert!(EdgeProbe::target(&[]).is_none());
    }

    #[test]
    fn engine_errors_and_bad_bodies_are_reported_in_one_line() {
        let error =
            parse_answer(r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#)
                .unwrap_err();
        assert_eq!(error, "parse error at char 3");
        assert!(parse_answer("<html>")
            .unwrap_err()
            .contains("not a Prometheus API answer"));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[]}}"#;
        assert!(parse_answer(scalar).is_err());
    }

    /// Two hosts of "web" in zones a and b, one unlabelled host; answers written the way the API writes them.
    fn answers() -> Answers {
        let vector = |query: &str| parse_answer(query).unwrap();
        let at = api_time(T0 + 3 * MINUTE_MS - 1);
        let hosts = vec![
            (
                HostQuery::Cores,
                vector(&format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[
                    {{"metric":{{"host":"web-1","group":"web","zone":"a"}},"value":[{at},"4"]}},
                    {{"metric":{{"host":"web-2","group":"web","zone":"b"}},"value":[{at},"8"]}},
                    {{"metric":{{"host":"lone"}},"value":[{at},"2"]}}]}}}}"#
                )),
            ),
            (
                HostQuery::MemoryBytes,
                vector(&format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[
                    {{"metric":{{"host":"web-1","group":"web","zone":"a"}},"value":[{at},"8589934592"]}}]}}}}"#
                )),
            ),
            (
                HostQuery::FirstSeen,
                vector(&format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[
                    {{"metric":{{"host":"web-2"}},"value":[{at},"{}"]}}]}}}}"#,
                    api_time(T0 + 2 * MINUTE_MS)
                )),
            ),
            (
                HostQuery::LastSeen,
                vector(&format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[
                    {{"metric":{{"host":"web-1"}},"value":[{at},"{}"]}}]}}}}"#,
                    api_time(T0 + MINUTE_MS)
                )),
            ),
        ];
        let matrix = |series: &str| {
            parse_answer(&format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{series}]}}}}"#
            ))
            .unwrap()
        };
        let (m0, m1) = (api_time(eval_ms(T0)), api_time(eval_ms(T0 + MINUTE_MS)));
        let mut minutes = BTreeMap::new();
        minutes.insert(
            MinuteQuery::CpuBusyCores,
            matrix(&format!(
                r#"{{"metric":{{"group":"web"}},"values":[[{m0},"3.2"],[{m1},"4.2"]]}},
                   {{"metric":{{}},"values":[[{m0},"1"]]}}"#
            )),
        );
        minutes.insert(
            MinuteQuery::HostsReporting,
            matrix(&format!(
                r#"{{"metric":{{"group":"web"}},"values":[[{m0},"2"],[{m1},"2"]]}}"#
            )),
        );
        minutes.insert(
            MinuteQuery::EstablishedByPort,
            matrix(&format!(
                r#"{{"metric":{{"group":"web","port":"443"}},"values":[[{m0},"240"]]}},
                   {{"metric":{{"group":"web","port":"80"}},"values":[[{m0},"7"]]}}"#
            )),
        );
        Answers { minutes, hosts }
    }

    #[test]
    fn answers_become_groups_with_hosts_and_minute_sums() {
        let groups = assemble(&answers(), &Labels::new("group", "zone"), window(3));
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, vec![UNGROUPED, "web"]);
        let web = &groups[1];
        let hosts: Vec<(&str, Option<&str>, f64)> = web
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.zone.as_deref(), h.cores))
            .collect();
        assert_eq!(hosts, vec![("web-1", Some("a"), 4.0), ("web-2", Some("b"), 8.0)]);
        assert_eq!(web.hosts[0].memory_bytes, 8_589_934_592.0);
        // web-1 was last seen in the minute evaluated at T0 + 1 min; web-2 first in the minute before T0 + 2 min.
        assert_eq!(web.hosts[0].last_seen_ms, T0 + MINUTE_MS);
        assert_eq!(web.hosts[0].first_seen_ms, T0);
        assert_eq!(web.hosts[1].first_seen_ms, T0 + MINUTE_MS);
        assert_eq!(web.hosts[1].last_seen_ms, T0 + 3 * MINUTE_MS - 1);
        assert_eq!(web.minutes.len(), 2);
        assert_eq!(web.minutes[0].minute_start_ms, T0);
        assert_eq!(web.minutes[0].cpu_busy_cores, 3.2);
        assert_eq!(web.minutes[0].hosts_reporting, 2);
        assert_eq!(web.minutes[0].established_by_port, vec![(80, 7.0), (443, 240.0)]);
        assert_eq!(web.minutes[1].cpu_busy_cores, 4.2);
        let lone = &groups[0];
        assert_eq!(lone.hosts[0].zone, None);
        assert_eq!(lone.minutes[0].cpu_busy_cores, 1.0);
    }
}
