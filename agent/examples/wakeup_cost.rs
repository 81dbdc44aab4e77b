//! CPU cost of one wake-up of a sleeping process on this machine: the figure behind `timer`'s choice of one
//! wake-up per deadline. A thread sleeps in epoll_wait with a timeout, as the agent's runtime does between
//! events, RATE times a second for SECONDS seconds, doing nothing else; its CPU time (schedstat) over the
//! wake-ups is printed, at each rate given, one after the other.
//!
//! Usage: `cargo run --release -p headroom-agent --example wakeup_cost -- [SECONDS] [RATE...]`
//! (defaults: 20 s at 1, 10 and 50 wake-ups a second).

use std::time::Instant;

/// This thread's time on CPU in nanoseconds and how many times it was put on a CPU.
fn schedstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("reading schedstat");
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    (fields[0], fields[2])
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("SECONDS and RATEs are whole numbers"))
        .collect();
    let seconds = args.first().copied().unwrap_or(20);
    let rates = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        vec![1, 10, 50]
    };
    // SAFETY: plain epoll_create1; the descriptor lives until the process ends.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epoll >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
    println!("| wake-ups a second | seconds | CPU µs a wake-up | times on a CPU |");
    println!("|--:|--:|--:|--:|");
    for rate in rates {
        let timeout_ms = i32::try_from(1000 / rate.max(1)).unwrap_or(1000);
        let wakeups = seconds * rate;
        let (start_ns, start_slices) = schedstat();
        let started = Instant::now();
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        for _ in 0..wakeups {
            // SAFETY: one event slot that we own; nothing is registered, so only the timeout ends the wait.
            unsafe { libc::epoll_wait(epoll, &mut event, 1, timeout_ms) };
        }
        let (end_ns, end_slices) = schedstat();
        let per_wakeup_us = (end_ns - start_ns) as f64 / 1000.0 / wakeups as f64;
        println!(
            "| {rate} | {:.1} | {per_wakeup_us:.1} | {} |",
            started.elapsed().as_secs_f64(),
            end_slices - start_slices
        );
    }
}
