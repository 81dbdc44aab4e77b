//! The driver's timers: deadlines on one heap for every connection, and the few each connection tracks.

use std::time::Instant;

/// A deadline on the timer heap: nanoseconds since the table's epoch, the connection's index and its slot's
/// generation. 16 bytes where an `Instant` and a `usize` took 32: the heap holds an entry or two per
/// connection (40,000 and more at 20,000 agents) and each pop walks it from the top, so half the bytes are
/// half the cache lines a pop touches.
pub(super) type TimerEntry = (u64, u32, u32);

/// The deadlines a connection has on the timer heap, earliest first; at most `QUEUED` are tracked.
///
/// The earliest is never later than the connection's real deadline, so the connection is run in time. An
/// entry that comes up after its deadline moved later (an acknowledgement stopped the retransmission timer)
/// is queued again only if no later entry of the connection already comes up by the new deadline. Queuing it
/// every time left one stale idle-timer entry per connection and second on the heap: about thirty per
/// connection, 600,000 at 20,000 agents, and the heap's pops the collector's largest single cost.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Queued {
    at: [Option<Instant>; QUEUED],
}

/// Entries beyond these stay on the heap untracked, and are skipped when they come up.
const QUEUED: usize = 3;

impl Queued {
    pub(super) fn earliest(&self) -> Option<Instant> {
        self.at[0]
    }

    /// Tracks a new entry; the latest tracked one is forgotten if there is no room.
    pub(super) fn insert(&mut self, deadline: Instant) {
        let mut carry = Some(deadline);
        for slot in &mut self.at {
            match (*slot, carry) {
                (_, None) => break,
                (None, Some(_)) => {
                    *slot = carry;
                    carry = None;
                }
                (Some(current), Some(new)) if new < current => {
                    *slot = Some(new);
                    carry = Some(current);
                }
                _ => {}
            }
        }
    }

    /// A tracked entry came up and the connection's deadline had moved later, to `due`: whether to queue an
    /// entry for `due` (tracked now) or leave it to a later entry that comes up by then.
    pub(super) fn requeue_for(&mut self, due: Instant) -> bool {
        if self.earliest().is_some_and(|next| next <= due) {
            return false;
        }
        self.insert(due);
        true
    }

    /// Whether `deadline` was tracked; it is forgotten.
    pub(super) fn remove(&mut self, deadline: Instant) -> bool {
        let Some(position) = self.at.iter().position(|at| *at == Some(deadline)) else {
            return false;
        };
        self.at.copy_within(position + 1.., position);
        self.at[QUEUED - 1] = None;
        true
    }
}

/// `at` as nanoseconds since `epoch` (quinn's deadlines are never before the table was made; 584 years fit).
pub(super) fn ticks(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// The instant `at` nanoseconds after `epoch`: the inverse of [`ticks`], exact to the nanosecond.
pub(super) fn instant_at(epoch: Instant, at: u64) -> Instant {
    epoch + std::time::Duration::from_nanos(at)
}

/// The heap's entry for a connection's deadline. Connection handles index quinn-proto's table of live
/// connections, far below 2^32.
pub(super) fn timer_entry(epoch: Instant, deadline: Instant, index: usize, generation: u32) -> TimerEntry {
    (ticks(epoch, deadline), index as u32, generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::time::Duration;

    /// One connection's timer entries over a minute of an agent's traffic, with the driver's rules: each
    /// second a reply arms the retransmission timer (earlier than the idle timer: queued), the agent's
    /// acknowledgement moves the deadline back to the idle timer, 30 s after the last packet, and the
    /// retransmission entry comes up stale.
    #[test]
    fn issue_12_a_connection_keeps_a_few_timer_entries_however_long_it_streams() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut heap: BinaryHeap<Reverse<Instant>> = BinaryHeap::new();
        let mut queued = Queued::default();
        let mut most = 0;
        for n in 0..60u32 {
            let now = start + second * n;
            let idle = now + Duration::from_secs(30);
            let retransmit = now + Duration::from_millis(30);
            if queued.earliest().is_none_or(|at| retransmit < at) {
                queued.insert(retransmit);
                heap.push(Reverse(retransmit));
            }
            // The acknowledgement came: the real deadline is the idle timer. Every entry due by the next
            // second comes up and finds it later.
            while let Some(&Reverse(at)) = heap.peek() {
                if at > now + second / 2 {
                    break;
                }
                heap.pop();
                if queued.remove(at) && queued.requeue_for(idle) {
                    heap.push(Reverse(idle));
                }
            }
            assert!(
                queued.earliest().is_some_and(|at| at <= idle),
                "the connection stays queued in time"
            );
            most = most.max(heap.len());
        }
        assert!(most <= QUEUED, "{most} entries on the heap for one connection");
    }

    #[test]
    fn issue_12_a_timer_entry_takes_16_bytes_and_gives_its_deadline_back_exactly() {
        assert_eq!(std::mem::size_of::<Reverse<TimerEntry>>(), 16);
        let epoch = Instant::now();
        for offset_ns in [0, 1, 999, 25_000_001, 30_000_000_123, 86_400 * 1_000_000_000 + 7] {
            let deadline = epoch + Duration::from_nanos(offset_ns);
            let (at, index, generation) = timer_entry(epoch, deadline, 19_999, 7);
            assert_eq!((index, generation), (19_999, 7));
            // Queued matches the entry that comes up against the deadline it tracked: the two must be equal.
            assert_eq!(instant_at(epoch, at), deadline);
        }
        // Earlier deadlines order first, whatever the connection.
        let early = timer_entry(epoch, epoch + Duration::from_millis(5), 9, 1);
        let late = timer_entry(epoch, epoch + Duration::from_millis(6), 1, 1);
        assert!(Reverse(early) > Reverse(late));
    }

    #[test]
    fn issue_12_queued_keeps_the_earliest_deadlines_in_order() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut queued = Queued::default();
        for ms in [50, 10, 30, 20] {
            queued.insert(at(ms));
        }
        // Room for three: the latest (50) is forgotten, and would be skipped when it comes up.
        assert_eq!(queued.at, [Some(at(10)), Some(at(20)), Some(at(30))]);
        assert!(!queued.remove(at(50)));
        assert!(queued.remove(at(20)));
        assert_eq!(queued.at, [Some(at(10)), Some(at(30)), None]);
        assert!(queued.remove(at(10)));
        assert_eq!(queued.earliest(), Some(at(30)));
        // A later entry comes up by the new deadline: nothing more is queued.
        assert!(!queued.requeue_for(at(40)));
        assert!(queued.requeue_for(at(25)));
        assert_eq!(queued.earliest(), Some(at(25)));
    }
}
