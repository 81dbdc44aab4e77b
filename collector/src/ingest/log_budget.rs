//! A budget for the warning lines that peers can cause. A failed handshake is worth a warning (a host with a
//! revoked or foreign certificate), but a client that completes and fails handshakes as fast as it can would
//! otherwise write one line each and fill the disk the log lives on. The count of every refusal stays on
//! /metrics (`headroom_collector_connections_refused_total`); the log keeps the first lines of each window and
//! says how many it left out when it writes the next one.

/// At most `per_window` lines per `window_ms`; the rest are counted.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window_ms: u64,
    window_start_ms: u64,
    used: u32,
    left_out: u64,
}

/// Whether to write a line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVerdict {
    /// Write it; `left_out` lines were not written since the last one that was.
    Write { left_out: u64 },
    /// Leave it out; it is counted and reported with the next line written.
    LeaveOut,
}

impl LogBudget {
    pub const fn new(per_window: u32, window_ms: u64) -> Self {
        Self {
            per_window,
            window_ms,
            window_start_ms: 0,
            used: 0,
            left_out: 0,
        }
    }

    /// Decide for one line at `now_ms`.
    pub fn admit(&mut self, now_ms: u64) -> LogVerdict {
        if now_ms >= self.window_start_ms.saturating_add(self.window_ms) || now_ms < self.window_start_ms {
            self.window_start_ms = now_ms;
            self.used = 0;
        }
        if self.used < self.per_window {
            self.used += 1;
            LogVerdict::Write {
                left_out: std::mem::take(&mut self.left_out),
            }
        } else {
            self.left_out = self.left_out.saturating_add(1);
            LogVerdict::LeaveOut
        }
    }
}

/// `admit` on a budget shared by tasks; a poisoned lock still decides.
fn admit_shared(budget: &std::sync::Mutex<LogBudget>, now_ms: u64) -> LogVerdict {
    budget
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(now_ms)
}

/// The warning for a handshake from `peer` that failed with `error`, as `what` (like "handshake failed;
/// connection refused"), if `budget` allows one at `now_ms`; the first line after some were left out says how
/// many.
pub fn warn_handshake_failed(
    budget: &std::sync::Mutex<LogBudget>,
    now_ms: u64,
    peer: std::net::SocketAddr,
    error: &dyn std::fmt::Display,
    what: &str,
) {
    match admit_shared(budget, now_ms) {
        LogVerdict::Write { left_out: 0 } => tracing::warn!(%peer, %error, "{what}"),
        LogVerdict::Write { left_out } => tracing::warn!(
            %peer, %error, left_out,
            "{what} (left_out earlier failures were not logged; all are counted in \
             headroom_collector_connections_refused_total)"
        ),
        LogVerdict::LeaveOut => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_11_a_flood_of_failures_writes_a_few_lines_per_window_and_counts_the_rest() {
        let mut budget = LogBudget::new(3, 60_000);
        let verdicts: Vec<LogVerdict> = (0..1_000).map(|i| budget.admit(1_000 + i)).collect();
        let written = verdicts
            .iter()
            .filter(|v| matches!(v, LogVerdict::Write { .. }))
            .count();
        assert_eq!(written, 3);
        assert_eq!(verdicts[0], LogVerdict::Write { left_out: 0 });
        assert_eq!(verdicts[3], LogVerdict::LeaveOut);
        // The next window's first line says how many were left out.
        assert_eq!(budget.admit(61_000), LogVerdict::Write { left_out: 997 });
        assert_eq!(budget.admit(61_001), LogVerdict::Write { left_out: 0 });
    }

    #[test]
    fn issue_11_occasional_failures_are_all_written() {
        let mut budget = LogBudget::new(3, 60_000);
        for minute in 0..10u64 {
            for i in 0..3 {
                assert_eq!(
                    budget.admit(minute * 60_000 + i * 10_000),
                    LogVerdict::Write { left_out: 0 }
                );
            }
        }
    }

    #[test]
    fn a_clock_that_steps_back_starts_a_new_window() {
        let mut budget = LogBudget::new(1, 60_000);
        assert_eq!(budget.admit(100_000), LogVerdict::Write { left_out: 0 });
        assert_eq!(budget.admit(100_001), LogVerdict::LeaveOut);
        assert_eq!(budget.admit(50_000), LogVerdict::Write { left_out: 1 });
    }
}
