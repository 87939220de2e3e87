//! Link (claim C8): the split model's remoting connection alone, without
//! HTTP. A sink process (`hostlab link-sink`, pinned to the server CPUs)
//! and a sender in the driver (on the generator's CPUs) share one
//! ractor_cluster session; each repeat measures one-way messages/s with
//! many messages in flight, then round trips/s with many calls in flight
//! (`hostlab_workloads::link`). The sender runs on a runtime of its own,
//! built as a `split` front's is.

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
    let plan = SenderPlan {
        addr,
        warmup: ctx.plan.warmup,
        duration: ctx.plan.claim_duration,
        repeats: ctx.plan.claim_repeats,
    };
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let sender = std::thread::Builder::new()
        .name("link-sender".into())
        .spawn(move || run_sender(plan, &events_tx))
        .context("cannot start the link sender's thread")?;
    while let Some(event) = events.recv().await {
        match event {
            SenderEvent::Repeat(repeat) => {
                ctx.console
                    .step("link", MODEL, &format!("{repeat}/{}", ctx.plan.claim_repeats))
            }
            SenderEvent::Measured(repeat, link) => ctx.push(Entry {
                model: MODEL.into(),
                scenario: "link".into(),
                variant: ONE_WAY.into(),
                repeat,
                link: Some(link),
                ..Entry::default()
            }),
        }
    }
    sender
        .join()
        .map_err(|_| anyhow!("the link sender panicked"))?
        .map_err(|e| anyhow!(e))?;
    ctx.save()
}

/// What the sender thread measures.
struct SenderPlan {
    addr: SocketAddr,
    warmup: Duration,
    duration: Duration,
    repeats: u32,
}

enum SenderEvent {
    /// This repeat starts.
    Repeat(u32),
    Measured(u32, LinkFigures),
}

/// The sender's side of the link, on a runtime of its own built as a
/// front's is (`server_runtime`: current-thread on one CPU, else one
/// worker per CPU), on this thread, which inherits the driver's generator
/// CPUs. So the link is measured with the scheduler a `split` front calls
/// through, not the driver's multi-thread one.
fn run_sender(plan: SenderPlan, events: &tokio::sync::mpsc::UnboundedSender<SenderEvent>) -> Result<(), String> {
    let runtime = hostlab_hosts::server_runtime().map_err(|e| format!("cannot start the sender's runtime: {e}"))?;
    runtime.block_on(async {
        let sender = LinkSender::connect(plan.addr).await?;
        // Warm-up: the session's buffers and both runtimes.
        sender.one_way(plan.warmup, ONE_WAY_IN_FLIGHT).await?;
        for repeat in 1..=plan.repeats {
            let _ = events.send(SenderEvent::Repeat(repeat));
            let (messages, one_way_time) = sender.one_way(plan.duration, ONE_WAY_IN_FLIGHT).await?;
            let (round_trips, round_trip_time) = sender.round_trips(plan.duration, CALLS_IN_FLIGHT).await?;
            let figures = LinkFigures {
                one_way_per_sec: messages as f64 / one_way_time.as_secs_f64(),
                round_trips_per_sec: round_trips as f64 / round_trip_time.as_secs_f64(),
                in_flight: ONE_WAY_IN_FLIGHT as usize,
                calls_in_flight: CALLS_IN_FLIGHT,
                messages,
                round_trips,
            };
            let _ = events.send(SenderEvent::Measured(repeat, figures));
        }
        Ok(())
    })
}
