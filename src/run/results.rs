//! The result set of one `hostlab run` (DESIGN.md "Results"): one type tree
//! with units in its field names, serialised once as `results.json` and read
//! back by `hostlab report` and `hostlab compare`.

use serde::{Deserialize, Serialize};

use crate::load::{LoadReport, TimelineRow};

/// Version of `results.json`; bump it when a key changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured, plus where and how.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub schema_version: u32,
    pub environment: RunEnvironment,
    pub settings: Settings,
    /// One entry per model x scenario x variant x repeat, in run order.
    pub entries: Vec<Entry>,
    /// Models or scenarios that did not run, and why.
    pub skipped: Vec<Skipped>,
    /// Remarks on the run as a whole (e.g. generator and server share a CPU).
    pub notes: Vec<String>,
    /// False while the run goes on (or when it failed part-way).
    pub finished: bool,
    /// The verdict of each claim (CONTEXT.md C1-C8), as the report gives it
    /// (absent in runs older than it).
    #[serde(default)]
    pub claims: Vec<ClaimVerdict>,
}

/// One claim's verdict in results.json (DESIGN.md "Results").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimVerdict {
    pub id: String,
    /// `holds`, `does not hold`, `inconclusive` or `not measured`.
    pub verdict: String,
    pub ratio: Option<RatioInterval>,
    /// How the ratio was measured, and which interval it carries.
    pub method: String,
    pub why: String,
}

/// A ratio's median with its interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RatioInterval {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

/// Where the run happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunEnvironment {
    pub cpu_model: String,
    /// CPUs this machine has online.
    pub cores: usize,
    pub client_cpus: Vec<usize>,
    pub server_cpus: Vec<usize>,
    pub kernel: String,
    /// `rustc --version`, when a rustc is on PATH.
    pub rustc: Option<String>,
    pub hostlab_version: String,
    /// The commit the binary was built from (stamped at build time by
    /// build.rs; `None` when it was built without git).
    pub git_commit: Option<String>,
    /// Whether tracked files differed from that commit when the binary was
    /// built (`None` when unknown).
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// `--version` lines of the optional peers found on PATH (wrk, oha,
    /// nginx); a peer that is not installed is absent.
    #[serde(default)]
    pub tool_versions: std::collections::BTreeMap<String, String>,
    /// Steal time of the whole machine over the run, percent of all CPU
    /// time (from /proc/stat; `None` where it cannot be read).
    #[serde(default)]
    pub steal_percent: Option<f64>,
    pub command_line: Vec<String>,
    /// RFC 3339, UTC.
    pub started_utc: String,
    /// Wall time of the whole run so far.
    pub elapsed_s: f64,
}

/// The settings the run used (after `--quick` and the flags were applied).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub quick: bool,
    pub models: Vec<String>,
    pub scenarios: Vec<String>,
    /// Measured phase of each closed-loop run.
    pub duration_s: f64,
    /// Warm-up before each closed-loop run (excluded from the figures).
    pub warmup_s: f64,
    pub repeats: u32,
    /// Connections of closed-loop runs.
    pub connections: usize,
    /// Fixed rate of recycle runs.
    pub recycle_rate_per_sec: f64,
    /// Length of each recycle run, and when in it the recycle happens.
    pub recycle_duration_s: f64,
    pub recycle_at_s: f64,
    /// Measured phase of each open-loop latency run.
    pub latency_duration_s: f64,
    /// Fractions of each model's own /ping capacity the latency scenario runs at.
    pub latency_fractions: Vec<f64>,
    /// Length of each model's soak run (`--scenarios soak`; absent in runs
    /// older than the soak scenario).
    #[serde(default)]
    pub soak_duration_s: f64,
    /// Time between the soak's overlapped recycles.
    #[serde(default)]
    pub soak_recycle_every_s: f64,
    /// Cores the server side was capped at in throughput runs (the
    /// server-bound mode); `None` when uncapped.
    #[serde(default)]
    pub server_cpu_quota: Option<f64>,
}

/// A model or scenario that did not run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Skipped {
    pub model: Option<String>,
    pub scenario: Option<String>,
    pub reason: String,
}

/// One measurement: a model in a scenario variant, one repeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub model: String,
    pub scenario: String,
    /// What was measured within the scenario, e.g. `GET /ping`, `overlapped`, `50%`.
    pub variant: String,
    /// 1-based.
    pub repeat: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadFigures>,
    /// Server processes of the model during the measurement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessFigures>,
    /// Spawn to ready line of the model's first process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coldstart: Option<ColdstartFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycle: Option<RecycleFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crosscheck: Option<CrossCheckFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<SoakFigures>,
    /// CPU cost of the server side over the measured window (throughput runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuFigures>,
    /// The control group the server side ran in (server-bound mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap: Option<CapFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkFigures>,
}

/// The remoting link alone (scenario `link`): one ractor_cluster
/// connection between two pinned processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkFigures {
    /// One-way messages delivered per second (sender to receiver).
    pub one_way_per_sec: f64,
    /// Request-reply round trips per second.
    pub round_trips_per_sec: f64,
    /// One-way messages in flight (the window) and concurrent calls.
    pub in_flight: usize,
    pub calls_in_flight: usize,
    /// One-way messages and round trips counted.
    pub messages: u64,
    pub round_trips: u64,
}

/// CPU cost of a model's server processes over one measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuFigures {
    /// Every server process's CPU (per-thread schedstat) per request: the
    /// sum of `by_role`.
    pub us_per_request: f64,
    /// The server cores' busy time (user + nice + system + irq + softirq,
    /// /proc/stat) per request: also counts kernel work charged elsewhere.
    pub core_busy_us_per_request: f64,
    /// `us_per_request` by role (`front`, `app`, `worker`, `actors`,
    /// `nginx`; those the model has).
    pub by_role: std::collections::BTreeMap<String, f64>,
    /// The same processes' CPU per second with no load, measured before the runs.
    pub idle_us_per_s: f64,
    /// Steal time over the window, percent of the server cores' time.
    pub steal_percent: f64,
}

/// A throughput run inside a CPU-capped control group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CapFigures {
    /// Cores the group may use (quota / period).
    pub cores: f64,
    pub period_us: u64,
    /// `v1` or `v2`.
    pub cgroup: String,
    /// Periods in which the group was throttled during the window.
    pub nr_throttled: u64,
    pub nr_periods: u64,
    /// The run was server-bound: throttled, and the generator below its limit.
    pub server_bound: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

/// Figures of one load run (the `hostlab load --json` keys that matter here).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadFigures {
    pub url: String,
    pub method: String,
    /// `closed` or `open`.
    pub mode: String,
    pub connections: usize,
    pub rate_per_sec: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub requests: RequestCounts,
    /// Successful requests per second (errors excluded).
    pub requests_per_sec: f64,
    /// From the scheduled start (open loop: coordinated-omission corrected).
    pub latency_us: Latency,
    /// From the actual send.
    pub service_time_us: Latency,
    pub generator_cpu_percent: f64,
    pub generator_cpus: usize,
    pub generator_max_send_lag_us: u64,
    /// Open loop: send-lag p99 (0 in closed loop and in older results).
    #[serde(default)]
    pub generator_send_lag_p99_us: u64,
    /// Generator CPU per finished request (0 in older results).
    #[serde(default)]
    pub generator_cpu_us_per_request: f64,
    pub warnings: Vec<String>,
    /// Percentile spectra (kept for latency runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_spectrum_us: Vec<SpectrumPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_time_spectrum_us: Vec<SpectrumPoint>,
    /// Per-interval rows (kept for recycle runs only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<IntervalRow>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestCounts {
    pub ok: u64,
    pub errors: ErrorClasses,
    pub total: u64,
}

/// Failed requests by class (docs/load.md): the load report's own type.
pub use crate::load::ErrorCounts as ErrorClasses;

/// Latency summary in microseconds: the load report's own type.
pub use crate::load::LatencySummary as Latency;

/// One point of a percentile spectrum: the load report's own type.
pub use crate::load::SpectrumPoint;

/// One timeline interval of a load run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct IntervalRow {
    /// Interval start from the start of the load run.
    pub t_ms: u64,
    pub duration_ms: u64,
    pub ok: u64,
    /// Failed requests whose outcome was known in this interval.
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Quantiles the recycle windows bound the delayed requests with
    /// (absent in runs older than the recycle windows).
    #[serde(default)]
    pub p90_us: u64,
    #[serde(default)]
    pub p99_9_us: u64,
    /// `errors` by class.
    #[serde(default)]
    pub failed: ErrorClasses,
}

/// CPU and memory of one server process over a measurement.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcessFigures {
    pub pid: u32,
    /// Command name from /proc (e.g. `hostlab`, `nginx`).
    pub name: String,
    /// User + system CPU over the measurement, percent of one core.
    pub cpu_percent: f64,
    /// Resident set size at the end of the measurement.
    pub rss_bytes: u64,
}

/// First request of a freshly started model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ColdstartFigures {
    /// Start mode and warm-up URLs the model ran with.
    pub start_mode: String,
    pub warmup_urls: Vec<String>,
    /// From sending the first request (new connection) to its full response.
    pub first_request_ms: f64,
    /// Status of the first response.
    pub first_status: u16,
    /// The same for the second request, once the app runs.
    pub second_request_ms: f64,
    /// Spawn to ready of the app process, as its manager reports it.
    pub app_start_to_ready_ms: Option<f64>,
}

/// One recycle under fixed-rate load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RecycleFigures {
    /// overlapped, overlapped-no-warmup, stop-start, crash, idle-terminate, idle-suspend.
    pub kind: String,
    /// When the recycle was triggered, from the start of the load run
    /// (idle kinds: 0, the first request after the idle action).
    pub event_ms: u64,
    pub failed: ErrorClasses,
    pub analysis: RecycleAnalysis,
    /// The manager's own report (admin `GET /status` after the run).
    pub admin_status: Option<serde_json::Value>,
    /// Load level: `50%` (of `capacity_per_sec`), `light`, or `N/s` for
    /// `hostlab recycle --rate N`. Fields below are absent in older runs.
    #[serde(default)]
    pub level: String,
    #[serde(default)]
    pub rate_per_sec: f64,
    /// The model's GET /ping capacity the level derives from.
    #[serde(default)]
    pub capacity_per_sec: Option<f64>,
    /// The generator may have limited that capacity figure, so the level
    /// is below its nominal share of the real capacity.
    #[serde(default)]
    pub capacity_generator_limited: bool,
    /// A control run: the same load and no event (`event_ms` is where the
    /// kinds' event falls, so its windows sit at the same place).
    #[serde(default)]
    pub control: bool,
    /// Latency above which a request counts as delayed: the control's
    /// p99.9 at this level (median over its repeats); for a control, its own.
    #[serde(default)]
    pub delayed_threshold_us: Option<u64>,
    /// The one downtime figure: the longest span in which no scheduled
    /// request completed successfully, from the event to the end of the
    /// run (resolution: one 100 ms timeline interval).
    #[serde(default)]
    pub downtime_ms: u64,
    /// [event, event + 1 s].
    #[serde(default)]
    pub window_1s: Option<WindowMetrics>,
    /// [event, end of the run]: covers the whole drain when the manager's
    /// `total_ms` ends inside the run (`manager.total_ms`).
    #[serde(default)]
    pub drain: Option<WindowMetrics>,
    /// The manager's own timings of the recycle, from `admin_status`.
    #[serde(default)]
    pub manager: Option<ManagerTimings>,
}

/// The cost of a recycle in one window of the timeline (intervals that
/// overlap it; see `stats::recycle_windows`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowMetrics {
    pub from_ms: u64,
    pub to_ms: u64,
    pub ok: u64,
    pub failed: ErrorClasses,
    /// A lower bound on the successful requests slower than the delayed
    /// threshold, from each interval's quantiles (p50, p90, p99, p99.9,
    /// max): an interval whose p90 is above the threshold had at least 10%
    /// of its requests delayed. `None` without a threshold.
    pub delayed_at_least: Option<u64>,
    /// The highest 100 ms interval p99 in the window (a window p99 needs
    /// the merged histogram, which the timeline does not keep).
    pub worst_interval_p99_us: u64,
    /// Intervals in the window with no successful request.
    pub intervals_without_success: u64,
}

/// The manager's own timings of the last recycle (admin `GET /status`
/// `last_recycle`, or `last_start_to_ready_ms` after a crash or an idle
/// action): what the manager saw, not what clients saw.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ManagerTimings {
    pub start_to_ready_ms: Option<u64>,
    pub warmup_ms: Option<u64>,
    pub drain_ms: Option<u64>,
    /// Time with no process ready to serve, as the manager counts it.
    pub manager_unavailable_ms: Option<u64>,
    pub total_ms: Option<u64>,
    /// Requests the proxy front held while no generation could take them.
    pub held_requests: Option<u64>,
}

impl ManagerTimings {
    pub fn of(status: &serde_json::Value) -> Option<ManagerTimings> {
        let last = &status["last_recycle"];
        let t = if last.is_object() {
            ManagerTimings {
                start_to_ready_ms: last["start_to_ready_ms"].as_u64(),
                warmup_ms: last["warmup_ms"].as_u64(),
                drain_ms: last["drain_ms"].as_u64(),
                manager_unavailable_ms: last["unavailable_ms"].as_u64(),
                total_ms: last["total_ms"].as_u64(),
                held_requests: None,
            }
        } else {
            ManagerTimings {
                start_to_ready_ms: status["last_start_to_ready_ms"].as_u64(),
                ..ManagerTimings::default()
            }
        };
        Some(ManagerTimings {
            held_requests: status["held"]["requests"].as_u64(),
            ..t
        })
    }
}

/// What a recycle cost, computed from the timeline (see `stats::analyze_recycle`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct RecycleAnalysis {
    pub failed_requests: u64,
    /// From the start of the first interval with a failure to the end of
    /// the last one (0 without failures).
    pub unavailable_ms: u64,
    /// Longest run of intervals without one success.
    pub longest_gap_no_success_ms: u64,
    /// Median of interval p99s in steady state (before the event, or the
    /// last third of the run when nothing precedes it).
    pub baseline_p99_us: u64,
    /// Highest interval p99 from the event on.
    pub peak_p99_us: u64,
    /// From the event to the end of the last interval with a failure or a
    /// p99 above twice the baseline.
    pub time_to_recover_ms: u64,
}

/// Books present before and after one recycle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateFigures {
    pub kind: String,
    pub journal: bool,
    pub books_added: u64,
    pub books_before: u64,
    pub books_after: u64,
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

/// One model's soak: fixed-rate load at a share of its capacity with
/// overlapped recycles, and the RSS of its processes over time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakFigures {
    /// Closed-loop req/s of the soak request on this model (the capacity probe).
    pub capacity_per_sec: f64,
    /// The generator was busy enough in the probe to have been the limit:
    /// the real capacity is higher, so the soak ran below `fraction` of it.
    pub capacity_generator_limited: bool,
    /// Share of the capacity the soak ran at (0.5).
    pub fraction: f64,
    pub rate_per_sec: f64,
    pub duration_s: f64,
    pub recycle_every_s: f64,
    /// Overlapped recycles the soak asked for (`POST /recycle` sent).
    #[serde(default)]
    pub recycles_requested: u64,
    /// Overlapped recycles the admin endpoint accepted.
    pub recycles: u64,
    /// Recycles the manager counted (admin `GET /status` after the run).
    pub recycles_reported: Option<u64>,
    /// When each recycle was triggered, from the start of the load run.
    pub recycle_at_ms: Vec<u64>,
    /// Why a recycle request failed, one line each.
    pub recycle_errors: Vec<String>,
    /// Failed requests over the whole run, by class.
    pub failed: ErrorClasses,
    /// Total RSS of the model's processes at the first sample (just before
    /// the first recycle) and at the last (after the load); `None` when a
    /// process of that sample could not be read (never a partial sum).
    pub rss_start_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// `(end - start) / start`, percent; `None` without both figures.
    pub rss_growth_percent: Option<f64>,
    pub rss_growth_limit_percent: f64,
    /// Before every recycle and once after the load.
    pub rss_samples: Vec<RssSample>,
    /// Requests answered, every recycle requested was accepted and counted
    /// by the manager, no failed request, RSS growth measured and within
    /// the limit.
    pub pass: bool,
    /// The verdict in words: `pass: ...`, `fail: <each broken rule>` or
    /// `not measured: <what is missing>`.
    pub verdict: String,
}

/// RSS of every process of a model at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RssSample {
    /// From the start of the load run.
    pub t_ms: u64,
    /// Sum over `processes`; `None` when one of the model's processes
    /// could not be read (see `unreadable`).
    pub total_bytes: Option<u64>,
    pub processes: Vec<SoakProcess>,
    /// Processes of the model whose role or RSS could not be read, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// One server process in an [`RssSample`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakProcess {
    pub pid: u32,
    /// From its command line `hostlab serve ROLE`: the model's name for the
    /// first process, `app`, `worker`, `front` or `actors` for its parts.
    pub role: String,
    pub rss_bytes: u64,
}

impl LoadFigures {
    /// The figures of a load report; `keep_timeline` keeps its intervals.
    pub fn from_report(r: &LoadReport, keep_timeline: bool) -> LoadFigures {
        LoadFigures {
            url: r.url.clone(),
            method: r.method.clone(),
            mode: r.mode.to_string(),
            connections: r.connections,
            rate_per_sec: r.rate_per_sec,
            duration_s: r.duration_s,
            warmup_s: r.warmup_s,
            requests: RequestCounts {
                ok: r.measured.requests.ok,
                errors: r.measured.requests.errors,
                total: r.measured.requests.total,
            },
            requests_per_sec: r.measured.requests_per_sec,
            latency_us: r.measured.latency_us,
            service_time_us: r.measured.service_time_us,
            generator_cpu_percent: r.generator.cpu_percent,
            generator_cpus: r.generator.cpus,
            generator_max_send_lag_us: r.generator.max_send_lag_us,
            generator_send_lag_p99_us: r.generator.send_lag_p99_us,
            generator_cpu_us_per_request: r.generator.cpu_us_per_request,
            warnings: r.warnings.clone(),
            latency_spectrum_us: Vec::new(),
            service_time_spectrum_us: Vec::new(),
            timeline: if keep_timeline {
                r.timeline.iter().map(interval_row).collect()
            } else {
                Vec::new()
            },
        }
    }
}

fn interval_row(row: &TimelineRow) -> IntervalRow {
    let ok = row.counts.ok();
    IntervalRow {
        t_ms: row.t_ms,
        duration_ms: row.duration_ms,
        ok,
        errors: row.counts.total() - ok,
        p50_us: row.latency_us.p50,
        p99_us: row.latency_us.p99,
        max_us: row.latency_us.max,
        p90_us: row.latency_us.p90,
        p99_9_us: row.latency_us.p99_9,
        failed: ErrorClasses::from(&row.counts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_json() {
        let results = Results {
            schema_version: SCHEMA_VERSION,
            environment: RunEnvironment {
                cpu_model: "cpu".into(),
                cores: 2,
                client_cpus: vec![0],
                server_cpus: vec![1],
                kernel: "6".into(),
                rustc: None,
                hostlab_version: "0.1.0".into(),
                git_commit: Some("abc".into()),
                git_dirty: Some(false),
                tool_versions: [("wrk".to_string(), "wrk 4.2.0".to_string())].into(),
                steal_percent: Some(0.1),
                command_line: vec!["hostlab".into(), "run".into()],
                started_utc: "2025-01-01T00:00:00Z".into(),
                elapsed_s: 1.5,
            },
            settings: Settings {
                quick: true,
                models: vec!["edge".into()],
                scenarios: vec!["throughput".into()],
                duration_s: 1.0,
                warmup_s: 0.25,
                repeats: 1,
                connections: 64,
                recycle_rate_per_sec: 1000.0,
                recycle_duration_s: 3.0,
                recycle_at_s: 1.0,
                latency_duration_s: 1.0,
                latency_fractions: vec![0.5],
                soak_duration_s: 600.0,
                soak_recycle_every_s: 30.0,
                server_cpu_quota: Some(0.5),
            },
            entries: vec![Entry {
                model: "edge".into(),
                scenario: "recycle".into(),
                variant: "crash".into(),
                repeat: 1,
                load: Some(LoadFigures {
                    requests: RequestCounts {
                        ok: 10,
                        errors: ErrorClasses {
                            status_5xx: 2,
                            ..ErrorClasses::default()
                        },
                        total: 12,
                    },
                    timeline: vec![IntervalRow {
                        t_ms: 0,
                        duration_ms: 100,
                        ok: 10,
                        errors: 2,
                        p50_us: 5,
                        p99_us: 9,
                        max_us: 10,
                        ..IntervalRow::default()
                    }],
                    ..LoadFigures::default()
                }),
                recycle: Some(RecycleFigures {
                    kind: "crash".into(),
                    admin_status: Some(serde_json::json!({"phase": "ready"})),
                    ..RecycleFigures::default()
                }),
                cpu: Some(CpuFigures {
                    us_per_request: 30.0,
                    core_busy_us_per_request: 35.0,
                    by_role: [("front".to_string(), 20.0), ("app".to_string(), 10.0)].into(),
                    idle_us_per_s: 120.0,
                    steal_percent: 0.5,
                }),
                ..Entry::default()
            }],
            skipped: vec![Skipped {
                model: Some("split".into()),
                scenario: None,
                reason: "not built".into(),
            }],
            notes: vec![],
            finished: true,
            claims: vec![ClaimVerdict {
                id: "C1".into(),
                verdict: "inconclusive".into(),
                ratio: Some(RatioInterval {
                    median: 3.2,
                    low: 3.0,
                    high: 4.5,
                }),
                method: "m".into(),
                why: "w".into(),
            }],
        };
        let text = serde_json::to_string(&results).unwrap();
        assert!(text.contains("\"5xx\":2"));
        assert!(text.contains("\"core_busy_us_per_request\":35.0") && text.contains("\"by_role\":{\"app\":10.0"));
        assert!(text.contains("\"ratio\":{\"median\":3.2,\"low\":3.0,\"high\":4.5}"));
        let back: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(back, results);
    }
}
