//! The recycle figure: small multiples of throughput and p99 per 100 ms
//! around each recycle event and its control.

use super::*;

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
