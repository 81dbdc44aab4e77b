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
}
