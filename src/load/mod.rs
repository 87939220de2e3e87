//! The load generator: `hostlab load <URL>` and the measurement core that
//! scenarios call as a library ([`run`] with a [`LoadPlan`], giving a
//! [`LoadReport`]). Method and output formats: docs/load.md.
//!
//! Data flows one way: workers (one per connection, `client`) -> channel ->
//! `collector` (per-interval histograms, merged per phase) -> `report` ->
//! `console` / `export`.

mod client;
mod collector;
mod console;
mod cpu;
mod export;
mod pacing;
mod plan;
mod report;
mod runner;
mod stats;
mod wire;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http::{HeaderName, HeaderValue, Method};

// The library surface for scenarios (`hostlab run`); not all of it is used
// by the command itself.
#[allow(unused_imports)]
pub use collector::{Live, Phase, TimelineRow};
#[allow(unused_imports)]
pub use cpu::{allowed as allowed_cpus, pin as pin_cpus};
#[allow(unused_imports)]
pub use plan::{LoadPlan, Pacing, PlanError, Stop, Target, parse_cpu_list, parse_target};
#[allow(unused_imports)]
pub use report::{
    Environment, ErrorCounts, Generator, LATE_SEND_SHARE_OF_P50, LoadReport, PhaseReport, Requests, SendLag,
    schedule_kept,
};
#[allow(unused_imports)]
pub use runner::{LoadError, run};
#[allow(unused_imports)]
pub use stats::{LatencySummary, Outcome, SpectrumPoint};
pub(crate) use wire::classify_io;

/// Raw arguments of `hostlab load` (DESIGN.md "Command line"), boxed so the
/// CLI's subcommand enum stays small.
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub options: Box<LoadOptions>,
}

/// The flags of `hostlab load`. Values clap cannot check by type are checked
/// by the parsers in `plan`, so every bad argument is rejected by clap with
/// exit code 2.
#[derive(Debug, Args)]
pub struct LoadOptions {
    /// Target URL (plain http), e.g. http://127.0.0.1:8080/ping.
    #[arg(value_parser = plan::parse_target)]
    pub url: Target,
    /// Keep-alive connections (one task each).
    #[arg(short = 'c', long = "connections", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// Measured duration (e.g. 10s, 1m).
    #[arg(short = 'd', long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many measured requests instead of after -d.
    #[arg(short = 'n', long = "requests", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Warm-up before the measured phase, reported on its own.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Open loop: total requests per second on a fixed schedule; latency is
    /// then measured from each request's scheduled start. Unset: closed loop.
    #[arg(short = 'r', long, value_parser = plan::parse_rate)]
    pub rate: Option<f64>,
    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET", value_parser = plan::parse_method)]
    pub method: Method,
    /// Request body, or @FILE to send a file's contents.
    #[arg(short = 'b', long, value_parser = plan::parse_body)]
    pub body: Option<Bytes>,
    /// Request header 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_parser = plan::parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A request without a full response this long after its scheduled
    /// start counts as a timeout.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Length of one timeline interval.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Write the JSON result here (schema: docs/load.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the per-interval timeline CSV here (columns: docs/load.md).
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// No live progress bar (also off when stdout is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Open loop: wake this long before each slot and yield the rest of the
    /// way; it must cover the timer's wake-up latency (docs/load.md) and
    /// costs up to this much CPU per slot.
    #[arg(long, default_value = "200us", value_parser = humantime::parse_duration)]
    pub pacing_lead: Duration,
    /// Pin the generator to these CPUs (e.g. 0 or 0,2-3); one runtime
    /// worker thread per CPU.
    #[arg(long, value_parser = parse_allowed_cpus)]
    pub cpus: Option<CpuList>,
}

/// CPU numbers from `--cpus`, sorted and distinct.
#[derive(Debug, Clone)]
pub struct CpuList(pub Vec<usize>);

/// A CPU list whose CPUs this process may actually use.
fn parse_allowed_cpus(list: &str) -> Result<CpuList, PlanError> {
    let cpus = plan::parse_cpu_list(list)?;
    let allowed = cpu::allowed();
    if let Some(bad) = cpus.iter().find(|c| !allowed.contains(c)) {
        return Err(PlanError::CpuList {
            list: list.to_string(),
            reason: format!("CPU {bad} is not available (available: {allowed:?})"),
        });
    }
    Ok(CpuList(cpus))
}

impl LoadOptions {
    fn plan(&self) -> LoadPlan {
        let mut plan = LoadPlan::new(self.url.clone());
        plan.method = self.method.clone();
        for (name, value) in &self.headers {
            plan.header(name.clone(), value.clone());
        }
        plan.body = self.body.clone().unwrap_or_default();
        plan.connections = self.connections as usize;
        plan.pacing = match self.rate {
            Some(per_sec) => Pacing::Fixed { per_sec },
            None => Pacing::Closed,
        };
        plan.stop = match self.requests {
            Some(n) => Stop::Count(n),
            None => Stop::After(self.duration),
        };
        plan.warmup = self.warmup;
        plan.timeout = self.timeout;
        plan.interval = self.interval.max(Duration::from_millis(1));
        plan.pacing_lead = self.pacing_lead;
        plan
    }
}

/// Tasks the runtime polls between two polls of its I/O driver in open
/// loop (tokio's `event_interval`, 61 by default). The pacer yields to the
/// runtime between slots, and a task that yields runs again only after the
/// next poll of the I/O driver: with the default it waited behind up to 61
/// connection tasks, about 5 µs each, so up to 300 µs, and that wait was
/// the generator's own send lag (docs/load.md, "The pacer's turn"). With 8
/// it waits for at most about 40 µs; closed loop, where no task yields,
/// keeps the default.
pub const OPEN_LOOP_EVENT_INTERVAL: u32 = 8;

/// The tokio runtime a load run needs: `threads` worker threads (pin the
/// process before, so they inherit its CPUs), I/O and timers, and in open
/// loop [`OPEN_LOOP_EVENT_INTERVAL`].
pub fn runtime(threads: usize, pacing: Pacing) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(threads.max(1));
    if let Pacing::Fixed { .. } = pacing {
        builder.event_interval(OPEN_LOOP_EVENT_INTERVAL);
    }
    builder
        // No signal or process driver: they cost a check at every park
        // (about 1% of the generator's CPU at 93k req/s, `perf record`).
        .enable_io()
        .enable_time()
        .build()
}

pub fn main(args: LoadArgs) -> anyhow::Result<()> {
    let args = args.options;
    let plan = args.plan();
    // Pin before the runtime exists: its threads inherit the affinity.
    let threads = match &args.cpus {
        Some(CpuList(cpus)) => {
            cpu::pin(cpus).with_context(|| format!("cannot pin the generator to CPUs {cpus:?}"))?;
            cpus.len()
        }
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let runtime = runtime(threads, plan.pacing).context("cannot start the tokio runtime")?;
    let show_progress = !args.no_progress && std::io::stdout().is_terminal();
    let report = runtime.block_on(async {
        let live = Arc::new(Live::default());
        let bar = show_progress.then(|| console::progress_bar(plan.warmup + args.duration));
        let follower = bar.clone().map(|bar| tokio::spawn(console::follow(bar, live.clone())));
        let report = run(&plan, Some(live)).await;
        if let Some(f) = follower {
            f.abort();
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        report
    })?;
    print!("{}", console::summary(&report));
    if let Some(path) = &args.json {
        export::write_json(path, &report)?;
    }
    if let Some(path) = &args.timeline {
        export::write_timeline(path, &report.timeline)?;
    }
    let requests = &report.measured.requests;
    if requests.ok == 0 {
        bail!(
            "no request succeeded ({} sent: {}); is the server at {} running and answering?",
            requests.total,
            console::errors_line(&report.measured),
            report.url
        );
    }
    Ok(())
}
