//! The validated plan of one `hostlab run`: which models and scenarios, how
//! long each measurement lasts, which CPUs the generator and the servers get,
//! and where results go. Raw flags (`cli::RunArgs`) stay apart from it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::results::Skipped;
use super::servers::{run_models, unavailable};
use crate::cli::{HostsMode, Quota, RunArgs};
use crate::load::{allowed_cpus, parse_cpu_list};
use hostlab_hosts::Model;

/// The scenarios (`--scenarios`), in the order they run: throughput first
/// (the latency scenario's rates come from edge's measured capacity), the
/// opt-in ones last. A new scenario is one variant here (its name on the
/// command line and in results.json is the variant's, kebab-case) and one
/// arm in `scenarios::run_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Scenario {
    Throughput,
    Link,
    Latency,
    Recycle,
    State,
    Recovery,
    Coldstart,
    Routing,
    #[value(alias = "cross-check")]
    Crosscheck,
    // Opt-in: split with its roles on separate hosts (see `opt_in`).
    Multihost,
    // Opt-in: 10 minutes per model (see `opt_in`).
    Soak,
}

impl Scenario {
    /// Runs only when `--scenarios` names it (after the default ones): the
    /// soak lasts 10 minutes per model, and `multihost` starts its own
    /// processes on several hosts (network namespaces with `--hosts netns`).
    pub fn opt_in(self) -> bool {
        matches!(self, Scenario::Soak | Scenario::Multihost)
    }

    /// Every scenario, in run order.
    pub fn all() -> impl Iterator<Item = Scenario> {
        <Scenario as clap::ValueEnum>::value_variants().iter().copied()
    }

    /// The name on the command line, the console and in results.json.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .expect("no scenario is skipped")
            .get_name()
            .to_string()
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Soak length without `--duration`.
pub const SOAK_DURATION: Duration = Duration::from_secs(10 * 60);
/// Longest time between the soak's overlapped recycles (shorter soaks
/// recycle every third of their length, so each still recycles twice).
pub const SOAK_RECYCLE_EVERY: Duration = Duration::from_secs(30);

/// Default cap of the server side in throughput runs, in cores: low enough
/// that the fastest model (edge, about 8.6 µs of core time per `/ping` on
/// this 2-core machine) serves about 58k req/s, well below the one
/// generator core's ~150k req/s, so every capped run is server-bound.
pub const DEFAULT_SERVER_CPU_QUOTA: f64 = 0.5;

/// Bounds of a recycle run's length (see `RunPlan::recycle_duration`).
pub const RECYCLE_MIN: Duration = Duration::from_secs(3);
pub const RECYCLE_MAX: Duration = Duration::from_secs(10);

/// Everything a run needs to know before it starts.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub quick: bool,
    /// Models to run (available ones only), in report order.
    pub models: Vec<String>,
    pub scenarios: Vec<Scenario>,
    /// Models or scenarios left out, and why.
    pub skipped: Vec<Skipped>,
    /// Measured phase of each closed-loop run.
    pub duration: Duration,
    /// Warm-up before each closed-loop run.
    pub warmup: Duration,
    pub repeats: u32,
    /// Closed-loop connections.
    pub connections: usize,
    pub recycle_rate: f64,
    /// Recycle kinds to run (all of `recycle::KINDS` unless `hostlab recycle` narrowed it).
    pub recycle_kinds: Vec<String>,
    pub recycle_duration: Duration,
    pub recycle_at: Duration,
    /// Recycle at half of each model's capacity (`hostlab run`), or only
    /// at `recycle_rate` (`hostlab recycle --rate`).
    pub recycle_at_capacity: bool,
    /// `hostlab recycle --delayed-ms`: the delayed threshold of every run,
    /// in µs, instead of the control's p99.9.
    pub delayed_threshold_us: Option<u64>,
    /// `hostlab recycle --json`: where to write the window metrics.
    pub recycle_json: Option<PathBuf>,
    pub latency_duration: Duration,
    pub latency_fractions: Vec<f64>,
    /// Each soak run (`--duration`, else 10 min).
    pub soak_duration: Duration,
    /// Time between the soak's overlapped recycles.
    pub soak_recycle_every: Duration,
    /// Books seeded before `GET /books` and counted by the state scenario.
    pub books: u64,
    /// Distinct task ids of the routing scenario.
    pub routing_tasks: u64,
    /// Journal sizes (events) the recovery scenario restarts from.
    pub recovery_events: Vec<u64>,
    /// Tasks accepted before the recovery scenario's SIGKILL.
    pub recovery_tasks: u64,
    /// Most long tasks the state scenario posts across each overlapped and
    /// stop-start recycle (0: none).
    pub inflight_tasks: u64,
    pub client_cpus: Vec<usize>,
    pub server_cpus: Vec<usize>,
    /// Set when the generator and the servers share CPUs.
    pub shared_cpu_warning: Option<String>,
    /// Cores the server side is capped at in throughput runs (`None`: uncapped).
    pub server_cpu_quota: Option<f64>,
    /// Repeats and measured phase of the `GET /ping` throughput runs behind
    /// the claim ratios: at least 3 repeats, shorter ones with `--quick`.
    pub claim_repeats: u32,
    pub claim_duration: Duration,
    /// `--hosts`: where the `multihost` scenario puts its roles.
    pub hosts: HostsMode,
    pub out: PathBuf,
}

impl RunPlan {
    pub fn from_args(args: RunArgs) -> anyhow::Result<RunPlan> {
        let mut skipped = Vec::new();
        let requested: Vec<String> = if args.models.is_empty() {
            run_models().map(|m| m.name().to_string()).collect()
        } else {
            args.models.iter().map(|m| m.trim().to_string()).collect()
        };
        for m in &requested {
            if !run_models().any(|known| known.name() == m) {
                let names: Vec<&str> = run_models().map(Model::name).collect();
                bail!("unknown model `{m}` in --models; choose from {}", names.join(", "));
            }
        }
        let mut models = Vec::new();
        for m in run_models().filter(|m| requested.iter().any(|r| r == m.name())) {
            match unavailable(m) {
                Some(reason) => skipped.push(Skipped {
                    model: Some(m.to_string()),
                    scenario: None,
                    reason,
                }),
                None => models.push(m.to_string()),
            }
        }
        if models.is_empty() {
            bail!("none of the requested models can run here (see the reasons above); try --models edge,proxy");
        }
        // The default ones, or those named, in run order.
        let scenarios: Vec<Scenario> = Scenario::all()
            .filter(|s| {
                if args.scenarios.is_empty() {
                    !s.opt_in()
                } else {
                    args.scenarios.contains(s)
                }
            })
            .collect();

        let allowed = allowed_cpus();
        let cpus = |flag: &Option<String>, default: Vec<usize>, what: &str| -> anyhow::Result<Vec<usize>> {
            let list = match flag {
                Some(text) => parse_cpu_list(text).with_context(|| format!("bad --{what}-cpus"))?,
                None => default,
            };
            if let Some(bad) = list.iter().find(|c| !allowed.contains(c)) {
                bail!("CPU {bad} in --{what}-cpus is not available here (available: {allowed:?})");
            }
            Ok(list)
        };
        let (default_client, default_server) = match allowed.as_slice() {
            [] => bail!("this process may run on no CPU (sched_getaffinity failed)"),
            [only] => (vec![*only], vec![*only]),
            [first, rest @ ..] => (vec![*first], vec![rest[0]]),
        };
        let client_cpus = cpus(&args.client_cpus, default_client, "client")?;
        let server_cpus = cpus(&args.server_cpus, default_server, "server")?;
        let shared_cpu_warning = client_cpus.iter().any(|c| server_cpus.contains(c)).then(|| {
            format!(
                "the load generator (CPUs {client_cpus:?}) and the servers (CPUs {server_cpus:?}) share CPUs: \
                 throughput figures include the generator's own cost; use a machine with 2+ CPUs"
            )
        });

        let quick = args.quick;
        let soak_duration = args.duration.unwrap_or(SOAK_DURATION);
        // --quick: 2 s closed-loop runs keep the whole quick run within its
        // 6-minute budget (docs/run.md "How long it takes").
        let duration = args.duration.unwrap_or(if quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        });
        let repeats = args.repeats.unwrap_or(if quick { 1 } else { 3 }).max(1);
        let out = match args.out {
            Some(dir) => dir,
            None => PathBuf::from("results").join(timestamp_dir_name(SystemTime::now())),
        };
        // Recycle and latency runs scale with --duration, within bounds that
        // keep a recycle visible with steady state on both sides of it: a
        // recycle run lasts one second more than a closed-loop run, at least
        // 3 s (the event at 1 s leaves 2 s for the manager's whole recycle,
        // about 1.1 s at most here) and at most 10 s. Default: 6 s runs;
        // --quick: 3 s, one repeat, no light level.
        let recycle_duration = (duration + Duration::from_secs(1)).clamp(RECYCLE_MIN, RECYCLE_MAX);
        Ok(RunPlan {
            quick,
            models,
            scenarios,
            skipped,
            duration,
            warmup: (duration / 4).min(Duration::from_secs(1)),
            repeats,
            connections: 64,
            recycle_rate: 1000.0,
            // --quick leaves out the deploys a file starts (app-offline and
            // the configuration restarts): no claim rests on them, and the
            // quick run keeps its 6-minute budget.
            recycle_kinds: super::scenarios::recycle::KINDS
                .iter()
                .filter(|(_, kind_flags)| !(quick && kind_flags.contains(&super::deploy::DEPLOY_FILE)))
                .map(|(k, _)| k.to_string())
                .collect(),
            recycle_duration,
            recycle_at: recycle_duration / 3,
            recycle_at_capacity: true,
            delayed_threshold_us: None,
            recycle_json: None,
            // Default 3 s, --quick 1.3 s per rate.
            latency_duration: if quick {
                duration.mul_f64(2.0 / 3.0)
            } else {
                duration.mul_f64(0.6)
            },
            latency_fractions: vec![0.25, 0.5, 0.75],
            soak_duration,
            soak_recycle_every: SOAK_RECYCLE_EVERY.min(soak_duration / 3),
            books: 100,
            routing_tasks: 10_000,
            recovery_events: if quick {
                vec![10_000, 100_000]
            } else {
                vec![10_000, 100_000, 300_000]
            },
            recovery_tasks: 200,
            inflight_tasks: if quick { 100 } else { 400 },
            client_cpus,
            server_cpus,
            shared_cpu_warning,
            server_cpu_quota: match args.server_cpu_quota {
                Some(Quota::Off) => None,
                Some(Quota::Cores(f)) => Some(f),
                None => Some(DEFAULT_SERVER_CPU_QUOTA),
            },
            claim_repeats: repeats.max(3),
            claim_duration: if quick && args.duration.is_none() {
                Duration::from_millis(1500)
            } else {
                duration
            },
            hosts: args.hosts,
            out,
        })
    }

    pub fn has_model(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }

    /// The selected models with a capability, in report order.
    pub fn models_where(&self, capable: impl Fn(Model) -> bool) -> Vec<String> {
        self.models
            .iter()
            .filter(|m| m.parse().is_ok_and(&capable))
            .cloned()
            .collect()
    }

    /// Rough seconds a scenario takes (for the progress line's ETA and the
    /// run's announced total). The fixed costs per run (server start and
    /// stop, seeding, idle waits) were measured on this 2-core machine
    /// (docs/run.md "How long it takes").
    pub fn estimate_s(&self, scenario: Scenario) -> f64 {
        let per_run = (self.duration + self.warmup).as_secs_f64() + 0.3;
        let n = self.models.len() as f64;
        let r = self.repeats as f64;
        let recyclers = self.models_where(Model::recycles);
        match scenario {
            Scenario::Throughput => {
                let claim_run = (self.claim_duration + self.claim_duration / 4).as_secs_f64() + 0.3;
                // The floor runs GET /ping only. The default run starts each
                // model once per round it has runs in (interleaved rounds),
                // `--quick` once; a start after the first costs about 0.5 s
                // (start, seeding and stop; the idle cost is measured once).
                let workload = self.models_where(Model::serves_workload).len() as f64;
                let rounds = super::scenarios::throughput::rounds(self.claim_repeats, self.repeats) as f64;
                let starts = if self.quick {
                    n
                } else {
                    workload * rounds + (n - workload) * self.claim_repeats as f64
                };
                n * (self.claim_repeats as f64 * claim_run + 0.5) + workload * 2.0 * r * per_run + 0.5 * (starts - n)
            }
            // One-way and round trips, `claim_repeats` each (split only).
            Scenario::Link if self.has_model("split") => {
                2.0 * self.claim_repeats as f64 * self.claim_duration.as_secs_f64() + 1.0
            }
            // Each fraction of capacity plus the one common rate.
            Scenario::Latency => {
                let rates = self.latency_fractions.len() as f64 + 1.0;
                let n = self.models_where(Model::serves_workload).len() as f64;
                n * (rates * r * (self.latency_duration.as_secs_f64() + 0.5) + 1.0)
            }
            Scenario::Recycle => recyclers.iter().map(|m| self.recycle_estimate_s(m)).sum(),
            // Each recycler: the book recycles, and the overlapped and
            // stop-start ones (with and without a journal) carry tasks in
            // flight, about 0.15 s more each (10 posts before the trigger,
            // the lookups after it; the posting itself overlaps the recycle).
            Scenario::State => recyclers.len() as f64 * (17.0 + 4.0 * 0.15) + 5.0,
            Scenario::Recovery => {
                self.recovery_events
                    .iter()
                    .map(|&n| n as f64 / 50_000.0 + 1.0)
                    .sum::<f64>()
                    * 2.0
                    + 18.0
            }
            Scenario::Coldstart => (recyclers.len() as f64 * 3.0 + 1.0) * r * 0.1 + 1.0,
            Scenario::Routing => 8.0,
            Scenario::Crosscheck => 2.0 * (self.duration.as_secs_f64() + 0.5),
            Scenario::Soak => recyclers.len() as f64 * (self.soak_duration.as_secs_f64() + per_run + 2.0),
            Scenario::Multihost => self.multihost_estimate_s(),
            Scenario::Link => 0.0,
        }
    }

    /// Seconds of the `multihost` scenario on each kind of host it runs on
    /// (loopback, and namespaces with `--hosts netns`): per configuration,
    /// about 3 s to start the processes and seed books, then the repeats
    /// and one `GET /ping` run (each a load run with its warm-up plus 0.5 s
    /// to start and stop the `hostlab load` children); and the node kill,
    /// about 10 s (steady load, the kill, the pause, the restart and the
    /// recovery).
    fn multihost_estimate_s(&self) -> f64 {
        use super::scenarios::multihost::CONFIGURATIONS;
        let kinds = match self.hosts {
            HostsMode::Local => 1.0,
            HostsMode::Netns => 2.0,
        };
        let per_run = (self.duration + self.warmup).as_secs_f64() + 0.5;
        let configs = CONFIGURATIONS.len() as f64;
        kinds * (configs * (3.0 + (self.repeats as f64 + 1.0) * per_run) + 10.0)
    }

    /// Seconds of one model's recycle scenario: every run (the control
    /// and each kind that applies, at each level) lasts its load plus
    /// about 0.8 s to start and stop a fresh server; idle kinds wait about
    /// 2 s more for the idle action.
    fn recycle_estimate_s(&self, model: &str) -> f64 {
        use super::scenarios::recycle::applies;
        let kinds: Vec<&String> = self.recycle_kinds.iter().filter(|k| applies(model, k)).collect();
        let idle = kinds.iter().filter(|k| k.starts_with("idle")).count() as f64;
        let variants = kinds.len() as f64 + 1.0;
        let light = !self.quick || !self.recycle_at_capacity;
        let runs_per_variant = if self.recycle_at_capacity {
            self.repeats as f64 + if light { 1.0 } else { 0.0 }
        } else {
            self.repeats as f64
        };
        runs_per_variant * (variants * (self.recycle_duration.as_secs_f64() + 0.8) + idle * 2.0)
    }
}

/// `20250101T120000Z`: a UTC timestamp usable as a folder name.
pub fn timestamp_dir_name(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string().replace([':', '-'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> anyhow::Result<RunPlan> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["hostlab", "run", "--out", "/tmp/x"].iter().chain(args))?;
        match cli.command {
            crate::cli::Command::Run(args) => RunPlan::from_args(args),
            _ => unreachable!("parsed a run command"),
        }
    }

    #[test]
    fn soak_runs_only_when_named() {
        let default = plan(&["--models", "edge"]).unwrap();
        assert!(!default.scenarios.contains(&Scenario::Soak));
        let quick = plan(&["--quick", "--models", "edge"]).unwrap();
        assert!(!quick.scenarios.contains(&Scenario::Soak));
        let soak = plan(&["--models", "proxy", "--scenarios", "soak,throughput"]).unwrap();
        assert_eq!(
            soak.scenarios,
            [Scenario::Throughput, Scenario::Soak],
            "opt-in scenarios run last"
        );
        assert_eq!(soak.soak_duration, SOAK_DURATION);
        assert_eq!(soak.soak_recycle_every, Duration::from_secs(30));
        let short = plan(&["--models", "proxy", "--scenarios", "soak", "--duration", "3s"]).unwrap();
        assert_eq!(short.soak_duration, Duration::from_secs(3));
        assert_eq!(
            short.soak_recycle_every,
            Duration::from_secs(1),
            "a short soak still recycles"
        );
        let bad = plan(&["--scenarios", "sok"]).unwrap_err().to_string();
        assert!(bad.contains("soak"), "{bad}");
    }

    #[test]
    fn scenarios_by_name_in_run_order() {
        let p = plan(&["--models", "edge", "--scenarios", "cross-check,state,throughput"]).unwrap();
        assert_eq!(
            p.scenarios,
            [Scenario::Throughput, Scenario::State, Scenario::Crosscheck]
        );
        let names: Vec<String> = Scenario::all().map(Scenario::name).collect();
        assert_eq!(names[0], "throughput");
        assert_eq!(names.last().map(String::as_str), Some("soak"));
        assert_eq!(Scenario::Crosscheck.to_string(), "crosscheck");
        let all = plan(&["--models", "edge"]).unwrap();
        assert_eq!(
            all.scenarios.len(),
            Scenario::all().count() - 2,
            "all but multihost and soak"
        );
        assert!(!all.scenarios.contains(&Scenario::Multihost));
    }

    #[test]
    fn recycle_kinds_take_their_short_names() {
        use clap::Parser;
        let kind = |given: &str| -> Result<String, clap::Error> {
            let cli = crate::cli::Cli::try_parse_from(["hostlab", "recycle", "proxy", "--kind", given])?;
            match cli.command {
                crate::cli::Command::Recycle(args) => Ok(args.kind),
                _ => unreachable!("parsed a recycle command"),
            }
        };
        assert_eq!(kind("idle").unwrap(), "idle-terminate");
        assert_eq!(kind("suspend").unwrap(), "idle-suspend");
        assert_eq!(kind("idle-suspend").unwrap(), "idle-suspend");
        assert_eq!(kind("stop-start").unwrap(), "stop-start");
        let bad = kind("reboot").unwrap_err().to_string();
        assert!(bad.contains("reboot") && bad.contains("stop-start"), "{bad}");
    }

    #[test]
    fn recycle_runs_last_a_second_more_than_closed_loop_runs_within_bounds() {
        let quick = plan(&["--quick", "--models", "proxy"]).unwrap();
        assert_eq!(quick.duration, Duration::from_secs(2));
        assert_eq!(quick.recycle_duration, Duration::from_secs(3));
        let default = plan(&["--models", "proxy"]).unwrap();
        assert_eq!(default.recycle_duration, Duration::from_secs(6));
        assert_eq!(default.latency_duration, Duration::from_secs(3));
        let short = plan(&["--models", "proxy", "--duration", "1s"]).unwrap();
        assert_eq!(short.recycle_duration, RECYCLE_MIN);
        let long = plan(&["--models", "proxy", "--duration", "30s"]).unwrap();
        assert_eq!(long.recycle_duration, RECYCLE_MAX);
        // The event a third of the way in, steady state on both sides.
        assert_eq!(quick.recycle_at, Duration::from_secs(1));
    }

    /// The budgets of docs/run.md "How long it takes": the estimate of the
    /// quick run of every model within 5 min 45 s (the run's own limit is
    /// 6 min), the default run's within 30 min.
    #[test]
    fn quick_and_default_runs_fit_their_time_budgets() {
        let all = crate::run::servers::run_models()
            .map(Model::name)
            .collect::<Vec<_>>()
            .join(",");
        let all = all.as_str();
        let total = |p: &RunPlan| p.scenarios.iter().map(|s| p.estimate_s(*s)).sum::<f64>();
        // nginx may be missing here: count it as if it ran.
        let with_all = |mut p: RunPlan| {
            p.models = all.split(',').map(String::from).collect();
            p
        };
        let quick = with_all(plan(&["--quick", "--models", all]).unwrap());
        let default = with_all(plan(&["--models", all]).unwrap());
        assert!(total(&quick) <= 345.0, "quick: {:.0} s", total(&quick));
        assert!(total(&default) <= 30.0 * 60.0, "default: {:.0} s", total(&default));
        // The recycle scenario of one model: control + 6 kinds (split 7).
        let p = plan(&["--quick", "--models", "proxy"]).unwrap();
        assert!((p.recycle_estimate_s("proxy") - (7.0 * 3.8 + 2.0 * 2.0)).abs() < 1e-9);
        assert!((p.recycle_estimate_s("split") - (8.0 * 3.8 + 2.0 * 2.0)).abs() < 1e-9);
        // The default run: 3 repeats at 50% and one at the light level.
        let p = plan(&["--models", "proxy"]).unwrap();
        assert!((p.recycle_estimate_s("proxy") - 4.0 * (10.0 * 6.8 + 2.0 * 2.0)).abs() < 1e-9);
    }

    #[test]
    fn multihost_runs_only_when_named_and_hosts_is_checked() {
        let quick = plan(&["--quick", "--models", "split"]).unwrap();
        assert!(!quick.scenarios.contains(&Scenario::Multihost));
        assert_eq!(quick.hosts, HostsMode::Local);
        let netns = plan(&["--models", "split", "--scenarios", "multihost", "--hosts", "netns"]).unwrap();
        assert_eq!(netns.scenarios, [Scenario::Multihost]);
        assert_eq!(netns.hosts, HostsMode::Netns);
        let local = plan(&["--models", "split", "--scenarios", "multihost"]).unwrap();
        assert!(netns.estimate_s(Scenario::Multihost) > local.estimate_s(Scenario::Multihost));
        let bad = plan(&["--hosts", "bogus"]).unwrap_err().to_string();
        assert!(bad.contains("bogus") && bad.contains("netns"), "{bad}");
    }

    #[test]
    fn folder_name_has_no_colons() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp_dir_name(t), "20231114T221320Z");
    }
}
