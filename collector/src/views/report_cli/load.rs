//! Reading the sizing model's input for a window through the store's API: hosts, per-minute group sums
//! from the rollup's tables and, past the rollup, from the raw rows (`Store::raw_group_minutes`, the
//! rollup's own arithmetic), and the notes the model cannot know (data gaps, minutes without port counts).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indicatif::ProgressBar;

use super::{LoadedInput, ReportError, Window, UNGROUPED};
use crate::sizing::report::utc;
use crate::sizing::{GroupInput, HostInput, MinuteSum, SizingInput, DAY_MS};
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

/// A group's sums for one minute while they are being added up.
#[derive(Debug, Default)]
struct MinuteAccumulator {
    cpu_busy_cores: f64,
    memory_used_bytes: f64,
    established_by_port: BTreeMap<u16, f64>,
    hosts_reporting: u32,
}

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
    for raw in store.raw_group_minutes(
        window.start_ms,
        window.end_ms,
        rolled_up_through_ms,
        marks.raw_rowid,
        ports_from_ms,
    )? {
        let (_, minutes) = groups.entry(group_name(&raw.group)).or_default();
        let total = minutes.entry(raw.minute_ms).or_default();
        total.cpu_busy_cores += raw.cpu_busy_cores;
        total.memory_used_bytes += raw.mem_used_bytes;
        total.hosts_reporting = (i64::from(total.hosts_reporting) + raw.hosts).max(0) as u32;
        for (port, count) in raw.established_by_port {
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
