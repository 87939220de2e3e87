//! The hostlab actor workload: a book store and a consistent-hash task router
//! on ractor actors, served by one axum [`Router`] ([`app`]) that every hosting
//! model runs unchanged. See `docs/workload.md` for the API and its limits.

pub mod api;
pub mod books;
pub mod hashing;
pub mod mailbox;
pub mod ops;
pub mod remote;
pub mod tasks;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use api::{MAX_BOOK_BODY_BYTES, MAX_REQUEST_BODY_BYTES, MAX_TASK_BODY_BYTES, app};
pub use tasks::Routing;

use books::{BookStore, BookStoreLimits};
use mailbox::Bounded;
use ops::{LocalActors, Op, Reply};
use tasks::{TaskCounters, TaskLimits, TaskRouter};

/// How to start the workload.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Hosting model name reported by `/healthz` (`edge`, `app`, ...).
    pub model: String,
    pub routing: Routing,
    /// Messages each actor's mailbox holds (pool actors, the book store, the
    /// per-task spawner) before requests get 503 `overloaded`.
    pub mailbox: usize,
    pub books: BookStoreLimits,
    pub tasks: TaskLimits,
    /// Longest an HTTP handler waits for an actor's reply before answering 503.
    pub ask_timeout: Duration,
    /// Longest a client may take to send a whole JSON body before it gets
    /// 408 `request_timeout` (slow-client protection).
    pub body_read_timeout: Duration,
}

impl WorkloadConfig {
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            routing: Routing::default(),
            mailbox: 256,
            books: BookStoreLimits::default(),
            tasks: TaskLimits::default(),
            ask_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Where the actors live.
pub enum Backend {
    /// In this process (every model but the split front).
    Local(LocalActors),
    /// In the actor service, reached over ractor_cluster (split front).
    Remote(remote::RemoteActors),
}

/// What the router's handlers hold: the actors (local or remote) plus what
/// the API reports about this process.
pub struct Workload {
    pub(crate) config: WorkloadConfig,
    pub(crate) backend: Backend,
    pub(crate) started: Instant,
    /// Set once the first request other than `/healthz` has been served.
    pub(crate) warm: AtomicBool,
}

/// Shared handle the router's handlers hold.
pub type AppState = Arc<Workload>;

/// Errors starting the workload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not start the workload's actors: {0}")]
    Spawn(#[from] ractor::SpawnErr),
}

impl Workload {
    /// Start the actors in this process. Must run inside a tokio runtime:
    /// actors are tokio tasks.
    pub async fn start(config: WorkloadConfig) -> Result<AppState, StartError> {
        let local = start_actors(&config).await?;
        Ok(Self::with_backend(config, Backend::Local(local)))
    }

    /// A workload whose actors live elsewhere (or were started already).
    pub fn with_backend(config: WorkloadConfig, backend: Backend) -> AppState {
        Arc::new(Workload {
            config,
            backend,
            started: Instant::now(),
            warm: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// Run one operation wherever the actors live.
    pub async fn execute(&self, op: Op) -> Reply {
        match &self.backend {
            Backend::Local(local) => local.execute(op).await,
            Backend::Remote(remote) => remote.execute(op).await,
        }
    }

    /// Stop this process's actors (idempotent). Requests after this get 503.
    pub fn stop(&self) {
        if let Backend::Local(local) = &self.backend {
            local.stop();
        }
    }
}

/// Spawn the book store and the task actors.
pub async fn start_actors(config: &WorkloadConfig) -> Result<LocalActors, StartError> {
    let (store, _) = ractor::Actor::spawn(None, BookStore, config.books).await?;
    let task_counters = Arc::new(TaskCounters::default());
    let tasks = TaskRouter::start(config.routing, config.mailbox, config.tasks, task_counters.clone()).await?;
    Ok(LocalActors {
        books: Bounded::new(store, config.mailbox),
        tasks,
        task_counters,
        routing: config.routing,
        ask_timeout: config.ask_timeout,
    })
}

/// Resident set size of a process (`"self"` or a pid), from
/// `/proc/<pid>/statm` (Linux); `None` where that file does not exist.
pub fn rss_bytes(pid: impl std::fmt::Display) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident_pages * page_size())
}

fn page_size() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| sysconf(SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |n| n as u64))
}
