//! The `sizing` and `report` commands: open a collector database read-only (a copy works, no collector needs
//! to run), build the sizing model's input for a window, run the model, and render it.
//!
//! Where the numbers come from:
//! - Hosts (zone, cores, memory, first and last seen) come from `hosts`.
//! - Per-minute group sums come from `group_minutes` and `group_port_minutes` for every minute the rollup has
//!   finished (before its cutoff, `Store::rollup_marks`), and from raw `samples` for the rest of the window. Rollups run only for
//!   minutes that ended at least 10 s ago, so without the raw tail a report on a fresh database, or the last
//!   minute of any report, would be missing. The tail is read by row id past the rollup watermark, which is
//!   an indexed range over rows the rollup has not reached yet, never a scan of the whole table.
//! - Established connections per listening port: `group_port_minutes` for rolled-up minutes, each sample's
//!   listener detail for the raw tail; both sum each host's mean over the minute. A database created before
//!   per-port sums existed has none for the minutes rolled up before its upgrade, and the report says so.
//! - Agent-reported data gaps (samples dropped from a full spool) come from `gaps` and are written into the
//!   group's notes, as are hosts that joined or left (the model's own notes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::params;
use thiserror::Error;

use crate::sizing::report::{after_loss, case_text, hosts_to_add_text, percent, status_text, utc};
use crate::sizing::{
    size_with_scenarios, GroupInput, HostInput, MinuteSum, Scenario, SizingConfig, SizingInput, SizingReport,
    DAY_MS, MINUTE_MS,
};
use crate::store::ports::PortSums;
use crate::store::{Metric, SampleDetail, Store, StoreError};
use crate::views::end::{stale_note, EndAt};

/// The group name used for hosts without a group label.
pub const UNGROUPED: &str = "(no group)";

/// The labels the store keys `hosts.group_name`, `hosts.zone` and `group_minutes` by.
const STORED_GROUP_LABEL: &str = "group";
const STORED_ZONE_LABEL: &str = "zone";

/// Windows longer than this show a progress bar on a terminal.
const PROGRESS_AFTER: Duration = Duration::from_secs(86_400);

/// How much of `group_minutes` and `group_port_minutes` one query reads, so the progress bar moves and
/// memory stays flat.
const READ_CHUNK_MS: u64 = DAY_MS;

/// Most agent-reported gaps listed by name in one group's notes; the rest are counted.
const GAPS_LISTED: usize = 5;

/// What can stop a report.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The database could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The command line or configuration asks for something the database cannot give.
    #[error("{0}")]
    Usage(String),
    /// A query API (`--source prometheus=URL`) could not be reached or gave no usable answer.
    #[error("{0}")]
    Source(String),
    /// The output file could not be written.
    #[error("writing {path}: {detail} (check that the directory exists and is writable)")]
    Write {
        /// The file.
        path: String,
        /// What the OS said.
        detail: String,
    },
}

/// The window a report covers, in whole minutes: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First millisecond.
    pub start_ms: u64,
    /// End, exclusive; the minute holding `now_ms` is included.
    pub end_ms: u64,
}

impl Window {
    /// The window of length `window` that ends with the minute holding `now_ms`.
    pub fn ending_at(now_ms: u64, window: Duration) -> Window {
        let end_ms = (now_ms / MINUTE_MS + 1) * MINUTE_MS;
        let length_ms = (window.as_millis() as u64).div_ceil(MINUTE_MS).max(1) * MINUTE_MS;
        Window {
            start_ms: end_ms.saturating_sub(length_ms),
            end_ms,
        }
    }

    fn length_ms(&self) -> u64 {
        self.end_ms - self.start_ms
    }
}

/// The model's input read from a database, plus what the model cannot know on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedInput {
    /// Hosts and per-minute sums.
    pub input: SizingInput,
    /// Extra statements per group name, appended to the group's notes.
    pub notes: BTreeMap<String, Vec<String>>,
    /// Minutes before this instant came from `group_minutes` and `group_port_minutes`, the rest from raw
    /// samples.
    pub rolled_up_through_ms: u64,
}

/// Options of one `sizing` or `report` run.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The database file.
    pub db: PathBuf,
    /// The window's length.
    pub window: Duration,
    /// "Now", Unix ms (the caller reads the clock).
    pub now_ms: u64,
    /// Where the window ends: now, a given time, or the newest sample.
    pub end: EndAt,
    /// What-if scenarios sized beside the baseline.
    pub scenarios: Vec<Scenario>,
    /// Show a progress bar on stderr when it is a terminal and the window is long.
    pub progress: bool,
}

/// A database opened read-only for a report, with its newest sample and where the report's window ends.
pub struct OpenedDatabase {
    pub store: Store,
    pub newest_ms: Option<u64>,
    pub end_ms: u64,
}

/// Opens `db` read-only and resolves `end` against its newest sample; a missing file or `--end latest` on
/// an empty database is a usage error naming the file.
pub fn open_database(db: &Path, now_ms: u64, end: EndAt) -> Result<OpenedDatabase, ReportError> {
    if !db.exists() {
        return Err(ReportError::Usage(format!(
            "database {}: file not found (pass --db FILE, or --config with the collector's state_dir)",
            db.display()
        )));
    }
    let store = Store::open_read_only(db)?;
    let newest_ms = store.newest_sample_ms()?;
    let end_ms = end.resolve(now_ms, newest_ms).ok_or_else(|| {
        ReportError::Usage(format!(
            "--end latest: database {} holds no samples yet (pass --end TIME, or wait for data)",
            db.display()
        ))
    })?;
    Ok(OpenedDatabase {
        store,
        newest_ms,
        end_ms,
    })
}

/// Opens the database read-only, reads the window and runs the model.
pub fn build_report(options: &ReportOptions, config: &SizingConfig) -> Result<SizingReport, ReportError> {
    check_labels(config)?;
    let OpenedDatabase {
        store,
        newest_ms,
        end_ms,
    } = open_database(&options.db, options.now_ms, options.end)?;
    let window = Window::ending_at(end_ms, options.window);
    let bar = progress_bar(options.progress && options.window > PROGRESS_AFTER, window);
    let loaded = load_input(&store, window, config.percentile, &bar)?;
    bar.finish_and_clear();
    let mut report = apply_notes(
        size_with_scenarios(&loaded.input, config, &options.scenarios),
        &loaded.notes,
    );
    report.notes.extend(stale_note(newest_ms, end_ms));
    Ok(report)
}

/// The store keys groups and zones by fixed labels; other labels in `[sizing]` cannot be honoured.
fn check_labels(config: &SizingConfig) -> Result<(), ReportError> {
    if config.group_label != STORED_GROUP_LABEL || config.zone_label != STORED_ZONE_LABEL {
        return Err(ReportError::Usage(format!(
            "sizing.group_label \"{}\" / sizing.zone_label \"{}\": the database keeps per-minute sums by the \
             \"{STORED_GROUP_LABEL}\" and \"{STORED_ZONE_LABEL}\" labels (remove both keys, or label the hosts \
             with \"{STORED_GROUP_LABEL}\" and \"{STORED_ZONE_LABEL}\")",
            config.group_label, config.zone_label
        )));
    }
    Ok(())
}

fn progress_bar(show: bool, window: Window) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(window.length_ms().div_ceil(READ_CHUNK_MS) + 1),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} days ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("reading rollups");
    bar
}

/// Appends `notes` to the groups they name.
pub fn apply_notes(mut report: SizingReport, notes: &BTreeMap<String, Vec<String>>) -> SizingReport {
    let scenario_groups = report
        .scenarios
        .iter_mut()
        .flat_map(|scenario| scenario.groups.iter_mut());
    for group in report.groups.iter_mut().chain(scenario_groups) {
        if let Some(extra) = notes.get(&group.name) {
            group.notes.extend(extra.iter().cloned());
        }
    }
    report
}

fn group_name(stored: &str) -> String {
    if stored.is_empty() {
        UNGROUPED.to_string()
    } else {
        stored.to_string()
    }
}

/// A group's sums for one minute while they are being added up.
#[derive(Debug, Default)]
struct MinuteAccumulator {
    cpu_busy_cores: f64,
    memory_used_bytes: f64,
    established_by_port: BTreeMap<u16, f64>,
    hosts_reporting: u32,
}

/// A sum and a count, for a mean.
type SumCount = (f64, u64);

/// One host's raw samples in one minute: sums and counts per value, for means.
#[derive(Debug, Default)]
struct HostMinute {
    cpu_busy_pct: SumCount,
    mem_used_bytes: SumCount,
    ports: PortSums,
}

/// The mean, or 0 without values (as the rollup counts a host whose metric is missing).
fn mean((sum, count): SumCount) -> f64 {
    if count > 0 {
        sum / count as f64
    } else {
        0.0
    }
}

fn add((a_sum, a_count): SumCount, (b_sum, b_count): SumCount) -> SumCount {
    (a_sum + b_sum, a_count + b_count)
}

/// Per group and minute, what raw rows add: sums for minutes the rollup has not finished, and for finished
/// minutes the change the next rollup pass will make when it merges their late rows.
type RawSums = Vec<(String, u64, MinuteAccumulator)>;

/// Reads hosts, per-minute sums and gaps for `window`. `bar` advances once per day read.
pub fn load_input(
    store: &Store,
    window: Window,
    percentile: f64,
    bar: &ProgressBar,
) -> Result<LoadedInput, ReportError> {
    let mut groups: BTreeMap<String, (Vec<HostInput>, BTreeMap<u64, MinuteAccumulator>)> = BTreeMap::new();
    for host in store.hosts()? {
        if host.last_seen_ms < window.start_ms || host.first_seen_ms >= window.end_ms {
            continue;
        }
        // Each host's own memory at the peak statistic, from its rollup sketches (per-host memory sizing).
        let memory_used_peak_bytes = store.host_percentile(
            &host.name,
            Metric::MemUsedBytes,
            window.start_ms,
            window.end_ms,
            percentile / 100.0,
        )?;
        let (hosts, _) = groups.entry(group_name(&host.group)).or_default();
        hosts.push(HostInput {
            name: host.name,
            zone: (!host.zone.is_empty()).then_some(host.zone),
            cores: f64::from(host.cores),
            memory_bytes: host.memory_bytes as f64,
            first_seen_ms: host.first_seen_ms.max(window.start_ms),
            last_seen_ms: host.last_seen_ms.min(window.end_ms - 1),
            memory_used_peak_bytes,
        });
    }

    let marks = store.rollup_marks()?;
    let rolled_up_through_ms = marks.rolled_up_through_ms.clamp(window.start_ms, window.end_ms);
    let ports_from_ms = marks.port_minutes_from_ms;
    let mut notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut without_ports: BTreeSet<String> = BTreeSet::new();

    // Finished minutes from `group_minutes` and `group_port_minutes`, a day at a time.
    let mut from_ms = window.start_ms;
    while from_ms < rolled_up_through_ms {
        let to_ms = (from_ms + READ_CHUNK_MS).min(rolled_up_through_ms);
        for row in store.group_minutes(from_ms, to_ms)? {
            let name = group_name(&row.group);
            if row.minute_ms < ports_from_ms {
                without_ports.insert(name.clone());
            }
            let (_, minutes) = groups.entry(name).or_default();
            let sum = minutes.entry(row.minute_ms).or_default();
            sum.cpu_busy_cores += row.cpu_busy_cores;
            sum.memory_used_bytes += row.mem_used_bytes;
            sum.hosts_reporting += row.hosts as u32;
        }
        // Minutes rolled up before the database kept per-port sums may hold partial ones (late rows merged
        // since): none is better than an undercount.
        for row in store.group_port_minutes(from_ms.max(ports_from_ms), to_ms)? {
            let (_, minutes) = groups.entry(group_name(&row.group)).or_default();
            let sum = minutes.entry(row.minute_ms).or_default();
            *sum.established_by_port.entry(row.port).or_default() += row.established;
        }
        bar.inc(1);
        from_ms = to_ms;
    }
    for group in without_ports {
        notes.entry(group).or_default().push(format!(
            "no connection counts before {}: the database kept no per-port counts until it was upgraded then",
            utc(ports_from_ms)
        ));
    }

    // Raw rows the rollup has not reached: late rows of finished minutes, and the rest of the window.
    for (name, minute, sum) in raw_minutes(
        store,
        window,
        rolled_up_through_ms,
        marks.raw_rowid,
        ports_from_ms,
    )? {
        let (_, minutes) = groups.entry(name).or_default();
        let total = minutes.entry(minute).or_default();
        total.cpu_busy_cores += sum.cpu_busy_cores;
        total.memory_used_bytes += sum.memory_used_bytes;
        total.hosts_reporting += sum.hosts_reporting;
        for (port, count) in sum.established_by_port {
            *total.established_by_port.entry(port).or_default() += count;
        }
    }
    bar.inc(1);

    let host_groups: HashMap<String, String> = groups
        .iter()
        .flat_map(|(group, (hosts, _))| hosts.iter().map(move |h| (h.name.clone(), group.clone())))
        .collect();
    let mut gaps_by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for gap in store.gaps(window.start_ms, window.end_ms)? {
        let Some(group) = host_groups.get(&gap.host) else {
            continue;
        };
        gaps_by_group.entry(group.clone()).or_default().push(format!(
            "{} dropped {} samples from {} to {} ({})",
            gap.host,
            gap.count,
            utc(gap.from_ms),
            utc(gap.to_ms),
            gap.reason
        ));
    }
    for (group, gaps) in gaps_by_group {
        let listed = gaps.len().min(GAPS_LISTED);
        let more = if gaps.len() > listed {
            format!("; and {} more gaps", gaps.len() - listed)
        } else {
            String::new()
        };
        notes.entry(group).or_default().push(format!(
            "agents reported data gaps (their minutes understate the load): {}{more}",
            gaps[..listed].join("; ")
        ));
    }

    let groups = groups
        .into_iter()
        .map(|(name, (hosts, minutes))| GroupInput {
            name,
            hosts,
            minutes: minutes
                .into_iter()
                .map(|(minute_start_ms, sum)| MinuteSum {
                    minute_start_ms,
                    cpu_busy_cores: sum.cpu_busy_cores,
                    memory_used_bytes: sum.memory_used_bytes,
                    established_by_port: sum.established_by_port.into_iter().collect(),
                    hosts_reporting: sum.hosts_reporting,
                })
                .collect(),
        })
        .collect();
    Ok(LoadedInput {
        input: SizingInput {
            window_start_ms: window.start_ms,
            window_end_ms: window.end_ms,
            groups,
        },
        notes,
        rolled_up_through_ms,
    })
}

/// The sums of raw rows past the rollup watermark (`samples.id` `watermark`) inside `window`: each host
/// contributes its mean over the minute, as the rollup does. For a finished minute (before `cutoff_ms`) the
/// rollup already holds part of a host's minute, so what is returned is the change the next pass will make:
/// new mean minus old mean. Per-port counts of finished minutes before `ports_from_ms` are left out, as the
/// rolled-up figures they would change are.
fn raw_minutes(
    store: &Store,
    window: Window,
    cutoff_ms: u64,
    watermark: i64,
    ports_from_ms: u64,
) -> Result<RawSums, ReportError> {
    let err = |e| StoreError::from_sqlite(store.path(), "read raw samples", e);
    let hosts: HashMap<i64, (String, u32)> = {
        let mut statement = store
            .conn
            .prepare("SELECT id, group_name, cores FROM hosts")
            .map_err(err)?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    (r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u32),
                ))
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    let mut statement = store
        .conn
        .prepare(
            "SELECT host_id, ts_ms, cpu_busy_pct, mem_used_bytes, detail FROM samples \
             WHERE id > ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
        )
        .map_err(err)?;
    let mut rows = statement
        .query(params![watermark, window.start_ms as i64, window.end_ms as i64])
        .map_err(err)?;
    let mut per_host: BTreeMap<(u64, i64), HostMinute> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(err)? {
        let host_id: i64 = row.get(0).map_err(err)?;
        let ts_ms = row.get::<_, i64>(1).map_err(err)?.max(0) as u64;
        let minute = ts_ms - ts_ms % MINUTE_MS;
        let entry = per_host.entry((minute, host_id)).or_default();
        let value = |index: usize| row.get::<_, Option<f64>>(index).map_err(err);
        for (index, slot) in [(2, &mut entry.cpu_busy_pct), (3, &mut entry.mem_used_bytes)] {
            if let Some(value) = value(index)? {
                *slot = add(*slot, (value, 1));
            }
        }
        if minute < ports_from_ms {
            continue;
        }
        let detail: Option<Vec<u8>> = row.get(4).map_err(err)?;
        // A blob that does not decode loses its per-port counts only (as in the rollup); CPU and memory
        // still count.
        if let Some(detail) = detail.and_then(|bytes| SampleDetail::decode(&bytes).ok()) {
            entry.ports.add_listeners(&detail.listeners);
        }
    }
    drop(rows);
    drop(statement);

    let mut sums: BTreeMap<(String, u64), MinuteAccumulator> = BTreeMap::new();
    for ((minute, host_id), raw) in per_host {
        let Some((group, cores)) = hosts.get(&host_id) else {
            continue;
        };
        let cores = f64::from(*cores);
        let sum = sums.entry((group_name(group), minute)).or_default();
        if minute >= cutoff_ms {
            sum.hosts_reporting += 1;
            sum.cpu_busy_cores += mean(raw.cpu_busy_pct) / 100.0 * cores;
            sum.memory_used_bytes += mean(raw.mem_used_bytes);
            for (port, established) in raw.ports.means() {
                *sum.established_by_port.entry(port).or_default() += established;
            }
            continue;
        }
        let old = store.host_minute(host_id, minute)?;
        let old_of = |metric: Metric| -> SumCount {
            old.as_ref()
                .and_then(|rollup| rollup.stats.get(metric.index()))
                .map_or((0.0, 0), |stats| (stats.sum, stats.count))
        };
        let (old_cpu, old_mem) = (old_of(Metric::CpuBusyPct), old_of(Metric::MemUsedBytes));
        sum.hosts_reporting += u32::from(old.is_none());
        sum.cpu_busy_cores += (mean(add(old_cpu, raw.cpu_busy_pct)) - mean(old_cpu)) / 100.0 * cores;
        sum.memory_used_bytes += mean(add(old_mem, raw.mem_used_bytes)) - mean(old_mem);
        let old_ports = old.map(|rollup| rollup.ports).unwrap_or_default();
        let mut merged = old_ports.clone();
        merged.merge(&raw.ports);
        for (port, established) in merged.means() {
            let (old_sum, old_samples) = old_ports.get(port);
            let old_mean = if old_samples > 0 {
                old_sum as f64 / f64::from(old_samples)
            } else {
                0.0
            };
            *sum.established_by_port.entry(port).or_default() += established - old_mean;
        }
    }
    Ok(sums
        .into_iter()
        .map(|((group, minute), sum)| (group, minute, sum))
        .collect())
}

/// The `sizing` table: the window line, one row per group, then each group's notes; only the rows without `header`.
pub fn render_table(report: &SizingReport, header: bool) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if header {
        table.set_header(vec![
            "group",
            "scenario",
            "status",
            "hosts",
            "domains",
            "binding",
            "worst loss",
            "now",
            "after worst loss",
            "safe level",
            "hosts to add",
        ]);
    }
    for (scenario, group) in crate::sizing::report::rows(report) {
        let binding = group.resources.iter().find(|r| Some(r.resource) == group.binding);
        let cell = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
        table.add_row(vec![
            group.name.clone(),
            scenario.to_string(),
            status_text(group.status).to_string(),
            group.hosts.to_string(),
            group.domains.len().to_string(),
            cell(group.binding.map(|b| b.label())),
            cell(group.worst_case.as_ref().map(case_text)),
            cell(binding.map(|r| percent(r.current_utilisation))),
            cell(binding.map(|r| after_loss(&r.worst))),
            cell(binding.map(|r| percent(r.safe_steady_state))),
            hosts_to_add_text(group),
        ]);
    }
    if !header {
        return format!("{table}\n");
    }
    let mut out = String::new();
    for note in &report.notes {
        out.push_str(note);
        out.push('\n');
    }
    out.push_str(&format!(
        "window {} to {}, peak {} of per-minute group sums\n{table}\n",
        utc(report.window_start_ms),
        utc(report.window_end_ms),
        report.peak_statistic
    ));
    for group in &report.groups {
        for note in &group.notes {
            out.push_str(&format!("{}: {note}\n", group.name));
        }
    }
    if !report.ranking.is_empty() {
        out.push_str("days until a group stops surviving its worst loss (unsafe now first):\n");
        for ranked in &report.ranking {
            out.push_str(&format!(
                "  {}: {}{}\n",
                ranked.group,
                crate::sizing::report::days_until_unsafe_text(ranked),
                ranked
                    .resource
                    .map(|r| format!(" ({})", r.label()))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// Writes a report atomically ([`headroom_common::files::write_atomic`]) with mode 0644, so a reader never sees
/// half and whoever the report is for can read it.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), ReportError> {
    use headroom_common::files;
    files::write_atomic(path, text.as_bytes(), files::PUBLIC_FILE).map_err(|e| ReportError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fleet::HostMetrics;
    use crate::store::{GapRow, HostBatch, HostInfo, Retention, SampleRow};
    use headroom_common::wire::Listener;

    /// A Monday at 00:00 UTC.
    const T0: u64 = 1_700_438_400_000;
    const GIB: u64 = 1 << 30;

    fn hello(group: &str, zone: &str, cores: u32) -> HostInfo {
        HostInfo {
            labels: [("group", group), ("zone", zone)]
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            cores,
            memory_bytes: 8 * GIB,
            interval_ms: 1000,
            agent_version: "0.1.0".into(),
        }
    }

    /// A sample at `ts_ms` with CPU busy, used memory and established connections on port 443.
    fn sample(seq: u64, ts_ms: u64, cpu_pct: f64, mem_gib: u64, established_443: u32) -> SampleRow {
        let detail = SampleDetail {
            listeners: vec![Listener {
                port: 443,
                established: established_443,
                accept_queue: 0,
                accept_queue_limit: 128,
            }],
            ..SampleDetail::default()
        };
        SampleRow {
            seq,
            ts_ms,
            clock_offset_ms: 0,
            metrics: HostMetrics {
                cpu_busy_pct: Some(cpu_pct),
                mem_used_bytes: Some(mem_gib * GIB),
                // Host-wide count: the 443 connections plus 10 others (outgoing, ssh).
                tcp_established: Some(u64::from(established_443) + 10),
                ..HostMetrics::default()
            },
            detail: detail.encode(),
        }
    }

    /// Two hosts of group "web" over minutes 0 and 1 after T0, one unlabelled host, and a gap.
    fn fixture(dir: &Path) -> Store {
        let (mut store, _) = Store::open(&dir.join("headroom.db"), T0).unwrap();
        let batch = |host: &str, info: HostInfo, rows: Vec<SampleRow>, gaps: Vec<GapRow>| HostBatch {
            host: host.into(),
            instance_id: 1,
            received_ms: T0,
            hello: Some(info),
            rows,
            gaps,
        };
        // web-1 (4 cores): minute 0 at 50 % and 70 % (mean 60 % = 2.4 cores), minute 1 at 25 % (1 core).
        // web-2 (8 cores): minute 0 at 10 % (0.8 cores), minute 1 at 30 % and 50 % (mean 40 % = 3.2 cores).
        store
            .commit_batches(&[
                batch(
                    "web-1",
                    hello("web", "a", 4),
                    vec![
                        sample(1, T0 + 1_000, 50.0, 2, 100),
                        sample(2, T0 + 30_000, 70.0, 4, 300),
                        sample(3, T0 + 61_000, 25.0, 3, 50),
                    ],
                    Vec::new(),
                ),
                batch(
                    "web-2",
                    hello("web", "b", 8),
                    vec![
                        sample(1, T0 + 2_000, 10.0, 1, 40),
                        sample(2, T0 + 62_000, 30.0, 5, 60),
                        sample(3, T0 + 90_000, 50.0, 7, 80),
                    ],
                    vec![GapRow {
                        from_seq: 10,
                        to_seq: 19,
                        from_ms: T0 + 100_000,
                        to_ms: T0 + 110_000,
                        count: 10,
                        reason: "spool full".into(),
                    }],
                ),
                batch(
                    "lone",
                    hello("", "", 2),
                    vec![sample(1, T0 + 5_000, 50.0, 1, 0)],
                    Vec::new(),
                ),
            ])
            .unwrap();
        store
    }

    fn config_with_443() -> SizingConfig {
        let mut config = SizingConfig::default();
        config.defaults.max_connections.insert(443, 1000);
        config
    }

    fn minutes_of(loaded: &LoadedInput, group: &str) -> Vec<MinuteSum> {
        let group = loaded.input.groups.iter().find(|g| g.name == group).unwrap();
        group.minutes.clone()
    }

    /// Issue 11, point 7: a report is readable by others (0644) whatever the umask.
    #[test]
    fn issue_11_reports_are_written_0644_under_any_umask() {
        use headroom_common::files::{mode_of, UmaskGuard};
        let dir = tempfile::tempdir().unwrap();
        for mask in [0o000, 0o077] {
            let _umask = UmaskGuard::set(mask);
            let path = dir.path().join(format!("report-{mask:o}.md"));
            write_atomically(&path, "# report\n").unwrap();
            assert_eq!(mode_of(&path).unwrap(), 0o644, "umask {mask:o}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "# report\n");
        }
    }

    #[test]
    fn window_is_whole_minutes_ending_with_the_current_one() {
        let window = Window::ending_at(T0 + 61_500, Duration::from_secs(3_600));
        assert_eq!(window.end_ms, T0 + 2 * MINUTE_MS);
        assert_eq!(window.start_ms, T0 + 2 * MINUTE_MS - 3_600_000);
    }

    #[test]
    fn raw_tail_gives_per_host_minute_means_summed_per_group_with_per_port_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = fixture(dir.path());
        let window = Window::ending_at(T0 + 100_000, Duration::from_secs(3_600));
        let loaded = load_input(&store, window, 99.0, &ProgressBar::hidden()).unwrap();
        assert_eq!(
            loaded.rolled_up_through_ms, window.start_ms,
            "nothing is rolled up yet"
        );
        let minutes = minutes_of(&loaded, "web");
        // Minute 0: 2.4 + 0.8 cores; memory (2+4)/2 + 1 = 4 GiB; port 443 (100+300)/2 + 40 = 240.
        // Minute 1: 1.0 + 3.2 cores; memory 3 + (5+7)/2 = 9 GiB; port 443 50 + (60+80)/2 = 120.
        let expected = [(T0, 3.2, 4, 240.0), (T0 + MINUTE_MS, 4.2, 9, 120.0)];
        assert_eq!(minutes.len(), 2, "{minutes:?}");
        for (row, (minute, cores, mem_gib, established)) in minutes.iter().zip(expected) {
            assert_eq!(row.minute_start_ms, minute);
            assert!((row.cpu_busy_cores - cores).abs() < 1e-9, "{row:?}");
            assert_eq!(row.memory_used_bytes, (mem_gib * GIB) as f64);
            assert_eq!(row.established_by_port, vec![(443, established)]);
            assert_eq!(row.hosts_reporting, 2);
        }
        let lone = minutes_of(&loaded, UNGROUPED);
        assert_eq!(lone.len(), 1);
        assert!((lone[0].cpu_busy_cores - 1.0).abs() < 1e-9);
        // The gap of web-2 is stated in its group's notes, not in the other group's.
        let gap_note = &loaded.notes["web"][0];
        assert!(gap_note.contains("web-2 dropped 10 samples"), "{gap_note}");
        assert!(gap_note.contains("spool full"), "{gap_note}");
        assert!(!loaded.notes.contains_key(UNGROUPED));
    }

    #[test]
    fn rolled_up_minutes_match_the_raw_reading_with_exact_per_port_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = fixture(dir.path());
        let window = Window::ending_at(T0 + 100_000, Duration::from_secs(3_600));
        let load = |store: &Store| load_input(store, window, 99.0, &ProgressBar::hidden()).unwrap();
        let before = load(&store);
        // Minute 0 is finished and 10 s past: it is rolled up; minute 1 is not yet.
        store
            .maintain(T0 + MINUTE_MS + 10_000, &Retention::default())
            .unwrap();
        let after = load(&store);
        assert_eq!(after.rolled_up_through_ms, T0 + MINUTE_MS);
        let (raw, rolled) = (minutes_of(&before, "web"), minutes_of(&after, "web"));
        assert_eq!(rolled.len(), 2);
        assert!(
            (raw[0].cpu_busy_cores - rolled[0].cpu_busy_cores).abs() < 1e-9,
            "{raw:?} {rolled:?}"
        );
        assert_eq!(raw[0].memory_used_bytes, rolled[0].memory_used_bytes);
        assert_eq!(raw[0].hosts_reporting, rolled[0].hosts_reporting);
        // Rolled up, port 443 is exact: (100 + 300) / 2 + 40, not the host-wide 260.
        assert_eq!(rolled[0].established_by_port, vec![(443, 240.0)]);
        assert_eq!(
            rolled[1], raw[1],
            "the unfinished minute still comes from raw rows"
        );
        assert!(
            !after.notes["web"].iter().any(|n| n.contains("connection")),
            "{:?}",
            after.notes
        );

        // A late sample of web-1 for the rolled-up minute 0, 500 on 443: its mean becomes
        // (100 + 300 + 500) / 3 = 300, so the group's 443 load is 300 + 40 = 340, before the rollup
        // merges it (raw reading of the change) and after (group_port_minutes), never 240 + 500.
        let late = HostBatch {
            host: "web-1".into(),
            instance_id: 1,
            received_ms: T0 + 70_000,
            hello: None,
            rows: vec![sample(4, T0 + 40_000, 60.0, 3, 500)],
            gaps: Vec::new(),
        };
        store.commit_batches(&[late]).unwrap();
        let pending = minutes_of(&load(&store), "web");
        assert_eq!(pending[0].established_by_port, vec![(443, 340.0)]);
        assert_eq!(pending[0].hosts_reporting, 2);
        // web-1's CPU mean becomes (50 + 70 + 60) / 3 = 60 %: unchanged, 2.4 + 0.8 cores.
        assert!((pending[0].cpu_busy_cores - 3.2).abs() < 1e-9, "{pending:?}");
        store
            .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
            .unwrap();
        let merged = load(&store);
        assert_eq!(merged.rolled_up_through_ms, T0 + 2 * MINUTE_MS);
        let merged = minutes_of(&merged, "web");
        assert_eq!(merged[0].established_by_port, vec![(443, 340.0)]);
        assert_eq!(merged[0].hosts_reporting, 2);
        assert!((merged[0].cpu_busy_cores - 3.2).abs() < 1e-9, "{merged:?}");
        for (now, then) in merged[1..].iter().zip(&rolled[1..]) {
            assert!(
                (now.cpu_busy_cores - then.cpu_busy_cores).abs() < 1e-9,
                "{merged:?} {rolled:?}"
            );
            assert_eq!(now.memory_used_bytes, then.memory_used_bytes);
            assert_eq!(now.hosts_reporting, then.hosts_reporting);
            assert_eq!(now.established_by_port, then.established_by_port);
        }
    }

    #[test]
    fn minutes_rolled_up_before_the_upgrade_have_no_connection_counts_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = fixture(dir.path());
        store
            .maintain(T0 + 2 * MINUTE_MS + 10_000, &Retention::default())
            .unwrap();
        // As the upgrade step leaves a database whose minutes were rolled up before per-port sums existed.
        store
            .conn
            .execute_batch(&format!(
                "DELETE FROM group_port_minutes; UPDATE rollup_minute SET ports = NULL; \
                 UPDATE meta SET value = {} WHERE key = 'port_minutes_from_ms'",
                T0 + 2 * MINUTE_MS
            ))
            .unwrap();
        let window = Window::ending_at(T0 + 130_000, Duration::from_secs(3_600));
        let loaded = load_input(&store, window, 99.0, &ProgressBar::hidden()).unwrap();
        let minutes = minutes_of(&loaded, "web");
        assert_eq!(minutes.len(), 2);
        assert!(
            minutes.iter().all(|m| m.established_by_port.is_empty()),
            "{minutes:?}"
        );
        assert!(minutes.iter().all(|m| m.hosts_reporting == 2), "{minutes:?}");
        assert!(
            loaded.notes["web"]
                .iter()
                .any(|n| n.contains("no connection counts before") && n.contains("upgraded")),
            "{:?}",
            loaded.notes
        );
    }

    #[test]
    fn report_states_gaps_and_renders_a_table_per_group() {
        let dir = tempfile::tempdir().unwrap();
        drop(fixture(dir.path()));
        let options = ReportOptions {
            db: dir.path().join("headroom.db"),
            window: Duration::from_secs(3_600),
            now_ms: T0 + 100_000,
            end: EndAt::Now,
            scenarios: Vec::new(),
            progress: false,
        };
        let report = build_report(&options, &config_with_443()).unwrap();
        let names: Vec<&str> = report.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, vec![UNGROUPED, "web"]);
        let table = render_table(&report, true);
        assert!(table.contains("web"), "{table}");
        assert!(table.contains("web: agents reported data gaps"), "{table}");
    }

    #[test]
    fn issue_10_each_what_if_is_a_row_of_the_sizing_table() {
        let dir = tempfile::tempdir().unwrap();
        drop(fixture(dir.path()));
        let options = ReportOptions {
            db: dir.path().join("headroom.db"),
            window: Duration::from_secs(3_600),
            now_ms: T0 + 100_000,
            end: EndAt::Now,
            scenarios: crate::sizing::WhatIfOptions {
                growth: vec![0.5],
                lose_hosts: vec![1],
                combined: vec![Scenario::parse_combined("growth=50%,lose-hosts=1").unwrap()],
                ..Default::default()
            }
            .scenarios(),
            progress: false,
        };
        let report = build_report(&options, &config_with_443()).unwrap();
        let table = render_table(&report, false);
        let web_rows: Vec<Vec<String>> = table
            .lines()
            .filter(|line| line.contains(" web "))
            .map(|line| {
                line.split(['│', '┆'])
                    .map(|cell| cell.trim().to_string())
                    .filter(|cell| !cell.is_empty())
                    .collect()
            })
            .collect();
        assert!(web_rows.iter().all(|row| row.len() > 1), "{table}");
        let scenarios: Vec<&str> = web_rows.iter().map(|row| row[1].as_str()).collect();
        assert_eq!(
            scenarios,
            [
                "baseline",
                "growth +50 %",
                "lose 1 host",
                "growth +50 %, lose 1 host"
            ],
            "{table}"
        );
    }

    #[test]
    fn a_missing_database_or_foreign_labels_are_usage_errors() {
        let options = ReportOptions {
            db: PathBuf::from("/nonexistent/headroom.db"),
            window: Duration::from_secs(3_600),
            now_ms: T0,
            end: EndAt::Now,
            scenarios: Vec::new(),
            progress: false,
        };
        let error = build_report(&options, &SizingConfig::default()).unwrap_err();
        assert!(matches!(error, ReportError::Usage(_)), "{error}");
        assert!(error
            .to_string()
            .contains("/nonexistent/headroom.db: file not found"));
        let config = SizingConfig {
            group_label: "service".into(),
            ..SizingConfig::default()
        };
        let error = build_report(&options, &config).unwrap_err();
        assert!(
            error.to_string().contains("sizing.group_label \"service\""),
            "{error}"
        );
    }
}
