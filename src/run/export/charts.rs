//! Charts with plotters, each in SVG and PNG: throughput per model with
//! ratio labels, latency percentile curves (log scale), one recycle
//! timeline per model and kind, and books before/after each recycle. PNG
//! text uses the bundled DejaVu Sans (assets/fonts), so no system font
//! library is needed.

use std::path::Path;
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::run::results::Results;
use crate::run::summary::SummaryRow;

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// A chart written as `charts/<stem>.svg` and `.png`.
#[derive(Debug, Clone)]
pub struct Chart {
    /// throughput | latency | recycle | state
    pub kind: &'static str,
    pub title: String,
    pub stem: String,
}

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::warn!("the bundled font did not load; PNG charts will have no text");
        }
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart failed: {e:?}")
}

/// Renders one chart function into both formats.
macro_rules! render {
    ($dir:expr, $stem:expr, $size:expr, $draw:expr) => {{
        let svg = $dir.join(format!("{}.svg", $stem));
        let png = $dir.join(format!("{}.png", $stem));
        {
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw(&root)?;
            root.present().map_err(err)?;
        }
        {
            let root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw(&root)?;
            root.present().map_err(err)?;
        }
    }};
}

/// A file-name-safe form of a variant, e.g. `GET /ping` -> `get-ping`.
pub fn slug(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_string()
}

/// Writes every chart the results allow; returns what it wrote.
pub fn write(dir: &Path, results: &Results, rows: &[SummaryRow]) -> anyhow::Result<Vec<Chart>> {
    register();
    std::fs::create_dir_all(dir)?;
    let mut charts = Vec::new();
    let size = (900, 500);

    // Throughput: one chart per endpoint.
    let mut variants: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario == "throughput") {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    for v in variants {
        let bars: Vec<Bar> = rows
            .iter()
            .filter(|r| r.scenario == "throughput" && r.variant == v)
            .filter_map(|r| {
                let s = r.rps?;
                Some(Bar {
                    label: r.model.clone(),
                    value: s.median,
                    min: s.min,
                    max: s.max,
                    note: r.ratio_to_edge.map_or(String::new(), |x| format!("{x:.2}x edge")),
                    generator_limited: r.generator_limited,
                })
            })
            .collect();
        let stem = format!("throughput-{}", slug(v));
        let title = format!("Throughput, {v} (median, min-max whiskers)");
        let env = &results.environment;
        let st = &results.settings;
        let subtitle = format!(
            "closed loop, {} connections, {} s after {} s warm-up, {} repeat(s); generator on CPUs {:?}, servers on CPUs {:?}; \
             hatched: generator-limited (a lower bound)",
            st.connections, st.duration_s, st.warmup_s, st.repeats, env.client_cpus, env.server_cpus
        );
        render!(dir, &stem, (900, 540), |root: &DrawingArea<_, Shift>| bar_chart(
            root,
            &title,
            &subtitle,
            "requests/s",
            &bars
        ));
        charts.push(Chart {
            kind: "throughput",
            title,
            stem,
        });
    }

    // Latency: one chart per rate, a percentile curve per model.
    let mut rates: Vec<&str> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.scenario == "latency" && r.variant != "capacity probe")
    {
        if !rates.contains(&r.variant.as_str()) {
            rates.push(&r.variant);
        }
    }
    for rate in rates {
        let curves: Vec<(String, Vec<f64>)> = rows
            .iter()
            .filter(|r| r.scenario == "latency" && r.variant == rate)
            .filter_map(|r| {
                let l = r.entries.iter().find_map(|e| e.load.as_ref())?.latency_us;
                let v = [l.p50, l.p90, l.p99, l.p99_9, l.max].map(|us| us as f64 / 1e3);
                Some((r.model.clone(), v.to_vec()))
            })
            .collect();
        let stem = format!("latency-{}", slug(rate.split(" (").next().unwrap_or(rate)));
        let title = format!("Latency percentiles at {rate}");
        render!(dir, &stem, size, |root: &DrawingArea<_, Shift>| percentile_chart(
            root, &title, &curves
        ));
        charts.push(Chart {
            kind: "latency",
            title,
            stem,
        });
    }

    // Recycle: one figure per model, its kinds (and the control) as small
    // multiples on a shared time axis, first level and first repeat.
    let mut models: Vec<&str> = Vec::new();
    for e in results.entries.iter().filter(|e| e.recycle.is_some()) {
        if !models.contains(&e.model.as_str()) {
            models.push(&e.model);
        }
    }
    for model in models {
        let level = results
            .entries
            .iter()
            .filter(|e| e.model == model)
            .find_map(|e| e.recycle.as_ref().map(|r| r.level.clone()));
        let mut panels: Vec<Panel> = Vec::new();
        for e in results.entries.iter().filter(|e| e.model == model && e.repeat == 1) {
            let (Some(rc), Some(load)) = (&e.recycle, &e.load) else {
                continue;
            };
            if load.timeline.is_empty() || Some(&rc.level) != level.as_ref() {
                continue;
            }
            let drain_ms = rc.manager.and_then(|m| m.total_ms).filter(|_| !rc.control);
            panels.push(Panel {
                name: if rc.control {
                    "control (no event)".into()
                } else {
                    rc.kind.clone()
                },
                rows: load.timeline.clone(),
                event_ms: (!rc.control).then_some(rc.event_ms),
                drain_ms,
            });
        }
        if panels.is_empty() {
            continue;
        }
        // The control first.
        panels.sort_by_key(|p| p.event_ms.is_some());
        let rate = results
            .entries
            .iter()
            .find(|e| e.model == model && e.recycle.is_some())
            .and_then(|e| e.recycle.as_ref())
            .map_or(0.0, |r| r.rate_per_sec);
        let stem = format!("recycle-{}", slug(model));
        let title = format!(
            "{model}: recycle kinds at {} req/s ({}), first repeat",
            thousands(rate),
            level.as_deref().unwrap_or("-")
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

    // State: kept/lost per model x recycle kind, without and with the journal.
    let cells: Vec<StateCell> = results
        .entries
        .iter()
        .filter_map(|e| {
            let s = e.state.as_ref()?;
            Some(StateCell {
                model: e.model.clone(),
                kind: s.kind.clone(),
                journal: s.journal,
                before: s.books_before,
                after: s.books_after,
            })
        })
        .collect();
    if !cells.is_empty() {
        let stem = "state".to_string();
        let title = "Where are all my books? Books kept after each recycle, without and with --journal".to_string();
        let models = unique(cells.iter().map(|c| c.model.as_str()));
        render!(
            dir,
            &stem,
            (1100, 130 + 44 * models.len() as u32),
            |root: &DrawingArea<_, Shift>| state_heatmap(root, &title, &cells)
        );
        charts.push(Chart {
            kind: "state",
            title,
            stem,
        });
    }
    Ok(charts)
}

/// A rectangle with left and right pixel margins (bars narrower than their segment).
fn margin<C>(mut r: Rectangle<C>, left: u32, right: u32) -> Rectangle<C> {
    r.set_margin(0, 0, left, right);
    r
}

struct Bar {
    label: String,
    value: f64,
    min: f64,
    max: f64,
    note: String,
    generator_limited: bool,
}

/// `12,345` for an axis or a label.
fn thousands(x: f64) -> String {
    crate::run::export::markdown::thousands(x)
}

/// A title, and a subtitle in smaller type below it; returns the area left.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> anyhow::Result<DrawingArea<DB, Shift>> {
    let (top, rest) = root.split_vertically(if subtitle.is_empty() { 34 } else { 56 });
    let centre = (top.dim_in_pixel().0 / 2) as i32;
    let anchor = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Top,
    );
    top.draw(&Text::new(
        title.to_string(),
        (centre, 6),
        (FAMILY, 20).into_font().color(&BLACK).pos(anchor),
    ))
    .map_err(err)?;
    if !subtitle.is_empty() {
        top.draw(&Text::new(
            subtitle.to_string(),
            (centre, 34),
            (FAMILY, 12).into_font().color(&BLACK.mix(0.75)).pos(anchor),
        ))
        .map_err(err)?;
    }
    Ok(rest)
}

/// A legend in its own strip, outside every plot area: (label, colour,
/// filled box or line).
fn legend_strip<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[(&str, RGBAColor, bool)],
) -> anyhow::Result<()> {
    let mut x = 20;
    for (label, color, boxed) in items {
        if *boxed {
            area.draw(&Rectangle::new([(x, 6), (x + 16, 18)], color.filled()))
                .map_err(err)?;
        } else {
            area.draw(&PathElement::new(vec![(x, 12), (x + 16, 12)], color.stroke_width(2)))
                .map_err(err)?;
        }
        area.draw(&Text::new(
            label.to_string(),
            (x + 22, 5),
            (FAMILY, 13).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        x += 40 + 7 * label.chars().count() as i32;
    }
    Ok(())
}

fn bar_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    y_desc: &str,
    bars: &[Bar],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = &titled(root, title, subtitle)?;
    let n = bars.len().max(1) as i32;
    let top = bars.iter().map(|b| b.max.max(b.value)).fold(1.0, f64::max) * 1.2;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .y_label_formatter(&|v| thousands(*v))
        .x_labels(bars.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    for (i, b) in bars.iter().enumerate() {
        let i = i as i32;
        let color = Palette99::pick(i as usize);
        let bar = |style: ShapeStyle| {
            margin(
                Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), b.value)],
                    style,
                ),
                20,
                20,
            )
        };
        chart
            .draw_series(std::iter::once(bar(if b.generator_limited {
                color.mix(0.35).filled()
            } else {
                color.filled()
            })))
            .map_err(err)?;
        if b.generator_limited {
            // Hatching: diagonal strokes across the bar, and its outline.
            let (lo, hi) = (0.0, b.value);
            let steps = 12;
            let lines = (1..steps).map(|k| {
                let y0 = lo + (hi - lo) * (k - 1) as f64 / steps as f64;
                let y1 = lo + (hi - lo) * k as f64 / steps as f64;
                PathElement::new(
                    vec![(SegmentValue::Exact(i), y0), (SegmentValue::Exact(i + 1), y1)],
                    color.stroke_width(1),
                )
            });
            chart.draw_series(lines).map_err(err)?;
            chart
                .draw_series(std::iter::once(bar(color.stroke_width(2))))
                .map_err(err)?;
        }
        // Min-max whisker with caps about 30 px wide (the plot is the
        // area less the y labels and margins, split evenly between bars).
        let segment_px = (root.dim_in_pixel().0.saturating_sub(130) / n as u32).max(40);
        let cap_margin = segment_px / 2 - 15;
        let whisker = |v: f64| {
            margin(
                Rectangle::new(
                    [(SegmentValue::Exact(i), v), (SegmentValue::Exact(i + 1), v)],
                    BLACK.stroke_width(2),
                ),
                cap_margin,
                cap_margin,
            )
        };
        chart.draw_series([whisker(b.min), whisker(b.max)]).map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(SegmentValue::CenterOf(i), b.min), (SegmentValue::CenterOf(i), b.max)],
                BLACK.stroke_width(2),
            )))
            .map_err(err)?;
        let mut label = thousands(b.value);
        if !b.note.is_empty() {
            label = format!("{label}  {}", b.note);
        }
        if b.generator_limited {
            label.push_str(" (gen.-limited)");
        }
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (SegmentValue::CenterOf(i), b.max.max(b.value) + top * 0.03),
                (FAMILY, 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    )),
            )))
            .map_err(err)?;
    }
    Ok(())
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

fn percentile_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curves: &[(String, Vec<f64>)],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let values = curves.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| *v > 0.0);
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo * 0.8, hi * 1.25)
    } else {
        (0.01, 10.0)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0i32..4i32, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|i| PERCENTILES.get(*i as usize).map_or(String::new(), |s| s.to_string()))
        .y_desc("latency ms (log scale)")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    for (k, (model, v)) in curves.iter().enumerate() {
        let color = Palette99::pick(k);
        chart
            .draw_series(LineSeries::new(
                v.iter().enumerate().map(|(i, y)| (i as i32, y.max(lo))),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(model.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// One small multiple of a recycle figure.
struct Panel {
    name: String,
    rows: Vec<crate::run::results::IntervalRow>,
    /// `None` for the control.
    event_ms: Option<u64>,
    /// The manager's own recycle time after the event (the drain shading).
    drain_ms: Option<u64>,
}

const OUTAGE: RGBColor = RGBColor(150, 150, 150);
const DRAIN: RGBColor = RGBColor(255, 200, 80);
const THROUGHPUT: RGBColor = RGBColor(31, 119, 180);
const P99: RGBColor = RGBColor(148, 103, 189);

/// Per panel: throughput per 100 ms (left) and p99 per 100 ms (right, log
/// scale), both on one time axis shared by every panel; intervals with no
/// completion shaded as an outage and left out of the lines; the event a
/// vertical line, the manager's recycle time shaded; failures as red
/// markers on the throughput panel's right axis (integer ticks).
fn recycle_figure<DB: DrawingBackend>(
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
fn shade<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
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
fn rps(r: &crate::run::results::IntervalRow) -> f64 {
    r.ok as f64 * 1e3 / r.duration_ms.max(1) as f64
}

fn mid_s(r: &crate::run::results::IntervalRow) -> f64 {
    (r.t_ms as f64 + r.duration_ms as f64 / 2.0) / 1e3
}

/// Runs of consecutive intervals with at least one completion: lines break
/// at an outage instead of dropping to 0.
fn segments(rows: &[crate::run::results::IntervalRow]) -> Vec<&[crate::run::results::IntervalRow]> {
    rows.split(|r| r.ok == 0).filter(|s| !s.is_empty()).collect()
}

/// A log-axis tick: `0.5`, `2`, `150`, `1,200` (few digits, no exponent).
fn log_tick(v: f64) -> String {
    if v >= 100.0 {
        thousands(v)
    } else if v >= 1.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.2}", v)
    }
}

struct StateCell {
    model: String,
    kind: String,
    journal: bool,
    before: u64,
    after: u64,
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
    v
}

/// Rows: models; columns: recycle kinds, each split into without / with
/// the journal. Green: every book kept; red: lost (how many of how many);
/// grey: not measured.
fn state_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    cells: &[StateCell],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let rest = titled(root, title, "")?;
    let (legend, grid) = rest.split_vertically(26);
    let kept = RGBColor(120, 190, 120);
    let lost = RGBColor(220, 110, 100);
    let none = RGBColor(225, 225, 225);
    legend_strip(
        &legend,
        &[
            ("kept", kept.to_rgba(), true),
            ("lost", lost.to_rgba(), true),
            ("not measured", none.to_rgba(), true),
        ],
    )?;
    let models = unique(cells.iter().map(|c| c.model.as_str()));
    let kinds = unique(cells.iter().map(|c| c.kind.as_str()));
    let (w, _) = grid.dim_in_pixel();
    let label_w = 110i32;
    let head_h = 44i32;
    let row_h = 44i32;
    let col_w = ((w as i32 - label_w - 10) / (2 * kinds.len().max(1) as i32)).max(20);
    let font = |size| (FAMILY, size).into_font().color(&BLACK);
    let centre = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    for (k, kind) in kinds.iter().enumerate() {
        let x = label_w + 2 * col_w * k as i32;
        grid.draw(&Text::new(kind.to_string(), (x + col_w, 10), font(13).pos(centre)))
            .map_err(err)?;
        for (j, text) in ["no journal", "journal"].iter().enumerate() {
            grid.draw(&Text::new(
                text.to_string(),
                (x + col_w * j as i32 + col_w / 2, 30),
                font(11).pos(centre),
            ))
            .map_err(err)?;
        }
    }
    for (m, model) in models.iter().enumerate() {
        let y = head_h + row_h * m as i32;
        grid.draw(&Text::new(model.to_string(), (8, y + row_h / 2 - 7), font(13)))
            .map_err(err)?;
        for (k, kind) in kinds.iter().enumerate() {
            for (j, journal) in [false, true].iter().enumerate() {
                let x = label_w + 2 * col_w * k as i32 + col_w * j as i32;
                let cell = cells
                    .iter()
                    .find(|c| c.model == *model && c.kind == *kind && c.journal == *journal);
                let (color, text) = match cell {
                    None => (none, "-".to_string()),
                    Some(c) if c.before > 0 && c.after >= c.before => (kept, format!("{}/{}", c.after, c.before)),
                    Some(c) => (lost, format!("{}/{}", c.after, c.before)),
                };
                grid.draw(&Rectangle::new(
                    [(x + 1, y + 1), (x + col_w - 1, y + row_h - 1)],
                    color.filled(),
                ))
                .map_err(err)?;
                grid.draw(&Text::new(text, (x + col_w / 2, y + row_h / 2), font(11).pos(centre)))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs() {
        assert_eq!(slug("GET /ping"), "get-ping");
        assert_eq!(slug("POST /tasks (5,000 rows)"), "post-tasks-5-000-rows");
        assert_eq!(slug("25% of edge"), "25-of-edge");
    }
}
