//! Exports of a result set, one module per format: results.json (the raw
//! data), summary.csv, report.md and the charts.

pub(super) mod charts;
pub(super) mod csv;
pub(super) mod json;
pub(super) mod markdown;

use std::path::Path;

use super::claims::{ClaimRow, claims};
use super::results::Results;
use super::summary::{SummaryRow, summarize};

/// Writes summary.csv, report.md and charts/ from `results` into `dir`
/// (results.json is written by the run itself as it goes; it is rewritten
/// here only to hold the claims' verdicts).
pub(super) fn write_all(dir: &Path, results: &Results) -> anyhow::Result<(Vec<SummaryRow>, Vec<ClaimRow>)> {
    let rows = summarize(results);
    let claims = claims(results, &rows);
    let verdicts: Vec<_> = claims.iter().map(ClaimRow::to_json).collect();
    if results.claims != verdicts {
        let mut with = results.clone();
        with.claims = verdicts;
        json::write(dir, &with)?;
    }
    csv::write(&dir.join("summary.csv"), &rows)?;
    let charts = charts::write(&dir.join("charts"), results, &rows)?;
    let report = markdown::render(results, &rows, &claims, &charts);
    std::fs::write(dir.join("report.md"), report)?;
    Ok((rows, claims))
}
