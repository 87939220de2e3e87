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

static FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// A chart written as `charts/<stem>.svg` and `.png`.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
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
pub(crate) fn slug(text: &str) -> String {
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
pub(crate) fn write(dir: &Path, results: &Results, rows: &[SummaryRow]) -> anyhow::Result<Vec<Chart>> {
    register();
    std::fs::create_dir_all(dir)?;
    let mut charts = Vec::new();

    // Throughput: one chart per endpoint.
    let variants = crate::run::summary::variants_in_order(rows.iter().filter(|r| r.scenario == "throughput"));
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
    let rates = crate::run::summary::variants_in_order(
        rows.iter()
            .filter(|r| r.scenario == "latency" && r.variant != "capacity probe"),
    );
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

    // Recycle: one figure per model that recycled or was meant to, with
    // its kinds as small multiples, or a note saying why there is none.
    charts.extend(recycle_charts(dir, results)?);

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

/// A label centred above the point `at` (the top of a bar).
fn label_above<C>(text: String, at: C) -> Text<'static, C, String> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    Text::new(
        text,
        at,
        (FAMILY, 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom)),
    )
}

/// The charts' legend box (draw it with `.draw()`, after any `.position`).
fn legend_box<'a, 'b, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &'b mut ChartContext<'a, DB, CT>,
) -> plotters::chart::SeriesLabelStyle<'a, 'b, DB, CT> {
    let mut labels = chart.configure_series_labels();
    labels
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 14));
    labels
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

// After `render!`, which the chart modules use.
mod bars;
mod cpu;
mod recycle;
mod spectrum;
mod state;
use bars::*;
pub(crate) use cpu::*;
use recycle::*;
pub(crate) use spectrum::*;
use state::*;

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
