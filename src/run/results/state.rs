//! Figures of the state, recovery, routing and cross-check scenarios.

use super::*;

/// Books present before and after one recycle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateFigures {
    pub kind: String,
    pub journal: bool,
    pub books_added: u64,
    pub books_before: u64,
    pub books_after: u64,
}

/// Long tasks (`Prefer: respond-async`) in flight across one recycle
/// (issue 19): accepted just before the recycle, counted after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InflightFigures {
    pub kind: String,
    pub journal: bool,
    pub rows_per_task: u64,
    /// Posted before, during and just after the recycle.
    pub tasks_sent: u64,
    /// Answered 202 (the rest found no process to take them).
    pub tasks_accepted: u64,
    /// Of those, accepted before the recycle was triggered.
    pub accepted_at_recycle: u64,
    /// Accepted before the trigger and not done by the server's own count
    /// (`GET /stats` `tasks.done`) then.
    pub in_flight_at_recycle: u64,
    /// Accepted tasks `GET /tasks/{id}` reads `done` after the recycle.
    pub tasks_finished: u64,
    /// Accepted tasks not finished: unknown to the server after the
    /// recycle (404) or still not done at the deadline.
    pub tasks_lost: u64,
    /// Of the lost, the ones answered 404.
    pub lost_unknown: u64,
    /// Completions counted beyond one per finished task (`GET /stats`
    /// `tasks.done` minus finished), when the count spans the recycle: with a
    /// journal (it carries the count) or when the actors outlive the
    /// recycle (split). `None`: the old process took its count with it.
    pub tasks_run_twice: Option<u64>,
    /// Unfinished tasks the new process resumed from the journal.
    pub tasks_resumed: Option<u64>,
}

/// One restart from a journal (`variant` says which: `N events`,
/// `N events + snapshot`, or `tasks after SIGKILL`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RecoveryFigures {
    /// Events in the journal before the restart.
    pub events: u64,
    /// Recovery started from a snapshot taken at the last event.
    pub snapshot: bool,
    /// The journal was written by the tool itself (books for a replay, or
    /// tasks accepted and never finished), not left by a real crash.
    #[serde(default)]
    pub synthetic: bool,
    /// Spawn to ready line of the restarted process.
    pub startup_ms: f64,
    /// The process's own figure: reading the snapshot and replaying events.
    pub recovery_ms: f64,
    pub events_replayed: u64,
    /// events_replayed / recovery time (0 when nothing was replayed).
    pub replay_events_per_sec: f64,
    pub books_expected: u64,
    pub books_recovered: u64,
    /// Tasks accepted (`Prefer: respond-async`, 202) before the SIGKILL.
    pub tasks_accepted: u64,
    /// Of those, unfinished at the kill and resumed by the new process.
    pub tasks_resumed: u64,
    /// Tasks the new process reports done (each accepted task once: equal
    /// to tasks_accepted).
    pub tasks_done: u64,
    /// From starting the process to every resumed task done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_done_ms: Option<f64>,
}

/// One routing mode under 10,000 distinct task ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RoutingFigures {
    pub routing: String,
    pub tasks_sent: u64,
    /// Tasks answered 200.
    pub tasks_ok: u64,
    /// Tasks answered otherwise or not at all (`tasks_sent - tasks_ok`).
    #[serde(default)]
    pub tasks_failed: u64,
    /// Why the first failed task failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    pub distinct_ids: u64,
    pub rows_per_task: u64,
    pub concurrency: usize,
    pub tasks_per_sec: f64,
    pub live_actors: u64,
    /// `GET /stats` `rss_bytes` before and after the tasks; `None` when the
    /// server could not read its memory (it then reports `null`).
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
}

/// One target measured by hostlab load and by another tool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CrossCheckFigures {
    pub tool: String,
    pub tool_version: String,
    pub command: String,
    pub requests_per_sec: f64,
    /// hostlab load's req/s over the tool's (same target, same CPUs).
    pub hostlab_over_tool: f64,
    /// The tool's CPU (user + system, from getrusage of the child) per
    /// request it completed; `None` in older results or when the tool
    /// printed no request count.
    #[serde(default)]
    pub cpu_us_per_request: Option<f64>,
}
