//! Figures of the `multihost` scenario: split with its roles on separate
//! hosts, per host, and the node kill under load.

use super::*;

/// One configuration (fronts x actor nodes) on one kind of host, one repeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MultihostFigures {
    /// `local` (every role on 127.0.0.1) or `netns` (a namespace per role).
    pub hosts_mode: String,
    pub fronts: u32,
    pub actor_nodes: u32,
    /// `GET /books/{id}` (through the front to the actors) or `GET /ping`
    /// (the front alone).
    pub request: String,
    /// The book ids loaded (one `hostlab load` per front and id; none for `/ping`).
    pub book_ids: Vec<String>,
    /// Closed-loop connections in all (split evenly over the load runs).
    pub connections: usize,
    pub duration_s: f64,
    /// Successful requests per second, summed over every load run.
    pub requests_per_sec: f64,
    /// Every load run's measured requests, summed.
    pub requests: RequestCounts,
    /// One row per host: the generator, each front, each actor node.
    pub hosts: Vec<HostFigures>,
    /// One row per `hostlab load` run (front x book id).
    pub streams: Vec<StreamFigures>,
}

/// One host of a configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostFigures {
    /// `gen`, `front1`, `front2`, `node0`, `node1`.
    pub host: String,
    /// `generator`, `front` or `actors`.
    pub role: String,
    /// The host's address (127.0.0.1 on loopback, 10.213.x.2 in a namespace).
    pub address: String,
    /// The processes counted (the servers' pids; the generator's `hostlab
    /// load` children).
    pub pids: Vec<u32>,
    /// CPU time of the host's processes over the measured phase: servers
    /// from /proc/PID/task/*/schedstat, the generator from each load run's
    /// own report (`generator.cpu_percent` x `duration_s`).
    pub cpu_us: f64,
    /// `cpu_us` divided by every request of the configuration (all fronts),
    /// so the hosts' figures add up to the whole cost of one request.
    pub cpu_us_per_request: f64,
    /// Fronts and the generator: requests answered through / sent from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_sec: Option<f64>,
    /// Fronts: the smallest and largest p50 of its load runs, and the
    /// largest p99 (an upper bound of the p99 of all its requests: each run
    /// has at most 1 % above it, so their mix has too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_us: Option<(u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_max_us: Option<u64>,
}

/// One `hostlab load` run of a configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StreamFigures {
    pub front: String,
    pub url: String,
    pub connections: usize,
    pub requests: RequestCounts,
    pub requests_per_sec: f64,
    pub latency_us: Latency,
    pub generator_cpu_percent: f64,
    pub warnings: Vec<String>,
}

/// An actor node SIGKILLed under load and restarted on the same address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeKillFigures {
    pub hosts_mode: String,
    pub fronts: u32,
    pub actor_nodes: u32,
    /// The node killed (`node1`, or `node0` when it is the only one).
    pub killed: String,
    /// Concurrent probe loops of `GET /books/{id}` over `book_ids`.
    pub probes: usize,
    pub book_ids: Vec<String>,
    /// From the probes' start: the SIGKILL, the restart's spawn, its ready line.
    pub kill_at_ms: f64,
    pub restart_at_ms: f64,
    pub ready_at_ms: Option<f64>,
    /// The fixed pause between the kill and the restart.
    pub pause_ms: f64,
    /// Every probe request, from start to end.
    pub requests: RequestCounts,
    /// Requests that failed from the kill until the killed shard answered again.
    pub failed_during_outage: ErrorClasses,
    /// Ids that got no answer between the kill and the restart (the killed
    /// node's shard), and those that did.
    pub killed_shard_ids: Vec<String>,
    pub other_ids: Vec<String>,
    /// From the restart's spawn to the first success on the killed shard;
    /// `None` when none came within `recovery_limit_ms`.
    pub recovery_ms: Option<f64>,
    pub recovery_limit_ms: f64,
    /// Every request to the other shard succeeded from the kill to the
    /// recovery (`None` with one node: there is no other shard).
    pub other_shard_kept_answering: Option<bool>,
    /// Failed requests to the other shard in that time.
    pub other_shard_failed: u64,
}
