//! The CPU charts: cost per request, stacked by process role.

use super::*;
use hostlab_hosts::Role;

/// CPU cost per request: one stacked bar chart per endpoint, a bar per
/// model, a segment per role (median µs per request of each role).
pub(crate) fn cpu_charts(dir: &Path, rows: &[SummaryRow]) -> anyhow::Result<Vec<Chart>> {
    let mut charts = Vec::new();
    let variants =
        crate::run::summary::variants_in_order(rows.iter().filter(|r| r.scenario == "throughput" && r.cpu.is_some()));
    for v in variants {
        let bars: Vec<(String, Vec<(String, f64)>)> = rows
            .iter()
            .filter(|r| r.scenario == "throughput" && r.variant == v)
            .filter_map(|r| {
                let c = r.cpu.as_ref()?;
                let mut parts: Vec<(String, f64)> = Role::ALL
                    .iter()
                    .filter_map(|role| Some((role.to_string(), *c.by_role.get(role.name())?)))
                    .collect();
                parts.extend(
                    c.by_role
                        .iter()
                        .filter(|(role, _)| role_index(role).is_none())
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

/// The place of a `cpu.by_role` key in [`Role::ALL`] (`None`: `?`).
fn role_index(name: &str) -> Option<usize> {
    Role::ALL.iter().position(|r| r.name() == name)
}

pub(super) fn stacked_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    bars: &[(String, Vec<(String, f64)>)],
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let top = bars
        .iter()
        .map(|(_, parts)| parts.iter().map(|(_, v)| v).sum::<f64>())
        .fold(1.0, f64::max)
        * 1.2;
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = segment_chart(
        ChartBuilder::on(root)
            .caption(title, (FAMILY, 22))
            .y_label_area_size(80),
        &labels,
        top,
        "CPU µs per request",
        None,
    )?;
    let color_of = |role: &str| {
        let i = role_index(role).unwrap_or(Role::ALL.len());
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
            .draw_series(std::iter::once(label_above(
                format!("{base:.1}"),
                (SegmentValue::CenterOf(i), base + top * 0.03),
            )))
            .map_err(err)?;
    }
    legend_box(&mut chart).draw().map_err(err)?;
    Ok(())
}
