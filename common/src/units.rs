//! Numbers as people read them in terminal tables: binary byte units (`3.2 GiB`, `12.0 KiB/s`). Machine
//! formats (JSON, CSV) carry the raw numbers instead.

const BYTE_UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/// A byte count in the largest binary unit that keeps the number at least 1: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(bytes: f64) -> String {
    let (value, unit) = scale(bytes);
    if unit == BYTE_UNITS[0] {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// A byte rate the same way, per second: `512 B/s`, `12.0 KiB/s`, `3.4 MiB/s`.
pub fn human_bytes_per_s(bytes_per_s: f64) -> String {
    format!("{}/s", human_bytes(bytes_per_s))
}

fn scale(bytes: f64) -> (f64, &'static str) {
    let mut value = bytes;
    let mut unit = BYTE_UNITS[0];
    for next in &BYTE_UNITS[1..] {
        if value.abs() < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    (value, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_take_the_largest_unit_that_keeps_a_whole_part() {
        assert_eq!(human_bytes(0.0), "0 B");
        assert_eq!(human_bytes(1023.0), "1023 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(53_654_838_313.0), "50.0 GiB");
        assert_eq!(human_bytes(3.0 * 1024f64.powi(5)), "3.0 PiB");
    }

    #[test]
    fn rates_append_per_second() {
        assert_eq!(human_bytes_per_s(512.0), "512 B/s");
        assert_eq!(human_bytes_per_s(12.0 * 1024.0), "12.0 KiB/s");
        assert_eq!(human_bytes_per_s(3.5 * 1024.0 * 1024.0), "3.5 MiB/s");
        assert_eq!(human_bytes_per_s(2.0 * 1024.0 * 1024.0 * 1024.0), "2.0 GiB/s");
    }
}
