//! The state heatmap: books before and after each recycle kind.

use super::*;

pub(super) struct StateCell {
    pub(super) model: String,
    pub(super) kind: String,
    pub(super) journal: bool,
    pub(super) before: u64,
    pub(super) after: u64,
}

pub(super) fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
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
pub(super) fn state_heatmap<DB: DrawingBackend>(
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
