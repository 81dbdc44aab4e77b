//! Where a windowed answer ends: now, a given instant, or the newest sample in the database (`--end
//! TIME|latest`), and the first line that says when the newest data is older than the window's end. A copy
//! of a database analysed later gives the same answer with `--end latest`.

use std::time::{Duration, SystemTime};

/// Newest data this much older than the window's end makes the answer stale enough to say so: the minute
/// rollup lags by up to a minute, so anything beyond two minutes is data that stopped, not lag.
pub const STALE_AFTER_MS: u64 = 2 * 60_000;

/// The end of a window as the command line gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndAt {
    /// The current time (the default).
    Now,
    /// A fixed instant, Unix ms.
    At(u64),
    /// The newest sample in the database.
    Latest,
}

impl std::str::FromStr for EndAt {
    type Err = String;

    fn from_str(text: &str) -> Result<EndAt, String> {
        match text {
            "now" => Ok(EndAt::Now),
            "latest" => Ok(EndAt::Latest),
            _ => humantime::parse_rfc3339_weak(text)
                .map(|time| {
                    EndAt::At(
                        time.duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap_or(Duration::ZERO)
                            .as_millis() as u64,
                    )
                })
                .map_err(|_| {
                    format!(
                        "--end \"{text}\" is not a time (use RFC 3339 like 2024-05-01T12:00:00Z, or latest)"
                    )
                }),
        }
    }
}

impl EndAt {
    /// The instant the window ends, given the clock and the newest sample; `None` for `latest` on an empty
    /// database.
    pub fn resolve(self, now_ms: u64, newest_ms: Option<u64>) -> Option<u64> {
        match self {
            EndAt::Now => Some(now_ms),
            EndAt::At(ms) => Some(ms),
            // Just past the newest sample, so the window (exclusive at its end) holds it.
            EndAt::Latest => newest_ms.map(|ms| ms + 1),
        }
    }

    /// How the end is written in a query string: `latest`, Unix ms, or nothing for now.
    pub fn query_value(self) -> Option<String> {
        match self {
            EndAt::Now => None,
            EndAt::At(ms) => Some(ms.to_string()),
            EndAt::Latest => Some("latest".to_string()),
        }
    }
}

/// The first line of an answer whose newest data is older than its window's end, or `None` when it is
/// current (or there is no data at all, which the answer says in its own words).
pub fn stale_note(newest_ms: Option<u64>, window_end_ms: u64) -> Option<String> {
    let newest = newest_ms?;
    let behind_ms = window_end_ms.checked_sub(newest)?;
    (behind_ms > STALE_AFTER_MS).then(|| {
        format!(
            "stale data: the newest sample is from {}, {} before the window's end; pass --end latest to \
             analyse the data as of then",
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(newest)),
            humantime::format_duration(Duration::from_secs(behind_ms / 60_000 * 60))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_parses_times_and_latest() {
        assert_eq!("latest".parse::<EndAt>(), Ok(EndAt::Latest));
        assert_eq!("now".parse::<EndAt>(), Ok(EndAt::Now));
        assert_eq!(
            "2023-11-20T00:00:00Z".parse::<EndAt>(),
            Ok(EndAt::At(1_700_438_400_000))
        );
        assert!("yesterday"
            .parse::<EndAt>()
            .unwrap_err()
            .contains("--end \"yesterday\""));
        assert_eq!(EndAt::Latest.resolve(10, Some(5)), Some(6));
        assert_eq!(EndAt::Now.resolve(10, Some(5)), Some(10));
        assert_eq!(EndAt::Latest.resolve(10, None), None);
    }

    #[test]
    fn stale_note_names_the_newest_sample_and_suggests_latest() {
        let end = 1_700_438_400_000;
        assert_eq!(
            stale_note(Some(end - 60_000), end),
            None,
            "a minute behind is lag"
        );
        assert_eq!(stale_note(None, end), None);
        let note = stale_note(Some(end - 20 * 60_000), end).unwrap();
        assert_eq!(
            note,
            "stale data: the newest sample is from 2023-11-19T23:40:00Z, 20m before the window's end; pass \
             --end latest to analyse the data as of then"
        );
    }
}
