//! The worker process: hosts the workload's router in-process on the
//! socket its supervisor shares with it (`hostlab serve worker` under
//! `inprocess`, `hostlab serve front` under `split`, whose actors live in the
//! actor service: see `split_front.rs`). It serves a private port for
//! warm-up at once, takes connections from the shared socket only when told
//! (`accept`), and reports its traffic ([`crate::worker_protocol`]).

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

use tower::Layer;

use crate::front::{self, DrainSignal, FrontPipeline, FrontState};
use crate::lifecycle::{self, Server};
use crate::worker_protocol::{Command, Event};
use crate::{Model, ServeError, ServeOptions, bind_std, signals, split_front};
use hostlab_workloads::{AppState, Workload, app};

/// `hostlab serve worker`: one worker process of `inprocess`.
///
/// `hostlab serve front` is the same process with the actors elsewhere
/// (`--actors ADDR`, the split model). Started by `serve split` it inherits
/// the socket like a worker; started by hand it binds `--listen` itself and
/// accepts at once.
pub(crate) fn serve(mut options: ServeOptions) -> Result<(), ServeError> {
    let standalone = options.inherited.is_none() && options.model == Model::Front;
    let shared = match options.inherited.take() {
        Some(inherited) => inherited,
        None if standalone => bind_std(options.listen)?,
        None => return Err(ServeError::NoInheritedSocket),
    };
    shared.set_nonblocking(true)?;
    lifecycle::serve(options.model, || async move {
        let workload = if options.actors.is_empty() {
            Workload::start(options.workload_config()).await?
        } else {
            split_front::connect(&options, &options.actors).await?
        };
        let router = app(workload.clone());
        let shared = TcpListener::from_std(shared)?;
        let shared_addr = shared.local_addr()?;
        let private = TcpListener::from_std(bind_std("127.0.0.1:0".parse().expect("valid address"))?)?;
        let private_addr = private.local_addr()?;

        // The private port serves warm-up requests until the worker exits.
        // Its own state: warm-up requests are not the worker's traffic.
        let (private_drain, private_rx) = DrainSignal::new();
        let (private_router, private_state) = (router.clone(), FrontState::new(options.limits));
        tokio::spawn(front::serve(
            private,
            private_state.clone(),
            move |peer| FrontPipeline::new(private_state.clone(), peer).layer(private_router.clone()),
            private_rx,
            options.policy.shutdown_limit,
        ));
        Ok(Worker {
            standalone,
            shared,
            shared_addr,
            private_addr,
            _private_drain: private_drain,
            router,
            workload,
            options,
        })
    })
}

/// A started worker: warm-up port serving, the shared socket not accepted
/// from yet.
struct Worker {
    standalone: bool,
    shared: TcpListener,
    shared_addr: SocketAddr,
    private_addr: SocketAddr,
    /// Kept so the warm-up port serves until the worker exits.
    _private_drain: DrainSignal,
    router: axum::Router,
    workload: AppState,
    options: ServeOptions,
}

impl Server for Worker {
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>) {
        (self.shared_addr, (!self.standalone).then_some(self.private_addr))
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let Worker {
            standalone,
            shared,
            shared_addr,
            router,
            workload,
            options,
            ..
        } = self;
        tokio::pin!(shutdown);
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        // Wait for the supervisor's `accept` (or the end).
        let accept = standalone
            || loop {
                tokio::select! {
                    line = stdin.next_line() => match line {
                        Ok(Some(l)) if Command::parse(&l) == Some(Command::Accept) => break true,
                        Ok(Some(_)) => continue,
                        _ => break false,
                    },
                    () = &mut shutdown => break false,
                }
            };
        if !accept {
            workload.shutdown().await;
            return Ok(());
        }
        tracing::debug!(
            "worker {} accepting on {shared_addr} (fd {})",
            std::process::id(),
            shared.as_raw_fd()
        );
        let state = FrontState::new(options.limits);
        let (drain, drain_rx) = DrainSignal::new();
        let serving = tokio::spawn(front::serve(
            shared,
            state.clone(),
            {
                let state = state.clone();
                move |peer| FrontPipeline::new(state.clone(), peer).layer(router.clone())
            },
            drain_rx,
            options.policy.shutdown_limit,
        ));
        if standalone {
            // Nobody manages a front started by hand: SIGHUP must not kill
            // it, and its stdout carries only the ready line.
            signals::ignore_recycle_signal("front");
        } else {
            tokio::spawn(report_traffic(
                state.clone(),
                options.policy.idle_timeout,
                options.policy.recycle_requests,
            ));
        }
        tokio::select! {
            () = &mut shutdown => {}
            _ = async {
                while let Ok(Some(line)) = stdin.next_line().await {
                    if Command::parse(&line) == Some(Command::Quiesce) {
                        state.close_idle_connections();
                    }
                }
            }, if !standalone => {
                tracing::warn!("supervisor gone (stdin closed); draining");
            }
        }
        drain.drain();
        let _ = serving.await;
        workload.shutdown().await;
        Ok(())
    }
}

/// Tell the supervisor (stdout lines) when traffic stops for the idle
/// timeout, resumes, or reaches the recycle request count.
async fn report_traffic(state: Arc<FrontState>, idle_timeout: Duration, recycle_requests: Option<u64>) {
    let mut last_count = state.counters.requests.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    let mut idle = false;
    let mut limit_reported = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let count = state.counters.requests.load(Ordering::Relaxed);
        let in_flight = state.counters.in_flight.load(Ordering::Relaxed);
        if count != last_count || in_flight > 0 {
            last_count = count;
            last_change = Instant::now();
            if idle {
                idle = false;
                Event::Active.emit();
            }
        } else if !idle_timeout.is_zero() && last_change.elapsed() >= idle_timeout {
            // Said again every idle period while idle: the supervisor may
            // have thawed this worker for a connection that sent nothing.
            idle = true;
            last_change = Instant::now();
            Event::Idle.emit();
        }
        if !limit_reported && recycle_requests.is_some_and(|n| count >= n) {
            limit_reported = true;
            Event::Requests.emit();
        }
    }
}
