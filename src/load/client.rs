//! The HTTP/1.1 client side of a load run: one task per keep-alive
//! connection, all running the same worker loop whatever the pacing and stop
//! condition, each request ending in exactly one [`Record`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Sleep, sleep_until};

use super::pacing::{IdleWaits, Pacer, WaitClock};
use super::plan::{LoadPlan, Pacing, Stop};
use super::stats::{Outcome, Record};
use super::wire::{Connection, EncodedRequest};

/// The state the workers share: the plan, the clock and the slot counter.
#[derive(Debug)]
pub(super) struct Schedule {
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
    /// Open loop: slots the pacer has handed to a connection whose task
    /// has not run yet to take them. While one is pending, a connection is
    /// "busy" only because the generator has not got round to it, so the
    /// pacer's wait for an idle connection is the generator's lag, not the
    /// server's ([`pace`]).
    pending: AtomicU64,
}

/// One request a worker has claimed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// Its start on the fixed schedule; `None` in closed loop (due now).
    due: Option<Instant>,
    claimed: Instant,
    /// Open loop: when the pacer handed it to an idle connection.
    handed: Option<Instant>,
    /// Open loop: the part of due -> hand-over during which no connection
    /// was idle ([`IdleWaits`]).
    connection_wait: Duration,
}

impl Schedule {
    pub(super) fn new(plan: LoadPlan, addr: SocketAddr, start: Instant) -> Self {
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
            pending: AtomicU64::new(0),
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
        Some(Slot {
            due,
            claimed,
            handed: None,
            connection_wait: Duration::ZERO,
        })
    }

    /// Time the workers spent yielding until their slots were due, over
    /// the measured phase (overlapping waits count once).
    pub(super) fn wait_time(&self) -> Duration {
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

/// Where a connection gets its next slot: in closed loop it claims one
/// itself (due at once); in open loop it waits, idle, until the run's one
/// pacer hands it a slot that has come due.
#[derive(Debug, Clone)]
pub(super) enum Slots {
    Claim,
    Paced(mpsc::Sender<oneshot::Sender<Slot>>),
}

impl Slots {
    async fn next(&self, schedule: &Schedule) -> Option<Slot> {
        match self {
            Slots::Claim => schedule.claim(),
            Slots::Paced(idle) => {
                let (give, take) = oneshot::channel();
                idle.send(give).await.ok()?;
                let slot = take.await.ok()?;
                schedule.pending.fetch_sub(1, Ordering::Relaxed);
                Some(slot)
            }
        }
    }
}

/// Capacity of the queue of idle connections: one place per connection.
pub(super) fn idle_queue(
    schedule: &Schedule,
) -> (
    mpsc::Sender<oneshot::Sender<Slot>>,
    mpsc::Receiver<oneshot::Sender<Slot>>,
) {
    mpsc::channel(schedule.plan.connections.max(1))
}

/// Most due slots the pacer hands out in a row, when it is behind, before
/// it yields to the runtime once. A yielded task runs again only after the
/// worker thread has polled the I/O driver, which tokio does once every 61
/// task polls or when its queue runs empty: yielding after every slot let a
/// pacer that had fallen behind (a burst of responses, a preemption) hand
/// out one slot per such round, each round as long as the slot interval at
/// 100k req/s, so it never caught up and the send lag came in millisecond
/// bursts (docs/load.md, "Catching up"). Bounded, so that the connections,
/// the collector and the run's end still get the thread while it catches up.
pub(super) const CATCH_UP_BURST: usize = 64;

/// Most yields the pacer makes, for one slot, to let connections take the
/// slots it handed them before it counts its wait for an idle connection
/// as connection wait (a bound, so that a connection task that never takes
/// its slot cannot keep the pacer spinning).
const MAX_BEHIND_YIELDS: u32 = 1024;

/// The open-loop pacer, one per run (as wrk2 paces per thread rather than
/// per connection): claims each slot in order, waits until it is due with
/// one timer ([`Pacer`]), then hands it to the connection that has been
/// idle longest. When no connection is idle the slot waits for the first
/// one to free up, and the wait shows as send lag; the slot records it as
/// its connection wait, apart from the pacer's own lateness. Idle
/// connections cost nothing meanwhile: no timer and no task wake-up each.
/// When it is behind it hands out up to [`CATCH_UP_BURST`] due slots per
/// turn; a slot it could not hand over within the timeout of its scheduled
/// start is a timeout at once (it would be one on any connection), so the
/// run ends within its window plus the timeout even when the generator
/// cannot keep the rate.
pub(super) async fn pace(
    schedule: Arc<Schedule>,
    mut idle: mpsc::Receiver<oneshot::Sender<Slot>>,
    records: mpsc::Sender<Record>,
) {
    let mut pacer = Pacer::new(schedule.plan.pacing_lead);
    let mut idle_waits = IdleWaits::default();
    // Slots handed out since the pacer last let the runtime run the others.
    let mut in_a_row = 0;
    while let Some(mut slot) = schedule.claim() {
        if let Some(due) = slot.due {
            let now = Instant::now();
            if due > now || in_a_row >= CATCH_UP_BURST {
                // On time: let the connection just handed a slot send before
                // the pacer arms its timer for this one (two system calls
                // that would otherwise come first). Behind: once per burst.
                tokio::task::yield_now().await;
                in_a_row = 0;
            }
            if due >= schedule.warmup_end {
                schedule.waits.start_counting();
            }
            pacer.wait_until(due, &schedule.waits).await;
            let now = Instant::now();
            if now >= due + schedule.plan.timeout {
                let record = Record {
                    scheduled: due,
                    sent: None,
                    handed: None,
                    connection_wait: idle_waits.since(due),
                    done: now,
                    outcome: Outcome::Timeout,
                };
                if records.send(record).await.is_err() {
                    return; // the collector is gone
                }
                continue;
            }
        }
        let mut behind_yields = 0;
        loop {
            let connection = match idle.try_recv() {
                Ok(connection) => connection,
                Err(TryRecvError::Disconnected) => return, // every connection is gone
                Err(TryRecvError::Empty)
                    if schedule.pending.load(Ordering::Relaxed) > 0 && behind_yields < MAX_BEHIND_YIELDS =>
                {
                    // Every connection is busy, but some still holds a slot
                    // its task has not taken yet (the pacer, catching up,
                    // handed out slots faster than the connections ran):
                    // let them run. This wait is the generator's own lag.
                    behind_yields += 1;
                    tokio::task::yield_now().await;
                    in_a_row = 0;
                    continue;
                }
                Err(TryRecvError::Empty) => {
                    // Every connection holds a request it has sent: the
                    // server has not answered. This wait is connection wait.
                    let from = Instant::now();
                    let Some(connection) = idle.recv().await else {
                        return;
                    };
                    idle_waits.push(from, Instant::now());
                    in_a_row = 0;
                    connection
                }
            };
            slot.handed = Some(Instant::now());
            slot.connection_wait = slot.due.map_or(Duration::ZERO, |due| idle_waits.since(due));
            // A connection that went away returns the slot to the next one.
            schedule.pending.fetch_add(1, Ordering::Relaxed);
            match connection.send(slot) {
                Ok(()) => break,
                Err(back) => {
                    schedule.pending.fetch_sub(1, Ordering::Relaxed);
                    slot = back;
                }
            }
        }
        in_a_row += 1;
    }
    // Dropping `idle` (and the waiting connections' senders) ends them.
}

/// One connection's worker: takes slots until the stop condition, sends
/// each request on its keep-alive connection (reconnecting with backoff
/// when it is gone) and reports one record per slot.
pub(super) async fn worker(schedule: Arc<Schedule>, slots: Slots, records: mpsc::Sender<Record>) {
    let plan = &schedule.plan;
    let mut conn: Option<Connection> = None;
    let mut backoff = Backoff::default();
    // One timer per connection for the request timeouts, moved forward
    // only when it fires: re-arming a timer for every request costs more
    // than the rest of the client's own work per request.
    let mut timer = pin!(tokio::time::sleep_until((Instant::now() + plan.timeout).into()));
    while let Some(slot) = slots.next(&schedule).await {
        let scheduled = slot.due.unwrap_or(slot.claimed);
        if slot.due.is_some() && Instant::now() >= scheduled + plan.timeout {
            // Reached this connection after its timeout (the generator fell
            // behind): a timeout without sending, the connection kept.
            let record = Record {
                scheduled,
                sent: None,
                handed: slot.handed,
                connection_wait: slot.connection_wait,
                done: Instant::now(),
                outcome: Outcome::Timeout,
            };
            if records.send(record).await.is_err() {
                break;
            }
            continue;
        }
        let mut sent = None;
        // The timeout runs from the scheduled start: a request the generator
        // could not even send within it has timed out for its user too.
        let result = within(
            timer.as_mut(),
            scheduled + plan.timeout,
            exchange(&schedule, &mut conn, &backoff, &mut sent),
        )
        .await;
        let done = Instant::now();
        let outcome = match result {
            Some(Ok(outcome)) => outcome,
            Some(Err(outcome)) => outcome,
            None => Outcome::Timeout,
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
            handed: slot.handed,
            connection_wait: slot.connection_wait,
            done,
            outcome,
        };
        if records.send(record).await.is_err() {
            break; // the collector is gone; nobody is listening
        }
    }
}

/// Runs `work` until it ends or `deadline` passes (`None`). `timer` is the
/// connection's timeout timer: since a connection's deadlines only grow, a
/// timer set for an earlier deadline fires first, and is then moved to the
/// current one; it is re-armed about once per timeout, not per request.
async fn within<F: Future>(mut timer: Pin<&mut Sleep>, deadline: Instant, work: F) -> Option<F::Output> {
    if timer.deadline() > deadline.into() {
        timer.as_mut().reset(deadline.into());
    }
    let mut work = pin!(work);
    poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(deadline.into());
        }
        Poll::Pending
    })
    .await
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

    #[tokio::test]
    async fn deadline_timer_is_moved_not_fired_early() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Armed for a deadline that has passed (an earlier request's).
        let mut timer = pin!(tokio::time::sleep_until(now.into()));
        let slow = async {
            tokio::time::sleep(ms(30)).await;
            7
        };
        assert_eq!(within(timer.as_mut(), now + ms(5_000), slow).await, Some(7));
        assert!(
            timer.deadline() > (now + ms(4_000)).into(),
            "moved to the current deadline"
        );
        let never = std::future::pending::<()>();
        let deadline = Instant::now() + ms(20);
        assert_eq!(within(timer.as_mut(), deadline, never).await, None);
        assert!(Instant::now() >= deadline, "never before the deadline");
    }

    #[tokio::test]
    async fn pacer_hands_every_slot_to_an_idle_connection_then_ends_them() {
        let s = Arc::new(schedule(
            Pacing::Fixed { per_sec: 2_000.0 },
            Stop::After(Duration::from_millis(50)),
            Duration::ZERO,
        ));
        let (idle, queue) = idle_queue(&s);
        let (records, _keep) = mpsc::channel(16);
        let pacer = tokio::spawn(pace(s.clone(), queue, records));
        let slots = Slots::Paced(idle);
        let mut connections = Vec::new();
        for _ in 0..3 {
            let (slots, s) = (slots.clone(), s.clone());
            connections.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(slot) = slots.next(&s).await {
                    assert!(Instant::now() >= slot.due.unwrap(), "never before its slot");
                    got.push(slot.due.unwrap());
                }
                got
            }));
        }
        drop(slots);
        pacer.await.unwrap();
        let mut all = Vec::new();
        for c in connections {
            all.extend(c.await.unwrap());
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 100, "2000/s for 50 ms, each slot once");
    }

    /// What a test connection does with each slot it takes.
    #[derive(Clone, Copy)]
    enum Hold {
        /// Burns the runtime's only thread (the generator's own work).
        Thread(Duration),
        /// Awaits (the server answering later; the thread is free).
        Server(Duration),
    }

    /// Paces `count` slots at `per_sec` over `connections` test
    /// connections that each `hold` every slot they take, the pacer
    /// starting `behind` late; returns every slot's connection wait and
    /// the slots handed but never taken.
    async fn connection_waits(
        per_sec: f64,
        count: u64,
        connections: usize,
        hold: Hold,
        behind: Duration,
    ) -> (Vec<Duration>, u64) {
        let s = Arc::new(schedule(Pacing::Fixed { per_sec }, Stop::Count(count), Duration::ZERO));
        std::thread::sleep(behind);
        let (idle, queue) = idle_queue(&s);
        let (records, _keep) = mpsc::channel(16);
        let slots = Slots::Paced(idle);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (slots, s) = (slots.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                let mut waits = Vec::new();
                while let Some(slot) = slots.next(&s).await {
                    match hold {
                        Hold::Thread(d) => std::thread::sleep(d),
                        Hold::Server(d) => tokio::time::sleep(d).await,
                    }
                    waits.push(slot.connection_wait);
                }
                waits
            }));
        }
        drop(slots);
        // Every connection waits idle before the pacer starts.
        while queue.len() < connections {
            tokio::task::yield_now().await;
        }
        tokio::spawn(pace(s.clone(), queue, records)).await.unwrap();
        let mut waits = Vec::new();
        for t in tasks {
            waits.extend(t.await.unwrap());
        }
        (waits, s.pending.load(Ordering::Relaxed))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_connections_the_generator_has_not_run_is_not_connection_wait() {
        // No server: two connections that each take 1 ms of the runtime's
        // only thread per slot (the generator's own work). At 10,000 slots
        // a second the pacer falls behind and finds no idle connection
        // while the other one holds a slot its task has not taken yet: the
        // generator's lag, never the server's connection wait.
        let ms = Duration::from_millis;
        let (waits, pending) = connection_waits(10_000.0, 20, 2, Hold::Thread(ms(1)), Duration::ZERO).await;
        assert_eq!(waits.len(), 20, "every slot handed out once");
        assert!(waits.iter().all(Duration::is_zero), "{waits:?}");
        assert_eq!(pending, 0, "every handed slot taken");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_server_that_holds_every_connection_is_connection_wait() {
        // Two connections whose "server" answers 5 ms after each slot is
        // taken. The pacer starts 2 ms behind, so it hands out slots in a
        // burst: the next slot then finds every connection handed a slot
        // its task has not taken yet. The pacer lets them take it (its own
        // lag); the rest of its wait, for the server, is connection wait.
        let ms = Duration::from_millis;
        let (waits, _) = connection_waits(10_000.0, 6, 2, Hold::Server(ms(5)), ms(2)).await;
        assert_eq!(waits.len(), 6, "every slot handed out once");
        let longest = waits.iter().max().unwrap();
        assert!(
            *longest >= ms(2),
            "the server's 5 ms show as connection wait: {waits:?}"
        );
    }

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
