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
    use crate::run::scenarios::latency::{generator_late, overloaded};
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "latency").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Latency (open loop, from each request's scheduled start)\n\n\
         Each model runs at fractions of its own `GET /ping` capacity and at one common rate below every \
         model's capacity; only requests scheduled inside the measured window count, so the achieved rate \
         never exceeds the offered one. A request's send lag (actual send minus scheduled start) has two \
         parts: the wait for an idle connection, when every connection held an unanswered request (the \
         server's share), and the rest, the generator's own (its timer woke late, or it lacked CPU). A row \
         is **overloaded** when the server did not keep up: requests failed, or the connection wait's p99 \
         is over 10% of the latency p50 (its latency is then queueing, not service). It is **generator \
         late** when the generator's own lag p99 is over 10% of the latency p50: part of its latency is \
         then the generator's. `conns` is the run's connection count: rate x 20 ms (in steps of 64 from \
         64 to 1024: enough to cover a 20 ms stall of a CPU-capped server), but at most the capacity run's \
         connections plus those the rate keeps busy at the capacity run's latency, so that a server never \
         meets many more connections than its capacity was measured with.\n\n\
         | rate | model | offered req/s | achieved req/s | conns | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | service p50 ms | send lag p99 us | conn. wait p99 us | generator lag p99 us | errors (timeouts) | state |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
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
        let state = match (
            open,
            loads.iter().any(|l| overloaded(l)),
            loads.iter().any(|l| generator_late(l)),
        ) {
            (false, _, _) => "closed loop",
            (true, true, true) => "**overloaded**, generator late",
            (true, true, false) => "**overloaded**",
            (true, false, true) => "generator late",
            (true, false, false) => "kept",
        };
        let lag = |f: &dyn Fn(&crate::run::results::LoadFigures) -> Option<u64>| {
            let values: Vec<f64> = loads.iter().filter_map(|l| f(l)).map(|v| v as f64).collect();
            Spread::of(&values).map_or("-".into(), |s| format!("{:.0}", s.median))
        };
        let timeouts: u64 = loads.iter().map(|l| l.requests.errors.timeout).sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({timeouts}) | {state} |",
            r.variant,
            r.model,
            if open {
                median(&|x| x.rate_per_sec.unwrap_or(0.0)).map_or("-".into(), |v| format!("{v:.0}"))
            } else {
                "-".into()
            },
            spread_rps(r.rps).0,
            median(&|x| x.connections as f64).map_or("-".into(), |v| format!("{v:.0}")),
            l(&|x| x.p50),
            l(&|x| x.p90),
            l(&|x| x.p99),
            l(&|x| x.p99_9),
            l(&|x| x.max),
            median(&|x| x.service_time_us.p50 as f64).map_or("-".into(), ms),
            median(&|x| x.generator_send_lag_p99_us as f64).map_or("-".into(), |v| format!("{v:.0}")),
            lag(&|x| x.generator_connection_wait_p99_us),
            lag(&|x| x.generator_own_lag_p99_us),
            r.errors
        );
    }
    out.push('\n');
    charts_of(out, charts, "latency");
}
