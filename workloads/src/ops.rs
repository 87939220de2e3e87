//! The workload's operations as plain data: what the HTTP handlers ask for
//! ([`Op`]) and what they get back ([`Reply`]). The local backend runs them on
//! this process's actors; the split front sends the same values to the actor
//! service over ractor_cluster. So the HTTP API has one implementation, and
//! the hosting models differ only in where the actors live.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Routing;
use crate::books::{AddError, Added, Book, BookCmd, NewBook};
use crate::journal::{Journal, JournalStats};
use crate::mailbox::{AskError, Bounded};
use crate::tasks::{TaskCmd, TaskCounters, TaskRecord, TaskRefused, TaskRequest, TaskRouter};
use ractor::RpcReplyPort;

/// One operation of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    AddBook {
        book: NewBook,
        idempotency_key: Option<String>,
    },
    ListBooks,
    GetBook(u64),
    DeleteBook(u64),
    RunTask(TaskRequest),
    /// Accept a task to run afterwards (`Prefer: respond-async`).
    AcceptTask(TaskRequest),
    GetTask(String),
    Stats,
}

/// The result of an [`Op`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Added(Result<AddedBook, AddError>),
    Books(Vec<Arc<Book>>),
    Book(Option<Arc<Book>>),
    Deleted(bool),
    Task(TaskRecord),
    TaskRecord(Option<TaskRecord>),
    Stats(Stats),
    /// The actors could not take the operation (full mailbox, timeout,
    /// stopped, per-task actor limit).
    Refused(Refusal),
}

/// [`Added`] in a form that crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedBook {
    pub book: Arc<Book>,
    /// The idempotency key had already created this book.
    pub replayed: bool,
}

/// Why the actors did not take an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Mailbox full or reply too slow: 503 `overloaded`.
    Overloaded(String),
    /// The actors have stopped (shutting down): 503 `unavailable`.
    Stopped(String),
    /// The actor service cannot be reached (split front): 503 `backend_unavailable`.
    Unreachable(String),
    /// The state is not recovered from the journal yet: 503 `recovering`.
    Recovering(String),
    /// The journal failed; no change can be stored: 503 `journal_unavailable`.
    JournalFailed(String),
}

impl From<AskError> for Refusal {
    fn from(e: AskError) -> Self {
        match e {
            AskError::Full { .. } | AskError::Timeout(_) => Refusal::Overloaded(e.to_string()),
            AskError::Stopped => Refusal::Stopped(e.to_string()),
        }
    }
}

/// What `GET /stats` reports about the actors, measured where they run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub books: usize,
    pub tasks_done: u64,
    pub tasks_rejected_overloaded: u64,
    pub routing: Routing,
    pub live_actors: u64,
    pub rss_bytes: Option<u64>,
    /// Set with `--journal`.
    pub journal: Option<JournalStats>,
    /// A front of a sharded actor service: each node's own figures, in
    /// shard order (empty for a single node or local actors).
    pub shards: Vec<ShardStats>,
}

/// One node's part of a sharded service's `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStats {
    pub shard: u32,
    pub books: usize,
    pub tasks_done: u64,
    pub live_actors: u64,
}

impl Stats {
    /// The figures of a sharded service from each node's, in shard order:
    /// counts and memory are summed, journal counters summed (the largest
    /// batch and recovery time are the largest), journal paths joined.
    pub fn merge(nodes: Vec<Stats>) -> Stats {
        let shards = nodes
            .iter()
            .enumerate()
            .map(|(i, s)| ShardStats {
                shard: i as u32,
                books: s.books,
                tasks_done: s.tasks_done,
                live_actors: s.live_actors,
            })
            .collect();
        let mut nodes = nodes.into_iter();
        let mut total = nodes.next().expect("a service has at least one node");
        for s in nodes {
            total.books += s.books;
            total.tasks_done += s.tasks_done;
            total.tasks_rejected_overloaded += s.tasks_rejected_overloaded;
            total.live_actors += s.live_actors;
            total.rss_bytes = match (total.rss_bytes, s.rss_bytes) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            total.journal = match (total.journal.take(), s.journal) {
                (Some(mut a), Some(b)) => {
                    a.path = format!("{}, {}", a.path, b.path);
                    a.events_appended += b.events_appended;
                    a.commits += b.commits;
                    a.largest_batch = a.largest_batch.max(b.largest_batch);
                    a.last_seq += b.last_seq;
                    a.snapshots += b.snapshots;
                    a.recovery.events_replayed += b.recovery.events_replayed;
                    a.recovery.tasks_resumed += b.recovery.tasks_resumed;
                    a.recovery.micros = a.recovery.micros.max(b.recovery.micros);
                    a.error = a.error.or(b.error);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
        }
        total.shards = shards;
        total
    }
}

/// The actors of this process, behind bounded mailboxes.
pub struct LocalActors {
    pub(crate) books: Bounded<BookCmd>,
    pub(crate) tasks: TaskRouter,
    pub(crate) task_counters: Arc<TaskCounters>,
    pub(crate) routing: Routing,
    pub(crate) ask_timeout: Duration,
    pub(crate) journal: Option<Journal>,
}

impl LocalActors {
    /// Run one operation on the actors.
    pub async fn execute(&self, op: Op) -> Reply {
        let t = self.ask_timeout;

        let result: Result<Reply, AskError> = async {
            Ok(match op {
                Op::AddBook { book, idempotency_key } => {
                    let added = self
                        .books
                        .ask(
                            |reply| BookCmd::Add {
                                book,
                                idempotency_key,
                                reply,
                            },
                            t,
                        )
                        .await?;
                    Reply::Added(added.map(|a| match a {
                        Added::Created(book) => AddedBook { book, replayed: false },
                        Added::Replayed(book) => AddedBook { book, replayed: true },
                    }))
                }
                Op::ListBooks => Reply::Books(self.books.ask(BookCmd::List, t).await?),
                Op::GetBook(id) => Reply::Book(self.books.ask(|r| BookCmd::Get(id, r), t).await?),
                Op::DeleteBook(id) => Reply::Deleted(self.books.ask(|r| BookCmd::Delete(id, r), t).await?),
                Op::RunTask(task) => self.task(task, TaskCmd::Run, t).await?,
                Op::AcceptTask(task) => self.task(task, TaskCmd::Accept, t).await?,
                Op::GetTask(id) => {
                    let mailbox = self.tasks.route(&id);
                    Reply::TaskRecord(mailbox.ask(|r| TaskCmd::Get(id, r), t).await?)
                }
                Op::Stats => {
                    let books = self.books.ask(BookCmd::Count, t).await?;
                    let c = &self.task_counters;
                    Reply::Stats(Stats {
                        books,
                        tasks_done: c.done.load(Ordering::Relaxed),
                        tasks_rejected_overloaded: c.rejected_overloaded.load(Ordering::Relaxed),
                        routing: self.routing,
                        live_actors: c.live_actors.load(Ordering::Relaxed),
                        rss_bytes: crate::rss_bytes("self"),
                        journal: self.journal.as_ref().map(Journal::stats),
                        shards: Vec::new(),
                    })
                }
            })
        }
        .await;
        result.unwrap_or_else(|e| match self.journal.as_ref().and_then(Journal::failure) {
            // The actor dropped the reply because the change could not be stored.
            Some(failed) if e == AskError::Stopped => Reply::Refused(Refusal::JournalFailed(failed.to_string())),
            _ => Reply::Refused(e.into()),
        })
    }

    /// Run or accept a task on the actor its id routes to.
    async fn task(
        &self,
        task: TaskRequest,
        cmd: fn(TaskRequest, RpcReplyPort<Result<TaskRecord, TaskRefused>>) -> TaskCmd,
        t: Duration,
    ) -> Result<Reply, AskError> {
        let mailbox = self.tasks.route(&task.id);
        match mailbox.ask(|r| cmd(task, r), t).await {
            Ok(Ok(record)) => Ok(Reply::Task(record)),
            Ok(Err(refused)) => Ok(Reply::Refused(Refusal::Overloaded(refused.to_string()))),
            Err(e) => {
                self.task_counters.rejected_overloaded.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Commit what the journal holds and release it (after [`Self::stop`]).
    pub async fn close_journal(&self) {
        if let Some(journal) = &self.journal {
            journal.close().await;
        }
    }

    pub fn stop(&self) {
        self.books.actor().stop(None);
        self.tasks.stop();
    }
}
