//! CPU cost of the three sock_diag dumps the agent chooses between, on this host's sockets as they are: the
//! full pass (every state but LISTEN), the pass over the rarer states (neither LISTEN nor ESTABLISHED: about
//! the cost of walking the established hash), and the ESTABLISHED sockets on listening ports through the
//! filter program. Each is timed as this thread's CPU time (the kernel's walk runs in our receive calls),
//! 15 times in turn; medians are printed. The figures behind `FullPassPolicy::pass_kind` come from it.
//!
//! Usage, with sockets held on the host (e.g. `python3 bench/footprint/footprint.py hold --connections 9950`
//! in a few processes): `cargo run --release -p headroom-agent --example dump_cost`.

use headroom_agent::sampler::netlink::{
    local_port_filter, DiagSocket, ALL_STATES, ESTABLISHED_ONLY, LISTEN_ONLY,
};
use std::time::Duration;

const ROUNDS: usize = 15;

fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we hand it.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut diag = DiagSocket::open()?;
    let mut ports = Vec::new();
    diag.dump(LISTEN_ONLY, &mut |socket| ports.push(socket.local_port))?;
    ports.sort_unstable();
    ports.dedup();
    let mut program = Vec::new();
    local_port_filter(&ports, &mut program);

    let names = [
        "every state but LISTEN",
        "rarer states only",
        "ESTABLISHED on listening ports",
    ];
    let mut costs: [Vec<Duration>; 3] = Default::default();
    let mut sockets = [0u64; 3];
    for _ in 0..ROUNDS {
        for (index, cost) in costs.iter_mut().enumerate() {
            let started = thread_cpu_time();
            sockets[index] = match index {
                0 => diag.dump(ALL_STATES & !LISTEN_ONLY, &mut |_| {})?,
                1 => diag.dump(ALL_STATES & !LISTEN_ONLY & !ESTABLISHED_ONLY, &mut |_| {})?,
                _ => diag.dump_filtered(ESTABLISHED_ONLY, &program, &mut |_| {})?,
            };
            cost.push(thread_cpu_time() - started);
        }
    }
    println!("{} listening ports; medians of {ROUNDS} dumps each", ports.len());
    for ((name, mut cost), sockets) in names.into_iter().zip(costs).zip(sockets) {
        cost.sort_unstable();
        println!(
            "{name}: {:.2} ms (min {:.2}, max {:.2}), {sockets} sockets reported",
            cost[ROUNDS / 2].as_secs_f64() * 1e3,
            cost[0].as_secs_f64() * 1e3,
            cost[ROUNDS - 1].as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
