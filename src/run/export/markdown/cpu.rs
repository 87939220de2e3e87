//! The CPU cost per request and per-hop cost sections.

use super::*;
use crate::run::summary::CpuSummary;
use hostlab_hosts::Model;

/// CPU cost per request by model and endpoint (throughput runs).
pub(super) fn cpu_cost(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.scenario == "throughput" && r.cpu.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## CPU cost per request\n");
    let _ = writeln!(
        out,
        "Every server process of the model over exactly the measured window (per-thread scheduler time), \
         by role, and the server cores' busy time from /proc/stat (which also counts kernel receive work \
         and anything else the cores ran). Idle: the same processes' CPU per second with no load, measured \
         before the runs and not subtracted. Capped: repeats in the CPU-capped group that were checked \
         server-bound (throttled, quota used, generator below its limit). × baseline: the processes' \
         median over the floor's (`baseline`, a bare hyper server, GET /ping only) for the same endpoint, \
         and the core busy time's ratio where both are known.\n"
    );
    let variants = crate::run::summary::variants_in_order(rows.iter().copied());
    for v in variants {
        let _ = writeln!(out, "### {v}\n");
        let _ = writeln!(
            out,
            "| model | processes µs/req (median) | min .. max | core busy µs/req | × baseline | by role µs/req | idle µs/s | steal % (max) | capped, server-bound |\n|---|---|---|---|---|---|---|---|---|"
        );
        let floor = rows
            .iter()
            .find(|r| r.variant == v && r.model == Model::Baseline.name())
            .and_then(|r| r.cpu.as_ref());
        for r in rows.iter().filter(|r| r.variant == v) {
            let Some(c) = &r.cpu else { continue };
            let roles = c
                .by_role
                .iter()
                .map(|(role, us)| format!("{role} {us:.1}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} .. {:.1} | {} | {} | {} | {:.0} | {:.1} | {} |",
                r.model,
                c.processes_us.median,
                c.processes_us.min,
                c.processes_us.max,
                if c.core_us.median.is_finite() {
                    format!("{:.1} ({:.1} .. {:.1})", c.core_us.median, c.core_us.min, c.core_us.max)
                } else {
                    "-".into()
                },
                floor.map_or_else(|| "-".to_string(), |f| over_floor(c, f)),
                roles,
                c.idle_us_per_s,
                c.steal_percent_max,
                if c.capped == 0 {
                    "uncapped".to_string()
                } else {
                    format!("{} of {}", c.server_bound, c.capped)
                },
            );
        }
        out.push('\n');
    }
    charts_of(out, charts, "cpu");
}

/// A model's CPU per request as a multiple of the floor's: the processes'
/// medians, and the core busy time's where both are known.
fn over_floor(c: &CpuSummary, floor: &CpuSummary) -> String {
    let ratio = |x: f64, f: f64| (x.is_finite() && f.is_finite() && f > 0.0).then(|| x / f);
    match (
        ratio(c.processes_us.median, floor.processes_us.median),
        ratio(c.core_us.median, floor.core_us.median),
    ) {
        (Some(p), Some(core)) => format!("{p:.2}x (core {core:.2}x)"),
        (Some(p), None) => format!("{p:.2}x"),
        _ => "-".into(),
    }
}

/// The hop cost per hosting path and endpoint, and the app cost 4.4x needs.
pub(super) fn hop_cost(out: &mut String, rows: &[SummaryRow]) {
    use hostlab_hosts::Model;
    // In-process hosting with no hop: the app's own cost C.
    let edge = Model::Edge.name();
    let cost = |model: &str, variant: &str| -> Option<(f64, bool)> {
        let r = rows
            .iter()
            .find(|r| r.scenario == "throughput" && r.model == model && r.variant == variant)?;
        let c = r.cpu.as_ref()?;
        Some(if c.core_is_clean(&r.entries) {
            (c.core_us.median, true)
        } else {
            (c.processes_us.median, false)
        })
    };
    let variants =
        crate::run::summary::variants_in_order(rows.iter().filter(|r| r.scenario == "throughput" && r.cpu.is_some()));
    // The paths with a hop: the models of more than one process, in report order.
    let paths: Vec<&str> = Model::top_level()
        .filter(|m| m.roles().len() > 1)
        .map(Model::name)
        .filter(|m| variants.iter().any(|v| cost(m, v).is_some()))
        .collect();
    if variants.iter().all(|v| cost(edge, v).is_none()) || paths.is_empty() {
        return;
    }
    let _ = writeln!(out, "## The gap as a function of the app's work\n");
    let _ = writeln!(
        out,
        "Hop cost Δ: a hosting path's CPU per request over edge's for the same endpoint (server core busy \
         time where the core ran little else, marked `core`, else the processes' sum, marked `proc`). \
         Edge's own cost stands for the app's work C. A path costs C + Δ per request where in-process \
         hosting costs about C, so it is 4.4x slower only when C = Δ / 3.4: the column `C for 4.4x` is that \
         app cost; `gap` is the measured cost(path) / cost(edge), which shrinks as the app's work grows.\n"
    );
    let mut header = String::from("| path |");
    let mut line = String::from("|---|");
    for v in &variants {
        let _ = write!(header, " {v}: Δ µs | C for 4.4x µs | gap |");
        line.push_str("---|---|---|");
    }
    let _ = writeln!(out, "{header}\n{line}");
    let _ = write!(out, "| edge (C) |");
    for v in &variants {
        match cost(edge, v) {
            Some((c, core)) => {
                let _ = write!(out, " C = {c:.1} {} | - | 1.00x |", if core { "core" } else { "proc" });
            }
            None => out.push_str(" - | - | - |"),
        }
    }
    out.push('\n');
    for p in paths {
        let _ = write!(out, "| {p} |");
        for v in &variants {
            match (cost(p, v), cost(edge, v)) {
                (Some((x, cx)), Some((e, ce))) => {
                    let delta = x - e;
                    let kind = if cx && ce { "core" } else { "proc" };
                    let _ = write!(out, " {delta:.1} {kind} | {:.1} | {:.2}x |", delta / 3.4, x / e);
                }
                _ => out.push_str(" - | - | - |"),
            }
        }
        out.push('\n');
    }
    out.push('\n');
}
