//! Memory and swap from /proc/meminfo.

use super::ParseError;
use headroom_common::wire::MemorySample;

const MEMINFO: &str = "meminfo";

/// /proc/meminfo, kB converted to bytes. Kernels before 3.14 have no MemAvailable: the estimate is then
/// free + buffers + cached, the figure `free` printed in those days, and `available_estimated` says so.
pub fn parse_meminfo(text: &str) -> Result<MemorySample, ParseError> {
    let mut total = None;
    let mut free = None;
    let mut available = None;
    let mut buffers = None;
    let mut cached = None;
    let mut swap_total = None;
    let mut swap_free = None;
    for (index, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(ParseError::at(
                MEMINFO,
                index + 1,
                format!("line \"{line}\" has no \"key:\""),
            ));
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemFree" => &mut free,
            "MemAvailable" => &mut available,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            "SwapTotal" => &mut swap_total,
            "SwapFree" => &mut swap_free,
            _ => continue,
        };
        *slot = Some(parse_kilobytes(rest).map_err(|detail| ParseError::at(MEMINFO, index + 1, detail))?);
    }
    let require = |value: Option<u64>, key: &str| {
        value.ok_or_else(|| ParseError::whole(MEMINFO, format!("no {key} line")))
    };
    let total_bytes = require(total, "MemTotal")?;
    let buffers_bytes = require(buffers, "Buffers")?;
    let cached_bytes = require(cached, "Cached")?;
    let swap_total_bytes = swap_total.unwrap_or(0);
    let swap_free_bytes = swap_free.unwrap_or(0);
    let (available_bytes, available_estimated) = match available {
        Some(available) => (available, false),
        None => {
            let free_bytes = require(free, "MemFree")?;
            let estimate = free_bytes
                .saturating_add(buffers_bytes)
                .saturating_add(cached_bytes);
            (estimate.min(total_bytes), true)
        }
    };
    Ok(MemorySample {
        total_bytes,
        available_bytes,
        used_bytes: total_bytes.saturating_sub(available_bytes),
        cached_bytes,
        buffers_bytes,
        swap_total_bytes,
        swap_used_bytes: swap_total_bytes.saturating_sub(swap_free_bytes),
        available_estimated,
    })
}

/// "   24684092 kB" → bytes.
fn parse_kilobytes(rest: &str) -> Result<u64, String> {
    let mut words = rest.split_whitespace();
    let number = words.next().ok_or_else(|| "value is missing".to_string())?;
    let kilobytes: u64 = number
        .parse()
        .map_err(|_| format!("value \"{number}\" is not a number"))?;
    match words.next() {
        Some("kB") => Ok(kilobytes.saturating_mul(1024)),
        Some(unit) => Err(format!("unit \"{unit}\" is not kB")),
        None => Err("value has no kB unit".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_value_names_file_and_line() {
        let error = parse_meminfo("MemTotal: 100 kB\nMemFree: lots kB\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "meminfo: line 2: value \"lots\" is not a number"
        );
    }

    #[test]
    fn estimate_never_exceeds_total() {
        let text = "MemTotal: 100 kB\nMemFree: 80 kB\nBuffers: 30 kB\nCached: 40 kB\n";
        let memory = parse_meminfo(text).unwrap();
        assert_eq!(memory.available_bytes, 100 * 1024);
        assert_eq!(memory.used_bytes, 0);
        assert!(memory.available_estimated);
    }

    #[test]
    fn missing_total_is_an_error() {
        let error = parse_meminfo("MemFree: 1 kB\nBuffers: 1 kB\nCached: 1 kB\n").unwrap_err();
        assert_eq!(error.to_string(), "meminfo: no MemTotal line");
    }
}
