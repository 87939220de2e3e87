//! `inprocess`: the in-process model (ANCM in-process). A supervisor process
//! owns the listening socket, as HTTP.sys does for IIS, and runs worker
//! processes (`hostlab serve worker`) that inherit it as fd 3 and call the
//! workload's router in-process: the same front pipeline as `proxy`, but no
//! second HTTP hop.
//!
//! Both workers of an overlapped recycle accept from the one shared socket,
//! so no queued connection is lost when the old one stops accepting (with
//! SO_REUSEPORT each socket has its own queue, and closing it drops it).
//!
//! The supervisor and its workers speak [`crate::worker_protocol`].

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpListener;

use crate::front::{self, DrainSignal, FrontState};
use crate::manager::{Hosting, Manager, Phase};
use crate::worker_protocol::{Command, Event};
use crate::{Model, ServeError, ServeOptions, admin, announce_ready, bind_std, signals};
use hostlab_workloads::remote::RemoteActors;
use hostlab_workloads::{Backend, Workload, app};

/// `hostlab serve inprocess`: the supervisor.
pub(crate) fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let runtime = crate::server_runtime()?;
    runtime.block_on(async {
        let worker_args = options.child_args(Model::Worker);
        let supervisor = Supervisor::start(&options, worker_args, None).await?;
        signals::shutdown_signal().await;
        supervisor.manager.shutdown().await;
        Ok(())
    })
}

/// A running supervisor: the shared socket, its workers' manager, the admin
/// endpoint; used by `inprocess` (workers host the actors) and `split`
/// (workers are fronts of the actor service).
pub(crate) struct Supervisor {
    pub manager: Manager,
}

impl Supervisor {
    /// Bind, start the manager (and the first worker with always-running),
    /// serve the admin endpoint, and print the ready line.
    pub(crate) async fn start(
        options: &ServeOptions,
        worker_args: Vec<String>,
        actors_pid: Option<Arc<std::sync::atomic::AtomicU32>>,
    ) -> Result<Supervisor, ServeError> {
        let listener = bind_std(options.listen)?;
        let addr = listener.local_addr()?;
        let hosting = Hosting::InProcess {
            listener: listener.try_clone()?,
            worker_args,
        };
        let manager = Manager::start(hosting, options.policy.clone()).await;
        let admin_addr = match options.admin {
            Some(a) => Some(admin::serve(a, options.admin_token.clone(), manager.clone(), None, actors_pid).await?),
            None => None,
        };
        signals::recycle_on_sighup(manager.clone());
        tokio::spawn(start_on_demand(listener.try_clone()?, manager.clone()));
        tokio::spawn(refuse_while_failed(listener, manager.clone(), options.limits));
        announce_ready(options.model, addr, admin_addr);
        Ok(Supervisor { manager })
    }
}

/// While no worker runs (on-demand start, idle terminate) or the worker is
/// suspended, a connection waiting on the shared socket starts or thaws one.
/// The supervisor only watches the socket; the worker accepts the connection.
async fn start_on_demand(listener: std::net::TcpListener, manager: Manager) {
    // SAFETY: the AsyncFd owns this duplicate of the listening socket, so
    // its fd stays open and unchanged for the AsyncFd's whole life.
    #[allow(unsafe_code)]
    let Ok(fd) = (unsafe { AsyncFd::register(listener) }) else {
        return;
    };
    let mut phases = manager.phases();
    loop {
        let _ = phases
            .wait_for(|p| matches!(p, Phase::Stopped | Phase::Suspended))
            .await;
        let Ok(mut ready) = fd.readable().await else { return };
        // tokio remembers readiness until it is cleared, and a worker may
        // have accepted the connection that set it: ask the socket itself.
        if !connection_waiting(fd.get_ref()) {
            ready.clear_ready();
            continue;
        }
        ready.clear_ready();
        if let Err(why) = manager.demand_and_wait().await {
            // Like ANCM's 502.5 page: the connections that asked for the app
            // get an answer saying it did not start, not silence.
            answer_waiting_connections(fd.get_ref(), &why).await;
        }
    }
}

/// After rapid-fail protection tripped no worker runs; like HTTP.sys for a
/// stopped application pool, answer 503 instead of leaving clients hanging.
async fn refuse_while_failed(listener: std::net::TcpListener, manager: Manager, limits: crate::limits::Limits) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut phases = manager.phases();
    loop {
        let _ = phases.wait_for(|p| *p == Phase::Failed).await;
        let (drain, drain_rx) = DrainSignal::new();
        let refuse = tower::service_fn(|_req: http::Request<axum::body::Body>| async {
            Ok::<_, std::convert::Infallible>(crate::proxy::unavailable(crate::manager::Unavailable::RapidFail))
        });
        let serving = front::serve(
            listener_clone(&listener),
            FrontState::new(limits),
            move || refuse,
            drain_rx,
            Duration::from_millis(100),
        );
        tokio::pin!(serving);
        tokio::select! {
            _ = &mut serving => {}
            _ = async { let _ = phases.wait_for(|p| *p != Phase::Failed).await; } => {
                drain.drain();
                serving.await;
            }
        }
    }
}

fn listener_clone(listener: &TcpListener) -> TcpListener {
    use std::os::fd::AsFd;
    let fd = listener.as_fd().try_clone_to_owned().expect("dup the listening socket");
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true).expect("non-blocking socket");
    TcpListener::from_std(std_listener).expect("register the socket")
}

/// Longest a split front waits for its actor-service link before it says it
/// is ready anyway (and answers 503 `backend_unavailable` until linked).
const FRONT_LINK_WAIT: Duration = Duration::from_secs(5);

/// `hostlab serve worker`: one worker process of `inprocess`.
///
/// `hostlab serve front` is the same process with the actors elsewhere
/// (`--actors ADDR`, the split model). Started by `serve split` it inherits
/// the socket like a worker; started by hand it binds `--listen` itself and
/// accepts at once.
pub(crate) fn serve_worker(mut options: ServeOptions) -> Result<(), ServeError> {
    let standalone = options.inherited.is_none() && options.model == Model::Front;
    let shared = match options.inherited.take() {
        Some(inherited) => inherited,
        None if standalone => bind_std(options.listen)?,
        None => return Err(ServeError::NoInheritedSocket),
    };
    shared.set_nonblocking(true)?;
    let runtime = crate::server_runtime()?;
    let result = runtime.block_on(async move {
        let workload = match options.actors {
            Some(service) => {
                // The reply deadline for the actor service is the split
                // front's upstream timeout (--upstream-timeout).
                let reply_timeout = options
                    .limits
                    .upstream_timeout
                    .unwrap_or(options.workload_config().ask_timeout);
                let remote = RemoteActors::connect(service, reply_timeout)
                    .await
                    .map_err(hostlab_workloads::StartError::from)?;
                // A front is not ready before its link is: wait (bounded) so a
                // recycle never switches traffic to a front that answers 503.
                let deadline = tokio::time::Instant::now() + FRONT_LINK_WAIT;
                while !remote.is_linked() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if !remote.is_linked() {
                    tracing::warn!("no session to the actor service at {service} yet; answering 503 until there is");
                }
                Workload::with_backend(options.workload_config(), Backend::Remote(remote))
            }
            None => Workload::start(options.workload_config()).await?,
        };
        let router = app(workload.clone());
        let shared = TcpListener::from_std(shared)?;
        let shared_addr = shared.local_addr()?;
        let private = TcpListener::from_std(bind_std("127.0.0.1:0".parse().expect("valid address"))?)?;
        let private_addr = private.local_addr()?;
        let state = FrontState::new(options.limits);
        let limit = options.policy.shutdown_limit;

        // The private port serves warm-up requests until the worker exits.
        let (_private_drain, private_rx) = DrainSignal::new();
        let private_router = router.clone();
        tokio::spawn(front::serve(
            private,
            FrontState::new(options.limits),
            move || private_router.clone(),
            private_rx,
            limit,
        ));

        let shutdown = signals::shutdown_signal();
        tokio::pin!(shutdown);
        let (drain, drain_rx) = DrainSignal::new();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        announce_ready(options.model, shared_addr, (!standalone).then_some(private_addr));

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
        let serving = tokio::spawn(front::serve(
            shared,
            state.clone(),
            move || router.clone(),
            drain_rx,
            limit,
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
    });
    // tokio reads stdin on a blocking thread that only returns when a line
    // arrives; do not wait for it.
    runtime.shutdown_background();
    result
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

/// Whether a connection waits in the listening socket's accept queue.
fn connection_waiting(listener: &std::net::TcpListener) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
        && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// Accept the connections waiting now and answer each with 503
/// `app_unavailable` saying `why`, then close it.
async fn answer_waiting_connections(listener: &std::net::TcpListener, why: &str) {
    while connection_waiting(listener) {
        let Ok((tcp, _)) = listener.accept() else { return };
        let why = why.to_owned();
        tokio::spawn(async move {
            let Ok(tcp) = tcp
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpStream::from_std(tcp))
            else {
                return;
            };
            let service = hyper::service::service_fn(move |_req| {
                let mut response = crate::proxy::error(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "app_unavailable",
                    &format!("the app did not start: {why}"),
                );
                let headers = response.headers_mut();
                headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        });
    }
}
