//! The claims table (CONTEXT.md C1-C8): each published claim next to what
//! this run measured, with a verdict computed from the measurements by the
//! pure rules below (never written by hand). Rules: docs/run.md.

use serde::{Deserialize, Serialize};

use super::results::Results;
use super::scenarios::throughput::{BOOKS, PING};
use super::summary::{SummaryRow, find};

/// What a measurement says about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Holds,
    DoesNotHold,
    NotMeasured,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold here",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One row of the claims table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRow {
    pub id: &'static str,
    pub claim: &'static str,
    pub source: &'static str,
    /// The figure this run measured for it, in words.
    pub measured: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// How far a measured throughput ratio can be trusted. A closed-loop run
/// whose generator was the limit measured a lower bound of the server's
/// throughput, so a ratio with it in the numerator is a lower bound, and in
/// the denominator an upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Exact,
    /// The true ratio is at least the measured one.
    AtLeast,
    /// The true ratio is at most the measured one.
    AtMost,
    /// Both sides were limited by the generator: the ratio says nothing.
    Unknown,
}

impl Bound {
    pub fn of(numerator_limited: bool, denominator_limited: bool) -> Bound {
        match (numerator_limited, denominator_limited) {
            (false, false) => Bound::Exact,
            (true, false) => Bound::AtLeast,
            (false, true) => Bound::AtMost,
            (true, true) => Bound::Unknown,
        }
    }
}

/// A measured ratio with its trust.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredRatio {
    pub value: f64,
    pub bound: Bound,
}

/// Rule for "A is at least `claimed` times B": holds when the measured
/// ratio (or its lower bound) reaches `claimed`; does not hold when it (or
/// its upper bound) stays below; otherwise, or without a measurement, not
/// measured.
pub fn verdict_at_least(r: Option<MeasuredRatio>, claimed: f64) -> (Verdict, String) {
    let Some(r) = r else {
        return (Verdict::NotMeasured, "a model it needs did not run".into());
    };
    let v = r.value;
    match r.bound {
        Bound::Exact if v >= claimed => (Verdict::Holds, format!("{v:.2}x >= {claimed}x")),
        Bound::Exact => (Verdict::DoesNotHold, format!("{v:.2}x < {claimed}x")),
        Bound::AtLeast if v >= claimed => (Verdict::Holds, format!("at least {v:.2}x >= {claimed}x")),
        Bound::AtMost if v < claimed => (Verdict::DoesNotHold, format!("at most {v:.2}x < {claimed}x")),
        Bound::AtLeast => (
            Verdict::NotMeasured,
            format!(
                "the generator limited the faster model: the ratio is at least {v:.2}x, which cannot decide {claimed}x"
            ),
        ),
        Bound::AtMost | Bound::Unknown => (
            Verdict::NotMeasured,
            format!("the generator limited the baseline: {v:.2}x is not a usable ratio"),
        ),
    }
}

/// Rule for "A is between `lo` and `hi` times B": holds when the measured
/// ratio lies in the range; does not hold when it (or the bound it gives)
/// lies outside; otherwise not measured.
pub fn verdict_in_range(r: Option<MeasuredRatio>, lo: f64, hi: f64) -> (Verdict, String) {
    let Some(r) = r else {
        return (Verdict::NotMeasured, "a model it needs did not run".into());
    };
    let v = r.value;
    let range = format!("{lo}x-{hi}x");
    match r.bound {
        Bound::Exact if (lo..=hi).contains(&v) => (Verdict::Holds, format!("{v:.2}x is within {range}")),
        Bound::Exact => (Verdict::DoesNotHold, format!("{v:.2}x is outside {range}")),
        Bound::AtLeast if v > hi => (Verdict::DoesNotHold, format!("at least {v:.2}x, above {range}")),
        Bound::AtMost if v < lo => (Verdict::DoesNotHold, format!("at most {v:.2}x, below {range}")),
        Bound::AtLeast => (
            Verdict::NotMeasured,
            format!("the generator limited the numerator: the ratio is only known to be at least {v:.2}x"),
        ),
        Bound::AtMost => (
            Verdict::NotMeasured,
            format!("the generator limited edge's run: the ratio is only known to be at most {v:.2}x"),
        ),
        Bound::Unknown => (Verdict::NotMeasured, "the generator limited both runs".into()),
    }
}

/// Several ratios against one range (C3: every proxy kind must fall in it):
/// does not hold if any decisive ratio lies outside, holds if all are
/// decisive and inside, otherwise not measured.
pub fn verdict_all_in_range(ratios: &[(String, Option<MeasuredRatio>)], lo: f64, hi: f64) -> (Verdict, String) {
    if ratios.iter().all(|(_, r)| r.is_none()) {
        return (Verdict::NotMeasured, "no proxy model ran together with edge".into());
    }
    let each: Vec<(String, (Verdict, String))> = ratios
        .iter()
        .map(|(name, r)| (name.clone(), verdict_in_range(*r, lo, hi)))
        .collect();
    let text = each
        .iter()
        .map(|(n, (_, why))| format!("{n}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    let verdict = if each.iter().any(|(_, (v, _))| *v == Verdict::DoesNotHold) {
        Verdict::DoesNotHold
    } else if each.iter().all(|(_, (v, _))| *v == Verdict::Holds) {
        Verdict::Holds
    } else {
        Verdict::NotMeasured
    };
    (verdict, text)
}

/// Rule for C4 (in-memory state is lost when the host recycles an idle
/// app): holds when books were lost across an idle-terminate recycle,
/// does not hold when every idle-terminate kept them all, not measured
/// without an idle-terminate state measurement. `runs`: (model, before, after).
pub fn verdict_state_lost(runs: &[(String, u64, u64)]) -> (Verdict, String) {
    if runs.is_empty() {
        return (
            Verdict::NotMeasured,
            "the state scenario did not run an idle-terminate recycle".into(),
        );
    }
    let text = runs
        .iter()
        .map(|(m, b, a)| format!("{m}: {b} -> {a} books"))
        .collect::<Vec<_>>()
        .join(", ");
    if runs.iter().any(|(_, before, after)| after < before) {
        (
            Verdict::Holds,
            format!("books lost after an idle terminate without a journal ({text})"),
        )
    } else {
        (
            Verdict::DoesNotHold,
            format!("every idle terminate kept its books ({text})"),
        )
    }
}

/// Rule for C5 (an overlapped recycle with warm-up fails no request):
/// holds when every overlapped-with-warm-up run had zero failed requests,
/// does not hold when one failed any, not measured without one.
/// `runs`: (model, failed requests).
pub fn verdict_zero_failures(runs: &[(String, u64)]) -> (Verdict, String) {
    if runs.is_empty() {
        return (
            Verdict::NotMeasured,
            "the recycle scenario did not run an overlapped recycle".into(),
        );
    }
    let text = runs
        .iter()
        .map(|(m, f)| format!("{m}: {f} failed"))
        .collect::<Vec<_>>()
        .join(", ");
    if runs.iter().any(|(_, f)| *f > 0) {
        (
            Verdict::DoesNotHold,
            format!("requests failed during an overlapped recycle ({text})"),
        )
    } else {
        (Verdict::Holds, format!("no request failed ({text})"))
    }
}

/// Routing figures C6 compares: (live actors, RSS after in bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingPoint {
    pub live_actors: u64,
    pub rss_bytes: u64,
}

/// Rule for C6 (routing to 10 actors instead of one per task controls
/// memory): holds when the pool kept fewer live actors *and* less memory
/// than per-task; does not hold when it kept as many actors or as much
/// memory; not measured without both.
pub fn verdict_routing(pool: Option<RoutingPoint>, per_task: Option<RoutingPoint>) -> (Verdict, String) {
    let (Some(p), Some(t)) = (pool, per_task) else {
        return (
            Verdict::NotMeasured,
            "the routing scenario did not measure both modes".into(),
        );
    };
    let text = format!(
        "pool {} actors / {:.1} MiB, per-task {} actors / {:.1} MiB",
        p.live_actors,
        super::summary::mib(p.rss_bytes),
        t.live_actors,
        super::summary::mib(t.rss_bytes)
    );
    if p.live_actors < t.live_actors && p.rss_bytes < t.rss_bytes {
        (Verdict::Holds, text)
    } else {
        (Verdict::DoesNotHold, text)
    }
}

/// What a run measured with `--journal` (claim C7).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalEvidence {
    /// State runs with a journal: (model, recycle kind, books before, after).
    pub state_runs: Vec<(String, String, u64, u64)>,
    /// Fastest replay measured without a snapshot, events/s.
    pub replay_events_per_sec: Option<f64>,
    /// Accepted tasks across a restart, per experiment: (what, accepted,
    /// resumed, done).
    pub tasks: Vec<(String, u64, u64, u64)>,
}

/// Rule for C7 (persistent actors recover state after a crash and resume
/// unfinished tasks): does not hold if any journal run lost a book, or if
/// the tasks accepted before a SIGKILL did not all finish exactly once;
/// holds when every journal measurement kept its state; not measured
/// without journal runs. The replay rate is reported next to Akka's.
pub fn verdict_journal(e: &JournalEvidence) -> (Verdict, String) {
    if e.state_runs.is_empty() && e.tasks.is_empty() {
        return (
            Verdict::NotMeasured,
            "no --journal measurement in this run (scenarios state and recovery)".into(),
        );
    }
    let lost: Vec<String> = e
        .state_runs
        .iter()
        .filter(|(_, _, before, after)| after < before)
        .map(|(model, kind, before, after)| format!("{model} {kind}: {before} -> {after} books"))
        .collect();
    if !lost.is_empty() {
        return (
            Verdict::DoesNotHold,
            format!("books lost with the journal ({})", lost.join(", ")),
        );
    }
    let mut parts = Vec::new();
    if !e.state_runs.is_empty() {
        parts.push(format!(
            "every book kept in {} journal recycles and restarts",
            e.state_runs.len()
        ));
    }
    for (what, accepted, resumed, done) in &e.tasks {
        if done != accepted {
            return (
                Verdict::DoesNotHold,
                format!("{what}: {accepted} tasks accepted, {done} done after the restart (each must finish once)"),
            );
        }
        parts.push(format!(
            "{what}: {accepted} accepted tasks all finished once ({resumed} resumed)"
        ));
    }
    if !e.tasks.is_empty() && e.tasks.iter().all(|(_, _, resumed, _)| *resumed == 0) {
        parts.push("no task was unfinished at a restart, so resuming was not exercised".into());
    }
    if let Some(rate) = e.replay_events_per_sec {
        parts.push(format!("replay {rate:.0} events/s (Akka.Persistence Redis: 17-37k/s)"));
    }
    (Verdict::Holds, parts.join("; "))
}

/// Rule for C8 (174,000 remoting messages/s per connection): the split
/// model's `GET /books` throughput is a lower bound of its link's round
/// trips/s (each such request is one round trip carrying a 100-book reply,
/// and the front adds its own HTTP cost). `GET /ping` never crosses the link.
pub fn verdict_remoting(split_rps: Option<f64>, claimed: f64) -> (Verdict, String) {
    match split_rps {
        None => (Verdict::NotMeasured, "the split model did not run".into()),
        Some(v) if v >= claimed => (Verdict::Holds, format!("at least {v:.0} round trips/s")),
        Some(v) => (
            Verdict::NotMeasured,
            format!("{v:.0} req/s through the front is only a lower bound of the link's rate"),
        ),
    }
}

fn throughput_ratio(rows: &[SummaryRow], num: &str, den: &str) -> Option<MeasuredRatio> {
    let a = find(rows, "throughput", num, PING)?;
    let b = find(rows, "throughput", den, PING)?;
    let value = super::stats::ratio(a.rps.map(|s| s.median), b.rps.map(|s| s.median))?;
    Some(MeasuredRatio {
        value,
        bound: Bound::of(a.generator_limited, b.generator_limited),
    })
}

fn describe(r: Option<MeasuredRatio>, what: &str) -> String {
    match r {
        None => format!("{what}: -"),
        Some(r) => {
            let q = match r.bound {
                Bound::Exact => "",
                Bound::AtLeast => ">= ",
                Bound::AtMost => "<= ",
                Bound::Unknown => "? ",
            };
            format!("{what} = {q}{:.2}x", r.value)
        }
    }
}

/// The claims table of a result set.
pub fn claims(results: &Results, rows: &[SummaryRow]) -> Vec<ClaimRow> {
    let c1 = throughput_ratio(rows, "inprocess", "proxy");
    let c2 = throughput_ratio(rows, "proxy", "edge");
    let c3_nginx = throughput_ratio(rows, "nginx", "edge");
    let state_idle: Vec<(String, u64, u64)> = results
        .entries
        .iter()
        .filter_map(|e| {
            let s = e.state.as_ref()?;
            // C4 is about the app hosting its own actors; split keeps its state in
            // the actor service by design (its rows are in the state table).
            (s.kind == "idle-terminate" && !s.journal && e.model != "split")
                .then(|| (e.model.clone(), s.books_before, s.books_after))
        })
        .collect();
    let overlapped: Vec<(String, u64)> = results
        .entries
        .iter()
        .filter_map(|e| {
            let r = e.recycle.as_ref()?;
            (r.kind == "overlapped").then(|| (e.model.clone(), r.analysis.failed_requests))
        })
        .collect();
    let routing = |mode: &str| {
        results.entries.iter().find_map(|e| {
            let r = e.routing.as_ref()?;
            (r.routing == mode).then_some(RoutingPoint {
                live_actors: r.live_actors,
                rss_bytes: r.rss_after_bytes,
            })
        })
    };
    let journal = JournalEvidence {
        state_runs: results
            .entries
            .iter()
            .filter_map(|e| {
                let s = e.state.as_ref().filter(|s| s.journal)?;
                Some((e.model.clone(), s.kind.clone(), s.books_before, s.books_after))
            })
            .collect(),
        replay_events_per_sec: results
            .entries
            .iter()
            .filter_map(|e| e.recovery.as_ref().filter(|r| !r.snapshot && r.tasks_accepted == 0))
            .map(|r| r.replay_events_per_sec)
            .filter(|r| *r > 0.0)
            .reduce(f64::max),
        tasks: results
            .entries
            .iter()
            .filter_map(|e| {
                let r = e.recovery.as_ref().filter(|r| r.tasks_accepted > 0)?;
                Some((e.variant.clone(), r.tasks_accepted, r.tasks_resumed, r.tasks_done))
            })
            .collect(),
    };
    let split_rps = find(rows, "throughput", "split", BOOKS).and_then(|r| r.rps.map(|s| s.median));

    let row = |id, claim, source, measured: String, (verdict, reason): (Verdict, String)| ClaimRow {
        id,
        claim,
        source,
        measured,
        verdict,
        reason,
    };
    vec![
        row(
            "C1",
            "In-process hosting gives 4.4x the throughput of out-of-process proxying",
            "ASP.NET Core 2.1.0-preview1 blog (2018-02-28); Hanselman's 2.2 summary",
            describe(c1, "inprocess/proxy, GET /ping"),
            verdict_at_least(c1, 4.4),
        ),
        row(
            "C2",
            "Out-of-process behind IIS runs at 0.14x-0.45x of Kestrel facing clients",
            "aspnet/IISIntegration #220, #747",
            describe(c2, "proxy/edge, GET /ping"),
            verdict_in_range(c2, 0.14, 0.45),
        ),
        row(
            "C3",
            "A reverse proxy keeps 0.27x-0.55x of direct throughput",
            "dotnet/yarp #40",
            format!("{}; {}", describe(c2, "proxy/edge"), describe(c3_nginx, "nginx/edge")),
            verdict_all_in_range(&[("proxy".into(), c2), ("nginx".into(), c3_nginx)], 0.27, 0.55),
        ),
        row(
            "C4",
            "Where are all my books? An idle recycle loses the in-memory actor state",
            "Akka.NET-on-IIS article",
            if state_idle.is_empty() {
                "-".into()
            } else {
                state_idle
                    .iter()
                    .map(|(m, b, a)| format!("{m}: {b} -> {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            verdict_state_lost(&state_idle),
        ),
        row(
            "C5",
            "Overlapped recycle with warm-up fails no request",
            "IIS docs; dotnet/aspnetcore #10117, #41340, PR #52807",
            if overlapped.is_empty() {
                "-".into()
            } else {
                overlapped
                    .iter()
                    .map(|(m, f)| format!("{m}: {f} failed"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            verdict_zero_failures(&overlapped),
        ),
        row(
            "C6",
            "Hash routing to 10 actors instead of one actor per task controls memory",
            "Akka in production article",
            match (routing("pool:10"), routing("per-task")) {
                (Some(p), Some(t)) => format!(
                    "live actors {} vs {}; RSS {:.1} vs {:.1} MiB",
                    p.live_actors,
                    t.live_actors,
                    super::summary::mib(p.rss_bytes),
                    super::summary::mib(t.rss_bytes)
                ),
                _ => "-".into(),
            },
            verdict_routing(routing("pool:10"), routing("per-task")),
        ),
        row(
            "C7",
            "Persistent actors recover state after a crash; replay 17-37k events/s",
            "Akka.NET docs; Akka.Persistence.Redis PR #114",
            journal
                .replay_events_per_sec
                .map_or("-".into(), |r| format!("replay {r:.0} events/s")),
            verdict_journal(&journal),
        ),
        row(
            "C8",
            "Remoting does about 174,000 msg/s per connection",
            "akka.net #4329",
            split_rps.map_or("-".into(), |v| {
                format!("split GET /books {v:.0} req/s, one round trip each")
            }),
            verdict_remoting(split_rps, 174_000.0),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(value: f64) -> Option<MeasuredRatio> {
        Some(MeasuredRatio {
            value,
            bound: Bound::Exact,
        })
    }

    fn bounded(value: f64, bound: Bound) -> Option<MeasuredRatio> {
        Some(MeasuredRatio { value, bound })
    }

    #[test]
    fn at_least_rule() {
        assert_eq!(verdict_at_least(exact(4.6), 4.4).0, Verdict::Holds);
        assert_eq!(verdict_at_least(exact(2.8), 4.4).0, Verdict::DoesNotHold);
        assert_eq!(verdict_at_least(None, 4.4).0, Verdict::NotMeasured);
        // A lower bound that reaches the claim decides it; one that does not, cannot.
        assert_eq!(verdict_at_least(bounded(5.0, Bound::AtLeast), 4.4).0, Verdict::Holds);
        assert_eq!(
            verdict_at_least(bounded(2.0, Bound::AtLeast), 4.4).0,
            Verdict::NotMeasured
        );
        assert_eq!(
            verdict_at_least(bounded(2.0, Bound::AtMost), 4.4).0,
            Verdict::DoesNotHold
        );
        assert_eq!(
            verdict_at_least(bounded(9.0, Bound::Unknown), 4.4).0,
            Verdict::NotMeasured
        );
    }

    #[test]
    fn range_rule() {
        assert_eq!(verdict_in_range(exact(0.3), 0.14, 0.45).0, Verdict::Holds);
        assert_eq!(verdict_in_range(exact(0.6), 0.14, 0.45).0, Verdict::DoesNotHold);
        assert_eq!(verdict_in_range(exact(0.1), 0.14, 0.45).0, Verdict::DoesNotHold);
        assert_eq!(verdict_in_range(None, 0.14, 0.45).0, Verdict::NotMeasured);
        // Edge limited by the generator: the ratio is an upper bound.
        assert_eq!(
            verdict_in_range(bounded(0.7, Bound::AtMost), 0.14, 0.45).0,
            Verdict::NotMeasured
        );
        assert_eq!(
            verdict_in_range(bounded(0.1, Bound::AtMost), 0.14, 0.45).0,
            Verdict::DoesNotHold
        );
        assert_eq!(
            verdict_in_range(bounded(0.9, Bound::AtLeast), 0.14, 0.45).0,
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn all_in_range_rule() {
        let r = |a, b| vec![("proxy".to_string(), a), ("nginx".to_string(), b)];
        assert_eq!(
            verdict_all_in_range(&r(exact(0.3), exact(0.4)), 0.27, 0.55).0,
            Verdict::Holds
        );
        assert_eq!(
            verdict_all_in_range(&r(exact(0.3), exact(0.8)), 0.27, 0.55).0,
            Verdict::DoesNotHold
        );
        assert_eq!(
            verdict_all_in_range(&r(exact(0.3), None), 0.27, 0.55).0,
            Verdict::NotMeasured
        );
        assert_eq!(verdict_all_in_range(&r(None, None), 0.27, 0.55).0, Verdict::NotMeasured);
    }

    #[test]
    fn state_rule() {
        let lost = [("proxy".to_string(), 100, 0)];
        let kept = [("proxy".to_string(), 100, 100)];
        assert_eq!(verdict_state_lost(&lost).0, Verdict::Holds);
        assert_eq!(verdict_state_lost(&kept).0, Verdict::DoesNotHold);
        assert_eq!(verdict_state_lost(&[]).0, Verdict::NotMeasured);
    }

    #[test]
    fn zero_failure_rule() {
        assert_eq!(
            verdict_zero_failures(&[("proxy".into(), 0), ("inprocess".into(), 0)]).0,
            Verdict::Holds
        );
        assert_eq!(
            verdict_zero_failures(&[("proxy".into(), 0), ("inprocess".into(), 3)]).0,
            Verdict::DoesNotHold
        );
        assert_eq!(verdict_zero_failures(&[]).0, Verdict::NotMeasured);
    }

    #[test]
    fn routing_rule() {
        let p = |live_actors, mib: u64| {
            Some(RoutingPoint {
                live_actors,
                rss_bytes: mib << 20,
            })
        };
        assert_eq!(verdict_routing(p(10, 20), p(10_000, 60)).0, Verdict::Holds);
        assert_eq!(verdict_routing(p(10, 60), p(10_000, 60)).0, Verdict::DoesNotHold);
        assert_eq!(verdict_routing(p(10, 20), None).0, Verdict::NotMeasured);
    }

    #[test]
    fn journal_and_remoting_rules() {
        let none = JournalEvidence::default();
        assert_eq!(verdict_journal(&none).0, Verdict::NotMeasured);
        let kept = JournalEvidence {
            state_runs: vec![("proxy".into(), "crash".into(), 100, 100)],
            replay_events_per_sec: Some(600_000.0),
            tasks: vec![("after SIGKILL".into(), 200, 40, 200)],
        };
        let (verdict, reason) = verdict_journal(&kept);
        assert_eq!(verdict, Verdict::Holds);
        assert!(reason.contains("40 resumed") && reason.contains("600000"), "{reason}");
        let none_resumed = JournalEvidence {
            tasks: vec![("after SIGKILL".into(), 200, 0, 200)],
            ..kept.clone()
        };
        assert!(verdict_journal(&none_resumed).1.contains("not exercised"));
        let lost = JournalEvidence {
            state_runs: vec![("proxy".into(), "crash".into(), 100, 0)],
            ..kept.clone()
        };
        assert_eq!(verdict_journal(&lost).0, Verdict::DoesNotHold);
        let twice = JournalEvidence {
            tasks: vec![("after SIGKILL".into(), 200, 40, 201)],
            ..kept
        };
        assert_eq!(verdict_journal(&twice).0, Verdict::DoesNotHold);
        assert_eq!(verdict_remoting(None, 174_000.0).0, Verdict::NotMeasured);
        assert_eq!(verdict_remoting(Some(200_000.0), 174_000.0).0, Verdict::Holds);
        assert_eq!(verdict_remoting(Some(50_000.0), 174_000.0).0, Verdict::NotMeasured);
    }

    #[test]
    fn bounds_from_limits() {
        assert_eq!(Bound::of(false, false), Bound::Exact);
        assert_eq!(Bound::of(true, false), Bound::AtLeast);
        assert_eq!(Bound::of(false, true), Bound::AtMost);
        assert_eq!(Bound::of(true, true), Bound::Unknown);
    }
}
