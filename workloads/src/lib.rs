//! The hostlab actor workload: a book store and a consistent-hash task router
//! on ractor actors, served by one axum [`Router`] ([`app`]) that every hosting
//! model runs unchanged. See `docs/workload.md` for the API and its limits.

pub mod api;
pub mod books;
pub mod coldstart;
pub mod error;
pub mod events;
pub mod fifo;
pub mod hashing;
pub mod journal;
pub mod link;
pub mod mailbox;
pub mod model;
pub mod ops;
pub mod remote;
pub mod tasks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use api::{MAX_BOOK_BODY_BYTES, MAX_REQUEST_BODY_BYTES, MAX_TASK_BODY_BYTES, app};
pub use tasks::Routing;

use books::{BookStore, BookStoreArgs, BookStoreLimits};
use coldstart::{ColdStart, ColdStartConfig};
use journal::{ActorJournal, Journal, JournalConfig, JournalError, Recovered};
use mailbox::Bounded;
use ops::{LocalActors, Op, Refusal, Reply};
use tasks::{Restored, TaskCounters, TaskLimits, TaskRouter};

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
    /// `--journal`: persist the state and recover it at startup.
    pub journal: Option<JournalConfig>,
    /// Longest a state command waits for the journal's recovery (while
    /// another process still holds the journal) before it gets 503 `recovering`.
    pub recovery_wait: Duration,
    /// Longest a client may take to send a whole JSON body before it gets
    /// 408 `request_timeout` (slow-client protection).
    pub body_read_timeout: Duration,
    /// Start-up work and first-hit costs (docs/policies.md "Cold start").
    pub cold: ColdStartConfig,
    /// The part of the keys these actors own: node I of M of a sharded
    /// actor service (`serve actors --shard I/M`); everything by default.
    pub shard: hashing::Shard,
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
            journal: None,
            recovery_wait: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(30),
            cold: ColdStartConfig::default(),
            shard: hashing::Shard::WHOLE,
        }
    }
}

/// Where the actors live.
pub enum Backend {
    /// In this process (every model but the split front).
    Local(LocalActors),
    /// In the actor service, reached over ractor_cluster (split front).
    Remote(remote::RemoteActors),
    /// In this process, once the journal is free and recovered: another
    /// process (the old one of an overlapped recycle) still holds it.
    Recovering(RecoveringActors),
}

/// Actors that start once the journal's lock is free and its state is rebuilt.
pub struct RecoveringActors {
    actors: tokio::sync::watch::Receiver<Option<Arc<LocalActors>>>,
    stopped: Arc<AtomicBool>,
    wait: Duration,
}

impl RecoveringActors {
    async fn get(&self) -> Option<Arc<LocalActors>> {
        let mut rx = self.actors.clone();
        let ready = tokio::time::timeout(self.wait, rx.wait_for(Option::is_some)).await;
        ready.ok()?.ok().and_then(|actors| actors.clone())
    }
}

/// What the router's handlers hold: the actors (local or remote) plus what
/// the API reports about this process.
pub struct Workload {
    pub(crate) config: WorkloadConfig,
    pub(crate) backend: Backend,
    pub(crate) started: Instant,
    /// Set once the first request other than `/healthz` has been served.
    pub(crate) warm: AtomicBool,
    /// The start-up index and the lazy caches.
    pub(crate) cold: Arc<ColdStart>,
}

/// Shared handle the router's handlers hold.
pub type AppState = Arc<Workload>;

/// Errors starting the workload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not start the workload's actors: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    #[error("{0}")]
    Journal(#[from] JournalError),
}

impl Workload {
    /// Start the actors in this process. Must run inside a tokio runtime:
    /// actors are tokio tasks.
    ///
    /// With a journal, the state is recovered first; a damaged journal is an
    /// error. If another process holds the journal, the workload starts at
    /// once and its actors start when that process lets go (state commands
    /// wait for them, bounded by `recovery_wait`, then get 503 `recovering`).
    pub async fn start(config: WorkloadConfig) -> Result<AppState, StartError> {
        let Some(jc) = config.journal.clone() else {
            let local = start_actors(&config, None).await?;
            return Ok(Self::with_backend(config, Backend::Local(local)));
        };
        match open_journal(&jc, false).await {
            Ok(opened) => {
                let local = start_actors(&config, Some(opened)).await?;
                Ok(Self::with_backend(config, Backend::Local(local)))
            }
            Err(JournalError::Locked { holder, .. }) => {
                tracing::warn!(
                    "journal {} is held by pid {holder}; state commands wait until it lets go",
                    jc.path.display()
                );
                let (tx, rx) = tokio::sync::watch::channel(None);
                let stopped = Arc::new(AtomicBool::new(false));
                tokio::spawn(recover_when_free(config.clone(), tx, stopped.clone()));
                let wait = config.recovery_wait;
                Ok(Self::with_backend(
                    config,
                    Backend::Recovering(RecoveringActors {
                        actors: rx,
                        stopped,
                        wait,
                    }),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A workload whose actors live elsewhere (or were started already).
    /// Its start-up index starts building at once, on its own thread.
    pub fn with_backend(config: WorkloadConfig, backend: Backend) -> AppState {
        Arc::new(Workload {
            cold: ColdStart::start(config.cold),
            config,
            backend,
            started: Instant::now(),
            warm: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// The cold-start state: start-up index and lazy caches.
    pub fn cold_start(&self) -> &ColdStart {
        &self.cold
    }

    /// Run one operation wherever the actors live.
    pub async fn execute(&self, op: Op) -> Reply {
        match &self.backend {
            Backend::Local(local) => local.execute(op).await,
            Backend::Remote(remote) => remote.execute(op).await,
            Backend::Recovering(recovering) => match recovering.get().await {
                Some(local) => local.execute(op).await,
                None => Reply::Refused(Refusal::Recovering(format!(
                    "the journal is still held by the previous process after {:?}",
                    recovering.wait
                ))),
            },
        }
    }

    /// Stop this process's actors (idempotent). Requests after this get 503.
    pub fn stop(&self) {
        match &self.backend {
            Backend::Local(local) => local.stop(),
            Backend::Remote(_) => {}
            Backend::Recovering(recovering) => {
                recovering.stopped.store(true, Ordering::SeqCst);
                if let Some(local) = recovering.actors.borrow().as_ref() {
                    local.stop();
                }
            }
        }
    }

    /// Stop the actors, then commit what the journal holds and release it,
    /// so the next process (an overlapped recycle's new one) can recover at
    /// once instead of waiting for this process to exit.
    pub async fn shutdown(&self) {
        self.stop();
        let local = match &self.backend {
            Backend::Local(local) => Some(local.journal.clone()),
            Backend::Recovering(r) => r.actors.borrow().as_ref().map(|l| l.journal.clone()),
            Backend::Remote(_) => None,
        };
        if let Some(Some(journal)) = local {
            journal.close().await;
        }
    }
}

async fn open_journal(config: &JournalConfig, wait: bool) -> Result<(Journal, Recovered), JournalError> {
    let config = config.clone();
    let path = config.path.clone();
    let open = if wait { Journal::open_when_free } else { Journal::open };
    tokio::task::spawn_blocking(move || open(&config))
        .await
        .map_err(|e| JournalError::Io {
            path,
            detail: format!("recovery stopped: {e}"),
        })?
}

/// Start this process's actors, recovering from the journal if one is
/// configured, waiting (without bound) while another process holds it.
pub async fn start_local_actors(config: &WorkloadConfig) -> Result<LocalActors, StartError> {
    let Some(jc) = &config.journal else {
        return start_actors(config, None).await;
    };
    let opened = match open_journal(jc, false).await {
        Err(JournalError::Locked { holder, .. }) => {
            tracing::warn!("journal {} is held by pid {holder}; waiting for it", jc.path.display());
            open_journal(jc, true).await?
        }
        other => other?,
    };
    start_actors(config, Some(opened)).await
}

/// Wait for the journal's lock, recover, and start the actors. A damaged
/// journal found here ends the process (exit 1), as it would at startup.
async fn recover_when_free(
    config: WorkloadConfig,
    tx: tokio::sync::watch::Sender<Option<Arc<LocalActors>>>,
    stopped: Arc<AtomicBool>,
) {
    let Some(jc) = config.journal.clone() else { return };
    let waiting = Instant::now();
    let started = match open_journal(&jc, true).await {
        Ok(opened) if stopped.load(Ordering::SeqCst) => {
            // Stopped while waiting, with nobody left to serve: let go at once.
            opened.0.close().await;
            return;
        }
        Ok(opened) => start_actors(&config, Some(opened)).await,
        Err(e) => Err(e.into()),
    };
    match started {
        Ok(local) => {
            tracing::info!(
                "journal {} recovered after waiting {:?}",
                jc.path.display(),
                waiting.elapsed()
            );
            let _ = tx.send(Some(Arc::new(local)));
        }
        Err(e) => {
            eprintln!("hostlab: {e}");
            std::process::exit(1);
        }
    }
}

/// Spawn the book store and the task actors, from the journal's state if given.
pub async fn start_actors(
    config: &WorkloadConfig,
    journal: Option<(Journal, Recovered)>,
) -> Result<LocalActors, StartError> {
    let (journal, recovered) = match journal {
        Some((j, r)) => (Some(j), Some(r)),
        None => (None, None),
    };
    let task_counters = Arc::new(TaskCounters::default());
    let mut restored_tasks = Restored::default();
    let mut restored_books = None;
    if let Some(recovered) = recovered {
        let mut state = recovered.state;
        task_counters.done.store(state.tasks_done, Ordering::Relaxed);
        restored_tasks.records = std::mem::take(&mut state.records).into_values().collect();
        restored_tasks.pending = std::mem::take(&mut state.pending).into_values().collect();
        if let Some(j) = &journal {
            j.set_tasks_resumed(restored_tasks.pending.len() as u64);
        }
        restored_books = Some(state);
    }
    let store_args = BookStoreArgs {
        limits: config.books,
        journal: journal.clone().map(ActorJournal::new),
        restored: restored_books,
        shard: config.shard,
    };
    let (store, _) = ractor::Actor::spawn(None, BookStore, store_args).await?;
    let tasks = TaskRouter::start(
        config.routing,
        config.mailbox,
        config.tasks,
        task_counters.clone(),
        journal.clone(),
        restored_tasks,
    )
    .await?;
    Ok(LocalActors {
        books: Bounded::new(store, config.mailbox),
        tasks,
        task_counters,
        routing: config.routing,
        ask_timeout: config.ask_timeout,
        journal,
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
