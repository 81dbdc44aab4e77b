//! CPU time per state from /proc/stat and load averages from /proc/loadavg.

use super::ParseError;
use headroom_common::wire::{CpuSample, CpuTimes, LoadAverage, MAX_CORES};

const STAT: &str = "stat";
const LOADAVG: &str = "loadavg";

/// The `cpu` and `cpuN` lines of /proc/stat. Columns a kernel does not have (steal before 2.6.11, iowait,
/// irq and softirq before 2.6) are 0. `load` is left empty: it comes from another file.
pub fn parse_stat(text: &str) -> Result<CpuSample, ParseError> {
    let mut total = None;
    let mut per_core = Vec::new();
    let mut cores = 0u32;
    for (index, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("cpu") else {
            // The kernel lists the cpu lines first, together; what follows (the interrupt counts can run
            // to tens of kilobytes) is not needed.
            if total.is_some() {
                break;
            }
            continue;
        };
        let line_number = index + 1;
        let (label, columns) = match rest.split_once(char::is_whitespace) {
            Some(split) => split,
            None => return Err(ParseError::at(STAT, line_number, "cpu line has no time columns")),
        };
        let times = parse_times(columns).map_err(|detail| ParseError::at(STAT, line_number, detail))?;
        if label.is_empty() {
            total = Some(times);
        } else if label.bytes().all(|b| b.is_ascii_digit()) {
            cores += 1;
            if per_core.len() < MAX_CORES {
                per_core.push(times);
            }
        } else {
            return Err(ParseError::at(
                STAT,
                line_number,
                format!("unknown line label \"cpu{label}\""),
            ));
        }
    }
    let total = total.ok_or_else(|| ParseError::whole(STAT, "no aggregate \"cpu\" line"))?;
    Ok(CpuSample {
        total,
        per_core,
        cores,
        load: None,
    })
}

fn parse_times(columns: &str) -> Result<CpuTimes, String> {
    // user nice system idle iowait irq softirq steal (guest guest_nice are already inside user and nice).
    let mut values = [0u64; 8];
    let mut count = 0;
    for (slot, word) in values.iter_mut().zip(columns.split_whitespace()) {
        *slot = word
            .parse()
            .map_err(|_| format!("cpu time column {} is \"{word}\", not a number", count + 1))?;
        count += 1;
    }
    // Every kernel since 2.4 has at least user, nice, system and idle.
    if count < 4 {
        return Err(format!("cpu line has {count} time columns, expected at least 4"));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = values;
    Ok(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
    })
}

/// /proc/loadavg: "0.08 0.25 0.38 1/79 1347".
pub fn parse_loadavg(text: &str) -> Result<LoadAverage, ParseError> {
    let mut words = text.split_whitespace();
    let mut next = |name: &str| -> Result<f32, ParseError> {
        let word = words
            .next()
            .ok_or_else(|| ParseError::at(LOADAVG, 1, format!("missing the {name} load average")))?;
        word.parse().map_err(|_| {
            ParseError::at(
                LOADAVG,
                1,
                format!("{name} load average \"{word}\" is not a number"),
            )
        })
    };
    Ok(LoadAverage {
        one: next("1-minute")?,
        five: next("5-minute")?,
        fifteen: next("15-minute")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_fill_missing_columns_with_zero() {
        let sample = parse_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 5\n").unwrap();
        assert_eq!(
            sample.total,
            CpuTimes {
                user: 1,
                nice: 2,
                system: 3,
                idle: 4,
                ..Default::default()
            }
        );
        assert_eq!(sample.cores, 1);
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let error = parse_stat("cpu  1 2 3 4\ncpu0 1 x 3 4\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "stat: line 2: cpu time column 2 is \"x\", not a number"
        );
        let error = parse_stat("cpu  1 2\n").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.to_string().contains("expected at least 4"), "{error}");
    }

    #[test]
    fn missing_aggregate_line_is_an_error() {
        let error = parse_stat("cpu0 1 2 3 4\n").unwrap_err();
        assert_eq!(error.to_string(), "stat: no aggregate \"cpu\" line");
    }

    #[test]
    fn truncated_loadavg_is_an_error() {
        let error = parse_loadavg("0.5 0.25\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "loadavg: line 1: missing the 15-minute load average"
        );
    }
}
