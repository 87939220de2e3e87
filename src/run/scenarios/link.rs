//! Link (claim C8): the split model's remoting connection alone, without
//! HTTP. A sink process (`hostlab link-sink`, pinned to the server CPUs)
//! and a sender in the driver (on the generator's CPUs) share one
//! ractor_cluster session; each repeat measures one-way messages/s with
//! many messages in flight, then round trips/s with many calls in flight
//! (`hostlab_workloads::link`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use hostlab_hosts::child::{ChildProcess, ChildSpec};
use hostlab_workloads::link::LinkSender;

use crate::run::Ctx;
use crate::run::results::{Entry, LinkFigures};

/// One-way messages per window (at most this many undelivered).
pub(crate) const ONE_WAY_IN_FLIGHT: u64 = 10_000;
/// Concurrent calls of the round-trip measurement.
pub(crate) const CALLS_IN_FLIGHT: usize = 64;

pub(crate) const ONE_WAY: &str = "one-way and round trips";

/// The model whose link this is.
const MODEL: &str = "split";

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    if !ctx.plan.has_model(MODEL) {
        ctx.skip(
            Some(MODEL),
            "link",
            "the link is the split model's remoting connection: add split to --models".into(),
        );
        return Ok(());
    }
    ctx.console.step("link", MODEL, "starting");
    let spec = ChildSpec {
        args: ["link-sink", "--listen", "127.0.0.1:0"].map(String::from).to_vec(),
        listener: None,
        startup_limit: Duration::from_secs(30),
        cpus: Some(ctx.plan.server_cpus.clone()),
    };
    let mut sink = ChildProcess::start(spec).await.context("cannot start the link sink")?;
    let outcome = measure(ctx, &sink).await;
    sink.stop(Duration::from_secs(10)).await;
    outcome
}

async fn measure(ctx: &mut Ctx, sink: &ChildProcess) -> anyhow::Result<()> {
    let addr: SocketAddr = sink
        .url
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("the link sink's ready line has no address: {}", sink.url))?;
    let sender = LinkSender::connect(addr).await.map_err(|e| anyhow!(e))?;
    let duration = ctx.plan.claim_duration;
    // Warm-up: the session's buffers and both runtimes.
    sender
        .one_way(ctx.plan.warmup, ONE_WAY_IN_FLIGHT)
        .await
        .map_err(|e| anyhow!(e))?;
    for repeat in 1..=ctx.plan.claim_repeats {
        ctx.console
            .step("link", MODEL, &format!("{repeat}/{}", ctx.plan.claim_repeats));
        let (messages, one_way_time) = sender
            .one_way(duration, ONE_WAY_IN_FLIGHT)
            .await
            .map_err(|e| anyhow!(e))?;
        let (round_trips, round_trip_time) = sender
            .round_trips(duration, CALLS_IN_FLIGHT)
            .await
            .map_err(|e| anyhow!(e))?;
        ctx.push(Entry {
            model: MODEL.into(),
            scenario: "link".into(),
            variant: ONE_WAY.into(),
            repeat,
            link: Some(LinkFigures {
                one_way_per_sec: messages as f64 / one_way_time.as_secs_f64(),
                round_trips_per_sec: round_trips as f64 / round_trip_time.as_secs_f64(),
                in_flight: ONE_WAY_IN_FLIGHT as usize,
                calls_in_flight: CALLS_IN_FLIGHT,
                messages,
                round_trips,
            }),
            ..Entry::default()
        });
    }
    ctx.save()
}
