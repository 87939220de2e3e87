//! Outcomes and statistics of requests: the outcome classes, one [`Tally`]
//! (outcome counts plus HdrHistograms) per timeline interval, merged into
//! per-phase totals, and percentile extraction. Pure code over plain data.
//!
//! Method: HdrHistogram with 3 significant digits (Gil Tene,
//! <https://github.com/HdrHistogram/HdrHistogram>), one per interval and
//! merged for totals, so memory does not grow with the run length.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The one outcome every scheduled request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 1xx-3xx response, read to the end.
    Ok,
    /// A 4xx response.
    Status4xx,
    /// A 5xx response.
    Status5xx,
    /// Nothing listens on the target (connection refused).
    Refused,
    /// The server reset or closed the connection before the response ended.
    Reset,
    /// No full response within the timeout, counted from the scheduled start.
    Timeout,
    /// Any other connection or protocol failure.
    Io,
}

impl Outcome {
    /// Every outcome, in the order of [`OutcomeCounts`] and of the reports.
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Status4xx,
        Outcome::Status5xx,
        Outcome::Refused,
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::Io,
    ];

    /// The outcome of a response with this status code.
    pub fn of_status(status: http::StatusCode) -> Outcome {
        Outcome::of_code(status.as_u16())
    }

    /// The outcome of a response with this status code number.
    pub fn of_code(code: u16) -> Outcome {
        match code {
            0..=399 => Outcome::Ok,
            400..=499 => Outcome::Status4xx,
            _ => Outcome::Status5xx,
        }
    }

    /// The name used in reports (JSON keys, CSV columns).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Status4xx => "4xx",
            Outcome::Status5xx => "5xx",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::Io => "io",
        }
    }
}

/// What happened to one scheduled request.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// When the request was due: its slot on the fixed schedule, or the
    /// actual send in closed loop (so latency = service time there).
    pub scheduled: Instant,
    /// When it was written to the connection, if it got that far.
    pub sent: Option<Instant>,
    /// Open loop: when the pacer handed it to an idle connection (`None`
    /// in closed loop, where a connection claims its own slots).
    pub handed: Option<Instant>,
    /// Open loop: the part of its send lag during which every connection
    /// was busy (the server had not answered), see `pacing::IdleWaits`.
    pub connection_wait: Duration,
    /// When its outcome was known.
    pub done: Instant,
    pub outcome: Outcome,
}

/// Request counts by outcome, in [`Outcome::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts([u64; 7]);

impl OutcomeCounts {
    pub fn add(&mut self, outcome: Outcome) {
        self.0[outcome as usize] += 1;
    }

    pub fn get(&self, outcome: Outcome) -> u64 {
        self.0[outcome as usize]
    }

    pub fn ok(&self) -> u64 {
        self.get(Outcome::Ok)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn merge(&mut self, other: &OutcomeCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// Largest value a histogram holds (1 hour in microseconds); larger values
/// are recorded as this, which no timeout lets happen in practice.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("constant bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Outcome counts and histograms of a set of requests (one interval, or a
/// phase once intervals are merged). Latencies of failed requests never
/// enter the histograms.
#[derive(Debug, Clone)]
pub struct Tally {
    pub counts: OutcomeCounts,
    /// Successful requests, from the scheduled start (coordinated-omission
    /// corrected in open loop).
    pub latency_us: Histogram<u64>,
    /// Successful requests, from the actual send.
    pub service_us: Histogram<u64>,
    /// Every request that was sent: actual send minus scheduled start.
    pub send_lag_us: Histogram<u64>,
    /// Open loop, every request that was sent: the part of its send lag
    /// spent waiting for an idle connection (the server's share).
    pub connection_wait_us: Histogram<u64>,
    /// Open loop: send lag minus connection wait, the generator's own
    /// lateness (its timer, its CPU, waking the connection's task).
    pub generator_lag_us: Histogram<u64>,
    /// Open loop: due -> hand-over minus connection wait, the pacer's
    /// part of the generator's lag (its timer woke late, or it had no CPU).
    pub pacer_lag_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: OutcomeCounts::default(),
            latency_us: new_histogram(),
            service_us: new_histogram(),
            send_lag_us: new_histogram(),
            connection_wait_us: new_histogram(),
            generator_lag_us: new_histogram(),
            pacer_lag_us: new_histogram(),
        }
    }
}

impl Tally {
    pub fn record(&mut self, r: &Record) {
        self.record_outcome(r);
        self.record_lags(r);
    }

    /// The outcome count and the latency histograms of `r`.
    pub fn record_outcome(&mut self, r: &Record) {
        self.counts.add(r.outcome);
        if let (Some(sent), Outcome::Ok) = (r.sent, r.outcome) {
            self.latency_us
                .saturating_record(micros(r.done.saturating_duration_since(r.scheduled)));
            self.service_us
                .saturating_record(micros(r.done.saturating_duration_since(sent)));
        }
    }

    /// The send-lag histograms of `r` (the collector keeps them per phase
    /// only, not per interval: see `Collector::add`).
    pub fn record_lags(&mut self, r: &Record) {
        if let Some(sent) = r.sent {
            let lag = sent.saturating_duration_since(r.scheduled);
            self.send_lag_us.saturating_record(micros(lag));
            if let Some(handed) = r.handed {
                let wait = r.connection_wait;
                self.connection_wait_us.saturating_record(micros(wait));
                self.generator_lag_us
                    .saturating_record(micros(lag.saturating_sub(wait)));
                let to_hand_over = handed.saturating_duration_since(r.scheduled);
                self.pacer_lag_us
                    .saturating_record(micros(to_hand_over.saturating_sub(wait)));
            }
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.counts.merge(&other.counts);
        // All histograms share the same bounds, so adding cannot fail. An
        // empty one is skipped: adding walks all its buckets.
        for (into, from) in [
            (&mut self.latency_us, &other.latency_us),
            (&mut self.service_us, &other.service_us),
            (&mut self.send_lag_us, &other.send_lag_us),
            (&mut self.connection_wait_us, &other.connection_wait_us),
            (&mut self.generator_lag_us, &other.generator_lag_us),
            (&mut self.pacer_lag_us, &other.pacer_lag_us),
        ] {
            if !from.is_empty() {
                into.add(from).expect("histograms with equal bounds");
            }
        }
    }

    pub fn reset(&mut self) {
        self.counts = OutcomeCounts::default();
        // Resetting clears every bucket; an empty histogram has none set.
        for h in [
            &mut self.latency_us,
            &mut self.service_us,
            &mut self.send_lag_us,
            &mut self.connection_wait_us,
            &mut self.generator_lag_us,
            &mut self.pacer_lag_us,
        ] {
            if !h.is_empty() {
                h.reset();
            }
        }
    }
}

/// Mean, percentiles and maximum of a histogram, in microseconds; all 0
/// when it is empty (no successful request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

/// Percentiles as HdrHistogram reports them: the highest value equivalent
/// (within 3 significant digits) to the value at that quantile.
pub(super) fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        mean: h.mean(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p99_9: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// One point of a percentile spectrum: the latency at `percentile`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct SpectrumPoint {
    /// 0 to 99.99.
    pub percentile: f64,
    pub us: u64,
}

/// Steps per decade of 1/(1-p) in [`spectrum`].
const SPECTRUM_STEPS_PER_DECADE: u32 = 10;

/// The HdrHistogram percentile spectrum up to p99.99, at points evenly
/// spaced on a log scale of 1/(1-p) (the x axis of HdrHistogram's own
/// percentile plots), empty when the histogram is.
pub(super) fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=4 * SPECTRUM_STEPS_PER_DECADE)
        .map(|i| {
            let q = 1.0 - 10f64.powf(-(i as f64) / SPECTRUM_STEPS_PER_DECADE as f64);
            SpectrumPoint {
                percentile: (q * 1e6).round() / 1e4,
                us: h.value_at_quantile(q),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, lag_ms: u64, service_ms: u64) -> Record {
        let scheduled = Instant::now();
        let sent = scheduled + Duration::from_millis(lag_ms);
        Record {
            scheduled,
            sent: Some(sent),
            handed: None,
            connection_wait: Duration::ZERO,
            done: sent + Duration::from_millis(service_ms),
            outcome,
        }
    }

    #[test]
    fn status_classes() {
        use http::StatusCode;
        assert_eq!(Outcome::of_status(StatusCode::OK), Outcome::Ok);
        assert_eq!(Outcome::of_status(StatusCode::FOUND), Outcome::Ok);
        assert_eq!(Outcome::of_status(StatusCode::NOT_FOUND), Outcome::Status4xx);
        assert_eq!(Outcome::of_status(StatusCode::SERVICE_UNAVAILABLE), Outcome::Status5xx);
    }

    #[test]
    fn errors_stay_out_of_latency() {
        let mut t = Tally::default();
        t.record(&record(Outcome::Ok, 0, 2));
        t.record(&record(Outcome::Status5xx, 0, 900));
        t.record(&record(Outcome::Timeout, 0, 2000));
        assert_eq!((t.counts.ok(), t.counts.total()), (1, 3));
        assert_eq!(t.latency_us.len(), 1);
        assert!(summarize(&t.latency_us).max < 3_000);
        // Send lag is known for every sent request, failed or not.
        assert_eq!(t.send_lag_us.len(), 3);
    }

    #[test]
    fn send_lag_splits_into_connection_wait_and_the_generators_own() {
        let mut t = Tally::default();
        let scheduled = Instant::now();
        let ms = Duration::from_millis;
        // Due at 0, no idle connection for 3 ms, handed at 4, sent at 5.
        t.record(&Record {
            scheduled,
            sent: Some(scheduled + ms(5)),
            handed: Some(scheduled + ms(4)),
            connection_wait: ms(3),
            done: scheduled + ms(6),
            outcome: Outcome::Ok,
        });
        let max = |h: &Histogram<u64>| h.max() / 10 * 10;
        assert_eq!(max(&t.send_lag_us), 5_000);
        assert_eq!(max(&t.connection_wait_us), 3_000);
        assert_eq!(max(&t.generator_lag_us), 2_000);
        assert_eq!(max(&t.pacer_lag_us), 1_000);
        // Closed loop has no hand-over: only the send lag (0) is recorded.
        t.record(&record(Outcome::Ok, 0, 1));
        assert_eq!((t.send_lag_us.len(), t.connection_wait_us.len()), (2, 1));
    }

    #[test]
    fn latency_counts_from_schedule_service_from_send() {
        let mut t = Tally::default();
        t.record(&record(Outcome::Ok, 500, 1));
        let lat = summarize(&t.latency_us);
        let svc = summarize(&t.service_us);
        assert!((500_000..=502_000).contains(&lat.max), "{lat:?}");
        assert!((1_000..=1_002).contains(&svc.max), "{svc:?}");
    }

    #[test]
    fn merge_and_percentiles() {
        // 900 fast requests in one interval, 100 slow ones in the next: the
        // merged p50 is fast, p99 slow, and nothing is lost.
        let (mut a, mut b) = (Tally::default(), Tally::default());
        for _ in 0..900 {
            a.record(&record(Outcome::Ok, 0, 1));
        }
        for _ in 0..100 {
            b.record(&record(Outcome::Ok, 0, 100));
        }
        b.record(&record(Outcome::Refused, 0, 0));
        a.merge(&b);
        assert_eq!(a.counts.total(), 1001);
        assert_eq!(a.counts.get(Outcome::Refused), 1);
        let s = summarize(&a.latency_us);
        assert!((1_000..=1_001).contains(&s.p50), "{s:?}");
        assert!((1_000..=1_001).contains(&s.p90), "{s:?}");
        assert!((100_000..=100_100).contains(&s.p99), "{s:?}");
        assert!((10_000.0..11_000.0).contains(&s.mean), "{s:?}");
        let points = spectrum(&a.latency_us);
        assert_eq!(points.len(), 41);
        assert_eq!(
            (points[0].percentile, points[10].percentile, points[40].percentile),
            (0.0, 90.0, 99.99)
        );
        assert!(points.windows(2).all(|w| w[0].us <= w[1].us));
        assert!((100_000..=100_100).contains(&points[40].us));
        b.reset();
        assert_eq!(b.counts.total(), 0);
        assert_eq!(summarize(&b.latency_us), LatencySummary::default());
    }
}
