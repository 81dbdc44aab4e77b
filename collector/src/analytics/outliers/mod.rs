//! Hosts that behave unlike their peers: a robust per-group score for every metric of a window, and a
//! tracker that flags a (host, metric) only when it is outlying in k of the last n windows. Pure: windows and
//! their end times come in as arguments.
//!
//! The score of a value x in a group is |x − median| / spread, where
//! spread = max(1.4826 × MAD, relative_floor × |median|, the metric's absolute floor).
//! 1.4826 × MAD estimates the standard deviation of normally distributed peers without being dragged by the
//! outliers themselves. The two floors exist for flat groups: when most peers report the same value (MAD = 0,
//! e.g. 0 listen overflows/s everywhere) a plain MAD score would divide by zero, and a tiny MAD would flag a
//! host that differs by a hair. The relative floor (5 % of the median by default) says that a 5 × 5 % = 25 %
//! difference from the median is the least that can count; the absolute floor (the catalogue's `outlier_floor`)
//! is the smallest difference an operator cares about when the median is near zero, e.g. 1 retransmit/s.
//!
//! A group whose values of a metric form two clusters with a wide gap (a primary and its replicas, a
//! leader and followers) would otherwise flag one cluster forever. [`two_clusters`] splits the sorted values
//! at the widest gap that leaves each side at least max(2, n/4) hosts, and calls the group bimodal when that
//! gap is at least [`BIMODAL_SEPARATION`] times the wider cluster's own spread (with the same floors). A
//! bimodal metric is scored within each cluster when both have `min_group_hosts`, and otherwise not scored,
//! with the reason in `skipped` (shown by `headroom-collector outliers`). A lone host far from its peers is
//! never a cluster (a side needs two hosts), so it is still scored, and flagged.
//!
//! The default threshold is a score of 5, not the 3.5 often quoted for modified z-scores: that figure assumes
//! normally distributed values, and host metrics are skewed and heavy-tailed (traffic, connection counts), so
//! 3.5 flags ordinary busy hosts. A flag is acted on by a person; 5 spreads is a difference nobody argues with.

pub use crate::metrics::Metric;
use headroom_common::derive::HostMetrics;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Scale that turns a median absolute deviation into a standard deviation for normal data.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// One value per [`Metric`], absent where the host does not have it. A fixed array of plain floats (NaN for
/// absent) keeps a 10,000-host window free of per-host maps and a sample ring at 8 bytes per metric per reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValues([f64; Metric::COUNT]);

impl Default for MetricValues {
    fn default() -> Self {
        MetricValues([f64::NAN; Metric::COUNT])
    }
}

impl MetricValues {
    pub fn get(&self, metric: Metric) -> Option<f64> {
        let value = self.0[metric.index()];
        (!value.is_nan()).then_some(value)
    }

    pub fn set(&mut self, metric: Metric, value: Option<f64>) {
        // A NaN or infinity would poison a median; it is treated as absent.
        self.0[metric.index()] = value.filter(|v| v.is_finite()).unwrap_or(f64::NAN);
    }

    pub fn from_metrics(metrics: &HostMetrics) -> MetricValues {
        let mut values = MetricValues::default();
        for metric in Metric::ALL {
            values.set(metric, metric.value(metrics));
        }
        values
    }

    /// Per-metric mean of several readings (e.g. one window's samples); a metric no reading has stays absent.
    pub fn mean_of<'a>(readings: impl IntoIterator<Item = &'a MetricValues>) -> MetricValues {
        let mut sums = [(0.0_f64, 0_u32); Metric::COUNT];
        for reading in readings {
            for (sum, &value) in sums.iter_mut().zip(reading.0.iter()) {
                if !value.is_nan() {
                    sum.0 += value;
                    sum.1 += 1;
                }
            }
        }
        let mut out = MetricValues::default();
        for (slot, (sum, count)) in out.0.iter_mut().zip(sums) {
            if count > 0 {
                *slot = sum / f64::from(count);
            }
        }
        out
    }
}

/// One host's values for one window, with its peer group.
#[derive(Debug, Clone, PartialEq)]
pub struct HostWindow {
    pub host: String,
    /// Value of the peer label ("group" by default); hosts without it form the group "".
    pub group: String,
    pub values: MetricValues,
}

/// Scoring and flagging settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierSettings {
    /// Label whose value makes hosts peers.
    pub peer_label: String,
    /// Groups with fewer hosts than this are not scored.
    pub min_group_hosts: usize,
    /// Score at or above which a host is outlying in a window.
    pub threshold_score: f64,
    /// The spread is at least this share of |median|.
    pub relative_floor: f64,
    /// How many recent windows are remembered per (host, metric); at most 32.
    pub window_count: u32,
    /// Flag when outlying in at least this many of the remembered windows.
    pub flag_windows: u32,
    /// Clear a flag after this many clean windows in a row.
    pub clear_windows: u32,
    /// Length of one window, only for wording ("7 of last 10 min").
    pub window_ms: u64,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            peer_label: "group".to_string(),
            min_group_hosts: 5,
            threshold_score: 5.0,
            relative_floor: 0.05,
            window_count: 10,
            flag_windows: 5,
            clear_windows: 5,
            window_ms: 60_000,
        }
    }
}

/// Centre and spread of one metric in one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupStats {
    pub median: f64,
    /// Median absolute deviation, unscaled.
    pub mad: f64,
    /// The denominator of the score: the largest of 1.4826 × MAD and the two floors.
    pub spread: f64,
}

/// A group (or one metric of it) that was not scored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedGroup {
    pub group: String,
    /// `None` when the whole group was skipped.
    pub metric: Option<Metric>,
    pub hosts: usize,
    pub reason: String,
}

/// One host's score for one metric in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub value: f64,
    pub stats: GroupStats,
    pub score: f64,
}

/// Scores of every host of a window, in the order of the input, plus the groups that were skipped.
#[derive(Debug, Clone, Default)]
pub struct WindowScores {
    /// Per input host, per metric; `None` where not scored.
    pub scores: Vec<[Option<Score>; Metric::COUNT]>,
    pub groups: BTreeMap<String, [Option<GroupStats>; Metric::COUNT]>,
    pub skipped: Vec<SkippedGroup>,
}

/// Median, MAD and floored spread of a group's values for one metric; `scratch` is reused across calls.
pub fn group_stats(
    metric: Metric,
    values: &[f64],
    relative_floor: f64,
    scratch: &mut Vec<f64>,
) -> GroupStats {
    scratch.clear();
    scratch.extend_from_slice(values);
    let median = headroom_common::percentile::median(scratch).unwrap_or(0.0);
    for value in scratch.iter_mut() {
        *value = (*value - median).abs();
    }
    let mad = headroom_common::percentile::median(scratch).unwrap_or(0.0);
    let spread = (MAD_TO_SIGMA * mad)
        .max(relative_floor * median.abs())
        .max(metric.outlier_floor().unwrap_or(0.0));
    GroupStats { median, mad, spread }
}

/// A gap between two clusters at least this many times the wider cluster's spread makes a group bimodal.
pub const BIMODAL_SEPARATION: f64 = 6.0;

/// Two clusters of a group's values for one metric, split at the widest gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clusters {
    /// Values at or below this belong to the low cluster.
    pub split: f64,
    pub low: GroupStats,
    pub low_hosts: usize,
    pub high: GroupStats,
    pub high_hosts: usize,
    pub gap: f64,
}

/// The two clusters of `values` when the group is bimodal for `metric`, else `None`.
pub fn two_clusters(metric: Metric, values: &[f64], relative_floor: f64) -> Option<Clusters> {
    let n = values.len();
    let min_side = 2.max(n.div_ceil(4));
    if n < 2 * min_side {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (at, gap) = (min_side - 1..n - min_side)
        .map(|i| (i, sorted[i + 1] - sorted[i]))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let mut scratch = Vec::new();
    let low = group_stats(metric, &sorted[..=at], relative_floor, &mut scratch);
    let high = group_stats(metric, &sorted[at + 1..], relative_floor, &mut scratch);
    (gap > 0.0 && gap >= BIMODAL_SEPARATION * low.spread.max(high.spread)).then_some(Clusters {
        split: sorted[at],
        low,
        low_hosts: at + 1,
        high,
        high_hosts: n - at - 1,
        gap,
    })
}

/// Scores every host of one window against its group, per metric.
pub fn score_window(hosts: &[HostWindow], settings: &OutlierSettings) -> WindowScores {
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, host) in hosts.iter().enumerate() {
        by_group.entry(host.group.as_str()).or_default().push(index);
    }
    let mut out = WindowScores {
        scores: vec![[None; Metric::COUNT]; hosts.len()],
        ..WindowScores::default()
    };
    let mut values = Vec::new();
    let mut scratch = Vec::new();
    for (group, members) in by_group {
        if members.len() < settings.min_group_hosts {
            out.skipped.push(SkippedGroup {
                group: group.to_string(),
                metric: None,
                hosts: members.len(),
                reason: format!(
                    "{} hosts, fewer than {} peers needed for a robust median",
                    members.len(),
                    settings.min_group_hosts
                ),
            });
            continue;
        }
        let mut group_stats_row = [None; Metric::COUNT];
        for metric in Metric::outlier_metrics() {
            values.clear();
            values.extend(members.iter().filter_map(|&i| hosts[i].values.get(metric)));
            if values.is_empty() {
                continue;
            }
            if values.len() < settings.min_group_hosts {
                out.skipped.push(SkippedGroup {
                    group: group.to_string(),
                    metric: Some(metric),
                    hosts: values.len(),
                    reason: format!(
                        "only {} hosts report {metric}, fewer than {} needed",
                        values.len(),
                        settings.min_group_hosts
                    ),
                });
                continue;
            }
            let stats = group_stats(metric, &values, settings.relative_floor, &mut scratch);
            group_stats_row[metric.index()] = Some(stats);
            let clusters = two_clusters(metric, &values, settings.relative_floor);
            if let Some(c) = clusters {
                if c.low_hosts.min(c.high_hosts) < settings.min_group_hosts {
                    out.skipped.push(SkippedGroup {
                        group: group.to_string(),
                        metric: Some(metric),
                        hosts: values.len(),
                        reason: format!(
                            "{metric} forms two clusters ({} hosts around {}, {} around {}; gap {}): too few \
                             hosts in a cluster to score within it (need {} each)",
                            c.low_hosts,
                            metric.format_value(c.low.median),
                            c.high_hosts,
                            metric.format_value(c.high.median),
                            metric.format_value(c.gap),
                            settings.min_group_hosts
                        ),
                    });
                    continue;
                }
            }
            for &i in &members {
                if let Some(value) = hosts[i].values.get(metric) {
                    // Within its own cluster when the group is bimodal.
                    let stats = match clusters {
                        Some(c) if value <= c.split => c.low,
                        Some(c) => c.high,
                        None => stats,
                    };
                    let score = (value - stats.median).abs() / stats.spread;
                    out.scores[i][metric.index()] = Some(Score { value, stats, score });
                }
            }
        }
        out.groups.insert(group.to_string(), group_stats_row);
    }
    out
}

/// A flagged (host, metric), with what is needed to explain it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlier {
    pub host: String,
    pub group: String,
    pub metric: Metric,
    /// The latest scored value and its group's statistics.
    pub value: f64,
    pub group_median: f64,
    pub mad: f64,
    pub spread: f64,
    pub score: f64,
    /// How many of the remembered windows were outlying.
    pub outlying_windows: u32,
    pub window_count: u32,
    /// End of the earliest outlying window when the flag was raised.
    pub since_ms: u64,
    #[serde(skip)]
    window_ms: u64,
}

impl fmt::Display for Outlier {
    /// `web-17 cpu_busy_pct 92.0% vs group median 31.0% (MAD 4.1) score 14.9, 7 of last 10 min, since …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let period = if self.window_ms == 60_000 {
            "min"
        } else {
            "windows"
        };
        write!(
            f,
            "{} {} {} vs group median {} (MAD {}",
            self.host,
            self.metric,
            self.metric.format_value(self.value),
            self.metric.format_value(self.group_median),
            format_plain(self.mad),
        )?;
        if self.spread > MAD_TO_SIGMA * self.mad * (1.0 + 1e-9) {
            write!(f, ", floor {}", format_plain(self.spread))?;
        }
        write!(
            f,
            ") score {:.1}, {} of last {} {period}, since {}",
            self.score,
            self.outlying_windows,
            self.window_count,
            rfc3339_seconds(self.since_ms)
        )
    }
}

fn format_plain(value: f64) -> String {
    if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Unix milliseconds as an RFC 3339 UTC time to the second.
pub fn rfc3339_seconds(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Memory of one (host, metric): the last verdicts as bits, newest in bit 0.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    outlying_bits: u32,
    /// End times are not kept per window; the end of each window is derived from `last_window_ms`.
    flagged: bool,
    clean_run: u32,
    since_ms: u64,
    latest: Option<Score>,
}

#[derive(Debug, Clone)]
struct HostTrack {
    group: String,
    /// One per scored metric (`Metric::outlier_metrics`, in that order): only those can ever be flagged,
    /// so a host does not carry tracks of the others (issue 12).
    tracks: Box<[Track]>,
    /// Windows in a row in which the host was absent; the host is forgotten after `window_count` of them.
    absent_windows: u32,
}

/// What one window changed.
#[derive(Debug, Clone, Default)]
pub struct WindowReport {
    pub newly_flagged: Vec<Outlier>,
    /// (host, metric) whose flag cleared in this window.
    pub cleared: Vec<(String, Metric)>,
    pub skipped: Vec<SkippedGroup>,
    /// Host-metric pairs scored in this window, and how many of them were outlying.
    pub scored: usize,
    pub outlying: usize,
}

/// Flags a (host, metric) when outlying in `flag_windows` of the last `window_count` windows and clears it
/// after `clear_windows` clean windows in a row.
///
/// Clearing needs a clean run rather than "fewer than k of n": a host that flaps in and out every other
/// minute stays flagged, and a host that recovered clears as promptly as it was flagged.
#[derive(Debug, Clone)]
pub struct OutlierTracker {
    settings: OutlierSettings,
    hosts: HashMap<String, HostTrack>,
    last_window_ms: Option<u64>,
    /// The scored metrics, in track order.
    scored: Vec<Metric>,
}

impl OutlierTracker {
    /// `settings.window_count` is clamped to 1..=32 and the k values to 1..=window_count.
    pub fn new(mut settings: OutlierSettings) -> Self {
        settings.window_count = settings.window_count.clamp(1, 32);
        settings.flag_windows = settings.flag_windows.clamp(1, settings.window_count);
        settings.clear_windows = settings.clear_windows.clamp(1, settings.window_count);
        OutlierTracker {
            settings,
            hosts: HashMap::new(),
            last_window_ms: None,
            scored: Metric::outlier_metrics().collect(),
        }
    }

    pub fn settings(&self) -> &OutlierSettings {
        &self.settings
    }

    /// Scores one window (ending at `window_end_ms`) and updates every (host, metric) verdict.
    ///
    /// A host or metric missing from the window, or in a skipped group, counts as a clean window: silence
    /// is the business of the missing-data alarm, not of the peer comparison.
    pub fn observe(&mut self, hosts: &[HostWindow], window_end_ms: u64) -> WindowReport {
        let scores = score_window(hosts, &self.settings);
        let settings = &self.settings;
        let scored = &self.scored;
        let window_mask = if settings.window_count == 32 {
            u32::MAX
        } else {
            (1u32 << settings.window_count) - 1
        };
        let mut report = WindowReport {
            skipped: scores.skipped,
            ..WindowReport::default()
        };
        for track in self.hosts.values_mut() {
            track.absent_windows += 1;
        }
        for (host, row) in hosts.iter().zip(&scores.scores) {
            let entry = self.hosts.entry(host.host.clone()).or_insert_with(|| HostTrack {
                group: host.group.clone(),
                tracks: vec![Track::default(); scored.len()].into_boxed_slice(),
                absent_windows: 0,
            });
            entry.absent_windows = 0;
            entry.group.clone_from(&host.group);
            for (slot, &metric) in scored.iter().enumerate() {
                let score = row[metric.index()];
                let outlying = score.is_some_and(|s| s.score >= settings.threshold_score);
                report.scored += usize::from(score.is_some());
                report.outlying += usize::from(outlying);
                let track = &mut entry.tracks[slot];
                if score.is_some() {
                    track.latest = score;
                }
                if let Some(change) = step(track, outlying, window_mask, window_end_ms, settings) {
                    match change {
                        Change::Flagged => report.newly_flagged.push(explain(
                            &host.host,
                            &host.group,
                            metric,
                            track,
                            settings,
                        )),
                        Change::Cleared => report.cleared.push((host.host.clone(), metric)),
                    }
                }
            }
        }
        // Hosts absent from this window: a clean verdict each, and forgotten once nothing is remembered.
        for (name, entry) in self.hosts.iter_mut().filter(|(_, e)| e.absent_windows > 0) {
            for (track, &metric) in entry.tracks.iter_mut().zip(scored) {
                if let Some(Change::Cleared) = step(track, false, window_mask, window_end_ms, settings) {
                    report.cleared.push((name.clone(), metric));
                }
            }
        }
        let window_count = settings.window_count;
        self.hosts.retain(|_, e| e.absent_windows < window_count);
        self.last_window_ms = Some(window_end_ms);
        report
    }

    /// Every (host, metric) flagged now, sorted by host then metric.
    pub fn outliers(&self) -> Vec<Outlier> {
        let mut out: Vec<Outlier> = self
            .hosts
            .iter()
            .flat_map(|(host, entry)| {
                self.scored
                    .iter()
                    .zip(&*entry.tracks)
                    .filter(|(_, track)| track.flagged)
                    .map(move |(&metric, track)| explain(host, &entry.group, metric, track, &self.settings))
            })
            .collect();
        out.sort_by(|a, b| (&a.host, a.metric).cmp(&(&b.host, b.metric)));
        out
    }

    pub fn is_flagged(&self, host: &str, metric: Metric) -> bool {
        self.hosts
            .get(host)
            .zip(self.scored.iter().position(|&m| m == metric))
            .is_some_and(|(entry, slot)| entry.tracks[slot].flagged)
    }

    /// Whether any metric of the host is flagged.
    pub fn host_flagged(&self, host: &str) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|entry| entry.tracks.iter().any(|t| t.flagged))
    }
}

enum Change {
    Flagged,
    Cleared,
}

fn step(
    track: &mut Track,
    outlying: bool,
    window_mask: u32,
    window_end_ms: u64,
    settings: &OutlierSettings,
) -> Option<Change> {
    track.outlying_bits = ((track.outlying_bits << 1) | u32::from(outlying)) & window_mask;
    track.clean_run = if outlying {
        0
    } else {
        track.clean_run.saturating_add(1)
    };
    let outlying_count = track.outlying_bits.count_ones();
    if !track.flagged && outlying_count >= settings.flag_windows {
        track.flagged = true;
        // The oldest remembered outlying window is the highest set bit; bit i ended i windows ago.
        let oldest = 31 - track.outlying_bits.leading_zeros();
        track.since_ms = window_end_ms.saturating_sub(u64::from(oldest) * settings.window_ms);
        return Some(Change::Flagged);
    }
    if track.flagged && track.clean_run >= settings.clear_windows {
        track.flagged = false;
        return Some(Change::Cleared);
    }
    None
}

fn explain(host: &str, group: &str, metric: Metric, track: &Track, settings: &OutlierSettings) -> Outlier {
    let latest = track.latest.unwrap_or(Score {
        value: f64::NAN,
        stats: GroupStats {
            median: f64::NAN,
            mad: f64::NAN,
            spread: f64::NAN,
        },
        score: f64::NAN,
    });
    Outlier {
        host: host.to_string(),
        group: group.to_string(),
        metric,
        value: latest.value,
        group_median: latest.stats.median,
        mad: latest.stats.mad,
        spread: latest.stats.spread,
        score: latest.score,
        outlying_windows: track.outlying_bits.count_ones(),
        window_count: settings.window_count,
        since_ms: track.since_ms,
        window_ms: settings.window_ms,
    }
}

#[cfg(test)]
mod tests;
