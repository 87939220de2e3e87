//! hostlab's hosting models. Each model serves the workload's one router
//! ([`hostlab_workloads::app`]); models differ only in how a request reaches
//! it. This crate holds the models built so far (`edge`, `edge-actix`, and
//! `app`, which is `edge` under the name the proxy models start it by) and
//! the process plumbing they share: the ready line and shutdown signals.

mod actix;
mod edge;
pub mod signals;

use std::net::SocketAddr;
use std::time::Duration;

use hostlab_workloads::{Routing, WorkloadConfig};

/// The `MODEL` argument of `hostlab serve` (DESIGN.md "Command line").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Edge,
    EdgeActix,
    Proxy,
    Inprocess,
    Split,
    Nginx,
    App,
    Worker,
    Actors,
    Front,
}

impl Model {
    pub const ALL: [Model; 10] = [
        Model::Edge,
        Model::EdgeActix,
        Model::Proxy,
        Model::Inprocess,
        Model::Split,
        Model::Nginx,
        Model::App,
        Model::Worker,
        Model::Actors,
        Model::Front,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Edge => "edge",
            Model::EdgeActix => "edge-actix",
            Model::Proxy => "proxy",
            Model::Inprocess => "inprocess",
            Model::Split => "split",
            Model::Nginx => "nginx",
            Model::App => "app",
            Model::Worker => "worker",
            Model::Actors => "actors",
            Model::Front => "front",
        }
    }

    /// Whether `hostlab serve` can run this model yet.
    pub fn is_built(self) -> bool {
        matches!(self, Model::Edge | Model::EdgeActix | Model::App)
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Model::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Model::ALL.iter().map(|m| m.name()).collect();
                format!("unknown model `{s}`; use one of: {}", names.join(", "))
            })
    }
}

/// What `hostlab serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub model: Model,
    /// Address to listen on; port 0 picks a free port (the ready line shows it).
    pub listen: SocketAddr,
    pub routing: Routing,
    /// Messages each actor's mailbox holds before requests get 503 `overloaded`.
    pub mailbox: usize,
    /// Longest a graceful shutdown waits for in-flight requests before exiting anyway.
    pub shutdown_limit: Duration,
}

impl ServeOptions {
    fn workload_config(&self) -> WorkloadConfig {
        let mut config = WorkloadConfig::new(self.model.name());
        config.routing = self.routing;
        config.mailbox = self.mailbox;
        config
    }
}

/// Errors `hostlab serve` reports before it is ready.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("model `{0}` is not built yet; models available now: edge, edge-actix, app")]
    NotBuilt(Model),
    #[error(
        "cannot listen on {addr}: {source}; pick a free port, or port 0 to let the system choose"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Workload(#[from] hostlab_workloads::StartError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Run `hostlab serve MODEL` until SIGTERM/SIGINT, then drain and return.
pub fn serve(options: ServeOptions) -> Result<(), ServeError> {
    match options.model {
        Model::Edge | Model::App => edge::serve(&options),
        Model::EdgeActix => actix::serve(&options),
        other => Err(ServeError::NotBuilt(other)),
    }
}

/// Print the one ready line (DESIGN.md) on stdout and flush it, so a parent
/// reading our stdout through a pipe sees it at once.
pub fn announce_ready(model: Model, addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "hostlab ready model={model} url=http://{addr} pid={}",
        std::process::id()
    );
    let _ = out.flush();
}

fn bind_std(addr: SocketAddr) -> Result<std::net::TcpListener, ServeError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
