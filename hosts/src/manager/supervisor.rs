//! The supervisor: one task that owns every app process and makes every
//! decision (start, warm up, switch, recycle, idle, crash, shutdown), so no
//! two recycles ever overlap. It moves the manager through its [`Phase`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::handle::{Command, Generation, Shared};
use super::triggers::{self, CrashWindow, IdleEvidence, Observed};
use super::{Hosting, Phase, RecycleReason, RecycleReport, Unavailable};
use crate::child::{ChildEvent, ChildProcess};
use crate::policy::{IdleAction, StartMode};
use crate::worker_protocol::Event;

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

pub(super) struct Supervisor {
    shared: Arc<Shared>,
    hosting: Hosting,
    running: Option<Running>,
    next_generation: u64,
    crashes: CrashWindow,
    last_tick_wall: SystemTime,
    /// A recycle a worker asked for, taken on the next tick.
    requested_recycle: Option<RecycleReason>,
}

impl Supervisor {
    /// Start the supervisor task. With `StartMode::AlwaysRunning` the first
    /// app process is started (and warmed up) before this returns.
    pub(super) async fn spawn(shared: Arc<Shared>, hosting: Hosting, commands: mpsc::UnboundedReceiver<Command>) {
        let mut supervisor = Supervisor {
            shared,
            hosting,
            running: None,
            next_generation: 1,
            crashes: CrashWindow::default(),
            last_tick_wall: SystemTime::now(),
            requested_recycle: None,
        };
        // A deploy in progress when the front starts: stay offline until
        // the app_offline file is removed.
        let offline_at_start = supervisor
            .shared
            .policy
            .app_offline
            .as_deref()
            .and_then(super::watch::read_page);
        if let Some(page) = offline_at_start {
            supervisor.go_offline(page).await;
        } else if supervisor.shared.policy.start_mode == StartMode::AlwaysRunning {
            supervisor.start_fresh().await;
        }
        tokio::spawn(supervisor.run(commands));
    }

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
                    Some(Command::Recycle { reason, overlap, reply }) => {
                        let report = self.recycle(reason, overlap).await;
                        if let Some(reply) = reply {
                            let _ = reply.send(report);
                        }
                    }
                    Some(Command::Offline(page)) => self.go_offline(page).await,
                    Some(Command::Online) => self.go_online().await,
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

    /// Spawn, wait for the ready line, warm up; `Ok` = ready to switch to.
    async fn launch(&mut self) -> Result<(Running, Duration, Duration), String> {
        let mut child = ChildProcess::start(self.hosting.spec(self.shared.policy.startup_limit))
            .await
            .map_err(|e| e.to_string())?;
        let start_to_ready = child.start_to_ready;
        self.set_phase_if_not_ready(Phase::Warming);
        let warm_started = Instant::now();
        let warm_base = child.admin_url.clone().unwrap_or_else(|| child.url.clone());
        let remaining = self.shared.policy.startup_limit.saturating_sub(start_to_ready);
        if let Err(e) = warm_up(&warm_base, &self.shared.policy.warmup, remaining).await {
            child.stop(self.shared.policy.shutdown_limit).await;
            return Err(e);
        }
        self.hosting.admit(&mut child).await?;
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

    /// The `app_offline` file exists: drain and stop the app, then answer
    /// every request with the file's content (a newer content replaces the
    /// page while offline).
    async fn go_offline(&mut self, page: bytes::Bytes) {
        *self.shared.offline_page.lock().unwrap() = Some(page);
        if self.phase() == Phase::Offline {
            return;
        }
        if self.phase() == Phase::Suspended
            && let Some(r) = &mut self.running
        {
            r.child.signal(Signal::SIGCONT);
        }
        tracing::info!("app_offline file present: stopping the app");
        // Straight from draining to offline: a `Stopped` phase in between
        // would let a waiting request start the app on demand (and be
        // refused as a failed start) instead of getting the page.
        self.stop_current_into(Phase::Offline).await;
    }

    /// The `app_offline` file is gone: start the app again at once.
    async fn go_online(&mut self) {
        if self.phase() != Phase::Offline {
            return;
        }
        *self.shared.offline_page.lock().unwrap() = None;
        tracing::info!("app_offline file removed: starting the app");
        self.set_phase(Phase::Stopped);
        self.start_fresh().await;
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
            Phase::Offline => Err("the app is offline (the app_offline file exists)".into()),
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
        self.shared.status.lock().unwrap().crashes += 1;
        self.crashes.record(Instant::now(), self.shared.policy.rapid_fail)
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
        let now = SystemTime::now();
        let scheduled = triggers::crossed_time_of_day(self.last_tick_wall, now, &policy.recycle_at);
        self.last_tick_wall = now;
        let Some(running) = &self.running else { return };
        if running.suspended || self.phase() != Phase::Ready {
            return;
        }
        let evidence = if self.hosting.front_sees_requests() {
            let last = self.shared.last_request_ms.load(Ordering::Relaxed);
            let now = self.shared.epoch.elapsed().as_millis() as u64;
            IdleEvidence::FrontSaw {
                since_last_request: Duration::from_millis(now.saturating_sub(last)),
                running_for: running.started_at.elapsed(),
                in_flight: running.generation.in_flight.load(Ordering::SeqCst),
            }
        } else {
            IdleEvidence::WorkerReported {
                idle: running.idle_reported,
                since_resume: running.resumed_at.map(|t| t.elapsed()),
            }
        };
        if triggers::is_idle(policy.idle_timeout, evidence) {
            self.on_idle(policy.idle_action).await;
            return;
        }
        let seen = Observed {
            running_for: running.started_at.elapsed(),
            rss_bytes: if policy.recycle_memory_mb.is_some() {
                running.child.rss_bytes()
            } else {
                None
            },
            requests: running.generation.requests.load(Ordering::Relaxed),
            requested: self.requested_recycle.take(),
            scheduled,
        };
        if let Some(reason) = triggers::recycle_trigger(&policy, &seen) {
            tracing::info!("recycling: {reason:?} trigger");
            self.recycle(reason, None).await;
        }
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
                self.hosting.before_freeze(&mut running.child).await;
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
        self.stop_current_into(Phase::Stopped).await;
    }

    /// Drain and stop the running app, then enter `phase`.
    async fn stop_current_into(&mut self, phase: Phase) {
        if let Some(mut running) = self.running.take() {
            self.set_phase(Phase::Draining);
            self.shared.current.store(None);
            drain(&mut running, &self.hosting, self.shared.policy.shutdown_limit).await;
        }
        self.set_phase(phase);
    }

    /// Recycle now; `overlap` overrides the policy's for this recycle.
    async fn recycle(&mut self, reason: RecycleReason, overlap: Option<bool>) -> RecycleReport {
        let started = Instant::now();
        let overlapped = overlap.unwrap_or(self.shared.policy.overlap) && self.running.is_some();
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
        if self.phase() == Phase::Offline {
            report.skipped = true;
            report.error = Some("the app is offline; removing the app_offline file starts it".into());
            report.total_ms = started.elapsed().as_millis() as u64;
            return report;
        }
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
    if hosting.front_sees_requests() {
        // No new request reaches it once retired; let the last ones finish
        // before the app starts its own shutdown.
        wait_idle(&running.generation, limit).await;
    }
    // A worker stops accepting on SIGTERM and drains its connections itself
    // (front::serve), within the same limit; the margin lets it exit on its
    // own before we kill it.
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
