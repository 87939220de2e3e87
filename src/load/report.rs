//! The result of one load run ([`LoadReport`]): one type with units in its
//! field names, serialised once as the `hostlab load --json` document
//! (DESIGN.md), plus the generator warnings and the environment it records.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::collector::{Collected, TimelineRow};
use super::cpu;
use super::plan::{LoadPlan, Pacing, Stop};
use super::stats::{LatencySummary, Outcome, OutcomeCounts, SpectrumPoint, Tally, spectrum, summarize};

/// Version of the JSON document; bump it when a key changes meaning.
pub(super) const SCHEMA_VERSION: u32 = 1;

/// Everything one run measured. The measured phase's figures sit at the top
/// level (flattened), as DESIGN.md's schema has them.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub schema_version: u32,
    pub url: String,
    /// `"closed"` or `"open"`.
    pub mode: &'static str,
    pub method: String,
    pub connections: usize,
    /// Requested rate (open loop); `null` in closed loop.
    pub rate_per_sec: Option<f64>,
    /// Length of the measured phase that `requests_per_sec` divides by.
    pub duration_s: f64,
    pub warmup_s: f64,
    pub timeout_s: f64,
    pub interval_ms: u64,
    /// Wall time of the whole run: warm-up, measured phase and the wait
    /// for the last outstanding requests.
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub measured: PhaseReport,
    /// Open loop: actual send minus scheduled start of the measured
    /// requests (all 0 in closed loop, where a request is due when sent).
    pub send_lag_us: SendLag,
    /// Open loop: the part of each send lag during which every connection
    /// was busy, so the slot had no connection to go out on: the server's
    /// share of the lag (it had not answered). All 0 in closed loop.
    pub connection_wait_us: SendLag,
    /// Open loop: send lag minus connection wait, the generator's own
    /// lateness (its timer, its CPU, waking the connection). All 0 in
    /// closed loop.
    pub generator_lag_us: SendLag,
    /// Open loop: the pacer's part of `generator_lag_us`: due -> hand-over
    /// to a connection, less the connection wait. All 0 in closed loop.
    pub pacer_lag_us: SendLag,
    pub generator: Generator,
    /// The warm-up on its own (`null` without one); excluded from the totals.
    pub warmup: Option<PhaseReport>,
    /// Reasons to distrust the figures, e.g. the generator was the limit.
    pub warnings: Vec<String>,
    pub environment: Environment,
    /// One row per interval (written by `--timeline`, not part of the JSON).
    #[serde(skip)]
    pub timeline: Vec<TimelineRow>,
}

/// Figures of one phase (measured or warm-up).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub requests: Requests,
    /// Successful requests per second (errors excluded).
    pub requests_per_sec: f64,
    /// Successful requests from their scheduled start (open loop: corrected
    /// for coordinated omission).
    pub latency_us: LatencySummary,
    /// Successful requests from their actual send (= `latency_us` in closed loop).
    pub service_time_us: LatencySummary,
    /// `latency_us` as a percentile spectrum up to p99.99 (for charts).
    pub latency_spectrum_us: Vec<SpectrumPoint>,
    /// `service_time_us` as a percentile spectrum.
    pub service_time_spectrum_us: Vec<SpectrumPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    pub ok: u64,
    pub errors: ErrorCounts,
    /// Every request with an outcome: ok plus all errors.
    pub total: u64,
}

/// Failed requests by class (see docs/load.md for the classes).
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorCounts {
    #[serde(rename = "4xx")]
    pub status_4xx: u64,
    #[serde(rename = "5xx")]
    pub status_5xx: u64,
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub io: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.status_4xx + self.status_5xx + self.refused + self.reset + self.timeout + self.io
    }

    /// `5xx 12, reset 3` (classes with a count only), or `none`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("4xx", self.status_4xx),
            ("5xx", self.status_5xx),
            ("refused", self.refused),
            ("reset", self.reset),
            ("timeout", self.timeout),
            ("io", self.io),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

impl ErrorCounts {
    /// Counts `n` requests with `outcome` (`Ok` is no error and counts nowhere).
    pub fn add(&mut self, outcome: Outcome, n: u64) {
        match outcome {
            Outcome::Ok => {}
            Outcome::Status4xx => self.status_4xx += n,
            Outcome::Status5xx => self.status_5xx += n,
            Outcome::Refused => self.refused += n,
            Outcome::Reset => self.reset += n,
            Outcome::Timeout => self.timeout += n,
            Outcome::Io => self.io += n,
        }
    }

    /// Adds every class of `other`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        self.refused += other.refused;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.io += other.io;
    }
}

impl From<&OutcomeCounts> for ErrorCounts {
    fn from(c: &OutcomeCounts) -> Self {
        let mut errors = ErrorCounts::default();
        for outcome in Outcome::ALL {
            errors.add(outcome, c.get(outcome));
        }
        errors
    }
}

/// Send-lag percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct SendLag {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl SendLag {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return SendLag::default();
        }
        SendLag {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// The generator's own load, so a report can tell when it was the limit.
#[derive(Debug, Clone, Serialize)]
pub struct Generator {
    /// Process CPU (user + system) over the measured phase, percent of one core.
    pub cpu_percent: f64,
    /// CPUs the generator may run on.
    pub cpus: usize,
    /// Tokio worker threads.
    pub worker_threads: usize,
    /// Largest actual-send minus scheduled-start (0 in closed loop).
    pub max_send_lag_us: u64,
    pub send_lag_p99_us: u64,
    /// p99 of `connection_wait_us` (the server's share of the send lag).
    pub connection_wait_p99_us: u64,
    /// p99 of `generator_lag_us` (the generator's own share).
    pub generator_lag_p99_us: u64,
    /// Generator CPU (user + system) over the measured phase divided by the
    /// requests that finished in it: what one request cost the generator.
    pub cpu_us_per_request: f64,
    /// Share of the measured phase during which some connection was
    /// yielding until its open-loop slot was due (precise pacing, see
    /// docs/load.md): CPU the generator would have given to other work.
    pub pacing_wait_percent: f64,
    /// Involuntary context switches of the generator's threads over the
    /// measured phase: times another thread or process took its CPU while
    /// it could run. Each can delay a send by a scheduler slice (ms).
    pub preemptions: u64,
    /// The same per second of the measured phase.
    pub preemptions_per_sec: f64,
    /// Time the generator's threads were runnable but waiting for a CPU
    /// (another thread or process had it), summed over its threads, in
    /// percent of the measured phase: the part of the send lag that is the
    /// machine's, not the generator's.
    pub run_queue_wait_percent: f64,
}

/// Where and how the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// CPUs the generator process was allowed to use (its affinity).
    pub cpus: Vec<usize>,
    pub kernel: String,
    pub hostlab_version: &'static str,
    pub command_line: Vec<String>,
    pub started_unix_ms: u64,
}

impl Environment {
    /// The environment of this process now.
    pub fn capture(started: SystemTime) -> Self {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .or_else(|_| nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()))
            .unwrap_or_default();
        Environment {
            cpus: cpu::allowed(),
            kernel,
            hostlab_version: env!("CARGO_PKG_VERSION"),
            command_line: std::env::args().collect(),
            started_unix_ms: started
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

impl PhaseReport {
    fn from_tally(t: &Tally, duration: Duration) -> Self {
        let secs = duration.as_secs_f64();
        PhaseReport {
            requests: Requests {
                ok: t.counts.ok(),
                errors: ErrorCounts::from(&t.counts),
                total: t.counts.total(),
            },
            requests_per_sec: if secs > 0.0 { t.counts.ok() as f64 / secs } else { 0.0 },
            latency_us: summarize(&t.latency_us),
            service_time_us: summarize(&t.service_us),
            latency_spectrum_us: spectrum(&t.latency_us),
            service_time_spectrum_us: spectrum(&t.service_us),
        }
    }
}

/// What [`LoadReport::new`] needs besides the plan and the collected data.
#[derive(Debug)]
pub struct RunFacts {
    pub elapsed: Duration,
    /// Time spent yielding until measured open-loop slots were due.
    pub wait: Duration,
    pub worker_threads: usize,
    pub environment: Environment,
}

impl LoadReport {
    pub fn new(plan: &LoadPlan, collected: Collected, facts: RunFacts) -> Self {
        // A duration stop defines the window; a count stop lasts as long as
        // the measured intervals did.
        let duration = match plan.stop {
            Stop::After(d) => d,
            Stop::Count(_) => collected.measured_wall,
        };
        let send_lag = SendLag::of(&collected.measured.send_lag_us);
        let connection_wait = SendLag::of(&collected.measured.connection_wait_us);
        let generator_lag = SendLag::of(&collected.measured.generator_lag_us);
        let finished = collected.measured.counts.total();
        let generator = Generator {
            cpu_percent: cpu::percent_of_one_core(collected.measured_cpu, collected.measured_wall),
            cpus: facts.environment.cpus.len(),
            worker_threads: facts.worker_threads,
            max_send_lag_us: send_lag.max,
            send_lag_p99_us: send_lag.p99,
            connection_wait_p99_us: connection_wait.p99,
            generator_lag_p99_us: generator_lag.p99,
            cpu_us_per_request: if finished > 0 {
                collected.measured_cpu.as_secs_f64() * 1e6 / finished as f64
            } else {
                0.0
            },
            pacing_wait_percent: cpu::percent_of_one_core(facts.wait, collected.measured_wall),
            preemptions: collected.measured_preemptions,
            preemptions_per_sec: if collected.measured_wall.is_zero() {
                0.0
            } else {
                collected.measured_preemptions as f64 / collected.measured_wall.as_secs_f64()
            },
            run_queue_wait_percent: cpu::percent_of_one_core(
                collected.measured_run_queue_wait,
                collected.measured_wall,
            ),
        };
        let measured = PhaseReport::from_tally(&collected.measured, duration);
        LoadReport {
            schema_version: SCHEMA_VERSION,
            url: plan.target.url.clone(),
            mode: plan.pacing.mode(),
            method: plan.method.to_string(),
            connections: plan.connections,
            rate_per_sec: plan.pacing.rate_per_sec(),
            duration_s: duration.as_secs_f64(),
            warmup_s: plan.warmup.as_secs_f64(),
            timeout_s: plan.timeout.as_secs_f64(),
            interval_ms: u64::try_from(plan.interval.as_millis()).unwrap_or(u64::MAX),
            elapsed_s: facts.elapsed.as_secs_f64(),
            warnings: warnings(plan.pacing, &generator, measured.latency_us.p50),
            measured,
            send_lag_us: send_lag,
            connection_wait_us: connection_wait,
            generator_lag_us: generator_lag,
            pacer_lag_us: SendLag::of(&collected.measured.pacer_lag_us),
            generator,
            warmup: (!plan.warmup.is_zero()).then(|| PhaseReport::from_tally(&collected.warmup, plan.warmup)),
            environment: facts.environment,
            timeline: collected.rows,
        }
    }
}

/// Run-queue wait (percent of the measured phase) from which the late-send
/// warning names the machine as a cause.
const RUN_QUEUE_WAIT_NOTE_PERCENT: f64 = 0.1;
/// A generator above this share of its CPUs was probably the bottleneck.
const CPU_BUSY_SHARE: f64 = 0.9;
/// Open loop: a send-lag p99 above this share of the latency p50 means the
/// generator's own lateness is a visible part of the latency it reports.
pub const LATE_SEND_SHARE_OF_P50: f64 = 0.10;

/// Whether an open-loop schedule was kept: the send-lag p99 is at most
/// [`LATE_SEND_SHARE_OF_P50`] of the latency p50. With no successful
/// request there is no p50 to compare with, and any lag counts as late.
pub fn schedule_kept(send_lag_p99_us: u64, latency_p50_us: u64) -> bool {
    send_lag_p99_us as f64 <= LATE_SEND_SHARE_OF_P50 * latency_p50_us as f64
}

/// Warnings that the generator, not the server, may have been the limit.
/// Time spent yielding for precise pacing is not counted as busy: the
/// generator gives it up to any connection with work to do.
pub(super) fn warnings(pacing: Pacing, g: &Generator, latency_p50_us: u64) -> Vec<String> {
    let mut out = Vec::new();
    let capacity = 100.0 * g.cpus.max(1) as f64;
    let busy = g.cpu_percent - g.pacing_wait_percent.min(g.cpu_percent);
    if busy >= CPU_BUSY_SHARE * capacity {
        out.push(format!(
            "the generator used {busy:.0}% CPU with {} CPU(s) to run on: it, not the server, \
             may have been the limit; give it more CPUs (--cpus) or check with a second tool",
            g.cpus
        ));
    }
    if matches!(pacing, Pacing::Fixed { .. }) && !schedule_kept(g.send_lag_p99_us, latency_p50_us) {
        out.push(format!(
            "requests were sent late (send lag p99 {} us, max {} us, over {:.0}% of the latency \
             p50 {} us): the fixed schedule was not kept; latency still counts from the scheduled \
             start. Of the lag, waiting for an idle connection (p99 {} us) is the server's: it \
             stalled or was overloaded, or the connections (-c) were too few for rate x latency; \
             the rest (p99 {} us) is the generator's own: its timer woke late or it lacked CPU",
            g.send_lag_p99_us,
            g.max_send_lag_us,
            LATE_SEND_SHARE_OF_P50 * 100.0,
            latency_p50_us,
            g.connection_wait_p99_us,
            g.generator_lag_p99_us,
        ));
        if g.run_queue_wait_percent >= RUN_QUEUE_WAIT_NOTE_PERCENT || g.preemptions > 0 {
            out.push(format!(
                "the generator waited for its CPU {:.1}% of the time and was taken off it {} times \
                 ({:.0}/s) while it could run: other threads or processes shared its CPU, and \
                 every such wait delays the sends due meanwhile",
                g.run_queue_wait_percent, g.preemptions, g.preemptions_per_sec
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(cpu_percent: f64, cpus: usize, send_lag_p99_us: u64) -> Generator {
        Generator {
            cpu_percent,
            cpus,
            worker_threads: cpus,
            max_send_lag_us: send_lag_p99_us,
            send_lag_p99_us,
            connection_wait_p99_us: 0,
            generator_lag_p99_us: send_lag_p99_us,
            cpu_us_per_request: 1.0,
            pacing_wait_percent: 0.0,
            preemptions: 0,
            preemptions_per_sec: 0.0,
            run_queue_wait_percent: 0.0,
        }
    }

    #[test]
    fn warns_when_the_generator_is_the_limit() {
        let fixed = Pacing::Fixed { per_sec: 100.0 };
        assert!(warnings(Pacing::Closed, &generator(40.0, 1, 0), 100).is_empty());
        assert_eq!(warnings(Pacing::Closed, &generator(95.0, 1, 0), 100).len(), 1);
        assert!(warnings(Pacing::Closed, &generator(95.0, 2, 0), 100).is_empty());
        // Yielding for pacing is not busy time.
        let mut spinning = generator(95.0, 1, 0);
        spinning.pacing_wait_percent = 60.0;
        assert!(warnings(fixed, &spinning, 100).is_empty());
        // Late: a send-lag p99 over 10% of the latency p50.
        assert!(warnings(fixed, &generator(10.0, 1, 20), 200).is_empty());
        assert!(warnings(fixed, &generator(10.0, 1, 21), 200)[0].contains("sent late"));
        assert!(warnings(fixed, &generator(10.0, 1, 50_000), 1_000)[0].contains("sent late"));
        // Closed loop has no schedule to be late for.
        assert!(warnings(Pacing::Closed, &generator(10.0, 1, 50_000), 100).is_empty());
        assert!(schedule_kept(0, 0) && !schedule_kept(1, 0));
    }

    #[test]
    fn json_has_the_contract_keys() {
        let target = super::super::plan::parse_target("http://127.0.0.1:1/").unwrap();
        let plan = LoadPlan::new(target);
        let collected = Collected {
            warmup: Tally::default(),
            measured: Tally::default(),
            rows: Vec::new(),
            measured_cpu: Duration::ZERO,
            measured_wall: Duration::from_secs(10),
            measured_preemptions: 0,
            measured_run_queue_wait: Duration::ZERO,
        };
        let report = LoadReport::new(
            &plan,
            collected,
            RunFacts {
                elapsed: Duration::from_secs(10),
                wait: Duration::ZERO,
                worker_threads: 1,
                environment: Environment::capture(SystemTime::now()),
            },
        );
        let v = serde_json::to_value(&report).unwrap();
        for key in [
            "/schema_version",
            "/url",
            "/mode",
            "/connections",
            "/rate_per_sec",
            "/duration_s",
            "/warmup_s",
            "/requests/ok",
            "/requests/errors/4xx",
            "/requests/errors/5xx",
            "/requests/errors/refused",
            "/requests/errors/reset",
            "/requests/errors/timeout",
            "/requests/errors/io",
            "/requests_per_sec",
            "/latency_us/p99_9",
            "/service_time_us/max",
            "/generator/cpu_percent",
            "/generator/max_send_lag_us",
            "/generator/cpu_us_per_request",
            "/send_lag_us/p50",
            "/send_lag_us/p99",
            "/send_lag_us/max",
            "/connection_wait_us/p99",
            "/generator_lag_us/p99",
            "/pacer_lag_us/p99",
            "/generator/connection_wait_p99_us",
            "/generator/generator_lag_p99_us",
            "/environment/kernel",
        ] {
            assert!(v.pointer(key).is_some(), "missing {key}");
        }
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["mode"], "closed");
        assert!(v["rate_per_sec"].is_null());
    }
}
