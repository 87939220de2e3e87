//! The warm-up grade (issue 19): one letter, A to F, for what a recycle
//! cost the clients, from the three figures LeanSentry's
//! `ConfigureWarmup /testWarmup` grades a site's recycle on: downtime,
//! failed requests and delayed requests. The thresholds are hostlab's own
//! (LeanSentry does not publish its); docs/run.md "Warm-up grade" gives the
//! rules and where each threshold comes from.

use std::path::Path;

use anyhow::bail;

use crate::run::results::{Entry, RecycleFigures};

/// A grade, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    A,
    B,
    C,
    D,
    F,
}

impl std::fmt::Display for Grade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::F => "F",
        })
    }
}

/// What a recycle cost, from the event to the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradeInput {
    /// Requests that completed in the window, successes and failures.
    pub requests: u64,
    pub failed: u64,
    /// Successful requests slower than the delayed threshold (the control
    /// run's p99.9); `None` when there was no threshold.
    pub delayed: Option<u64>,
    /// The longest span with no successful request.
    pub downtime_ms: u64,
}

/// Share of delayed requests an A allows: a control run has about 0.1%
/// above its own p99.9 by definition; 0.5% leaves room for noise.
pub const A_DELAYED_SHARE: f64 = 0.005;
/// Share of delayed requests a B allows: at most one request in twenty.
pub const B_DELAYED_SHARE: f64 = 0.05;
/// Longest downtime a C allows: 1 s, the limit under which a user's flow of
/// thought stays uninterrupted (Nielsen, "Response Times: The 3 Important Limits").
pub const C_DOWNTIME_MS: u64 = 1_000;
/// Longest downtime a D allows: 10 s, the limit of a user's attention (same source).
pub const D_DOWNTIME_MS: u64 = 10_000;
/// Share of failed requests a D allows (1%); above it, F.
pub const D_FAILED_SHARE: f64 = 0.01;

/// A grade and the rule that gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Graded {
    pub grade: Grade,
    pub why: String,
}

/// The grade of one recycle (docs/run.md "Warm-up grade"):
/// - F: more than 1% of the requests failed, or downtime above 10 s;
/// - D: some requests failed, or downtime above 1 s;
/// - C: some downtime (up to 1 s), or more than 5% of the requests delayed;
/// - B: more than 0.5% delayed;
/// - A: no failure, no downtime, at most 0.5% delayed.
pub fn grade(input: &GradeInput) -> Graded {
    let share = |n: u64| {
        if input.requests == 0 {
            0.0
        } else {
            n as f64 / input.requests as f64
        }
    };
    let failed_share = share(input.failed);
    let delayed_share = share(input.delayed.unwrap_or(0));
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    let (grade, why) = if failed_share > D_FAILED_SHARE {
        (Grade::F, format!("{} failed ({})", input.failed, pct(failed_share)))
    } else if input.downtime_ms > D_DOWNTIME_MS {
        (Grade::F, format!("{} ms of downtime", input.downtime_ms))
    } else if input.failed > 0 {
        (Grade::D, format!("{} failed ({})", input.failed, pct(failed_share)))
    } else if input.downtime_ms > C_DOWNTIME_MS {
        (Grade::D, format!("{} ms of downtime", input.downtime_ms))
    } else if input.downtime_ms > 0 {
        (Grade::C, format!("{} ms of downtime", input.downtime_ms))
    } else if delayed_share > B_DELAYED_SHARE {
        (
            Grade::C,
            format!("{} delayed ({})", input.delayed.unwrap_or(0), pct(delayed_share)),
        )
    } else if delayed_share > A_DELAYED_SHARE {
        (
            Grade::B,
            format!("{} delayed ({})", input.delayed.unwrap_or(0), pct(delayed_share)),
        )
    } else {
        (
            Grade::A,
            "no failure, no downtime, no delay beyond the control's".to_string(),
        )
    };
    let why = if input.delayed.is_none() {
        format!("{why}; delayed requests not counted (no control threshold)")
    } else {
        why
    };
    Graded { grade, why }
}

/// The grade's input from a recycle run's figures: the window from the
/// event to the end of the run.
pub fn input_of(r: &RecycleFigures) -> Option<GradeInput> {
    let w = r.drain.as_ref()?;
    Some(GradeInput {
        requests: w.ok + w.failed.total(),
        failed: w.failed.total(),
        // The exact count; older result sets only have the lower bound.
        delayed: w.delayed.or(w.delayed_at_least),
        downtime_ms: r.downtime_ms,
    })
}

/// The median grade of a kind's repeats among `entries` (one model, one
/// level), and how many repeats it is made of.
pub fn median_grade<'a>(runs: impl Iterator<Item = &'a RecycleFigures>) -> Option<(Grade, usize)> {
    let mut grades: Vec<Grade> = runs.filter_map(input_of).map(|i| grade(&i).grade).collect();
    if grades.is_empty() {
        return None;
    }
    grades.sort();
    Some((grades[(grades.len() - 1) / 2], grades.len()))
}

/// `hostlab recycle --grade`: print the grade of each repeat of `kind` in
/// the result set at `dir`.
pub fn print(dir: &Path, kind: &str) -> anyhow::Result<()> {
    let results = crate::run::export::json::read(dir)?;
    let runs: Vec<(&Entry, &RecycleFigures)> = results
        .entries
        .iter()
        .filter_map(|e| Some((e, e.recycle.as_ref()?)))
        .filter(|(_, r)| !r.control && r.kind == kind)
        .collect();
    if runs.is_empty() {
        bail!(
            "no `{kind}` recycle was measured (see {}/report.md), so there is nothing to grade",
            dir.display()
        );
    }
    for (entry, r) in runs {
        let Some(input) = input_of(r) else {
            println!(
                "{} {kind} repeat {}: not graded (no window figures)",
                entry.model, entry.repeat
            );
            continue;
        };
        let graded = grade(&input);
        println!(
            "warm-up grade {}: {} {kind} repeat {} ({}; {} requests after the event, {} failed, {} delayed, {} ms downtime)",
            graded.grade,
            entry.model,
            entry.repeat,
            graded.why,
            input.requests,
            input.failed,
            input.delayed.map_or("-".into(), |d| d.to_string()),
            input.downtime_ms
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(requests: u64, failed: u64, delayed: u64, downtime_ms: u64) -> GradeInput {
        GradeInput {
            requests,
            failed,
            delayed: Some(delayed),
            downtime_ms,
        }
    }

    #[test]
    fn a_clean_recycle_is_an_a() {
        assert_eq!(grade(&input(10_000, 0, 0, 0)).grade, Grade::A);
        // A control's own share above its p99.9 is within an A.
        assert_eq!(grade(&input(10_000, 0, 50, 0)).grade, Grade::A);
        assert_eq!(grade(&input(0, 0, 0, 0)).grade, Grade::A, "no request, nothing lost");
    }

    #[test]
    fn delayed_requests_give_b_then_c() {
        assert_eq!(grade(&input(10_000, 0, 51, 0)).grade, Grade::B);
        assert_eq!(grade(&input(10_000, 0, 500, 0)).grade, Grade::B);
        assert_eq!(grade(&input(10_000, 0, 501, 0)).grade, Grade::C);
    }

    #[test]
    fn downtime_gives_c_then_d_then_f() {
        assert_eq!(grade(&input(10_000, 0, 0, 100)).grade, Grade::C);
        assert_eq!(grade(&input(10_000, 0, 0, 1_000)).grade, Grade::C);
        assert_eq!(grade(&input(10_000, 0, 0, 1_001)).grade, Grade::D);
        assert_eq!(grade(&input(10_000, 0, 0, 10_000)).grade, Grade::D);
        assert_eq!(grade(&input(10_000, 0, 0, 10_001)).grade, Grade::F);
    }

    #[test]
    fn failures_give_d_then_f() {
        let one = grade(&input(10_000, 1, 0, 0));
        assert_eq!(one.grade, Grade::D);
        assert!(one.why.contains("1 failed"), "{}", one.why);
        assert_eq!(grade(&input(10_000, 100, 0, 0)).grade, Grade::D);
        assert_eq!(grade(&input(10_000, 101, 0, 0)).grade, Grade::F);
    }

    #[test]
    fn the_worst_figure_decides() {
        // Failures outrank delays and short downtime.
        assert_eq!(grade(&input(10_000, 1, 5_000, 500)).grade, Grade::D);
        assert_eq!(grade(&input(10_000, 0, 5_000, 20_000)).grade, Grade::F);
    }

    #[test]
    fn without_a_threshold_delays_are_not_counted_and_it_says_so() {
        let g = grade(&GradeInput {
            requests: 100,
            failed: 0,
            delayed: None,
            downtime_ms: 0,
        });
        assert_eq!(g.grade, Grade::A);
        assert!(g.why.contains("not counted"), "{}", g.why);
    }

    #[test]
    fn the_median_of_repeats() {
        use crate::run::results::WindowMetrics;
        let run = |failed_downtime: u64| RecycleFigures {
            downtime_ms: failed_downtime,
            drain: Some(WindowMetrics {
                ok: 1000,
                delayed_at_least: Some(0),
                ..WindowMetrics::default()
            }),
            ..RecycleFigures::default()
        };
        let runs = [run(0), run(500), run(20_000)];
        assert_eq!(median_grade(runs.iter()), Some((Grade::C, 3)));
        assert_eq!(median_grade([].iter()), None);
        let no_window = RecycleFigures::default();
        assert_eq!(median_grade([no_window].iter()), None);
    }
}
