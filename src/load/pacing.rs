//! Precise waiting for an open-loop slot. Tokio's timer has 1 ms
//! resolution (a sleep ends on the first millisecond tick at or after its
//! deadline), so on its own it sends each request up to a millisecond late,
//! and that lateness would be counted as the server's latency.
//!
//! The run's one pacer task (`client::pace`) owns a timerfd (a kernel
//! high-resolution timer that the tokio reactor watches like a socket). It
//! is armed for [`YIELD_LEAD`] before the slot. After it fires, the task yields to
//! the runtime until the due time: the connections' tasks and the I/O
//! driver keep running meanwhile, and the slot is handed to a connection
//! within microseconds of its time. Without a timerfd (not Linux, or none left) the tokio timer
//! sleeps until [`TOKIO_TIMER_LEAD`] before the slot and the yielding covers
//! the rest, at a higher CPU price. The yielding time is measured
//! ([`WaitClock`]) and reported as `pacing_wait_percent`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// How long before a slot the timerfd hands over to yielding, by default
/// (`--pacing-lead`): it must cover the timer's wake-up latency, or the
/// slot is late by the rest. Measured on the 2-core VM this was written
/// on (docs/load.md, "Pacing precision"), a timerfd woke 31 us late at the
/// median, 100 us at p90 and 200-280 us at p99 (a thread at real-time
/// priority, the machine busy): with a 30 us lead a send was 100 us late
/// at p90 and 180-210 us at p99; with 200 us, 0 and 36-51 us. The price is
/// CPU: the pacer yields up to this long per slot (all the time from
/// 5,000 req/s on), which `pacing_wait_percent` reports and the CPU
/// warning does not count as busy.
pub(super) const YIELD_LEAD: Duration = Duration::from_micros(200);
/// The same for the 1 ms tokio timer: one tick plus wake-up jitter.
pub(super) const TOKIO_TIMER_LEAD: Duration = Duration::from_micros(1_300);

/// A timerfd on `CLOCK_MONOTONIC` (the clock of [`Instant`] on Linux).
#[derive(Debug)]
struct MonotonicTimer(TimerFd);

impl AsRawFd for MonotonicTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// The run's pacing timer.
#[derive(Debug)]
pub(super) struct Pacer {
    timer: Option<AsyncFd<MonotonicTimer>>,
    /// How long before a slot the timerfd wakes the pacer ([`YIELD_LEAD`]).
    lead: Duration,
}

impl Pacer {
    /// A pacer with its own timerfd, or with the tokio timer if none can
    /// be made. Call it inside the runtime.
    // `AsyncFd::new` is deprecated because an fd it does not own could be
    // closed while registered; here it owns the timerfd (the inner value),
    // which is closed only when the `AsyncFd` is dropped. Its replacement,
    // `register`, is `unsafe`, which this workspace denies.
    #[allow(deprecated)]
    pub(super) fn new(lead: Duration) -> Self {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(|fd| AsyncFd::new(MonotonicTimer(fd)).ok());
        Pacer { timer, lead }
    }

    /// Waits until `due`, recording the yielding time in `clock`.
    pub(super) async fn wait_until(&mut self, due: Instant, clock: &WaitClock) {
        let now = Instant::now();
        if due <= now {
            return;
        }
        let lead = if self.timer.is_some() {
            self.lead
        } else {
            TOKIO_TIMER_LEAD.max(self.lead)
        };
        if due - now > lead {
            let wake = due - lead;
            let slept = match &self.timer {
                Some(timer) => sleep_timerfd(timer, wake).await.is_ok(),
                None => false,
            };
            if !slept {
                tokio::time::sleep_until((due - TOKIO_TIMER_LEAD).into()).await;
            }
        }
        clock.enter();
        while Instant::now() < due {
            tokio::task::yield_now().await;
        }
        clock.leave();
    }
}

/// Sleeps on the timerfd until `wake` (an [`Instant`], turned into the
/// monotonic clock's absolute time).
async fn sleep_timerfd(timer: &AsyncFd<MonotonicTimer>, wake: Instant) -> io::Result<()> {
    let now_ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    let ahead = wake.saturating_duration_since(Instant::now());
    let at = now_ts + TimeSpec::from_duration(ahead);
    timer
        .get_ref()
        .0
        .set(Expiration::OneShot(at), TimerSetTimeFlags::TFD_TIMER_ABSTIME)?;
    loop {
        let mut guard = timer.readable().await?;
        match guard.try_io(|t| t.get_ref().0.wait().map_err(io::Error::from)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// Wall time during which at least one connection was yielding until its
/// slot: time the generator spent waiting that it would have given to any
/// other work. Overlapping waits count once.
#[derive(Debug, Default)]
pub(super) struct WaitClock {
    origin: Option<Instant>,
    waiting: AtomicU64,
    since_ns: AtomicU64,
    total_ns: AtomicU64,
    counting: std::sync::atomic::AtomicBool,
}

impl WaitClock {
    pub(super) fn new(origin: Instant) -> Self {
        WaitClock {
            origin: Some(origin),
            ..WaitClock::default()
        }
    }

    /// From now on, waits count (the measured phase has begun).
    pub(super) fn start_counting(&self) {
        self.counting.store(true, Ordering::Relaxed);
    }

    fn now_ns(&self) -> u64 {
        self.origin
            .map_or(0, |o| u64::try_from(o.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn enter(&self) {
        if self.waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.since_ns.store(self.now_ns(), Ordering::Relaxed);
        }
    }

    fn leave(&self) {
        if self.waiting.fetch_sub(1, Ordering::Relaxed) == 1 && self.counting.load(Ordering::Relaxed) {
            let since = self.since_ns.load(Ordering::Relaxed);
            self.total_ns
                .fetch_add(self.now_ns().saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// Total counted waiting time.
    pub(super) fn total(&self) -> Duration {
        Duration::from_nanos(self.total_ns.load(Ordering::Relaxed))
    }
}

/// The spans of time the pacer held a due slot while no connection was
/// idle: the server had every connection busy. A slot's **connection wait**
/// is the part of these spans after its due time and before its hand-over
/// (a slot can also wait behind an earlier slot that waited), and the rest
/// of its lateness is the generator's own (docs/load.md, "Send lag").
#[derive(Debug, Default)]
pub(super) struct IdleWaits {
    /// Spans `(from, to)` in time order, not overlapping (the pacer waits
    /// for one connection at a time), dropped once they end before the due
    /// time of the slot being handed over (later slots are due later).
    spans: VecDeque<(Instant, Instant)>,
    /// Their summed length, so that a hand-over costs O(1) however many
    /// spans a pacer that is behind has piled up: summing them for every
    /// slot made a pacer far behind slower with every slot (quadratic), so
    /// it fell further behind (docs/load.md, "Catching up").
    total: Duration,
}

impl IdleWaits {
    /// The pacer waited for an idle connection from `from` to `to`.
    pub(super) fn push(&mut self, from: Instant, to: Instant) {
        if to > from {
            self.spans.push_back((from, to));
            self.total += to - from;
        }
    }

    /// Waiting time after `due` (up to now): the connection wait of a slot
    /// due then and handed over now. Call it with due times in order.
    pub(super) fn since(&mut self, due: Instant) -> Duration {
        while let Some(&(from, to)) = self.spans.front() {
            if to > due {
                break;
            }
            self.spans.pop_front();
            self.total -= to - from;
        }
        // Only the first span left can have begun before `due`.
        match self.spans.front() {
            Some(&(from, _)) if from < due => self.total - (due - from),
            _ => self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_wait_is_the_idle_wait_after_the_due_time() {
        let t = Instant::now();
        let us = |n| t + Duration::from_micros(n);
        let mut w = IdleWaits::default();
        // Nothing waited: no connection wait, however late the slot.
        assert_eq!(w.since(us(0)), Duration::ZERO);
        w.push(us(100), us(400));
        w.push(us(500), us(500)); // empty: ignored
        // Due before the wait began: all of it; due inside it: the rest.
        assert_eq!(w.since(us(50)), Duration::from_micros(300));
        assert_eq!(w.since(us(300)), Duration::from_micros(100));
        w.push(us(600), us(700));
        assert_eq!(w.since(us(350)), Duration::from_micros(150));
        // Due after both: the first span is forgotten.
        assert_eq!(w.since(us(650)), Duration::from_micros(50));
        assert_eq!(w.spans.len(), 1);
        assert_eq!(w.since(us(800)), Duration::ZERO);
        assert!(w.spans.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn never_early_and_waits_are_clocked() {
        let clock = WaitClock::new(Instant::now());
        clock.start_counting();
        let mut pacer = Pacer::new(YIELD_LEAD);
        assert!(pacer.timer.is_some(), "timerfd available on Linux");
        for micros in [0u64, 20, 200, 2_500] {
            let due = Instant::now() + Duration::from_micros(micros);
            pacer.wait_until(due, &clock).await;
            assert!(Instant::now() >= due);
        }
        assert!(clock.total() > Duration::ZERO);
        assert!(clock.total() < Duration::from_millis(100));
        let mut fallback = Pacer {
            timer: None,
            lead: YIELD_LEAD,
        };
        let due = Instant::now() + Duration::from_millis(3);
        fallback.wait_until(due, &clock).await;
        assert!(Instant::now() >= due);
    }
}
