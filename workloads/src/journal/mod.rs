//! The persistent event journal (`--journal PATH`): every change to the
//! workload's state is appended to an embedded SQLite file before the client
//! is answered, and a restarted process rebuilds its state from it (claim C7).
//! Without a journal the state lives in memory only (claim C4).
//!
//! - **One writer thread, group commit.** Actors hand their events to the
//!   writer ([`Journal::append`]) and go on with the next message; the writer
//!   commits everything queued in one transaction (one fsync) and only then
//!   runs the callbacks that answer the clients. Reads wait for the actor's own
//!   writes in flight ([`ActorJournal::after_writes`]), so no client ever sees
//!   a change that could still be lost.
//! - **Snapshots.** The writer keeps the state the events rebuild
//!   ([`DurableState`]) and stores it every `snapshot_every` events; recovery
//!   is the latest snapshot plus the newer events.
//! - **One process at a time.** A lock file (`PATH.lock`) is held while the
//!   journal is open. In an overlapped recycle the new process waits for the
//!   old one to let go before it recovers; its state commands wait meanwhile.
//! - **Damage stops startup.** A damaged file is reported with its path and
//!   what is wrong, and is left as it was; see `hostlab journal check|repair`.
//!
//! Format, durability modes and recovery semantics: `docs/journal.md`.

mod maintenance;
mod store;
#[cfg(test)]
mod tests;
mod writer;

pub use crate::events::{DurableState, Event, StateLimits};
pub use maintenance::{CheckReport, RepairReport, check, repair, replay_full_log};
pub use store::FORMAT;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use store::Store;
use writer::{Writer, fail, lock};

/// Events queued for the writer before appenders wait (backpressure).
const QUEUE: usize = 8192;
/// Most events committed in one transaction.
const MAX_BATCH: usize = 4096;

/// How hard a commit tries to survive a crash (`--journal-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=FULL`: each commit is fsynced before any client hears of
    /// it. Survives a process crash, an OS crash and a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL` (WAL): commits reach the OS but are fsynced only
    /// at checkpoints. Survives a process crash (SIGKILL), not an OS crash or
    /// power cut: the last commits before one can be lost.
    Normal,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            _ => Err(format!(
                "invalid journal sync `{s}`: use `full` (fsync each commit) or `normal` (survives a process crash, not a power cut)"
            )),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        })
    }
}

/// Where the journal is and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    pub path: PathBuf,
    pub durability: Durability,
    /// Events between snapshots (0: never snapshot).
    pub snapshot_every: u64,
    /// Delete the events a snapshot covers (keeps the file small). Off, the
    /// whole log is kept and can be replayed from the start.
    pub compact: bool,
    pub limits: StateLimits,
}

impl JournalConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::Full,
            snapshot_every: 10_000,
            compact: true,
            limits: StateLimits::default(),
        }
    }
}

/// Why the journal cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error(
        "journal {path} is damaged: {detail}. Nothing was changed and the server did not start. \
         Run `hostlab journal check {path}` for details; `hostlab journal repair {path}` keeps the \
         longest intact part (the damaged file is kept beside it), or restore the file from a backup"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "journal {path} is open in another process (pid {holder}); stop that process or use another --journal path"
    )]
    Locked { path: PathBuf, holder: String },
    #[error("journal {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

impl JournalError {
    fn damaged(path: &Path, detail: String) -> Self {
        JournalError::Damaged {
            path: path.to_owned(),
            detail,
        }
    }

    fn io(path: &Path, detail: String) -> Self {
        JournalError::Io {
            path: path.to_owned(),
            detail,
        }
    }
}

/// The journal failed while running (disk full, I/O error): the change was
/// not stored, and no further change will be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the journal failed: {0}")]
pub struct JournalFailed(pub String);

/// How the state was rebuilt at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStats {
    /// The event the snapshot used was taken at (0: none).
    pub snapshot_seq: u64,
    /// Events replayed after the snapshot.
    pub events_replayed: u64,
    /// Time to read the snapshot and replay, in microseconds.
    pub micros: u64,
    /// Accepted tasks that had not finished and were resumed.
    pub tasks_resumed: u64,
}

/// What `GET /stats` reports under `journal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStats {
    pub path: String,
    pub durability: Durability,
    /// Events this process appended and committed.
    pub events_appended: u64,
    /// Commits (transactions) this process made; events / commits is the
    /// group-commit batch size.
    pub commits: u64,
    pub largest_batch: u64,
    /// Number of the last committed event.
    pub last_seq: u64,
    pub snapshots: u64,
    pub recovery: RecoveryStats,
    /// Set when the journal failed; every state command then gets 503.
    pub error: Option<String>,
}

/// A callback run on the writer thread once an event is durable (or failed).
type Done = Box<dyn FnOnce(Result<(), JournalFailed>) + Send>;

enum Cmd {
    Append {
        event: Event,
        body: String,
        done: Done,
    },
    /// Run `done` once everything queued before it is committed.
    Barrier(Done),
    /// Commit what came before, then close the file and release the lock.
    Close,
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    commits: AtomicU64,
    largest_batch: AtomicU64,
    last_seq: AtomicU64,
    snapshots: AtomicU64,
}

struct Inner {
    tx: mpsc::Sender<Cmd>,
    counters: Arc<Counters>,
    failed: Arc<OnceLock<String>>,
    path: PathBuf,
    durability: Durability,
    recovery: Mutex<RecoveryStats>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Handle to an open journal (cheap to clone). The journal closes, and its
/// lock is released, when [`Journal::close`] is called or the process exits.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.inner.path).finish()
    }
}

/// The state a journal rebuilt, for the actors to start from.
#[derive(Debug)]
pub struct Recovered {
    pub state: DurableState,
    pub stats: RecoveryStats,
}

impl Journal {
    /// Lock, check and load the journal at `config.path` (creating it if the
    /// path does not exist), then start its writer. Blocking: call it from a
    /// blocking thread. Fails with [`JournalError::Locked`] at once when
    /// another process has it open.
    pub fn open(config: &JournalConfig) -> Result<(Journal, Recovered), JournalError> {
        Self::open_locked(config, lock(&config.path, false)?)
    }

    /// [`Journal::open`], but wait for another process to let go of the
    /// journal first: the kernel wakes this thread the moment it does.
    pub fn open_when_free(config: &JournalConfig) -> Result<(Journal, Recovered), JournalError> {
        Self::open_locked(config, lock(&config.path, true)?)
    }

    fn open_locked(config: &JournalConfig, lock: File) -> Result<(Journal, Recovered), JournalError> {
        let (store, loaded) = Store::open(&config.path, config.durability, config.limits)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        counters.last_seq.store(loaded.last_seq, Ordering::Relaxed);
        let failed = Arc::new(OnceLock::new());
        let writer = Writer {
            store,
            shadow: loaded.state.clone(),
            next_seq: loaded.last_seq + 1,
            since_snapshot: 0,
            snapshot_every: config.snapshot_every,
            compact: config.compact,
            counters: counters.clone(),
            failed: failed.clone(),
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("hostlab-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::io(&config.path, format!("cannot start the journal writer: {e}")))?;
        let journal = Journal {
            inner: Arc::new(Inner {
                tx,
                counters,
                failed,
                path: config.path.clone(),
                durability: config.durability,
                recovery: Mutex::new(loaded.stats.clone()),
                writer: Mutex::new(Some(thread)),
            }),
        };
        Ok((
            journal,
            Recovered {
                state: loaded.state,
                stats: loaded.stats,
            },
        ))
    }

    /// Queue `event`; `done` runs (on the writer thread) once it is durable,
    /// or with the error if the journal failed. Waits only when the writer's
    /// queue is full.
    pub async fn append(&self, event: Event, done: impl FnOnce(Result<(), JournalFailed>) + Send + 'static) {
        if let Some(e) = self.failure() {
            return done(Err(e));
        }
        let body = match serde_json::to_string(&event) {
            Ok(body) => body,
            Err(e) => return done(Err(JournalFailed(format!("cannot encode the event: {e}")))),
        };
        let cmd = Cmd::Append {
            event,
            body,
            done: Box::new(done),
        };
        if let Err(mpsc::error::SendError(cmd)) = self.inner.tx.send(cmd).await {
            fail(cmd, &JournalFailed("the journal writer has stopped".into()));
        }
    }

    /// Append every event, then wait until the last one is durable (events
    /// commit in order, so all of them are). For bulk writes: tests, benches
    /// and the run's prepared journals.
    pub async fn append_all(&self, events: impl IntoIterator<Item = Event>) -> Result<(), JournalFailed> {
        let mut last = None;
        for event in events {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.append(event, move |r| drop(tx.send(r))).await;
            last = Some(rx);
        }
        match last {
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err(JournalFailed("the journal writer has stopped".into()))),
            None => Ok(()),
        }
    }

    /// Run `done` once every event queued before this call is durable.
    pub async fn barrier(&self, done: impl FnOnce(Result<(), JournalFailed>) + Send + 'static) {
        if let Err(mpsc::error::SendError(cmd)) = self.inner.tx.send(Cmd::Barrier(Box::new(done))).await {
            fail(cmd, &JournalFailed("the journal writer has stopped".into()));
        }
    }

    /// Set once a write failed.
    pub fn failure(&self) -> Option<JournalFailed> {
        self.inner.failed.get().map(|e| JournalFailed(e.clone()))
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn set_tasks_resumed(&self, n: u64) {
        if let Ok(mut r) = self.inner.recovery.lock() {
            r.tasks_resumed = n;
        }
    }

    pub fn stats(&self) -> JournalStats {
        let c = &self.inner.counters;
        JournalStats {
            path: self.inner.path.display().to_string(),
            durability: self.inner.durability,
            events_appended: c.appended.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            last_seq: c.last_seq.load(Ordering::Relaxed),
            snapshots: c.snapshots.load(Ordering::Relaxed),
            recovery: self.inner.recovery.lock().map(|r| r.clone()).unwrap_or_default(),
            error: self.inner.failed.get().cloned(),
        }
    }

    /// Commit what is queued, close the file and release the lock, waiting
    /// for the writer to finish. Appends after this fail. Idempotent.
    pub async fn close(&self) {
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = self.inner.tx.send(Cmd::Close).await;
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// One actor's use of the journal: it counts the actor's writes in flight,
/// so the actor's reads can wait for them ([`ActorJournal::after_writes`]).
#[derive(Clone)]
pub struct ActorJournal {
    journal: Journal,
    in_flight: Arc<AtomicUsize>,
}

impl ActorJournal {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            in_flight: Arc::default(),
        }
    }

    /// Append `event`; `done` runs once it is durable.
    pub async fn persist(&self, event: Event, done: impl FnOnce(Result<(), JournalFailed>) + Send + 'static) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let in_flight = self.in_flight.clone();
        self.journal
            .append(event, move |result| {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                done(result);
            })
            .await;
    }

    /// Run `then` once this actor's writes so far are durable: at once when
    /// none is in flight.
    pub async fn after_writes(&self, then: impl FnOnce(Result<(), JournalFailed>) + Send + 'static) {
        if let Some(e) = self.journal.failure() {
            return then(Err(e));
        }
        if self.in_flight.load(Ordering::Acquire) == 0 {
            then(Ok(()));
        } else {
            self.journal.barrier(then).await;
        }
    }
}

/// Answer `reply` with `value` once `event` is durable; at once without a
/// journal. If the journal failed, the reply is dropped: the caller sees the
/// actor as unavailable and [`crate::ops::LocalActors`] says why.
pub async fn persist_then<T: Send + 'static>(
    journal: Option<&ActorJournal>,
    event: impl FnOnce() -> Event,
    reply: ractor::RpcReplyPort<T>,
    value: T,
) {
    match journal {
        None => {
            let _ = reply.send(value);
        }
        Some(j) => {
            j.persist(event(), move |result| {
                if result.is_ok() {
                    let _ = reply.send(value);
                }
            })
            .await
        }
    }
}

/// Answer a read once the actor's own writes in flight are durable, so no
/// client sees a change that could still be lost; at once without a journal.
pub async fn read_then<T: Send + 'static>(journal: Option<&ActorJournal>, reply: ractor::RpcReplyPort<T>, value: T) {
    match journal {
        None => {
            let _ = reply.send(value);
        }
        Some(j) => {
            j.after_writes(move |result| {
                if result.is_ok() {
                    let _ = reply.send(value);
                }
            })
            .await
        }
    }
}
