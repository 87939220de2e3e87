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

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::child::{ChildEvent, ChildProcess, ChildSpec};
use crate::policy::{IdleAction, Policy, StartMode};
use crate::worker_protocol::{Command as WorkerCommand, Event};

/// Phases of the managed app, as the request path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No app process. Entered at start (on-demand), after an idle terminate,
    /// and after a failed start. Left on the next request (demand) or an
    /// operator's recycle.
    Stopped,
    /// A new app process was spawned and has not printed its ready line yet.
    Starting,
    /// The new process is ready; its warm-up URLs are being requested.
    Warming,
    /// A process serves requests. An overlapped recycle stays in `Ready`
    /// throughout: the old process serves until the new one is warm.
    Ready,
    /// The process is finishing its in-flight requests before it stops
    /// (stop-then-start recycle, shutdown).
    Draining,
    /// The process is frozen (SIGSTOP) after an idle timeout with action
    /// `suspend`; the next request thaws it (SIGCONT).
    Suspended,
    /// Rapid-fail protection tripped: requests get 503 `app_unavailable`
    /// until an operator recycles (SIGHUP or `POST /recycle`).
    Failed,
}

/// How requests reach the app, which decides how a process is started and drained.
pub enum Hosting {
    /// `hostlab serve app` on its own loopback port per generation; the front
    /// forwards requests to it.
    Proxy { app_args: Vec<String> },
    /// `hostlab serve worker` processes that inherit the listening socket.
    /// `listener` is the supervisor's copy, duplicated for each worker.
    InProcess {
        listener: std::net::TcpListener,
        worker_args: Vec<String>,
    },
}

/// One app process's life: requests in flight on it, and whether new
/// requests may still be sent to it.
#[derive(Debug)]
pub struct Generation {
    pub number: u64,
    pub pid: u32,
    /// Base URL requests go to (proxy: the app's own port).
    pub url: String,
    /// The same as a socket address (the loopback address the app listens on).
    pub addr: std::net::SocketAddr,
    in_flight: AtomicU64,
    pub requests: AtomicU64,
    /// Set (SeqCst) before the supervisor waits for `in_flight` to reach zero;
    /// the request path increments `in_flight` (SeqCst) before it checks this
    /// flag, so either the request backs off or the supervisor waits for it.
    retired: AtomicBool,
}

/// Held by a request while it is forwarded to a generation.
pub struct InFlight(Arc<Generation>);

impl InFlight {
    pub fn generation(&self) -> &Generation {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
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

enum Command {
    /// A request needs the app (on-demand start, resume after suspend); the
    /// reply says whether an app is ready afterwards.
    Demand(Option<oneshot::Sender<Result<(), String>>>),
    Recycle {
        reason: RecycleReason,
        reply: Option<oneshot::Sender<RecycleReport>>,
    },
    Shutdown(oneshot::Sender<()>),
}

struct Shared {
    policy: Policy,
    current: ArcSwapOption<Generation>,
    phase: watch::Sender<Phase>,
    status: Mutex<Status>,
    /// Milliseconds since `epoch` of the latest request (idle timeout).
    last_request_ms: AtomicU64,
    waiting: AtomicUsize,
    held_requests: AtomicU64,
    held_us: AtomicU64,
    epoch: Instant,
    last_start_error: Mutex<Option<String>>,
}

/// Handle to the process manager; cheap to clone.
#[derive(Clone)]
pub struct Manager {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Manager {
    /// Start the supervisor. With `StartMode::AlwaysRunning` the first app
    /// process is started (and warmed up) before this returns.
    pub async fn start(hosting: Hosting, policy: Policy) -> Manager {
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            current: ArcSwapOption::empty(),
            phase: watch::Sender::new(Phase::Stopped),
            status: Mutex::new(Status {
                phase: Phase::Stopped,
                app_pid: None,
                generation: 0,
                recycles: 0,
                restarts_after_crash: 0,
                crashes: 0,
                cold_starts: 0,
                last_recycle: None,
                last_start_to_ready_ms: None,
                held_requests: 0,
                held_total_ms: 0.0,
                policy: policy.clone(),
            }),
            last_request_ms: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            held_requests: AtomicU64::new(0),
            held_us: AtomicU64::new(0),
            epoch: Instant::now(),
            last_start_error: Mutex::new(None),
            policy,
        });
        let mut supervisor = Supervisor {
            shared: shared.clone(),
            hosting,
            running: None,
            next_generation: 1,
            crashes: VecDeque::new(),
            last_tick_wall: SystemTime::now(),
            requested_recycle: None,
        };
        if supervisor.shared.policy.start_mode == StartMode::AlwaysRunning {
            supervisor.start_fresh().await;
        }
        tokio::spawn(supervisor.run(rx));
        Manager { shared, commands }
    }

    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    pub fn phase(&self) -> Phase {
        *self.shared.phase.borrow()
    }

    pub fn phases(&self) -> watch::Receiver<Phase> {
        self.shared.phase.subscribe()
    }

    pub fn status(&self) -> Status {
        let mut status = self.shared.status.lock().unwrap().clone();
        status.phase = self.phase();
        status.held_requests = self.shared.held_requests.load(Ordering::Relaxed);
        status.held_total_ms = self.shared.held_us.load(Ordering::Relaxed) as f64 / 1000.0;
        status
    }

    /// Ask for the app to be started or resumed (on-demand start).
    pub fn demand(&self) {
        let _ = self.commands.send(Command::Demand(None));
    }

    /// Ask for the app and wait until the supervisor acted: `Err` says why
    /// no app is ready (failed start, rapid-fail).
    pub async fn demand_and_wait(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Demand(Some(tx)));
        rx.await.unwrap_or_else(|_| Err("the front is shutting down".into()))
    }

    /// Recycle now and wait for the report.
    pub async fn recycle(&self, reason: RecycleReason) -> Option<RecycleReport> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Recycle {
            reason,
            reply: Some(tx),
        });
        rx.await.ok()
    }

    /// Recycle without waiting (signal handlers).
    pub fn recycle_in_background(&self, reason: RecycleReason) {
        let _ = self.commands.send(Command::Recycle { reason, reply: None });
    }

    /// Drain and stop the app process, then end the supervisor.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The generation a request should go to, waiting (bounded) for a start,
    /// restart or resume if none is ready. The returned guard counts the
    /// request as in flight on that generation.
    pub async fn acquire(&self) -> Result<InFlight, Unavailable> {
        let now_ms = self.shared.epoch.elapsed().as_millis() as u64;
        self.shared.last_request_ms.store(now_ms, Ordering::Relaxed);
        if let Some(guard) = self.try_enter() {
            return Ok(guard);
        }
        self.acquire_slow().await
    }

    fn try_enter(&self) -> Option<InFlight> {
        let generation = self.shared.current.load_full()?;
        generation.in_flight.fetch_add(1, Ordering::SeqCst);
        if generation.retired.load(Ordering::SeqCst) {
            generation.in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        generation.requests.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(generation))
    }

    async fn acquire_slow(&self) -> Result<InFlight, Unavailable> {
        let limit = self.shared.policy.queue_length;
        if self.shared.waiting.fetch_add(1, Ordering::SeqCst) >= limit {
            self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Unavailable::QueueFull(limit));
        }
        let wait = self.shared.policy.startup_limit + self.shared.policy.shutdown_limit;
        let held = Instant::now();
        let result = tokio::time::timeout(wait, self.wait_for_generation()).await;
        self.shared.waiting.fetch_sub(1, Ordering::SeqCst);
        if matches!(result, Ok(Ok(_))) {
            self.shared.held_requests.fetch_add(1, Ordering::Relaxed);
            self.shared
                .held_us
                .fetch_add(held.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        result.unwrap_or(Err(Unavailable::StartTimeout(wait)))
    }

    async fn wait_for_generation(&self) -> Result<InFlight, Unavailable> {
        let mut phases = self.shared.phase.subscribe();
        let mut saw_start = false;
        loop {
            if let Some(guard) = self.try_enter() {
                return Ok(guard);
            }
            let phase = *phases.borrow_and_update();
            match phase {
                Phase::Failed => return Err(Unavailable::RapidFail),
                Phase::Stopped if saw_start => {
                    let error = self.shared.last_start_error.lock().unwrap().clone();
                    return Err(Unavailable::StartFailed(error.unwrap_or_else(|| "it exited".into())));
                }
                Phase::Stopped | Phase::Suspended => self.demand(),
                Phase::Starting | Phase::Warming => saw_start = true,
                Phase::Ready | Phase::Draining => {}
            }
            // Wake on the next phase change, or re-check shortly: a retired
            // generation is replaced without a phase change.
            let _ = tokio::time::timeout(Duration::from_millis(20), phases.changed()).await;
        }
    }
}

/// A running app process and its generation.
struct Running {
    generation: Arc<Generation>,
    child: ChildProcess,
    started_at: Instant,
    suspended: bool,
    /// The worker said it has been idle for the idle timeout (inprocess).
    idle_reported: bool,
    /// When it was last thawed: an idle report from before the thaw must
    /// not freeze it again while it serves the request that woke it.
    resumed_at: Option<Instant>,
}

struct Supervisor {
    shared: Arc<Shared>,
    hosting: Hosting,
    running: Option<Running>,
    next_generation: u64,
    crashes: VecDeque<Instant>,
    last_tick_wall: SystemTime,
    /// A recycle a worker asked for, taken on the next tick.
    requested_recycle: Option<RecycleReason>,
}

impl Supervisor {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Demand(reply)) => {
                        let result = self.on_demand().await;
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        }
                    }
                    Some(Command::Recycle { reason, reply }) => {
                        let report = self.recycle(reason).await;
                        if let Some(reply) = reply {
                            let _ = reply.send(report);
                        }
                    }
                    Some(Command::Shutdown(done)) => {
                        self.stop_current().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.stop_current().await;
                        return;
                    }
                },
                event = child_event(&mut self.running) => match event {
                    ChildEvent::Exited(status) => self.on_crash(status).await,
                    ChildEvent::Line(line) => self.on_child_line(&line),
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    fn set_phase(&self, phase: Phase) {
        if self.running.is_none() {
            self.shared.status.lock().unwrap().app_pid = None;
        }
        self.shared.phase.send_replace(phase);
    }

    fn spec(&self) -> ChildSpec {
        let startup_limit = self.shared.policy.startup_limit;
        match &self.hosting {
            Hosting::Proxy { app_args } => ChildSpec::new(app_args.clone(), startup_limit),
            Hosting::InProcess { listener, worker_args } => ChildSpec {
                args: worker_args.clone(),
                listener: listener.try_clone().ok().map(OwnedFd::from),
                startup_limit,
                cpus: None,
            },
        }
    }

    /// Spawn, wait for the ready line, warm up; `Ok` = ready to switch to.
    async fn launch(&mut self) -> Result<(Running, Duration, Duration), String> {
        let mut child = ChildProcess::start(self.spec()).await.map_err(|e| e.to_string())?;
        let start_to_ready = child.start_to_ready;
        self.set_phase_if_not_ready(Phase::Warming);
        let warm_started = Instant::now();
        let warm_base = child.admin_url.clone().unwrap_or_else(|| child.url.clone());
        let remaining = self.shared.policy.startup_limit.saturating_sub(start_to_ready);
        if let Err(e) = warm_up(&warm_base, &self.shared.policy.warmup, remaining).await {
            child.stop(self.shared.policy.shutdown_limit).await;
            return Err(e);
        }
        if matches!(self.hosting, Hosting::InProcess { .. }) {
            // Only now may the worker take connections from the shared socket.
            child
                .tell(WorkerCommand::Accept)
                .await
                .map_err(|e| format!("worker did not take the accept command: {e}"))?;
        }
        let warmup = warm_started.elapsed();
        let number = self.next_generation;
        self.next_generation += 1;
        let generation = Arc::new(Generation {
            number,
            pid: child.pid,
            url: child.url.clone(),
            addr: child
                .url
                .trim_start_matches("http://")
                .parse()
                .map_err(|e| format!("the app's ready line has an unusable url {}: {e}", child.url))?,
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        });
        let running = Running {
            generation,
            child,
            started_at: Instant::now(),
            suspended: false,
            idle_reported: false,
            resumed_at: None,
        };
        Ok((running, start_to_ready, warmup))
    }

    /// During an overlapped recycle the old process keeps serving, so the
    /// request path keeps seeing `Ready`.
    fn set_phase_if_not_ready(&self, phase: Phase) {
        if *self.shared.phase.borrow() != Phase::Ready {
            self.set_phase(phase);
        }
    }

    fn switch_to(&mut self, running: Running) -> Option<Running> {
        {
            let mut status = self.shared.status.lock().unwrap();
            status.generation = running.generation.number;
            status.app_pid = Some(running.generation.pid);
            status.last_start_to_ready_ms = Some(running.child.start_to_ready.as_millis() as u64);
        }
        self.shared.current.store(Some(running.generation.clone()));
        let old = self.running.replace(running);
        self.set_phase(Phase::Ready);
        old
    }

    /// Start a process when none runs (on-demand, after idle or crash).
    async fn start_fresh(&mut self) -> bool {
        self.set_phase(Phase::Starting);
        match self.launch().await {
            Ok((running, _, _)) => {
                self.shared.status.lock().unwrap().cold_starts += 1;
                *self.shared.last_start_error.lock().unwrap() = None;
                self.switch_to(running);
                true
            }
            Err(e) => {
                tracing::error!("app failed to start: {e}");
                *self.shared.last_start_error.lock().unwrap() = Some(e);
                if self.count_crash() {
                    self.set_phase(Phase::Failed);
                } else {
                    self.set_phase(Phase::Stopped);
                }
                false
            }
        }
    }

    async fn on_demand(&mut self) -> Result<(), String> {
        match self.phase() {
            Phase::Stopped => {
                self.start_fresh().await;
            }
            Phase::Suspended => self.resume(),
            _ => {}
        }
        match self.phase() {
            Phase::Ready => Ok(()),
            Phase::Failed => Err(Unavailable::RapidFail.to_string()),
            _ => Err(self
                .shared
                .last_start_error
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "the app did not start".into())),
        }
    }

    fn phase(&self) -> Phase {
        *self.shared.phase.borrow()
    }

    fn resume(&mut self) {
        let Some(running) = &mut self.running else { return };
        running.child.signal(Signal::SIGCONT);
        running.suspended = false;
        running.idle_reported = false;
        running.resumed_at = Some(Instant::now());
        self.shared.current.store(Some(running.generation.clone()));
        tracing::info!("resumed app pid {}", running.generation.pid);
        self.set_phase(Phase::Ready);
    }

    /// Record a crash; true when rapid-fail protection trips.
    fn count_crash(&mut self) -> bool {
        let now = Instant::now();
        let rule = self.shared.policy.rapid_fail;
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > rule.window)
        {
            self.crashes.pop_front();
        }
        self.shared.status.lock().unwrap().crashes += 1;
        self.crashes.len() >= rule.crashes as usize
    }

    async fn on_crash(&mut self, status: String) {
        let Some(running) = self.running.take() else { return };
        running.generation.retired.store(true, Ordering::SeqCst);
        self.shared.current.store(None);
        tracing::warn!("app pid {} exited unexpectedly ({status})", running.generation.pid);
        if self.count_crash() {
            tracing::error!(
                "rapid-fail protection: {} crashes within {:?}; the app stays down until recycled",
                self.crashes.len(),
                self.shared.policy.rapid_fail.window
            );
            self.set_phase(Phase::Failed);
            return;
        }
        self.shared.status.lock().unwrap().restarts_after_crash += 1;
        self.start_fresh().await;
    }

    fn on_child_line(&mut self, line: &str) {
        let Some(running) = &mut self.running else { return };
        // inprocess workers watch their own traffic and say when they have
        // been idle for the idle timeout, or hit the request limit.
        match Event::parse(line) {
            Some(Event::Idle) => running.idle_reported = true,
            Some(Event::Active) => running.idle_reported = false,
            Some(Event::Requests) => self.requested_recycle = Some(RecycleReason::Requests),
            None => tracing::debug!("app said: {line}"),
        }
    }

    async fn on_tick(&mut self) {
        let policy = self.shared.policy.clone();
        let scheduled = self.crossed_scheduled_time(&policy);
        let Some(running) = &self.running else { return };
        if running.suspended || self.phase() != Phase::Ready {
            return;
        }
        // Idle timeout.
        if !policy.idle_timeout.is_zero() {
            let idle = match self.hosting {
                Hosting::Proxy { .. } => {
                    let last = self.shared.last_request_ms.load(Ordering::Relaxed);
                    let now = self.shared.epoch.elapsed().as_millis() as u64;
                    let since = Duration::from_millis(now.saturating_sub(last));
                    since >= policy.idle_timeout
                        && running.started_at.elapsed() >= policy.idle_timeout
                        && running.generation.in_flight.load(Ordering::SeqCst) == 0
                }
                Hosting::InProcess { .. } => {
                    running.idle_reported && running.resumed_at.is_none_or(|t| t.elapsed() >= policy.idle_timeout)
                }
            };
            if idle {
                self.on_idle(policy.idle_action).await;
                return;
            }
        }
        // Recycle triggers.
        let reason = if let Some(reason) = self.requested_recycle.take() {
            Some(reason)
        } else if !policy.recycle_every.is_zero() && running.started_at.elapsed() >= policy.recycle_every {
            Some(RecycleReason::Periodic)
        } else if scheduled {
            Some(RecycleReason::Scheduled)
        } else if policy
            .recycle_memory_mb
            .is_some_and(|mb| running.child.rss_bytes().is_some_and(|rss| rss > mb * 1024 * 1024))
        {
            Some(RecycleReason::Memory)
        } else if policy
            .recycle_requests
            .is_some_and(|n| running.generation.requests.load(Ordering::Relaxed) >= n)
        {
            Some(RecycleReason::Requests)
        } else {
            None
        };
        if let Some(reason) = reason {
            tracing::info!("recycling: {reason:?} trigger");
            self.recycle(reason).await;
        }
    }

    fn crossed_scheduled_time(&mut self, policy: &Policy) -> bool {
        let now = SystemTime::now();
        let secs_of_day = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
        let (before, after) = (secs_of_day(self.last_tick_wall), secs_of_day(now));
        self.last_tick_wall = now;
        policy.recycle_at.iter().any(|t| {
            let at = t.seconds();
            if before <= after {
                before < at && at <= after
            } else {
                // Midnight passed between the two ticks.
                at > before || at <= after
            }
        })
    }

    async fn on_idle(&mut self, action: IdleAction) {
        let Some(running) = &mut self.running else { return };
        match action {
            IdleAction::Terminate => {
                tracing::info!("idle timeout: stopping app pid {}", running.generation.pid);
                self.stop_current().await;
                self.set_phase(Phase::Stopped);
            }
            IdleAction::Suspend => {
                tracing::info!("idle timeout: suspending app pid {}", running.generation.pid);
                running.generation.retired.store(true, Ordering::SeqCst);
                self.shared.current.store(None);
                wait_idle(&running.generation, self.shared.policy.shutdown_limit).await;
                if let Hosting::InProcess { .. } = self.hosting {
                    // The worker owns its clients' keep-alive connections; a
                    // frozen worker would leave a request sent on one of them
                    // hanging, so it closes its idle ones first.
                    let _ = running.child.tell(WorkerCommand::Quiesce).await;
                    tokio::time::sleep(QUIESCE_TIME).await;
                }
                running.child.signal(Signal::SIGSTOP);
                running.suspended = true;
                // A thawed generation takes requests again.
                running.generation.retired.store(false, Ordering::SeqCst);
                self.set_phase(Phase::Suspended);
            }
        }
    }

    /// Drain and stop the running process, if any.
    async fn stop_current(&mut self) {
        if let Some(mut running) = self.running.take() {
            self.set_phase(Phase::Draining);
            self.shared.current.store(None);
            drain(&mut running, &self.hosting, self.shared.policy.shutdown_limit).await;
        }
        self.set_phase(Phase::Stopped);
    }

    async fn recycle(&mut self, reason: RecycleReason) -> RecycleReport {
        let started = Instant::now();
        let overlapped = self.shared.policy.overlap && self.running.is_some();
        let old_pid = self.running.as_ref().map(|r| r.generation.pid);
        let mut report = RecycleReport {
            reason,
            overlapped,
            old_pid,
            new_pid: None,
            start_to_ready_ms: 0,
            warmup_ms: 0,
            drain_ms: 0,
            unavailable_ms: 0,
            old_killed: false,
            total_ms: 0,
            skipped: false,
            error: None,
        };
        // Nothing runs (on-demand before the first request, after an idle
        // terminate or a failed start): nothing to recycle; the next request
        // starts the app. After rapid-fail, an operator's recycle is what
        // brings it back, so that case goes on.
        if self.running.is_none() && self.phase() != Phase::Failed {
            report.skipped = true;
            report.error = Some("no app process is running; the next request starts one".into());
            report.total_ms = started.elapsed().as_millis() as u64;
            return report;
        }
        if self.phase() == Phase::Failed {
            self.crashes.clear();
        }
        if self.phase() == Phase::Suspended
            && let Some(r) = &mut self.running
        {
            r.child.signal(Signal::SIGCONT);
        }
        let mut unavailable_since = None;
        if !overlapped {
            let drain_started = Instant::now();
            if let Some(mut old) = self.running.take() {
                self.set_phase(Phase::Draining);
                self.shared.current.store(None);
                unavailable_since = Some(Instant::now());
                report.old_killed = drain(&mut old, &self.hosting, self.shared.policy.shutdown_limit).await;
            }
            report.drain_ms = drain_started.elapsed().as_millis() as u64;
            unavailable_since.get_or_insert_with(Instant::now);
            self.set_phase(Phase::Starting);
        }
        match self.launch().await {
            Ok((running, start_to_ready, warmup)) => {
                report.new_pid = Some(running.generation.pid);
                report.start_to_ready_ms = start_to_ready.as_millis() as u64;
                report.warmup_ms = warmup.as_millis() as u64;
                *self.shared.last_start_error.lock().unwrap() = None;
                let old = self.switch_to(running);
                if let Some(since) = unavailable_since {
                    report.unavailable_ms = since.elapsed().as_millis() as u64;
                }
                if let Some(mut old) = old {
                    let drain_started = Instant::now();
                    report.old_killed = drain(&mut old, &self.hosting, self.shared.policy.shutdown_limit).await;
                    report.drain_ms = drain_started.elapsed().as_millis() as u64;
                }
            }
            Err(e) => {
                if let Some(since) = unavailable_since {
                    report.unavailable_ms = since.elapsed().as_millis() as u64;
                }
                tracing::error!("recycle failed, the new app did not start: {e}");
                *self.shared.last_start_error.lock().unwrap() = Some(e.clone());
                report.error = Some(e);
                if self.running.is_none() {
                    self.set_phase(Phase::Stopped);
                }
            }
        }
        report.total_ms = started.elapsed().as_millis() as u64;
        let mut status = self.shared.status.lock().unwrap();
        status.recycles += 1;
        status.last_recycle = Some(report.clone());
        report
    }
}

/// How long an inprocess worker gets to close its idle connections before
/// it is frozen.
const QUIESCE_TIME: Duration = Duration::from_millis(100);

/// Wait (at most `limit`) until no request is in flight on `generation`.
async fn wait_idle(generation: &Generation, limit: Duration) {
    let deadline = Instant::now() + limit;
    while generation.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Retire a process and stop it within `limit`; true if it had to be killed.
async fn drain(running: &mut Running, hosting: &Hosting, limit: Duration) -> bool {
    running.generation.retired.store(true, Ordering::SeqCst);
    if let Hosting::Proxy { .. } = hosting {
        // No new request reaches it once retired; let the last ones finish
        // before the app starts its own shutdown.
        wait_idle(&running.generation, limit).await;
    }
    // An inprocess worker stops accepting on SIGTERM and drains its
    // connections itself (front::serve), within the same limit; the margin
    // lets it exit on its own before we kill it.
    let (status, killed) = running.child.stop(limit + Duration::from_secs(1)).await;
    tracing::info!(
        "app pid {} stopped ({}){}",
        running.generation.pid,
        status.map_or("unknown status".into(), |s| s.to_string()),
        if killed {
            " after SIGKILL at the shutdown limit"
        } else {
            ""
        }
    );
    killed
}

async fn child_event(running: &mut Option<Running>) -> ChildEvent {
    match running {
        Some(running) => running.child.next_event().await,
        None => std::future::pending().await,
    }
}

/// GET each warm-up path on the new process (expects 2xx), within `limit`.
async fn warm_up(base: &str, paths: &[String], limit: Duration) -> Result<(), String> {
    if paths.is_empty() {
        return Ok(());
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<axum::body::Body>();
    let all = async {
        for path in paths {
            let uri: http::Uri = format!("{base}{path}")
                .parse()
                .map_err(|e| format!("warm-up URL {path}: {e}"))?;
            let response = client
                .get(uri)
                .await
                .map_err(|e| format!("warm-up request {path} failed: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("warm-up request {path} answered {}", response.status()));
            }
        }
        Ok(())
    };
    tokio::time::timeout(limit, all)
        .await
        .unwrap_or_else(|_| Err(format!("warm-up did not finish within the startup limit ({limit:?})")))
}
