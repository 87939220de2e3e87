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

/// One Warnings line for a latency row whose repeats sent late, instead of
/// one per repeat: how many repeats were late and, per late repeat in
/// order, every figure the load report's late-send warning gave (send lag
/// p99 and max, the latency p50 the 10% bound is taken of, and the lag's
/// split into connection wait and the generator's own), with the
/// explanation once. `None` when no repeat sent late.
pub(super) fn late_sends(r: &SummaryRow) -> Option<String> {
    let (repeats, late): (Vec<String>, Vec<&crate::run::results::LoadFigures>) = r
        .entries
        .iter()
        .filter_map(|e| Some((e.repeat.to_string(), e.load.as_ref()?)))
        .filter(|(_, l)| l.warnings.iter().any(|m| m.contains("sent late")))
        .unzip();
    if late.is_empty() {
        return None;
    }
    let list = |f: &dyn Fn(&crate::run::results::LoadFigures) -> Option<u64>| {
        late.iter()
            .map(|l| f(l).map_or("-".into(), |v| v.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let thresholds = late
        .iter()
        .map(|l| format!("{:.1}", crate::load::LATE_SEND_SHARE_OF_P50 * l.latency_us.p50 as f64))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "latency / {} / {}: requests were sent late in {} of {} repeats (repeat {}: send lag p99 {} us, \
         max {} us, over {:.0}% of the latency p50 {} us, i.e. over {} us): the fixed schedule was not kept; \
         latency still counts from the scheduled start. Of the lag, waiting for an idle connection (p99 {} us) \
         is the server's: it stalled or was overloaded, or the connections were too few for rate x latency; the \
         rest (p99 {} us) is the generator's own: its timer woke late or it lacked CPU",
        r.model,
        r.variant,
        late.len(),
        r.entries.iter().filter(|e| e.load.is_some()).count(),
        repeats.join(", "),
        list(&|l| Some(l.generator_send_lag_p99_us)),
        list(&|l| Some(l.generator_max_send_lag_us)),
        crate::load::LATE_SEND_SHARE_OF_P50 * 100.0,
        list(&|l| Some(l.latency_us.p50)),
        thresholds,
        list(&|l| l.generator_connection_wait_p99_us),
        list(&|l| l.generator_own_lag_p99_us),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::results::{Entry, LoadFigures};

    fn repeat(n: u32, lag_p99: u64, max: u64, p50: u64, wait: u64, own: u64, late: bool) -> Entry {
        let mut l = LoadFigures {
            rate_per_sec: Some(1000.0),
            generator_send_lag_p99_us: lag_p99,
            generator_max_send_lag_us: max,
            generator_connection_wait_p99_us: Some(wait),
            generator_own_lag_p99_us: Some(own),
            ..LoadFigures::default()
        };
        l.latency_us.p50 = p50;
        if late {
            l.warnings.push("requests were sent late (...)".into());
        }
        Entry {
            model: "edge".into(),
            scenario: "latency".into(),
            variant: "50% of capacity".into(),
            repeat: n,
            load: Some(l),
            ..Entry::default()
        }
    }

    #[test]
    fn late_repeats_make_one_line_with_every_figure() {
        let results = crate::run::test_support::results(vec![
            repeat(1, 12, 317, 43, 0, 12, true),
            repeat(2, 3, 90, 45, 0, 3, false),
            repeat(3, 30, 2185, 47, 1, 29, true),
        ]);
        let rows = crate::run::summary::summarize(&results);
        let line = late_sends(&rows[0]).unwrap();
        assert!(
            line.starts_with(
                "latency / edge / 50% of capacity: requests were sent late in 2 of 3 repeats (repeat 1, 3:"
            )
        );
        for part in [
            "send lag p99 12, 30 us",
            "max 317, 2185 us",
            "latency p50 43, 47 us, i.e. over 4.3, 4.7 us",
            "(p99 0, 1 us)",
            "rest (p99 12, 29 us)",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line}");
        }
        let kept = crate::run::test_support::results(vec![repeat(1, 3, 90, 45, 0, 3, false)]);
        assert_eq!(late_sends(&crate::run::summary::summarize(&kept)[0]), None);
    }
}
