//! summary.csv: one row per model x scenario x variant, medians with min
//! and max over repeats.

use std::path::Path;

use crate::run::summary::SummaryRow;

pub(crate) const HEADER: [&str; 25] = [
    "scenario",
    "model",
    "variant",
    "repeats",
    "requests_per_sec_median",
    "requests_per_sec_min",
    "requests_per_sec_max",
    "ratio_to_edge",
    "p50_us",
    "p99_us",
    "p99_9_us",
    "max_us",
    "errors",
    "generator_limited",
    "noisy",
    "server_cpu_percent",
    "server_rss_bytes",
    "startup_ms",
    "detail",
    "cpu_us_per_request",
    "core_busy_us_per_request",
    "cpu_us_by_role",
    "idle_us_per_s",
    "steal_percent_max",
    "capped_server_bound",
];

pub(crate) fn write(path: &Path, rows: &[SummaryRow]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(HEADER)?;
    let f = |x: Option<f64>, digits: usize| x.map_or(String::new(), |v| format!("{v:.digits$}"));
    for r in rows {
        // Medians over the repeats, as report.md prints them.
        let cpu = crate::run::summary::server_cpu_percent(r).map(|s| s.median);
        let rss = crate::run::summary::server_rss_bytes(r).map(|s| s.median as u64);
        let startup = crate::run::summary::startup_ms(r).map(|s| s.median);
        w.write_record([
            r.scenario.clone(),
            r.model.clone(),
            r.variant.clone(),
            r.repeats.to_string(),
            f(r.rps.map(|s| s.median), 1),
            f(r.rps.map(|s| s.min), 1),
            f(r.rps.map(|s| s.max), 1),
            f(r.ratio_to_edge, 3),
            f(r.p50_us.map(|s| s.median), 0),
            f(r.p99_us.map(|s| s.median), 0),
            f(r.p99_9_us.map(|s| s.median), 0),
            f(r.max_us.map(|s| s.median), 0),
            r.errors.to_string(),
            r.generator_limited.to_string(),
            r.noisy().to_string(),
            f(cpu, 1),
            rss.map_or(String::new(), |v| v.to_string()),
            f(startup, 1),
            r.detail.clone(),
            f(r.cpu.as_ref().map(|c| c.processes_us.median), 2),
            f(r.cpu.as_ref().map(|c| c.core_us.median).filter(|x| x.is_finite()), 2),
            r.cpu.as_ref().map_or(String::new(), |c| {
                c.by_role
                    .iter()
                    .map(|(role, us)| format!("{role}={us:.2}"))
                    .collect::<Vec<_>>()
                    .join(";")
            }),
            f(r.cpu.as_ref().map(|c| c.idle_us_per_s), 0),
            f(r.cpu.as_ref().map(|c| c.steal_percent_max), 2),
            r.cpu
                .as_ref()
                .filter(|c| c.capped > 0)
                .map_or(String::new(), |c| format!("{}/{}", c.server_bound, c.capped)),
        ])?;
    }
    w.flush()?;
    Ok(())
}
