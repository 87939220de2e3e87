//! The claims table (CONTEXT.md C1-C8): each published claim next to what
//! this run measured, with a verdict computed from the measurements by the
//! pure rules in `ratios` (C1-C3, C8: ratios with intervals) and `evidence`
//! (C4-C7: state, recycles, routing, journal), never written by hand.
//! Rules: docs/run.md.

use hostlab_hosts::Model;
use serde::{Deserialize, Serialize};

use super::results::{ClaimVerdict, RatioInterval, Results};
use super::scenarios::throughput::BOOKS;
use super::summary::{SummaryRow, find};

mod evidence;
mod ratios;

pub(super) use evidence::*;
pub(super) use ratios::*;

/// What a measurement says about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Verdict {
    Holds,
    DoesNotHold,
    /// The measured interval straddles a bound of the claim.
    Inconclusive,
    NotMeasured,
}

impl Verdict {
    pub(super) fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold here",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }

    /// The word results.json uses (DESIGN.md: `holds`, `does not hold`,
    /// `inconclusive`, `not measured`).
    pub(super) fn key(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One row of the claims table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ClaimRow {
    pub id: &'static str,
    pub claim: &'static str,
    pub source: &'static str,
    /// The figure this run measured for it, in words.
    pub measured: String,
    pub verdict: Verdict,
    pub reason: String,
    /// The ratio the verdict used, with its interval (C1-C3, C8).
    pub ratio: Option<RatioInterval>,
    /// How it was measured, and which interval it carries.
    pub method: String,
}

impl ClaimRow {
    /// The row as results.json's `claims` holds it.
    pub(super) fn to_json(&self) -> ClaimVerdict {
        ClaimVerdict {
            id: self.id.to_string(),
            verdict: self.verdict.key().to_string(),
            ratio: self.ratio,
            method: self.method.clone(),
            why: self.reason.clone(),
        }
    }
}

/// The items joined with `, `, or `-` when there are none.
fn list_or_dash(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() { "-".into() } else { items.join(", ") }
}

/// The claims table of a result set.
pub(super) fn claims(results: &Results, rows: &[SummaryRow]) -> Vec<ClaimRow> {
    let c1 = judge_ratio(results, "inprocess", "proxy", &|r| verdict_at_least(r, 4.4));
    let c2 = judge_ratio(results, "proxy", "edge", &|r| verdict_in_range(r, 0.14, 0.45));
    let c3_rule = |r| verdict_in_range(r, 0.27, 0.55);
    let c3_proxy = judge_ratio(results, "proxy", "edge", &c3_rule);
    let c3_nginx = judge_ratio(results, "nginx", "edge", &c3_rule);
    let (c3_verdict, c3_why) = verdict_all_in_range(
        &[("proxy".into(), c3_proxy.ratio), ("nginx".into(), c3_nginx.ratio)],
        0.27,
        0.55,
    );
    let c3_from = [&c3_proxy, &c3_nginx]
        .into_iter()
        .find(|j| j.verdict == c3_verdict)
        .unwrap_or(&c3_proxy);
    let state_idle: Vec<StateRun> = results
        .entries
        .iter()
        .filter_map(|e| {
            let s = e.state.as_ref()?;
            // C4 is about the app hosting its own actors; split keeps its state in
            // the actor service by design (its rows are in the state table).
            (s.kind == "idle-terminate" && !s.journal && e.model.parse().is_ok_and(Model::hosts_own_actors)).then(
                || StateRun {
                    model: e.model.clone(),
                    kind: s.kind.clone(),
                    books_before: s.books_before,
                    books_after: s.books_after,
                },
            )
        })
        .collect();
    // The recycle scenario's overlapped runs, and each soak (many
    // overlapped recycles with warm-up under load at half the capacity).
    let overlapped: Vec<OverlappedRun> = results
        .entries
        .iter()
        .filter(|e| e.recycle.as_ref().is_some_and(|r| r.kind == "overlapped"))
        .filter_map(OverlappedRun::of)
        .chain(results.entries.iter().filter_map(OverlappedRun::of_soak))
        .collect();
    let routing = |mode: &str| {
        results.entries.iter().find_map(|e| {
            let r = e.routing.as_ref()?;
            (r.routing == mode).then(|| RoutingPoint::of(r))
        })
    };
    let journal = journal_evidence(results);
    let split_rps = find(rows, "throughput", "split", BOOKS).and_then(|r| r.rps.map(|s| s.median));
    let link = link_rate(results);
    let c8 = link.map(LinkEvidence::Link).or(split_rps.map(LinkEvidence::SplitBooks));

    let row = |id, claim, source, measured: String, (verdict, reason): (Verdict, String)| ClaimRow {
        id,
        claim,
        source,
        measured,
        verdict,
        reason,
        ratio: None,
        method: String::new(),
    };
    let ratio_row = |id, claim, source, j: &RatioJudgement| ClaimRow {
        id,
        claim,
        source,
        measured: j.measured.clone(),
        verdict: j.verdict,
        reason: j.why.clone(),
        ratio: j.ratio.map(|r| r.interval()),
        method: j.method.clone(),
    };
    vec![
        ratio_row(
            "C1",
            "In-process hosting gives 4.4x the throughput of out-of-process proxying",
            "ASP.NET Core 2.1.0-preview1 blog (2018-02-28); Hanselman's 2.2 summary",
            &c1,
        ),
        ratio_row(
            "C2",
            "Out-of-process behind IIS runs at 0.14x-0.45x of Kestrel facing clients",
            "aspnet/IISIntegration #220, #747",
            &c2,
        ),
        ClaimRow {
            measured: format!("{}; {}", c3_proxy.measured, c3_nginx.measured),
            verdict: c3_verdict,
            reason: c3_why,
            method: c3_from.method.clone(),
            ..ratio_row(
                "C3",
                "A reverse proxy keeps 0.27x-0.55x of direct throughput",
                "dotnet/yarp #40",
                c3_from,
            )
        },
        row(
            "C4",
            "Where are all my books? An idle recycle loses the in-memory actor state",
            "Akka.NET-on-IIS article",
            list_or_dash(
                state_idle
                    .iter()
                    .map(|r| format!("{}: {} -> {}", r.model, r.books_before, r.books_after)),
            ),
            verdict_state_lost(&state_idle),
        ),
        row(
            "C5",
            "Overlapped recycle with warm-up fails no request",
            "IIS docs; dotnet/aspnetcore #10117, #41340, PR #52807",
            list_or_dash(overlapped.iter().map(|r| {
                format!(
                    "{}: {} failed, {} ok before / {} ok after the recycle",
                    r.model, r.failed, r.ok_before, r.ok_after
                )
            })),
            verdict_zero_failures(&overlapped),
        ),
        row(
            "C6",
            "Hash routing to 10 actors instead of one actor per task controls memory",
            "Akka in production article",
            match (routing("pool:10"), routing("per-task")) {
                (Some(p), Some(t)) => format!(
                    "live actors {} vs {}; RSS {} vs {} MiB; tasks ok {}/{} vs {}/{}",
                    p.live_actors,
                    t.live_actors,
                    super::summary::mib_text(p.rss_bytes),
                    super::summary::mib_text(t.rss_bytes),
                    p.tasks_ok,
                    p.tasks_sent,
                    t.tasks_ok,
                    t.tasks_sent
                ),
                _ => "-".into(),
            },
            verdict_routing(routing("pool:10"), routing("per-task")),
        ),
        row(
            "C7",
            "Persistent actors recover state after a crash; replay 17-37k events/s",
            "Akka.NET docs; Akka.Persistence.Redis PR #114",
            list_or_dash(
                journal
                    .replays
                    .iter()
                    .filter(|r| !r.snapshot && r.replay_events_per_sec > 0.0)
                    .map(|r| format!("replay {:.0} events/s ({})", r.replay_events_per_sec, r.run)),
            ),
            verdict_journal(&journal),
        ),
        ClaimRow {
            ratio: link.map(|r| r.interval()),
            method: match c8 {
                Some(LinkEvidence::Link(_)) => {
                    "link scenario: one-way messages/s over one ractor_cluster connection; min-max of the repeats"
                        .into()
                }
                Some(LinkEvidence::SplitBooks(_)) => "split GET /books req/s (a lower bound of round trips/s)".into(),
                None => String::new(),
            },
            ..row(
                "C8",
                "Remoting does about 174,000 msg/s per connection",
                "akka.net #4329",
                match (link, split_rps) {
                    (Some(l), _) => format!("link: {:.0} msg/s one way ({:.0}-{:.0})", l.median, l.low, l.high),
                    (None, Some(v)) => format!("split GET /books {v:.0} req/s, one round trip each"),
                    (None, None) => "-".into(),
                },
                verdict_remoting(c8, 174_000.0),
            )
        },
    ]
}

#[cfg(test)]
mod wiring_tests;
