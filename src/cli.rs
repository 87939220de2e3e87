//! The command line (DESIGN.md "Command line", a stable contract): raw
//! arguments as clap parses them, turned into validated options for the
//! crates that do the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
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
    /// `hostlab ready model=<MODEL> url=http://<ADDR> pid=<PID>`.
    Serve(ServeArgs),
    /// One load run against any URL (closed loop, or open loop with -r).
    Load(crate::load::LoadArgs),
    /// The main job: every model x scenario, results written to a folder.
    Run(RunArgs),
    /// One recycle experiment under fixed-rate load (not built yet).
    Recycle(RestArgs),
    /// Re-render report.md and charts from DIR/results.json (not built yet).
    Report(RestArgs),
    /// Per-metric ratios between two runs (not built yet).
    Compare(RestArgs),
}

/// Arguments of subcommands that are not built yet.
#[derive(Debug, Args)]
pub struct RestArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hosting model: edge | edge-actix | app (built); proxy | inprocess |
    /// split | nginx | worker | actors | front (not built yet).
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
    /// Longest a graceful shutdown waits for in-flight requests (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_limit: Duration,
    /// Persistent event journal (not built yet).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Admin endpoint address (not built yet).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Process policy TOML file (not built yet).
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

impl ServeArgs {
    pub fn into_options(self) -> anyhow::Result<ServeOptions> {
        for (flag, given) in [
            ("--journal", self.journal.is_some()),
            ("--admin", self.admin.is_some()),
            ("--policy", self.policy.is_some()),
        ] {
            if given {
                bail!("{flag} is not built yet; run without it");
            }
        }
        Ok(ServeOptions {
            model: self.model,
            listen: self.listen,
            routing: self.routing,
            mailbox: self.mailbox as usize,
            shutdown_limit: self.shutdown_limit,
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
    /// Comma-separated scenarios to include (default: all).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Measured duration of each load run (e.g. 10s).
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
