//! The process manager shared by `proxy`, `inprocess` and `split` (whose
//! fronts it manages): it starts the app process, warms it up, restarts it when it
//! crashes, recycles it (overlapped or stop-then-start) on a signal, an admin
//! call or a policy trigger, stops or suspends it when idle, and gives up
//! after rapid failures. It is the ANCM + WAS part of IIS, rebuilt.
//!
//! One supervisor task owns every child process and makes every decision, so
//! no two recycles ever overlap. The request path reads only an atomic
//! pointer to the current [`Generation`] (proxy) or nothing at all
//! (inprocess, where workers accept from the shared socket themselves).
//!
//! Its parts: [`Manager`] (`handle.rs`) is the handle the request path, the
//! admin endpoint and the signal handlers hold; `supervisor.rs` is the one
//! task that owns the processes and moves through the [`Phase`]s;
//! `triggers.rs` holds its decisions (recycle triggers, idle timeout,
//! rapid-fail) as pure functions; [`Hosting`] (`hosting.rs`) is what differs
//! between a proxied app process and an in-process worker.

mod handle;
mod hosting;
mod supervisor;
mod triggers;
mod watch;

use std::time::Duration;

use serde::Serialize;

use crate::policy::Policy;

pub use handle::{Generation, InFlight, Manager};
pub use hosting::Hosting;

/// Phases of the managed app, as the request path sees it. Each variant's
/// doc says what enters it; the supervisor (`supervisor.rs`) is the only
/// writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No app process. Entered at start (on-demand), after an idle
    /// terminate, after a failed start, and when a drain ends (shutdown,
    /// stop-then-start recycle before its new process is spawned). Left for
    /// `Starting` on the next request (demand) or an operator's recycle.
    Stopped,
    /// A new app process was spawned and has not printed its ready line yet.
    /// Entered from `Stopped` (demand, always-running start, restart after a
    /// crash) and from `Draining` (stop-then-start recycle). Left for
    /// `Warming` at the ready line, for `Stopped` or `Failed` if the start
    /// fails.
    Starting,
    /// The new process is ready; its warm-up URLs are being requested.
    /// Entered at the ready line; left for `Ready` when warm-up succeeds (the
    /// switch), for `Stopped` or `Failed` when it fails.
    Warming,
    /// A process serves requests. Entered at the switch to a warm process
    /// and on thawing a suspended one. An overlapped recycle stays in `Ready`
    /// throughout: the old process serves until the new one is warm.
    Ready,
    /// The process is finishing its in-flight requests before it stops.
    /// Entered on a stop-then-start recycle, an idle terminate, and shutdown;
    /// left for `Starting` (recycle) or `Stopped`.
    Draining,
    /// The process is frozen (SIGSTOP). Entered on an idle timeout with
    /// action `suspend`; left for `Ready` when the next request thaws it
    /// (SIGCONT), or by a recycle.
    Suspended,
    /// Rapid-fail protection tripped (too many crashes in its window):
    /// requests get 503 `app_unavailable`. Left only by an operator's
    /// recycle (SIGHUP or `POST /recycle`).
    Failed,
    /// The `app_offline` file exists (ANCM's deploy switch): the app was
    /// drained and stopped, and every request gets 503 with the file's
    /// content. Left for `Starting` when the file is removed.
    Offline,
}

/// Why a request could not get an app process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "the app was stopped by rapid-fail protection after repeated crashes; an operator must recycle it (SIGHUP or POST /recycle)"
    )]
    RapidFail,
    #[error("the app did not become ready within {0:?}")]
    StartTimeout(Duration),
    #[error("the app failed to start: {0}")]
    StartFailed(String),
    #[error("{0} requests are already waiting for the app to start; retry shortly")]
    QueueFull(usize),
    #[error("the front is shutting down")]
    ShuttingDown,
    /// The `app_offline` file exists; the page is its content.
    #[error("the app is offline for a deploy (the app_offline file exists)")]
    AppOffline(bytes::Bytes),
}

/// What started a recycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecycleReason {
    Signal,
    Admin,
    Periodic,
    Scheduled,
    Memory,
    Requests,
    /// The `--watch` file changed (ASP.NET's restart on a configuration change).
    ConfigChange,
}

/// Timings of one recycle, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct RecycleReport {
    pub reason: RecycleReason,
    pub overlapped: bool,
    pub old_pid: Option<u32>,
    pub new_pid: Option<u32>,
    /// Spawn to ready line of the new process.
    pub start_to_ready_ms: u64,
    pub warmup_ms: u64,
    /// From the switch (or the stop, without overlap) until the old process exited.
    pub drain_ms: u64,
    /// Time with no process ready to serve (0 for an overlapped recycle).
    pub unavailable_ms: u64,
    /// The old process had to be SIGKILLed at the shutdown limit.
    pub old_killed: bool,
    pub total_ms: u64,
    /// Nothing was running, so nothing was recycled (`error` says why).
    pub skipped: bool,
    pub error: Option<String>,
}

/// What `GET /status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub phase: Phase,
    pub app_pid: Option<u32>,
    pub generation: u64,
    pub recycles: u64,
    pub restarts_after_crash: u64,
    pub crashes: u64,
    pub cold_starts: u64,
    pub last_recycle: Option<RecycleReport>,
    pub last_start_to_ready_ms: Option<u64>,
    /// Requests the front held while no app generation could take them (a
    /// start, restart, resume or switch) and then served: how many, and the
    /// sum of their waits.
    pub held_requests: u64,
    pub held_total_ms: f64,
    pub policy: Policy,
}
