//! [`run`]: one load run from a plan to a report. Resolves the target once,
//! starts one worker task per connection and the collector, and waits until
//! every scheduled request has its outcome. Prints nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::client::{Schedule, Slots, idle_queue, pace, worker};
use super::collector::{Collector, Live};
use super::plan::{LoadPlan, Pacing, Target};
use super::report::{Environment, LoadReport, RunFacts};

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot resolve {host}:{port}: {source}; check the host name in the URL")]
    Resolve {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("{host}:{port} resolved to no address; check the host name in the URL")]
    NoAddress { host: String, port: u16 },
    #[error("a load task failed unexpectedly: {0} (a bug in hostlab; please report it)")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs `plan` to the end and reports what it measured. Call it inside a
/// tokio runtime (multi-threaded for more than one CPU). `live`, if given,
/// is updated as outcomes arrive, for progress display.
pub async fn run(plan: &LoadPlan, live: Option<Arc<Live>>) -> Result<LoadReport, LoadError> {
    let addr = resolve(&plan.target).await?;
    let started = SystemTime::now();
    let start = Instant::now();
    let schedule = Arc::new(Schedule::new(plan.clone(), addr, start));
    // Bounded: if the collector ever falls behind, workers wait (and the
    // wait shows as send lag) instead of memory growing.
    let (tx, rx) = mpsc::channel(8192);
    let collector = tokio::spawn(
        Collector::new(start, plan.warmup, plan.interval, live)
            .keep_interval_histograms(plan.interval_histograms)
            .collect(rx),
    );
    let mut workers = JoinSet::new();
    // Open loop: one pacer hands due slots to idle connections; closed
    // loop: each connection claims its own.
    let slots = match plan.pacing {
        Pacing::Closed => Slots::Claim,
        Pacing::Fixed { .. } => {
            let (idle, queue) = idle_queue(&schedule);
            workers.spawn(pace(schedule.clone(), queue, tx.clone()));
            Slots::Paced(idle)
        }
    };
    for _ in 0..plan.connections.max(1) {
        workers.spawn(worker(schedule.clone(), slots.clone(), tx.clone()));
    }
    drop(slots);
    drop(tx);
    while let Some(done) = workers.join_next().await {
        done?;
    }
    let collected = collector.await?;
    let facts = RunFacts {
        elapsed: start.elapsed(),
        wait: schedule.wait_time(),
        worker_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        environment: Environment::capture(started),
    };
    Ok(LoadReport::new(plan, collected, facts))
}

async fn resolve(target: &Target) -> Result<SocketAddr, LoadError> {
    let (host, port) = (target.host.as_str(), target.port);
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| LoadError::Resolve {
            host: host.to_string(),
            port,
            source,
        })?;
    addrs.next().ok_or_else(|| LoadError::NoAddress {
        host: host.to_string(),
        port,
    })
}
