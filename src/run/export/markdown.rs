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
pub fn render(results: &Results, rows: &[SummaryRow], claims: &[ClaimRow], charts: &[Chart]) -> String {
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
    state(&mut out, rows, charts);
    recovery(&mut out, results);
    coldstart(&mut out, rows);
    routing(&mut out, rows);
    crosscheck(&mut out, rows);
    soak(&mut out, results, rows);
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
            for e in &r.entries {
                for msg in e.load.iter().flat_map(|l| l.warnings.iter()) {
                    if msg.contains("sent late") {
                        w.push(format!("latency / {} / {}: {msg}", r.model, r.variant));
                    }
                }
            }
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

fn throughput(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "throughput").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Throughput (closed loop)\n");
    let mut variants: Vec<&str> = Vec::new();
    for r in &rows {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
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

fn latency(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
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

/// The recycle figures, each kind next to its level's control: medians
/// over the repeats with their range, then the manager's own timings.
fn recycle(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.recycle.is_some()).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Recycle under fixed-rate load\n\n\
         Levels: `50%` is half of the model's own GET /ping capacity (this run's closed-loop median, \
         or a short probe), `light` is {} req/s. Each kind runs next to a **control**: the same load on a \
         fresh server with no event, its windows at the event's time. Figures are medians over the \
         repeats, (min..max) when they differ; method in docs/run.md \"Recycle\".\n\n\
         - **failed**: requests that failed from the event to the end of the run, by class in the second table;\n\
         - **delayed**: a lower bound on successful requests slower than the control's p99.9 (from each \
         100 ms interval's quantiles);\n\
         - **downtime**: the longest span, from the event on, in which no scheduled request completed \
         successfully (100 ms resolution);\n\
         - **window p99**: the worst 100 ms p99 in [event, event + 1 s].\n\n\
         Idle kinds: the app went idle first; the event is the first request after it (t = 0).\n",
        rows.iter()
            .filter_map(|r| r.entries.first()?.recycle.as_ref())
            .find(|r| r.level == crate::run::scenarios::recycle::LIGHT)
            .map_or("1,000".into(), |r| thousands(r.rate_per_sec))
    );
    let _ = writeln!(
        out,
        "| model | level (req/s) | kind | repeats | failed | control | delayed | control | downtime ms | control | window p99 ms | control |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        let Some(k) = &r.recycle else { continue };
        if k.control {
            continue;
        }
        let control = control_of(&rows, &r.model, &k.level);
        let c = |f: &dyn Fn(&RecycleSpread) -> String| control.map_or("-".to_string(), f);
        let rate = r
            .entries
            .first()
            .and_then(|e| e.recycle.as_ref())
            .map_or(0.0, |x| x.rate_per_sec);
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            k.level,
            thousands(rate),
            k.kind,
            r.repeats,
            range_text(&k.failed, 0, 1.0),
            c(&|c| range_text(&c.failed, 0, 1.0)),
            delayed_text(k),
            c(&delayed_text),
            range_text(&k.downtime_ms, 0, 1.0),
            c(&|c| range_text(&c.downtime_ms, 0, 1.0)),
            range_text(&k.window_p99_us, 1, 1e3),
            c(&|c| range_text(&c.window_p99_us, 1, 1e3)),
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "Each run: failures by class in [event, event + 1 s] and to the end of the run, and the manager's own \
         timings (what the manager saw, not what clients saw; `held` is counted by the proxy front only).\n\n\
         | model | variant | repeat | event ms | failed in 1 s | failed to the end | delayed in 1 s / to the end | \
         manager: start-to-ready / warm-up / drain / unavailable / total ms | held |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        for e in &r.entries {
            let Some(rc) = &e.recycle else { continue };
            let w = |w: Option<crate::run::results::WindowMetrics>| {
                w.map_or("-".into(), |w| {
                    format!("{} ({})", w.failed.total(), w.failed.describe())
                })
            };
            let d = |w: Option<crate::run::results::WindowMetrics>| {
                w.and_then(|w| w.delayed_at_least)
                    .map_or("-".into(), |d| format!(">= {d}"))
            };
            let o = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
            let (manager, held) = rc.manager.map_or(("-".into(), "-".into()), |m| {
                (
                    format!(
                        "{} / {} / {} / {} / {}",
                        o(m.start_to_ready_ms),
                        o(m.warmup_ms),
                        o(m.drain_ms),
                        o(m.manager_unavailable_ms),
                        o(m.total_ms)
                    ),
                    if r.model == "proxy" {
                        o(m.held_requests)
                    } else {
                        "-".into()
                    },
                )
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
                r.model,
                r.variant,
                e.repeat,
                rc.event_ms,
                w(rc.window_1s),
                w(rc.drain),
                d(rc.window_1s),
                d(rc.drain),
                manager,
                held
            );
        }
    }
    out.push('\n');
    charts_of(out, charts, "recycle");
}

/// The control row of a model at a level.
fn control_of<'a>(rows: &[&'a SummaryRow], model: &str, level: &str) -> Option<&'a RecycleSpread> {
    rows.iter()
        .filter(|r| r.model == model)
        .filter_map(|r| r.recycle.as_ref())
        .find(|k| k.control && k.level == level)
}

fn delayed_text(k: &RecycleSpread) -> String {
    k.delayed
        .as_ref()
        .map_or("-".into(), |d| format!(">= {}", range_text(d, 0, 1.0)))
}

/// `12,345` (no decimals).
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// Commit, dirty flag, the peers' versions and the steal time.
fn provenance(out: &mut String, env: &crate::run::results::RunEnvironment) {
    let peers = if env.tool_versions.is_empty() {
        "none of wrk, oha, nginx installed".to_string()
    } else {
        env.tool_versions
            .iter()
            .map(|(k, v)| format!("{k}: `{v}`"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let _ = writeln!(
        out,
        "- peers: {peers}\n- steal time over the run: {}\n",
        env.steal_percent
            .map_or("not measured".into(), |s| format!("{s:.2}% of all CPU time"))
    );
}

/// The decision matrix: one row per model with its throughput, CPU cost,
/// memory, and for each recycle kind its cost next to the control's and
/// whether the state survived without and with the journal.
fn decision_matrix(out: &mut String, results: &Results, rows: &[SummaryRow]) {
    use crate::run::scenarios::recycle::KINDS;
    let models = &results.settings.models;
    if models.is_empty() {
        return;
    }
    // The recycle level the matrix shows: the first one measured (50%).
    let recycle_rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.recycle.is_some()).collect();
    let level = recycle_rows
        .iter()
        .find_map(|r| r.recycle.as_ref())
        .map(|k| k.level.clone());
    let kinds: Vec<&str> = KINDS
        .iter()
        .map(|(k, _)| *k)
        .chain(["process restart"])
        .filter(|k| {
            recycle_rows
                .iter()
                .filter_map(|r| r.recycle.as_ref())
                .any(|x| x.kind == *k && Some(&x.level) == level.as_ref())
                || results
                    .entries
                    .iter()
                    .any(|e| e.state.as_ref().is_some_and(|s| s.kind == *k))
        })
        .collect();
    let _ = writeln!(out, "## Decision matrix\n");
    let _ = writeln!(
        out,
        "Throughput: GET /ping closed-loop median req/s (*generator-limited*: a lower bound). CPU: server \
         processes' CPU per request on GET /ping. RSS: the model's processes at the end of that run. \
         Recycle cells{}: failed / delayed (lower bound) / downtime ms, the control's below, then the state \
         (books) kept without / with the journal. Details and definitions below the claims.\n",
        level.as_ref().map_or(String::new(), |l| format!(" at the `{l}` level"))
    );
    let mut header = "| model | throughput req/s | CPU µs/request | RSS MiB |".to_string();
    let mut rule = "|---|---|---|---|".to_string();
    for k in &kinds {
        let _ = write!(header, " {k} |");
        rule.push_str("---|");
    }
    header.push_str(" warm-up grade (issue 19) |");
    rule.push_str("---|");
    let _ = writeln!(out, "{header}\n{rule}");
    for model in models {
        let ping = crate::run::summary::find(rows, "throughput", model, crate::run::scenarios::throughput::PING);
        let tp = matrix_throughput(rows, model).map_or("-".into(), |(rps, limited)| {
            format!(
                "{}{}",
                thousands(rps),
                if limited { " *generator-limited*" } else { "" }
            )
        });
        let cpu = cpu_us_per_request(rows, model).map_or("-".into(), |c| format!("{c:.1}"));
        let rss = ping
            .and_then(crate::run::summary::server_rss_bytes)
            .map_or("-".into(), |s| format!("{:.1}", s.median / (1024.0 * 1024.0)));
        let mut line = format!("| {model} | {tp} | {cpu} | {rss} |");
        for k in &kinds {
            let _ = write!(
                line,
                " {} |",
                matrix_cell(results, &recycle_rows, model, k, level.as_deref())
            );
        }
        line.push_str(" not graded |");
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

/// The throughput the matrix shows and whether the generator may have
/// limited it: this run's GET /ping closed-loop median. (Issue 13's
/// server-bound, CPU-capped figure replaces it where it exists.)
pub fn matrix_throughput(rows: &[SummaryRow], model: &str) -> Option<(f64, bool)> {
    let r = crate::run::summary::find(rows, "throughput", model, crate::run::scenarios::throughput::PING)?;
    Some((r.rps?.median, r.generator_limited))
}

/// Server CPU µs per GET /ping request: per repeat, the summed CPU of the
/// model's processes over its req/s; the median. (Issue 13's
/// `entries[].cpu.us_per_request` replaces it where it exists.)
pub fn cpu_us_per_request(rows: &[SummaryRow], model: &str) -> Option<f64> {
    let r = crate::run::summary::find(rows, "throughput", model, crate::run::scenarios::throughput::PING)?;
    let per: Vec<f64> = r
        .entries
        .iter()
        .filter(|e| !e.processes.is_empty())
        .filter_map(|e| {
            let rps = e.load.as_ref()?.requests_per_sec;
            let cpu: f64 = e.processes.iter().map(|p| p.cpu_percent).sum();
            (rps > 0.0).then(|| cpu / 100.0 * 1e6 / rps)
        })
        .collect();
    Spread::of(&per).map(|s| s.median)
}

/// One recycle kind of one model in the matrix.
fn matrix_cell(results: &Results, rows: &[&SummaryRow], model: &str, kind: &str, level: Option<&str>) -> String {
    let mut parts = Vec::new();
    let find = |kind: &str, control: bool| {
        rows.iter()
            .filter(|r| r.model == model)
            .filter_map(|r| r.recycle.as_ref())
            .find(|k| (control && k.control || !control && k.kind == kind) && Some(k.level.as_str()) == level)
    };
    let figures = |k: &RecycleSpread| {
        format!(
            "{} / {} / {}",
            range_text(&k.failed, 0, 1.0),
            delayed_text(k),
            range_text(&k.downtime_ms, 0, 1.0)
        )
    };
    if let Some(k) = find(kind, false) {
        parts.push(figures(k));
        if let Some(c) = find(kind, true) {
            parts.push(format!("control {}", figures(c)));
        }
    }
    let state = |journal: bool| {
        results
            .entries
            .iter()
            .filter(|e| e.model == model)
            .filter_map(|e| e.state.as_ref())
            .find(|s| s.kind == kind && s.journal == journal)
            .map_or("-", |s| {
                if s.books_before > 0 && s.books_after >= s.books_before {
                    "kept"
                } else if s.books_before == 0 {
                    "none added"
                } else {
                    "lost"
                }
            })
    };
    let (without, with) = (state(false), state(true));
    if without != "-" || with != "-" {
        parts.push(format!("state {without} / {with}"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("<br>")
    }
}

fn state(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "state").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Where are all my books? (state across recycles)\n\n| model | recycle | journal | books before | books after | lost |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        for e in &r.entries {
            let Some(s) = &e.state else { continue };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.model,
                s.kind,
                if s.journal { "yes" } else { "no" },
                s.books_before,
                s.books_after,
                s.books_before.saturating_sub(s.books_after)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nJournal runs use a fresh SQLite file per run (`journals/` in this folder); their overlapped \
         recycles warm up with `/ping,/healthz` (a new process reads the state only after the switch).\n"
    );
    charts_of(out, charts, "state");
}

fn recovery(out: &mut String, results: &Results) {
    let entries: Vec<_> = results
        .entries
        .iter()
        .filter_map(|e| Some((e, e.recovery.as_ref()?)))
        .collect();
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Recovery from the journal (edge restarted on a journal)\n\n| variant | events | start-to-ready ms | recovery ms | events replayed | replay events/s | books expected | books recovered | tasks accepted | resumed | done | all done ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (e, r) in entries {
        let rate = if r.replay_events_per_sec > 0.0 {
            format!("{:.0}", r.replay_events_per_sec)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.variant,
            r.events,
            r.startup_ms,
            r.recovery_ms,
            r.events_replayed,
            rate,
            r.books_expected,
            r.books_recovered,
            r.tasks_accepted,
            r.tasks_resumed,
            r.tasks_done,
            r.all_done_ms.map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
    let _ = writeln!(
        out,
        "\nRecovery ms is the process's own figure (read the snapshot, replay the newer events); \
         start-to-ready includes process start. Tasks: accepted with `Prefer: respond-async` (202), \
         the process SIGKILLed right after the last one, then restarted; done counts each completion. \
         Unfinished tasks in the journal: the journal a crash between acceptance and completion leaves \
         (tasks accepted, none completed), written by the journal itself; all done ms runs from the \
         process start to the last resumed task done.\n"
    );
}

fn coldstart(out: &mut String, rows: &[SummaryRow]) {
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

fn routing(out: &mut String, rows: &[SummaryRow]) {
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

fn crosscheck(out: &mut String, rows: &[SummaryRow]) {
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

fn soak(out: &mut String, results: &Results, rows: &[SummaryRow]) {
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

/// CPU cost per request by model and endpoint (throughput runs).
fn cpu_cost(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
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
         server-bound (throttled, quota used, generator below its limit).\n"
    );
    let mut variants: Vec<&str> = Vec::new();
    for r in &rows {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    for v in variants {
        let _ = writeln!(out, "### {v}\n");
        let _ = writeln!(
            out,
            "| model | processes µs/req (median) | min .. max | core busy µs/req | by role µs/req | idle µs/s | steal % (max) | capped, server-bound |\n|---|---|---|---|---|---|---|---|"
        );
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
                "| {} | {:.1} | {:.1} .. {:.1} | {} | {} | {:.0} | {:.1} | {} |",
                r.model,
                c.processes_us.median,
                c.processes_us.min,
                c.processes_us.max,
                if c.core_us.median.is_finite() {
                    format!("{:.1} ({:.1} .. {:.1})", c.core_us.median, c.core_us.min, c.core_us.max)
                } else {
                    "-".into()
                },
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

/// The hop cost per hosting path and endpoint, and the app cost 4.4x needs.
fn hop_cost(out: &mut String, rows: &[SummaryRow]) {
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
    let mut variants: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario == "throughput" && r.cpu.is_some()) {
        if !variants.contains(&r.variant.as_str()) {
            variants.push(&r.variant);
        }
    }
    let paths: Vec<&str> = ["proxy", "nginx", "split", "inprocess"]
        .into_iter()
        .filter(|m| variants.iter().any(|v| cost(m, v).is_some()))
        .collect();
    if variants.iter().all(|v| cost("edge", v).is_none()) || paths.is_empty() {
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
        match cost("edge", v) {
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
            match (cost(p, v), cost("edge", v)) {
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

/// The remoting link alone (C8).
fn link(out: &mut String, rows: &[SummaryRow]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "link").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Remoting link (ractor_cluster, one connection)\n");
    let _ = writeln!(
        out,
        "A sink process pinned to the server CPUs and a sender on the generator's CPUs, one session, \
         median (min-max) over the repeats.\n"
    );
    for r in rows {
        let _ = writeln!(out, "- {}: {} ({} repeats)", r.model, r.detail, r.repeats);
    }
    out.push('\n');
}
