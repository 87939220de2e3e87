//! `split`: a thin, stateless front plus a long-lived actor service, joined
//! by actor remoting (ractor_cluster); the architecture the Akka.NET-on-IIS
//! article recommends. See `docs/split.md`.
//!
//! - `hostlab serve actors --listen ADDR`: the actor service: the workload's
//!   actors and the remoting gateway, on a node server that accepts fronts on
//!   ADDR (any address, so fronts may run on other machines).
//! - `hostlab serve front --actors ADDR`: the HTTP API, every operation sent
//!   to the actor service (a worker of `inprocess` with remote actors).
//! - `hostlab serve split`: both. The fronts run under the process manager,
//!   so they recycle exactly like `inprocess` workers; the actor service is a
//!   separate child that front recycles never touch, restarted on the same
//!   address only when it crashes. `--fronts N` runs N fronts on the shared
//!   socket (each under a manager of its own; SIGHUP recycles all at once,
//!   each overlapped); `--actors LIST` points them at external (sharded)
//!   nodes, and then split starts no actor service.
//! - `hostlab serve actors --shard I/M`: node I of a sharded actor service of
//!   M nodes (`hashing.rs`'s [`Shard`](hostlab_workloads::hashing::Shard)).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use hostlab_workloads::ops::LocalActors;
use hostlab_workloads::remote::{Gateway, accept_into, start_node};
use hostlab_workloads::start_local_actors;
use ractor::ActorCell;
use tokio::net::TcpListener;

use crate::child::{ChildProcess, ChildSpec};
use crate::inprocess::SocketOwner;
use crate::lifecycle::{self, Server};
use crate::{Model, ServeError, ServeOptions, bind_std, signals};

/// `hostlab serve actors`.
pub(crate) fn serve_actors(options: ServeOptions) -> Result<(), ServeError> {
    lifecycle::serve(options.model, || async {
        // A restarted service may find its crashed predecessor's journal lock
        // still held for a moment: start_local_actors waits for it.
        let local = Arc::new(start_local_actors(&options.workload_config()).await?);
        let (gateway, _) = ractor::Actor::spawn(None, Gateway, (local.clone(), options.shard))
            .await
            .map_err(hostlab_workloads::StartError::from)?;
        // Each node's own name: ractor_cluster keeps one session per peer
        // name, so a front linked to two nodes of one name would lose one.
        let name = format!(
            "hostlab-actors-{}of{}-{}",
            options.shard.index,
            options.shard.count,
            std::process::id()
        );
        let node = start_node(&name).await.map_err(hostlab_workloads::StartError::from)?;
        let listener = TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        signals::ignore_recycle_signal("actors");
        tokio::spawn(accept_into(listener, node.clone()));
        Ok(ActorService {
            addr,
            local,
            gateway: gateway.get_cell(),
            node: node.get_cell(),
        })
    })
}

/// A started actor service.
struct ActorService {
    /// The node address fronts connect to; it speaks ractor_cluster's
    /// protocol, not HTTP (the ready line's url names it all the same).
    addr: SocketAddr,
    local: Arc<LocalActors>,
    gateway: ActorCell,
    node: ActorCell,
}

impl Server for ActorService {
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>) {
        (self.addr, None)
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        shutdown.await;
        self.gateway.stop(None);
        self.node.stop(None);
        self.local.stop();
        self.local.close_journal().await;
        Ok(())
    }
}

/// `hostlab serve split`.
pub(crate) fn serve(options: ServeOptions) -> Result<(), ServeError> {
    lifecycle::serve(options.model, || async {
        let mut front_args = options.child_args(Model::Front);
        // External nodes (`--actors LIST`): no actor service of our own.
        if !options.actors.is_empty() {
            let list: Vec<String> = options.actors.iter().map(ToString::to_string).collect();
            front_args.extend(["--actors".into(), list.join(",")]);
            let fronts = SocketOwner::start(&options, front_args, None, options.fronts).await?;
            return Ok(Split {
                fronts,
                service: None,
                shutdown_limit: options.policy.shutdown_limit,
            });
        }
        let mut service_args: Vec<String> = options.child_args(Model::Actors);
        let limit = options.policy.startup_limit;
        let mut service = ChildProcess::start(ChildSpec::new(service_args.clone(), limit))
            .await
            .map_err(|e| ServeError::Io(std::io::Error::other(e.to_string())))?;
        let service_addr: SocketAddr = service
            .url
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| ServeError::Io(std::io::Error::other(format!("actor service url: {e}"))))?;
        // A restarted service binds the same address, so fronts reconnect to it.
        set_listen(&mut service_args, service_addr);
        let actors_pid = Arc::new(AtomicU32::new(service.pid));
        let stopping = Arc::new(AtomicBool::new(false));

        front_args.extend(["--actors".into(), service_addr.to_string()]);
        let fronts = SocketOwner::start(&options, front_args, Some(actors_pid.clone()), options.fronts).await?;

        let keeper = {
            let (actors_pid, stopping) = (actors_pid.clone(), stopping.clone());
            tokio::spawn(async move {
                loop {
                    let status = service.wait().await;
                    if stopping.load(Ordering::SeqCst) {
                        return service;
                    }
                    tracing::warn!("actor service pid {} exited ({status:?}); restarting it", service.pid);
                    actors_pid.store(0, Ordering::Relaxed);
                    service = restart(&service_args, limit).await;
                    actors_pid.store(service.pid, Ordering::Relaxed);
                }
            })
        };
        Ok(Split {
            fronts,
            service: Some(ServiceKeeper {
                actors_pid,
                stopping,
                keeper,
            }),
            shutdown_limit: options.policy.shutdown_limit,
        })
    })
}

/// The actor service `split` started and restarts when it crashes.
struct ServiceKeeper {
    actors_pid: Arc<AtomicU32>,
    stopping: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<ChildProcess>,
}

/// A started `split`: the fronts' supervisor and the actor service's keeper
/// (none when the fronts use external nodes).
struct Split {
    fronts: SocketOwner,
    service: Option<ServiceKeeper>,
    shutdown_limit: Duration,
}

impl Server for Split {
    fn addresses(&self) -> (SocketAddr, Option<SocketAddr>) {
        self.fronts.addresses()
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        shutdown.await;
        // Fronts first (they drain their requests), then the state holder.
        self.fronts.shutdown().await;
        let Some(keeper) = self.service else { return Ok(()) };
        keeper.stopping.store(true, Ordering::SeqCst);
        let pid = keeper.actors_pid.load(Ordering::Relaxed);
        if pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if let Ok(Ok(mut service)) = tokio::time::timeout(self.shutdown_limit, keeper.keeper).await {
            service.stop(self.shutdown_limit).await;
        }
        Ok(())
    }
}

/// Start the actor service again, retrying (with backoff) until it binds.
async fn restart(args: &[String], limit: Duration) -> ChildProcess {
    let mut backoff = Duration::from_millis(50);
    loop {
        match ChildProcess::start(ChildSpec::new(args.to_vec(), limit)).await {
            Ok(service) => return service,
            Err(e) => {
                tracing::error!("actor service did not restart: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn set_listen(args: &mut [String], addr: SocketAddr) {
    if let Some(i) = args.iter().position(|a| a == "--listen") {
        args[i + 1] = addr.to_string();
    }
}
