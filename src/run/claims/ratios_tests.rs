//! Tests of the ratio rules C1-C3/C8: intervals, bounds, repeats and
//! the verdicts they give.

use super::*;
use crate::run::claims::claims;

/// A ratio with interval `low..high` (median in the middle).
fn exact(low: f64, high: f64) -> Option<MeasuredRatio> {
    bounded(low, high, Bound::Exact)
}

fn bounded(low: f64, high: f64, bound: Bound) -> Option<MeasuredRatio> {
    Some(MeasuredRatio {
        median: (low + high) / 2.0,
        low,
        high,
        bound,
    })
}

#[test]
fn at_least_rule_on_intervals() {
    let v = |r| verdict_at_least(r, 4.4).0;
    assert_eq!(v(exact(4.5, 4.8)), Verdict::Holds);
    assert_eq!(v(exact(3.05, 3.24)), Verdict::DoesNotHold);
    assert_eq!(v(exact(4.0, 4.6)), Verdict::Inconclusive, "straddles 4.4");
    assert_eq!(v(None), Verdict::NotMeasured);
    // A lower bound that reaches the claim decides it; one that does not, cannot.
    assert_eq!(v(bounded(5.0, 5.2, Bound::AtLeast)), Verdict::Holds);
    assert_eq!(v(bounded(2.0, 2.1, Bound::AtLeast)), Verdict::Inconclusive);
    assert_eq!(v(bounded(2.0, 2.1, Bound::AtMost)), Verdict::DoesNotHold);
    assert_eq!(v(bounded(9.0, 9.1, Bound::Unknown)), Verdict::Inconclusive);
    let (_, why) = verdict_at_least(exact(3.05, 3.27), 4.4);
    assert!(why.contains("3.16x (3.05-3.27)"), "{why}");
}

#[test]
fn range_rule_on_intervals() {
    let v = |r| verdict_in_range(r, 0.14, 0.45).0;
    assert_eq!(v(exact(0.3, 0.35)), Verdict::Holds);
    assert_eq!(v(exact(0.6, 0.7)), Verdict::DoesNotHold);
    assert_eq!(v(exact(0.05, 0.1)), Verdict::DoesNotHold);
    assert_eq!(v(exact(0.4, 0.5)), Verdict::Inconclusive, "straddles 0.45");
    assert_eq!(v(exact(0.1, 0.2)), Verdict::Inconclusive, "straddles 0.14");
    assert_eq!(v(None), Verdict::NotMeasured);
    // Edge limited by the generator: the ratio is an upper bound.
    assert_eq!(v(bounded(0.7, 0.8, Bound::AtMost)), Verdict::Inconclusive);
    assert_eq!(v(bounded(0.05, 0.1, Bound::AtMost)), Verdict::DoesNotHold);
    assert_eq!(v(bounded(0.9, 1.0, Bound::AtLeast)), Verdict::DoesNotHold);
    assert_eq!(v(bounded(0.2, 0.3, Bound::AtLeast)), Verdict::Inconclusive);
    assert_eq!(v(bounded(0.9, 1.0, Bound::Unknown)), Verdict::Inconclusive);
}

#[test]
fn all_in_range_rule_on_intervals() {
    let r = |a, b| vec![("proxy".to_string(), a), ("nginx".to_string(), b)];
    let v = |a, b| verdict_all_in_range(&r(a, b), 0.27, 0.55).0;
    assert_eq!(v(exact(0.3, 0.32), exact(0.4, 0.45)), Verdict::Holds);
    assert_eq!(v(exact(0.3, 0.32), exact(0.8, 0.9)), Verdict::DoesNotHold);
    assert_eq!(v(exact(0.3, 0.32), exact(0.5, 0.6)), Verdict::Inconclusive);
    // A kind that did not run is named and left out.
    assert_eq!(v(exact(0.3, 0.32), None), Verdict::Holds);
    assert!(
        verdict_all_in_range(&r(exact(0.3, 0.32), None), 0.27, 0.55)
            .1
            .contains("nginx: a model it needs did not run")
    );
    assert_eq!(v(None, None), Verdict::NotMeasured);
}

#[test]
fn remoting_rule() {
    let link = |lo, hi| Some(LinkEvidence::Link(exact(lo, hi).unwrap()));
    assert_eq!(verdict_remoting(None, 174_000.0).0, Verdict::NotMeasured);
    assert_eq!(
        verdict_remoting(link(180_000.0, 190_000.0), 174_000.0).0,
        Verdict::Holds
    );
    assert_eq!(
        verdict_remoting(link(90_000.0, 100_000.0), 174_000.0).0,
        Verdict::DoesNotHold
    );
    assert_eq!(
        verdict_remoting(link(170_000.0, 180_000.0), 174_000.0).0,
        Verdict::Inconclusive
    );
    let split = |v| Some(LinkEvidence::SplitBooks(v));
    assert_eq!(verdict_remoting(split(200_000.0), 174_000.0).0, Verdict::Holds);
    assert_eq!(verdict_remoting(split(50_000.0), 174_000.0).0, Verdict::Inconclusive);
}

use crate::run::results::{CapFigures, CpuFigures, Entry, ErrorClasses, LoadFigures, RequestCounts};

/// A `GET /ping` throughput entry: req/s, core and process µs per
/// request, failed requests out of 100,000, and its cap (if capped,
/// whether it was server-bound).
fn ping(model: &str, rps: f64, core_us: f64, proc_us: f64, errors: u64, cap: Option<bool>) -> Entry {
    Entry {
        model: model.into(),
        scenario: "throughput".into(),
        variant: PING.into(),
        repeat: 1,
        load: Some(LoadFigures {
            mode: "closed".into(),
            requests: RequestCounts {
                ok: 100_000 - errors,
                errors: ErrorClasses {
                    status_5xx: errors,
                    ..ErrorClasses::default()
                },
                total: 100_000,
            },
            requests_per_sec: rps,
            generator_cpu_percent: 50.0,
            generator_cpus: 1,
            ..LoadFigures::default()
        }),
        cpu: Some(CpuFigures {
            us_per_request: proc_us,
            core_busy_us_per_request: core_us,
            by_role: [("app".to_string(), proc_us)].into(),
            ..CpuFigures::default()
        }),
        cpu_cap: cap.map(|server_bound| CapFigures {
            cores: 0.5,
            server_bound,
            flag: (!server_bound).then(|| "never throttled".into()),
            ..CapFigures::default()
        }),
        ..Entry::default()
    }
}

fn results(entries: Vec<Entry>, quota: Option<f64>) -> Results {
    let mut r = Results {
        entries,
        ..Results::default()
    };
    r.settings.server_cpu_quota = quota;
    r
}

#[test]
fn both_methods_and_refused_runs() {
    let rule = |r| verdict_at_least(r, 4.4);
    // Capped, server-bound: the throughput ratio decides; CPU agrees.
    let r = results(
        vec![
            ping("inprocess", 60_000.0, 8.6, 8.0, 0, Some(true)),
            ping("inprocess", 61_000.0, 8.5, 8.0, 0, Some(true)),
            ping("inprocess", 62_000.0, 8.4, 8.0, 0, Some(true)),
            ping("proxy", 19_000.0, 27.0, 25.0, 0, Some(true)),
            ping("proxy", 19_500.0, 26.5, 25.0, 0, Some(true)),
            ping("proxy", 20_000.0, 26.0, 25.0, 0, Some(true)),
        ],
        Some(0.5),
    );
    let j = judge_ratio(&r, "inprocess", "proxy", &rule);
    assert!(
        j.method
            .starts_with("server-bound throughput ratio (capped at 0.5 cores)"),
        "{}",
        j.method
    );
    let ratio = j.ratio.unwrap();
    assert!((ratio.median - 61_000.0 / 19_500.0).abs() < 1e-9);
    assert!((ratio.low - 60_000.0 / 20_000.0).abs() < 1e-9 && (ratio.high - 62_000.0 / 19_000.0).abs() < 1e-9);
    // Fewer than 3 server-bound runs a side: the CPU ratio decides, and says why.
    let mut two = r.clone();
    two.entries.remove(0);
    let j = judge_ratio(&two, "inprocess", "proxy", &rule);
    assert!(j.method.starts_with("inverse ratio"), "{}", j.method);
    assert!(j.why.contains("only 2 usable runs"), "{}", j.why);
    assert_eq!(j.verdict, Verdict::DoesNotHold);
    assert!(!j.why.contains("differ"), "{}", j.why);
    // Uncapped and generator-limited: the CPU ratio decides (core time here,
    // the core ran nothing else), and the 10 % disagreement is not checked
    // against a bounded throughput ratio.
    let mut uncapped = r.clone();
    for e in &mut uncapped.entries {
        e.cpu_cap = None;
        if e.model == "inprocess" {
            e.load.as_mut().unwrap().generator_cpu_percent = 99.0;
        }
    }
    uncapped.settings.server_cpu_quota = None;
    let j = judge_ratio(&uncapped, "inprocess", "proxy", &rule);
    assert!(
        j.method.starts_with("inverse ratio of server core busy time"),
        "{}",
        j.method
    );
    let ratio = j.ratio.unwrap();
    assert!((ratio.median - 26.5 / 8.5).abs() < 1e-9);
    assert!(j.measured.contains(">= "), "{}", j.measured);
    // The methods disagree by more than 10 %: said.
    let mut apart = r.clone();
    for e in apart.entries.iter_mut().filter(|e| e.model == "inprocess") {
        e.cpu.as_mut().unwrap().core_busy_us_per_request = 5.0;
        e.cpu.as_mut().unwrap().us_per_request = 5.0;
    }
    assert!(
        judge_ratio(&apart, "inprocess", "proxy", &rule)
            .why
            .contains("the two methods differ by")
    );
    // An error-heavy run and a capped run that was not server-bound are
    // refused and named; the rest still decide.
    let mut flagged = r.clone();
    flagged
        .entries
        .push(ping("proxy", 90_000.0, 27.0, 25.0, 500, Some(true)));
    flagged
        .entries
        .push(ping("inprocess", 1_000.0, 8.5, 8.0, 0, Some(false)));
    let j = judge_ratio(&flagged, "inprocess", "proxy", &rule);
    assert!((j.ratio.unwrap().median - 61_000.0 / 19_500.0).abs() < 1e-9, "{j:?}");
    assert!(j.method.starts_with("server-bound"), "{}", j.method);
    assert!(j.why.contains("0.50 % of requests failed"), "{}", j.why);
    assert!(j.why.contains("not server-bound"), "{}", j.why);
    // A model that did not run: not measured.
    assert_eq!(judge_ratio(&r, "nginx", "edge", &rule).verdict, Verdict::NotMeasured);
}

#[test]
fn claims_json_uses_the_design_words() {
    let r = results(
        vec![
            ping("inprocess", 60_000.0, 8.6, 8.0, 0, Some(true)),
            ping("proxy", 19_000.0, 27.0, 25.0, 0, Some(true)),
        ],
        Some(0.5),
    );
    let rows = crate::run::summary::summarize(&r);
    let table = claims(&r, &rows);
    let c1 = table.iter().find(|c| c.id == "C1").unwrap().to_json();
    assert_eq!(c1.verdict, "does not hold");
    assert!(c1.ratio.is_some() && !c1.method.is_empty());
    let c8 = table.iter().find(|c| c.id == "C8").unwrap().to_json();
    assert_eq!((c8.verdict.as_str(), c8.ratio), ("not measured", None));
}

#[test]
fn bounds_from_limits() {
    assert_eq!(Bound::of(false, false), Bound::Exact);
    assert_eq!(Bound::of(true, false), Bound::AtLeast);
    assert_eq!(Bound::of(false, true), Bound::AtMost);
    assert_eq!(Bound::of(true, true), Bound::Unknown);
}
