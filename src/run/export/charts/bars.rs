//! The bar chart: one bar per model with its value and ratio labels.

use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};

use super::*;

/// The coordinates of a chart with one segment per bar.
pub(super) type Segments = Cartesian2d<SegmentedCoord<RangedCoordi32>, RangedCoordf64>;

/// A chart of one x segment per label (the label centred under it) and
/// `0..top` on y, its mesh drawn without x lines: the frame the bar charts
/// (this one and the stacked CPU chart) draw their bars into. `builder`
/// brings what differs: the y label area, a caption.
pub(super) fn segment_chart<'a, 'b, DB: DrawingBackend>(
    builder: &mut ChartBuilder<'a, 'b, DB>,
    labels: &[String],
    top: f64,
    y_desc: &str,
    y_format: Option<&dyn Fn(&f64) -> String>,
) -> anyhow::Result<ChartContext<'a, DB, Segments>> {
    let n = labels.len().max(1) as i32;
    let mut chart = builder
        .margin(15)
        .x_label_area_size(40)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
        .map_err(err)?;
    let x_label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .y_desc(y_desc)
        .x_labels(labels.len().max(1))
        .x_label_formatter(&x_label)
        .label_style((FAMILY, 14));
    if let Some(format) = y_format {
        mesh.y_label_formatter(format);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

pub(super) fn bar_chart<DB: DrawingBackend>(
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
    let mut chart = segment_chart(
        ChartBuilder::on(root).y_label_area_size(90),
        &labels,
        top,
        y_desc,
        Some(&|v| thousands(*v)),
    )?;
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
            .draw_series(std::iter::once(label_above(
                label,
                (SegmentValue::CenterOf(i), b.max.max(b.value) + top * 0.03),
            )))
            .map_err(err)?;
    }
    Ok(())
}
