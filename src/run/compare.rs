//! `hostlab compare A B`: per-metric ratios (B over A) between two result
//! sets, flagging changes beyond run-to-run noise (`stats::changed_beyond_noise`).

use std::fmt::Write;
use std::path::Path;

use super::export::json;
use super::stats::{Spread, changed_beyond_noise};
use super::summary::{SummaryRow, summarize};

/// One compared metric.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Change {
    pub scenario: String,
    pub model: String,
    pub variant: String,
    pub metric: &'static str,
    pub a: f64,
    pub b: f64,
    /// b / a.
    pub ratio: f64,
    pub beyond_noise: bool,
}

/// Metrics of rows present in both sets, in A's order.
pub(super) fn compare(a: &[SummaryRow], b: &[SummaryRow]) -> Vec<Change> {
    let mut out = Vec::new();
    for ra in a {
        let Some(rb) = b
            .iter()
            .find(|r| r.scenario == ra.scenario && r.model == ra.model && r.variant == ra.variant)
        else {
            continue;
        };
        let metrics: [(&'static str, Option<Spread>, Option<Spread>); 3] = [
            ("req/s", ra.rps, rb.rps),
            ("p50 us", ra.p50_us, rb.p50_us),
            ("p99 us", ra.p99_us, rb.p99_us),
        ];
        for (metric, sa, sb) in metrics {
            let (Some(sa), Some(sb)) = (sa, sb) else { continue };
            if sa.median == 0.0 {
                continue;
            }
            out.push(Change {
                scenario: ra.scenario.clone(),
                model: ra.model.clone(),
                variant: ra.variant.clone(),
                metric,
                a: sa.median,
                b: sb.median,
                ratio: sb.median / sa.median,
                beyond_noise: changed_beyond_noise(&sa, &sb),
            });
        }
    }
    out
}

pub(super) fn render(a_name: &str, b_name: &str, changes: &[Change]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A = {a_name}\nB = {b_name}\n");
    let _ = writeln!(
        out,
        "{:<11} {:<10} {:<28} {:<7} {:>12} {:>12} {:>7}  change",
        "scenario", "model", "variant", "metric", "A", "B", "B/A"
    );
    for c in changes {
        let _ = writeln!(
            out,
            "{:<11} {:<10} {:<28} {:<7} {:>12.0} {:>12.0} {:>6.2}x  {}",
            c.scenario,
            c.model,
            c.variant,
            c.metric,
            c.a,
            c.b,
            c.ratio,
            if c.beyond_noise { "beyond noise" } else { "within noise" }
        );
    }
    let flagged = changes.iter().filter(|c| c.beyond_noise).count();
    let _ = writeln!(
        out,
        "\n{flagged} of {} metrics changed beyond run-to-run noise (outside the min-max range of both runs, at least +-5%)",
        changes.len()
    );
    out
}

pub fn main(a: &Path, b: &Path) -> anyhow::Result<()> {
    let ra = summarize(&json::read(a)?);
    let rb = summarize(&json::read(b)?);
    let changes = compare(&ra, &rb);
    if changes.is_empty() {
        anyhow::bail!(
            "{} and {} have no measurement in common to compare",
            a.display(),
            b.display()
        );
    }
    print!(
        "{}",
        render(&a.display().to_string(), &b.display().to_string(), &changes)
    );
    Ok(())
}
