//! Figures of a soak run: RSS over time per process.

use super::*;

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
