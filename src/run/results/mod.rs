//! The result set of one `hostlab run` (DESIGN.md "Results"): one type tree
//! with units in its field names, serialised once as `results.json` and read
//! back by `hostlab report` and `hostlab compare`.

use serde::{Deserialize, Serialize};

use crate::load::{LoadReport, TimelineRow};

mod load;
mod multihost;
mod recycle;
mod soak;
mod state;
pub(super) use load::*;
pub(super) use multihost::*;
pub(super) use recycle::*;
pub(super) use soak::*;
pub(super) use state::*;

/// Version of `results.json`; bump it when a key changes meaning.
pub(super) const SCHEMA_VERSION: u32 = 1;

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
    /// Tasks in flight across a recycle (state scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight: Option<InflightFigures>,
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
    /// Split with its roles on separate hosts (scenario `multihost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihost: Option<MultihostFigures>,
    /// An actor node killed under load (scenario `multihost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_kill: Option<NodeKillFigures>,
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
