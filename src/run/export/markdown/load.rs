//! The throughput and latency sections.

use super::*;

pub(super) fn throughput(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "throughput").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Throughput (closed loop)\n");
    let variants = crate::run::summary::variants_in_order(rows.iter().copied());
    for v in variants {
        let _ = writeln!(out, "### {v}\n");
        let _ = writeln!(
            out,
            "| model | req/s (median) | min .. max | x edge | p50 ms | p99 ms | errors | server CPU % | generator CPU % |\n|---|---|---|---|---|---|---|---|---|"
        );
        for r in rows.iter().filter(|r| r.variant == v) {
            let (median, range) = spread_rps(r.rps);
            let gen_cpu = Spread::of(
                &r.entries
                    .iter()
                    .filter_map(|e| Some(e.load.as_ref()?.generator_cpu_percent))
                    .collect::<Vec<_>>(),
            );
            let _ = writeln!(
                out,
                "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
                r.model,
                median,
                if r.generator_limited {
                    " (generator-limited)"
                } else {
                    ""
                },
                range,
                r.ratio_to_edge.map_or("-".into(), |x| format!("{x:.2}")),
                r.p50_us.map_or("-".into(), |s| ms(s.median)),
                r.p99_us.map_or("-".into(), |s| ms(s.median)),
                r.errors,
                server_cpu(r),
                gen_cpu.map_or("-".into(), |s| format!("{:.0}", s.median)),
            );
        }
        out.push('\n');
    }
    charts_of(out, charts, "throughput");
}

pub(super) fn latency(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    use crate::run::scenarios::latency::overloaded;
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "latency").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Latency (open loop, from each request's scheduled start)\n\n\
         Each model runs at fractions of its own `GET /ping` capacity and at one common rate below every \
         model's capacity; only requests scheduled inside the measured window count, so the achieved rate \
         never exceeds the offered one. A row is **overloaded** when its schedule was not kept (send-lag \
         p99 over 10% of the latency p50) or requests failed: its latency is queueing, not service.\n\n\
         | rate | model | offered req/s | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p50 ms | send lag p99 us | errors (timeouts) | state |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let loads: Vec<&crate::run::results::LoadFigures> = r.entries.iter().filter_map(|e| e.load.as_ref()).collect();
        let median = |f: &dyn Fn(&crate::run::results::LoadFigures) -> f64| {
            Spread::of(&loads.iter().map(|l| f(l)).collect::<Vec<_>>()).map(|s| s.median)
        };
        let l = |f: &dyn Fn(&crate::run::results::Latency) -> u64| {
            median(&|x| f(&x.latency_us) as f64).map_or("-".into(), ms)
        };
        let open = loads.iter().any(|l| l.rate_per_sec.is_some());
        let state = if !open {
            "closed loop"
        } else if loads.iter().any(|l| overloaded(l)) {
            "**overloaded**"
        } else {
            "kept"
        };
        let timeouts: u64 = loads.iter().map(|l| l.requests.errors.timeout).sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({timeouts}) | {state} |",
            r.variant,
            r.model,
            if open {
                median(&|x| x.rate_per_sec.unwrap_or(0.0)).map_or("-".into(), |v| format!("{v:.0}"))
            } else {
                "-".into()
            },
            spread_rps(r.rps).0,
            l(&|x| x.p50),
            l(&|x| x.p90),
            l(&|x| x.p99),
            l(&|x| x.p99_9),
            l(&|x| x.max),
            median(&|x| x.service_time_us.p50 as f64).map_or("-".into(), ms),
            median(&|x| x.generator_send_lag_p99_us as f64).map_or("-".into(), |v| format!("{v:.0}")),
            r.errors
        );
    }
    out.push('\n');
    charts_of(out, charts, "latency");
}
