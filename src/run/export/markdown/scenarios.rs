//! The cold start, routing, cross-check and soak sections.

use super::*;

pub(super) fn coldstart(out: &mut String, rows: &[SummaryRow]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "coldstart").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Cold start\n\n| model | variant | process start-to-ready ms | first request ms (median, min .. max) | first status | app start-to-ready ms | second request ms |\n|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let cs: Vec<_> = r.entries.iter().filter_map(|e| e.coldstart.as_ref()).collect();
        let sp = |v: Vec<f64>| Spread::of(&v);
        let startup = sp(r.entries.iter().filter_map(|e| e.startup_ms).collect());
        let first = sp(cs.iter().map(|c| c.first_request_ms).collect());
        let app = sp(cs.iter().filter_map(|c| c.app_start_to_ready_ms).collect());
        let second = sp(cs.iter().map(|c| c.second_request_ms).collect());
        let f = |s: Option<Spread>| s.map_or("-".into(), |s| format!("{:.1}", s.median));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            r.variant,
            f(startup),
            first.map_or("-".into(), |s| format!(
                "{:.1} ({:.1} .. {:.1})",
                s.median, s.min, s.max
            )),
            cs.first().map_or("-".into(), |c| c.first_status.to_string()),
            f(app),
            f(second)
        );
    }
    out.push('\n');
}

pub(super) fn routing(out: &mut String, rows: &[SummaryRow]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "routing").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Routing: pool against actor per task\n\n| model | routing | tasks (distinct ids) | ok | tasks/s | live actors | RSS before MiB | RSS after MiB |\n|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        for e in &r.entries {
            let Some(x) = &e.routing else { continue };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {} | {} | {} |",
                r.model,
                x.routing,
                x.distinct_ids,
                x.tasks_ok,
                x.tasks_per_sec,
                x.live_actors,
                mib_text(x.rss_before_bytes),
                mib_text(x.rss_after_bytes)
            );
        }
    }
    out.push('\n');
}

pub(super) fn crosscheck(out: &mut String, rows: &[SummaryRow]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "crosscheck").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Cross-check: edge GET /ping by other tools\n\nGenerator CPU per request: the tools' from getrusage of the child, \
         hostlab's from its own process over the measured phase; same CPUs.\n\n\
         | tool | command | req/s | hostlab load / tool | generator CPU us per request |\n|---|---|---|---|---|"
    );
    for r in rows {
        for e in &r.entries {
            if let Some(c) = &e.crosscheck {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {:.0} | {:.2} | {} |",
                    c.tool_version,
                    c.command,
                    c.requests_per_sec,
                    c.hostlab_over_tool,
                    c.cpu_us_per_request.map_or("-".into(), |v| format!("{v:.2}"))
                );
            } else if let Some(l) = &e.load {
                let _ = writeln!(
                    out,
                    "| hostlab load | closed loop, {} connections | {:.0} | 1.00 | {:.2} |",
                    l.connections, l.requests_per_sec, l.generator_cpu_us_per_request
                );
            }
        }
    }
    out.push('\n');
}

pub(super) fn soak(out: &mut String, results: &Results, rows: &[SummaryRow]) {
    let soaks: Vec<_> = rows
        .iter()
        .filter(|r| r.scenario == "soak")
        .flat_map(|r| r.entries.iter())
        .filter_map(|e| Some((e, e.soak.as_ref()?)))
        .collect();
    let wanted = crate::run::scenarios::soak::wanted(&results.settings.models);
    if soaks.is_empty() {
        if results.settings.scenarios.iter().any(|s| s == "soak") && !wanted.is_empty() {
            let (word, why) = crate::run::scenarios::soak::overall_verdict(&wanted, &[]);
            let _ = writeln!(out, "## Soak\n\nSoak verdict: **{word}** ({why}).\n");
        }
        return;
    }
    let _ = writeln!(
        out,
        "## Soak: overlapped recycles under load\n\n\
         Each model at half its own measured capacity for the request, an overlapped recycle every \
         {}; RSS is the total of every process of the model (front, app or worker, actor service), \
         sampled before each recycle and after the load. Pass: 0 failed requests and RSS growth \
         <= {:.0} %.\n\n\
         | model | request | capacity req/s | rate req/s | duration s | recycles | failed (by class) | p99 ms | max ms | RSS start MiB | RSS end MiB | growth | verdict |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|",
        humantime::format_duration(Duration::from_millis((soaks[0].1.recycle_every_s * 1e3) as u64)),
        soaks[0].1.rss_growth_limit_percent
    );
    for (e, k) in &soaks {
        let (p99, max) = e.load.as_ref().map_or(("-".into(), "-".into()), |l| {
            (ms(l.latency_us.p99 as f64), ms(l.latency_us.max as f64))
        });
        let _ = writeln!(
            out,
            "| {} | {} | {:.0}{} | {:.0} | {:.0} | {} | {} ({}) | {} | {} | {} | {} | {} % | **{}** |",
            e.model,
            e.variant,
            k.capacity_per_sec,
            if k.capacity_generator_limited { "*" } else { "" },
            k.rate_per_sec,
            k.duration_s,
            k.recycles,
            k.failed.total(),
            k.failed.describe(),
            p99,
            max,
            mib_text(k.rss_start_bytes),
            mib_text(k.rss_end_bytes),
            k.rss_growth_percent.map_or("-".into(), |g| format!("{g:+.1}")),
            k.verdict
        );
    }
    if soaks.iter().any(|(_, k)| k.capacity_generator_limited) {
        let _ = writeln!(
            out,
            "\n\\* the load generator was the limit of the capacity probe: the model's capacity is higher, \
             so its soak ran below half of it."
        );
    }
    // Every model that should have soaked counts: one without an entry fails it.
    let each: Vec<(String, bool, String)> = soaks
        .iter()
        .map(|(e, k)| (e.model.clone(), k.pass, k.verdict.clone()))
        .collect();
    let (word, why) = crate::run::scenarios::soak::overall_verdict(&wanted, &each);
    let _ = writeln!(out, "\nSoak verdict: **{word}** ({why}).\n");
}
