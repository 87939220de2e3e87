//! hostlab's hosting models. Each model serves the workload's one router
//! ([`hostlab_workloads::app`]); models differ only in how a request reaches
//! it: `edge` and `edge-actix` face clients directly (`app` is `edge` under
//! the name `proxy` starts it by), `proxy` forwards over loopback HTTP to an
//! app process it manages, and `inprocess` runs the router inside worker
//! processes that share the front's socket; `baseline` is a bare hyper
//! server answering `/ping`, the floor the others are measured against. The
//! process plumbing they share (ready line, signals, front pipeline, process
//! manager, policies, admin endpoint) lives here too.

mod actix;
pub mod admin;
mod baseline;
pub mod child;
mod edge;
mod fastpath;
pub mod front;
mod inprocess;
mod lifecycle;
pub mod limits;
pub mod manager;
mod model;
pub mod policy;
mod proxy;
mod relay;
pub mod signals;
mod split;
mod split_front;
mod worker;
pub mod worker_protocol;

use std::net::SocketAddr;

use hostlab_workloads::journal::JournalConfig;
use hostlab_workloads::{Routing, WorkloadConfig};

pub use model::{Model, Role};

/// What `hostlab serve` was asked to run.
#[derive(Debug)]
pub struct ServeOptions {
    pub model: Model,
    /// Address to listen on; port 0 picks a free port (the ready line shows it).
    pub listen: SocketAddr,
    pub routing: Routing,
    /// Messages each actor's mailbox holds before requests get 503 `overloaded`.
    pub mailbox: usize,
    /// Process policy of the front models; `edge` and `edge-actix` read only
    /// its `shutdown_limit` (the longest a graceful shutdown waits for
    /// in-flight requests before exiting anyway).
    pub policy: policy::Policy,
    /// Admin endpoint of the front models.
    pub admin: Option<SocketAddr>,
    /// Bearer token every admin call must carry (required for a
    /// non-loopback `admin` address).
    pub admin_token: Option<String>,
    /// Connection, header, body and upstream limits (docs/security.md).
    pub limits: limits::Limits,
    /// The split model's actor service (`serve front --actors ADDR`), or
    /// its nodes in shard order; empty: none given.
    pub actors: Vec<SocketAddr>,
    /// `serve actors --shard I/M`: the part of the keys this node owns.
    pub shard: hostlab_workloads::hashing::Shard,
    /// `serve split --fronts N`: fronts on the shared socket.
    pub fronts: usize,
    /// `--journal`: the processes that hold actors (edge, app, worker, the
    /// actor service) persist their state there and recover it at startup.
    pub journal: Option<JournalConfig>,
    /// The listening socket a worker inherited as fd 3, taken from the
    /// environment before any thread started (see [`take_inherited_listener`]).
    pub inherited: Option<std::net::TcpListener>,
}

impl ServeOptions {
    /// Arguments for a child `hostlab serve <model>` carrying this process's
    /// workload settings (and, for workers, the policies they enforce).
    fn child_args(&self, part: Model) -> Vec<String> {
        let mut args: Vec<String> = ["serve", part.name(), "--listen", "127.0.0.1:0"]
            .map(String::from)
            .into();
        args.extend(["--routing".into(), self.routing.to_string()]);
        args.extend(["--mailbox".into(), self.mailbox.to_string()]);
        let limit = humantime::format_duration(self.policy.shutdown_limit).to_string();
        args.extend(["--shutdown-limit".into(), limit]);
        if let Some(journal) = self.journal.as_ref().filter(|_| part.hosts_own_actors()) {
            args.extend(["--journal".into(), journal.path.display().to_string()]);
            args.extend(["--journal-sync".into(), journal.durability.to_string()]);
            args.extend(["--snapshot-every".into(), journal.snapshot_every.to_string()]);
        }
        if part.serves_workload() && part.process_role() != Some(Role::Actors) {
            args.extend(["--init-entries".into(), self.policy.init_entries.to_string()]);
            args.extend(["--first-hit-rounds".into(), self.policy.first_hit_rounds.to_string()]);
        }
        let limits = &self.limits;
        args.extend(["--max-connections".into(), limits.max_connections.to_string()]);
        for (flag, d) in [
            ("--header-read-timeout", Some(limits.header_read_timeout)),
            ("--body-read-timeout", Some(limits.body_read_timeout)),
            ("--upstream-timeout", limits.upstream_timeout),
        ] {
            if let Some(d) = d {
                args.extend([flag.into(), humantime::format_duration(d).to_string()]);
            }
        }
        // Workers watch their own traffic (idle timeout, request count).
        if part.process_role() == Some(Role::Worker) {
            let idle = humantime::format_duration(self.policy.idle_timeout).to_string();
            args.extend([
                "--idle-timeout".into(),
                if idle.is_empty() { "0s".into() } else { idle },
            ]);
            if let Some(n) = self.policy.recycle_requests {
                args.extend(["--recycle-requests".into(), n.to_string()]);
            }
        }
        args
    }

    fn workload_config(&self) -> WorkloadConfig {
        let mut config = WorkloadConfig::new(self.model.name());
        config.routing = self.routing;
        config.mailbox = self.mailbox;
        config.journal = self.journal.clone();
        config.shard = self.shard;
        config.body_read_timeout = self.limits.body_read_timeout;
        config.cold = hostlab_workloads::coldstart::ColdStartConfig {
            init_entries: self.policy.init_entries,
            first_hit_rounds: self.policy.first_hit_rounds,
        };
        config
    }
}

/// Errors `hostlab serve` reports before it is ready.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "`nginx` is a peer, not a hostlab server: `hostlab run` starts the system's nginx (with a generated config) in front of `hostlab serve app`"
    )]
    NginxIsAPeer,
    #[error(
        "`hostlab serve worker` runs under `hostlab serve inprocess`, which hands it the listening socket; start `inprocess` instead"
    )]
    NoInheritedSocket,
    #[error("the admin endpoint may listen on {0}, not a loopback address, only with --admin-token TOKEN set")]
    AdminNotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}; pick a free port, or port 0 to let the system choose")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Workload(#[from] hostlab_workloads::StartError),
    /// A node of a sharded actor service serves another shard than its
    /// place in `--actors`.
    #[error("{0}")]
    ShardMismatch(String),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Run `hostlab serve MODEL` until SIGTERM/SIGINT, then drain and return.
pub fn serve(options: ServeOptions) -> Result<(), ServeError> {
    match options.model {
        Model::Baseline => baseline::serve(&options),
        Model::Edge | Model::App => edge::serve(&options),
        Model::EdgeActix => actix::serve(&options),
        Model::Proxy => proxy::serve(options),
        Model::Inprocess => inprocess::serve(options),
        Model::Worker | Model::Front => worker::serve(options),
        Model::Actors => split::serve_actors(options),
        Model::Split => split::serve(options),
        Model::Nginx | Model::NginxBaseline => Err(ServeError::NginxIsAPeer),
    }
}

/// Print the one ready line (DESIGN.md) on stdout and flush it, so a parent
/// reading our stdout through a pipe sees it at once.
pub fn announce_ready(model: Model, addr: SocketAddr, admin: Option<SocketAddr>) {
    use std::io::Write;
    let line = child::ReadyLine {
        model: model.name().to_owned(),
        url: format!("http://{addr}"),
        pid: std::process::id(),
        admin: admin.map(|a| format!("http://{a}")),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Take the listening socket passed as fd 3 by `hostlab serve inprocess`
/// (`LISTEN_FDS=1`), if any. Call first thing in `main`, before any thread
/// starts: listenfd edits the environment.
pub fn take_inherited_listener() -> std::io::Result<Option<std::net::TcpListener>> {
    if std::env::var_os("LISTEN_FDS").is_none() {
        return Ok(None);
    }
    listenfd::ListenFd::from_env().take_tcp_listener(0)
}

fn bind_std(addr: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The tokio runtime every hostlab server process runs on: one worker
/// thread per CPU the process may use (`taskset` narrows it). With a single
/// CPU a current-thread runtime does the same work without the multi-thread
/// scheduler's cross-thread wake-ups; it measured about 8% more proxied
/// requests per second on one pinned CPU. Every model uses this one
/// function, so the comparison between models stays fair.
pub fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cpus)
            .enable_all()
            .build()
    }
}
