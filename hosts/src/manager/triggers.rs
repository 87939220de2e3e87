//! The process manager's decisions as pure functions of the policy and of
//! what the supervisor observed, with the time passed in, so each trigger is
//! tested with an injected clock: the recycle triggers (periodic, scheduled,
//! memory, request count), the idle timeout, and rapid-fail protection.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::RecycleReason;
use crate::policy::{Policy, RapidFail, TimeOfDay};

/// What the supervisor knows about the running process at a tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Observed {
    /// Time the process has been serving (since its switch-in).
    pub running_for: Duration,
    /// Resident set size, if it could be read.
    pub rss_bytes: Option<u64>,
    /// Requests the front sent to it.
    pub requests: u64,
    /// A recycle the worker itself asked for (`hostlab event requests`).
    pub requested: Option<RecycleReason>,
    /// A `--recycle-at` time of day passed since the previous tick
    /// ([`crossed_time_of_day`]).
    pub scheduled: bool,
}

/// The recycle trigger that fires now, if any, in order of precedence: the
/// worker's own request, periodic (`--recycle-every`), scheduled
/// (`--recycle-at`), memory (`--recycle-memory-mb`), request count
/// (`--recycle-requests`).
pub(super) fn recycle_trigger(policy: &Policy, seen: &Observed) -> Option<RecycleReason> {
    if let Some(reason) = seen.requested {
        return Some(reason);
    }
    if !policy.recycle_every.is_zero() && seen.running_for >= policy.recycle_every {
        return Some(RecycleReason::Periodic);
    }
    if seen.scheduled {
        return Some(RecycleReason::Scheduled);
    }
    if let (Some(mb), Some(rss)) = (policy.recycle_memory_mb, seen.rss_bytes)
        && rss > mb * 1024 * 1024
    {
        return Some(RecycleReason::Memory);
    }
    if policy.recycle_requests.is_some_and(|n| seen.requests >= n) {
        return Some(RecycleReason::Requests);
    }
    None
}

/// Whether one of the times of day `at` lies in (`before`, `now`] of the
/// UTC day, the interval between two ticks; a tick across midnight counts
/// the times after `before` and those up to `now`.
pub(super) fn crossed_time_of_day(before: SystemTime, now: SystemTime, at: &[TimeOfDay]) -> bool {
    let secs_of_day = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    let (before, after) = (secs_of_day(before), secs_of_day(now));
    at.iter().any(|t| {
        let at = t.seconds();
        if before <= after {
            before < at && at <= after
        } else {
            // Midnight passed between the two ticks.
            at > before || at <= after
        }
    })
}

/// How a model learns that its app is idle.
#[derive(Debug, Clone, Copy)]
pub(super) enum IdleEvidence {
    /// `proxy`: the front sees every request itself.
    FrontSaw {
        since_last_request: Duration,
        running_for: Duration,
        in_flight: u64,
    },
    /// `inprocess`, `split`: the worker accepts its own connections and
    /// reports (`hostlab event idle` / `active`).
    WorkerReported {
        idle: bool,
        /// Time since the supervisor last thawed it, if it ever did.
        since_resume: Option<Duration>,
    },
}

/// Whether the idle timeout fires (`timeout` zero: never).
pub(super) fn is_idle(timeout: Duration, evidence: IdleEvidence) -> bool {
    if timeout.is_zero() {
        return false;
    }
    match evidence {
        IdleEvidence::FrontSaw {
            since_last_request,
            running_for,
            in_flight,
        } => since_last_request >= timeout && running_for >= timeout && in_flight == 0,
        // An idle report from before a thaw must not freeze the worker again
        // while it serves the request that woke it.
        IdleEvidence::WorkerReported { idle, since_resume } => idle && since_resume.is_none_or(|t| t >= timeout),
    }
}

/// Rapid-fail protection: the crashes within the rule's window.
#[derive(Debug, Default)]
pub(super) struct CrashWindow {
    crashes: VecDeque<Instant>,
}

impl CrashWindow {
    /// Record a crash at `now`; true when `rule` trips (its count of
    /// crashes within its window).
    pub(super) fn record(&mut self, now: Instant, rule: RapidFail) -> bool {
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > rule.window)
        {
            self.crashes.pop_front();
        }
        self.crashes.len() >= rule.crashes as usize
    }

    /// Crashes counted in the window now.
    pub(super) fn len(&self) -> usize {
        self.crashes.len()
    }

    /// Forget them (an operator's recycle after rapid-fail).
    pub(super) fn clear(&mut self) {
        self.crashes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn steady() -> Observed {
        Observed {
            running_for: Duration::ZERO,
            rss_bytes: Some(10 << 20),
            requests: 0,
            requested: None,
            scheduled: false,
        }
    }

    #[test]
    fn defaults_never_recycle() {
        let policy = Policy::default();
        let seen = Observed {
            running_for: 1000 * MIN,
            requests: u64::MAX,
            rss_bytes: Some(u64::MAX),
            ..steady()
        };
        assert_eq!(recycle_trigger(&policy, &seen), None);
    }

    #[test]
    fn periodic_fires_at_the_period() {
        let policy = Policy {
            recycle_every: 29 * MIN,
            ..Policy::default()
        };
        let at = |running_for| {
            recycle_trigger(
                &policy,
                &Observed {
                    running_for,
                    ..steady()
                },
            )
        };
        assert_eq!(at(29 * MIN - Duration::from_millis(1)), None);
        assert_eq!(at(29 * MIN), Some(RecycleReason::Periodic));
    }

    #[test]
    fn memory_fires_above_the_limit() {
        let policy = Policy {
            recycle_memory_mb: Some(100),
            ..Policy::default()
        };
        let at = |rss_bytes| recycle_trigger(&policy, &Observed { rss_bytes, ..steady() });
        assert_eq!(at(Some(100 << 20)), None, "at the limit is not above it");
        assert_eq!(at(Some((100 << 20) + 1)), Some(RecycleReason::Memory));
        assert_eq!(at(None), None, "an unreadable RSS never recycles");
    }

    #[test]
    fn request_count_fires_at_the_count() {
        let policy = Policy {
            recycle_requests: Some(1000),
            ..Policy::default()
        };
        let at = |requests| recycle_trigger(&policy, &Observed { requests, ..steady() });
        assert_eq!(at(999), None);
        assert_eq!(at(1000), Some(RecycleReason::Requests));
    }

    #[test]
    fn precedence_is_request_periodic_scheduled_memory_count() {
        let policy = Policy {
            recycle_every: MIN,
            recycle_memory_mb: Some(1),
            recycle_requests: Some(1),
            ..Policy::default()
        };
        let all = Observed {
            running_for: MIN,
            rss_bytes: Some(2 << 20),
            requests: 1,
            requested: Some(RecycleReason::Requests),
            scheduled: true,
        };
        assert_eq!(recycle_trigger(&policy, &all), Some(RecycleReason::Requests));
        let all = Observed { requested: None, ..all };
        assert_eq!(recycle_trigger(&policy, &all), Some(RecycleReason::Periodic));
        let all = Observed {
            running_for: Duration::ZERO,
            ..all
        };
        assert_eq!(recycle_trigger(&policy, &all), Some(RecycleReason::Scheduled));
        let all = Observed {
            scheduled: false,
            ..all
        };
        assert_eq!(recycle_trigger(&policy, &all), Some(RecycleReason::Memory));
        let all = Observed { rss_bytes: None, ..all };
        assert_eq!(recycle_trigger(&policy, &all), Some(RecycleReason::Requests));
    }

    /// `hh:mm:ss` on day `day` since the epoch (UTC).
    fn wall(day: u64, h: u64, m: u64, s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(day * 86_400 + h * 3600 + m * 60 + s)
    }

    #[test]
    fn scheduled_fires_once_when_the_time_is_crossed() {
        let at = [TimeOfDay { hour: 3, minute: 0 }];
        assert!(!crossed_time_of_day(wall(5, 2, 59, 0), wall(5, 2, 59, 59), &at));
        assert!(crossed_time_of_day(wall(5, 2, 59, 59), wall(5, 3, 0, 0), &at));
        assert!(
            !crossed_time_of_day(wall(5, 3, 0, 0), wall(5, 3, 0, 1), &at),
            "not again on the next tick"
        );
        assert!(
            !crossed_time_of_day(wall(5, 3, 0, 0), wall(5, 3, 0, 0), &at),
            "an empty interval crosses nothing"
        );
    }

    #[test]
    fn scheduled_across_midnight() {
        let at = [TimeOfDay { hour: 0, minute: 0 }, TimeOfDay { hour: 23, minute: 59 }];
        assert!(crossed_time_of_day(wall(5, 23, 59, 59), wall(6, 0, 0, 0), &at[..1]));
        assert!(crossed_time_of_day(wall(5, 23, 58, 59), wall(6, 0, 0, 1), &at[1..]));
        assert!(!crossed_time_of_day(wall(6, 0, 0, 0), wall(6, 0, 0, 1), &at));
    }

    #[test]
    fn proxy_idle_needs_quiet_time_uptime_and_nothing_in_flight() {
        let timeout = 20 * MIN;
        let saw = |since_last_request, running_for, in_flight| IdleEvidence::FrontSaw {
            since_last_request,
            running_for,
            in_flight,
        };
        assert!(is_idle(timeout, saw(timeout, timeout, 0)));
        assert!(!is_idle(timeout, saw(timeout - Duration::from_millis(1), timeout, 0)));
        assert!(
            !is_idle(timeout, saw(timeout, MIN, 0)),
            "a fresh process is not idle yet"
        );
        assert!(
            !is_idle(timeout, saw(timeout, timeout, 1)),
            "a long request is not idleness"
        );
        assert!(!is_idle(Duration::ZERO, saw(timeout, timeout, 0)), "0 = never");
    }

    #[test]
    fn worker_idle_is_its_report_unless_just_thawed() {
        let timeout = MIN;
        let reported = |idle, since_resume| IdleEvidence::WorkerReported { idle, since_resume };
        assert!(is_idle(timeout, reported(true, None)));
        assert!(!is_idle(timeout, reported(false, None)));
        assert!(
            !is_idle(timeout, reported(true, Some(Duration::from_secs(1)))),
            "report from before the thaw"
        );
        assert!(is_idle(timeout, reported(true, Some(timeout))));
        assert!(!is_idle(Duration::ZERO, reported(true, None)));
    }

    #[test]
    fn rapid_fail_trips_on_crashes_within_the_window() {
        let rule = RapidFail {
            crashes: 3,
            window: 5 * MIN,
        };
        let t0 = Instant::now();
        let mut window = CrashWindow::default();
        assert!(!window.record(t0, rule));
        assert!(!window.record(t0 + MIN, rule));
        assert!(window.record(t0 + 5 * MIN, rule), "3 crashes in 5 min");
        let mut window = CrashWindow::default();
        window.record(t0, rule);
        window.record(t0 + MIN, rule);
        assert!(!window.record(t0 + 6 * MIN, rule), "the first crash left the window");
        assert_eq!(window.len(), 2);
        window.clear();
        assert_eq!(window.len(), 0);
    }
}
