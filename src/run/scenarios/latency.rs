//! Latency: open loop at fixed fractions of EACH model's own `GET /ping`
//! capacity, plus one common absolute rate below every model's capacity,
//! with percentiles from each request's scheduled start (coordinated-
//! omission correct). Only requests scheduled inside the measured window
//! count, so an achieved rate never exceeds the offered one. A run in
//! which the server did not keep up (errors, or slots waiting for an idle
//! connection) is marked overloaded by the report (see [`overloaded`]), and
//! one in which the generator itself sent late is marked generator late
//! ([`generator_late`]).
//!
//! In the server-bound mode the capacities are those of the model capped
//! at `--server-cpu-quota` cores (the throughput scenario's, or a probe run
//! under the same cap), so the latency runs run under that cap too: each
//! rate is then the stated share of the capacity of the server it meets.
//! The cap also keeps the fast models' rates well inside what the one
//! generator core can pace precisely.

use std::time::Duration;

use hostlab_hosts::Model;
use http::Method;

use super::throughput::{PING, cap, join_cap};
use super::{closed, load_entry, load_plan, open, steady_flags};
use crate::load::schedule_kept;
use crate::run::results::LoadFigures;
use crate::run::servers::CpuProbe;
use crate::run::summary::{find, summarize};
use crate::run::{Ctx, Measurement};

/// Server stall the open-loop runs' connections cover at their rate. A
/// server capped at `--server-cpu-quota` is stopped for the rest of a 10 ms
/// period once its quota is used, and a period that overran its quota can
/// stop it longer. With fewer connections than rate x stall the slots due
/// meanwhile wait for a connection in the generator (connection wait), which
/// marks the row overloaded although the server keeps up on average; with
/// enough, they wait in the server's socket, and the stall shows in the
/// latency tail where it belongs. Both count from the scheduled start.
const STALL_COVER: Duration = Duration::from_millis(20);
/// Fewest and most connections of an open-loop run. More than needed cost
/// the generator little (idle connections wait for the one pacer without a
/// timer or a wake-up of their own, docs/load.md), but they cost the server
/// (see [`connections_for`]).
const MIN_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS: usize = 1024;

/// Connections for an open-loop run at `rate` against a server whose
/// capacity `capacity` was measured with `capacity_connections` (closed
/// loop): rate x [`STALL_COVER`] in steps of 64 within
/// [`MIN_CONNECTIONS`]..=[`MAX_CONNECTIONS`], but never more than the
/// capacity run's connections plus those the rate keeps busy at the
/// capacity run's latency (Little's law: `capacity_connections` x rate /
/// capacity). Every connection costs a server something (a socket, a task,
/// fewer requests per wake-up): the reference run offered 75% of a
/// 64-connection capacity over 448 connections, and every model fell
/// behind. Capped, a server meets at most about twice the connections its
/// capacity was measured with, so "75% of capacity" means that.
pub(crate) fn connections_for(rate: f64, capacity: f64, capacity_connections: usize) -> usize {
    let needed = (rate.max(0.0) * STALL_COVER.as_secs_f64()).ceil() as usize;
    let cover = needed
        .next_multiple_of(MIN_CONNECTIONS)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
    let busy_at_rate = (capacity_connections as f64 * rate / capacity.max(1.0)).ceil() as usize;
    cover.min((capacity_connections + busy_at_rate).max(MIN_CONNECTIONS))
}

/// Share of the slowest model's capacity the common rate stays below.
const COMMON_SHARE: f64 = 0.25;

/// The variant name of one fraction of a model's own capacity, e.g.
/// `50% of capacity` (the rate itself differs per model).
pub(crate) fn variant(fraction: f64) -> String {
    format!("{:.0}% of capacity", fraction * 100.0)
}

/// The variant name of the common rate, e.g. `common 5000 req/s`.
pub(crate) fn common_variant(rate: f64) -> String {
    format!("common {rate:.0} req/s")
}

/// A model's capacity for `endpoint` in this run: its closed-loop
/// throughput median from this run's entries, or without one the median
/// of the capacity probe this scenario ran for it. (When the server-bound
/// capacity of the claims work is available, this is the one place to
/// switch to it.)
pub(crate) fn capacity(ctx: &Ctx, model: &str, endpoint: &str) -> Option<f64> {
    let rows = summarize(&ctx.results);
    let median = |scenario: &str, variant: &str| {
        find(&rows, scenario, model, variant)?
            .rps
            .map(|s| s.median)
            .filter(|rps| *rps > 0.0)
    };
    median("throughput", endpoint).or_else(|| median("latency", PROBE))
}

/// Variant of the closed-loop probe run when the throughput scenario gave
/// no capacity for a model.
const PROBE: &str = "capacity probe";

/// The largest 1-2-5 step (1, 2, 5, 10, 20, ...) at or below `x` (>= 1).
pub(crate) fn round_down_125(x: f64) -> f64 {
    if x < 1.0 {
        return 1.0;
    }
    let decade = 10f64.powf(x.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|v| *v <= x)
        .unwrap_or(decade)
}

/// Whether the server did not keep up with a latency run: requests failed,
/// or slots waited for an idle connection (every connection busy with an
/// unanswered request) with a p99 beyond the late-send warning's bound (10%
/// of the latency p50). Results older than the split of the send lag have
/// only the whole send lag, which is used then.
pub(crate) fn overloaded(l: &LoadFigures) -> bool {
    let wait = l
        .generator_connection_wait_p99_us
        .unwrap_or(l.generator_send_lag_p99_us);
    l.requests.errors.total() > 0 || !schedule_kept(wait, l.latency_us.p50)
}

/// Whether the generator itself sent late in a latency run: its own share
/// of the send lag (the lag less the connection wait: its timer, its CPU)
/// has a p99 beyond 10% of the latency p50. Then part of the reported
/// latency is the generator's, whatever the server did.
pub(crate) fn generator_late(l: &LoadFigures) -> bool {
    l.generator_own_lag_p99_us
        .is_some_and(|lag| !schedule_kept(lag, l.latency_us.p50))
}

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    // Each model's own capacity first (measured now where the throughput
    // scenario did not), so the common rate can sit below all of them.
    let mut capacities = Vec::new();
    // The floor (baseline, nginx-baseline) is measured for its cost, in the
    // throughput scenario; its latency says nothing about a hosting model.
    let models = ctx.models_for(
        "latency",
        Model::serves_workload,
        "the floor is measured for its CPU cost in the throughput scenario only",
    );
    for model in models {
        let found = match capacity(ctx, &model, PING) {
            Some(c) => Some(c),
            None => match probe_capacity(ctx, &model).await {
                Ok(()) => capacity(ctx, &model, PING),
                Err(e) => {
                    ctx.fail(&model, "latency", e);
                    None
                }
            },
        };
        if let Some(c) = found {
            capacities.push((model, c));
        }
    }
    let Some(slowest) = capacities.iter().map(|(_, c)| *c).reduce(f64::min) else {
        anyhow::bail!("no model has a GET /ping capacity to run the latency scenario at");
    };
    let common = round_down_125(COMMON_SHARE * slowest);
    for (model, capacity) in capacities {
        let mut rates: Vec<(String, f64)> = ctx
            .plan
            .latency_fractions
            .iter()
            .map(|f| (variant(*f), (f * capacity).max(1.0)))
            .collect();
        rates.push((common_variant(common), common));
        // Removed only after the server stopped: a group with processes
        // left in it cannot be removed.
        let mut group = None;
        let measurement = Measurement::new("latency", &model);
        ctx.with_server(measurement, &steady_flags(&model), async |ctx, server| {
            group = cap(ctx, &model, server)?;
            if group.is_some() {
                note_capped(ctx);
            }
            for (name, rate) in &rates {
                for repeat in 1..=ctx.plan.repeats {
                    ctx.console.step(
                        "latency",
                        &model,
                        &format!("{name} ({rate:.0} req/s) {repeat}/{}", ctx.plan.repeats),
                    );
                    let plan = open(
                        load_plan(&server.url, Method::GET, "/ping", None)?,
                        connections_for(*rate, capacity, ctx.plan.connections),
                        *rate,
                        ctx.plan.latency_duration,
                        Duration::from_millis(500),
                    );
                    let pids = server.pids();
                    let throttled_before = join_cap(group.as_ref(), &pids)?;
                    let probe = CpuProbe::start(&pids);
                    let report = ctx.load(plan).await?;
                    let processes = probe.finish();
                    let mut entry = load_entry(&model, "latency", name, repeat, &report, false, processes);
                    if let Some(load) = entry.load.as_mut() {
                        load.latency_spectrum_us = report.measured.latency_spectrum_us.clone();
                        load.service_time_spectrum_us = report.measured.service_time_spectrum_us.clone();
                        if let (Some(g), Some(before)) = (&group, throttled_before) {
                            let t = g.throttling().since(before);
                            if t.nr_throttled > 0 {
                                load.warnings.push(format!(
                                    "the CPU cap ({} cores) throttled the server in {} of {} periods: \
                                     requests then waited for the next period, which shows in the tail",
                                    g.cores, t.nr_throttled, t.nr_periods
                                ));
                            }
                        }
                    }
                    ctx.push(entry);
                }
            }
            anyhow::Ok(())
        })
        .await?;
        drop(group);
    }
    Ok(())
}

/// Says once in the run's notes that latency runs are capped like the
/// capacity they are fractions of.
fn note_capped(ctx: &mut Ctx) {
    let note = "latency runs run under the same CPU cap as the capacity their rates are fractions of \
                (the throughput runs' or a capped probe's)"
        .to_string();
    if !ctx.results.notes.contains(&note) {
        ctx.results.notes.push(note);
    }
}

/// Without a throughput figure for `model`, measure its closed-loop
/// capacity now (recorded as a latency entry, variant `capacity probe`).
async fn probe_capacity(ctx: &mut Ctx, model: &str) -> anyhow::Result<()> {
    ctx.console.step("latency", model, PROBE);
    let mut group = None;
    let outcome = ctx
        .serving(model, &steady_flags(model), async |ctx, server| {
            // Under the same cap as the latency runs that use this capacity.
            group = cap(ctx, model, server)?;
            let plan = closed(
                load_plan(&server.url, Method::GET, "/ping", None)?,
                ctx.plan.connections,
                ctx.plan.duration,
                ctx.plan.warmup,
            );
            ctx.load(plan).await
        })
        .await;
    // Removed only now: the model's processes have exited.
    drop(group);
    let report = outcome?;
    if report.measured.requests_per_sec <= 0.0 {
        anyhow::bail!("{model} answered no GET /ping in the capacity probe, so there is no rate to run at");
    }
    ctx.push(load_entry(model, "latency", PROBE, 1, &report, false, Vec::new()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_rate_steps() {
        assert_eq!(round_down_125(0.3), 1.0);
        assert_eq!(round_down_125(1.0), 1.0);
        assert_eq!(round_down_125(19.9), 10.0);
        assert_eq!(round_down_125(4_999.0), 2_000.0);
        assert_eq!(round_down_125(12_560.0), 10_000.0);
        assert_eq!(round_down_125(50_000.0), 50_000.0);
        assert_eq!(variant(0.5), "50% of capacity");
        assert_eq!(common_variant(5000.0), "common 5000 req/s");
    }

    #[test]
    fn connections_cover_a_stall_at_the_rate_within_the_capacity_runs_count() {
        // A fast server at a low rate: the stall cover (at least 64).
        assert_eq!(connections_for(500.0, 200_000.0, 64), 64);
        // The stall cover (rate x 20 ms = 66, in steps of 64: 128) is
        // capped at 64 + 64 x 3,300 / 200,000.
        assert_eq!(connections_for(3_300.0, 200_000.0, 64), 66);
        // Far beyond the capacity run's connections: capped at 64 + 64 x f.
        assert_eq!(connections_for(22_000.0, 29_000.0, 64), 64 + 49);
        assert_eq!(connections_for(200_000.0, 400_000.0, 64), 96);
        assert_eq!(connections_for(200_000.0, 200_000.0, 1024), 1024);
        assert_eq!(connections_for(7_250.0, 29_000.0, 64), 80);
    }

    #[test]
    fn overloaded_when_late_or_failing() {
        // Results older than the split: the whole send lag decides.
        let mut l = LoadFigures::default();
        l.latency_us.p50 = 200;
        l.generator_send_lag_p99_us = 20;
        assert!(!overloaded(&l));
        l.generator_send_lag_p99_us = 21;
        assert!(overloaded(&l));
        assert!(!generator_late(&l));
        l.generator_send_lag_p99_us = 0;
        l.requests.errors.timeout = 1;
        assert!(overloaded(&l));
    }

    #[test]
    fn the_servers_share_of_the_lag_is_overload_the_rest_is_the_generators() {
        let mut l = LoadFigures::default();
        l.latency_us.p50 = 200;
        l.generator_send_lag_p99_us = 500;
        // All of the lag is the generator's own: late, not overloaded.
        l.generator_connection_wait_p99_us = Some(0);
        l.generator_own_lag_p99_us = Some(500);
        assert!(!overloaded(&l) && generator_late(&l));
        // All of it waited for a connection: overloaded, generator on time.
        l.generator_connection_wait_p99_us = Some(500);
        l.generator_own_lag_p99_us = Some(20);
        assert!(overloaded(&l) && !generator_late(&l));
    }
}
