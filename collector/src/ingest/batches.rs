//! Batches for the store, lent to a connection for one commit at a time.
//!
//! A connection fills a batch with the rows of the samples it stores and the writer hands the batch back
//! once they are durable, so rows (their metric lists and detail buffers) are refilled rather than
//! allocated for every sample. Kept by each connection between its commits, those batches cost every
//! connected host about 3 KiB although only the commits in flight use one (issue 12: a heap profile at
//! 5,000 agents, `bench/RESULTS.md`); shared, the pool holds about as many as are in flight at once.

use crate::store::HostBatch;
use std::sync::Mutex;

/// Most batches the pool keeps: more than are in flight at 20,000 agents with tens of milliseconds of
/// commit latency (~20 per ms); a burst beyond it allocates, and what it returns past the cap is freed.
pub const KEEP_BATCHES: usize = 1024;

/// Rows a pooled batch keeps: a live agent sends one sample at a time, and a catch-up batch's hundreds of
/// rows must not stay in the pool afterwards.
pub const KEEP_ROWS: usize = 4;

#[derive(Default)]
pub struct BatchPool {
    spare: Mutex<Vec<HostBatch>>,
}

impl BatchPool {
    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<HostBatch>> {
        // A batch is plain buffers that the next user overwrites: a panic elsewhere cannot leave it wrong.
        self.spare.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A batch to fill: one given back earlier, or a new one. Its rows hold another host's last values;
    /// whoever fills it overwrites every field of the rows it uses and truncates the rest.
    pub fn take(&self) -> HostBatch {
        self.spare().pop().unwrap_or_default()
    }

    /// Takes `batch` back for the next commit, trimmed to [`KEEP_ROWS`] rows and without its hello and
    /// gaps; freed when the pool already holds [`KEEP_BATCHES`].
    pub fn give(&self, mut batch: HostBatch) {
        if batch.rows.capacity() > KEEP_ROWS {
            batch.rows.truncate(KEEP_ROWS);
            batch.rows.shrink_to(KEEP_ROWS);
        }
        batch.hello = None;
        batch.gaps = Vec::new();
        let mut spare = self.spare();
        if spare.len() < KEEP_BATCHES {
            spare.push(batch);
        }
    }

    /// Batches the pool holds now.
    pub fn len(&self) -> usize {
        self.spare().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SampleRow;

    #[test]
    fn issue_12_a_batch_comes_back_trimmed_and_the_pool_is_bounded() {
        let pool = BatchPool::default();
        let mut batch = pool.take();
        assert!(batch.rows.is_empty(), "a new batch when the pool is empty");
        batch.rows = (0..500).map(|_| SampleRow::default()).collect();
        batch.gaps = Vec::with_capacity(8);
        pool.give(batch);
        assert_eq!(pool.len(), 1);
        let again = pool.take();
        assert!(
            again.rows.capacity() <= KEEP_ROWS,
            "{} rows kept",
            again.rows.capacity()
        );
        assert_eq!(again.rows.len(), KEEP_ROWS);
        assert_eq!(again.gaps.capacity(), 0);
        assert!(again.hello.is_none());
        assert!(pool.is_empty());
        for _ in 0..KEEP_BATCHES + 10 {
            pool.give(HostBatch::default());
        }
        assert_eq!(pool.len(), KEEP_BATCHES, "what is given past the cap is freed");
    }
}
