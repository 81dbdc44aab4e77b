//! The calling thread's CPU priority.

/// Raises the calling thread's nice value to `nice` (0 is the default, 19 the lowest priority); a thread
/// already at `nice` or above is left as it is. Linux applies `setpriority(PRIO_PROCESS, tid)` to the one
/// thread, and raising the value needs no privilege; lowering it again would, so work that must run at two
/// priorities needs two threads.
pub fn lower_this_thread(nice: i32) -> std::io::Result<()> {
    if nice_of_this_thread() >= nice {
        return Ok(());
    }
    // SAFETY: gettid has no preconditions; setpriority takes plain integers.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's nice value.
pub fn nice_of_this_thread() -> i32 {
    // SAFETY: as above. getpriority can return -1 legitimately, which is a nice value too.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
}

/// Puts the calling thread in the `SCHED_IDLE` class: it runs when no thread of the normal class wants the
/// CPU, and a normal thread that wakes takes the CPU from it at once. A raised nice value only weighs the
/// share: two nice-10 threads still took 20-46 % of a full core beside a busy network thread for seconds
/// (issue 12). The class keeps a small share
/// (weight 3 against 1,024 at nice 0), so the thread's work is slowed, never stopped. Switching into it needs
/// no privilege; leaving it would.
pub fn idle_this_thread() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call's duration.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether the calling thread is in the `SCHED_IDLE` class.
pub fn this_thread_is_idle_class() -> bool {
    // SAFETY: pid 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let here = nice_of_this_thread();
        let target = (here + 3).min(19);
        let there = std::thread::spawn(move || {
            lower_this_thread(target).unwrap();
            // Asking for less than it has does not raise it again (that would need privilege).
            lower_this_thread(target - 1).unwrap();
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(there, target);
        assert_eq!(nice_of_this_thread(), here, "the caller's priority is untouched");
    }

    #[test]
    fn issue_12_only_the_calling_thread_goes_to_the_idle_class() {
        let there = std::thread::spawn(|| {
            idle_this_thread().unwrap();
            this_thread_is_idle_class()
        })
        .join()
        .unwrap();
        assert!(there);
        assert!(!this_thread_is_idle_class(), "the caller's class is untouched");
    }
}
