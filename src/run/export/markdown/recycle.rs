//! The recycle section: each kind against its control, per level.

use super::*;

/// The recycle figures, each kind next to its level's control: medians
/// over the repeats with their range, then the manager's own timings.
pub(super) fn recycle(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.recycle.is_some()).collect();
    if rows.is_empty() {
        // Selected models whose every recycle run failed still get their
        // figure (a note with the reasons), never a silent absence.
        if charts.iter().any(|c| c.kind == "recycle") {
            let _ = writeln!(
                out,
                "## Recycle under fixed-rate load\n\nNo recycle run produced figures; the reasons are in the \
                 figures below and under \"Not measured\".\n"
            );
            charts_of(out, charts, "recycle");
        }
        return;
    }
    let _ = writeln!(
        out,
        "## Recycle under fixed-rate load\n\n\
         Levels: `50%` is half of the model's own GET /ping capacity (this run's closed-loop median, \
         or a short probe), `light` is {} req/s. Each kind runs next to a **control**: the same load on a \
         fresh server with no event, its windows at the event's time. Figures are medians over the \
         repeats, (min..max) when they differ; method in docs/run.md \"Recycle\".\n\n\
         - **failed**: requests that failed from the event to the end of the run, by class in the second table;\n\
         - **delayed**: successful requests from the event to the end of the run slower than the control's \
         p99.9 (counted from the merged latency histogram of those 100 ms intervals; `>=` marks a lower \
         bound in result sets older than that count);\n\
         - **downtime**: the longest span, from the event on, in which no scheduled request completed \
         successfully (100 ms resolution);\n\
         - **window p99**: the p99 of every successful request in [event, event + 1 s] (merged histogram).\n\n\
         Idle kinds: the app went idle first; the event is the first request after it (t = 0).\n",
        rows.iter()
            .filter_map(|r| r.entries.first()?.recycle.as_ref())
            .find(|r| r.level == crate::run::scenarios::recycle::LIGHT)
            .map_or("1,000".into(), |r| thousands(r.rate_per_sec))
    );
    let _ = writeln!(
        out,
        "| model | level (req/s) | kind | repeats | failed | control | delayed | control | downtime ms | control | window p99 ms | control |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        let Some(k) = &r.recycle else { continue };
        if k.control {
            continue;
        }
        let control = control_of(&rows, &r.model, &k.level);
        let c = |f: &dyn Fn(&RecycleSpread) -> String| control.map_or("-".to_string(), f);
        let rate = r
            .entries
            .first()
            .and_then(|e| e.recycle.as_ref())
            .map_or(0.0, |x| x.rate_per_sec);
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            k.level,
            thousands(rate),
            k.kind,
            r.repeats,
            range_text(&k.failed, 0, 1.0),
            c(&|c| range_text(&c.failed, 0, 1.0)),
            delayed_text(k),
            c(&delayed_text),
            range_text(&k.downtime_ms, 0, 1.0),
            c(&|c| range_text(&c.downtime_ms, 0, 1.0)),
            k.window_p99_text(),
            c(&RecycleSpread::window_p99_text),
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Each run: failures by class in [event, event + 1 s] and to the end of the run, and the manager's own \
         timings (what the manager saw, not what clients saw; `held` is counted by the proxy front only).\n\n\
         | model | variant | repeat | event ms | failed in 1 s | failed to the end | delayed in 1 s / to the end | \
         manager: start-to-ready / warm-up / drain / unavailable / total ms | held |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        for e in &r.entries {
            let Some(rc) = &e.recycle else { continue };
            let w = |w: Option<crate::run::results::WindowMetrics>| {
                w.map_or("-".into(), |w| {
                    format!("{} ({})", w.failed.total(), w.failed.describe())
                })
            };
            let d = |w: Option<crate::run::results::WindowMetrics>| match w {
                Some(w) => match (w.delayed, w.delayed_at_least) {
                    (Some(d), _) => d.to_string(),
                    (None, Some(d)) => format!(">= {d}"),
                    (None, None) => "-".into(),
                },
                None => "-".into(),
            };
            let o = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
            let (manager, held) = rc.manager.map_or(("-".into(), "-".into()), |m| {
                (
                    format!(
                        "{} / {} / {} / {} / {}",
                        o(m.start_to_ready_ms),
                        o(m.warmup_ms),
                        o(m.drain_ms),
                        o(m.manager_unavailable_ms),
                        o(m.total_ms)
                    ),
                    // A front forwarding to an app process (proxy) holds requests itself; the others' wait in the kernel.
                    if r.model.parse().is_ok_and(|m: hostlab_hosts::Model| {
                        m.recycles() && m.roles().contains(&hostlab_hosts::Role::App)
                    }) {
                        o(m.held_requests)
                    } else {
                        "-".into()
                    },
                )
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
                r.model,
                r.variant,
                e.repeat,
                rc.event_ms,
                w(rc.window_1s),
                w(rc.drain),
                d(rc.window_1s),
                d(rc.drain),
                manager,
                held
            );
        }
    }
    out.push('\n');
    charts_of(out, charts, "recycle");
}

/// The control row of a model at a level.
pub(super) fn control_of<'a>(rows: &[&'a SummaryRow], model: &str, level: &str) -> Option<&'a RecycleSpread> {
    rows.iter()
        .filter(|r| r.model == model)
        .filter_map(|r| r.recycle.as_ref())
        .find(|k| k.control && k.level == level)
}

pub(super) fn delayed_text(k: &RecycleSpread) -> String {
    k.delayed_text()
}

/// `12,345` (no decimals).
pub(crate) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}
