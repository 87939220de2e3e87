//! Tests of the summary rows the exports share: ratios only where a req/s
//! ratio means something, and recycle figures as medians over repeats.

use super::*;
use crate::run::results::{IntervalRow, LoadFigures, RecycleFigures, Results, WindowMetrics};

/// Two repeats more than the shared set, a 4 s recycle run with the
/// recycle at 1 s, edge and proxy selected.
fn results(entries: Vec<Entry>) -> Results {
    let mut r = crate::run::test_support::results(entries);
    r.settings.models = vec!["edge".into(), "proxy".into()];
    r.settings.repeats = 3;
    r.settings.recycle_duration_s = 4.0;
    r.settings.recycle_at_s = 1.0;
    r
}

fn load(model: &str, scenario: &str, variant: &str, rps: f64) -> Entry {
    Entry {
        model: model.into(),
        scenario: scenario.into(),
        variant: variant.into(),
        repeat: 1,
        load: Some(LoadFigures {
            mode: "open".into(),
            requests_per_sec: rps,
            ..LoadFigures::default()
        }),
        ..Entry::default()
    }
}

#[test]
fn latency_rows_have_no_ratio_to_edge() {
    let rows = summarize(&results(vec![
        load("edge", "throughput", "GET /ping", 100.0),
        load("proxy", "throughput", "GET /ping", 50.0),
        load("edge", "latency", "25%", 1000.0),
        load("proxy", "latency", "25%", 1000.0),
    ]));
    assert_eq!(
        find(&rows, "throughput", "proxy", "GET /ping").unwrap().ratio_to_edge,
        Some(0.5)
    );
    assert_eq!(find(&rows, "latency", "proxy", "25%").unwrap().ratio_to_edge, None);
}

fn recycle(repeat: u32, downtime_ms: u64, failed: u64) -> Entry {
    let window = WindowMetrics {
        failed: crate::run::results::ErrorClasses {
            timeout: failed,
            ..Default::default()
        },
        ok: 100,
        delayed_at_least: Some(failed * 2),
        worst_interval_p99_us: 1500 * repeat as u64,
        ..WindowMetrics::default()
    };
    Entry {
        model: "proxy".into(),
        scenario: "recycle".into(),
        variant: "stop-start @ 50%".into(),
        repeat,
        load: Some(LoadFigures {
            timeline: vec![IntervalRow::default()],
            ..LoadFigures::default()
        }),
        recycle: Some(RecycleFigures {
            kind: "stop-start".into(),
            level: "50%".into(),
            downtime_ms,
            window_1s: Some(window),
            drain: Some(window),
            ..RecycleFigures::default()
        }),
        ..Entry::default()
    }
}

#[test]
fn recycle_rows_of_older_result_sets_show_their_lower_bound() {
    let rows = summarize(&results(vec![
        recycle(1, 900, 10),
        recycle(2, 1000, 30),
        recycle(3, 800, 20),
    ]));
    let row = find(&rows, "recycle", "proxy", "stop-start @ 50%").unwrap();
    let k = row.recycle.as_ref().unwrap();
    assert_eq!(
        (k.downtime_ms.median, k.downtime_ms.min, k.downtime_ms.max),
        (900.0, 800.0, 1000.0)
    );
    assert_eq!(k.failed.median, 20.0);
    assert_eq!(k.delayed.unwrap().median, 40.0);
    assert!(!k.control);
    assert_eq!(
        row.detail,
        "failed 20 (10..30), delayed >= 40 (20..60), downtime 900 (800..1000) ms, window p99 3.0 (1.5..4.5) ms"
    );
}

/// A recycle entry with the exact window figures (delayed count and the
/// window's own p99), as runs record them now.
fn exact_recycle(repeat: u32, delayed: u64, p99_us: Option<u64>) -> Entry {
    let mut e = recycle(repeat, 900, 10);
    let rc = e.recycle.as_mut().unwrap();
    for w in [rc.window_1s.as_mut().unwrap(), rc.drain.as_mut().unwrap()] {
        w.delayed = Some(delayed);
        w.p99_us = p99_us;
        w.ok = if p99_us.is_some() { 100 } else { 0 };
    }
    e
}

#[test]
fn recycle_rows_are_medians_of_the_exact_figures() {
    let rows = summarize(&results(vec![
        exact_recycle(1, 7, Some(2000)),
        exact_recycle(2, 9, Some(4000)),
        exact_recycle(3, 8, Some(3000)),
    ]));
    let row = find(&rows, "recycle", "proxy", "stop-start @ 50%").unwrap();
    let k = row.recycle.as_ref().unwrap();
    assert!(!k.delayed_is_lower_bound);
    assert_eq!(k.delayed.unwrap().median, 8.0);
    assert_eq!(k.window_p99_us.unwrap().median, 3000.0);
    assert_eq!(
        row.detail,
        "failed 10, delayed 8 (7..9), downtime 900 ms, window p99 3.0 (2.0..4.0) ms"
    );
    // A repeat without one success in the window has no p99: the others'.
    let rows = summarize(&results(vec![
        exact_recycle(1, 7, None),
        exact_recycle(2, 9, Some(4000)),
    ]));
    let k = find(&rows, "recycle", "proxy", "stop-start @ 50%")
        .unwrap()
        .recycle
        .clone()
        .unwrap();
    assert_eq!(
        (k.window_p99_us.unwrap().median, k.window_p99_us.unwrap().n),
        (4000.0, 1)
    );
    let rows = summarize(&results(vec![exact_recycle(1, 7, None)]));
    let k = find(&rows, "recycle", "proxy", "stop-start @ 50%")
        .unwrap()
        .recycle
        .clone()
        .unwrap();
    assert_eq!(k.window_p99_text(), "-");
}

#[test]
fn multihost_rows_carry_their_rate_errors_and_figures() {
    use crate::run::results::{ErrorClasses, HostFigures, MultihostFigures, NodeKillFigures, RequestCounts};
    let counts = |ok, s5| RequestCounts {
        ok,
        errors: ErrorClasses {
            status_5xx: s5,
            ..ErrorClasses::default()
        },
        total: ok + s5,
    };
    let host = |cpu_us_per_request| HostFigures {
        cpu_us_per_request,
        ..HostFigures::default()
    };
    let config = Entry {
        model: "split".into(),
        scenario: "multihost".into(),
        variant: "local: 1 front + 1 node".into(),
        repeat: 1,
        multihost: Some(MultihostFigures {
            request: "GET /books/{id}".into(),
            requests_per_sec: 1234.0,
            requests: counts(5000, 2),
            hosts: vec![host(10.0), host(20.5)],
            ..MultihostFigures::default()
        }),
        ..Entry::default()
    };
    let kill = Entry {
        model: "split".into(),
        scenario: "multihost".into(),
        variant: "local: node kill, 1 front + 2 nodes".into(),
        repeat: 1,
        node_kill: Some(NodeKillFigures {
            killed: "node1".into(),
            requests: counts(900, 40),
            failed_during_outage: ErrorClasses {
                status_5xx: 40,
                ..ErrorClasses::default()
            },
            recovery_ms: Some(575.0),
            other_shard_kept_answering: Some(true),
            ..NodeKillFigures::default()
        }),
        ..Entry::default()
    };
    let rows = summarize(&results(vec![config, kill]));
    assert_eq!(rows[0].rps.map(|s| s.median), Some(1234.0));
    assert_eq!(rows[0].errors, 2);
    assert!(rows[0].detail.contains("30.5 CPU µs per request"), "{}", rows[0].detail);
    assert!(rows[1].rps.is_none());
    assert_eq!(rows[1].errors, 40);
    assert!(
        rows[1].detail.contains("40 failed during the outage, recovery 575 ms"),
        "{}",
        rows[1].detail
    );
    assert!(rows[1].detail.contains("kept answering: yes"), "{}", rows[1].detail);
}
