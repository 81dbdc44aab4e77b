//! A thread at low CPU priority for the reports the collector recomputes on its own: the web view's sizing
//! report and the headroom alarms' forecast, once a minute each.
//!
//! At 20,000 hosts the sizing report reads about a minute of raw rows of every host (the tail past the
//! minute rollups): seconds of CPU. On the runtime's blocking threads, at the same priority as ingest, that
//! took the core a collector pinned to one core needed for the QUIC driver, and the socket overflowed once
//! a minute (issue 12, bench/RESULTS.md). At nice 10 the kernel gives this thread about a tenth of a
//! contended core: the reports take longer under load, and ingest keeps what it needs. Raising a thread's
//! nice value needs no privilege; lowering it again would, so these jobs get a thread of their own.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;
use tracing::warn;

/// The nice value of the background thread (0 is the default, 19 the lowest priority).
pub const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

fn queue() -> &'static Mutex<Sender<Job>> {
    static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = channel::<Job>();
        std::thread::Builder::new()
            .name("background".into())
            .spawn(move || {
                lower_priority();
                for job in receiver {
                    job();
                }
            })
            .expect("spawning the background thread");
        Mutex::new(sender)
    })
}

fn lower_priority() {
    if let Err(error) = headroom_common::thread::lower_this_thread(NICE) {
        warn!(
            %error,
            "could not lower the background thread's priority; reports compete with ingest for the CPU"
        );
    }
}

/// Runs `job` on the background thread, one job at a time in the order given; `None` if it panicked.
pub async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    let wrapped: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        let _ = reply.send(outcome.ok());
    });
    let sent = queue()
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
        let first = run(|| {
            (
                nice_of_this_thread(),
                std::thread::current().name().map(String::from),
            )
        });
        let (nice, name) = first.await.expect("the job ran");
        assert_eq!(nice, NICE.max(here), "the job ran at nice {nice}");
        assert_eq!(name.as_deref(), Some("background"));
        assert_eq!(nice_of_this_thread(), here, "the caller's priority is untouched");
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let jobs: Vec<_> = (0..5)
            .map(|n| {
                let order = order.clone();
                run(move || order.lock().unwrap().push(n))
            })
            .collect();
        for job in jobs {
            job.await.expect("ran");
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn issue_12_a_job_that_panics_answers_none_and_the_thread_goes_on() {
        assert_eq!(run(|| -> u32 { panic!("a report failed") }).await, None);
        assert_eq!(run(|| 7).await, Some(7));
    }
}
