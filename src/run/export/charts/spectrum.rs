//! Latency percentile curves on a log scale (the latency spectrum).

use super::*;

/// One model's latency and service-time spectra at one rate (its first
/// repeat with a spectrum), and whether any repeat was overloaded (the
/// server did not keep up) or sent late by the generator itself.
#[derive(Debug, Clone)]
pub(crate) struct SpectrumCurve {
    pub model: String,
    /// (percentile, latency ms).
    pub latency: Vec<(f64, f64)>,
    pub service: Vec<(f64, f64)>,
    pub samples: u64,
    pub overloaded: bool,
    pub generator_late: bool,
    pub timeouts: u64,
}

impl SpectrumCurve {
    pub(crate) fn of<'a>(model: &str, loads: impl Iterator<Item = &'a LoadFigures> + Clone) -> Option<Self> {
        let first = loads.clone().find(|l| !l.latency_spectrum_us.is_empty())?;
        let points = |v: &[SpectrumPoint]| v.iter().map(|p| (p.percentile, p.us as f64 / 1e3)).collect();
        Some(SpectrumCurve {
            model: model.to_string(),
            latency: points(&first.latency_spectrum_us),
            service: points(&first.service_time_spectrum_us),
            samples: first.requests.ok,
            overloaded: loads.clone().any(overloaded),
            generator_late: loads.clone().any(crate::run::scenarios::latency::generator_late),
            timeouts: loads.map(|l| l.requests.errors.timeout).sum(),
        })
    }
}

/// x of a percentile on the spectrum's axis: log10 of 1/(1-p), so 90, 99,
/// 99.9 and 99.99 are evenly spaced (HdrHistogram's percentile plots).
pub(crate) fn spectrum_x(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-4);
    -tail.log10()
}

/// A latency in ms with at most 3 significant digits: 0.05, 1.2, 350.
pub(crate) fn ms_label(v: f64) -> String {
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
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
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

pub(super) fn spectrum_chart<DB: DrawingBackend>(
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
        let mut label = if c.overloaded {
            format!("{} OVERLOADED ({} timeouts)", c.model, c.timeouts)
        } else {
            c.model.clone()
        };
        if c.generator_late {
            label += " (generator late)";
        }
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
    legend_box(&mut chart)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}
