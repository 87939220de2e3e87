//! End-to-end test of the claims wiring: result sets with known figures go
//! through `claims()` (and the summary it reads), and each claim's verdict
//! and reason come out as its rule says. One table row per claim and
//! outcome, including missing, zero and error-heavy data; a rule wired to
//! the wrong figure (or the wrong entries) fails a row here.

use super::*;
use crate::run::results::{
    Entry, ErrorClasses, IntervalRow, LoadFigures, RecoveryFigures, RecycleFigures, RequestCounts, RoutingFigures,
    StateFigures,
};
use crate::run::summary::summarize;
use crate::run::test_support::results;

fn state(model: &str, kind: &str, journal: bool, before: u64, after: u64) -> Entry {
    Entry {
        model: model.into(),
        scenario: "state".into(),
        variant: kind.into(),
        repeat: 1,
        state: Some(StateFigures {
            kind: kind.into(),
            journal,
            books_added: before,
            books_before: before,
            books_after: after,
        }),
        ..Entry::default()
    }
}

/// A 5 s fixed-rate recycle run, 1,000 requests a second, the recycle at
/// 2 s; `failed` requests in the interval of the recycle, none answered
/// after `ok_until_ms`; `last_recycle` is the admin status's report.
fn recycle(model: &str, kind: &str, failed: u64, ok_until_ms: u64, last_recycle: Option<serde_json::Value>) -> Entry {
    let timeline: Vec<IntervalRow> = (0..5)
        .map(|i| {
            let t_ms = i * 1000;
            let errors = if t_ms == 2000 { failed } else { 0 };
            IntervalRow {
                t_ms,
                duration_ms: 1000,
                ok: if t_ms < ok_until_ms { 1000 - errors } else { 0 },
                errors,
                ..IntervalRow::default()
            }
        })
        .collect();
    let ok = timeline.iter().map(|i| i.ok).sum();
    let failed_classes = ErrorClasses {
        status_5xx: failed,
        ..ErrorClasses::default()
    };
    Entry {
        model: model.into(),
        scenario: "recycle".into(),
        variant: kind.into(),
        repeat: 1,
        load: Some(LoadFigures {
            mode: "open".into(),
            duration_s: 5.0,
            requests: RequestCounts {
                ok,
                errors: failed_classes,
                total: ok + failed,
            },
            timeline,
            ..LoadFigures::default()
        }),
        recycle: Some(RecycleFigures {
            kind: kind.into(),
            event_ms: 2000,
            failed: failed_classes,
            analysis: crate::run::results::RecycleAnalysis {
                failed_requests: failed,
                ..Default::default()
            },
            admin_status: last_recycle.map(|l| serde_json::json!({ "phase": "ready", "last_recycle": l })),
            ..RecycleFigures::default()
        }),
        ..Entry::default()
    }
}

fn completed(total_ms: u64) -> Option<serde_json::Value> {
    Some(serde_json::json!({"error": null, "skipped": false, "overlapped": true, "total_ms": total_ms}))
}

fn routing(mode: &str, live: u64, rss_before_mib: Option<u64>, rss_after_mib: Option<u64>, ok: u64) -> Entry {
    Entry {
        model: "edge".into(),
        scenario: "routing".into(),
        variant: mode.into(),
        repeat: 1,
        routing: Some(RoutingFigures {
            routing: mode.into(),
            tasks_sent: 10_000,
            tasks_ok: ok,
            tasks_failed: 10_000 - ok,
            distinct_ids: 10_000,
            live_actors: live,
            rss_before_bytes: rss_before_mib.map(|m| m << 20),
            rss_after_bytes: rss_after_mib.map(|m| m << 20),
            ..RoutingFigures::default()
        }),
        ..Entry::default()
    }
}

fn replay(events: u64, snapshot: bool, recovered: u64, per_sec: f64) -> Entry {
    let variant = format!("{events} events{}", if snapshot { " + snapshot" } else { "" });
    Entry {
        model: "edge".into(),
        scenario: "recovery".into(),
        variant,
        repeat: 1,
        recovery: Some(RecoveryFigures {
            events,
            snapshot,
            synthetic: true,
            events_replayed: if snapshot { 0 } else { events },
            replay_events_per_sec: if snapshot { 0.0 } else { per_sec },
            books_expected: events,
            books_recovered: recovered,
            ..RecoveryFigures::default()
        }),
        ..Entry::default()
    }
}

fn tasks(variant: &str, synthetic: bool, accepted: u64, resumed: u64, done: u64) -> Entry {
    Entry {
        model: "edge".into(),
        scenario: "recovery".into(),
        variant: variant.into(),
        repeat: 1,
        recovery: Some(RecoveryFigures {
            synthetic,
            tasks_accepted: accepted,
            tasks_resumed: resumed,
            tasks_done: done,
            ..RecoveryFigures::default()
        }),
        ..Entry::default()
    }
}

/// Everything C7 needs, all good: a journal state run, replays of 10k and
/// 100k events (the slower one 600k/s), a real SIGKILL and a tool-written journal.
fn journal_ok() -> Vec<Entry> {
    vec![
        state("proxy", "crash", true, 100, 100),
        replay(10_000, false, 10_000, 940_000.0),
        replay(10_000, true, 10_000, 0.0),
        replay(100_000, false, 100_000, 600_000.0),
        tasks("tasks after SIGKILL", false, 200, 40, 200),
        tasks("unfinished tasks in the journal", true, 200, 200, 200),
    ]
}

fn with(mut base: Vec<Entry>, more: Vec<Entry>) -> Vec<Entry> {
    base.extend(more);
    base
}

/// (claim, what the row shows, entries, expected verdict, text the reason must contain)
type Case = (&'static str, &'static str, Vec<Entry>, Verdict, &'static str);

fn cases() -> Vec<Case> {
    use Verdict::{DoesNotHold, Holds, NotMeasured};
    vec![
        // C1-C3, C8: only what the current and the interval rules agree on.
        ("C1", "no throughput run", vec![], NotMeasured, ""),
        ("C2", "no throughput run", vec![], NotMeasured, ""),
        ("C3", "no throughput run", vec![], NotMeasured, ""),
        ("C8", "split did not run", vec![], NotMeasured, ""),
        // C4
        (
            "C4",
            "books lost in an idle terminate",
            vec![state("proxy", "idle-terminate", false, 100, 0)],
            Holds,
            "proxy idle-terminate: 100 -> 0",
        ),
        (
            "C4",
            "books kept",
            vec![state("proxy", "idle-terminate", false, 100, 100)],
            DoesNotHold,
            "kept its books",
        ),
        (
            "C4",
            "no state run",
            vec![],
            NotMeasured,
            "did not run an idle-terminate",
        ),
        (
            "C4",
            "no book before the recycle",
            vec![state("proxy", "idle-terminate", false, 0, 0)],
            NotMeasured,
            "no book was present",
        ),
        (
            "C4",
            "a loss with a journal is C7's",
            vec![state("proxy", "idle-terminate", true, 100, 0)],
            NotMeasured,
            "did not run an idle-terminate",
        ),
        (
            "C4",
            "split keeps state in its actor service",
            vec![state("split", "idle-terminate", false, 100, 0)],
            NotMeasured,
            "",
        ),
        (
            "C4",
            "another recycle kind",
            vec![state("proxy", "crash", false, 100, 0)],
            NotMeasured,
            "",
        ),
        (
            "C4",
            "one model lost, one kept",
            vec![
                state("proxy", "idle-terminate", false, 100, 100),
                state("inprocess", "idle-terminate", false, 100, 0),
            ],
            Holds,
            "inprocess idle-terminate: 100 -> 0",
        ),
        // C5
        (
            "C5",
            "0 failed, requests on both sides, recycle completed",
            vec![recycle("proxy", "overlapped", 0, 5000, completed(1005))],
            Holds,
            "proxy: 0 failed, 2000 ok before, recycle done in 1005 ms, 1000 ok after",
        ),
        (
            "C5",
            "error-heavy recycle",
            vec![recycle("proxy", "overlapped", 600, 5000, completed(1005))],
            DoesNotHold,
            "proxy: 600 failed",
        ),
        (
            "C5",
            "one model failed requests",
            vec![
                recycle("proxy", "overlapped", 0, 5000, completed(1005)),
                recycle("inprocess", "overlapped", 3, 5000, completed(1005)),
            ],
            DoesNotHold,
            "inprocess: 3 failed",
        ),
        (
            "C5",
            "no recycle run",
            vec![],
            NotMeasured,
            "did not run an overlapped recycle",
        ),
        (
            "C5",
            "no admin status",
            vec![recycle("proxy", "overlapped", 0, 5000, None)],
            NotMeasured,
            "no admin status",
        ),
        (
            "C5",
            "the recycle failed",
            vec![recycle(
                "proxy",
                "overlapped",
                0,
                5000,
                Some(
                    serde_json::json!({"error": "startup limit", "skipped": false, "overlapped": true, "total_ms": 10}),
                ),
            )],
            NotMeasured,
            "the recycle failed",
        ),
        (
            "C5",
            "the recycle outlasted the load",
            vec![recycle("proxy", "overlapped", 0, 5000, completed(3500))],
            NotMeasured,
            "after the load",
        ),
        (
            "C5",
            "load stopped before the recycle completed",
            vec![recycle("proxy", "overlapped", 0, 3000, completed(1005))],
            NotMeasured,
            "no request succeeded after",
        ),
        (
            "C5",
            "nothing answered before the recycle",
            vec![recycle("proxy", "overlapped", 0, 0, completed(1005))],
            NotMeasured,
            "no request succeeded before",
        ),
        (
            "C5",
            "failures without warm-up are not C5's",
            vec![recycle("proxy", "overlapped-no-warmup", 50, 5000, completed(1005))],
            NotMeasured,
            "did not run an overlapped recycle",
        ),
        (
            "C5",
            "stop-start is not C5's",
            vec![recycle("proxy", "stop-start", 900, 5000, completed(1005))],
            NotMeasured,
            "did not run an overlapped recycle",
        ),
        // C6: the RSS compared is the one after the tasks.
        (
            "C6",
            "pool fewer actors and less memory",
            vec![
                routing("pool:10", 10, Some(100), Some(20), 10_000),
                routing("per-task", 10_000, Some(10), Some(160), 10_000),
            ],
            Holds,
            "pool 10 actors / 20.0 MiB, per-task 10000 actors / 160.0 MiB",
        ),
        (
            "C6",
            "pool as much memory",
            vec![
                routing("pool:10", 10, Some(10), Some(160), 10_000),
                routing("per-task", 10_000, Some(100), Some(160), 10_000),
            ],
            DoesNotHold,
            "pool 10 actors / 160.0 MiB",
        ),
        (
            "C6",
            "one mode only",
            vec![routing("pool:10", 10, Some(10), Some(20), 10_000)],
            NotMeasured,
            "did not measure both modes",
        ),
        (
            "C6",
            "RSS unreadable (null)",
            vec![
                routing("pool:10", 10, None, None, 10_000),
                routing("per-task", 10_000, Some(10), Some(160), 10_000),
            ],
            NotMeasured,
            "pool: the server could not read its RSS",
        ),
        (
            "C6",
            "RSS of per-task unreadable after the tasks",
            vec![
                routing("pool:10", 10, Some(10), Some(20), 10_000),
                routing("per-task", 10_000, Some(10), None, 10_000),
            ],
            NotMeasured,
            "per-task: the server could not read its RSS",
        ),
        (
            "C6",
            "error-heavy: per-task failed tasks",
            vec![
                routing("pool:10", 10, Some(10), Some(20), 10_000),
                routing("per-task", 4_000, Some(10), Some(60), 4_000),
            ],
            NotMeasured,
            "per-task: 4000 of 10000 tasks answered",
        ),
        // C7
        (
            "C7",
            "every journal measurement good",
            journal_ok(),
            Holds,
            "slowest replay 600000 events/s (100000 events)",
        ),
        (
            "C7",
            "real and tool-written resumes apart",
            journal_ok(),
            Holds,
            "real SIGKILL (tasks after SIGKILL): 200 accepted tasks all finished once, 40 resumed",
        ),
        (
            "C7",
            "the real SIGKILL resumed nothing",
            with(
                journal_ok()[..4].to_vec(),
                vec![
                    tasks("tasks after SIGKILL", false, 200, 0, 200),
                    tasks("unfinished tasks in the journal", true, 200, 200, 200),
                ],
            ),
            Holds,
            "did not exercise resuming",
        ),
        ("C7", "no journal run", vec![], NotMeasured, "no --journal measurement"),
        (
            "C7",
            "a journal recycle lost books",
            with(journal_ok(), vec![state("inprocess", "idle-terminate", true, 100, 40)]),
            DoesNotHold,
            "inprocess idle-terminate: 100 -> 40",
        ),
        (
            "C7",
            "a loss without a journal is C4's",
            with(journal_ok(), vec![state("inprocess", "idle-terminate", false, 100, 0)]),
            Holds,
            "",
        ),
        (
            "C7",
            "a replay recovered fewer books",
            with(journal_ok(), vec![replay(50_000, false, 49_000, 900_000.0)]),
            DoesNotHold,
            "50000 events: 49000 of 50000 books recovered",
        ),
        (
            "C7",
            "a snapshot restart recovered fewer books",
            with(journal_ok(), vec![replay(50_000, true, 0, 0.0)]),
            DoesNotHold,
            "50000 events + snapshot: 0 of 50000",
        ),
        (
            "C7",
            "a task finished twice",
            with(journal_ok(), vec![tasks("tasks after SIGKILL", false, 200, 40, 201)]),
            DoesNotHold,
            "200 tasks accepted, 201 done",
        ),
        (
            "C7",
            "a tool-written journal not all resumed",
            with(
                journal_ok(),
                vec![tasks("unfinished tasks in the journal", true, 200, 100, 200)],
            ),
            DoesNotHold,
            "100 of 200 unfinished tasks resumed",
        ),
        (
            "C7",
            "replay slower than claimed",
            with(journal_ok(), vec![replay(1_000, false, 1_000, 9_000.0)]),
            DoesNotHold,
            "1000 events: replay 9000 events/s",
        ),
        (
            "C7",
            "only snapshot restarts: no replay rate",
            vec![
                state("proxy", "crash", true, 100, 100),
                replay(10_000, true, 10_000, 0.0),
            ],
            NotMeasured,
            "no replay rate",
        ),
        (
            "C7",
            "only tasks: no book to recover",
            vec![tasks("tasks after SIGKILL", false, 200, 0, 200)],
            NotMeasured,
            "no journal run had books",
        ),
    ]
}

#[test]
fn every_claim_gets_its_verdict_from_its_own_figures() {
    let mut wrong = Vec::new();
    for (id, what, entries, expected, reason) in cases() {
        let results = results(entries);
        let rows = claims(&results, &summarize(&results));
        let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]);
        let row = rows.iter().find(|r| r.id == id).unwrap();
        if row.verdict != expected || !row.reason.contains(reason) {
            wrong.push(format!(
                "{id} ({what}): expected {:?} with `{reason}`, got {:?}: {}",
                expected, row.verdict, row.reason
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn figures_shown_name_their_run() {
    let results = results(journal_ok());
    let rows = claims(&results, &summarize(&results));
    let c7 = rows.iter().find(|r| r.id == "C7").unwrap();
    // Each replay rate with its run; no single "best" figure.
    assert_eq!(
        c7.measured,
        "replay 940000 events/s (10000 events), replay 600000 events/s (100000 events)"
    );
}
