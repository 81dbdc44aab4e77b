//! The line of validated connections waiting for a handshake slot on the streaming listener.
//!
//! A slot freed by a finished handshake goes to the front of the line from the task that freed it, at once:
//! the accept loop is one task among the connections' tasks, and in a reconnect storm it can wait hundreds of
//! milliseconds for its turn on a busy collector. Draining the line only from there left most slots idle
//! while the line was full and agents were refused (measured: 65 of 256 slots busy with 2,048 waiting). The
//! next connection's handshake also starts there (`Incoming::accept` sends the server's first flight), so a
//! slot's next handshake does not wait for a task of its own to be polled first.

use super::handshake::{HandshakeLimits, InProgress, Slot, Waiting};
use crate::quic::Incoming;
use crate::telemetry::{self, refusal};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

/// Starts a connection that was given a slot.
pub(crate) type Start = Box<dyn Fn(Incoming, Slot) + Send + Sync>;

/// Connections waiting for a slot, oldest first, shared by the accept loop and every task that frees a slot.
pub(crate) struct Line {
    waiting: Mutex<VecDeque<(Incoming, Instant, Waiting)>>,
    limits: HandshakeLimits,
    in_progress: InProgress,
    start: Start,
    /// Set when the listener stops: nothing more is started or held.
    stopped: AtomicBool,
    /// Connections refused because they waited past `max_wait`, for the listener's periodic log line.
    refused_late: AtomicU64,
}

impl Line {
    /// A line for the slots of `in_progress`; each slot released there gives the next in line its turn.
    pub(crate) fn new(limits: HandshakeLimits, in_progress: InProgress, start: Start) -> Arc<Line> {
        let line = Arc::new(Line {
            waiting: Mutex::new(VecDeque::new()),
            limits,
            in_progress: in_progress.clone(),
            start,
            stopped: AtomicBool::new(false),
            refused_late: AtomicU64::new(0),
        });
        // Weak: the table outlives the listener in no case, but a strong cycle would keep both forever.
        let weak: Weak<Line> = Arc::downgrade(&line);
        in_progress.on_release(Box::new(move || {
            if let Some(line) = weak.upgrade() {
                line.drain();
            }
        }));
        line
    }

    /// Starts a connection given a slot by the accept loop.
    pub(crate) fn start(&self, incoming: Incoming, slot: Slot) {
        (self.start)(incoming, slot);
    }

    /// Connections in line.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Puts a connection at the back of the line, counted against its address by `waiting`, and gives it a
    /// slot at once if one freed meanwhile.
    pub(crate) fn push(&self, incoming: Incoming, waiting: Waiting) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        self.lock().push_back((incoming, Instant::now(), waiting));
        self.drain();
    }

    /// Gives free slots to the front of the line, oldest first, refusing those that waited past `max_wait`.
    /// The start and the refusal happen outside the line's lock: a start that fails at once releases its slot,
    /// which drains again from here.
    pub(crate) fn drain(&self) {
        loop {
            let next = {
                let mut waiting = self.lock();
                let next = if self.stopped.load(Ordering::Acquire)
                    || self.in_progress.total() >= self.limits.max_in_progress
                {
                    None
                } else {
                    waiting.pop_front().map(|(incoming, arrived, guard)| {
                        drop(guard);
                        if self.limits.still_wanted(arrived.elapsed()) {
                            let slot = self.in_progress.begin(incoming.remote_address().ip());
                            (incoming, Some(slot))
                        } else {
                            (incoming, None)
                        }
                    })
                };
                if next.is_none() {
                    telemetry::global().handshakes_waiting.set(waiting.len() as i64);
                }
                next
            };
            let Some((incoming, slot)) = next else {
                break;
            };
            match slot {
                Some(slot) => (self.start)(incoming, slot),
                None => {
                    let mut late = 0;
                    super::refuse(incoming, refusal::BUSY, &mut late);
                    self.refused_late.fetch_add(late, Ordering::Relaxed);
                }
            }
        }
    }

    /// Connections refused for waiting too long since the last call.
    pub(crate) fn take_refused_late(&self) -> u64 {
        self.refused_late.swap(0, Ordering::Relaxed)
    }

    /// Stops the line: those in it are dropped unanswered (the endpoint closes), nothing more is started.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.lock().clear();
        telemetry::global().handshakes_waiting.set(0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Incoming, Instant, Waiting)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quic::tests::{pair, within};
    use std::time::Duration;

    type Started = Arc<Mutex<Vec<(Incoming, Slot)>>>;

    fn recording(limits: HandshakeLimits, table: &InProgress) -> (Arc<Line>, Started) {
        let started: Started = Arc::default();
        let start: Start = Box::new({
            let started = started.clone();
            move |incoming, slot| started.lock().unwrap().push((incoming, slot))
        });
        (Line::new(limits, table.clone(), start), started)
    }

    #[tokio::test]
    async fn issue_12_a_slot_released_anywhere_goes_to_the_next_in_line_at_once() {
        let pair = pair(crate::quic::TransportConfig::default());
        let table = InProgress::default();
        let (line, started) = recording(HandshakeLimits::with_slots(1), &table);
        let _clients = [pair.connect(), pair.connect()];
        let first = within(pair.server.accept()).await.unwrap();
        let second = within(pair.server.accept()).await.unwrap();
        let source = first.remote_address().ip();
        let held = table.begin(source);
        line.push(first, table.wait(source));
        line.push(second, table.wait(source));
        assert_eq!(
            (line.len(), started.lock().unwrap().len()),
            (2, 0),
            "the only slot is held"
        );
        // Released on a thread of its own: no accept loop and no task of the listener runs.
        std::thread::spawn(move || drop(held)).join().unwrap();
        assert_eq!((line.len(), started.lock().unwrap().len()), (1, 1));
        assert_eq!(
            table.counts(source),
            (1, 2),
            "one slot taken, one connection waiting"
        );
        // The started connection's slot frees in turn: the last one is started.
        let (_incoming, slot) = started.lock().unwrap().pop().unwrap();
        drop(slot);
        assert_eq!((line.len(), started.lock().unwrap().len()), (0, 1));
        assert_eq!(table.counts(source), (1, 1));
        assert_eq!(line.take_refused_late(), 0);
    }

    #[tokio::test]
    async fn issue_12_a_turn_after_the_longest_wait_is_refused_and_a_stopped_line_holds_nothing() {
        let pair = pair(crate::quic::TransportConfig::default());
        let table = InProgress::default();
        let limits = HandshakeLimits {
            max_wait: Duration::ZERO,
            ..HandshakeLimits::with_slots(1)
        };
        let (line, started) = recording(limits, &table);
        let refused_client = pair.connect();
        let late = within(pair.server.accept()).await.unwrap();
        let source = late.remote_address().ip();
        let held = table.begin(source);
        line.push(late, table.wait(source));
        let pushed = Instant::now();
        while pushed.elapsed().is_zero() {
            std::hint::spin_loop();
        }
        drop(held);
        assert_eq!((line.len(), started.lock().unwrap().len()), (0, 0));
        assert_eq!(line.take_refused_late(), 1);
        assert_eq!(table.counts(source), (0, 0));
        // The client hears the refusal rather than waiting out its timeout.
        assert!(within(refused_client).await.is_err());

        let held = table.begin(source);
        line.stop();
        let _other = pair.connect();
        let after = within(pair.server.accept()).await.unwrap();
        line.push(after, table.wait(source));
        assert_eq!(line.len(), 0, "a stopped line holds nothing");
        drop(held);
        assert!(started.lock().unwrap().is_empty());
        assert_eq!(table.counts(source), (0, 0));
    }
}
