//! Claim rules on ratios with intervals (C1-C3: throughput by two methods,
//! server-bound req/s and inverse CPU per request; C8: the remoting link).

use super::Verdict;
use crate::run::results::{RatioInterval, Results};
use crate::run::scenarios::throughput::PING;
use crate::run::stats::{
    MAX_ERROR_RATE, METHODS_DISAGREE, RATIO_INTERVAL, RatioSpread, Spread, error_rate, format_ratio, generator_limited,
    ratio_spread, relative_difference,
};

/// How far a measured throughput ratio can be trusted. A closed-loop run
/// whose generator was the limit measured a lower bound of the server's
/// throughput, so a ratio with it in the numerator is a lower bound, and in
/// the denominator an upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    Exact,
    /// The true ratio is at least the measured one.
    AtLeast,
    /// The true ratio is at most the measured one.
    AtMost,
    /// Both sides were limited by the generator: the ratio says nothing.
    Unknown,
}

impl Bound {
    pub(crate) fn of(numerator_limited: bool, denominator_limited: bool) -> Bound {
        match (numerator_limited, denominator_limited) {
            (false, false) => Bound::Exact,
            (true, false) => Bound::AtLeast,
            (false, true) => Bound::AtMost,
            (true, true) => Bound::Unknown,
        }
    }
}

/// A measured ratio with its interval and its trust.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MeasuredRatio {
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub bound: Bound,
}

impl MeasuredRatio {
    pub(crate) fn of(r: RatioSpread, bound: Bound) -> MeasuredRatio {
        MeasuredRatio {
            median: r.median,
            low: r.low,
            high: r.high,
            bound,
        }
    }

    /// `3.16x (3.05-3.24)`.
    pub(crate) fn show(&self) -> String {
        format_ratio(&RatioSpread {
            median: self.median,
            low: self.low,
            high: self.high,
        })
    }

    pub(crate) fn interval(&self) -> RatioInterval {
        RatioInterval {
            median: self.median,
            low: self.low,
            high: self.high,
        }
    }
}

/// Rule for "A is at least `claimed` times B", on the interval: holds when
/// the whole interval (or the lower bound it gives) reaches `claimed`; does
/// not hold when the whole interval (or the upper bound) stays below;
/// inconclusive when it straddles `claimed` or a generator limit leaves the
/// side that matters open; not measured only without a measurement.
pub(crate) fn verdict_at_least(r: Option<MeasuredRatio>, claimed: f64) -> (Verdict, String) {
    let Some(r) = r else {
        return (Verdict::NotMeasured, "a model it needs did not run".into());
    };
    let shown = r.show();
    match r.bound {
        Bound::Exact | Bound::AtLeast if r.low >= claimed => {
            let q = if r.bound == Bound::AtLeast { "at least " } else { "" };
            (
                Verdict::Holds,
                format!("{q}{shown}: the interval lies above {claimed}x"),
            )
        }
        Bound::Exact | Bound::AtMost if r.high < claimed => {
            let q = if r.bound == Bound::AtMost { "at most " } else { "" };
            (
                Verdict::DoesNotHold,
                format!("{q}{shown}: the interval lies below {claimed}x"),
            )
        }
        Bound::Exact => (
            Verdict::Inconclusive,
            format!("{shown}: the interval straddles {claimed}x"),
        ),
        Bound::AtLeast => (
            Verdict::Inconclusive,
            format!(
                "the generator limited the faster model: the ratio is at least {shown}, which cannot decide {claimed}x"
            ),
        ),
        Bound::AtMost | Bound::Unknown => (
            Verdict::Inconclusive,
            format!("the generator limited the baseline: {shown} is not a usable ratio"),
        ),
    }
}

/// Rule for "A is between `lo` and `hi` times B", on the interval: holds
/// when it lies inside the range; does not hold when it (or the bound it
/// gives) lies wholly outside; inconclusive when it straddles `lo` or `hi`
/// or a generator limit leaves it open; not measured only without one.
pub(crate) fn verdict_in_range(r: Option<MeasuredRatio>, lo: f64, hi: f64) -> (Verdict, String) {
    let Some(r) = r else {
        return (Verdict::NotMeasured, "a model it needs did not run".into());
    };
    let shown = r.show();
    let range = format!("{lo}x-{hi}x");
    let above = r.low > hi && r.bound != Bound::AtMost && r.bound != Bound::Unknown;
    let below = r.high < lo && r.bound != Bound::AtLeast && r.bound != Bound::Unknown;
    match r.bound {
        _ if above => (Verdict::DoesNotHold, format!("{shown} lies above {range}")),
        _ if below => (Verdict::DoesNotHold, format!("{shown} lies below {range}")),
        Bound::Exact if r.low >= lo && r.high <= hi => (Verdict::Holds, format!("{shown} lies within {range}")),
        Bound::Exact => (Verdict::Inconclusive, format!("{shown} straddles a bound of {range}")),
        Bound::AtLeast => (
            Verdict::Inconclusive,
            format!("the generator limited the numerator: the ratio is only known to be at least {shown}"),
        ),
        Bound::AtMost => (
            Verdict::Inconclusive,
            format!("the generator limited the baseline: the ratio is only known to be at most {shown}"),
        ),
        Bound::Unknown => (Verdict::Inconclusive, "the generator limited both runs".into()),
    }
}

/// Several ratios against one range (C3: every proxy kind must fall in it):
/// does not hold if any lies outside, holds if every measured one is
/// inside, inconclusive otherwise; kinds that did not run are named and
/// left out; not measured when none ran.
pub(crate) fn verdict_all_in_range(ratios: &[(String, Option<MeasuredRatio>)], lo: f64, hi: f64) -> (Verdict, String) {
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
    let measured: Vec<Verdict> = each
        .iter()
        .map(|(_, (v, _))| *v)
        .filter(|v| *v != Verdict::NotMeasured)
        .collect();
    let verdict = if measured.contains(&Verdict::DoesNotHold) {
        Verdict::DoesNotHold
    } else if measured.iter().all(|v| *v == Verdict::Holds) {
        Verdict::Holds
    } else {
        Verdict::Inconclusive
    };
    (verdict, text)
}

/// What measured the remoting link (C8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LinkEvidence {
    /// The `link` scenario: one-way messages/s over one ractor_cluster
    /// connection between two pinned processes, over its repeats.
    Link(MeasuredRatio),
    /// Only the split model's `GET /books` req/s: a lower bound of the
    /// link's round trips/s (each request is one round trip with a 100-book
    /// reply, plus the front's HTTP work).
    SplitBooks(f64),
}

/// Rule for C8 (about 174,000 remoting messages/s per connection), on the
/// link scenario's messages/s (`MeasuredRatio` in messages/s, bound Exact):
/// holds when the interval reaches the claim, does not hold when it stays
/// below, inconclusive when it straddles it. Without the link scenario, the
/// split model's `GET /books` rate is only a lower bound: it can show the
/// claim holds, never that it does not.
pub(crate) fn verdict_remoting(e: Option<LinkEvidence>, claimed: f64) -> (Verdict, String) {
    match e {
        None => (
            Verdict::NotMeasured,
            "neither the link scenario nor the split model ran".into(),
        ),
        Some(LinkEvidence::Link(r)) => {
            let shown = format!("{:.0} msg/s ({:.0}-{:.0})", r.median, r.low, r.high);
            if r.low >= claimed {
                (Verdict::Holds, format!("{shown} >= {claimed:.0}"))
            } else if r.high < claimed {
                (Verdict::DoesNotHold, format!("{shown} < {claimed:.0}"))
            } else {
                (Verdict::Inconclusive, format!("{shown} straddles {claimed:.0}"))
            }
        }
        Some(LinkEvidence::SplitBooks(v)) if v >= claimed => (Verdict::Holds, format!("at least {v:.0} round trips/s")),
        Some(LinkEvidence::SplitBooks(v)) => (
            Verdict::Inconclusive,
            format!("{v:.0} req/s through the split front is only a lower bound of the link's rate"),
        ),
    }
}

/// The `GET /ping` throughput runs of one model that a ratio may use.
#[derive(Debug, Default)]
struct PingRuns {
    rps: Vec<f64>,
    /// Server core busy µs per request, and the processes' sum, per run.
    core_us: Vec<f64>,
    process_us: Vec<f64>,
    /// Some uncapped run's generator was busy enough to have been the limit.
    generator_limited: bool,
    /// Every run used for req/s was capped and checked server-bound.
    server_bound: bool,
    /// Runs not used, and why.
    refused: Vec<String>,
}

fn ping_runs(results: &Results, model: &str) -> Option<PingRuns> {
    let mut out = PingRuns {
        server_bound: true,
        ..PingRuns::default()
    };
    for e in results
        .entries
        .iter()
        .filter(|e| e.scenario == "throughput" && e.variant == PING && e.model == model)
    {
        let Some(load) = &e.load else { continue };
        let errors = load.requests.errors.total();
        let rate = error_rate(errors, load.requests.total);
        if rate > MAX_ERROR_RATE || load.requests.ok == 0 {
            out.refused.push(format!(
                "{model} run {}: {:.2} % of requests failed (limit {:.1} %)",
                e.repeat,
                rate * 100.0,
                MAX_ERROR_RATE * 100.0
            ));
            continue;
        }
        if let Some(c) = &e.cpu
            && c.core_busy_us_per_request.is_finite()
            && c.us_per_request > 0.0
        {
            out.core_us.push(c.core_busy_us_per_request);
            out.process_us.push(c.us_per_request);
        }
        match &e.cpu_cap {
            Some(cap) if !cap.server_bound => {
                out.refused.push(format!(
                    "{model} run {}: capped run not server-bound ({}); its req/s is not used",
                    e.repeat,
                    cap.flag.as_deref().unwrap_or("unchecked")
                ));
                continue;
            }
            Some(_) => {}
            None => {
                out.server_bound = false;
                out.generator_limited |= generator_limited(load.generator_cpu_percent, load.generator_cpus);
            }
        }
        out.rps.push(load.requests_per_sec);
    }
    out.server_bound &= !out.rps.is_empty();
    (!out.rps.is_empty() || !out.core_us.is_empty() || !out.refused.is_empty()).then_some(out)
}

/// Method 1: the `GET /ping` req/s ratio `num / den`. Exact when both
/// sides ran capped and server-bound; otherwise bounded by which side's
/// generator was the limit.
pub(crate) fn throughput_ratio(results: &Results, num: &str, den: &str) -> Option<MeasuredRatio> {
    let (a, b) = (ping_runs(results, num)?, ping_runs(results, den)?);
    let r = ratio_spread(&Spread::of(&a.rps)?, &Spread::of(&b.rps)?)?;
    let bound = if a.server_bound && b.server_bound {
        Bound::Exact
    } else {
        Bound::of(a.generator_limited, b.generator_limited)
    };
    Some(MeasuredRatio::of(r, bound))
}

/// The server core's busy time counts as one model's cost when it exceeds
/// the model's processes by at most this share (the core ran little else:
/// ksoftirqd, not other programs); otherwise the processes' sum is used.
pub(crate) const CORE_EXTRA_SHARE: f64 = 0.25;

/// Method 2: the inverse ratio of CPU per request, `cpu(den) / cpu(num)`
/// (at equal CPU, throughput is inversely proportional to CPU per
/// request). Uses the core's busy time when both sides' cores ran little
/// else ([`CORE_EXTRA_SHARE`]), else the processes' sum; says which.
pub(crate) fn cpu_ratio(results: &Results, num: &str, den: &str) -> Option<(MeasuredRatio, &'static str)> {
    let (a, b) = (ping_runs(results, num)?, ping_runs(results, den)?);
    let quiet = |r: &PingRuns| {
        r.core_us
            .iter()
            .zip(&r.process_us)
            .all(|(core, procs)| *core <= procs * (1.0 + CORE_EXTRA_SHARE))
    };
    let (what, xa, xb) = if quiet(&a) && quiet(&b) {
        ("server core busy time", &a.core_us, &b.core_us)
    } else {
        (
            "server processes' CPU (the core also ran other work)",
            &a.process_us,
            &b.process_us,
        )
    };
    let r = ratio_spread(&Spread::of(xb)?, &Spread::of(xa)?)?;
    Some((MeasuredRatio::of(r, Bound::Exact), what))
}

/// Repeats a side a ratio needs before it may decide a verdict (issue 13).
pub(crate) const MIN_CLAIM_REPEATS: usize = 3;

/// A throughput claim judged by both methods.
#[derive(Debug, Clone)]
pub(crate) struct RatioJudgement {
    pub verdict: Verdict,
    pub why: String,
    pub ratio: Option<MeasuredRatio>,
    pub method: String,
    /// What each method measured, in words.
    pub measured: String,
}

/// Judges `num / den` with `rule`: the server-bound throughput ratio when
/// it is exact, else the CPU-cost ratio; the other method is quoted, and a
/// difference above [`METHODS_DISAGREE`] is said. Refused runs are named.
pub(crate) fn judge_ratio(
    results: &Results,
    num: &str,
    den: &str,
    rule: &dyn Fn(Option<MeasuredRatio>) -> (Verdict, String),
) -> RatioJudgement {
    let tp = throughput_ratio(results, num, den);
    let cpu = cpu_ratio(results, num, den);
    let capped = results.settings.server_cpu_quota;
    let tp_method = match (tp.map(|r| r.bound), capped) {
        (Some(Bound::Exact), Some(f)) => format!("server-bound throughput ratio (capped at {f} cores)"),
        _ => "closed-loop throughput ratio".to_string(),
    };
    let runs = |m: &str| ping_runs(results, m).map_or(0, |r| r.rps.len());
    let tp_repeats = runs(num).min(runs(den));
    let tp_usable = tp.is_some_and(|t| t.bound == Bound::Exact) && tp_repeats >= MIN_CLAIM_REPEATS;
    let (primary, method) = match (tp, cpu) {
        (Some(t), _) if tp_usable => (Some(t), tp_method.clone()),
        (_, Some((c, what))) => (Some(c), format!("inverse ratio of {what} per request")),
        (t, None) => (t, tp_method.clone()),
    };
    let (verdict, mut why) = rule(primary);
    let mut parts = Vec::new();
    if let Some(t) = tp {
        parts.push(format!(
            "{tp_method}: {}{} ({tp_repeats} usable runs a side)",
            bound_word(t.bound),
            t.show()
        ));
        if t.bound == Bound::Exact && !tp_usable {
            why.push_str(&format!(
                "; the throughput ratio had only {tp_repeats} usable runs a side (at least {MIN_CLAIM_REPEATS} needed), \
                 so the CPU ratio decides"
            ));
        }
    }
    if let Some((c, what)) = cpu {
        parts.push(format!("inverse {what} per request: {}", c.show()));
    }
    if let (Some(t), Some((c, _))) = (tp, cpu)
        && tp_usable
    {
        let d = relative_difference(t.median, c.median);
        if d > METHODS_DISAGREE {
            why.push_str(&format!("; the two methods differ by {:.0} %", d * 100.0));
        }
    }
    let refused: Vec<String> = [num, den]
        .iter()
        .filter_map(|m| ping_runs(results, m))
        .flat_map(|r| r.refused)
        .collect();
    if !refused.is_empty() {
        why.push_str(&format!("; not used: {}", refused.join(", ")));
    }
    RatioJudgement {
        verdict,
        why,
        ratio: primary,
        method: format!("{method}, GET /ping; {RATIO_INTERVAL}"),
        measured: if parts.is_empty() {
            "-".into()
        } else {
            format!("{num}/{den}: {}", parts.join("; "))
        },
    }
}

fn bound_word(b: Bound) -> &'static str {
    match b {
        Bound::Exact => "",
        Bound::AtLeast => ">= ",
        Bound::AtMost => "<= ",
        Bound::Unknown => "? ",
    }
}

/// The link scenario's one-way messages/s over its repeats.
pub(crate) fn link_rate(results: &Results) -> Option<MeasuredRatio> {
    let rates: Vec<f64> = results
        .entries
        .iter()
        .filter_map(|e| e.link.as_ref().filter(|_| e.scenario == "link"))
        .map(|l| l.one_way_per_sec)
        .collect();
    let s = Spread::of(&rates)?;
    Some(MeasuredRatio {
        median: s.median,
        low: s.min,
        high: s.max,
        bound: Bound::Exact,
    })
}

#[cfg(test)]
#[path = "ratios_tests.rs"]
mod tests;
