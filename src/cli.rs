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
    /// One recycle experiment under fixed-rate load (not built yet).
    Recycle(RestArgs),
    /// Re-render report.md, summary.csv and charts from DIR/results.json.
    Report(ReportArgs),
    /// Per-metric ratios between two runs, flagging changes beyond noise.
    Compare(CompareArgs),
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

/// Arguments of subcommands that are not built yet.
#[derive(Debug, Args)]
pub struct RestArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hosting model: edge | edge-actix | proxy | inprocess | split, and the
    /// parts they start: app | worker | actors | front. (nginx is a peer that
    /// `hostlab run` drives; it is not served by hostlab.)
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
    /// itself). Both node servers must share `HOSTLAB_COOKIE`.
    #[arg(long)]
    pub actors: Option<SocketAddr>,
    /// Persistent event journal (not built yet).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Admin endpoint of proxy and inprocess (loopback only): GET /status,
    /// POST /recycle. Port 0 picks a free port (shown in the ready line).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Process policy TOML file (keys as the flags below, e.g.
    /// `idle-timeout = "20m"`); flags given on the command line win.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub policy_flags: PolicyFlags,
}

/// IIS/ANCM-style process policies of `proxy` and `inprocess` (see docs/policies.md).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Process policy (proxy, inprocess)")]
pub struct PolicyFlags {
    /// `on-demand`: the first request starts the app (IIS default);
    /// `always-running`: start it before the ready line.
    #[arg(long, value_parser = ["on-demand", "always-running"])]
    pub start_mode: Option<String>,
    /// Paths requested on a new app process before it gets traffic
    /// (Application Initialization), e.g. /ping,/books.
    #[arg(long, value_delimiter = ',')]
    pub warmup: Option<Vec<String>>,
    /// Idle time before the idle action; 0 = never [default: 20m].
    #[arg(long, value_parser = parse_duration_or_zero)]
    pub idle_timeout: Option<Duration>,
    /// `terminate` (next request cold-starts) or `suspend` (SIGSTOP/SIGCONT).
    #[arg(long, value_parser = ["terminate", "suspend"])]
    pub idle_action: Option<String>,
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
            p.start_mode = if m == "always-running" {
                StartMode::AlwaysRunning
            } else {
                StartMode::OnDemand
            };
        }
        if let Some(w) = self.warmup {
            p.warmup = w;
        }
        if let Some(d) = self.idle_timeout {
            p.idle_timeout = d;
        }
        if let Some(a) = self.idle_action {
            p.idle_action = if a == "suspend" {
                IdleAction::Suspend
            } else {
                IdleAction::Terminate
            };
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
        p.validate()?;
        Ok(p)
    }
}

impl ServeArgs {
    pub fn into_options(self, inherited: Option<std::net::TcpListener>) -> anyhow::Result<ServeOptions> {
        if self.journal.is_some() {
            bail!("--journal is not built yet; run without it");
        }
        let base = match &self.policy {
            Some(path) => Policy::from_file(path)?,
            None => Policy::default(),
        };
        let policy = self.policy_flags.apply(base, self.shutdown_limit)?;
        Ok(ServeOptions {
            model: self.model,
            listen: self.listen,
            routing: self.routing,
            mailbox: self.mailbox as usize,
            shutdown_limit: policy.shutdown_limit,
            policy,
            admin: self.admin,
            actors: self.actors,
            inherited,
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Short durations and fewer repeats (about 5 minutes in all).
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated models to include (default: every built model).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Comma-separated scenarios to include (default: all but the opt-in
    /// `soak`, which runs only when named here).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Measured duration of each load run (e.g. 10s); also the length of
    /// each soak run [soak default: 10m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Repeats of each measurement (median, min and max are reported).
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
}
