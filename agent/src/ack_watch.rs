//! When the agent gives up on a connection whose acknowledgements are late, as a decision over times.
//!
//! Late acknowledgements mean one of two things. The collector is gone (killed, or the path drops packets):
//! nothing at all comes back, and the sooner the agent reconnects the better. Or the collector is busy (many
//! agents catching up at once, its store writer behind, its share of the writer holding this host back): its
//! QUIC stack still acknowledges our packets at once, only the application's acknowledgement waits. Dropping
//! that connection makes things worse: the next one costs the collector a handshake and a hello, and the
//! samples in flight are sent again. So the agent reconnects when the collector has been *silent* for
//! [`SILENCE_TIMEOUT`], and waits up to [`STALLED_TIMEOUT`] for a collector that answers packets but
//! acknowledges no sample (a stuck connection is still replaced, only later).
//!
//! Pure: the caller feeds it times and the count of datagrams received on the connection (quinn's
//! `ConnectionStats::udp_rx`), so it is tested without sockets or clocks.

use std::time::Duration;

/// With samples in flight, a collector that sends nothing at all (no acknowledgement, no QUIC packet) for
/// this long is taken as gone.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(5);

/// With samples in flight, a collector that answers packets but acknowledges no sample for this long is taken
/// as stuck. Far above any wait a busy collector imposes (its store share holds a host back by seconds).
pub const STALLED_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the caller asks again while it waits: the granularity of the silence measure.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What to do with the connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckVerdict {
    /// Keep the connection.
    Keep,
    /// Nothing came back from the collector for [`SILENCE_TIMEOUT`] with samples in flight.
    Silent,
    /// The collector answered packets but acknowledged nothing for [`STALLED_TIMEOUT`].
    Stalled,
}

/// The acknowledgement state of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckWatch {
    /// Since when acknowledgements are owed: samples went out into an empty window, or the last
    /// acknowledgement that made progress. `None` while nothing is in flight.
    owed_since_ms: Option<u64>,
    /// When the last datagram from the collector was seen.
    heard_ms: u64,
    /// Datagrams received on the connection when last counted.
    datagrams: u64,
}

impl AckWatch {
    /// A watch for a connection established at `now_ms` (the handshake was the last thing heard).
    pub fn new(now_ms: u64) -> AckWatch {
        AckWatch {
            owed_since_ms: None,
            heard_ms: now_ms,
            datagrams: 0,
        }
    }

    /// Whether samples are in flight now: the clock starts when they go out into an empty window and stops
    /// when the window empties.
    pub fn in_flight(&mut self, in_flight: bool, now_ms: u64) {
        match (in_flight, self.owed_since_ms) {
            (true, None) => self.owed_since_ms = Some(now_ms),
            (false, Some(_)) => self.owed_since_ms = None,
            _ => {}
        }
    }

    /// An acknowledgement made progress.
    pub fn acked(&mut self, now_ms: u64) {
        self.heard_ms = self.heard_ms.max(now_ms);
        if self.owed_since_ms.is_some() {
            self.owed_since_ms = Some(now_ms);
        }
    }

    /// The connection's count of datagrams received so far; a higher count than last time means the
    /// collector is alive.
    pub fn datagrams_received(&mut self, total: u64, now_ms: u64) {
        if total > self.datagrams {
            self.datagrams = total;
            self.heard_ms = self.heard_ms.max(now_ms);
        }
    }

    /// The decision at `now_ms`.
    pub fn verdict(&self, now_ms: u64) -> AckVerdict {
        let Some(owed_since_ms) = self.owed_since_ms else {
            return AckVerdict::Keep;
        };
        // Silence counts from when acknowledgements became owed, not from an old quiet spell before that.
        let quiet_since_ms = self.heard_ms.max(owed_since_ms);
        if now_ms.saturating_sub(quiet_since_ms) >= SILENCE_TIMEOUT.as_millis() as u64 {
            AckVerdict::Silent
        } else if now_ms.saturating_sub(owed_since_ms) >= STALLED_TIMEOUT.as_millis() as u64 {
            AckVerdict::Stalled
        } else {
            AckVerdict::Keep
        }
    }

    /// Whether acknowledgements are owed (the caller checks again every [`CHECK_EVERY`] while they are).
    pub fn waiting(&self) -> bool {
        self.owed_since_ms.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENCE_MS: u64 = SILENCE_TIMEOUT.as_millis() as u64;
    const STALLED_MS: u64 = STALLED_TIMEOUT.as_millis() as u64;

    #[test]
    fn nothing_in_flight_never_times_out() {
        let mut watch = AckWatch::new(0);
        assert_eq!(watch.verdict(10 * STALLED_MS), AckVerdict::Keep);
        watch.in_flight(true, 1_000);
        watch.in_flight(false, 2_000);
        assert!(!watch.waiting());
        assert_eq!(watch.verdict(10 * STALLED_MS), AckVerdict::Keep);
    }

    #[test]
    fn a_silent_collector_is_left_after_the_silence_timeout() {
        // Killed with samples in flight: no acknowledgement, no packet.
        let mut watch = AckWatch::new(0);
        watch.datagrams_received(40, 900);
        watch.in_flight(true, 1_000);
        assert_eq!(watch.verdict(1_000 + SILENCE_MS - 1), AckVerdict::Keep);
        assert_eq!(watch.verdict(1_000 + SILENCE_MS), AckVerdict::Silent);
        // The same count again is not a sign of life.
        watch.datagrams_received(40, 3_000);
        assert_eq!(watch.verdict(1_000 + SILENCE_MS), AckVerdict::Silent);
    }

    #[test]
    fn issue_12_a_busy_collector_that_answers_packets_keeps_the_connection() {
        // The collector is behind: its QUIC stack acknowledges each packet, the samples wait for the store.
        let mut watch = AckWatch::new(0);
        watch.in_flight(true, 0);
        let mut datagrams = 0;
        for second in 1..STALLED_MS / 1000 {
            let now = second * 1000;
            datagrams += 2;
            watch.datagrams_received(datagrams, now);
            assert_eq!(watch.verdict(now), AckVerdict::Keep, "at {now} ms");
        }
        // An acknowledgement that makes progress restarts both clocks.
        watch.acked(STALLED_MS - 500);
        assert_eq!(watch.verdict(STALLED_MS + 1_000), AckVerdict::Keep);
        // A collector that keeps answering but never acknowledges is replaced, only much later.
        let mut stuck = AckWatch::new(0);
        stuck.in_flight(true, 0);
        for second in 1..=STALLED_MS / 1000 {
            stuck.datagrams_received(second, second * 1000);
        }
        assert_eq!(stuck.verdict(STALLED_MS - 1), AckVerdict::Keep);
        assert_eq!(stuck.verdict(STALLED_MS), AckVerdict::Stalled);
    }

    #[test]
    fn silence_counts_from_when_acknowledgements_became_owed() {
        // An idle connection hears nothing for a minute (keep-alives aside); the first sample after it must
        // get the full silence timeout, not be judged by the quiet minute before it.
        let mut watch = AckWatch::new(0);
        watch.in_flight(true, 60_000);
        assert_eq!(watch.verdict(60_000 + SILENCE_MS - 1), AckVerdict::Keep);
        assert_eq!(watch.verdict(60_000 + SILENCE_MS), AckVerdict::Silent);
    }

    #[test]
    fn the_collector_going_quiet_mid_wait_is_noticed() {
        let mut watch = AckWatch::new(0);
        watch.in_flight(true, 0);
        watch.datagrams_received(5, 3_000);
        assert_eq!(watch.verdict(3_000 + SILENCE_MS - 1), AckVerdict::Keep);
        assert_eq!(watch.verdict(3_000 + SILENCE_MS), AckVerdict::Silent);
    }
}
