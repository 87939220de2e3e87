//! The warm-up trade-off, checked per model and level (issue 19): the
//! pattern the IIS guide promises (overlapped with warm-up delays nothing
//! beyond the control, overlapped without warm-up delays measurably,
//! stop-start has downtime), each expectation met or missed by the run's
//! own figures, and for a miss the measured figures that explain it
//! (docs/run.md "The warm-up trade-off").

use std::collections::BTreeMap;

use super::*;
use crate::run::results::{Entry, RecycleFigures};

/// One kind's figures at one level, a value per repeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KindRuns {
    pub delayed: Vec<f64>,
    /// Requests from the event to the end of the run (the delayed share's base).
    pub requests: Vec<f64>,
    pub downtime_ms: Vec<f64>,
    pub start_to_ready_ms: Vec<f64>,
    pub warmup_ms: Vec<f64>,
    pub drain_ms: Vec<f64>,
    pub unavailable_ms: Vec<f64>,
    pub held: Vec<f64>,
}

impl KindRuns {
    fn add(&mut self, r: &RecycleFigures) {
        if let Some(w) = &r.drain {
            if let Some(d) = w.delayed.or(w.delayed_at_least) {
                self.delayed.push(d as f64);
            }
            self.requests.push((w.ok + w.failed.total()) as f64);
        }
        self.downtime_ms.push(r.downtime_ms as f64);
        if let Some(m) = &r.manager {
            let push = |v: &mut Vec<f64>, x: Option<u64>| x.into_iter().for_each(|x| v.push(x as f64));
            push(&mut self.start_to_ready_ms, m.start_to_ready_ms);
            push(&mut self.warmup_ms, m.warmup_ms);
            push(&mut self.drain_ms, m.drain_ms);
            push(&mut self.unavailable_ms, m.manager_unavailable_ms);
            push(&mut self.held, m.held_requests);
        }
    }
}

/// The runs the trade-off is read from, at one model and level.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Level {
    pub control: Option<KindRuns>,
    pub overlapped: Option<KindRuns>,
    pub no_warmup: Option<KindRuns>,
    pub stop_start: Option<KindRuns>,
}

/// One expectation, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub expectation: &'static str,
    /// `None`: the runs it needs are missing.
    pub met: Option<bool>,
    pub measured: String,
    /// For a miss: the measured figures that explain it.
    pub why: Option<String>,
}

pub(crate) const WITH_WARMUP: &str = "overlapped with warm-up: no request delayed beyond the control";
pub(crate) const WITHOUT_WARMUP: &str = "overlapped without warm-up: requests measurably delayed";
pub(crate) const STOP_START: &str = "stop-start: downtime";

/// Below this, downtime cannot show: the timeline's interval.
const RESOLUTION_MS: f64 = 100.0;

fn spread(v: &[f64]) -> Option<Spread> {
    Spread::of(v)
}

fn text(s: Spread) -> String {
    if s.min == s.max {
        format!("{:.0}", s.median)
    } else {
        format!("{:.0} ({:.0}..{:.0})", s.median, s.min, s.max)
    }
}

fn median(v: &[f64]) -> Option<f64> {
    spread(v).map(|s| s.median)
}

/// While an overlapped recycle runs, the old and the new process both run
/// on the server's CPUs: the new one starting and warming up while the old
/// serves, then the old one draining.
fn overlap_text(k: &KindRuns, server_cpus: usize) -> Option<String> {
    let (s, d) = (median(&k.start_to_ready_ms)?, median(&k.drain_ms)?);
    let w = median(&k.warmup_ms).unwrap_or(0.0);
    Some(format!(
        "the new process started ({s:.0} ms) and warmed up ({w:.0} ms) while the old one served, then the old \
         one drained ({d:.0} ms): for about {:.0} ms two processes shared the {server_cpus} server CPU{}",
        s + w + d,
        if server_cpus == 1 { "" } else { "s" }
    ))
}

/// The three expectations of one model at one level.
pub(crate) fn checks(l: &Level, server_cpus: usize) -> Vec<Check> {
    let control = l.control.as_ref().and_then(|c| spread(&c.delayed));
    let delayed = |k: &Option<KindRuns>| k.as_ref().and_then(|k| spread(&k.delayed));
    let (with, without) = (delayed(&l.overlapped), delayed(&l.no_warmup));
    let mut out = Vec::new();

    // 1. With warm-up: no more delayed requests than the control's worst repeat.
    out.push(match (with, control, &l.overlapped) {
        (Some(w), Some(c), Some(k)) => {
            let met = w.median <= c.max;
            let why = (!met).then(|| {
                let excess = w.median - c.median;
                let mut why = format!(
                    "the control itself delays {} above its own p99.9, so the recycle's excess is {excess:.0}",
                    text(c)
                );
                if let Some(n) = median(&k.requests).filter(|n| *n > 0.0) {
                    let share = excess / n;
                    why += &format!(
                        " ({:.2}% of the {n:.0} requests from the event on{})",
                        share * 100.0,
                        if share <= crate::run::grade::A_DELAYED_SHARE {
                            ", within grade A's 0.5%"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(o) = overlap_text(k, server_cpus) {
                    why += &format!("; {o}");
                }
                why
            });
            Check {
                expectation: WITH_WARMUP,
                met: Some(met),
                measured: format!("delayed {} vs control {}", text(w), text(c)),
                why,
            }
        }
        _ => not_measured(WITH_WARMUP),
    });

    // 2. Without warm-up: every repeat above the control's worst, and more
    //    than with warm-up.
    out.push(match (without, control) {
        (Some(n), Some(c)) => {
            let above_control = n.min > c.max;
            let above_warm = with.is_none_or(|w| n.median > w.median);
            let met = above_control && above_warm;
            let why = (!met).then(|| {
                let mut parts = Vec::new();
                if !above_control {
                    parts.push(format!(
                        "its repeats ({:.0}..{:.0}) reach into the control's own range ({:.0}..{:.0}): the cold \
                         start is within the control's noise at this rate",
                        n.min, n.max, c.min, c.max
                    ));
                }
                if let (false, Some(w)) = (above_warm, with) {
                    parts.push(format!("with warm-up delayed as many or more ({})", text(w)));
                }
                if let Some(w) = l.overlapped.as_ref().and_then(|k| median(&k.warmup_ms)) {
                    parts.push(format!(
                        "the warm-up this run skips took {w:.0} ms in the run with warm-up (the manager's figure): \
                         that is the cold work its first requests meet instead"
                    ));
                }
                parts.join("; ")
            });
            Check {
                expectation: WITHOUT_WARMUP,
                met: Some(met),
                measured: format!(
                    "delayed {} vs control {}{}",
                    text(n),
                    text(c),
                    with.map_or(String::new(), |w| format!(", with warm-up {}", text(w)))
                ),
                why,
            }
        }
        _ => not_measured(WITHOUT_WARMUP),
    });

    // 3. Stop-start: some downtime.
    out.push(
        match l.stop_start.as_ref().and_then(|k| Some((k, spread(&k.downtime_ms)?))) {
            Some((k, down)) => {
                let met = down.median > 0.0;
                let why = (!met).then(|| {
                    let mut parts = Vec::new();
                    match median(&k.unavailable_ms) {
                        Some(u) if u < RESOLUTION_MS => parts.push(format!(
                            "the manager counted {u:.0} ms with no process ready, under the timeline's \
                         {RESOLUTION_MS:.0} ms resolution"
                        )),
                        Some(u) => parts.push(format!("the manager counted {u:.0} ms with no process ready")),
                        None => {}
                    }
                    if let Some(h) = median(&k.held).filter(|h| *h > 0.0) {
                        parts.push(format!(
                            "the front held {h:.0} requests meanwhile, so they were delayed (delayed {}), not lost",
                            spread(&k.delayed).map_or("-".into(), text)
                        ));
                    }
                    if parts.is_empty() {
                        parts.push("no figure of this run explains it".into());
                    }
                    parts.join("; ")
                });
                Check {
                    expectation: STOP_START,
                    met: Some(met),
                    measured: format!("downtime {} ms", text(down)),
                    why,
                }
            }
            None => not_measured(STOP_START),
        },
    );
    out
}

fn not_measured(expectation: &'static str) -> Check {
    Check {
        expectation,
        met: None,
        measured: "not measured".into(),
        why: None,
    }
}

/// The runs by (model, level), from a result set's recycle entries.
pub(crate) fn levels(entries: &[Entry]) -> BTreeMap<(String, String), Level> {
    let mut out: BTreeMap<(String, String), Level> = BTreeMap::new();
    for e in entries {
        let Some(r) = &e.recycle else { continue };
        let level = out.entry((e.model.clone(), r.level.clone())).or_default();
        let slot = if r.control {
            &mut level.control
        } else {
            match r.kind.as_str() {
                "overlapped" => &mut level.overlapped,
                "overlapped-no-warmup" => &mut level.no_warmup,
                "stop-start" => &mut level.stop_start,
                _ => continue,
            }
        };
        slot.get_or_insert_with(KindRuns::default).add(r);
    }
    out
}

/// The section: a table of the three expectations per model and level,
/// then the reason for each miss.
pub(super) fn tradeoff(out: &mut String, results: &Results) {
    let levels = levels(&results.entries);
    if levels.is_empty() {
        return;
    }
    let cpus = results.environment.server_cpus.len().max(1);
    let _ = writeln!(
        out,
        "### The warm-up trade-off, model by model\n\nWhat the guide promises, checked on this run's figures \
         (rules in docs/run.md \"The warm-up trade-off\"): with warm-up, no more delayed requests than the \
         control's worst repeat; without warm-up, every repeat above the control's worst and more than with \
         warm-up; stop-start, some downtime.\n\n| model | level | {WITH_WARMUP} | {WITHOUT_WARMUP} | {STOP_START} |\n|---|---|---|---|---|"
    );
    let mut misses = Vec::new();
    for ((model, level), l) in &levels {
        let checks = checks(l, cpus);
        let cell = |c: &Check| match c.met {
            Some(true) => format!("yes: {}", c.measured),
            Some(false) => format!("**no**: {}", c.measured),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {model} | {level} | {} | {} | {} |",
            cell(&checks[0]),
            cell(&checks[1]),
            cell(&checks[2])
        );
        for c in checks {
            if let Some(why) = c.why {
                misses.push(format!("- {model} at {level}, {}: {why}.", c.expectation));
            }
        }
    }
    if !misses.is_empty() {
        let _ = writeln!(out, "\nWhere a model misses, why (from the same run's figures):\n");
        for m in misses {
            let _ = writeln!(out, "{m}");
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(delayed: &[f64], downtime: &[f64]) -> KindRuns {
        KindRuns {
            delayed: delayed.to_vec(),
            requests: vec![95_556.0; delayed.len()],
            downtime_ms: downtime.to_vec(),
            start_to_ready_ms: vec![120.0],
            warmup_ms: vec![40.0],
            drain_ms: vec![900.0],
            ..KindRuns::default()
        }
    }

    fn reference() -> Level {
        Level {
            control: Some(runs(&[113.0, 138.0, 143.0], &[0.0])),
            overlapped: Some(runs(&[194.0, 244.0, 372.0], &[0.0])),
            no_warmup: Some(runs(&[701.0, 1379.0, 1816.0], &[0.0])),
            stop_start: Some(runs(&[36_644.0], &[1100.0])),
        }
    }

    #[test]
    fn the_expected_pattern_is_met_with_no_reason_given() {
        let mut l = reference();
        l.overlapped = Some(runs(&[100.0, 120.0, 140.0], &[0.0]));
        let c = checks(&l, 1);
        assert_eq!(c.iter().map(|c| c.met).collect::<Vec<_>>(), [Some(true); 3]);
        assert!(c.iter().all(|c| c.why.is_none()));
    }

    #[test]
    fn an_overlapped_miss_names_the_controls_own_delay_and_the_overlap() {
        // The reference run's inprocess: 244 (194..372) against 138 (113..143).
        let c = &checks(&reference(), 1)[0];
        assert_eq!(c.met, Some(false));
        let why = c.why.as_deref().unwrap();
        assert!(why.contains("control itself delays 138 (113..143)"), "{why}");
        assert!(why.contains("excess is 106 (0.11% of the 95556 requests"), "{why}");
        assert!(why.contains("within grade A's 0.5%"), "{why}");
        assert!(
            why.contains("for about 1060 ms two processes shared the 1 server CPU"),
            "{why}"
        );
    }

    #[test]
    fn a_no_warmup_run_within_the_control_noise_is_a_miss_with_the_warmup_it_skipped() {
        let mut l = reference();
        l.no_warmup = Some(runs(&[120.0, 200.0, 400.0], &[0.0]));
        let c = &checks(&l, 2)[1];
        assert_eq!(c.met, Some(false));
        let why = c.why.as_deref().unwrap();
        assert!(
            why.contains("(120..400) reach into the control's own range (113..143)"),
            "{why}"
        );
        assert!(
            why.contains("with warm-up delayed as many or more (244 (194..372))"),
            "{why}"
        );
        assert!(why.contains("took 40 ms"), "{why}");
    }

    #[test]
    fn stop_start_without_downtime_names_the_unavailable_time_and_held_requests() {
        let mut l = reference();
        let mut k = runs(&[5_000.0], &[0.0]);
        k.unavailable_ms = vec![60.0];
        k.held = vec![1_200.0];
        l.stop_start = Some(k);
        let c = &checks(&l, 1)[2];
        assert_eq!(c.met, Some(false));
        let why = c.why.as_deref().unwrap();
        assert!(
            why.contains("60 ms with no process ready, under the timeline's 100 ms"),
            "{why}"
        );
        assert!(why.contains("held 1200 requests"), "{why}");
    }

    #[test]
    fn missing_runs_are_not_measured_rather_than_met() {
        let l = Level {
            overlapped: Some(runs(&[1.0], &[0.0])),
            ..Level::default()
        };
        assert!(checks(&l, 1).iter().all(|c| c.met.is_none() && c.why.is_none()));
    }
}
