//! Timers on timerfd(2) for the agent's steady timers: the sampling tick, the QUIC connection's timer
//! (acknowledgement delay, loss detection, keep-alive, idle timeout; see `uplink::QuicRuntime`) and the
//! acknowledgement check.
//!
//! tokio's timer wheel, the default for all three, wakes a sleeping runtime twice for most deadlines: once at the
//! start of the wheel slot that holds it (slots are 64 ms wide for deadlines 64 ms to 4 s away, and levels
//! are aligned to absolute time, so a 25 ms deadline crossing a 64 ms boundary counts too), and again at the
//! deadline, which it may also reach in two sleeps when the millisecond rounding of epoll's timeout wakes it
//! a little early. An idle agent's second has three things to wake for (the tick, the collector's reply, the
//! acknowledgement it owes the collector 25 ms later); tokio made that seven wake-ups. A timerfd wakes
//! the runtime once, at its deadline, through the same epoll the sockets use, and each wake-up of a sleeping
//! process costs 50–65 µs of CPU on this project's benchmark machine (`bench/RESULTS.md`, "Fewer wake-ups").

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A CLOCK_MONOTONIC timerfd registered with the current tokio runtime.
#[derive(Debug)]
pub struct TimerFd {
    fd: AsyncFd<OwnedFd>,
}

/// Longest setting written: a year, which fits any `time_t`.
const MAX_TIMER_SECS: u64 = 365 * 86_400;

fn timespec(duration: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: duration.as_secs().min(MAX_TIMER_SECS) as _,
        tv_nsec: duration.subsec_nanos() as _,
    }
}

impl TimerFd {
    /// A disarmed timer. Needs a tokio runtime with IO enabled.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: plain timerfd_create(2); the descriptor is checked before being owned.
        let raw =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd is open and owned by the AsyncFd for its whole life, and always names the
        // same timerfd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(TimerFd { fd })
    }

    /// Arms the timer to fire at `deadline` (at once if it has passed), and then every `period` if one is
    /// given. Replaces any earlier setting, and forgets expirations not yet taken.
    pub fn set(&self, deadline: Instant, period: Option<Duration>) -> io::Result<()> {
        // Relative to now: the kernel starts counting after this call, so the timer never fires before
        // `deadline`. A zero value would disarm it, hence at least a nanosecond.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        self.settime(timespec(wait), timespec(period.unwrap_or(Duration::ZERO)))
    }

    /// Disarms the timer: it will not fire until set again.
    pub fn disarm(&self) -> io::Result<()> {
        // A zero value disarms.
        self.settime(timespec(Duration::ZERO), timespec(Duration::ZERO))
    }

    fn settime(&self, value: libc::timespec, interval: libc::timespec) -> io::Result<()> {
        let setting = libc::itimerspec {
            it_interval: interval,
            it_value: value,
        };
        // SAFETY: `setting` is a valid itimerspec for the duration of the call; the old value is not asked for.
        let status = unsafe {
            libc::timerfd_settime(self.fd.get_ref().as_raw_fd(), 0, &setting, std::ptr::null_mut())
        };
        if status != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ready once the timer has fired since it was set or last polled ready, with how many times it fired.
    pub fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let mut count = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a buffer of 8 that we own.
            let read = unsafe { libc::read(self.fd.get_ref().as_raw_fd(), count.as_mut_ptr().cast(), 8) };
            if read == 8 {
                // A read takes every expiration: the timer is not readable again until it fires again,
                // which epoll reports as a new event. Forgetting the readiness now spares the next poll a
                // read that could only fail.
                guard.clear_ready();
                return Poll::Ready(Ok(u64::from_ne_bytes(count)));
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                // Readiness left over from an expiration that a later `set` forgot: wait for the next.
                io::ErrorKind::WouldBlock => guard.clear_ready(),
                io::ErrorKind::Interrupted => {}
                _ => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Waits until the timer fires; returns how many times it fired since the last wait.
    pub async fn fired(&self) -> io::Result<u64> {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await
    }
}

/// A one-shot deadline that can be moved and cleared: a timerfd, or tokio's sleep where a timerfd cannot be
/// had. Cleared, it wakes nobody (a tokio sleep left armed past its use still wakes the runtime when it
/// expires, and once or twice before that, see the module's note).
#[derive(Debug)]
pub struct Deadline {
    timer: Result<TimerFd, Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl Deadline {
    /// A cleared deadline.
    pub fn new() -> Deadline {
        let timer = TimerFd::new().map_err(|error| {
            tracing::debug!(%error, "no timerfd for a deadline; using tokio's timer");
            Box::pin(tokio::time::sleep(Duration::ZERO))
        });
        Deadline { timer, armed: false }
    }

    /// Fire at `deadline`.
    pub fn set(&mut self, deadline: Instant) {
        self.armed = true;
        match &mut self.timer {
            Ok(timer) => {
                if let Err(error) = timer.set(deadline, None) {
                    tracing::warn!(%error, "cannot set a timerfd; using tokio's timer");
                    let mut sleep = Box::pin(tokio::time::sleep(Duration::ZERO));
                    sleep.as_mut().reset(deadline.into());
                    self.timer = Err(sleep);
                }
            }
            Err(sleep) => sleep.as_mut().reset(deadline.into()),
        }
    }

    /// Fire never, until set again.
    pub fn clear(&mut self) {
        if !std::mem::replace(&mut self.armed, false) {
            return;
        }
        match &mut self.timer {
            Ok(timer) => {
                let _ = timer.disarm();
            }
            // Far enough to be never, and off the wheel's near levels.
            Err(sleep) => sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)),
        }
    }

    /// Waits until the deadline passes; pending forever while cleared.
    pub async fn fired(&mut self) {
        if !self.armed {
            return std::future::pending().await;
        }
        match &mut self.timer {
            // An error (not expected of a timerfd) counts as firing rather than hanging.
            Ok(timer) => {
                let _ = timer.fired().await;
            }
            Err(sleep) => sleep.as_mut().await,
        }
        self.armed = false;
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new()
    }
}

/// A periodic tick, the first at once, like `tokio::time::interval` with `MissedTickBehavior::Skip`: ticks
/// missed while the agent was busy are not made up for.
#[derive(Debug)]
pub struct Ticker {
    timer: TimerFd,
}

impl Ticker {
    pub fn new(period: Duration) -> io::Result<Ticker> {
        let timer = TimerFd::new()?;
        timer.set(Instant::now(), Some(period))?;
        Ok(Ticker { timer })
    }

    pub async fn tick(&self) -> io::Result<()> {
        self.timer.fired().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_timer_fires_at_its_deadline_not_before() {
        let timer = TimerFd::new().unwrap();
        let start = Instant::now();
        timer.set(start + Duration::from_millis(30), None).unwrap();
        assert_eq!(timer.fired().await.unwrap(), 1);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_new_setting_replaces_the_old_and_its_expirations() {
        let timer = TimerFd::new().unwrap();
        // Fired, not taken, then set again: only the new deadline counts.
        timer.set(Instant::now(), None).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let start = Instant::now();
        timer.set(start + Duration::from_millis(40), None).unwrap();
        timer.fired().await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_past_deadline_fires_at_once() {
        let timer = TimerFd::new().unwrap();
        timer.set(Instant::now() - Duration::from_secs(1), None).unwrap();
        let fired = tokio::time::timeout(Duration::from_secs(5), timer.fired()).await;
        assert_eq!(fired.unwrap().unwrap(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cleared_deadline_never_fires_and_a_set_one_does() {
        let mut deadline = Deadline::new();
        deadline.set(Instant::now() + Duration::from_millis(10));
        deadline.clear();
        let waited = tokio::time::timeout(Duration::from_millis(60), deadline.fired()).await;
        assert!(waited.is_err(), "a cleared deadline fired");
        let start = Instant::now();
        deadline.set(start + Duration::from_millis(20));
        deadline.fired().await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Fired once: pending again until set.
        let again = tokio::time::timeout(Duration::from_millis(40), deadline.fired()).await;
        assert!(again.is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_ticker_ticks_at_once_then_every_period() {
        let start = Instant::now();
        let ticker = Ticker::new(Duration::from_millis(20)).unwrap();
        ticker.tick().await.unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(20),
            "the first tick is at once"
        );
        for n in 1..=3u32 {
            ticker.tick().await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(20) * n);
        }
    }
}
