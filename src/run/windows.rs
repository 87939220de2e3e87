//! Recycle windows measured exactly: the latency histograms of the 100 ms
//! timeline intervals a window covers, merged into one HdrHistogram, give
//! the window's p99 and the exact number of delayed requests (docs/run.md
//! "Recycle method").
//!
//! A request belongs to the interval in which its outcome was known (its
//! completion), as everywhere in the timeline; a window takes every interval
//! it overlaps, so its edges fall on the 100 ms grid.

use hdrhistogram::Histogram;

use super::results::{IntervalRow, WindowMetrics};
use super::stats;

/// One interval's histogram as `TimelineRow::latency_buckets` keeps it.
pub(super) type Buckets = Option<Vec<(u64, u64)>>;

/// Significant digits of the load core's histograms; the bucket layout
/// depends only on them and the lowest value (1 µs), so an auto-resizing
/// histogram with these digits has the same buckets.
const SIGNIFICANT_DIGITS: u8 = 3;

/// One interval's latency histogram rebuilt from its non-empty buckets
/// (`TimelineRow::latency_buckets`: highest equivalent value, count).
pub(super) fn interval_histogram(buckets: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits are valid");
    for &(value, count) in buckets {
        h.record_n(value, count)
            .expect("an auto-resizing histogram records any value");
    }
    h
}

/// Successful requests in `h` slower than `threshold_us` as the histogram
/// records latencies: every request in a bucket above the threshold's own
/// bucket. Exact to the histogram's 3 significant digits; a control's
/// p99.9 is the top of a bucket, so no bucket straddles it.
pub(super) fn delayed(h: &Histogram<u64>, threshold_us: u64) -> u64 {
    let top = h.highest_equivalent(threshold_us);
    h.iter_recorded()
        .filter(|v| v.value_iterated_to() > top)
        .map(|v| v.count_at_value())
        .sum()
}

/// The longest run of consecutive intervals in which no request succeeded,
/// in ms; a last interval shorter than the first is the run's tail, not a
/// stall, and does not count.
fn longest_outage(rows: &[&IntervalRow], full_ms: u64, last_of_run: Option<&IntervalRow>) -> u64 {
    let mut longest = 0;
    let mut gap = 0;
    for r in rows {
        let tail = last_of_run.is_some_and(|l| std::ptr::eq(l, *r)) && r.duration_ms < full_ms;
        if r.ok == 0 && !tail {
            gap += r.duration_ms;
            longest = longest.max(gap);
        } else {
            gap = 0;
        }
    }
    longest
}

/// The cost of a recycle in its two windows, [event, event + 1 s] and
/// [event, end of the run], and the run's one downtime figure:
/// `stats::recycle_windows` (counts by class, the quantile lower bound and
/// worst interval p99 kept for older runs), plus from the merged interval
/// histograms the exact `delayed` count (`None` without a threshold) and
/// the window's `p99_us` (`None` when nothing succeeded in it), and each
/// window's own `downtime_ms`.
///
/// `buckets[i]` is row `i`'s histogram; without it for every row of a
/// window (a timeline recorded without histograms) the exact figures are
/// `None`.
pub(super) fn recycle_windows(
    rows: &[IntervalRow],
    buckets: &[Buckets],
    event_ms: u64,
    threshold_us: Option<u64>,
) -> (WindowMetrics, WindowMetrics, u64) {
    let (first, drain, downtime) = stats::recycle_windows(rows, event_ms, threshold_us);
    let full_ms = rows.first().map_or(0, |r| r.duration_ms);
    let exact = |mut w: WindowMetrics| {
        let inside: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].t_ms < w.to_ms && rows[i].t_ms + rows[i].duration_ms > w.from_ms)
            .collect();
        let window_rows: Vec<&IntervalRow> = inside.iter().map(|&i| &rows[i]).collect();
        w.downtime_ms = longest_outage(&window_rows, full_ms, rows.last());
        let histograms: Option<Vec<Histogram<u64>>> = inside
            .iter()
            .map(|&i| buckets.get(i)?.as_deref().map(interval_histogram))
            .collect();
        if let Some(histograms) = histograms {
            let mut merged = Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits are valid");
            for h in &histograms {
                merged.add(h).expect("an auto-resizing histogram adds any histogram");
            }
            w.delayed = threshold_us.map(|t| delayed(&merged, t));
            w.p99_us = (!merged.is_empty()).then(|| merged.value_at_quantile(0.99));
        }
        w
    };
    (exact(first), exact(drain), downtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic timeline row and its histogram from raw latencies (µs)
    /// of the successful requests, plus failed ones.
    fn interval(t_ms: u64, latencies: &[u64], errors: u64) -> (IntervalRow, Buckets) {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for &l in latencies {
            h.record(l).unwrap();
        }
        let q = |q| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
        let row = IntervalRow {
            t_ms,
            duration_ms: 100,
            ok: latencies.len() as u64,
            errors,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p99_9_us: q(0.999),
            max_us: h.max(),
            failed: crate::run::results::ErrorClasses {
                refused: errors,
                ..Default::default()
            },
        };
        let buckets = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        (row, Some(buckets))
    }

    fn timeline(intervals: Vec<(IntervalRow, Buckets)>) -> (Vec<IntervalRow>, Vec<Buckets>) {
        intervals.into_iter().unzip()
    }

    #[test]
    fn rebuilt_interval_histograms_are_exact() {
        let (_, buckets) = interval(0, &[1, 999, 1000, 1001, 2047, 5_000, 123_456, 2_000_000], 0);
        let h = interval_histogram(buckets.as_deref().unwrap());
        assert_eq!(h.len(), 8);
        // Below 2048 µs every value has its own bucket.
        assert_eq!(h.count_at(1000), 1);
        assert_eq!(h.count_at(1001), 1);
        assert_eq!(h.value_at_quantile(0.85), h.highest_equivalent(123_456));
    }

    #[test]
    fn delayed_is_exact_at_the_threshold() {
        // 100 requests at 1000 µs (the threshold itself: not delayed),
        // 7 at 1001 µs (delayed), in one interval.
        let mut lat = vec![1000; 100];
        lat.extend([1001; 7]);
        let (rows, buckets) = timeline(
            (0..20)
                .map(|i| interval(i * 100, if i == 10 { &lat } else { &[500] }, 0))
                .collect(),
        );
        let (first, drain, downtime) = recycle_windows(&rows, &buckets, 1000, Some(1000));
        assert_eq!(first.delayed, Some(7));
        assert_eq!(drain.delayed, Some(7));
        assert_eq!(downtime, 0);
        // One more µs of threshold: none; one less: the 100 at 1000 too.
        assert_eq!(recycle_windows(&rows, &buckets, 1000, Some(1001)).0.delayed, Some(0));
        assert_eq!(recycle_windows(&rows, &buckets, 1000, Some(999)).0.delayed, Some(107));
        // Requests before the window are not counted.
        assert_eq!(recycle_windows(&rows, &buckets, 1100, Some(1000)).0.delayed, Some(0));
        // Without a threshold, no count; the p99 still.
        let (w, _, _) = recycle_windows(&rows, &buckets, 1000, None);
        assert_eq!(w.delayed, None);
        assert!(w.p99_us.is_some());
    }

    #[test]
    fn window_p99_is_over_every_request_not_the_worst_interval() {
        // Event at 1000 ms. In [1000, 2000): 9 intervals of 100 fast
        // requests (200 µs) and one of 5 slow ones (50 ms): 5 of 905 are
        // slow (0.55%), so the window's p99 is fast while the worst
        // interval's p99 is 50 ms.
        let fast = vec![200; 100];
        let slow = vec![50_000; 5];
        let (rows, buckets) = timeline(
            (0..30)
                .map(|i| interval(i * 100, if i == 12 { &slow } else { &fast }, 0))
                .collect(),
        );
        let (first, drain, _) = recycle_windows(&rows, &buckets, 1000, Some(1000));
        assert_eq!(first.p99_us, Some(200));
        assert_eq!(first.worst_interval_p99_us, 50_015);
        assert_eq!(first.delayed, Some(5));
        assert_eq!(first.ok, 905);
        assert_eq!(drain.ok, 1905);
        assert_eq!(drain.p99_us, Some(200));
        // 100 slow ones among 905 would make it slow.
        let slow = vec![50_000; 100];
        let (rows, buckets) = timeline(
            (0..30)
                .map(|i| interval(i * 100, if i == 12 { &slow } else { &fast }, 0))
                .collect(),
        );
        let (first, _, _) = recycle_windows(&rows, &buckets, 1000, Some(1000));
        assert_eq!(first.p99_us, Some(50_015));
    }

    #[test]
    fn an_outage_counts_as_downtime_and_fails_nothing_by_itself() {
        // Event at 1000 ms: 300 ms with refused connections, 200 ms with no
        // outcome at all, then requests that waited (2 s) and fast ones.
        let mut intervals: Vec<_> = (0..30).map(|i| interval(i * 100, &[300; 10], 0)).collect();
        for i in 10..15 {
            let errors = if i < 13 { 20 } else { 0 };
            intervals[i as usize] = interval(i * 100, &[], errors);
        }
        intervals[15] = interval(1500, &[400_000; 40], 0);
        let (rows, buckets) = timeline(intervals);
        let (first, drain, downtime) = recycle_windows(&rows, &buckets, 1000, Some(1000));
        assert_eq!(downtime, 500);
        assert_eq!((first.downtime_ms, drain.downtime_ms), (500, 500));
        assert_eq!(first.failed.refused, 60);
        assert_eq!(first.intervals_without_success, 5);
        assert_eq!(first.delayed, Some(40));
        assert_eq!(first.ok, 40 + 4 * 10);
        // Half of the window's successes waited 400 ms: p99 is theirs.
        assert_eq!(first.p99_us, Some(400_127));
        // The control's window over the same place, nothing wrong there.
        let (rows, buckets) = timeline((0..30).map(|i| interval(i * 100, &[300; 10], 0)).collect());
        let (first, _, downtime) = recycle_windows(&rows, &buckets, 1000, Some(1000));
        assert_eq!(
            (downtime, first.downtime_ms, first.delayed, first.p99_us),
            (0, 0, Some(0), Some(300))
        );
    }

    #[test]
    fn an_empty_window_has_no_p99_and_no_delay() {
        // The event in the run's last interval, then nothing: the 1 s
        // window holds only that interval; a window past the end holds none.
        let (rows, buckets) = timeline((0..10).map(|i| interval(i * 100, &[], 3)).collect());
        let (first, drain, downtime) = recycle_windows(&rows, &buckets, 500, Some(1000));
        assert_eq!(first.ok, 0);
        assert_eq!(first.p99_us, None);
        assert_eq!(first.delayed, Some(0));
        assert_eq!(first.failed.refused, 15);
        assert_eq!(downtime, 500);
        assert_eq!(drain.downtime_ms, 500);
        let (first, drain, downtime) = recycle_windows(&rows, &buckets, 5000, Some(1000));
        assert_eq!(
            (first.ok, first.failed.total(), first.p99_us, first.delayed),
            (0, 0, None, Some(0))
        );
        assert_eq!((drain.downtime_ms, downtime), (0, 0));
        // No timeline at all.
        let (first, _, downtime) = recycle_windows(&[], &[], 1000, Some(1000));
        assert_eq!((first.ok, first.p99_us, first.delayed, downtime), (0, None, Some(0), 0));
    }

    #[test]
    fn without_interval_histograms_the_exact_figures_are_unknown() {
        let (rows, _) = timeline((0..20).map(|i| interval(i * 100, &[300; 10], 0)).collect());
        let none = vec![None; rows.len()];
        let (first, drain, _) = recycle_windows(&rows, &none, 1000, Some(1000));
        assert_eq!((first.delayed, first.p99_us), (None, None));
        assert_eq!(drain.delayed_at_least, Some(0), "the lower bound is still there");
        assert_eq!(first.ok, 100);
    }

    #[test]
    fn a_short_last_interval_is_the_tail_not_downtime() {
        let (mut rows, mut buckets) = timeline((0..10).map(|i| interval(i * 100, &[300; 10], 0)).collect());
        let (tail, b) = interval(1000, &[], 0);
        rows.push(IntervalRow { duration_ms: 4, ..tail });
        buckets.push(b);
        let (first, drain, downtime) = recycle_windows(&rows, &buckets, 500, Some(1000));
        assert_eq!((first.downtime_ms, drain.downtime_ms, downtime), (0, 0, 0));
    }
}
