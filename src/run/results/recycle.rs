//! Figures of a recycle run: windows, the manager's timings, the analysis.

use super::*;

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

/// The cost of a recycle in one window of the timeline: the 100 ms
/// intervals that overlap it, each request in the interval in which its
/// outcome was known (see `windows::recycle_windows`). The figures a
/// warm-up grade reads are `failed`, `delayed`, `downtime_ms` and `p99_us`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowMetrics {
    pub from_ms: u64,
    pub to_ms: u64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by class.
    pub failed: ErrorClasses,
    /// Successful requests slower than the delayed threshold
    /// (`RecycleFigures::delayed_threshold_us`), counted exactly from the
    /// window's merged latency histogram (3 significant digits). `None`
    /// without a threshold, and in runs older than the exact count (their
    /// `delayed_at_least` remains).
    #[serde(default)]
    pub delayed: Option<u64>,
    /// p99 of every successful request in the window (the merged
    /// histogram); `None` when none succeeded, and in older runs.
    #[serde(default)]
    pub p99_us: Option<u64>,
    /// The longest span of consecutive intervals in the window in which no
    /// request succeeded (resolution 100 ms; 0 in older runs).
    #[serde(default)]
    pub downtime_ms: u64,
    /// A lower bound on `delayed` from each interval's quantiles (p50,
    /// p90, p99, p99.9, max), the figure before the exact count; kept for
    /// comparison with older runs. `None` without a threshold.
    pub delayed_at_least: Option<u64>,
    /// The highest 100 ms interval p99 in the window (the window p99
    /// before `p99_us`; kept for comparison with older runs).
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
