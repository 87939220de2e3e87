//! Result files of `hostlab load`: the JSON document (`--json`) and the
//! per-interval timeline CSV (`--timeline`). Columns are documented in
//! docs/load.md.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::collector::TimelineRow;
use super::report::LoadReport;
use super::stats::Outcome;

pub(super) fn write_json(path: &Path, report: &LoadReport) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub(super) fn write_timeline(path: &Path, rows: &[TimelineRow]) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    timeline_csv(&mut out, rows)
        .and_then(|()| out.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The timeline as CSV: a header line, then one line per interval.
pub(super) fn timeline_csv(out: &mut impl Write, rows: &[TimelineRow]) -> io::Result<()> {
    let outcomes = Outcome::ALL.map(Outcome::name).join(",");
    writeln!(
        out,
        "t_ms,duration_ms,phase,{outcomes},ok_per_sec,latency_p50_us,latency_p99_us,\
         latency_max_us,service_time_p50_us,service_time_p99_us,service_time_max_us,\
         max_send_lag_us,cpu_percent"
    )?;
    for r in rows {
        let counts = Outcome::ALL.map(|o| r.counts.get(o).to_string()).join(",");
        let ok_per_sec = if r.duration_ms > 0 {
            r.counts.ok() as f64 * 1000.0 / r.duration_ms as f64
        } else {
            0.0
        };
        writeln!(
            out,
            "{},{},{},{counts},{ok_per_sec:.1},{},{},{},{},{},{},{},{:.1}",
            r.t_ms,
            r.duration_ms,
            r.phase.name(),
            r.latency_us.p50,
            r.latency_us.p99,
            r.latency_us.max,
            r.service_time_us.p50,
            r.service_time_us.p99,
            r.service_time_us.max,
            r.max_send_lag_us,
            r.cpu_percent,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::collector::Phase;
    use crate::load::stats::{LatencySummary, OutcomeCounts};

    #[test]
    fn csv_columns_match_the_header() {
        let mut counts = OutcomeCounts::default();
        counts.add(Outcome::Ok);
        counts.add(Outcome::Timeout);
        let row = TimelineRow {
            t_ms: 100,
            duration_ms: 100,
            phase: Phase::Measure,
            counts,
            latency_us: LatencySummary {
                p50: 7,
                ..LatencySummary::default()
            },
            service_time_us: LatencySummary::default(),
            max_send_lag_us: 3,
            cpu_percent: 12.34,
            latency_buckets: None,
        };
        let mut out = Vec::new();
        timeline_csv(&mut out, &[row]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
        assert!(lines[0].starts_with("t_ms,duration_ms,phase,ok,4xx,5xx,refused,reset,timeout,io,"));
        assert_eq!(lines[1], "100,100,measure,1,0,0,0,0,1,0,10.0,7,0,0,0,0,0,3,12.3");
    }
}
