//! Latency: open loop at fixed fractions of edge's measured `GET /ping`
//! capacity, per model, with percentiles from each request's scheduled
//! start (coordinated-omission correct).

use std::time::Duration;

use http::Method;

use super::throughput::PING;
use super::{closed, load_entry, load_plan, open, steady_flags};
use crate::run::Ctx;
use crate::run::servers::CpuProbe;
use crate::run::summary::{find, summarize};

/// Connections of the open-loop runs: enough in-flight requests for the
/// highest rate at a few milliseconds of latency.
const CONNECTIONS: usize = 128;

/// The variant name of one rate, e.g. `50% of edge (40000 req/s)`.
pub fn variant(fraction: f64, rate: f64) -> String {
    format!("{:.0}% of edge ({rate:.0} req/s)", fraction * 100.0)
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let capacity = match edge_capacity(ctx) {
        Some(c) => c,
        None => probe_edge_capacity(ctx).await?,
    };
    let rates: Vec<(f64, f64)> = ctx
        .plan
        .latency_fractions
        .iter()
        .map(|f| (*f, (f * capacity).max(1.0)))
        .collect();
    for model in ctx.plan.models.clone() {
        ctx.console.step("latency", &model, "starting");
        let server = match ctx.start(&model, &steady_flags(&model)).await {
            Ok(server) => server,
            Err(e) => {
                ctx.fail(&model, "latency", e);
                continue;
            }
        };
        let outcome = async {
            server.wait_serving(&ctx.http).await?;
            for &(fraction, rate) in &rates {
                let name = variant(fraction, rate);
                for repeat in 1..=ctx.plan.repeats {
                    ctx.console
                        .step("latency", &model, &format!("{name} {repeat}/{}", ctx.plan.repeats));
                    let plan = open(
                        load_plan(&server.url, Method::GET, "/ping", None)?,
                        CONNECTIONS,
                        rate,
                        ctx.plan.latency_duration,
                        Duration::from_millis(500),
                    );
                    let probe = CpuProbe::start(&server.pids());
                    let report = ctx.load(plan).await?;
                    let processes = probe.finish();
                    ctx.push(load_entry(&model, "latency", &name, repeat, &report, false, processes));
                }
            }
            anyhow::Ok(())
        }
        .await;
        server.stop().await;
        if let Err(e) = outcome {
            ctx.fail(&model, "latency", e);
            continue;
        }
        ctx.save()?;
    }
    Ok(())
}

/// Edge's median `GET /ping` throughput from this run's throughput scenario.
fn edge_capacity(ctx: &Ctx) -> Option<f64> {
    let rows = summarize(&ctx.results);
    find(&rows, "throughput", "edge", PING)?.rps.map(|s| s.median)
}

/// Without a throughput figure for edge, measure it now (recorded as a
/// latency entry, variant `capacity probe`).
async fn probe_edge_capacity(ctx: &mut Ctx) -> anyhow::Result<f64> {
    ctx.console.step("latency", "edge", "capacity probe");
    let server = ctx.start("edge", &[]).await?;
    let plan = closed(
        load_plan(&server.url, Method::GET, "/ping", None)?,
        ctx.plan.connections,
        ctx.plan.duration,
        ctx.plan.warmup,
    );
    let report = ctx.load(plan).await;
    server.stop().await;
    let report = report?;
    let rps = report.measured.requests_per_sec;
    if rps <= 0.0 {
        anyhow::bail!("edge answered no GET /ping in the capacity probe, so there is no rate to run at");
    }
    ctx.push(load_entry(
        "edge",
        "latency",
        "capacity probe",
        1,
        &report,
        false,
        Vec::new(),
    ));
    Ok(rps)
}
