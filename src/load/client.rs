//! The HTTP/1.1 client side of a load run: one task per keep-alive
//! connection, all running the same worker loop whatever the pacing and stop
//! condition, each request ending in exactly one [`Record`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout_at};

use super::pacing::{Pacer, WaitClock};
use super::plan::{LoadPlan, Pacing, Stop};
use super::stats::{Outcome, Record};
use super::wire::{Connection, EncodedRequest};

/// The state the workers share: the plan, the clock and the slot counter.
#[derive(Debug)]
pub struct Schedule {
    plan: LoadPlan,
    addr: SocketAddr,
    start: Instant,
    warmup_end: Instant,
    /// Next schedule slot to hand out (counts warm-up slots too).
    next_slot: AtomicU64,
    /// Measured (post-warm-up) slots handed out, for [`Stop::Count`].
    measured_slots: AtomicU64,
    /// Most measured slots the run may hand out: the count of a count
    /// stop; on a fixed schedule also rate x window, rounded down, so the
    /// achieved rate can never exceed the offered one.
    measured_cap: Option<u64>,
    /// The fixed request, encoded once.
    request: EncodedRequest,
    /// Time the workers spent yielding until their slots were due (the CPU
    /// price of precise pacing), counted from the measured phase on.
    waits: WaitClock,
}

/// One request a worker has claimed.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Its start on the fixed schedule; `None` in closed loop (due now).
    due: Option<Instant>,
    claimed: Instant,
}

impl Schedule {
    pub fn new(plan: LoadPlan, addr: SocketAddr, start: Instant) -> Self {
        let measured_cap = match (plan.stop, plan.pacing) {
            (Stop::Count(n), _) => Some(n),
            (Stop::After(d), Pacing::Fixed { per_sec }) => Some((per_sec * d.as_secs_f64() + 1e-9).floor() as u64),
            (Stop::After(_), Pacing::Closed) => None,
        };
        let request = EncodedRequest::new(&plan.method, &plan.target.path_and_query, &plan.headers, &plan.body);
        Schedule {
            warmup_end: start + plan.warmup,
            measured_cap,
            request,
            waits: WaitClock::new(start),
            plan,
            addr,
            start,
            next_slot: AtomicU64::new(0),
            measured_slots: AtomicU64::new(0),
        }
    }

    /// Hands out the next slot, or `None` once the stop condition is met.
    /// Slots are claimed one at a time from a shared counter, so a
    /// connection that is stuck never holds back the schedule of the others.
    fn claim(&self) -> Option<Slot> {
        let claimed = Instant::now();
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let due = self.plan.pacing.slot_offset(slot).map(|o| self.start + o);
        let at = due.unwrap_or(claimed);
        if at >= self.warmup_end {
            let past_window = match self.plan.stop {
                Stop::After(d) => at >= self.warmup_end + d,
                Stop::Count(_) => false,
            };
            let stop = past_window
                || self
                    .measured_cap
                    .is_some_and(|cap| self.measured_slots.fetch_add(1, Ordering::Relaxed) >= cap);
            if stop {
                return None;
            }
        }
        Some(Slot { due, claimed })
    }

    /// Time the workers spent yielding until their slots were due, over
    /// the measured phase (overlapping waits count once).
    pub fn wait_time(&self) -> Duration {
        self.waits.total()
    }
}

/// Bounded exponential backoff between reconnect attempts, so a server that
/// went away is retried promptly but never in a busy loop.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(1);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

impl Backoff {
    /// Delay after `failures` consecutive failures: 1 ms doubling to 100 ms.
    fn delay(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        (BACKOFF_FIRST * (1 << doublings)).min(BACKOFF_MAX)
    }

    fn failed(&mut self, now: Instant) {
        self.failures += 1;
        self.retry_at = Some(now + Self::delay(self.failures));
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    async fn wait(&self) {
        if let Some(at) = self.retry_at {
            sleep_until(at.into()).await;
        }
    }
}

/// One connection's worker: claims slots until the stop condition, sends
/// each request on its keep-alive connection (reconnecting with backoff
/// when it is gone) and reports one record per slot.
pub async fn worker(schedule: Arc<Schedule>, records: mpsc::Sender<Record>) {
    let plan = &schedule.plan;
    let mut conn: Option<Connection> = None;
    let mut backoff = Backoff::default();
    // Closed loop never waits for a slot: no timer needed.
    let mut pacer = plan.pacing.rate_per_sec().map(|_| Pacer::new());
    while let Some(slot) = schedule.claim() {
        if let (Some(due), Some(pacer)) = (slot.due, pacer.as_mut()) {
            if due >= schedule.warmup_end {
                schedule.waits.start_counting();
            }
            pacer.wait_until(due, &schedule.waits).await;
        }
        let scheduled = slot.due.unwrap_or(slot.claimed);
        let mut sent = None;
        // The timeout runs from the scheduled start: a request the generator
        // could not even send within it has timed out for its user too.
        let result = timeout_at(
            (scheduled + plan.timeout).into(),
            exchange(&schedule, &mut conn, &backoff, &mut sent),
        )
        .await;
        let done = Instant::now();
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(outcome)) => outcome,
            Err(_elapsed) => Outcome::Timeout,
        };
        if matches!(outcome, Outcome::Ok | Outcome::Status4xx | Outcome::Status5xx) {
            backoff.succeeded();
        } else {
            // The connection's state is unknown after a failure: start afresh.
            conn = None;
            backoff.failed(done);
        }
        let record = Record {
            // Closed loop: due when sent, so latency equals service time.
            scheduled: match (plan.pacing, sent) {
                (Pacing::Closed, Some(sent)) => sent,
                _ => scheduled,
            },
            sent,
            done,
            outcome,
        };
        if records.send(record).await.is_err() {
            break; // the collector is gone; nobody is listening
        }
    }
}

/// Sends one request and reads the whole response. `Ok` carries the status
/// outcome; `Err` the failure class. `sent` is set when the request is
/// written to the connection.
async fn exchange(
    schedule: &Schedule,
    conn: &mut Option<Connection>,
    backoff: &Backoff,
    sent: &mut Option<Instant>,
) -> Result<Outcome, Outcome> {
    // A kept-alive connection the server closed while it was idle is
    // replaced without counting a failure: nothing was sent on it.
    if conn.as_mut().is_some_and(Connection::stale) {
        *conn = None;
    }
    if conn.is_none() {
        backoff.wait().await;
        *conn = Some(Connection::connect(schedule.addr).await?);
    }
    let c = conn.as_mut().expect("connected above");
    *sent = Some(Instant::now());
    let response = c.exchange(&schedule.request).await?;
    if !response.keep_alive {
        *conn = None;
    }
    Ok(Outcome::of_code(response.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_bound() {
        let ms = |n| Backoff::delay(n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(7), ms(8)], [1, 2, 4, 64, 100]);
        assert_eq!(ms(1000), 100);
        let mut b = Backoff::default();
        let now = Instant::now();
        b.failed(now);
        b.failed(now);
        assert_eq!(b.retry_at, Some(now + Duration::from_millis(2)));
        b.succeeded();
        assert_eq!(b.retry_at, None);
    }

    #[test]
    fn io_errors_classified() {
        use super::super::wire::classify_io;
        use std::io;
        let c = |k| classify_io(&io::Error::from(k));
        assert_eq!(c(io::ErrorKind::ConnectionRefused), Outcome::Refused);
        assert_eq!(c(io::ErrorKind::ConnectionReset), Outcome::Reset);
        assert_eq!(c(io::ErrorKind::BrokenPipe), Outcome::Reset);
        assert_eq!(c(io::ErrorKind::TimedOut), Outcome::Timeout);
        assert_eq!(c(io::ErrorKind::AddrNotAvailable), Outcome::Io);
    }

    fn schedule(pacing: Pacing, stop: Stop, warmup: Duration) -> Schedule {
        let target = super::super::plan::parse_target("http://127.0.0.1:1/").unwrap();
        let mut plan = LoadPlan::new(target);
        plan.pacing = pacing;
        plan.stop = stop;
        plan.warmup = warmup;
        Schedule::new(plan, "127.0.0.1:1".parse().unwrap(), Instant::now())
    }

    #[test]
    fn fixed_rate_stops_at_the_deadline() {
        // 100 req/s for 1 s after 0.5 s of warm-up: slots 0..150.
        let s = schedule(
            Pacing::Fixed { per_sec: 100.0 },
            Stop::After(Duration::from_secs(1)),
            Duration::from_millis(500),
        );
        let slots: Vec<_> = std::iter::from_fn(|| s.claim()).collect();
        assert_eq!(slots.len(), 150);
        let last = slots.last().unwrap().due.unwrap();
        assert_eq!(last - s.start, Duration::from_millis(1490));
    }

    #[test]
    fn count_stop_counts_measured_slots_only() {
        let s = schedule(
            Pacing::Fixed { per_sec: 10.0 },
            Stop::Count(5),
            Duration::from_millis(300),
        );
        // 3 warm-up slots (0, 100, 200 ms), then 5 measured ones.
        assert_eq!(std::iter::from_fn(|| s.claim()).count(), 8);
        let closed = schedule(Pacing::Closed, Stop::Count(3), Duration::ZERO);
        assert_eq!(std::iter::from_fn(|| closed.claim()).count(), 3);
    }
}
