//! The scenarios of the main job, one module each, and what they share:
//! building load plans against a model and turning a load report into an
//! entry. Each scenario appends entries and rewrites results.json when a
//! model is done with.

pub(super) mod coldstart;
pub(super) mod crosscheck;
pub(super) mod inflight;
pub(super) mod latency;
pub(super) mod link;
pub(super) mod multihost;
pub(super) mod recovery;
pub(super) mod recycle;
pub(super) mod routing;
pub(super) mod soak;
pub(super) mod state;
pub(super) mod throughput;

use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_TYPE, HeaderValue};

use super::Ctx;
use super::plan::Scenario;
use super::results::{Entry, LoadFigures, ProcessFigures};
use crate::load::{LoadPlan, LoadReport, Pacing, Stop, parse_target};

/// Runs the plan's scenarios in order.
pub(super) async fn run_all(ctx: &mut Ctx) -> anyhow::Result<()> {
    for scenario in ctx.plan.scenarios.clone() {
        let estimate = ctx.plan.estimate_s(scenario);
        ctx.console.begin_scenario(estimate);
        let outcome = match scenario {
            Scenario::Throughput => throughput::run(ctx).await,
            Scenario::Latency => latency::run(ctx).await,
            Scenario::Link => link::run(ctx).await,
            Scenario::Recycle => recycle::run(ctx).await,
            Scenario::State => state::run(ctx).await,
            Scenario::Coldstart => coldstart::run(ctx).await,
            Scenario::Routing => routing::run(ctx).await,
            Scenario::Crosscheck => crosscheck::run(ctx).await,
            Scenario::Recovery => recovery::run(ctx).await,
            Scenario::Multihost => multihost::run(ctx).await,
            Scenario::Soak => soak::run(ctx).await,
        };
        ctx.console.end_scenario();
        if let Err(e) = outcome {
            ctx.fail("-", &scenario.name(), e);
        }
        ctx.save()?;
    }
    Ok(())
}

/// A load plan against `base` + `path`.
pub(super) fn load_plan(base: &str, method: Method, path: &str, body: Option<Bytes>) -> anyhow::Result<LoadPlan> {
    let target = parse_target(&format!("{base}{path}")).map_err(|e| anyhow!("{e}"))?;
    let mut plan = LoadPlan::new(target);
    plan.method = method;
    if let Some(body) = body {
        plan.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        plan.body = body;
    }
    Ok(plan)
}

/// Closed loop with the run's warm-up and duration.
pub(super) fn closed(mut plan: LoadPlan, connections: usize, duration: Duration, warmup: Duration) -> LoadPlan {
    plan.connections = connections;
    plan.pacing = Pacing::Closed;
    plan.stop = Stop::After(duration);
    plan.warmup = warmup;
    plan
}

/// Fixed rate, latency from each request's scheduled start.
pub(super) fn open(
    mut plan: LoadPlan,
    connections: usize,
    per_sec: f64,
    duration: Duration,
    warmup: Duration,
) -> LoadPlan {
    plan.connections = connections;
    plan.pacing = Pacing::Fixed { per_sec };
    plan.stop = Stop::After(duration);
    plan.warmup = warmup;
    plan
}

/// An entry for one load run.
pub(super) fn load_entry(
    model: &str,
    scenario: &str,
    variant: &str,
    repeat: u32,
    report: &LoadReport,
    keep_timeline: bool,
    processes: Vec<ProcessFigures>,
) -> Entry {
    Entry {
        model: model.into(),
        scenario: scenario.into(),
        variant: variant.into(),
        repeat,
        load: Some(LoadFigures::from_report(report, keep_timeline)),
        processes,
        ..Entry::default()
    }
}

/// Flags that keep a front model's app running and never recycled by
/// policy during a measurement (the models without policies get none).
pub(super) fn steady_flags(model: &str) -> Vec<String> {
    model
        .parse::<hostlab_hosts::Model>()
        .map(|m| m.steady_flags().iter().map(|f| f.to_string()).collect())
        .unwrap_or_default()
}

/// A `POST /tasks` body: `rows` balanced rows under task id `id`.
pub(super) fn task_body(id: &str, rows: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|i| {
            let (debit, credit) = if i % 2 == 0 { (1000 + i as i64, 0) } else { (0, 999 + i as i64) };
            serde_json::json!({"account": format!("{:04}-{:03}", 4000 + i % 100, i % 1000), "debit_cents": debit, "credit_cents": credit})
        })
        .collect();
    serde_json::json!({"id": id, "kind": "ledger", "rows": rows})
}
