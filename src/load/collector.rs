//! The collector: receives every request's record from the workers, keeps
//! one [`Tally`] for the current timeline interval, and at each interval
//! boundary turns it into a timeline row and merges it into its phase's
//! totals (warm-up or measured). Memory stays fixed whatever the run length,
//! apart from one small row per interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::cpu;
use super::stats::{LatencySummary, OutcomeCounts, Record, Tally, summarize};

/// Live counters a caller can poll while a run goes on (e.g. for a progress
/// bar); the load core itself never prints.
#[derive(Debug, Default)]
pub struct Live {
    /// Successful requests so far (warm-up included).
    pub ok: AtomicU64,
    /// Failed requests so far (warm-up included).
    pub errors: AtomicU64,
}

/// Which part of the run an interval belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Measure,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
        }
    }
}

/// One timeline interval. Requests are placed by when their outcome was
/// known, so a server stall shows as empty intervals followed by one with
/// high latencies.
#[derive(Debug, Clone)]
pub struct TimelineRow {
    /// Interval start, from the start of the run (warm-up included).
    pub t_ms: u64,
    /// Interval length (the last one, and the one ending the warm-up, may be shorter).
    pub duration_ms: u64,
    pub phase: Phase,
    pub counts: OutcomeCounts,
    /// Successful requests from their scheduled start.
    pub latency_us: LatencySummary,
    /// Successful requests from their actual send.
    pub service_time_us: LatencySummary,
    pub max_send_lag_us: u64,
    /// Generator CPU over this interval, percent of one core.
    pub cpu_percent: f64,
    /// The interval's `latency_us` histogram as its non-empty buckets
    /// (highest equivalent value in µs, count), when the plan asks for it
    /// (`LoadPlan::interval_histograms`): recording each bucket's value
    /// `count` times into a histogram of the same precision rebuilds it
    /// exactly, so windows of the timeline merge without loss.
    pub latency_buckets: Option<Vec<(u64, u64)>>,
}

/// What the collector hands back when every worker has finished.
#[derive(Debug)]
pub struct Collected {
    pub warmup: Tally,
    pub measured: Tally,
    pub rows: Vec<TimelineRow>,
    /// Generator CPU time and wall time over the measured intervals.
    pub measured_cpu: Duration,
    pub measured_wall: Duration,
    /// Involuntary context switches of the generator over the measured
    /// intervals ([`cpu::preemptions`]).
    pub measured_preemptions: u64,
    /// Time the generator's threads waited for a CPU over the measured
    /// intervals ([`cpu::run_queue_wait`]).
    pub measured_run_queue_wait: Duration,
}

#[derive(Debug)]
pub(super) struct Collector {
    start: Instant,
    warmup_end: Instant,
    interval: Duration,
    /// Start of the current interval.
    from: Instant,
    current: Tally,
    /// Wall clock and process CPU time when the current interval was opened.
    opened_at: Instant,
    cpu_at_open: Duration,
    preemptions_at_open: u64,
    run_queue_wait_at_open: Duration,
    done: Collected,
    live: Option<Arc<Live>>,
    keep_histograms: bool,
    /// Largest send lag of the current interval's records, in µs.
    current_max_send_lag_us: u64,
}

impl Collector {
    pub(super) fn new(start: Instant, warmup: Duration, interval: Duration, live: Option<Arc<Live>>) -> Self {
        Collector {
            start,
            warmup_end: start + warmup,
            interval,
            from: start,
            current: Tally::default(),
            opened_at: Instant::now(),
            cpu_at_open: cpu::process_time(),
            preemptions_at_open: cpu::preemptions(),
            run_queue_wait_at_open: cpu::run_queue_wait(),
            done: Collected {
                warmup: Tally::default(),
                measured: Tally::default(),
                rows: Vec::new(),
                measured_cpu: Duration::ZERO,
                measured_wall: Duration::ZERO,
                measured_preemptions: 0,
                measured_run_queue_wait: Duration::ZERO,
            },
            live,
            keep_histograms: false,
            current_max_send_lag_us: 0,
        }
    }

    /// Keep each interval's latency histogram in its row (see
    /// [`TimelineRow::latency_buckets`]).
    pub(super) fn keep_interval_histograms(mut self, keep: bool) -> Self {
        self.keep_histograms = keep;
        self
    }

    /// End of the current interval: the next multiple of the interval length
    /// from the run start, or the end of the warm-up if that comes first, so
    /// no interval straddles the two phases.
    fn interval_end(&self) -> Instant {
        interval_end(self.start, self.interval, self.warmup_end, self.from)
    }

    fn phase(&self) -> Phase {
        if self.from < self.warmup_end {
            Phase::Warmup
        } else {
            Phase::Measure
        }
    }

    /// Receives records until every worker has dropped its sender.
    pub(super) async fn collect(mut self, mut records: mpsc::Receiver<Record>) -> Collected {
        let tick = sleep_until(self.interval_end().into());
        tokio::pin!(tick);
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                n = records.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    for r in batch.drain(..) {
                        self.add(&r);
                    }
                }
                () = &mut tick => self.close(self.interval_end()),
            }
            // Cheap when the deadline is unchanged; needed after a close.
            tick.as_mut().reset(self.interval_end().into());
        }
        let now = Instant::now();
        while self.interval_end() <= now {
            self.close(self.interval_end());
        }
        self.close(now.max(self.from));
        self.done
    }

    fn add(&mut self, r: &Record) {
        // Intervals whose end has passed are closed first (the timer may
        // not have fired yet); a record that arrives after its interval was
        // closed goes to the current one.
        while r.done >= self.interval_end() {
            self.close(self.interval_end());
        }
        if r.scheduled < self.warmup_end && self.phase() == Phase::Measure {
            // Scheduled in the warm-up, finished after it: it belongs to
            // the warm-up, so the measured phase counts only requests
            // scheduled inside its window (and its rate cannot exceed the
            // offered one). Its counts join the last warm-up row.
            self.done.warmup.record(r);
            if let Some(row) = self.done.rows.iter_mut().rev().find(|row| row.phase == Phase::Warmup) {
                row.counts.add(r.outcome);
            }
        } else {
            // The send-lag histograms go straight into the phase's totals:
            // the timeline needs only the interval's largest lag, and
            // merging and clearing four more histograms at every interval
            // end held up the pacer on the same thread (docs/load.md).
            self.current.record_outcome(r);
            if let Some(sent) = r.sent {
                self.current_max_send_lag_us = self
                    .current_max_send_lag_us
                    .max(micros(sent.saturating_duration_since(r.scheduled)));
            }
            match self.phase() {
                Phase::Warmup => self.done.warmup.record_lags(r),
                Phase::Measure => self.done.measured.record_lags(r),
            }
        }
        if let Some(live) = &self.live {
            let counter = if r.outcome == super::stats::Outcome::Ok {
                &live.ok
            } else {
                &live.errors
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the current interval at `until`: one timeline row, merged
    /// into its phase's totals, then a fresh interval.
    fn close(&mut self, until: Instant) {
        let now = Instant::now();
        let cpu_now = cpu::process_time();
        let preemptions_now = cpu::preemptions();
        let run_queue_wait_now = cpu::run_queue_wait();
        let wall = now.saturating_duration_since(self.opened_at);
        let cpu_used = cpu_now.saturating_sub(self.cpu_at_open);
        let phase = self.phase();
        let row = TimelineRow {
            t_ms: millis(self.from - self.start),
            duration_ms: millis(until.saturating_duration_since(self.from)),
            phase,
            counts: self.current.counts,
            latency_us: summarize(&self.current.latency_us),
            service_time_us: summarize(&self.current.service_us),
            max_send_lag_us: std::mem::take(&mut self.current_max_send_lag_us),
            cpu_percent: cpu::percent_of_one_core(cpu_used, wall),
            latency_buckets: self.keep_histograms.then(|| {
                self.current
                    .latency_us
                    .iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            }),
        };
        self.done.rows.push(row);
        match phase {
            Phase::Warmup => self.done.warmup.merge(&self.current),
            Phase::Measure => {
                self.done.measured.merge(&self.current);
                self.done.measured_cpu += cpu_used;
                self.done.measured_wall += wall;
                self.done.measured_preemptions += preemptions_now.saturating_sub(self.preemptions_at_open);
                self.done.measured_run_queue_wait += run_queue_wait_now.saturating_sub(self.run_queue_wait_at_open);
            }
        }
        self.current.reset();
        self.from = until;
        self.opened_at = now;
        self.cpu_at_open = cpu_now;
        self.preemptions_at_open = preemptions_now;
        self.run_queue_wait_at_open = run_queue_wait_now;
    }
}

/// See [`Collector::interval_end`]; a pure function for testing.
fn interval_end(start: Instant, interval: Duration, warmup_end: Instant, from: Instant) -> Instant {
    let n = (from - start).as_nanos() / interval.as_nanos().max(1) + 1;
    let boundary = start + interval * u32::try_from(n).unwrap_or(u32::MAX);
    if from < warmup_end && warmup_end < boundary {
        warmup_end
    } else {
        boundary
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Outcome;

    #[test]
    fn intervals_split_at_warmup_end() {
        let s = Instant::now();
        let ms = Duration::from_millis;
        let end = |from| interval_end(s, ms(100), s + ms(250), s + ms(from)) - s;
        assert_eq!(end(0), ms(100));
        assert_eq!(end(100), ms(200));
        assert_eq!(end(200), ms(250));
        assert_eq!(end(250), ms(300));
        assert_eq!(end(300), ms(400));
    }

    #[tokio::test]
    async fn records_land_in_their_phase_and_interval() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let c = Collector::new(start, ms(100), ms(50), None);
        let (tx, rx) = mpsc::channel(16);
        let at = |t: u64, outcome| Record {
            scheduled: start + ms(t),
            sent: Some(start + ms(t)),
            handed: None,
            connection_wait: Duration::ZERO,
            done: start + ms(t + 1),
            outcome,
        };
        for r in [
            at(10, Outcome::Ok),
            at(60, Outcome::Refused),
            at(120, Outcome::Ok),
            at(130, Outcome::Ok),
            at(260, Outcome::Status5xx),
        ] {
            tx.send(r).await.unwrap();
        }
        drop(tx);
        let done = c.collect(rx).await;
        assert_eq!(done.warmup.counts.ok(), 1);
        assert_eq!(done.warmup.counts.get(Outcome::Refused), 1);
        assert_eq!(done.measured.counts.ok(), 2);
        assert_eq!(done.measured.counts.get(Outcome::Status5xx), 1);
        // Send lags go straight to their phase's totals, not via intervals.
        assert_eq!((done.warmup.send_lag_us.len(), done.measured.send_lag_us.len()), (2, 3));
        let t: Vec<_> = done.rows.iter().map(|r| (r.t_ms, r.counts.total())).collect();
        assert_eq!(&t[..5], &[(0, 1), (50, 1), (100, 2), (150, 0), (200, 0)]);
        assert_eq!(t[5], (250, 1));
        assert_eq!(done.rows[1].phase, Phase::Warmup);
        assert_eq!(done.rows[2].phase, Phase::Measure);
    }

    #[tokio::test]
    async fn interval_histograms_are_kept_only_when_asked() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let run = |keep| async move {
            let c = Collector::new(start, Duration::ZERO, ms(50), None).keep_interval_histograms(keep);
            let (tx, rx) = mpsc::channel(16);
            for (t, lat_us) in [(10, 700), (20, 700), (30, 1500), (60, 900)] {
                tx.send(Record {
                    scheduled: start + ms(t),
                    sent: Some(start + ms(t)),
                    handed: None,
                    connection_wait: Duration::ZERO,
                    done: start + ms(t) + us(lat_us),
                    outcome: Outcome::Ok,
                })
                .await
                .unwrap();
            }
            drop(tx);
            c.collect(rx).await
        };
        let kept = run(true).await;
        assert_eq!(
            kept.rows[0].latency_buckets.as_deref(),
            Some(&[(700, 2), (1500, 1)][..])
        );
        assert_eq!(kept.rows[1].latency_buckets.as_deref(), Some(&[(900, 1)][..]));
        assert!(run(false).await.rows.iter().all(|r| r.latency_buckets.is_none()));
    }

    #[tokio::test]
    async fn measured_phase_counts_only_requests_scheduled_in_it() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let c = Collector::new(start, ms(100), ms(50), None);
        let (tx, rx) = mpsc::channel(16);
        // Scheduled at 90 ms in the warm-up, answered at 150 ms.
        tx.send(Record {
            scheduled: start + ms(90),
            sent: Some(start + ms(90)),
            handed: None,
            connection_wait: Duration::ZERO,
            done: start + ms(150),
            outcome: Outcome::Ok,
        })
        .await
        .unwrap();
        tx.send(Record {
            scheduled: start + ms(120),
            sent: Some(start + ms(120)),
            handed: None,
            connection_wait: Duration::ZERO,
            done: start + ms(160),
            outcome: Outcome::Ok,
        })
        .await
        .unwrap();
        drop(tx);
        let done = c.collect(rx).await;
        assert_eq!(done.warmup.counts.ok(), 1);
        assert_eq!(done.measured.counts.ok(), 1);
        let measured_rows: u64 = done
            .rows
            .iter()
            .filter(|r| r.phase == Phase::Measure)
            .map(|r| r.counts.ok())
            .sum();
        assert_eq!(measured_rows, 1, "timeline rows agree with the totals");
    }
}
