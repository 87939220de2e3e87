//! The provenance line and the decision matrix (one row per model).

use super::*;

/// Commit, dirty flag, the peers' versions and the steal time.
pub(super) fn provenance(out: &mut String, env: &crate::run::results::RunEnvironment) {
    let peers = if env.tool_versions.is_empty() {
        "none of wrk, oha, nginx installed".to_string()
    } else {
        env.tool_versions
            .iter()
            .map(|(k, v)| format!("{k}: `{v}`"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let _ = writeln!(
        out,
        "- peers: {peers}\n- steal time over the run: {}\n",
        env.steal_percent
            .map_or("not measured".into(), |s| format!("{s:.2}% of all CPU time"))
    );
}

/// The decision matrix: one row per model with its throughput, CPU cost,
/// memory, and for each recycle kind its cost next to the control's and
/// whether the state survived without and with the journal.
pub(super) fn decision_matrix(out: &mut String, results: &Results, rows: &[SummaryRow]) {
    use crate::run::scenarios::recycle::KINDS;
    let models = &results.settings.models;
    if models.is_empty() {
        return;
    }
    // The recycle level the matrix shows: the first one measured (50%).
    let recycle_rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.recycle.is_some()).collect();
    let level = recycle_rows
        .iter()
        .find_map(|r| r.recycle.as_ref())
        .map(|k| k.level.clone());
    let kinds: Vec<&str> = KINDS
        .iter()
        .map(|(k, _)| *k)
        .chain(["process restart"])
        .filter(|k| {
            recycle_rows
                .iter()
                .filter_map(|r| r.recycle.as_ref())
                .any(|x| x.kind == *k && Some(&x.level) == level.as_ref())
                || results
                    .entries
                    .iter()
                    .any(|e| e.state.as_ref().is_some_and(|s| s.kind == *k))
        })
        .collect();
    let _ = writeln!(out, "## Decision matrix\n");
    let _ = writeln!(
        out,
        "Throughput: GET /ping closed-loop median req/s (*generator-limited*: a lower bound). CPU: server \
         processes' CPU per request on GET /ping. RSS: the model's processes at the end of that run. \
         Recycle cells{}: failed / delayed / downtime ms, the control's below, then the state \
         (books) kept without / with the journal. Details and definitions below the claims.\n",
        level.as_ref().map_or(String::new(), |l| format!(" at the `{l}` level"))
    );
    let mut header = "| model | throughput req/s | CPU µs/request | RSS MiB |".to_string();
    let mut rule = "|---|---|---|---|".to_string();
    for k in &kinds {
        let _ = write!(header, " {k} |");
        rule.push_str("---|");
    }
    header.push_str(" warm-up grade |");
    rule.push_str("---|");
    let _ = writeln!(out, "{header}\n{rule}");
    for model in models {
        let ping = crate::run::summary::find(rows, "throughput", model, crate::run::scenarios::throughput::PING);
        let tp = matrix_throughput(rows, model).map_or("-".into(), |(rps, limited)| {
            format!(
                "{}{}",
                thousands(rps),
                if limited { " *generator-limited*" } else { "" }
            )
        });
        let cpu = cpu_us_per_request(rows, model).map_or("-".into(), |c| format!("{c:.1}"));
        let rss = ping
            .and_then(crate::run::summary::server_rss_bytes)
            .map_or("-".into(), |s| format!("{:.1}", s.median / (1024.0 * 1024.0)));
        let mut line = format!("| {model} | {tp} | {cpu} | {rss} |");
        for k in &kinds {
            let _ = write!(
                line,
                " {} |",
                matrix_cell(results, &recycle_rows, model, k, level.as_deref())
            );
        }
        let _ = write!(line, " {} |", grade_cell(results, model, &kinds, level.as_deref()));
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

/// The warm-up grade of each recycle kind of one model at the matrix's
/// level (the median over its repeats; docs/run.md "Warm-up grade").
fn grade_cell(results: &Results, model: &str, kinds: &[&str], level: Option<&str>) -> String {
    let graded: Vec<String> = kinds
        .iter()
        .filter_map(|kind| {
            let runs = results
                .entries
                .iter()
                .filter(|e| e.model == model)
                .filter_map(|e| e.recycle.as_ref())
                .filter(|r| !r.control && r.kind == *kind && Some(r.level.as_str()) == level);
            let (grade, _) = crate::run::grade::median_grade(runs)?;
            Some(format!("{kind} **{grade}**"))
        })
        .collect();
    if graded.is_empty() {
        "not graded".into()
    } else {
        graded.join("<br>")
    }
}

/// The throughput the matrix shows and whether the generator may have
/// limited it: this run's GET /ping closed-loop median. (Issue 13's
/// server-bound, CPU-capped figure replaces it where it exists.)
pub(crate) fn matrix_throughput(rows: &[SummaryRow], model: &str) -> Option<(f64, bool)> {
    let r = crate::run::summary::find(rows, "throughput", model, crate::run::scenarios::throughput::PING)?;
    Some((r.rps?.median, r.generator_limited))
}

/// Server CPU µs per GET /ping request, the median of the repeats: each
/// repeat's `entries[].cpu.us_per_request` (the figure of the CPU section,
/// over exactly the measured window), or in older result sets without it
/// the summed CPU of the model's processes over its req/s.
pub(crate) fn cpu_us_per_request(rows: &[SummaryRow], model: &str) -> Option<f64> {
    let r = crate::run::summary::find(rows, "throughput", model, crate::run::scenarios::throughput::PING)?;
    let per: Vec<f64> = r
        .entries
        .iter()
        .filter(|e| e.cpu.is_some() || !e.processes.is_empty())
        .filter_map(|e| {
            if let Some(cpu) = &e.cpu {
                return Some(cpu.us_per_request);
            }
            let rps = e.load.as_ref()?.requests_per_sec;
            let cpu: f64 = e.processes.iter().map(|p| p.cpu_percent).sum();
            (rps > 0.0).then(|| cpu / 100.0 * 1e6 / rps)
        })
        .collect();
    Spread::of(&per).map(|s| s.median)
}

/// One recycle kind of one model in the matrix.
pub(super) fn matrix_cell(
    results: &Results,
    rows: &[&SummaryRow],
    model: &str,
    kind: &str,
    level: Option<&str>,
) -> String {
    let mut parts = Vec::new();
    let find = |kind: &str, control: bool| {
        rows.iter()
            .filter(|r| r.model == model)
            .filter_map(|r| r.recycle.as_ref())
            .find(|k| (control && k.control || !control && k.kind == kind) && Some(k.level.as_str()) == level)
    };
    let figures = |k: &RecycleSpread| {
        format!(
            "{} / {} / {}",
            range_text(&k.failed, 0, 1.0),
            delayed_text(k),
            range_text(&k.downtime_ms, 0, 1.0)
        )
    };
    if let Some(k) = find(kind, false) {
        parts.push(figures(k));
        if let Some(c) = find(kind, true) {
            parts.push(format!("control {}", figures(c)));
        }
    }
    let state = |journal: bool| {
        results
            .entries
            .iter()
            .filter(|e| e.model == model)
            .filter_map(|e| e.state.as_ref())
            .find(|s| s.kind == kind && s.journal == journal)
            .map_or("-", |s| {
                if s.books_before > 0 && s.books_after >= s.books_before {
                    "kept"
                } else if s.books_before == 0 {
                    "none added"
                } else {
                    "lost"
                }
            })
    };
    let (without, with) = (state(false), state(true));
    if without != "-" || with != "-" {
        parts.push(format!("state {without} / {with}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("<br>")
    }
}

#[cfg(test)]
mod tests {
    use super::grade_cell;
    use crate::run::results::{Entry, RecycleFigures, Results, WindowMetrics};

    fn run(model: &str, kind: &str, control: bool, downtime_ms: u64) -> Entry {
        Entry {
            model: model.into(),
            scenario: "recycle".into(),
            recycle: Some(RecycleFigures {
                kind: kind.into(),
                control,
                level: "50%".into(),
                downtime_ms,
                drain: Some(WindowMetrics {
                    ok: 1000,
                    delayed_at_least: Some(0),
                    ..WindowMetrics::default()
                }),
                ..RecycleFigures::default()
            }),
            ..Entry::default()
        }
    }

    #[test]
    fn the_grade_column_grades_each_kind_of_the_model() {
        let results = Results {
            entries: vec![
                run("proxy", "control", true, 0),
                run("proxy", "overlapped", false, 0),
                run("proxy", "stop-start", false, 300),
                run("inprocess", "stop-start", false, 20_000),
            ],
            ..Results::default()
        };
        let kinds = ["overlapped", "stop-start", "crash"];
        assert_eq!(
            grade_cell(&results, "proxy", &kinds, Some("50%")),
            "overlapped **A**<br>stop-start **C**"
        );
        assert_eq!(
            grade_cell(&results, "inprocess", &kinds, Some("50%")),
            "stop-start **F**"
        );
        assert_eq!(grade_cell(&results, "split", &kinds, Some("50%")), "not graded");
        assert_eq!(grade_cell(&results, "proxy", &kinds, Some("light")), "not graded");
    }
}
