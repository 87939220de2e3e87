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

use crate::run::results::{LoadFigures, Results, SpectrumPoint};
use crate::run::scenarios::latency::overloaded;
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
                })
            })
            .collect();
        let stem = format!("throughput-{}", slug(v));
        let title = format!("Throughput, {v} (median, min-max)");
        render!(dir, &stem, size, |root: &DrawingArea<_, Shift>| bar_chart(
            root,
            &title,
            "requests/s",
            &bars
        ));
        charts.push(Chart {
            kind: "throughput",
            title,
            stem,
        });
    }

    charts.extend(cpu_charts(dir, rows)?);

    // Latency: one chart per rate variant, the percentile spectrum of
    // each model with its service time beside it.
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
        let curves: Vec<SpectrumCurve> = rows
            .iter()
            .filter(|r| r.scenario == "latency" && r.variant == rate)
            .filter_map(|r| SpectrumCurve::of(&r.model, r.entries.iter().filter_map(|e| e.load.as_ref())))
            .collect();
        if curves.is_empty() {
            continue;
        }
        let stem = format!("latency-{}", slug(rate));
        let title = format!("Latency percentile spectrum at {rate}");
        let samples: Vec<String> = curves.iter().map(|c| format!("{} {}", c.model, c.samples)).collect();
        let subtitle = format!(
            "open loop, from each request's scheduled start (solid) and from its send (dashed); samples: {}",
            samples.join(", ")
        );
        render!(dir, &stem, (1000, 560), |root: &DrawingArea<_, Shift>| spectrum_chart(
            root, &title, &subtitle, &curves
        ));
        charts.push(Chart {
            kind: "latency",
            title,
            stem,
        });
    }

    // Recycle timelines.
    for e in results.entries.iter().filter(|e| e.scenario == "recycle") {
        let (Some(rc), Some(load)) = (&e.recycle, &e.load) else {
            continue;
        };
        if load.timeline.is_empty() {
            continue;
        }
        let stem = format!("recycle-{}-{}", slug(&e.model), slug(&rc.kind));
        let title = format!(
            "{} {} recycle at {:.0} req/s",
            e.model,
            rc.kind,
            load.rate_per_sec.unwrap_or(0.0)
        );
        let points: Vec<(f64, f64, f64)> = load
            .timeline
            .iter()
            .map(|r| (r.t_ms as f64 / 1e3, r.p99_us as f64 / 1e3, r.errors as f64))
            .collect();
        let event_s = rc.event_ms as f64 / 1e3;
        render!(dir, &stem, size, |root: &DrawingArea<_, Shift>| timeline_chart(
            root, &title, &points, event_s
        ));
        charts.push(Chart {
            kind: "recycle",
            title,
            stem,
        });
    }

    // State before/after.
    let states: Vec<(String, f64, f64)> = results
        .entries
        .iter()
        .filter_map(|e| {
            let s = e.state.as_ref()?;
            Some((
                format!("{} {}", e.model, s.kind),
                s.books_before as f64,
                s.books_after as f64,
            ))
        })
        .collect();
    if !states.is_empty() {
        let stem = "state".to_string();
        let title = "Where are all my books? Books before and after each recycle".to_string();
        render!(dir, &stem, (1100, 520), |root: &DrawingArea<_, Shift>| state_chart(
            root, &title, &states
        ));
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
}

fn bar_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    bars: &[Bar],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let n = bars.len().max(1) as i32;
    let top = bars.iter().map(|b| b.max.max(b.value)).fold(1.0, f64::max) * 1.2;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
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
        chart
            .draw_series(std::iter::once(margin(
                Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), b.value)],
                    color.filled(),
                ),
                20,
                20,
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(SegmentValue::CenterOf(i), b.min), (SegmentValue::CenterOf(i), b.max)],
                BLACK.stroke_width(2),
            )))
            .map_err(err)?;
        let label = if b.note.is_empty() {
            format!("{:.0}", b.value)
        } else {
            format!("{:.0}  {}", b.value, b.note)
        };
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

/// One model's latency and service-time spectra at one rate (its first
/// repeat with a spectrum), and whether any repeat was overloaded.
#[derive(Debug, Clone)]
pub struct SpectrumCurve {
    pub model: String,
    /// (percentile, latency ms).
    pub latency: Vec<(f64, f64)>,
    pub service: Vec<(f64, f64)>,
    pub samples: u64,
    pub overloaded: bool,
    pub timeouts: u64,
}

impl SpectrumCurve {
    pub fn of<'a>(model: &str, loads: impl Iterator<Item = &'a LoadFigures> + Clone) -> Option<Self> {
        let first = loads.clone().find(|l| !l.latency_spectrum_us.is_empty())?;
        let points = |v: &[SpectrumPoint]| v.iter().map(|p| (p.percentile, p.us as f64 / 1e3)).collect();
        Some(SpectrumCurve {
            model: model.to_string(),
            latency: points(&first.latency_spectrum_us),
            service: points(&first.service_time_spectrum_us),
            samples: first.requests.ok,
            overloaded: loads.clone().any(overloaded),
            timeouts: loads.map(|l| l.requests.errors.timeout).sum(),
        })
    }
}

/// x of a percentile on the spectrum's axis: log10 of 1/(1-p), so 90, 99,
/// 99.9 and 99.99 are evenly spaced (HdrHistogram's percentile plots).
pub fn spectrum_x(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-4);
    -tail.log10()
}

/// A latency in ms with at most 3 significant digits: 0.05, 1.2, 350.
pub fn ms_label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Readable ticks for a log axis from `lo` to `hi`: 1-2-5 steps.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                ticks.push(v);
            }
        }
        decade *= 10.0;
    }
    ticks
}

fn spectrum_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    curves: &[SpectrumCurve],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, (FAMILY, 20)).map_err(err)?;
    let root = root.titled(subtitle, (FAMILY, 13)).map_err(err)?;
    let values = curves
        .iter()
        .flat_map(|c| c.latency.iter().chain(&c.service).map(|p| p.1))
        .filter(|v| *v > 0.0);
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo * 0.8, hi * 1.25)
    } else {
        (0.01, 10.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..4.0, (lo..hi).log_scale())
        .map_err(err)?;
    let ticks = log_ticks(lo, hi);
    chart
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x: &f64| match x.round() as i32 {
            0 => "p0".into(),
            1 => "p90".into(),
            2 => "p99".into(),
            3 => "p99.9".into(),
            _ => "p99.99".into(),
        })
        .x_desc("percentile (log scale of 1/(1-p))")
        .y_labels(40)
        .y_label_formatter(&|v| {
            if ticks.iter().any(|t| (t - v).abs() <= t * 1e-6) {
                ms_label(*v)
            } else {
                String::new()
            }
        })
        .y_desc("latency ms (log scale)")
        .disable_y_mesh()
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    // Grid lines at the labelled 1-2-5 ticks only (plotters' own log-axis
    // mesh draws a line at every candidate point).
    chart
        .draw_series(
            ticks
                .iter()
                .map(|t| PathElement::new(vec![(0.0, *t), (4.0, *t)], BLACK.mix(0.15))),
        )
        .map_err(err)?;
    for (k, c) in curves.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let xy =
            |v: &[(f64, f64)]| -> Vec<(f64, f64)> { v.iter().map(|(p, ms)| (spectrum_x(*p), ms.max(lo))).collect() };
        let label = if c.overloaded {
            format!("{} OVERLOADED ({} timeouts)", c.model, c.timeouts)
        } else {
            c.model.clone()
        };
        chart
            .draw_series(LineSeries::new(
                xy(&c.latency),
                color.stroke_width(if c.overloaded { 1 } else { 2 }),
            ))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(xy(&c.service), 6, 4, color.stroke_width(1)))
            .map_err(err)?;
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

fn timeline_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[(f64, f64, f64)],
    event_s: f64,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let end = points.iter().map(|p| p.0).fold(0.1, f64::max) + 0.1;
    let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let top_err = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(err)?
        .set_secondary_coord(0.0..end, 0.0..top_err);
    chart
        .configure_mesh()
        .x_desc("time s")
        .y_desc("p99 latency ms (per 100 ms)")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("failed requests per interval")
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), BLUE.stroke_width(2)))
        .map_err(err)?
        .label("p99 ms")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(points.iter().map(|p| (p.0, p.2)), RED.stroke_width(2)))
        .map_err(err)?
        .label("failed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(event_s, 0.0), (event_s, top)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?
        .label("recycle")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

fn state_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    states: &[(String, f64, f64)],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let n = states.len().max(1) as i32;
    let top = states.iter().map(|s| s.1.max(s.2)).fold(1.0, f64::max) * 1.2;
    let labels: Vec<String> = states.iter().map(|s| s.0.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(110)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("books")
        .x_labels(states.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_style((FAMILY, 12).into_font().transform(FontTransform::Rotate90))
        .draw()
        .map_err(err)?;
    for (i, (_, before, after)) in states.iter().enumerate() {
        let i = i as i32;
        let seg = |v| (SegmentValue::Exact(i), v);
        let seg_end = |v| (SegmentValue::Exact(i + 1), v);
        // Before on the left half, after on the right half (pixel margins).
        chart
            .draw_series([
                margin(
                    Rectangle::new([seg(0.0), seg_end(*before)], BLUE.mix(0.6).filled()),
                    6,
                    40,
                ),
                margin(
                    Rectangle::new([seg(0.0), seg_end(*after)], RED.mix(0.6).filled()),
                    40,
                    6,
                ),
            ])
            .map_err(err)?;
    }
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(SegmentValue::Exact(0), 0.0), (SegmentValue::Exact(0), 0.0)],
            BLUE.mix(0.6).filled(),
        )))
        .map_err(err)?
        .label("before")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.6).filled()));
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(SegmentValue::Exact(0), 0.0), (SegmentValue::Exact(0), 0.0)],
            RED.mix(0.6).filled(),
        )))
        .map_err(err)?
        .label("after")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], RED.mix(0.6).filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// CPU cost per request: one stacked bar chart per endpoint, a bar per
/// model, a segment per role (median µs per request of each role).
pub fn cpu_charts(dir: &Path, rows: &[SummaryRow]) -> anyhow::Result<Vec<Chart>> {
    let mut charts = Vec::new();
    let mut variants: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario == "throughput" && r.cpu.is_some()) {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    for v in variants {
        let bars: Vec<(String, Vec<(String, f64)>)> = rows
            .iter()
            .filter(|r| r.scenario == "throughput" && r.variant == v)
            .filter_map(|r| {
                let c = r.cpu.as_ref()?;
                let mut parts: Vec<(String, f64)> = crate::run::cpu::ROLES
                    .iter()
                    .filter_map(|role| Some((role.to_string(), *c.by_role.get(*role)?)))
                    .collect();
                parts.extend(
                    c.by_role
                        .iter()
                        .filter(|(role, _)| !crate::run::cpu::ROLES.contains(&role.as_str()))
                        .map(|(role, us)| (role.clone(), *us)),
                );
                Some((r.model.clone(), parts))
            })
            .collect();
        let stem = format!("cpu-{}", slug(v));
        let title = format!("CPU per request by role, {v} (median µs)");
        render!(dir, &stem, (900, 500), |root: &DrawingArea<_, Shift>| stacked_chart(
            root, &title, &bars
        ));
        charts.push(Chart {
            kind: "cpu",
            title,
            stem,
        });
    }
    Ok(charts)
}

fn stacked_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    bars: &[(String, Vec<(String, f64)>)],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let n = bars.len().max(1) as i32;
    let top = bars
        .iter()
        .map(|(_, parts)| parts.iter().map(|(_, v)| v).sum::<f64>())
        .fold(1.0, f64::max)
        * 1.2;
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("CPU µs per request")
        .x_labels(bars.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style((FAMILY, 14))
        .draw()
        .map_err(err)?;
    let color_of = |role: &str| {
        let i = crate::run::cpu::ROLES
            .iter()
            .position(|r| *r == role)
            .unwrap_or(crate::run::cpu::ROLES.len());
        Palette99::pick(i)
    };
    let mut legend_done: Vec<String> = Vec::new();
    for (i, (_, parts)) in bars.iter().enumerate() {
        let i = i as i32;
        let mut base = 0.0;
        for (role, us) in parts {
            let color = color_of(role);
            let series = chart
                .draw_series(std::iter::once(margin(
                    Rectangle::new(
                        [(SegmentValue::Exact(i), base), (SegmentValue::Exact(i + 1), base + us)],
                        color.filled(),
                    ),
                    20,
                    20,
                )))
                .map_err(err)?;
            if !legend_done.contains(role) {
                legend_done.push(role.clone());
                series
                    .label(role.clone())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
            }
            base += us;
        }
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{base:.1}"),
                (SegmentValue::CenterOf(i), base + top * 0.03),
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
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{log_ticks, ms_label, slug, spectrum_x};

    #[test]
    fn spectrum_axis_and_labels() {
        assert_eq!(spectrum_x(0.0), 0.0);
        assert!((spectrum_x(99.0) - 2.0).abs() < 1e-9);
        assert!((spectrum_x(99.99) - 4.0).abs() < 1e-6);
        assert_eq!(ms_label(0.05), "0.05");
        assert_eq!(ms_label(1.0), "1");
        assert_eq!(ms_label(20.0), "20");
        assert_eq!(ms_label(350.0), "350");
        assert_eq!(log_ticks(0.08, 3.0), vec![0.1, 0.2, 0.5, 1.0, 2.0]);
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("GET /ping"), "get-ping");
        assert_eq!(slug("POST /tasks (5,000 rows)"), "post-tasks-5-000-rows");
        assert_eq!(slug("25% of edge"), "25-of-edge");
    }
}
