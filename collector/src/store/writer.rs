//! The writer thread: owns the write connection, commits batches from ingest in groups (one transaction
//! for everything queued), replies to each submitter once its rows are durable, and runs maintenance
//! steps when ingest leaves it room.
//!
//! The queue is bounded: `commit` waits for a slot (a semaphore permit) before queueing, so when storage
//! falls behind, ingest slows down instead of growing memory. Ingest takes its slot (`reserve`) before it
//! decodes what a connection read, so what waits beyond the queue stays as received bytes.

use super::pacer::Pacer;
use super::{CommitOutcome, HostBatch, MaintainReport, Progress, Retention, Store, StoreError};
use headroom_common::clock::now_ms;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

/// The writer thread's nice value. When the network threads and the writer both want a full core, the
/// network threads go first: packets they do not read in time are dropped and retransmitted, while the
/// writer, delayed, commits more batches in one transaction and catches up. At 20,000 agents on one core
/// this halved the acknowledgement tail in alternating runs (issue 12, bench/RESULTS.md); at nice 5 the
/// writer still gets about a quarter of a contended core against one network thread, more than it uses.
pub const WRITER_NICE: i32 = 5;

/// How the writer thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSettings {
    /// Batches that may wait for the writer; `commit` waits beyond this.
    pub queue_capacity: usize,
    /// Most batches committed in one transaction.
    pub max_group_batches: usize,
    /// From when the first batch of a group was queued, how long to keep gathering more before committing. A commit
    /// costs a WAL write and sync whatever its size, so gathering for a few milliseconds turns one commit per
    /// agent batch into a few dozen per second under load, for a few milliseconds of acknowledgement latency.
    pub group_linger_ms: u64,
    pub retention: Retention,
    /// How often maintenance starts when it has nothing pending.
    pub maintenance_interval_ms: u64,
    /// Under sustained load, the longest ingest may keep maintenance from taking a step.
    pub maintenance_max_wait_ms: u64,
    /// While ingest commits, the share of one core maintenance may take (`pacer.rs`); 100 turns pacing off.
    pub maintenance_share_pct: u32,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            queue_capacity: 4096,
            max_group_batches: 4096,
            group_linger_ms: 20,
            retention: Retention::default(),
            maintenance_interval_ms: 10_000,
            maintenance_max_wait_ms: 250,
            maintenance_share_pct: 15,
        }
    }
}

/// Storage health for `/api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    /// The last write failed; `error` is its one-line message. Clears on the next successful write.
    Degraded {
        error: String,
        since_ms: u64,
    },
}

enum Message {
    Commit {
        batch: HostBatch,
        /// When it was queued: the writer's linger counts from the oldest batch's arrival.
        queued: Instant,
        /// The batch comes back with the outcome, so that its submitter can reuse its buffers.
        reply: oneshot::Sender<(Result<CommitOutcome, StoreError>, HostBatch)>,
        _permit: OwnedSemaphorePermit,
    },
    /// Alarm transitions and outlier flags; nobody waits for them.
    History {
        rows: super::history::HistoryRows,
        _permit: OwnedSemaphorePermit,
    },
    /// The remote acknowledged export rows up to `cursor`; `dropped_rows` were refused for good.
    ExportProgress {
        cursor: i64,
        dropped_rows: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
        _permit: OwnedSemaphorePermit,
    },
    #[cfg(test)]
    Execute(String, oneshot::Sender<()>),
}

/// A reserved place in the writer's queue (`StoreHandle::reserve`).
#[derive(Debug)]
pub struct QueueSlot(OwnedSemaphorePermit);

/// Cheap to clone; every clone submits to the same writer. Dropping all of them stops the writer.
#[derive(Clone)]
pub struct StoreHandle {
    sender: SyncSender<Message>,
    slots: Arc<Semaphore>,
    capacity: usize,
    progress: Progress,
    health: Arc<Mutex<StoreHealth>>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("queue_capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// Resolves once the rows are committed (durable). Err when the database refuses (disk full,
    /// read-only): nothing of the batch is stored and the agent must keep it.
    pub async fn commit(&self, batch: HostBatch) -> Result<CommitOutcome, StoreError> {
        self.commit_returning(batch).await.map(|(outcome, _)| outcome)
    }

    /// `commit`, handing the batch back once it is stored, so that the caller can fill it again without
    /// allocating its rows anew (and the writer frees nothing either).
    pub async fn commit_returning(&self, batch: HostBatch) -> Result<(CommitOutcome, HostBatch), StoreError> {
        self.commit_in(None, batch).await
    }

    /// A place in the writer's queue, taken ahead of the batch that will use it: ingest takes one before it
    /// decodes what it read, so that when the writer is behind, what waits for it stays as the bytes that
    /// arrived (smaller than the rows decoded from them), and no more batches are decoded than the queue
    /// holds and the writer is committing, not one per connection (issue 12: a reconnect storm's
    /// backlogs). Dropped unused, the place is free again.
    pub async fn reserve(&self) -> Result<QueueSlot, StoreError> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map(QueueSlot)
            .map_err(|_| StoreError::WriterStopped)
    }

    /// `reserve` if a place is free now.
    pub fn try_reserve(&self) -> Option<QueueSlot> {
        self.slots.clone().try_acquire_owned().ok().map(QueueSlot)
    }

    /// `commit_returning` in `slot` when one was reserved, else in the next free one.
    pub async fn commit_in(
        &self,
        slot: Option<QueueSlot>,
        batch: HostBatch,
    ) -> Result<(CommitOutcome, HostBatch), StoreError> {
        let (result, batch) = self
            .submit_in(slot, |reply, permit| Message::Commit {
                batch,
                queued: Instant::now(),
                reply,
                _permit: permit,
            })
            .await?;
        result.map(|outcome| (outcome, batch))
    }

    /// Queue a message once a slot is free and wait for the writer's reply.
    async fn submit<T>(
        &self,
        message: impl FnOnce(oneshot::Sender<T>, OwnedSemaphorePermit) -> Message,
    ) -> Result<T, StoreError> {
        self.submit_in(None, message).await
    }

    /// `submit` in `slot` when one was reserved.
    async fn submit_in<T>(
        &self,
        slot: Option<QueueSlot>,
        message: impl FnOnce(oneshot::Sender<T>, OwnedSemaphorePermit) -> Message,
    ) -> Result<T, StoreError> {
        let permit = match slot {
            Some(QueueSlot(permit)) => permit,
            None => self.reserve().await?.0,
        };
        let waiting = self.capacity.saturating_sub(self.slots.available_permits());
        crate::telemetry::global().store_queue_depth.set(waiting as i64);
        let (reply, answer) = oneshot::channel();
        match self.sender.try_send(message(reply, permit)) {
            Ok(()) => {}
            // A permit guarantees a free slot, so Full cannot happen; treat it like a stopped writer.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                return Err(StoreError::WriterStopped)
            }
        }
        answer.await.map_err(|_| StoreError::WriterStopped)
    }

    /// Persist the export cursor (and rows refused for good) on the writer's connection; resolves once durable.
    /// The exporter waits here, never ingest: it takes one queue slot like a batch does.
    pub async fn save_export_progress(&self, cursor: i64, dropped_rows: u64) -> Result<(), StoreError> {
        self.submit(|reply, permit| Message::ExportProgress {
            cursor,
            dropped_rows,
            reply,
            _permit: permit,
        })
        .await?
    }

    /// Queues alarm transitions and outlier flags for the writer (waits for a queue slot like `commit`, not
    /// for the write). A failed write shows in `health` and the log.
    pub async fn record_history(&self, rows: super::history::HistoryRows) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let QueueSlot(permit) = self.reserve().await?;
        self.sender
            .try_send(Message::History {
                rows,
                _permit: permit,
            })
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Last durably stored seq of `host` if it came from agent instance `instance_id`.
    pub fn last_seq(&self, host: &str, instance_id: u64) -> Option<u64> {
        let progress = self.progress.read().unwrap_or_else(|p| p.into_inner());
        progress
            .get(host)
            .filter(|p| p.instance_id == instance_id)
            .and_then(|p| p.last_seq)
    }

    /// When the collector last stored anything of `host` (any instance), on its own clock.
    pub fn last_seen_ms(&self, host: &str) -> Option<u64> {
        let progress = self
            .progress
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        progress.get(host).map(|p| p.last_seen_ms)
    }

    pub fn health(&self) -> StoreHealth {
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Run SQL on the writer's connection between batches (fault injection in tests).
    #[cfg(test)]
    pub(crate) async fn execute_for_test(&self, sql: &str) {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Execute(sql.to_string(), reply))
            .expect("writer running");
        answer.await.expect("writer replied");
    }
}

/// Start the writer thread with default settings and a queue of `queue_capacity` batches.
pub fn spawn_writer(store: Store, queue_capacity: usize) -> (StoreHandle, JoinHandle<()>) {
    spawn_writer_with(
        store,
        WriterSettings {
            queue_capacity,
            ..WriterSettings::default()
        },
    )
}

pub fn spawn_writer_with(store: Store, settings: WriterSettings) -> (StoreHandle, JoinHandle<()>) {
    let capacity = settings.queue_capacity.max(1);
    let (sender, receiver) = sync_channel(capacity);
    let health = Arc::new(Mutex::new(StoreHealth::Ok));
    let handle = StoreHandle {
        sender,
        slots: Arc::new(Semaphore::new(capacity)),
        capacity,
        progress: store.progress.clone(),
        health: health.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(store, receiver, settings, health))
        .expect("spawning the store writer thread");
    (handle, thread)
}

fn set_health(health: &Mutex<StoreHealth>, result: Result<(), &StoreError>) {
    let mut health = health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match (result, &*health) {
        (Ok(()), StoreHealth::Ok) => {}
        (Ok(()), StoreHealth::Degraded { .. }) => {
            info!("storage writes succeed again");
            *health = StoreHealth::Ok;
        }
        (Err(error), StoreHealth::Degraded { error: previous, .. }) if *previous == error.to_string() => {}
        (Err(error), _) => {
            warn!(%error, "storage write failed; batches are not acknowledged until it succeeds");
            *health = StoreHealth::Degraded {
                error: error.to_string(),
                since_ms: now_ms(),
            };
        }
    }
}

fn run(
    mut store: Store,
    receiver: Receiver<Message>,
    settings: WriterSettings,
    health: Arc<Mutex<StoreHealth>>,
) {
    if let Err(error) = headroom_common::thread::lower_this_thread(WRITER_NICE) {
        warn!(%error, "could not lower the store writer's priority; it competes with the network threads");
    }
    let interval = Duration::from_millis(settings.maintenance_interval_ms);
    let max_wait = Duration::from_millis(settings.maintenance_max_wait_ms);
    let mut next_cycle = Instant::now() + interval;
    let mut pending = false;
    let mut last_step = Instant::now();
    let mut report = MaintainReport::default();
    let mut pacer = Pacer::new(
        settings.maintenance_share_pct,
        PACER_MAX_CREDIT,
        PACER_BEHIND_AFTER,
        Instant::now(),
    );
    loop {
        let timeout = if pending {
            pacer.wait(Instant::now())
        } else {
            next_cycle.saturating_duration_since(Instant::now())
        };
        match receiver.recv_timeout(timeout) {
            Ok(first) => {
                // Sleep through the rest of the linger and then take what queued meanwhile, rather than waiting
                // on the queue: a waiting receiver makes every submitter's send a futex wake-up of this thread,
                // one per batch, while a sleeping one is woken by nobody. The linger counts from when the first
                // batch was queued, so a batch that waited through the previous commit is not held a whole
                // linger more: a sample waits at most the linger before its commit starts, where it waited up to
                // a commit and a linger before (quinn sends an ACK of its own when a reply takes over 25 ms).
                let rest = linger_left(&first, settings.group_linger_ms, Instant::now());
                if !rest.is_zero() {
                    std::thread::sleep(rest);
                }
                let mut group = vec![first];
                gather(&receiver, &mut group, settings.max_group_batches);
                if commit_group(&mut store, group, &health) {
                    pacer.committed(Instant::now());
                }
                // Sustained ingest must not starve retention and rollups: a cycle that is due starts even
                // when the queue never runs dry, and then takes a step at least every max_wait, within
                // the pacer's share.
                if !pending && Instant::now() >= next_cycle {
                    report = MaintainReport::default();
                    pending = true;
                    pacer.cycle(true, Instant::now());
                }
                if pending && last_step.elapsed() >= max_wait && pacer.wait(Instant::now()).is_zero() {
                    pending = paced_step(&mut store, &settings, &health, &mut report, &mut pacer);
                    last_step = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !pending {
                    report = MaintainReport::default();
                    pacer.cycle(true, Instant::now());
                } else if !pacer.wait(Instant::now()).is_zero() {
                    continue;
                }
                pending = paced_step(&mut store, &settings, &health, &mut report, &mut pacer);
                last_step = Instant::now();
                if !pending {
                    // paced_step has ended the pacer's cycle.
                    next_cycle = Instant::now() + interval;
                    if report.steps > 0 {
                        tracing::debug!(?report, "storage maintenance done");
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Every handle is gone and the queue is drained: leave hosts.last_seq current for a fast next open.
    if let Err(error) = store.sync_hosts() {
        warn!(%error, "could not record last sequence numbers at shutdown; they are recovered on next open");
    }
}

/// How much longer the writer gathers after `first` came off the queue at `now`: what is left of `linger_ms`
/// since `first` was queued. Messages nobody waits on for long (history rows, the export cursor) get the
/// whole linger.
fn linger_left(first: &Message, linger_ms: u64, now: Instant) -> Duration {
    let linger = Duration::from_millis(linger_ms);
    match first {
        Message::Commit { queued, .. } => linger.saturating_sub(now.saturating_duration_since(*queued)),
        _ => linger,
    }
}

/// Moves what is queued into `group`, up to `max` messages in all, without waiting.
fn gather(receiver: &Receiver<Message>, group: &mut Vec<Message>, max: usize) {
    while group.len() < max {
        match receiver.try_recv() {
            Ok(message) => group.push(message),
            Err(_) => break,
        }
    }
}

/// Most step time maintenance may bank while paced: a step or two.
const PACER_MAX_CREDIT: Duration = Duration::from_millis(100);

/// A maintenance cycle still running after this long is behind (a backlog after downtime, or rollups that
/// no longer fit the pacer's share): it runs unpaced until done.
const PACER_BEHIND_AFTER: Duration = Duration::from_secs(45);

/// One maintenance step, its time spent from the pacer's credit.
fn paced_step(
    store: &mut Store,
    settings: &WriterSettings,
    health: &Mutex<StoreHealth>,
    report: &mut MaintainReport,
    pacer: &mut Pacer,
) -> bool {
    let started = Instant::now();
    let more = maintenance_step(store, settings, health, report);
    let now = Instant::now();
    pacer.spent(now.duration_since(started), now);
    if !more {
        pacer.cycle(false, now);
    }
    more
}

fn maintenance_step(
    store: &mut Store,
    settings: &WriterSettings,
    health: &Mutex<StoreHealth>,
    report: &mut MaintainReport,
) -> bool {
    match store.maintain_step(now_ms(), &settings.retention, report) {
        Ok(more) => more,
        Err(error) => {
            set_health(health, Err(&error));
            false
        }
    }
}

/// Commits the group's batches in one transaction and answers its other messages; `true` if it held batches.
fn commit_group(store: &mut Store, group: Vec<Message>, health: &Mutex<StoreHealth>) -> bool {
    let mut batches = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    for message in group {
        match message {
            Message::Commit {
                batch,
                reply,
                _permit,
                ..
            } => {
                batches.push(batch);
                replies.push(reply);
            }
            Message::History { rows, _permit } => {
                let written = store.record_history(&rows);
                set_health(health, written.as_ref().map(|_| ()));
            }
            Message::ExportProgress {
                cursor,
                dropped_rows,
                reply,
                _permit,
            } => {
                let result = store.save_export_progress(cursor, dropped_rows);
                if let Err(error) = &result {
                    warn!(%error, "could not save the export cursor; rows after the last saved one are sent again");
                }
                let _ = reply.send(result);
            }
            #[cfg(test)]
            Message::Execute(sql, reply) => {
                store.conn.execute_batch(&sql).expect("test SQL runs");
                let _ = reply.send(());
            }
        }
    }
    if batches.is_empty() {
        return false;
    }
    let started = Instant::now();
    let committed = store.commit_batches(&batches);
    crate::telemetry::global().observe_commit(started.elapsed());
    match committed {
        Ok(outcomes) => {
            set_health(health, Ok(()));
            for ((reply, outcome), batch) in replies.into_iter().zip(outcomes).zip(batches) {
                let _ = reply.send((Ok(outcome), batch));
            }
        }
        Err(error)
            if batches.len() > 1
                && !matches!(error, StoreError::DiskFull { .. } | StoreError::ReadOnly { .. }) =>
        {
            // Something about one batch may have failed the group: retry each alone so only it fails.
            for (batch, reply) in batches.into_iter().zip(replies) {
                let result = store
                    .commit_batches(std::slice::from_ref(&batch))
                    .map(|mut o| o.remove(0));
                set_health(health, result.as_ref().map(|_| ()));
                let _ = reply.send((result, batch));
            }
        }
        Err(error) => {
            set_health(health, Err(&error));
            for (reply, batch) in replies.into_iter().zip(batches) {
                let _ = reply.send((Err(error.clone()), batch));
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(sender: &SyncSender<Message>, sql: &str) {
        let (reply, _answer) = oneshot::channel();
        sender
            .send(Message::Execute(sql.to_string(), reply))
            .expect("queue open");
    }

    #[tokio::test]
    async fn issue_12_the_writer_runs_below_the_network_threads() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("headroom.db"), 1_700_000_000_000).unwrap();
        let (handle, thread) = spawn_writer(store, 8);
        // Answered by the writer thread, so it has set its priority (the first thing it does).
        handle.execute_for_test("SELECT 1").await;
        let nice_of_writers: Vec<i32> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let path = task.ok()?.path();
                let name = std::fs::read_to_string(path.join("comm")).ok()?;
                let stat = std::fs::read_to_string(path.join("stat")).ok()?;
                // Field 19 is the nice value; fields count from after the parenthesised name.
                let nice = stat[stat.rfind(')')? + 2..].split(' ').nth(16)?.parse().ok()?;
                (name.trim() == "store-writer").then_some(nice)
            })
            .collect();
        // A suite run under `nice` starts every thread there already.
        let expected = WRITER_NICE.max(headroom_common::thread::nice_of_this_thread());
        assert!(
            nice_of_writers.contains(&expected),
            "store writer threads at nice {nice_of_writers:?}, expected {expected}"
        );
        drop(handle);
        thread.join().unwrap();
    }

    #[test]
    fn issue_12_the_linger_counts_from_when_the_first_batch_was_queued() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let (reply, _answer) = oneshot::channel();
        let commit = Message::Commit {
            batch: HostBatch::default(),
            queued: start,
            reply,
            _permit: slots.try_acquire_owned().unwrap(),
        };
        // Taken off the queue at once: the whole linger.
        assert_eq!(linger_left(&commit, 20, start), ms(20));
        // It waited 15 ms through the commit before: 5 ms are left, not 20.
        assert_eq!(linger_left(&commit, 20, start + ms(15)), ms(5));
        // It waited longer than the linger: committed at once.
        assert_eq!(linger_left(&commit, 20, start + ms(30)), Duration::ZERO);
        // Nobody waits on an answer to SQL run between batches (tests) or on history rows for long.
        let (reply, _answer) = oneshot::channel();
        let other = Message::Execute("SELECT 1".to_string(), reply);
        assert_eq!(linger_left(&other, 20, start + ms(30)), ms(20));
    }

    #[test]
    fn issue_12_a_group_takes_what_queued_during_the_linger_up_to_its_limit() {
        let (sender, receiver) = sync_channel(8);
        for n in 0..5 {
            queued(&sender, &format!("SELECT {n}"));
        }
        let mut group = Vec::new();
        gather(&receiver, &mut group, 3);
        assert_eq!(group.len(), 3);
        gather(&receiver, &mut group, 10);
        assert_eq!(group.len(), 5);
        // An empty queue ends the group at once; the order is the queue's.
        gather(&receiver, &mut group, 10);
        let order: Vec<String> = group
            .iter()
            .map(|message| match message {
                Message::Execute(sql, _) => sql.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(
            order,
            ["SELECT 0", "SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4"]
        );
    }
}
