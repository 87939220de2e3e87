//! The recycle figure: small multiples of throughput and p99 per 100 ms
//! around each recycle event and its control; one per model that recycled
//! or was selected to, with an explicit note when no run has data.

use super::*;
use crate::run::results::Entry;

/// The models a recycle figure is owed to: every selected model with a
/// recyclable part when the run selected the recycle scenario, then any
/// other model with a recycle entry (older result sets), in that order.
pub(super) fn recycle_models(results: &Results) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    if results.settings.scenarios.iter().any(|s| s == "recycle") {
        models.extend(
            results
                .settings
                .models
                .iter()
                .filter(|m| m.parse().is_ok_and(hostlab_hosts::Model::recycles))
                .cloned(),
        );
    }
    for e in results.entries.iter().filter(|e| e.recycle.is_some()) {
        if !models.contains(&e.model) {
            models.push(e.model.clone());
        }
    }
    models
}

/// The panels of a model's figure: at its first level, each variant's
/// lowest repeat with a timeline (a failed first repeat does not drop the
/// kind), the control first.
pub(super) fn recycle_panels(results: &Results, model: &str) -> (Option<String>, Vec<Panel>) {
    let level = results
        .entries
        .iter()
        .filter(|e| e.model == model)
        .find_map(|e| e.recycle.as_ref().map(|r| r.level.clone()));
    let runs: Vec<&Entry> = results
        .entries
        .iter()
        .filter(|e| e.model == model && e.load.as_ref().is_some_and(|l| !l.timeline.is_empty()))
        .filter(|e| e.recycle.as_ref().is_some_and(|r| Some(&r.level) == level.as_ref()))
        .collect();
    let mut panels: Vec<Panel> = Vec::new();
    let mut variants: Vec<&str> = Vec::new();
    for e in &runs {
        if !variants.contains(&e.variant.as_str()) {
            variants.push(&e.variant);
        }
    }
    for variant in variants {
        let Some(e) = runs.iter().filter(|e| e.variant == variant).min_by_key(|e| e.repeat) else {
            continue;
        };
        let (Some(rc), Some(load)) = (&e.recycle, &e.load) else {
            continue;
        };
        let drain_ms = rc.manager.and_then(|m| m.total_ms).filter(|_| !rc.control);
        let name = if rc.control {
            "control (no event)".to_string()
        } else {
            rc.kind.clone()
        };
        panels.push(Panel {
            name: if e.repeat == 1 {
                name
            } else {
                format!("{name} (repeat {})", e.repeat)
            },
            rows: load.timeline.clone(),
            event_ms: (!rc.control).then_some(rc.event_ms),
            drain_ms,
        });
    }
    panels.sort_by_key(|p| p.event_ms.is_some());
    (level, panels)
}

/// Why a model has no recycle data: its recorded failures and skips in the
/// recycle scenario, or that results.json holds no recycle entry for it.
pub(super) fn no_data_reasons(results: &Results, model: &str) -> Vec<String> {
    let reasons: Vec<String> = results
        .skipped
        .iter()
        .filter(|k| k.model.as_deref() == Some(model) && k.scenario.as_deref() == Some("recycle"))
        .map(|k| k.reason.clone())
        .collect();
    if reasons.is_empty() {
        vec!["results.json holds no recycle run with a timeline for it".to_string()]
    } else {
        reasons
    }
}

/// One recycle chart per model of [`recycle_models`]: its small multiples,
/// or a figure that says there is no data and why.
pub(super) fn recycle_charts(dir: &Path, results: &Results) -> anyhow::Result<Vec<Chart>> {
    let mut charts = Vec::new();
    for model in recycle_models(results) {
        let stem = format!("recycle-{}", slug(&model));
        let (level, panels) = recycle_panels(results, &model);
        if panels.is_empty() {
            let title = format!("{model}: no recycle data");
            let lines = no_data_reasons(results, &model);
            render!(
                dir,
                &stem,
                (1100, 160 + 22 * lines.len().min(12) as u32),
                |root: &DrawingArea<_, Shift>| { no_data_figure(root, &title, &lines) }
            );
            charts.push(Chart {
                kind: "recycle",
                title,
                stem,
            });
            continue;
        }
        let rate = results
            .entries
            .iter()
            .filter(|e| e.model == model)
            .find_map(|e| e.recycle.as_ref())
            .map_or(0.0, |r| r.rate_per_sec);
        let first_repeats = panels.iter().all(|p| !p.name.contains("(repeat "));
        let title = format!(
            "{model}: recycle kinds at {} req/s ({}), {}",
            thousands(rate),
            level.as_deref().unwrap_or("-"),
            if first_repeats {
                "first repeat"
            } else {
                "first repeat with data"
            }
        );
        let height = 90 + 150 * panels.len() as u32;
        render!(dir, &stem, (1100, height), |root: &DrawingArea<_, Shift>| {
            recycle_figure(root, &title, &panels)
        });
        charts.push(Chart {
            kind: "recycle",
            title,
            stem,
        });
    }
    Ok(charts)
}

/// A figure with a title and the reasons there is nothing to draw.
pub(super) fn no_data_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[String],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let rest = titled(root, title, "no recycle run of this model produced a timeline")?;
    let shown = lines.len().min(12);
    for (i, line) in lines.iter().take(shown).enumerate() {
        let mut text: String = line.chars().take(150).collect();
        if line.chars().count() > 150 {
            text.push_str("...");
        }
        rest.draw(&Text::new(
            format!("- {text}"),
            (20, 12 + 22 * i as i32),
            (FAMILY, 12).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    if lines.len() > shown {
        rest.draw(&Text::new(
            format!("... and {} more (report.md \"Not measured\")", lines.len() - shown),
            (20, 12 + 22 * shown as i32),
            (FAMILY, 12).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// One small multiple of a recycle figure.
pub(super) struct Panel {
    pub(super) name: String,
    pub(super) rows: Vec<crate::run::results::IntervalRow>,
    /// `None` for the control.
    pub(super) event_ms: Option<u64>,
    /// The manager's own recycle time after the event (the drain shading).
    pub(super) drain_ms: Option<u64>,
}

pub(super) const OUTAGE: RGBColor = RGBColor(150, 150, 150);
pub(super) const DRAIN: RGBColor = RGBColor(255, 200, 80);
pub(super) const THROUGHPUT: RGBColor = RGBColor(31, 119, 180);
pub(super) const P99: RGBColor = RGBColor(148, 103, 189);

/// Per panel: throughput per 100 ms (left) and p99 per 100 ms (right, log
/// scale), both on one time axis shared by every panel; intervals with no
/// completion shaded as an outage and left out of the lines; the event a
/// vertical line, the manager's recycle time shaded; failures as red
/// markers on the throughput panel's right axis (integer ticks).
pub(super) fn recycle_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let rest = titled(root, title, "")?;
    let (legend, rest) = rest.split_vertically(26);
    legend_strip(
        &legend,
        &[
            ("req/s per 100 ms", THROUGHPUT.to_rgba(), false),
            ("p99 ms per 100 ms (log)", P99.to_rgba(), false),
            ("failed requests", RED.to_rgba(), true),
            ("no completion (outage)", OUTAGE.mix(0.5), true),
            ("recycle (manager's total)", DRAIN.mix(0.5), true),
            ("event", BLACK.to_rgba(), false),
        ],
    )?;
    let end_s = panels
        .iter()
        .flat_map(|p| p.rows.last().map(|r| (r.t_ms + r.duration_ms) as f64 / 1e3))
        .fold(0.1, f64::max);
    let top_rps = panels.iter().flat_map(|p| p.rows.iter().map(rps)).fold(1.0, f64::max) * 1.15;
    let p99s = panels
        .iter()
        .flat_map(|p| p.rows.iter().filter(|r| r.ok > 0).map(|r| r.p99_us as f64 / 1e3));
    let (p99_lo, p99_hi) = (
        p99s.clone().fold(f64::INFINITY, f64::min).min(1.0) * 0.8,
        p99s.fold(1.0, f64::max) * 1.5,
    );
    let top_failed = panels
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.errors))
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    let areas = rest.split_evenly((panels.len(), 1));
    for (panel, area) in panels.iter().zip(areas) {
        let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
        // Throughput, with failures on the right axis.
        let mut chart = ChartBuilder::on(&left)
            .margin(6)
            .caption(format!("{}: throughput and failures", panel.name), (FAMILY, 13))
            .x_label_area_size(22)
            .y_label_area_size(62)
            .right_y_label_area_size(40)
            .build_cartesian_2d(0.0..end_s, 0.0..top_rps)
            .map_err(err)?
            .set_secondary_coord(0.0..end_s, 0.0..top_failed);
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(4)
            .y_label_formatter(&|v| thousands(*v))
            .label_style((FAMILY, 11))
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .y_labels(4)
            .y_label_formatter(&|v| if v.fract() == 0.0 { thousands(*v) } else { String::new() })
            .label_style((FAMILY, 11).into_font().color(&RED))
            .draw()
            .map_err(err)?;
        shade(&mut chart, panel, end_s, top_rps, 0.0)?;
        for run in segments(&panel.rows) {
            chart
                .draw_series(LineSeries::new(
                    run.iter().map(|r| (mid_s(r), rps(r))),
                    THROUGHPUT.stroke_width(2),
                ))
                .map_err(err)?;
        }
        chart
            .draw_secondary_series(
                panel
                    .rows
                    .iter()
                    .filter(|r| r.errors > 0)
                    .map(|r| TriangleMarker::new((mid_s(r), r.errors as f64), 5, RED.filled())),
            )
            .map_err(err)?;
        // p99 on a log axis.
        let mut chart = ChartBuilder::on(&right)
            .margin(6)
            .caption(format!("{}: p99 per 100 ms", panel.name), (FAMILY, 13))
            .x_label_area_size(22)
            .y_label_area_size(62)
            .build_cartesian_2d(0.0..end_s, (p99_lo..p99_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(5)
            .y_label_formatter(&|v| log_tick(*v))
            .label_style((FAMILY, 11))
            .y_desc("ms")
            .draw()
            .map_err(err)?;
        shade(&mut chart, panel, end_s, p99_hi, p99_lo)?;
        for run in segments(&panel.rows) {
            chart
                .draw_series(LineSeries::new(
                    run.iter()
                        .map(|r| (mid_s(r), (r.p99_us as f64 / 1e3).clamp(p99_lo, p99_hi))),
                    P99.stroke_width(2),
                ))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// The outage, recycle and event shading of one panel.
pub(super) fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    panel: &Panel,
    end_s: f64,
    top: f64,
    bottom: f64,
) -> anyhow::Result<()> {
    if let (Some(ev), Some(d)) = (panel.event_ms, panel.drain_ms) {
        let (x0, x1) = (ev as f64 / 1e3, ((ev + d) as f64 / 1e3).min(end_s));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, bottom), (x1, top)],
                DRAIN.mix(0.3).filled(),
            )))
            .map_err(err)?;
    }
    let outages = panel.rows.iter().filter(|r| r.ok == 0).map(|r| {
        let x0 = r.t_ms as f64 / 1e3;
        Rectangle::new(
            [(x0, bottom), (x0 + r.duration_ms as f64 / 1e3, top)],
            OUTAGE.mix(0.35).filled(),
        )
    });
    chart.draw_series(outages).map_err(err)?;
    if let Some(ev) = panel.event_ms {
        let x = ev as f64 / 1e3;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, bottom), (x, top)],
                BLACK.stroke_width(1),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Successful requests per second in one interval.
pub(super) fn rps(r: &crate::run::results::IntervalRow) -> f64 {
    r.ok as f64 * 1e3 / r.duration_ms.max(1) as f64
}

pub(super) fn mid_s(r: &crate::run::results::IntervalRow) -> f64 {
    (r.t_ms as f64 + r.duration_ms as f64 / 2.0) / 1e3
}

/// Runs of consecutive intervals with at least one completion: lines break
/// at an outage instead of dropping to 0.
pub(super) fn segments(rows: &[crate::run::results::IntervalRow]) -> Vec<&[crate::run::results::IntervalRow]> {
    rows.split(|r| r.ok == 0).filter(|s| !s.is_empty()).collect()
}

/// A log-axis tick: `0.5`, `2`, `150`, `1,200` (few digits, no exponent).
pub(super) fn log_tick(v: f64) -> String {
    if v >= 100.0 {
        thousands(v)
    } else if v >= 1.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.2}", v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::results::{IntervalRow, LoadFigures, RecycleFigures, Settings, Skipped};

    fn run(model: &str, kind: &str, repeat: u32) -> Entry {
        Entry {
            model: model.into(),
            scenario: "recycle".into(),
            variant: format!("{kind} @ 50%"),
            repeat,
            load: Some(LoadFigures {
                timeline: (0..30)
                    .map(|i| IntervalRow {
                        t_ms: i * 100,
                        duration_ms: 100,
                        ok: 50,
                        p99_us: 900,
                        ..IntervalRow::default()
                    })
                    .collect(),
                ..LoadFigures::default()
            }),
            recycle: Some(RecycleFigures {
                kind: kind.into(),
                level: "50%".into(),
                control: kind == "control",
                event_ms: 1000,
                rate_per_sec: 500.0,
                ..RecycleFigures::default()
            }),
            ..Entry::default()
        }
    }

    fn results(entries: Vec<Entry>, skipped: Vec<Skipped>) -> Results {
        Results {
            settings: Settings {
                models: vec!["edge".into(), "proxy".into(), "inprocess".into()],
                scenarios: vec!["throughput".into(), "recycle".into()],
                ..Settings::default()
            },
            entries,
            skipped,
            ..Results::default()
        }
    }

    #[test]
    fn every_recycling_model_gets_a_figure_or_a_note() {
        let failed = Skipped {
            model: Some("inprocess".into()),
            scenario: Some("recycle".into()),
            reason: "FAILED: capacity for the recycle load: cannot start the inprocess model".into(),
        };
        let r = results(vec![run("proxy", "control", 1), run("proxy", "crash", 1)], vec![failed]);
        assert_eq!(
            recycle_models(&r),
            ["proxy", "inprocess"],
            "edge has nothing to recycle"
        );
        let dir = tempfile::tempdir().unwrap();
        register();
        let charts = recycle_charts(dir.path(), &r).unwrap();
        let stems: Vec<&str> = charts.iter().map(|c| c.stem.as_str()).collect();
        assert_eq!(stems, ["recycle-proxy", "recycle-inprocess"]);
        assert!(charts[1].title.contains("no recycle data"), "{}", charts[1].title);
        for stem in stems {
            for ext in ["svg", "png"] {
                assert!(dir.path().join(format!("{stem}.{ext}")).exists(), "{stem}.{ext}");
            }
        }
        let note = std::fs::read_to_string(dir.path().join("recycle-inprocess.svg")).unwrap();
        assert!(note.contains("cannot start the inprocess model"), "{note}");
        // Without a recorded reason the note still says what is missing.
        assert_eq!(
            no_data_reasons(&results(Vec::new(), Vec::new()), "proxy"),
            ["results.json holds no recycle run with a timeline for it"]
        );
        // A run that did not select the recycle scenario owes no figure.
        let mut r = results(Vec::new(), Vec::new());
        r.settings.scenarios = vec!["throughput".into()];
        assert!(recycle_models(&r).is_empty());
    }

    #[test]
    fn a_failed_first_repeat_does_not_drop_its_kind() {
        let r = results(
            vec![
                run("proxy", "control", 1),
                run("proxy", "stop-start", 2),
                run("proxy", "crash", 1),
                run("proxy", "crash", 2),
            ],
            Vec::new(),
        );
        let (level, panels) = recycle_panels(&r, "proxy");
        assert_eq!(level.as_deref(), Some("50%"));
        let names: Vec<&str> = panels.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["control (no event)", "stop-start (repeat 2)", "crash"]);
    }
}
