//! report.md: the run's environment, warnings, the claims table, and one
//! table per scenario (medians with min/max, ratios to edge), with the
//! charts embedded.

use std::fmt::Write;
use std::time::Duration;

use super::charts::Chart;
use crate::run::claims::ClaimRow;
use crate::run::results::Results;
use crate::run::stats::Spread;
use crate::run::summary::{RecycleSpread, SummaryRow, mib_text, range_text};

mod cpu;
mod link;
mod load;
mod matrix;
mod multihost;
mod recycle;
mod scenarios;
mod state;
mod tradeoff;
use cpu::*;
use link::*;
use load::*;
pub(crate) use matrix::*;
use multihost::*;
pub(crate) use recycle::*;
use scenarios::*;
use state::*;
use tradeoff::*;

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1e3)
}

fn spread_rps(s: Option<Spread>) -> (String, String) {
    match s {
        Some(s) => (format!("{:.0}", s.median), format!("{:.0} .. {:.0}", s.min, s.max)),
        None => ("-".into(), "-".into()),
    }
}

fn charts_of(out: &mut String, charts: &[Chart], kind: &str) {
    for c in charts.iter().filter(|c| c.kind == kind) {
        let _ = writeln!(out, "![{}](charts/{}.svg)\n", c.title, c.stem);
    }
}

/// The whole report.
pub(crate) fn render(results: &Results, rows: &[SummaryRow], claims: &[ClaimRow], charts: &[Chart]) -> String {
    let mut out = String::new();
    let env = &results.environment;
    let s = &results.settings;
    let _ = writeln!(out, "# hostlab results\n");
    decision_matrix(&mut out, results, rows);
    let _ = writeln!(out, "## Claims\n");
    let _ = writeln!(
        out,
        "Verdicts are computed from the measurements by the rules in docs/run.md. Ratios read \
         `median (low-high)`; the method column names how they were measured and which interval they carry.\n"
    );
    let _ = writeln!(
        out,
        "| # | claim | source | measured here | verdict | method | why |\n|---|---|---|---|---|---|---|"
    );
    for c in claims {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | **{}** | {} | {} |",
            c.id,
            c.claim,
            c.source,
            c.measured,
            c.verdict.text(),
            if c.method.is_empty() { "-" } else { &c.method },
            c.reason
        );
    }
    out.push('\n');
    let _ = writeln!(out, "## Where and how\n");
    let _ = writeln!(
        out,
        "- started: {} (UTC), {:.0} s{}\n- command: `{}`\n- hostlab {} at commit `{}`{}; {}\n- CPU: {} ({} online); kernel {}\n\
         - pinning: load generator on CPUs {:?}, every server process of a model on CPUs {:?}\n\
         - settings: closed loop {} s after {} s warm-up, {} connections, {} repeat(s); recycle runs {} s each with the event at {:.2} s \
         (levels and controls in the recycle section); latency runs {} s at {:?} of each model's own capacity and one common rate\n",
        env.started_utc,
        env.elapsed_s,
        if results.finished {
            ""
        } else {
            " - **unfinished: the run stopped part-way**"
        },
        env.command_line.join(" "),
        env.hostlab_version,
        env.git_commit.as_deref().unwrap_or("unknown"),
        match env.git_dirty {
            Some(true) => " (dirty: built with uncommitted changes)",
            Some(false) => " (clean)",
            None => " (dirty: unknown)",
        },
        env.rustc.as_deref().unwrap_or("rustc unknown"),
        env.cpu_model,
        env.cores,
        env.kernel,
        env.client_cpus,
        env.server_cpus,
        s.duration_s,
        s.warmup_s,
        s.connections,
        s.repeats,
        s.recycle_duration_s,
        s.recycle_at_s,
        s.latency_duration_s,
        s.latency_fractions
    );
    let _ = writeln!(
        out,
        "- server-bound mode: {}\n",
        match s.server_cpu_quota {
            Some(f) => format!(
                "throughput runs capped at {f} cores per model (a control group, 10 ms period), chosen so that \
                 the fastest model leaves the one generator core clearly below its limit"
            ),
            None => "off (uncapped throughput runs; the claim ratios use the CPU cost per request)".into(),
        }
    );
    provenance(&mut out, env);
    warnings(&mut out, results, rows);
    throughput(&mut out, rows, charts);
    cpu_cost(&mut out, rows, charts);
    hop_cost(&mut out, rows);
    link(&mut out, rows);
    latency(&mut out, rows, charts);
    recycle(&mut out, rows, charts);
    tradeoff(&mut out, results);
    state(&mut out, rows, charts);
    inflight(&mut out, results);
    recovery(&mut out, results);
    coldstart(&mut out, rows);
    routing(&mut out, rows);
    crosscheck(&mut out, rows);
    soak(&mut out, results, rows);
    multihost(&mut out, results);
    if !results.skipped.is_empty() {
        let _ = writeln!(out, "## Not measured\n");
        for k in &results.skipped {
            let what = match (&k.model, &k.scenario) {
                (Some(m), Some(s)) => format!("{m} in {s}"),
                (Some(m), None) => m.clone(),
                (None, Some(s)) => s.clone(),
                (None, None) => "-".into(),
            };
            let _ = writeln!(out, "- {what}: {}", k.reason);
        }
        out.push('\n');
    }
    out
}

fn warnings(out: &mut String, results: &Results, rows: &[SummaryRow]) {
    let mut w: Vec<String> = results.notes.clone();
    for r in rows {
        if r.generator_limited {
            w.push(format!(
                "{} / {} / {}: the load generator was busy enough to have been the limit; the figure is a lower bound",
                r.scenario, r.model, r.variant
            ));
        }
        if r.noisy() {
            let s = r.rps.expect("noisy rows have req/s");
            w.push(format!(
                "{} / {} / {}: noisy, repeats ranged {:.0}% of the median ({:.0} .. {:.0} req/s)",
                r.scenario,
                r.model,
                r.variant,
                s.relative_range() * 100.0,
                s.min,
                s.max
            ));
        }
        if r.scenario == "latency" {
            w.extend(late_sends(r));
        }
    }
    if !w.is_empty() {
        let _ = writeln!(out, "## Warnings\n");
        for line in w {
            let _ = writeln!(out, "- {line}");
        }
        out.push('\n');
    }
}

fn server_cpu(r: &SummaryRow) -> String {
    let cpus: Vec<f64> = r
        .entries
        .iter()
        .map(|e| e.processes.iter().map(|p| p.cpu_percent).sum())
        .collect();
    Spread::of(&cpus)
        .filter(|_| r.entries.iter().any(|e| !e.processes.is_empty()))
        .map_or("-".into(), |s| format!("{:.0}", s.median))
}
