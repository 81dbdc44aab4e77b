//! Reading the sizing model's input for a window through the store's API: hosts, per-minute group sums
//! from the rollup's tables and, past the rollup, from the raw rows (`Store::raw_group_minutes`, the
//! rollup's own arithmetic), and the notes the model cannot know (data gaps, minutes without port counts).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indicatif::ProgressBar;

use super::{LoadedInput, ReportError, Window, UNGROUPED};
use crate::sizing::report::utc;
use crate::sizing::{GroupInput, HostInput, MinuteSum, SizingInput, DAY_MS};
use crate::store::group_columns::{GroupColumns, GroupMinuteSums};
use crate::store::kept_stats::KeptHostStats;
use crate::store::sketch::MetricStats;
use crate::store::{Metric, Store};

/// How much of `group_minutes` and `group_port_minutes` one query reads, so the progress bar moves and
/// memory stays flat.
pub(super) const READ_CHUNK_MS: u64 = DAY_MS;

/// Most agent-reported gaps listed by name in one group's notes; the rest are counted.
const GAPS_LISTED: usize = 5;

fn group_name(stored: &str) -> String {
    if stored.is_empty() {
        UNGROUPED.to_string()
    } else {
        stored.to_string()
    }
}

/// Adds `cpu`, `memory`, `hosts` and `ports` to the minute starting at `minute_ms` of the minute-ordered
/// `minutes`, inserting the minute where it belongs when it is not there yet.
fn add_to_minute(
    minutes: &mut Vec<MinuteSum>,
    minute_ms: u64,
    (cpu_busy_cores, memory_used_bytes, hosts): (f64, f64, i64),
    ports: impl IntoIterator<Item = (u16, f64)>,
) {
    let at = match minutes.binary_search_by_key(&minute_ms, |m| m.minute_start_ms) {
        Ok(at) => at,
        Err(at) => {
            minutes.insert(
                at,
                MinuteSum {
                    minute_start_ms: minute_ms,
                    cpu_busy_cores: 0.0,
                    memory_used_bytes: 0.0,
                    established_by_port: Vec::new(),
                    hosts_reporting: 0,
                },
            );
            at
        }
    };
    let total = &mut minutes[at];
    total.cpu_busy_cores += cpu_busy_cores;
    total.memory_used_bytes += memory_used_bytes;
    total.hosts_reporting = (i64::from(total.hosts_reporting) + hosts).max(0) as u32;
    for (port, count) in ports {
        match total.established_by_port.binary_search_by_key(&port, |(p, _)| *p) {
            Ok(i) => total.established_by_port[i].1 += count,
            Err(i) => total.established_by_port.insert(i, (port, 0.0 + count)),
        }
    }
}

/// One group's minutes from its columns: each `group_minutes` sum with the port sums of the same minute
/// (a minute with port sums only has zero CPU and memory), in minute order.
fn minutes_from_columns(columns: GroupColumns) -> Vec<MinuteSum> {
    let mut minutes = Vec::with_capacity(columns.minute_ms.len());
    let (mut next_minute, mut next_port) = (0, 0);
    loop {
        let sums_at = columns.minute_ms.get(next_minute).copied();
        let ports_at = columns.port_minute_ms.get(next_port).copied();
        let Some(minute_ms) = sums_at.into_iter().chain(ports_at).min() else {
            break;
        };
        let (cpu_busy_cores, memory_used_bytes, hosts_reporting) = if sums_at == Some(minute_ms) {
            next_minute += 1;
            let i = next_minute - 1;
            (
                columns.cpu_busy_cores[i],
                columns.mem_used_bytes[i],
                columns.hosts[i],
            )
        } else {
            (0.0, 0.0, 0)
        };
        let first_port = next_port;
        while columns.port_minute_ms.get(next_port) == Some(&minute_ms) {
            next_port += 1;
        }
        minutes.push(MinuteSum {
            minute_start_ms: minute_ms,
            cpu_busy_cores,
            memory_used_bytes,
            established_by_port: (first_port..next_port)
                .map(|i| (columns.port[i], columns.established[i]))
                .collect(),
            hosts_reporting,
        });
    }
    minutes
}

/// Reads hosts, per-minute sums and gaps for `window`. `bar` advances once per day read.
pub fn load_input(
    store: &Store,
    window: Window,
    percentile: f64,
    bar: &ProgressBar,
) -> Result<LoadedInput, ReportError> {
    load_input_with(store, window, percentile, bar, RawTail::Read)
}

/// Whether a report adds the raw rows the rollup has not reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawTail {
    /// Every stored sample counts: minutes past the rollup and late rows of finished minutes.
    Read,
    /// Rolled-up minutes only ([`super::ReportOptions::rolled_up_only`]).
    Skip,
}

/// [`load_input`], with or without the raw tail.
pub fn load_input_with(
    store: &Store,
    window: Window,
    percentile: f64,
    bar: &ProgressBar,
    tail: RawTail,
) -> Result<LoadedInput, ReportError> {
    // Each host's own memory at the peak statistic, from its rollup sketches (per-host memory sizing), all
    // hosts in one read.
    let memory = store.hosts_metric_stats(Metric::MemUsedBytes, window.start_ms, window.end_ms)?;
    load_input_given(store, window, percentile, bar, tail, &memory)
}

/// [`load_input_with`] without the raw tail, each host's memory from `kept` (a report recomputed every
/// minute reads only the rollups added since its last read). `window` starts on the hour, as `kept`'s do.
pub fn load_input_kept(
    store: &Store,
    window: Window,
    percentile: f64,
    kept: &mut KeptHostStats,
) -> Result<LoadedInput, ReportError> {
    debug_assert_eq!(window.start_ms % crate::store::rollup::HOUR_MS, 0, "{window:?}");
    let memory = kept.read(store, window.start_ms, window.end_ms)?;
    let bar = ProgressBar::hidden();
    load_input_given(store, window, percentile, &bar, RawTail::Skip, &memory)
}

fn load_input_given(
    store: &Store,
    window: Window,
    percentile: f64,
    bar: &ProgressBar,
    tail: RawTail,
    memory: &HashMap<String, MetricStats>,
) -> Result<LoadedInput, ReportError> {
    let mut groups: BTreeMap<String, (Vec<HostInput>, Vec<MinuteSum>)> = BTreeMap::new();
    for host in store.hosts()? {
        if host.last_seen_ms < window.start_ms || host.first_seen_ms >= window.end_ms {
            continue;
        }
        let memory_used_peak_bytes = memory
            .get(&host.name)
            .and_then(|stats| stats.quantile(percentile / 100.0));
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

    // Finished minutes from `group_minutes` and `group_port_minutes`, a day at a time, into compact
    // per-group columns.
    let mut sums = GroupMinuteSums::default();
    let mut from_ms = window.start_ms;
    while from_ms < rolled_up_through_ms {
        let to_ms = (from_ms + READ_CHUNK_MS).min(rolled_up_through_ms);
        store.add_group_minutes(from_ms, to_ms, &mut sums)?;
        // Minutes rolled up before the database kept per-port sums may hold partial ones (late rows merged
        // since): none is better than an undercount.
        let ports_from = from_ms.max(ports_from_ms);
        if ports_from < to_ms {
            store.add_group_port_minutes(ports_from, to_ms, &mut sums)?;
        }
        bar.inc(1);
        from_ms = to_ms;
    }
    for (stored, columns) in sums.groups {
        let name = group_name(&stored);
        if columns
            .minute_ms
            .first()
            .is_some_and(|&first| first < ports_from_ms)
        {
            without_ports.insert(name.clone());
        }
        let minutes = minutes_from_columns(columns);
        let (_, existing) = groups.entry(name).or_default();
        if existing.is_empty() {
            *existing = minutes;
        } else {
            // Two stored names for one group ("" and the name hosts without a group are shown under).
            for minute in minutes {
                add_to_minute(
                    existing,
                    minute.minute_start_ms,
                    (
                        minute.cpu_busy_cores,
                        minute.memory_used_bytes,
                        i64::from(minute.hosts_reporting),
                    ),
                    minute.established_by_port,
                );
            }
        }
    }
    for group in without_ports {
        notes.entry(group).or_default().push(format!(
            "no connection counts before {}: the database kept no per-port counts until it was upgraded then",
            utc(ports_from_ms)
        ));
    }

    // Raw rows the rollup has not reached: late rows of finished minutes, and the rest of the window.
    let raw_minutes = match tail {
        RawTail::Read => store.raw_group_minutes(
            window.start_ms,
            window.end_ms,
            rolled_up_through_ms,
            marks.raw_rowid,
            ports_from_ms,
        )?,
        RawTail::Skip => Vec::new(),
    };
    for raw in raw_minutes {
        let (_, minutes) = groups.entry(group_name(&raw.group)).or_default();
        add_to_minute(
            minutes,
            raw.minute_ms,
            (raw.cpu_busy_cores, raw.mem_used_bytes, raw.hosts),
            raw.established_by_port,
        );
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
        .map(|(name, (hosts, minutes))| GroupInput { name, hosts, minutes })
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
