//! The handle to the process manager: what the request path (acquire a
//! generation), the admin endpoint and the signal handlers use. Every
//! decision is the supervisor's; the handle sends it commands and reads the
//! state it publishes.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::{mpsc, oneshot, watch};

use super::supervisor::Supervisor;
use super::{Hosting, Phase, RecycleReason, RecycleReport, Status, Unavailable};
use crate::policy::Policy;

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
    pub(super) in_flight: AtomicU64,
    pub requests: AtomicU64,
    /// Set (SeqCst) before the supervisor waits for `in_flight` to reach zero;
    /// the request path increments `in_flight` (SeqCst) before it checks this
    /// flag, so either the request backs off or the supervisor waits for it.
    pub(super) retired: AtomicBool,
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

pub(super) enum Command {
    /// A request needs the app (on-demand start, resume after suspend); the
    /// reply says whether an app is ready afterwards.
    Demand(Option<oneshot::Sender<Result<(), String>>>),
    Recycle {
        reason: RecycleReason,
        /// Overlap this recycle (or not) whatever the policy says (a
        /// configuration change follows `watch-overlapped`).
        overlap: Option<bool>,
        reply: Option<oneshot::Sender<RecycleReport>>,
    },
    /// The `app_offline` file appeared (or changed): stop the app and
    /// answer every request with this page.
    Offline(bytes::Bytes),
    /// The `app_offline` file is gone: start the app again.
    Online,
    Shutdown(oneshot::Sender<()>),
}

pub(super) struct Shared {
    pub(super) policy: Policy,
    pub(super) current: ArcSwapOption<Generation>,
    pub(super) phase: watch::Sender<Phase>,
    pub(super) status: Mutex<Status>,
    /// Milliseconds since `epoch` of the latest request (idle timeout).
    pub(super) last_request_ms: AtomicU64,
    pub(super) waiting: AtomicUsize,
    pub(super) held_requests: AtomicU64,
    pub(super) held_us: AtomicU64,
    pub(super) epoch: Instant,
    pub(super) last_start_error: Mutex<Option<String>>,
    /// The `app_offline` file's content while the app is offline.
    pub(super) offline_page: Mutex<Option<bytes::Bytes>>,
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
            offline_page: Mutex::new(None),
            policy,
        });
        Supervisor::spawn(shared.clone(), hosting, rx).await;
        let manager = Manager { shared, commands };
        super::watch::spawn(&manager.shared.policy, manager.commands.clone());
        manager
    }

    /// Why a request gets no app now: the `app_offline` page while the app
    /// is offline, else rapid-fail protection (the phases in which the
    /// inprocess supervisor answers requests itself).
    pub fn unavailable_now(&self) -> Unavailable {
        match (self.phase(), self.offline_page()) {
            (Phase::Offline, Some(page)) => Unavailable::AppOffline(page),
            _ => Unavailable::RapidFail,
        }
    }

    /// The `app_offline` file's content while the app is offline.
    pub fn offline_page(&self) -> Option<bytes::Bytes> {
        self.shared.offline_page.lock().unwrap().clone()
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
            overlap: None,
            reply: Some(tx),
        });
        rx.await.ok()
    }

    /// Recycle without waiting (signal handlers).
    pub fn recycle_in_background(&self, reason: RecycleReason) {
        let _ = self.commands.send(Command::Recycle {
            reason,
            overlap: None,
            reply: None,
        });
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
                Phase::Offline => {
                    let page = self.offline_page().unwrap_or_default();
                    return Err(Unavailable::AppOffline(page));
                }
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
