//! The command line (DESIGN.md "Command line", a stable contract): raw
//! arguments as clap parses them, turned into validated options for the
//! crates that do the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use hostlab_hosts::policy::{IdleAction, Policy, StartMode};
use hostlab_hosts::{Model, ServeOptions};
use hostlab_workloads::Routing;
use hostlab_workloads::journal::{Durability, JournalConfig};

/// hostlab: one actor workload under several hosting models; measures
/// throughput, latency and recycle cost side by side.
#[derive(Debug, Parser)]
#[command(name = "hostlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one hosting model (or one part of one) until SIGTERM/SIGINT.
    ///
    /// Prints exactly one line on stdout once it accepts requests:
    /// `hostlab ready model=<MODEL> url=http://<ADDR> pid=<PID> [admin=http://<ADDR>]`.
    /// SIGHUP recycles the app (proxy, inprocess); SIGTERM/SIGINT drain and exit 0.
    Serve(Box<ServeArgs>),
    /// One load run against any URL (closed loop, or open loop with -r).
    Load(crate::load::LoadArgs),
    /// The main job: every model x scenario, results written to a folder.
    Run(RunArgs),
    /// The receiving end of the `link` scenario: a ractor_cluster node with
    /// a sink actor, until SIGTERM. Prints the ready line with model=link.
    #[command(hide = true)]
    LinkSink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// One recycle experiment under fixed-rate load: the recycle scenario of
    /// `hostlab run` for one model and one kind next to a control (window
    /// metrics: failed by class, delayed, downtime, window p99), written to
    /// a result folder.
    Recycle(RecycleArgs),
    /// Re-render report.md, summary.csv and charts from DIR/results.json.
    Report(ReportArgs),
    /// Per-metric ratios between two runs, flagging changes beyond noise.
    Compare(CompareArgs),
    /// Check or repair a `--journal` file (see docs/journal.md).
    #[command(subcommand)]
    Journal(JournalCommand),
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Verify a journal (SQLite structure, checksums, event numbering) and
    /// print what it holds. Exit 0 if intact, 1 if damaged. Never changes the data file.
    Check {
        /// The journal file.
        path: PathBuf,
    },
    /// Keep the longest intact part of a damaged journal: the original is
    /// moved to PATH.damaged-<time> and a new journal with the readable
    /// snapshot and events (up to the first damaged one) takes its place.
    Repair {
        /// The journal file.
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Output folder of a `hostlab run` (holds results.json).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier run's folder (A).
    pub a: PathBuf,
    /// The later run's folder (B); ratios are B over A.
    pub b: PathBuf,
}

#[derive(Debug, Args)]
pub struct RecycleArgs {
    /// A model with a recyclable part: proxy, inprocess or split.
    pub model: String,
    /// overlapped (with warm-up /ping,/books), overlapped-no-warmup,
    /// stop-start, crash (SIGKILL of the app), idle (idle terminate, then the
    /// next request), suspend (idle suspend, then the next request),
    /// actors-crash (split: SIGKILL of the actor service), app-offline (an
    /// app_offline file created, then removed once the app is down),
    /// config-restart (a change to the --watch file: stop-then-start),
    /// config-restart-overlapped (the same, overlapped, with warm-up). A
    /// control run with the same load and no event runs first.
    #[arg(long, default_value = "overlapped", value_parser = crate::run::recycle_kind_parser())]
    pub kind: String,
    /// Fixed request rate of the load (GET /ping), requests per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Length of the load run; the recycle happens a third of the way in.
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Output folder (default results/recycle-<UTC timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A request slower than this (from its scheduled start) counts as
    /// delayed, in the control and the recycle alike [default: the control
    /// run's p99.9].
    #[arg(long, value_name = "MS")]
    pub delayed_ms: Option<f64>,
    /// Also write the window metrics of the control and the recycle as JSON
    /// to FILE (keys: docs/run.md "One recycle").
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// CPUs for the load generator (e.g. 0).
    #[arg(long)]
    pub client_cpus: Option<String>,
    /// CPUs for all server processes of the model (e.g. 1).
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Print the recycle's warm-up grade, A to F, from its downtime, failed
    /// and delayed requests (docs/run.md "Warm-up grade").
    #[arg(long)]
    pub grade: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hosting model: edge | edge-actix | proxy | inprocess | split, the
    /// floor baseline (bare hyper, /ping only), and the parts they start:
    /// app | worker | actors | front. (nginx is a peer that `hostlab run`
    /// drives; it is not served by hostlab.)
    pub model: Model,
    /// Address to listen on; port 0 picks a free port (shown in the ready line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Task routing: `pool:N` (N actors, consistent hash of the task id) or
    /// `per-task` (one actor per task id, never stopped: the anti-pattern).
    #[arg(long, default_value = "pool:10")]
    pub routing: Routing,
    /// Messages each actor's mailbox holds before requests get 503 `overloaded`.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub mailbox: u32,
    /// Longest a graceful shutdown (or a recycled app's drain) waits for
    /// in-flight requests before the process is stopped anyway [default: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub shutdown_limit: Option<Duration>,
    /// Address of the actor service (`serve front`; `serve split` sets it
    /// itself), or of its nodes in shard order, comma-separated (node I of M
    /// started with `serve actors --shard I/M`). Given to `serve split`, the
    /// split starts no actor service of its own. All node servers must share
    /// `HOSTLAB_COOKIE`.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',')]
    pub actors: Vec<SocketAddr>,
    /// `serve actors`: this node is node I of a sharded actor service of M
    /// nodes and owns the keys whose jump hash over M is I (books by id,
    /// tasks by task id; docs/split.md "Sharding").
    #[arg(long, value_name = "I/M", default_value = "0/1")]
    pub shard: hostlab_workloads::hashing::Shard,
    /// `serve split`: fronts accepting on the shared socket, each recycled
    /// like an `inprocess` worker.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub fronts: u32,
    /// Persist the actors' state in an SQLite event journal at PATH (created
    /// if missing) and recover it at startup; unfinished accepted tasks
    /// resume. Without it the state lives in memory only. A damaged journal
    /// stops startup (see `hostlab journal check|repair`).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// `full`: every commit is fsynced before it is answered (survives a
    /// power cut); `normal`: survives a process crash, not an OS crash or
    /// power cut, and is faster.
    #[arg(long, default_value = "full", value_name = "full|normal", requires = "journal")]
    pub journal_sync: Durability,
    /// Journal events between snapshots (recovery reads the latest snapshot
    /// plus newer events); 0 = never snapshot.
    #[arg(long, default_value_t = 10_000, requires = "journal")]
    pub snapshot_every: u64,
    /// Admin endpoint of proxy, inprocess and split: GET /status, POST
    /// /recycle. Port 0 picks a free port (shown in the ready line). A
    /// non-loopback address needs --admin-token.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Bearer token every admin call must then carry
    /// (`Authorization: Bearer TOKEN`); required when --admin is not a
    /// loopback address.
    #[arg(long, env = "HOSTLAB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Process policy TOML file (keys as the flags below, e.g.
    /// `idle-timeout = "20m"`); flags given on the command line win.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub limit_flags: LimitFlags,
    #[command(flatten)]
    pub policy_flags: PolicyFlags,
}

/// Limits against hostile and slow clients and a slow upstream (see docs/security.md).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Limits (every server)")]
pub struct LimitFlags {
    /// Client connections open at once; each further one gets 503
    /// `overloaded` and is closed [default: 10000, fewer if the open-files
    /// limit cannot hold two descriptors per connection].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Longest a client may take to send a request's headers (also how long
    /// an idle keep-alive connection stays open); then the connection is closed.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a whole request body (408).
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub body_read_timeout: Duration,
    /// proxy: longest wait for the app's response headers (504) and between
    /// parts of its body [default: 30s]; split: longest wait for the actor
    /// service's reply (503 `backend_unavailable`) [default: 10s].
    #[arg(long, value_parser = parse_positive_duration)]
    pub upstream_timeout: Option<Duration>,
}

impl LimitFlags {
    fn limits(&self) -> hostlab_hosts::limits::Limits {
        let defaults = hostlab_hosts::limits::Limits::default();
        hostlab_hosts::limits::Limits {
            max_connections: self.max_connections.map_or(defaults.max_connections, |n| n as usize),
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            upstream_timeout: self.upstream_timeout,
        }
    }
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0 (e.g. 500ms, 30s)".into()),
        Err(e) => Err(format!("{e} (use e.g. 500ms, 30s, 2m)")),
    }
}

/// IIS/ANCM-style process policies of `proxy` and `inprocess` (see docs/policies.md).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Process policy (proxy, inprocess)")]
pub struct PolicyFlags {
    /// `on-demand`: the first request starts the app (IIS default);
    /// `always-running`: start it before the ready line.
    #[arg(long)]
    pub start_mode: Option<StartModeFlag>,
    /// Paths requested on a new app process before it gets traffic
    /// (Application Initialization), e.g. /ping,/books.
    #[arg(long, value_delimiter = ',')]
    pub warmup: Option<Vec<String>>,
    /// Idle time before the idle action; 0 = never [default: 20m].
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub idle_timeout: Option<Duration>,
    /// `terminate` (next request cold-starts) or `suspend` (SIGSTOP/SIGCONT).
    #[arg(long)]
    pub idle_action: Option<IdleActionFlag>,
    /// Periodic recycle; 0 = never [default: 29h].
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub recycle_every: Option<Duration>,
    /// Scheduled recycles, UTC, e.g. 03:00,15:30.
    #[arg(long, value_delimiter = ',')]
    pub recycle_at: Option<Vec<hostlab_hosts::policy::TimeOfDay>>,
    /// Recycle when the app's resident memory exceeds N MiB.
    #[arg(long)]
    pub recycle_memory_mb: Option<u64>,
    /// Recycle after N requests.
    #[arg(long)]
    pub recycle_requests: Option<u64>,
    /// `true`: overlapped recycle (new process first, IIS default);
    /// `false`: stop the old process, then start the new one.
    #[arg(long)]
    pub overlap: Option<bool>,
    /// Longest a new app process may take to become ready and warm [default: 90s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub startup_limit: Option<Duration>,
    /// Rapid-fail protection CRASHES/WINDOW [default: 5/5m].
    #[arg(long)]
    pub rapid_fail: Option<hostlab_hosts::policy::RapidFail>,
    /// Every model serving the workload: entries of the start-up index a
    /// new process builds before it answers its first request; 0 = none
    /// [default: 40000].
    #[arg(long, value_name = "N")]
    pub init_entries: Option<u32>,
    /// Every model serving the workload: SHA-256 rounds the first request
    /// on each route (and of each book) pays; 0 = none [default: 4000].
    #[arg(long, value_name = "N")]
    pub first_hit_rounds: Option<u32>,
    /// ANCM's app_offline.htm: while PATH exists the app is stopped and
    /// every request gets 503 with the file's content.
    #[arg(long, value_name = "PATH")]
    pub app_offline: Option<PathBuf>,
    /// Restart the app when PATH changes (ASP.NET's restart on a
    /// configuration change; not overlapped unless --watch-overlapped).
    #[arg(long, value_name = "PATH")]
    pub watch: Option<PathBuf>,
    /// Restart on a --watch change with an overlapped recycle.
    #[arg(long)]
    pub watch_overlapped: bool,
}

/// `--start-mode` (the policy file's `start-mode` takes the same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartModeFlag {
    OnDemand,
    AlwaysRunning,
}

impl From<StartModeFlag> for StartMode {
    fn from(flag: StartModeFlag) -> StartMode {
        match flag {
            StartModeFlag::OnDemand => StartMode::OnDemand,
            StartModeFlag::AlwaysRunning => StartMode::AlwaysRunning,
        }
    }
}

/// `--idle-action` (the policy file's `idle-action` takes the same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdleActionFlag {
    Terminate,
    Suspend,
}

impl From<IdleActionFlag> for IdleAction {
    fn from(flag: IdleActionFlag) -> IdleAction {
        match flag {
            IdleActionFlag::Terminate => IdleAction::Terminate,
            IdleActionFlag::Suspend => IdleAction::Suspend,
        }
    }
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 90s, 20m, 29h, or 0)"))
}

impl PolicyFlags {
    /// The policy file (or the defaults) with the flags given applied on top.
    fn apply(self, mut p: Policy, shutdown_limit: Option<Duration>) -> anyhow::Result<Policy> {
        if let Some(m) = self.start_mode {
            p.start_mode = m.into();
        }
        if let Some(w) = self.warmup {
            p.warmup = w;
        }
        if let Some(d) = self.idle_timeout {
            p.idle_timeout = d;
        }
        if let Some(a) = self.idle_action {
            p.idle_action = a.into();
        }
        if let Some(d) = self.recycle_every {
            p.recycle_every = d;
        }
        if let Some(t) = self.recycle_at {
            p.recycle_at = t;
        }
        p.recycle_memory_mb = self.recycle_memory_mb.or(p.recycle_memory_mb);
        p.recycle_requests = self.recycle_requests.or(p.recycle_requests);
        if let Some(o) = self.overlap {
            p.overlap = o;
        }
        if let Some(d) = self.startup_limit {
            p.startup_limit = d;
        }
        if let Some(d) = shutdown_limit {
            p.shutdown_limit = d;
        }
        if let Some(r) = self.rapid_fail {
            p.rapid_fail = r;
        }
        p.init_entries = self.init_entries.unwrap_or(p.init_entries);
        p.first_hit_rounds = self.first_hit_rounds.unwrap_or(p.first_hit_rounds);
        p.app_offline = self.app_offline.or(p.app_offline);
        p.watch = self.watch.or(p.watch);
        p.watch_overlapped |= self.watch_overlapped;
        p.validate()?;
        Ok(p)
    }
}

/// Paths that never touch the actors' state (so never wait for the journal).
const STATELESS_PATHS: [&str; 2] = ["/ping", "/healthz"];

impl ServeArgs {
    pub fn into_options(self, inherited: Option<std::net::TcpListener>) -> anyhow::Result<ServeOptions> {
        let journal = match &self.journal {
            None => None,
            Some(path) => {
                if path.is_dir() {
                    bail!("--journal {} is a directory; give a file path", path.display());
                }
                // Children run from the same folder, but an absolute path
                // keeps every process on the same file whatever happens.
                let path = std::path::absolute(path)?;
                let mut config = JournalConfig::new(path);
                config.durability = self.journal_sync;
                config.snapshot_every = self.snapshot_every;
                Some(config)
            }
        };
        let base = match &self.policy {
            Some(path) => Policy::from_file(path)?,
            None => Policy::default(),
        };
        let policy = self.policy_flags.apply(base, self.shutdown_limit)?;
        if journal.is_some()
            && let Some(path) = policy.warmup.iter().find(|p| !STATELESS_PATHS.contains(&p.as_str()))
        {
            bail!(
                "--warmup {path} reads the state, which a recycled process gets from the journal only after \
                 the switch (the old process holds it until then), so that warm-up would wait and fail the \
                 recycle; with --journal, warm up with {} only",
                STATELESS_PATHS.join(" or ")
            );
        }
        if let Some(dup) = self
            .actors
            .iter()
            .enumerate()
            .find_map(|(i, a)| self.actors[..i].contains(a).then_some(a))
        {
            bail!("--actors lists {dup} twice: give each actor-service node once, in shard order");
        }
        if !self.actors.is_empty() && !matches!(self.model, Model::Front | Model::Split) {
            bail!(
                "--actors is for `serve front` and `serve split`, not `serve {}`",
                self.model.name()
            );
        }
        if !self.actors.is_empty() && self.model == Model::Split && self.journal.is_some() {
            bail!(
                "--journal with `serve split --actors`: split starts no actor service then; give each \
                 external node its own --journal"
            );
        }
        if self.shard.count > 1 && self.model != Model::Actors {
            bail!(
                "--shard is for `serve actors` (a node of a sharded actor service), not `serve {}`",
                self.model.name()
            );
        }
        if self.fronts > 1 && self.model != Model::Split {
            bail!("--fronts is for `serve split`, not `serve {}`", self.model.name());
        }
        let admin_token = self.admin_token.filter(|t| !t.is_empty());
        if let Some(admin) = self.admin
            && !admin.ip().is_loopback()
            && admin_token.is_none()
        {
            bail!(
                "--admin {admin} is not a loopback address: anyone who can reach it could recycle the app; \
                 set --admin-token TOKEN (or HOSTLAB_ADMIN_TOKEN), or use 127.0.0.1"
            );
        }
        Ok(ServeOptions {
            model: self.model,
            listen: self.listen,
            routing: self.routing,
            mailbox: self.mailbox as usize,
            policy,
            admin: self.admin,
            admin_token,
            limits: self.limit_flags.limits(),
            actors: self.actors,
            shard: self.shard,
            fronts: self.fronts as usize,
            journal,
            inherited,
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Short durations and fewer repeats (about 5 minutes in all); its
    /// throughput repeats run back to back instead of in interleaved rounds.
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated models to include (default: every built model).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Comma-separated scenarios to include (default: all but the opt-in
    /// `multihost` and `soak`, which run only when named here).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<crate::run::plan::Scenario>,
    /// Measured duration of each load run (e.g. 10s); also the length of
    /// each soak run [soak default: 10m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Repeats of each measurement (median, min and max are reported). The
    /// throughput repeats run in rounds: each round starts every model in
    /// turn for one repeat, so a slow spell of the machine hits one repeat
    /// of every model rather than all of one.
    #[arg(long)]
    pub repeats: Option<u32>,
    /// Output folder (default results/<UTC timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CPUs for the load generator (e.g. 0).
    #[arg(long)]
    pub client_cpus: Option<String>,
    /// CPUs for all server processes of a model (e.g. 1).
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// Cap every server process of a model at F cores (a control group,
    /// 10 ms period) in throughput runs, so that the server, not the load
    /// generator, is the limit; `off` runs uncapped. Default: 0.5 where a
    /// group can be made (docs/run.md "Server-bound mode").
    #[arg(long, value_name = "F", value_parser = parse_quota)]
    pub server_cpu_quota: Option<Quota>,
    /// Where the roles of the opt-in `multihost` scenario run: `local`
    /// (every process on 127.0.0.1) or `netns` (the load generator, each
    /// front and each actor node in a network namespace of its own, joined
    /// by veths; needs root and `ip`, else that part is recorded as skipped
    /// and the run goes on). `netns` also runs the loopback comparison.
    /// Every other scenario runs on this host's loopback either way
    /// (docs/multihost.md).
    #[arg(long, value_enum, default_value_t = HostsMode::Local, value_name = "local|netns")]
    pub hosts: HostsMode,
}

/// `--hosts`: where the `multihost` scenario puts its roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostsMode {
    /// Every role on this host's loopback (127.0.0.1).
    Local,
    /// One network namespace per role (Linux, root, iproute2's `ip`).
    Netns,
}

impl HostsMode {
    /// The name on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            HostsMode::Local => "local",
            HostsMode::Netns => "netns",
        }
    }
}

/// `--server-cpu-quota`: cores, or off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quota {
    Off,
    Cores(f64),
}

fn parse_quota(s: &str) -> Result<Quota, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Quota::Off);
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.01 => Ok(Quota::Cores(f)),
        _ => Err(format!(
            "`{s}` is not a CPU quota: give cores (e.g. 0.5, at least 0.01) or `off`"
        )),
    }
}
