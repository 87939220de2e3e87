//! Throughput: closed loop per model and endpoint (`GET /ping`, `GET /books`
//! with 100 books, `POST /tasks` with 5,000 rows), repeated; medians with
//! min/max and ratios to edge come from the summary. The floor (`baseline`,
//! `nginx-baseline`) runs `GET /ping` only; its other rows are recorded as
//! skipped.
//!
//! Each run also records the CPU cost of the model's server processes over
//! exactly the measured window (`entries[].cpu`, by role, plus the server
//! cores' busy and steal time and the model's idle cost), and, in the
//! server-bound mode, runs the whole model in a CPU-capped control group and
//! checks that the group, not the generator, set the pace (docs/run.md).

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::Bytes;
use hostlab_hosts::Model;
use http::Method;

use super::{closed, load_entry, load_plan, steady_flags, task_body};
use crate::load::LoadPlan;
use crate::run::cpu::cgroup::{CpuGroup, PERIOD, Throttling, Version};
use crate::run::cpu::{CpuWindow, STEAL_WARN_PERCENT};
use crate::run::plan::RunPlan;
use crate::run::results::{CapFigures, Entry};
use crate::run::servers::{CpuProbe, PING_ONLY, Server, seed_books};
use crate::run::stats::generator_limited;
use crate::run::{Ctx, Measurement};

pub(crate) const PING: &str = "GET /ping";
pub(crate) const BOOKS: &str = "GET /books (100 books)";
pub(crate) const TASKS: &str = "POST /tasks (5,000 rows)";

/// Connections for the heavy `POST /tasks` runs: each request carries about
/// 350 KB, and more connections only queue on the task actor.
const TASK_CONNECTIONS: usize = 8;

/// Length of the idle-cost window (no load), after a short settle.
const IDLE_WINDOW: Duration = Duration::from_secs(1);
const IDLE_SETTLE: Duration = Duration::from_millis(300);

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let task = Bytes::from(serde_json::to_vec(&task_body("bench-5000", 5000))?);
    let endpoints = [
        (PING, Method::GET, "/ping", None, ctx.plan.connections),
        (BOOKS, Method::GET, "/books", None, ctx.plan.connections),
        (TASKS, Method::POST, "/tasks", Some(task), TASK_CONNECTIONS),
    ];
    for model in ctx.plan.models.clone() {
        if !serves_workload(&model) {
            // The floor answers GET /ping only: its other rows are skipped, and say why.
            ctx.skip(
                Some(&model),
                "throughput",
                format!("{BOOKS} and {TASKS} not measured: {PING_ONLY}"),
            );
        }
    }
    // Interleaved rounds: each round starts every model in turn and runs
    // one repeat of each of its endpoints, so a slow spell of the machine
    // (another guest, a host's housekeeping) lands on every model's
    // repeats alike instead of on all of one model's (docs/run.md).
    // `--quick` runs each model's rounds in one start, to keep its budget.
    let round_count = rounds(ctx.plan.claim_repeats, ctx.plan.repeats);
    let mut failed: Vec<String> = Vec::new();
    // Each model's idle cost, measured on its first start.
    let mut idle_costs: HashMap<String, f64> = HashMap::new();
    for (model, rounds) in visits(&ctx.plan.models, round_count, !ctx.plan.quick) {
        let workload = serves_workload(&model);
        let plan = &ctx.plan;
        let due: Vec<(u32, Endpoint)> = rounds
            .flat_map(|round| {
                endpoints
                    .iter()
                    .filter(move |(variant, ..)| workload || *variant == PING)
                    .filter(move |(variant, ..)| round <= runs_of(plan, variant).0)
                    .map(move |endpoint| (round, endpoint.clone()))
            })
            .collect();
        if due.is_empty() || failed.contains(&model) {
            continue;
        }
        // Removed only after the server stopped: a group with processes
        // left in it cannot be removed.
        let mut group = None;
        let idle_cost = idle_costs.get(&model).copied();
        let measurement = Measurement::new("throughput", &model);
        let done = ctx
            .with_server(measurement, &steady_flags(&model), async |ctx, server| {
                if workload {
                    seed_books(&ctx.http, &server.url, ctx.plan.books).await?;
                }
                group = cap(ctx, &model, server)?;
                let idle_us_per_s = match idle_cost {
                    Some(cost) => cost,
                    None => {
                        tokio::time::sleep(IDLE_SETTLE).await;
                        let idle = CpuWindow::start(&server.pids(), &ctx.plan.server_cpus);
                        tokio::time::sleep(IDLE_WINDOW).await;
                        idle.finish().us_per_s()
                    }
                };
                let started = Started {
                    model: &model,
                    server,
                    group: group.as_ref(),
                    idle_us_per_s,
                };
                for (round, (variant, method, path, body, connections)) in due {
                    let (repeats, _) = runs_of(&ctx.plan, variant);
                    ctx.console
                        .step("throughput", &model, &format!("{variant} {round}/{repeats}"));
                    let entry = measure(
                        ctx,
                        &started,
                        (variant, round),
                        load_plan(&server.url, method, path, body)?,
                        connections,
                    )
                    .await?;
                    ctx.push(entry);
                }
                anyhow::Ok(idle_us_per_s)
            })
            .await?;
        drop(group);
        match done {
            Some(idle_us_per_s) => {
                idle_costs.insert(model, idle_us_per_s);
            }
            // Recorded as failed: not started again in later rounds.
            None => failed.push(model),
        }
    }
    Ok(())
}

/// The order of the scenario's server starts: each model with the rounds
/// it runs in that start. Interleaved: round by round, every model in turn,
/// one round per start; else each model once with all its rounds.
fn visits(models: &[String], rounds: u32, interleaved: bool) -> Vec<(String, RangeInclusive<u32>)> {
    if interleaved {
        (1..=rounds)
            .flat_map(|r| models.iter().map(move |m| (m.clone(), r..=r)))
            .collect()
    } else {
        models.iter().map(|m| (m.clone(), 1..=rounds)).collect()
    }
}

/// An endpoint of the scenario: variant, method, path, body, connections.
type Endpoint = (&'static str, Method, &'static str, Option<Bytes>, usize);

fn serves_workload(model: &str) -> bool {
    model.parse().is_ok_and(Model::serves_workload)
}

/// Rounds of the throughput scenario: enough for the endpoint with the
/// most repeats (`GET /ping`'s claim repeats or the others' repeats).
pub(crate) fn rounds(claim_repeats: u32, repeats: u32) -> u32 {
    claim_repeats.max(repeats)
}

/// Repeats and measured duration of an endpoint's runs: the claim ratios
/// (`GET /ping`) get the claim runs (at least 3 repeats).
fn runs_of(plan: &RunPlan, variant: &str) -> (u32, Duration) {
    if variant == PING {
        (plan.claim_repeats, plan.claim_duration)
    } else {
        (plan.repeats, plan.duration)
    }
}

/// A model as started for one visit (one round, or all with `--quick`): its
/// server, its cap group and its idle cost.
struct Started<'a> {
    model: &'a str,
    server: &'a Server,
    group: Option<&'a CpuGroup>,
    idle_us_per_s: f64,
}

/// One closed-loop run of `variant` (repeat `repeat`) against the started
/// model, with its CPU window, its processes' CPU and, when capped, the
/// check that the group set the pace.
async fn measure(
    ctx: &mut Ctx,
    started: &Started<'_>,
    (variant, repeat): (&str, u32),
    base: LoadPlan,
    connections: usize,
) -> anyhow::Result<Entry> {
    let &Started {
        model,
        server,
        group,
        idle_us_per_s,
    } = started;
    let (_, duration) = runs_of(&ctx.plan, variant);
    let warmup = (duration / 4).min(ctx.plan.warmup.max(Duration::from_millis(250)));
    let plan = closed(base, connections, duration, warmup);
    let pids = server.pids();
    let throttled_before = join_cap(group, &pids)?;
    let probe = CpuProbe::start(&pids);
    let cpus = ctx.plan.server_cpus.clone();
    // The CPU window opens when the warm-up ends and closes when the
    // measured phase's last request is answered.
    let (report, window) = tokio::join!(ctx.load(plan), async {
        tokio::time::sleep(warmup).await;
        CpuWindow::start(&pids, &cpus)
    });
    let report = report?;
    let window = window.finish();
    let processes = probe.finish();
    if report.measured.requests.ok == 0 {
        anyhow::bail!(
            "{model}: no {variant} request succeeded ({} sent); the model is not answering",
            report.measured.requests.total
        );
    }
    let mut entry = load_entry(model, "throughput", variant, repeat, &report, false, processes);
    entry.startup_ms = Some(server.start_to_ready.as_secs_f64() * 1e3);
    let cpu = window.figures(report.measured.requests.total, idle_us_per_s);
    if cpu.steal_percent > STEAL_WARN_PERCENT
        && let Some(load) = entry.load.as_mut()
    {
        load.warnings.push(format!(
            "steal time was {:.1} % of the server cores' time (over {STEAL_WARN_PERCENT} %): \
             another guest took CPU, the CPU figures are suspect",
            cpu.steal_percent
        ));
    }
    if !window.unknown.is_empty() {
        ctx.console.note(&format!(
            "throughput / {model}: processes {:?} have no known role (counted as `?`)",
            window.unknown
        ));
    }
    entry.cpu = Some(cpu);
    if let (Some(g), Some(before)) = (group, throttled_before) {
        let t = g.throttling().since(before);
        let load = entry.load.as_ref();
        let limited = load.is_some_and(|l| generator_limited(l.generator_cpu_percent, l.generator_cpus));
        let used = window.us_per_s() / 1e6;
        let flag = server_bound_flag(t.nr_throttled, used, g.cores, limited);
        entry.cpu_cap = Some(CapFigures {
            cores: g.cores,
            period_us: PERIOD.as_micros() as u64,
            cgroup: match g.version() {
                Version::V1 => "v1".into(),
                Version::V2 => "v2".into(),
            },
            nr_throttled: t.nr_throttled,
            nr_periods: t.nr_periods,
            server_bound: flag.is_none(),
            flag,
        });
    }
    Ok(entry)
}

/// A capped run used at least this share of its quota to count as server-bound.
pub(crate) const QUOTA_USED_SHARE: f64 = 0.85;

/// Why a capped run was not server-bound, or `None` when it was: the group
/// was throttled, used nearly all of its quota (not held back by other
/// work on the core), and the generator stayed below its limit.
pub(crate) fn server_bound_flag(
    nr_throttled: u64,
    used_cores: f64,
    quota_cores: f64,
    generator_limited: bool,
) -> Option<String> {
    if nr_throttled == 0 {
        Some("the group was never throttled: the server had spare CPU".into())
    } else if used_cores < QUOTA_USED_SHARE * quota_cores {
        Some(format!(
            "the group used {used_cores:.2} of its {quota_cores} cores: something else held it back"
        ))
    } else if generator_limited {
        Some("the generator was busy enough to have been the limit".into())
    } else {
        None
    }
}

/// Puts `pids` (the model's processes now, a recycled generation
/// included) into the cap group and returns its throttling counters before
/// the run; `None` when the run is not capped.
pub(crate) fn join_cap(group: Option<&CpuGroup>, pids: &[u32]) -> anyhow::Result<Option<Throttling>> {
    let Some(g) = group else {
        return Ok(None);
    };
    for &pid in pids {
        g.add(pid)?;
    }
    Ok(Some(g.throttling()))
}

/// The server-bound mode: a control group capped at the plan's quota with
/// every process of the model in it (children started later inherit it).
/// Where none can be made, says so once in the run's notes and goes on
/// uncapped (the claims then use the CPU-cost ratio).
pub(crate) fn cap(ctx: &mut Ctx, model: &str, server: &Server) -> anyhow::Result<Option<CpuGroup>> {
    let Some(cores) = ctx.plan.server_cpu_quota else {
        return Ok(None);
    };
    let name = format!("hostlab-{}-{model}", std::process::id());
    match CpuGroup::create(&name, cores) {
        Ok(group) => {
            for pid in server.pids() {
                group.add(pid)?;
            }
            let note = format!(
                "server-bound mode: throughput runs cap every server process of a model at {cores} cores \
                 (a cgroup {} control group, {} ms period); --server-cpu-quota changes it",
                match group.version() {
                    Version::V1 => "v1",
                    Version::V2 => "v2",
                },
                PERIOD.as_millis()
            );
            if !ctx.results.notes.contains(&note) {
                ctx.results.notes.push(note);
            }
            Ok(Some(group))
        }
        Err(e) => {
            let note = format!(
                "server-bound mode unavailable ({e:#}): throughput runs are uncapped and the claim ratios use \
                 the CPU cost per request"
            );
            if !ctx
                .results
                .notes
                .iter()
                .any(|n| n.starts_with("server-bound mode unavailable"))
            {
                ctx.console.note(&note);
                ctx.results.notes.push(note);
            }
            ctx.plan.server_cpu_quota = None;
            ctx.results.settings.server_cpu_quota = None;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_visit_every_model_in_turn_unless_quick() {
        let models = ["baseline".to_string(), "edge".to_string()];
        let order = |v: Vec<(String, RangeInclusive<u32>)>| {
            v.into_iter()
                .map(|(m, r)| format!("{m} {}-{}", r.start(), r.end()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(visits(&models, 3, true)),
            [
                "baseline 1-1",
                "edge 1-1",
                "baseline 2-2",
                "edge 2-2",
                "baseline 3-3",
                "edge 3-3"
            ]
        );
        assert_eq!(order(visits(&models, 3, false)), ["baseline 1-3", "edge 1-3"]);
        assert_eq!(rounds(3, 1), 3);
        assert_eq!(rounds(3, 5), 5);
    }

    #[test]
    fn server_bound_needs_throttling_a_used_quota_and_a_free_generator() {
        assert_eq!(server_bound_flag(40, 0.49, 0.5, false), None);
        assert!(
            server_bound_flag(0, 0.49, 0.5, false)
                .unwrap()
                .contains("never throttled")
        );
        assert!(
            server_bound_flag(8, 0.18, 0.5, false)
                .unwrap()
                .contains("0.18 of its 0.5")
        );
        assert!(server_bound_flag(40, 0.5, 0.5, true).unwrap().contains("generator"));
    }
}
