//! The heavy work and where it runs: task validation, task actors and the
//! router that picks the actor for a task id.
//!
//! Two routings are offered so the lab can compare them (claim C6):
//! - [`Routing::Pool`]: `n` long-lived actors; a task id goes to the actor
//!   chosen by jump consistent hash of the id ([`crate::hashing`]). All work
//!   for one id is handled by one actor, one message at a time, so it is
//!   serialised without locks, and the number of live actors stays `n`.
//! - [`Routing::PerTask`]: the anti-pattern from the Akka article: a spawner
//!   actor keeps one actor per task id alive forever. Memory grows with the
//!   number of distinct ids (bounded only by [`TaskLimits::per_task_actors`]).
//!
//! A task actor owns the records of its task ids; `GET /tasks/{id}` asks the
//! same actor, so it answers after the work queued before it.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::journal::{self, ActorJournal, Journal};
use crate::mailbox::{Bounded, Job};
use crate::{fifo, hashing};

pub use crate::model::{
    InvalidRow, MAX_AMOUNT_CENTS, MAX_ID_CHARS, MAX_KIND_CHARS, MAX_ROWS, Row, STORED_INVALID_ROWS, TaskRecord,
    TaskRequest, TaskStatus, Validation, valid_task_id, validate_rows,
};

/// How task ids are mapped to actors (`--routing pool:N|per-task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Routing {
    Pool(u32),
    PerTask,
}

impl Default for Routing {
    fn default() -> Self {
        Routing::Pool(10)
    }
}

impl std::fmt::Display for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Routing::Pool(n) => write!(f, "pool:{n}"),
            Routing::PerTask => f.write_str("per-task"),
        }
    }
}

impl FromStr for Routing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid routing `{s}`: use `pool:N` (N from 1 to 10000) or `per-task`");
        if s == "per-task" {
            return Ok(Routing::PerTask);
        }
        let n: u32 = s.strip_prefix("pool:").ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if !(1..=10_000).contains(&n) {
            return Err(bad());
        }
        Ok(Routing::Pool(n))
    }
}

/// Counters shared by all task actors (plain atomics: no lock on the hot path).
#[derive(Debug, Default)]
pub struct TaskCounters {
    pub done: AtomicU64,
    pub rejected_overloaded: AtomicU64,
    pub live_actors: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct TaskLimits {
    /// Task records kept per actor, oldest forgotten first.
    pub records_per_actor: usize,
    /// Most live actors under per-task routing.
    pub per_task_actors: usize,
    /// Accepted (`Prefer: respond-async`) tasks waiting on one actor before
    /// more are refused with 503 `overloaded`.
    pub accepted_per_actor: usize,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            records_per_actor: 1_000,
            per_task_actors: 200_000,
            accepted_per_actor: 1_000,
        }
    }
}

/// Why a task actor did not take a task (answered 503 `overloaded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TaskRefused {
    #[error(
        "per-task routing keeps one actor per task id and already has its maximum of {0}; reuse task ids or use pool routing"
    )]
    ActorLimit(usize),
    #[error("{0} accepted tasks already wait on this task's actor")]
    Backlog(usize),
}

pub enum TaskCmd {
    /// Run the task now and answer with its result.
    Run(TaskRequest, RpcReplyPort<Result<TaskRecord, TaskRefused>>),
    /// Accept the task (journaled first, with a journal), answer `pending`,
    /// and run it afterwards.
    Accept(TaskRequest, RpcReplyPort<Result<TaskRecord, TaskRefused>>),
    Get(String, RpcReplyPort<Option<TaskRecord>>),
    /// Run an accepted task (sent by the actor to itself).
    RunAccepted(String),
}

/// Runs tasks one at a time and keeps their records.
pub struct TaskActor;

pub struct TaskActorArgs {
    pub index: u64,
    pub counters: Arc<TaskCounters>,
    pub records: usize,
    pub accepted_limit: usize,
    pub journal: Option<ActorJournal>,
    /// Task records and unfinished accepted tasks the journal rebuilt.
    pub restored: Restored,
}

/// The task state a journal rebuilt, for one actor.
#[derive(Debug, Default)]
pub struct Restored {
    pub records: Vec<TaskRecord>,
    pub pending: Vec<TaskRequest>,
}

impl Restored {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.pending.is_empty()
    }
}

pub struct TaskActorState {
    index: u64,
    counters: Arc<TaskCounters>,
    records: HashMap<String, TaskRecord>,
    order: VecDeque<String>,
    capacity: usize,
    /// Accepted tasks not run yet.
    accepted: HashMap<String, TaskRequest>,
    accepted_limit: usize,
    journal: Option<ActorJournal>,
}

impl TaskActorState {
    fn new(args: &TaskActorArgs) -> Self {
        Self {
            index: args.index,
            counters: args.counters.clone(),
            records: HashMap::new(),
            order: VecDeque::new(),
            capacity: args.records.max(1),
            accepted: HashMap::new(),
            accepted_limit: args.accepted_limit.max(1),
            journal: args.journal.clone(),
        }
    }

    /// Record an accepted task as pending.
    fn accept(&mut self, task: TaskRequest) -> TaskRecord {
        let record = TaskRecord {
            id: task.id.clone(),
            kind: task.kind.clone(),
            status: TaskStatus::Pending,
            actor: self.index,
            validation: Validation::default(),
        };
        self.store(&record);
        self.accepted.insert(task.id.clone(), task);
        record
    }

    fn run(&mut self, task: TaskRequest) -> TaskRecord {
        let validation = validate_rows(&task.rows);
        let record = TaskRecord {
            id: task.id,
            kind: task.kind,
            status: TaskStatus::Done,
            actor: self.index,
            validation,
        };
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        self.store(&record);
        record
    }

    fn store(&mut self, record: &TaskRecord) {
        let mut kept = TaskRecord {
            id: record.id.clone(),
            kind: record.kind.clone(),
            status: record.status,
            actor: record.actor,
            validation: Validation {
                invalid: Vec::new(),
                ..record.validation
            },
        };
        kept.validation.invalid =
            record.validation.invalid[..record.validation.invalid.len().min(STORED_INVALID_ROWS)].to_vec();
        fifo::insert(&mut self.records, &mut self.order, self.capacity, kept.id.clone(), kept);
    }
}

impl Actor for TaskActor {
    type Msg = Job<TaskCmd>;
    type State = TaskActorState;
    type Arguments = TaskActorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: TaskActorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.counters.live_actors.fetch_add(1, Ordering::Relaxed);
        let mut state = TaskActorState::new(&args);
        for record in &args.restored.records {
            state.store(record);
        }
        // Unfinished tasks resume: each runs once and is journaled as completed.
        for task in args.restored.pending {
            let id = task.id.clone();
            state.accept(task);
            myself.send_message(Job {
                cmd: TaskCmd::RunAccepted(id),
                slot: None,
            })?;
        }
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.counters.live_actors.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        job: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Results are answered once journaled (at once without a journal).
        // Reply errors mean the caller gave up; the record is kept regardless.
        let journal = state.journal.clone();
        let journal = journal.as_ref();
        match job.cmd {
            TaskCmd::Run(task, reply) | TaskCmd::Accept(task, reply) if state.accepted.contains_key(&task.id) => {
                // Already accepted and not run yet: the same task, not a second one.
                let pending = state.records.get(&task.id).cloned();
                journal::read_then(journal, reply, Ok(pending.unwrap_or_else(|| state.accept(task)))).await;
            }
            TaskCmd::Run(task, reply) => {
                let record = state.run(task);
                let event = || Event::TaskCompleted {
                    record: state.records.get(&record.id).cloned().unwrap_or_else(|| record.clone()),
                };
                journal::persist_then(journal, event, reply, Ok(record.clone())).await;
            }
            TaskCmd::Accept(task, reply) => {
                if state.accepted.len() >= state.accepted_limit {
                    let _ = reply.send(Err(TaskRefused::Backlog(state.accepted.len())));
                    return Ok(());
                }
                let id = task.id.clone();
                let event = journal.map(|_| Event::TaskAccepted { task: task.clone() });
                let record = state.accept(task);
                match event {
                    Some(event) => journal::persist_then(journal, || event, reply, Ok(record)).await,
                    None => {
                        let _ = reply.send(Ok(record));
                    }
                }
                myself.send_message(Job {
                    cmd: TaskCmd::RunAccepted(id),
                    slot: None,
                })?;
            }
            TaskCmd::RunAccepted(id) => {
                if let Some(task) = state.accepted.remove(&id) {
                    let record = state.run(task);
                    if let Some(j) = journal {
                        let stored = state.records.get(&record.id).cloned().unwrap_or(record);
                        j.persist(Event::TaskCompleted { record: stored }, |_| {}).await;
                    }
                }
            }
            TaskCmd::Get(id, reply) => journal::read_then(journal, reply, state.records.get(&id).cloned()).await,
        }
        Ok(())
    }
}

/// Keeps one [`TaskActor`] per task id alive (the per-task anti-pattern) and
/// forwards each job, slot included, to it.
pub struct TaskSpawner;

pub struct TaskSpawnerState {
    actors: HashMap<String, ActorRef<Job<TaskCmd>>>,
    counters: Arc<TaskCounters>,
    limits: TaskLimits,
    journal: Option<Journal>,
}

impl TaskSpawnerState {
    async fn spawn(&mut self, id: String, restored: Restored) -> Result<ActorRef<Job<TaskCmd>>, ractor::SpawnErr> {
        let args = TaskActorArgs {
            index: self.actors.len() as u64,
            counters: self.counters.clone(),
            records: 1,
            accepted_limit: self.limits.accepted_per_actor,
            journal: self.journal.clone().map(ActorJournal::new),
            restored,
        };
        let (actor, _) = Actor::spawn(None, TaskActor, args).await?;
        self.actors.insert(id, actor.clone());
        Ok(actor)
    }
}

fn task_id(cmd: &TaskCmd) -> &str {
    match cmd {
        TaskCmd::Run(task, _) | TaskCmd::Accept(task, _) => &task.id,
        TaskCmd::Get(id, _) | TaskCmd::RunAccepted(id) => id,
    }
}

/// How the per-task spawner starts.
pub struct TaskSpawnerArgs {
    pub counters: Arc<TaskCounters>,
    pub limits: TaskLimits,
    pub journal: Option<Journal>,
    pub restored: Restored,
}

impl Actor for TaskSpawner {
    type Msg = Job<TaskCmd>;
    type State = TaskSpawnerState;
    type Arguments = TaskSpawnerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: TaskSpawnerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = TaskSpawnerState {
            actors: HashMap::new(),
            counters: args.counters,
            limits: args.limits,
            journal: args.journal,
        };
        // One actor per restored task id, as before the restart.
        let mut by_id: HashMap<String, Restored> = HashMap::new();
        for record in args.restored.records {
            by_id.entry(record.id.clone()).or_default().records.push(record);
        }
        for task in args.restored.pending {
            by_id.entry(task.id.clone()).or_default().pending.push(task);
        }
        for (id, restored) in by_id.into_iter().take(state.limits.per_task_actors) {
            state.spawn(id, restored).await?;
        }
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        for actor in state.actors.values() {
            actor.stop(None);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        job: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let id = task_id(&job.cmd).to_owned();
        match (state.actors.get(&id), job.cmd) {
            (Some(actor), cmd) => {
                let _ = actor.send_message(Job { cmd, slot: job.slot });
            }
            (None, TaskCmd::Get(_, reply)) => {
                let _ = reply.send(None);
            }
            (None, TaskCmd::RunAccepted(_)) => {}
            (None, TaskCmd::Run(_, reply) | TaskCmd::Accept(_, reply))
                if state.actors.len() >= state.limits.per_task_actors =>
            {
                let _ = reply.send(Err(TaskRefused::ActorLimit(state.limits.per_task_actors)));
            }
            (None, cmd) => {
                let actor = state.spawn(id, Restored::default()).await?;
                let _ = actor.send_message(Job { cmd, slot: job.slot });
            }
        }
        Ok(())
    }
}

/// Where `POST /tasks` and `GET /tasks/{id}` send their commands.
#[derive(Clone)]
pub enum TaskRouter {
    Pool(Arc<[Bounded<TaskCmd>]>),
    PerTask(Bounded<TaskCmd>),
}

impl TaskRouter {
    /// Start the task actors, each with its share of the `restored` state
    /// (by the same routing as new tasks).
    pub async fn start(
        routing: Routing,
        mailbox: usize,
        limits: TaskLimits,
        counters: Arc<TaskCounters>,
        journal: Option<Journal>,
        restored: Restored,
    ) -> Result<Self, ractor::SpawnErr> {
        Ok(match routing {
            Routing::Pool(n) => {
                let mut shares: Vec<Restored> = (0..n).map(|_| Restored::default()).collect();
                for record in restored.records {
                    shares[hashing::actor_for(&record.id, n) as usize].records.push(record);
                }
                for task in restored.pending {
                    shares[hashing::actor_for(&task.id, n) as usize].pending.push(task);
                }
                let mut actors = Vec::with_capacity(n as usize);
                for (index, share) in shares.into_iter().enumerate() {
                    let args = TaskActorArgs {
                        index: index as u64,
                        counters: counters.clone(),
                        records: limits.records_per_actor,
                        accepted_limit: limits.accepted_per_actor,
                        journal: journal.clone().map(ActorJournal::new),
                        restored: share,
                    };
                    debug_assert!(args.restored.is_empty() || journal.is_some());
                    let (actor, _) = Actor::spawn(None, TaskActor, args).await?;
                    actors.push(Bounded::new(actor, mailbox));
                }
                TaskRouter::Pool(actors.into())
            }
            Routing::PerTask => {
                let args = TaskSpawnerArgs {
                    counters,
                    limits,
                    journal,
                    restored,
                };
                let (spawner, _) = Actor::spawn(None, TaskSpawner, args).await?;
                TaskRouter::PerTask(Bounded::new(spawner, mailbox))
            }
        })
    }

    /// The mailbox that handles task `id`.
    pub fn route(&self, id: &str) -> &Bounded<TaskCmd> {
        match self {
            TaskRouter::Pool(actors) => &actors[hashing::actor_for(id, actors.len() as u32) as usize],
            TaskRouter::PerTask(spawner) => spawner,
        }
    }

    pub fn stop(&self) {
        match self {
            TaskRouter::Pool(actors) => actors.iter().for_each(|a| a.actor().stop(None)),
            TaskRouter::PerTask(spawner) => spawner.actor().stop(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, debit: i64, credit: i64) -> Row {
        Row {
            account: account.into(),
            debit_cents: debit,
            credit_cents: credit,
        }
    }

    #[test]
    fn balanced_rows() {
        let v = validate_rows(&[row("4000-100", 500, 0), row("5000-200", 0, 500)]);
        assert_eq!(v.invalid, vec![]);
        assert_eq!(
            (v.total_debit_cents, v.total_credit_cents, v.balanced),
            (500, 500, true)
        );
    }

    #[test]
    fn each_rule_rejects_its_row_and_invalid_rows_do_not_count() {
        let rows = [
            row("4000-100", 700, 0),
            row("400-1000", 1, 0),
            row("4000_100", 1, 0),
            row("40a0-100", 1, 0),
            row("4000-100", -1, 0),
            row("4000-100", 0, -5),
            row("4000-100", 3, 4),
            row("4000-100", 0, 0),
            row("4000-100", MAX_AMOUNT_CENTS + 1, 0),
            row("5000-100", 0, 600),
        ];
        let v = validate_rows(&rows);
        let bad: Vec<usize> = v.invalid.iter().map(|r| r.row).collect();
        assert_eq!(bad, (1..=8).collect::<Vec<_>>());
        assert_eq!(v.invalid_count, 8);
        assert_eq!((v.total_debit_cents, v.total_credit_cents), (700, 600));
        assert!(!v.balanced);
    }

    #[test]
    fn empty_task_is_balanced() {
        assert!(validate_rows(&[]).balanced);
    }

    #[test]
    fn task_id_and_kind_rules() {
        assert!(valid_task_id("a"));
        assert!(valid_task_id(&"x".repeat(128)));
        assert!(!valid_task_id(&"x".repeat(129)));
        assert!(!valid_task_id(""));
        assert!(!valid_task_id("a b"));
        assert!(!valid_task_id("é"));
        let mut t = TaskRequest {
            id: "t-1".into(),
            kind: "validate".into(),
            rows: vec![],
        };
        assert!(t.validate().is_ok());
        t.kind = String::new();
        assert!(t.validate().is_err());
        t.kind = "k".into();
        t.rows = vec![row("4000-100", 1, 0); MAX_ROWS + 1];
        assert!(t.validate().unwrap_err().contains("5000"));
    }

    #[test]
    fn routing_parses_and_prints() {
        assert_eq!("pool:10".parse(), Ok(Routing::Pool(10)));
        assert_eq!("per-task".parse(), Ok(Routing::PerTask));
        assert!("pool:0".parse::<Routing>().is_err());
        assert!("pool".parse::<Routing>().is_err());
        assert!("ring:3".parse::<Routing>().is_err());
        assert_eq!(Routing::Pool(3).to_string(), "pool:3");
    }

    #[test]
    fn stored_records_are_bounded() {
        let mut s = TaskActorState::new(&TaskActorArgs {
            index: 0,
            counters: Arc::default(),
            records: 2,
            accepted_limit: 10,
            journal: None,
            restored: Restored::default(),
        });
        for id in ["a", "b", "c", "c"] {
            s.run(TaskRequest {
                id: id.into(),
                kind: "k".into(),
                rows: vec![row("bad", 1, 0); STORED_INVALID_ROWS + 5],
            });
        }
        assert_eq!(s.records.len(), 2);
        assert!(!s.records.contains_key("a"));
        let c = &s.records["c"];
        assert_eq!(c.validation.invalid.len(), STORED_INVALID_ROWS);
        assert_eq!(c.validation.invalid_count, STORED_INVALID_ROWS + 5);
    }
}
