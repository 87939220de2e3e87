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
