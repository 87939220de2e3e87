//! Statistics of a result set: median with min/max over repeats, ratios,
//! noise and change tests, generator-limit detection, and the cost of a
//! recycle read off a load timeline. Pure functions over plain data.

use super::results::{ErrorClasses, IntervalRow, RecycleAnalysis, WindowMetrics};

/// Median, minimum and maximum of repeated measurements.
///
/// Method: the sample median (middle value, or the mean of the two middle
/// values for an even count) with the full min-max range, as DESIGN.md's
/// "Measurement method" asks; hyperfine reports min/max next to its central
/// value the same way. With a handful of repeats the range is more honest
/// than a standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// `None` for no values; NaNs are ignored.
    pub(super) fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// (max - min) / median: the run-to-run noise of this measurement.
    pub(super) fn relative_range(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median.abs()
        }
    }
}

/// A min-max range wider than this share of the median marks a measurement
/// as noisy (a 10% swing between repeats hides any effect smaller than that).
pub(super) const NOISY_RELATIVE_RANGE: f64 = 0.10;

/// Whether repeats disagreed by more than [`NOISY_RELATIVE_RANGE`].
pub(super) fn is_noisy(s: &Spread) -> bool {
    s.n >= 2 && s.relative_range() > NOISY_RELATIVE_RANGE
}

/// `a / b`, `None` when `b` is zero or either is missing.
pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// A ratio of two repeated measurements: median over median, with an
/// interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RatioSpread {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

/// The interval a [`ratio_spread`] carries, as reports name it.
pub(super) const RATIO_INTERVAL: &str = "min-max interval of the repeats (lowest numerator over highest denominator to \
                                  highest over lowest)";

/// `a / b` for repeated measurements: the median is `median(a) /
/// median(b)`; the interval divides the min-max ranges as intervals,
/// `[min a / max b, max a / min b]` (interval arithmetic for positive
/// intervals: R. E. Moore, *Interval Analysis*, 1966, ch. 2), so it covers
/// every pairing of the repeats. `None` unless both ranges are positive.
pub(super) fn ratio_spread(a: &Spread, b: &Spread) -> Option<RatioSpread> {
    if !(a.min > 0.0 && b.min > 0.0 && a.max.is_finite() && b.max.is_finite()) {
        return None;
    }
    Some(RatioSpread {
        median: a.median / b.median,
        low: a.min / b.max,
        high: a.max / b.min,
    })
}

/// `3.16x (3.05-3.24)`.
pub(super) fn format_ratio(r: &RatioSpread) -> String {
    format!("{:.2}x ({:.2}-{:.2})", r.median, r.low, r.high)
}

/// `|a - b| / min(a, b)`: how far two estimates of one ratio disagree.
pub(super) fn relative_difference(a: f64, b: f64) -> f64 {
    let m = a.abs().min(b.abs());
    if m == 0.0 { f64::INFINITY } else { (a - b).abs() / m }
}

/// Two methods whose medians differ by more than this share disagree
/// (issue 13: the verdict then says so).
pub(super) const METHODS_DISAGREE: f64 = 0.10;

/// A run whose failed share of requests exceeds this is not used for a
/// throughput ratio (0.1 %): errors are excluded from req/s, so an
/// error-heavy run would lower the ratio's side silently.
pub(super) const MAX_ERROR_RATE: f64 = 0.001;

/// Failed requests over all requests with an outcome (0 for none).
pub(super) fn error_rate(errors: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { errors as f64 / total as f64 }
}

/// The smallest noise band assumed around a median, as a share of it: a
/// single repeat has no range of its own, and back-to-back runs on one
/// machine differ by a few percent anyway.
pub(super) const MIN_NOISE_BAND: f64 = 0.05;

/// Whether two measurements of the same thing differ by more than
/// run-to-run noise: each one's median lies outside the other's min-max
/// range, each range widened to at least +-[`MIN_NOISE_BAND`] of its median.
/// (The same idea as hyperfine's "outside the range" warning, applied both
/// ways so neither run is privileged.)
pub(super) fn changed_beyond_noise(a: &Spread, b: &Spread) -> bool {
    let outside = |x: f64, s: &Spread| {
        let band = MIN_NOISE_BAND * s.median.abs();
        x < s.min.min(s.median - band) || x > s.max.max(s.median + band)
    };
    outside(a.median, b) && outside(b.median, a)
}

/// A generator above this share of its CPUs was probably the limit
/// (the load core's own rule, `load::report::warnings`).
pub(super) const GENERATOR_BUSY_SHARE: f64 = 0.9;

/// Whether the load generator, not the server, may have set the pace.
pub(super) fn generator_limited(cpu_percent: f64, cpus: usize) -> bool {
    cpu_percent >= GENERATOR_BUSY_SHARE * 100.0 * cpus.max(1) as f64
}

/// A p99 above this multiple of the baseline counts as not yet recovered.
pub(super) const RECOVERED_P99_FACTOR: u64 = 2;

/// What a recycle cost, from the per-interval timeline of a fixed-rate run
/// and the time of the event (ms from the start of the run).
///
/// - unavailability: first failing interval's start to last failing
///   interval's end;
/// - longest gap: the longest run of consecutive intervals without one
///   success (the outage as clients saw it);
/// - baseline p99: median of the interval p99s before the event (at least
///   three intervals), else of the last third of the run;
/// - time to recover: event to the end of the last interval with a failure
///   or a p99 above [`RECOVERED_P99_FACTOR`] x baseline.
pub(super) fn analyze_recycle(rows: &[IntervalRow], event_ms: u64) -> RecycleAnalysis {
    let failed_requests = rows.iter().map(|r| r.errors).sum();
    let end = |r: &IntervalRow| r.t_ms + r.duration_ms;
    let failing: Vec<&IntervalRow> = rows.iter().filter(|r| r.errors > 0).collect();
    let unavailable_ms = match (failing.first(), failing.last()) {
        (Some(first), Some(last)) => end(last) - first.t_ms,
        _ => 0,
    };
    let mut longest_gap_no_success_ms = 0;
    let mut gap = 0;
    for r in rows {
        if r.ok == 0 {
            gap += r.duration_ms;
            longest_gap_no_success_ms = longest_gap_no_success_ms.max(gap);
        } else {
            gap = 0;
        }
    }
    let p99s = |rs: &[IntervalRow]| -> Vec<f64> { rs.iter().filter(|r| r.ok > 0).map(|r| r.p99_us as f64).collect() };
    let before: Vec<IntervalRow> = rows.iter().filter(|r| end(r) <= event_ms).copied().collect();
    let before_p99 = p99s(&before);
    let baseline = if before_p99.len() >= 3 {
        Spread::of(&before_p99)
    } else {
        let tail = &rows[rows.len() - rows.len() / 3..];
        Spread::of(&p99s(tail))
    }
    .map_or(0, |s| s.median as u64);
    let after: Vec<&IntervalRow> = rows.iter().filter(|r| end(r) > event_ms).collect();
    let peak_p99_us = after.iter().map(|r| r.p99_us).max().unwrap_or(0);
    let slow = |r: &IntervalRow| baseline > 0 && r.p99_us > RECOVERED_P99_FACTOR * baseline;
    let time_to_recover_ms = after
        .iter()
        .rev()
        .find(|r| r.errors > 0 || slow(r))
        .map_or(0, |r| end(r).saturating_sub(event_ms));
    RecycleAnalysis {
        failed_requests,
        unavailable_ms,
        longest_gap_no_success_ms,
        baseline_p99_us: baseline,
        peak_p99_us,
        time_to_recover_ms,
    }
}

/// The first recycle window: [event, event + this].
pub(super) const RECYCLE_WINDOW_MS: u64 = 1000;

/// A lower bound on the successful requests of one interval slower than
/// `threshold_us`, from its quantiles. HdrHistogram reports the highest
/// value equivalent to the one at a quantile, and the threshold is such a
/// value too (a control's p99.9), so a quantile above it means the request
/// at that rank, and every later one, was slower: at least
/// `ok - ceil(q * ok) + 1` requests.
pub(super) fn delayed_at_least(r: &IntervalRow, threshold_us: u64) -> u64 {
    if r.ok == 0 {
        return 0;
    }
    for (value, q) in [(r.p50_us, 0.5), (r.p90_us, 0.9), (r.p99_us, 0.99), (r.p99_9_us, 0.999)] {
        if value > threshold_us {
            let rank = (q * r.ok as f64).ceil() as u64;
            return r.ok - rank.min(r.ok) + 1;
        }
    }
    u64::from(r.max_us > threshold_us)
}

/// The cost of a recycle read off its timeline at `event_ms`:
/// - the [event, event + 1 s] window and the window from the event to the
///   end of the run (the whole drain), each over the intervals it overlaps:
///   successes, failures by class, delayed requests (a lower bound, see
///   [`delayed_at_least`]; `None` without a threshold), the worst interval
///   p99 and the intervals without a success;
/// - downtime: the longest run of consecutive intervals, from the one
///   holding the event on, in which no request completed successfully (a
///   last interval shorter than the others is left out: it is the run's
///   tail, not a stall).
pub(super) fn recycle_windows(
    rows: &[IntervalRow],
    event_ms: u64,
    threshold_us: Option<u64>,
) -> (WindowMetrics, WindowMetrics, u64) {
    let end_of_run = rows.last().map_or(event_ms, |r| r.t_ms + r.duration_ms);
    let full = rows.first().map_or(0, |r| r.duration_ms);
    let window = |from: u64, to: u64| {
        let mut w = WindowMetrics {
            from_ms: from,
            to_ms: to,
            delayed_at_least: threshold_us.map(|_| 0),
            ..WindowMetrics::default()
        };
        for r in rows.iter().filter(|r| r.t_ms < to && r.t_ms + r.duration_ms > from) {
            w.ok += r.ok;
            w.failed = add_classes(w.failed, r.failed);
            if let (Some(d), Some(t)) = (w.delayed_at_least.as_mut(), threshold_us) {
                *d += delayed_at_least(r, t);
            }
            w.worst_interval_p99_us = w.worst_interval_p99_us.max(r.p99_us);
            w.intervals_without_success += u64::from(r.ok == 0);
        }
        w
    };
    let first = window(event_ms, (event_ms + RECYCLE_WINDOW_MS).min(end_of_run.max(event_ms)));
    let drain = window(event_ms, end_of_run.max(event_ms));
    let mut downtime = 0;
    let mut gap = 0;
    for (i, r) in rows.iter().enumerate() {
        if r.t_ms + r.duration_ms <= event_ms {
            continue;
        }
        let tail = i + 1 == rows.len() && r.duration_ms < full;
        if r.ok == 0 && !tail {
            gap += r.duration_ms;
            downtime = downtime.max(gap);
        } else {
            gap = 0;
        }
    }
    (first, drain, downtime)
}

fn add_classes(a: ErrorClasses, b: ErrorClasses) -> ErrorClasses {
    ErrorClasses {
        status_4xx: a.status_4xx + b.status_4xx,
        status_5xx: a.status_5xx + b.status_5xx,
        refused: a.refused + b.refused,
        reset: a.reset + b.reset,
        timeout: a.timeout + b.timeout,
        io: a.io + b.io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[5.0]).unwrap().median, 5.0);
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn noise() {
        assert!(!is_noisy(&Spread::of(&[100.0, 105.0, 98.0]).unwrap()));
        assert!(is_noisy(&Spread::of(&[100.0, 130.0, 98.0]).unwrap()));
        // One repeat has no range: never called noisy.
        assert!(!is_noisy(&Spread::of(&[100.0]).unwrap()));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }

    #[test]
    fn ratio_with_interval() {
        let a = Spread::of(&[300.0, 320.0, 310.0]).unwrap();
        let b = Spread::of(&[100.0, 98.0, 102.0]).unwrap();
        let r = ratio_spread(&a, &b).unwrap();
        assert!((r.median - 3.1).abs() < 1e-12);
        assert!((r.low - 300.0 / 102.0).abs() < 1e-12);
        assert!((r.high - 320.0 / 98.0).abs() < 1e-12);
        assert_eq!(format_ratio(&r), "3.10x (2.94-3.27)");
        assert!(ratio_spread(&a, &Spread::of(&[0.0, 1.0]).unwrap()).is_none());
        // One repeat each: a point interval.
        let one = ratio_spread(&Spread::of(&[4.0]).unwrap(), &Spread::of(&[2.0]).unwrap()).unwrap();
        assert_eq!((one.low, one.median, one.high), (2.0, 2.0, 2.0));
    }

    #[test]
    fn differences_and_error_rates() {
        assert!((relative_difference(3.3, 3.0) - 0.1).abs() < 1e-9);
        assert_eq!(relative_difference(0.0, 1.0), f64::INFINITY);
        assert_eq!(error_rate(0, 0), 0.0);
        assert!(error_rate(2, 1000) > MAX_ERROR_RATE);
        assert!(error_rate(1, 1000) <= MAX_ERROR_RATE);
    }

    #[test]
    fn change_beyond_noise() {
        let a = Spread::of(&[100.0, 102.0, 98.0]).unwrap();
        let same = Spread::of(&[101.0, 99.0, 103.0]).unwrap();
        let faster = Spread::of(&[150.0, 148.0, 152.0]).unwrap();
        let wide = Spread::of(&[90.0, 150.0, 160.0]).unwrap();
        assert!(!changed_beyond_noise(&a, &same));
        assert!(changed_beyond_noise(&a, &faster));
        // b's median (150) is outside a's range, but a's median (100) is inside b's.
        assert!(!changed_beyond_noise(&a, &wide));
        // Single repeats: a 3% difference is within the minimum band, 20% is not.
        let one = |x| Spread::of(&[x]).unwrap();
        assert!(!changed_beyond_noise(&one(100.0), &one(103.0)));
        assert!(changed_beyond_noise(&one(100.0), &one(120.0)));
    }

    #[test]
    fn generator_limit() {
        assert!(generator_limited(95.0, 1));
        assert!(!generator_limited(60.0, 1));
        assert!(!generator_limited(120.0, 2));
    }

    fn row(t_ms: u64, ok: u64, errors: u64, p99_us: u64) -> IntervalRow {
        IntervalRow {
            t_ms,
            duration_ms: 100,
            ok,
            errors,
            p50_us: p99_us / 2,
            p99_us,
            max_us: p99_us,
            p90_us: p99_us / 2,
            p99_9_us: p99_us,
            failed: ErrorClasses {
                reset: errors,
                ..ErrorClasses::default()
            },
        }
    }

    #[test]
    fn delayed_is_a_lower_bound_from_quantiles() {
        let mut r = row(0, 1000, 0, 5000);
        // p50 2500, p90 2500, p99 5000, p99.9 5000.
        assert_eq!(delayed_at_least(&r, 10_000), 0);
        // p99 above 4000: ranks 990..=1000 are slower.
        assert_eq!(delayed_at_least(&r, 4000), 11);
        // p50 above 2000: half of them and one more.
        assert_eq!(delayed_at_least(&r, 2000), 501);
        r.max_us = 20_000;
        assert_eq!(delayed_at_least(&r, 10_000), 1);
        assert_eq!(delayed_at_least(&row(0, 0, 10, 0), 1), 0);
    }

    #[test]
    fn windows_and_one_downtime_figure() {
        let mut rows: Vec<IntervalRow> = (0..30).map(|i| row(i * 100, 100, 0, 1000)).collect();
        // Event at 1000 ms: 300 ms without a success (failures), a slow
        // interval, then 200 ms without any outcome at 2500 ms.
        rows[10] = row(1000, 0, 50, 0);
        rows[11] = row(1100, 0, 100, 0);
        rows[12] = row(1200, 0, 100, 0);
        rows[13] = row(1300, 100, 0, 80_000);
        rows[25] = row(2500, 0, 0, 0);
        rows[26] = row(2600, 0, 0, 0);
        // A short tail interval without a success is not downtime.
        rows.push(IntervalRow {
            duration_ms: 3,
            ..row(3000, 0, 0, 0)
        });
        let (first, drain, downtime) = recycle_windows(&rows, 1000, Some(2000));
        assert_eq!(downtime, 300);
        assert_eq!((first.from_ms, first.to_ms), (1000, 2000));
        assert_eq!(first.failed.reset, 250);
        assert_eq!(first.failed.total(), 250);
        assert_eq!(first.ok, 700);
        assert_eq!(first.intervals_without_success, 3);
        assert_eq!(first.worst_interval_p99_us, 80_000);
        // The slow interval: p50 40 ms > 2 ms, so at least 51 of 100.
        assert_eq!(first.delayed_at_least, Some(51));
        assert_eq!(drain.to_ms, 3003);
        assert_eq!(drain.intervals_without_success, 6);
        assert_eq!(drain.failed.total(), 250);
        let (first, _, _) = recycle_windows(&rows, 1000, None);
        assert_eq!(first.delayed_at_least, None);
        // Nothing before the event counts.
        let (_, _, none) = recycle_windows(&rows, 2800, Some(2000));
        assert_eq!(none, 0);
    }

    #[test]
    fn recycle_without_trouble_costs_nothing() {
        let rows: Vec<IntervalRow> = (0..10).map(|i| row(i * 100, 100, 0, 1000)).collect();
        let a = analyze_recycle(&rows, 500);
        assert_eq!(a.failed_requests, 0);
        assert_eq!(a.unavailable_ms, 0);
        assert_eq!(a.longest_gap_no_success_ms, 0);
        assert_eq!(a.baseline_p99_us, 1000);
        assert_eq!(a.peak_p99_us, 1000);
        assert_eq!(a.time_to_recover_ms, 0);
    }

    #[test]
    fn recycle_with_an_outage() {
        let mut rows: Vec<IntervalRow> = (0..12).map(|i| row(i * 100, 100, 0, 1000)).collect();
        // Event at 500 ms: two intervals of failures only, then one slow one.
        rows[5] = row(500, 0, 40, 0);
        rows[6] = row(600, 0, 100, 0);
        rows[7] = row(700, 80, 5, 50_000);
        let a = analyze_recycle(&rows, 500);
        assert_eq!(a.failed_requests, 145);
        assert_eq!(a.unavailable_ms, 300);
        assert_eq!(a.longest_gap_no_success_ms, 200);
        assert_eq!(a.baseline_p99_us, 1000);
        assert_eq!(a.peak_p99_us, 50_000);
        assert_eq!(a.time_to_recover_ms, 300);
    }

    #[test]
    fn recycle_at_the_start_uses_the_tail_as_baseline() {
        let mut rows: Vec<IntervalRow> = (0..9).map(|i| row(i * 100, 100, 0, 2000)).collect();
        rows[0] = row(0, 10, 0, 300_000);
        let a = analyze_recycle(&rows, 0);
        assert_eq!(a.baseline_p99_us, 2000);
        assert_eq!(a.peak_p99_us, 300_000);
        assert_eq!(a.time_to_recover_ms, 100);
        assert_eq!(a.failed_requests, 0);
    }
}
