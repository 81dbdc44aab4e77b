//! Data gaps of one group over the window: minutes with no row and minutes with fewer hosts than the
//! group had then.

use super::{DataGaps, HostInput, MinuteSum, WindowParams, MINUTE_MS};

/// Missing minutes (no row at all) and partial ones (fewer hosts reporting than were in the group then).
pub(super) fn data_gaps(hosts: &[HostInput], minutes: &[&MinuteSum], params: &WindowParams) -> DataGaps {
    let start = params.window_start_ms;
    let expected = params.window_end_ms.saturating_sub(start).div_ceil(MINUTE_MS) as usize;
    let index = |ms: u64| (ms.saturating_sub(start) / MINUTE_MS) as usize;
    // Hosts in the group per minute, from each host's first and last sample (a difference array).
    let mut change = vec![0i64; expected + 1];
    for host in hosts {
        let first = index(host.first_seen_ms.max(start)).min(expected);
        let last = index(host.last_seen_ms).min(expected.saturating_sub(1));
        if host.last_seen_ms >= start && first <= last {
            change[first] += 1;
            change[last + 1] -= 1;
        }
    }
    let mut in_group = Vec::with_capacity(expected);
    let mut running = 0i64;
    for delta in &change[..expected] {
        running += delta;
        in_group.push(running);
    }
    let mut seen = vec![false; expected];
    let mut partial_minutes = 0;
    for row in minutes {
        let at = index(row.minute_start_ms);
        if at < expected && !seen[at] {
            seen[at] = true;
            if i64::from(row.hosts_reporting) < in_group[at] {
                partial_minutes += 1;
            }
        }
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut run_start = None;
    for (at, present) in seen.iter().chain(std::iter::once(&true)).enumerate() {
        match (present, run_start) {
            (false, None) => run_start = Some(at),
            (true, Some(from)) => {
                runs.push((start + from as u64 * MINUTE_MS, start + at as u64 * MINUTE_MS));
                run_start = None;
            }
            _ => {}
        }
    }
    let missing_minutes = seen.iter().filter(|present| !**present).count() as u64;
    runs.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.0.cmp(&b.0)));
    runs.truncate(5);
    DataGaps {
        expected_minutes: expected as u64,
        missing_minutes,
        partial_minutes,
        longest_gaps: runs,
    }
}
