//! Figures of a load run: requests, CPU, processes, the 100 ms timeline,
//! the link and cold start figures.

use super::*;

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
    /// Open loop: p99 of the send lag's wait for an idle connection (the
    /// server's share) and of the rest (the generator's own); `None` in
    /// closed loop and in results older than the split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_connection_wait_p99_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_own_lag_p99_us: Option<u64>,
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
pub(crate) use crate::load::ErrorCounts as ErrorClasses;

/// Latency summary in microseconds: the load report's own type.
pub(crate) use crate::load::LatencySummary as Latency;

/// One point of a percentile spectrum: the load report's own type.
pub(crate) use crate::load::SpectrumPoint;

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
            generator_connection_wait_p99_us: r.rate_per_sec.map(|_| r.generator.connection_wait_p99_us),
            generator_own_lag_p99_us: r.rate_per_sec.map(|_| r.generator.generator_lag_p99_us),
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

pub(super) fn interval_row(row: &TimelineRow) -> IntervalRow {
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
