//! Tests of the evidence rules C4-C7: state kept or lost, what each
//! verdict needs and says.

use super::*;

fn state(model: &str, before: u64, after: u64) -> StateRun {
    StateRun {
        model: model.into(),
        kind: "idle-terminate".into(),
        books_before: before,
        books_after: after,
    }
}

#[test]
fn state_rule() {
    assert_eq!(verdict_state_lost(&[state("proxy", 100, 0)]).0, Verdict::Holds);
    assert_eq!(verdict_state_lost(&[state("proxy", 100, 100)]).0, Verdict::DoesNotHold);
    assert_eq!(verdict_state_lost(&[]).0, Verdict::NotMeasured);
    // No book before the recycle: nothing could be lost, so nothing is shown.
    let (v, why) = verdict_state_lost(&[state("proxy", 0, 0)]);
    assert_eq!(v, Verdict::NotMeasured);
    assert!(why.contains("no book was present"), "{why}");
    // A run with books decides, one without is left out.
    assert_eq!(
        verdict_state_lost(&[state("proxy", 0, 0), state("inprocess", 100, 0)]).0,
        Verdict::Holds
    );
}

fn overlapped(model: &str, failed: u64, before: u64, after: u64) -> OverlappedRun {
    OverlappedRun {
        model: model.into(),
        failed,
        ok_before: before,
        ok_after: after,
        completed: Ok(1000),
        soak_recycles: None,
    }
}

#[test]
fn a_soak_is_evidence_for_c5() {
    use crate::run::results::{IntervalRow, LoadFigures, SoakFigures};
    let soak = |failed: u64, reported: Option<u64>| Entry {
        model: "proxy".into(),
        scenario: "soak".into(),
        load: Some(LoadFigures {
            timeline: (0..10)
                .map(|i| IntervalRow {
                    t_ms: i * 1000,
                    duration_ms: 1000,
                    ok: 500,
                    ..IntervalRow::default()
                })
                .collect(),
            ..LoadFigures::default()
        }),
        soak: Some(SoakFigures {
            recycles_requested: 3,
            recycles: 3,
            recycles_reported: reported,
            recycle_at_ms: vec![2500, 5000, 7500],
            failed: crate::run::results::ErrorClasses {
                reset: failed,
                ..Default::default()
            },
            ..SoakFigures::default()
        }),
        ..Entry::default()
    };
    let run = OverlappedRun::of_soak(&soak(0, Some(3))).unwrap();
    assert_eq!((run.ok_before, run.ok_after), (1000, 1000));
    let (v, text) = verdict_zero_failures(&[run]);
    assert_eq!(v, Verdict::Holds, "{text}");
    assert!(
        text.contains("proxy soak: 0 failed over 3 overlapped recycles"),
        "{text}"
    );
    let (v, _) = verdict_zero_failures(&[OverlappedRun::of_soak(&soak(2, Some(3))).unwrap()]);
    assert_eq!(v, Verdict::DoesNotHold);
    let (v, text) = verdict_zero_failures(&[OverlappedRun::of_soak(&soak(0, Some(2))).unwrap()]);
    assert_eq!(v, Verdict::NotMeasured);
    assert!(text.contains("counted 2 of the 3"), "{text}");
}

#[test]
fn zero_failure_rule() {
    let good = overlapped("proxy", 0, 2000, 2000);
    assert_eq!(
        verdict_zero_failures(&[good.clone(), overlapped("inprocess", 0, 1, 1)]).0,
        Verdict::Holds
    );
    assert_eq!(
        verdict_zero_failures(&[good.clone(), overlapped("inprocess", 3, 2000, 2000)]).0,
        Verdict::DoesNotHold
    );
    assert_eq!(verdict_zero_failures(&[]).0, Verdict::NotMeasured);
    // 0 failed is not enough: requests on both sides and a completed recycle.
    for (run, why) in [
        (overlapped("proxy", 0, 0, 2000), "before the recycle"),
        (overlapped("proxy", 0, 2000, 0), "after the recycle completed"),
        (
            OverlappedRun {
                completed: Err("no admin status after the run".into()),
                ..good.clone()
            },
            "no admin status",
        ),
    ] {
        let (v, text) = verdict_zero_failures(&[good.clone(), run]);
        assert_eq!(v, Verdict::NotMeasured, "{text}");
        assert!(text.contains(why), "{text}");
    }
}

#[test]
fn overlapped_evidence_from_an_entry() {
    use crate::run::results::{IntervalRow, LoadFigures, RecycleFigures};
    let interval = |t_ms, ok| IntervalRow {
        t_ms,
        duration_ms: 1000,
        ok,
        ..IntervalRow::default()
    };
    let entry = |last_recycle: serde_json::Value| Entry {
        model: "proxy".into(),
        load: Some(LoadFigures {
            duration_s: 5.0,
            timeline: vec![
                interval(0, 10),
                interval(1000, 20),
                interval(2000, 30),
                interval(3000, 40),
                interval(4000, 50),
            ],
            ..LoadFigures::default()
        }),
        recycle: Some(RecycleFigures {
            kind: "overlapped".into(),
            event_ms: 2000,
            admin_status: Some(serde_json::json!({ "last_recycle": last_recycle })),
            ..RecycleFigures::default()
        }),
        ..Entry::default()
    };
    let done = serde_json::json!({"error": null, "skipped": false, "overlapped": true, "total_ms": 1005});
    let run = OverlappedRun::of(&entry(done)).unwrap();
    // Before: the intervals ending by 2000 ms; after: those from 3005 ms on.
    assert_eq!((run.ok_before, run.ok_after, run.completed.clone()), (30, 50, Ok(1005)));
    let late = serde_json::json!({"error": null, "skipped": false, "overlapped": true, "total_ms": 3500});
    assert!(OverlappedRun::of(&entry(late)).unwrap().completed.is_err());
    let failed = serde_json::json!({"error": "startup limit", "skipped": false, "overlapped": true, "total_ms": 10});
    assert!(OverlappedRun::of(&entry(failed)).unwrap().completed.is_err());
    assert!(
        OverlappedRun::of(&entry(serde_json::Value::Null))
            .unwrap()
            .completed
            .is_err()
    );
}

fn point(live_actors: u64, mib: Option<u64>, ok: u64) -> Option<RoutingPoint> {
    Some(RoutingPoint {
        live_actors,
        rss_bytes: mib.map(|m| m << 20),
        tasks_sent: 10_000,
        tasks_ok: ok,
    })
}

#[test]
fn routing_rule() {
    let pool = point(10, Some(20), 10_000);
    assert_eq!(verdict_routing(pool, point(10_000, Some(60), 10_000)).0, Verdict::Holds);
    assert_eq!(
        verdict_routing(point(10, Some(60), 10_000), point(10_000, Some(60), 10_000)).0,
        Verdict::DoesNotHold
    );
    assert_eq!(verdict_routing(pool, None).0, Verdict::NotMeasured);
    // A missing or zero RSS, failed tasks, or no actor: not measured.
    for per_task in [
        point(10_000, None, 10_000),
        point(10_000, Some(0), 10_000),
        point(10_000, Some(60), 9_000),
        point(10_000, Some(60), 0),
        point(0, Some(60), 10_000),
    ] {
        assert_eq!(verdict_routing(pool, per_task).0, Verdict::NotMeasured, "{per_task:?}");
    }
    assert_eq!(
        verdict_routing(point(10, None, 10_000), point(10_000, Some(60), 10_000)).0,
        Verdict::NotMeasured
    );
}

fn replay(run: &str, rate: f64, expected: u64, recovered: u64) -> ReplayRun {
    ReplayRun {
        run: run.into(),
        snapshot: false,
        events_replayed: expected,
        replay_events_per_sec: rate,
        books_expected: expected,
        books_recovered: recovered,
    }
}

fn tasks(run: &str, accepted: u64, resumed: u64, done: u64) -> TaskRun {
    TaskRun {
        run: run.into(),
        accepted,
        resumed,
        done,
    }
}

fn journal_ok() -> JournalEvidence {
    JournalEvidence {
        state_runs: vec![StateRun {
            model: "proxy".into(),
            kind: "crash".into(),
            books_before: 100,
            books_after: 100,
        }],
        replays: vec![
            replay("10000 events", 940_000.0, 10_000, 10_000),
            replay("100000 events", 600_000.0, 100_000, 100_000),
        ],
        real_crash: vec![tasks("tasks after SIGKILL", 200, 40, 200)],
        synthetic: vec![tasks("unfinished tasks in the journal", 200, 200, 200)],
        inflight: vec![inflight("proxy stop-start", 40, 2, 40, Some(0))],
    }
}

fn inflight(run: &str, accepted: u64, unfinished: u64, finished: u64, run_twice: Option<u64>) -> InflightRun {
    InflightRun {
        run: run.into(),
        accepted,
        unfinished,
        finished,
        run_twice,
    }
}

#[test]
fn journal_rule_holds_and_names_its_runs() {
    let (verdict, reason) = verdict_journal(&journal_ok());
    assert_eq!(verdict, Verdict::Holds, "{reason}");
    // The rate quoted is the slowest, with its run; the two resume counts stay apart.
    assert!(
        reason.contains("slowest replay 600000 events/s (100000 events)"),
        "{reason}"
    );
    assert!(
        reason.contains("real SIGKILL (tasks after SIGKILL): 200 accepted"),
        "{reason}"
    );
    assert!(reason.contains("40 resumed"), "{reason}");
    assert!(reason.contains("journal written by the tool"), "{reason}");
    assert!(
        reason.contains("tasks in flight across 1 journal recycles (proxy stop-start): 40 accepted, all finished, 2 unfinished at the trigger, none ran twice"),
        "{reason}"
    );
    let none_resumed = JournalEvidence {
        real_crash: vec![tasks("tasks after SIGKILL", 200, 0, 200)],
        ..journal_ok()
    };
    assert!(verdict_journal(&none_resumed).1.contains("did not exercise resuming"));
}

#[test]
fn journal_rule_does_not_hold_on_a_loss() {
    let cases = [
        JournalEvidence {
            state_runs: vec![StateRun {
                model: "proxy".into(),
                kind: "crash".into(),
                books_before: 100,
                books_after: 0,
            }],
            ..journal_ok()
        },
        JournalEvidence {
            replays: vec![replay("10000 events", 940_000.0, 10_000, 9_999)],
            ..journal_ok()
        },
        JournalEvidence {
            real_crash: vec![tasks("tasks after SIGKILL", 200, 40, 201)],
            ..journal_ok()
        },
        JournalEvidence {
            synthetic: vec![tasks("unfinished", 200, 150, 200)],
            ..journal_ok()
        },
        JournalEvidence {
            replays: vec![replay("100000 events", 12_000.0, 100_000, 100_000)],
            ..journal_ok()
        },
        // A task in flight lost, or run twice, across a journal recycle.
        JournalEvidence {
            inflight: vec![inflight("proxy overlapped", 40, 3, 39, Some(0))],
            ..journal_ok()
        },
        JournalEvidence {
            inflight: vec![inflight("split overlapped", 40, 3, 40, Some(1))],
            ..journal_ok()
        },
    ];
    for e in cases {
        let (v, why) = verdict_journal(&e);
        assert_eq!(v, Verdict::DoesNotHold, "{e:?}: {why}");
    }
}

#[test]
fn journal_rule_not_measured_without_evidence() {
    assert_eq!(verdict_journal(&JournalEvidence::default()).0, Verdict::NotMeasured);
    // No replay rate (only snapshot restarts, or nothing replayed).
    let no_rate = JournalEvidence {
        replays: vec![ReplayRun {
            snapshot: true,
            ..replay("10000 events + snapshot", 0.0, 10_000, 10_000)
        }],
        ..journal_ok()
    };
    let (v, why) = verdict_journal(&no_rate);
    assert_eq!(v, Verdict::NotMeasured);
    assert!(why.contains("no replay rate"), "{why}");
    // No book to recover anywhere.
    let no_books = JournalEvidence {
        state_runs: vec![StateRun {
            model: "proxy".into(),
            kind: "crash".into(),
            books_before: 0,
            books_after: 0,
        }],
        replays: vec![replay("0 events", 900_000.0, 0, 0)],
        ..journal_ok()
    };
    let (v, why) = verdict_journal(&no_books);
    assert_eq!(v, Verdict::NotMeasured);
    assert!(why.contains("no journal run had books"), "{why}");
}
