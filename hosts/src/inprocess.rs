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
//! The workers are `worker.rs`; the supervisor and its workers speak
//! [`crate::worker_protocol`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::TcpListener;

use axum::response::IntoResponse;
use hostlab_workloads::error::ApiError;
use tower::Layer;

use crate::front::{self, DrainSignal, FrontPipeline, FrontState};
use crate::lifecycle::{self, Server};
use crate::manager::{Hosting, Manager, Phase};
use crate::{Model, ServeError, ServeOptions, admin, bind_std, signals};

/// `hostlab serve inprocess`: the supervisor.
pub(crate) fn serve(options: ServeOptions) -> Result<(), ServeError> {
    lifecycle::serve(options.model, || async {
        SocketOwner::start(&options, options.child_args(Model::Worker), None, 1).await
    })
}

/// The supervisor process of a model whose workers share its socket: the
/// shared socket, its workers' manager, the admin endpoint; used by `inprocess` (workers host the actors) and `split`
/// (workers are fronts of the actor service).
///
/// `split --fronts N` runs N workers on the one socket, each under a
/// manager of its own (started, warmed, restarted and recycled like the
/// single worker); SIGHUP recycles all of them at once, each overlapped. The
/// admin endpoint and on-demand start speak for the first one.
pub(crate) struct SocketOwner {
    pub manager: Manager,
    /// The managers of the further workers (`split --fronts N`, N > 1).
    pub others: Vec<Manager>,
    addresses: (SocketAddr, Option<SocketAddr>),
}

impl Server for SocketOwner {
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>) {
        self.addresses
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        shutdown.await;
        self.shutdown().await;
        Ok(())
    }
}

impl SocketOwner {
    /// Bind, start the manager (and the first worker with always-running),
    /// and serve the admin endpoint.
    /// With `workers` > 1, the further workers get managers of their own.
    pub(crate) async fn start(
        options: &ServeOptions,
        worker_args: Vec<String>,
        actors_pid: Option<Arc<std::sync::atomic::AtomicU32>>,
        workers: usize,
    ) -> Result<SocketOwner, ServeError> {
        let listener = bind_std(options.listen)?;
        let addr = listener.local_addr()?;
        let hosting = Hosting::InProcess {
            listener: listener.try_clone()?,
            worker_args: worker_args.clone(),
        };
        let manager = Manager::start(hosting, options.policy.clone()).await;
        let mut others = Vec::new();
        for _ in 1..workers {
            let hosting = Hosting::InProcess {
                listener: listener.try_clone()?,
                worker_args: worker_args.clone(),
            };
            let other = Manager::start(hosting, options.policy.clone()).await;
            signals::recycle_on_sighup(other.clone());
            tokio::spawn(start_on_demand(listener.try_clone()?, other.clone()));
            others.push(other);
        }
        let admin_addr = match options.admin {
            Some(a) => Some(admin::serve(a, options.admin_token.clone(), manager.clone(), None, actors_pid).await?),
            None => None,
        };
        signals::recycle_on_sighup(manager.clone());
        tokio::spawn(start_on_demand(listener.try_clone()?, manager.clone()));
        tokio::spawn(refuse_while_failed(listener, manager.clone(), options.limits));
        Ok(SocketOwner {
            manager,
            others,
            addresses: (addr, admin_addr),
        })
    }

    /// Drain and stop every worker, all at once.
    pub(crate) async fn shutdown(&self) {
        let mut stops = tokio::task::JoinSet::new();
        for manager in std::iter::once(&self.manager).chain(&self.others) {
            let manager = manager.clone();
            stops.spawn(async move { manager.shutdown().await });
        }
        while stops.join_next().await.is_some() {}
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
            // Offline (`app_offline`): the refusing front answers them with
            // the page, not a failed-start error.
            if manager.phase() == Phase::Offline {
                continue;
            }
            // Like ANCM's 502.5 page: the connections that asked for the app
            // get an answer saying it did not start, not silence.
            answer_waiting_connections(fd.get_ref(), &why).await;
        }
    }
}

/// After rapid-fail protection tripped, or while the app is offline
/// (`app_offline`), no worker runs; like HTTP.sys for a stopped application
/// pool, answer 503 instead of leaving clients hanging.
async fn refuse_while_failed(listener: std::net::TcpListener, manager: Manager, limits: crate::limits::Limits) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let mut phases = manager.phases();
    loop {
        let refusing = |p: &Phase| matches!(p, Phase::Failed | Phase::Offline);
        let _ = phases.wait_for(refusing).await;
        let (drain, drain_rx) = DrainSignal::new();
        let why = manager.clone();
        let refuse = tower::service_fn(move |_req: http::Request<axum::body::Body>| {
            let response = crate::proxy::unavailable(why.unavailable_now());
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let state = FrontState::new(limits);
        let serving = front::serve(
            listener_clone(&listener),
            state.clone(),
            move |peer| FrontPipeline::new(state.clone(), peer).layer(refuse.clone()),
            drain_rx,
            Duration::from_millis(100),
        );
        tokio::pin!(serving);
        tokio::select! {
            _ = &mut serving => {}
            _ = async { let _ = phases.wait_for(|p| !refusing(p)).await; } => {
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
                let response = ApiError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "app_unavailable",
                    format!("the app did not start: {why}"),
                )
                .upstream()
                .retry_after(1)
                .closing()
                .into_response();
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        });
    }
}
