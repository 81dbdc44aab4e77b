//! Threads at low CPU priority for the work the collector does on its own schedule rather than for a
//! connection: the reports it recomputes (the web view's sizing report, the headroom alarms' forecast) and
//! the passes over the whole fleet (the web view's history summary, the outlier window, the alarm rules).
//!
//! At 20,000 hosts the sizing report read a minute of raw rows of every host (seconds of CPU; since then it
//! reads rolled-up minutes only, and each host's memory from what was added since the last refresh,
//! `store::kept_stats`, about a fifth of a second with a second or so once an hour) and each fleet pass
//! walks every host (tens to a hundred milliseconds). The report, on the runtime's blocking threads at
//! the same priority as ingest, took the core a collector pinned to one core needed for the QUIC driver, and
//! the socket overflowed once a minute; the passes, on a runtime thread, held every acknowledgement for about
//! 150 ms once a minute (issue 12, bench/RESULTS.md). At nice 10 such a thread weighs about a tenth
//! of a normal one when both want the CPU: the work takes longer under load. It is not nothing: beside a busy
//! runtime thread the sizing report and a pass still took 20-46 % of a full pinned core for the seconds a
//! report runs (bench/RESULTS.md). The `SCHED_IDLE` class, which yields to any waking thread, was tried and
//! left out: it leaves a thread a sliver of a busy machine's CPU whoever the load belongs to, and the alarms
//! of a collector that shares its host must not wait on the rest of the host's load. Raising a thread's nice value needs no privilege; lowering it again would, so this work gets
//! threads of its own.
//!
//! Two lanes, one thread each, so that a quick pass never waits behind a report of several seconds.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;
use tracing::warn;

/// The nice value of the background threads (0 is the default, 19 the lowest priority).
pub const NICE: i32 = 10;

/// Which thread a job runs on; each runs its jobs one at a time, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Reports that read the database: seconds each.
    Reports,
    /// Passes over the fleet in memory: milliseconds each, once a minute or once an alarm interval.
    Passes,
}

impl Lane {
    /// The thread's name, as `top -H` and the tests see it.
    pub fn thread_name(self) -> &'static str {
        match self {
            Lane::Reports => "background",
            Lane::Passes => "fleet-passes",
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

fn queue(lane: Lane) -> &'static Mutex<Sender<Job>> {
    static REPORTS: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    static PASSES: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    let cell = match lane {
        Lane::Reports => &REPORTS,
        Lane::Passes => &PASSES,
    };
    cell.get_or_init(|| {
        let (sender, receiver) = channel::<Job>();
        std::thread::Builder::new()
            .name(lane.thread_name().into())
            .spawn(move || {
                lower_priority(lane);
                for job in receiver {
                    job();
                }
            })
            .expect("spawning a background thread");
        Mutex::new(sender)
    })
}

fn lower_priority(lane: Lane) {
    if let Err(error) = headroom_common::thread::lower_this_thread(NICE) {
        warn!(
            %error,
            thread = lane.thread_name(),
            "could not lower a background thread's priority; its work competes with ingest for the CPU"
        );
    }
}

/// Runs `job` on the reports' thread; `None` if it panicked.
pub async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    run_on(Lane::Reports, job).await
}

/// Runs `job` on `lane`'s thread, after the jobs given to it before; `None` if it panicked.
pub async fn run_on<T: Send + 'static>(lane: Lane, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    let wrapped: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        let _ = reply.send(outcome.ok());
    });
    let sent = queue(lane)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(wrapped);
    if sent.is_err() {
        return None;
    }
    answer.await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    use headroom_common::thread::nice_of_this_thread;

    #[tokio::test]
    async fn issue_12_background_jobs_run_in_order_at_low_priority() {
        let here = nice_of_this_thread();
        for lane in [Lane::Reports, Lane::Passes] {
            let first = run_on(lane, || {
                (
                    nice_of_this_thread(),
                    std::thread::current().name().map(String::from),
                )
            });
            let (nice, name) = first.await.expect("the job ran");
            assert_eq!(nice, NICE.max(here), "the job ran at nice {nice}");
            assert_eq!(name.as_deref(), Some(lane.thread_name()));
            assert_eq!(nice_of_this_thread(), here, "the caller's priority is untouched");
            let order = std::sync::Arc::new(Mutex::new(Vec::new()));
            let jobs: Vec<_> = (0..5)
                .map(|n| {
                    let order = order.clone();
                    run_on(lane, move || order.lock().unwrap().push(n))
                })
                .collect();
            for job in jobs {
                job.await.expect("ran");
            }
            assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        }
    }

    #[tokio::test]
    async fn issue_12_a_pass_does_not_wait_behind_a_report() {
        use std::time::Duration;
        // A report that holds its thread until the pass has answered: were the two on one thread, the pass
        // would wait behind it and miss its deadline.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let report = tokio::spawn(run(move || {
            started_tx.send(()).unwrap();
            done_rx.recv_timeout(Duration::from_secs(10)).is_ok()
        }));
        let started = tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)));
        started.await.unwrap().expect("the report started");
        let pass = tokio::time::timeout(Duration::from_secs(5), run_on(Lane::Passes, || 7)).await;
        assert_eq!(
            pass.ok().flatten(),
            Some(7),
            "the pass ran while the report held its thread"
        );
        done_tx.send(()).unwrap();
        assert_eq!(
            report.await.unwrap(),
            Some(true),
            "the report saw the pass finish first"
        );
    }

    #[tokio::test]
    async fn issue_12_a_job_that_panics_answers_none_and_the_thread_goes_on() {
        assert_eq!(run(|| -> u32 { panic!("a report failed") }).await, None);
        assert_eq!(run(|| 7).await, Some(7));
    }
}
