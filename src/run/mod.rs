//! `hostlab run`: the main job. Every selected model through every selected
//! scenario on pinned CPUs, written to a folder as results.json,
//! summary.csv, report.md and charts (DESIGN.md "Results"); plus
//! `hostlab report DIR` and `hostlab compare A B`, which read those files
//! back. Method, scenarios and verdict rules: docs/run.md.
//!
//! Flow (hyperfine's): plan -> scenarios (each appends entries and rewrites
//! results.json) -> summary -> exports -> console summary.

mod claims;
mod compare;
mod console;
mod cpu;
mod deploy;
mod export;
pub mod grade;
pub mod plan;
mod results;
mod scenarios;
mod servers;
mod stats;
mod summary;
mod windows;

use hostlab_hosts::Model;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};

use crate::cli::RunArgs;
use crate::load::{LoadPlan, LoadReport};
use console::Console;
use plan::RunPlan;
use results::{Entry, Results, RunEnvironment, Settings, Skipped};
use servers::{Http, Server};

pub use compare::main as compare_main;

/// One run in progress: the plan, what has been measured, and the tools
/// every scenario uses.
pub struct Ctx {
    pub plan: RunPlan,
    pub results: Results,
    pub http: Http,
    pub console: Console,
    /// Scratch files (nginx configs) for this run.
    pub tmp: PathBuf,
    /// Measurements that failed (the run goes on, then exits 1).
    pub failures: Vec<String>,
    started: Instant,
}

impl Ctx {
    /// Starts a model on the server CPUs.
    pub async fn start(&self, model: &str, extra: &[String]) -> anyhow::Result<Server> {
        Server::start(model, extra, &self.plan.server_cpus, &self.tmp).await
    }

    /// Starts `model` with `flags`, runs `body` on it once `GET /ping`
    /// answers 200, and stops it whatever the body returned: the start, wait
    /// and stop of every measurement, with no console step and no failure
    /// recorded (the caller decides; see [`Ctx::with_server`] for the loop).
    pub async fn serving<T>(
        &mut self,
        model: &str,
        flags: &[String],
        body: impl AsyncFnOnce(&mut Ctx, &Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.on_server(model, flags, true, body).await
    }

    /// [`Ctx::serving`], with `wait_serving` false: the body runs right after
    /// the ready line (coldstart measures the first request itself).
    async fn on_server<T>(
        &mut self,
        model: &str,
        flags: &[String],
        wait_serving: bool,
        body: impl AsyncFnOnce(&mut Ctx, &Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let server = self.start(model, flags).await?;
        let outcome = async {
            if wait_serving {
                server.wait_serving(&self.http).await?;
            }
            body(self, &server).await
        }
        .await;
        server.stop().await;
        outcome
    }

    /// One measurement of the per-model scenario loop, written once: the
    /// console step, a fresh server of `m.model` with `flags`, `body` once it
    /// answers `GET /ping` (unless [`Measurement::from_ready_line`]), the
    /// server stopped, and a failure (to start, to serve, or of the body)
    /// recorded with [`Ctx::fail`] so the loop goes on with the next model;
    /// results.json is rewritten either way. The body pushes its entries.
    /// `Ok(None)` means the measurement failed and was recorded; `Err` only
    /// that results.json could not be written.
    ///
    /// A scenario's loop becomes:
    ///
    /// ```text
    /// for model in ctx.plan.models.clone() {
    ///     let flags = steady_flags(&model);
    ///     ctx.with_server(Measurement::new("latency", &model), &flags, async |ctx, server| {
    ///         // measure against server.url, ctx.push(entry) ...
    ///         anyhow::Ok(())
    ///     })
    ///     .await?;
    /// }
    /// ```
    ///
    /// A nested start inside a measurement (a capacity probe, a restart)
    /// uses [`Ctx::serving`], which records nothing.
    pub async fn with_server<T>(
        &mut self,
        m: Measurement<'_>,
        flags: &[String],
        body: impl AsyncFnOnce(&mut Ctx, &Server) -> anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        self.console
            .step(m.scenario, m.model, m.label.as_deref().unwrap_or("starting"));
        let outcome = self.on_server(m.model, flags, m.wait_serving, body).await;
        let done = match outcome {
            Ok(value) => Some(value),
            Err(e) => {
                let e = match &m.label {
                    Some(label) => e.context(label.clone()),
                    None => e,
                };
                self.fail(m.model, m.scenario, e);
                None
            }
        };
        self.save()?;
        Ok(done)
    }

    /// One load run on the generator's CPUs (this process is pinned to them).
    pub async fn load(&self, plan: LoadPlan) -> anyhow::Result<LoadReport> {
        let url = plan.target.url.clone();
        crate::load::run(&plan, None)
            .await
            .with_context(|| format!("load run against {url} failed"))
    }

    pub fn push(&mut self, entry: Entry) {
        self.results.entries.push(entry);
    }

    /// Records a failed measurement and goes on with the next one; the run
    /// exits 1 at the end, naming every failure.
    pub fn fail(&mut self, model: &str, scenario: &str, error: anyhow::Error) {
        let reason = format!("FAILED: {error:#}");
        self.console.note(&format!("{scenario} / {model}: {reason}"));
        self.failures.push(format!("{scenario} / {model}: {error:#}"));
        self.results.skipped.push(Skipped {
            model: Some(model.to_string()).filter(|m| m != "-"),
            scenario: Some(scenario.to_string()),
            reason,
        });
    }

    pub fn skip(&mut self, model: Option<&str>, scenario: &str, reason: String) {
        self.console.note(&format!(
            "skipped: {}{scenario}: {reason}",
            model.map_or(String::new(), |m| format!("{m} in "))
        ));
        self.results.skipped.push(Skipped {
            model: model.map(str::to_string),
            scenario: Some(scenario.to_string()),
            reason,
        });
    }

    /// Records a skip for every selected model the scenario does not run
    /// (those for which `runs` is false), so no model drops out of a
    /// scenario silently. A model already skipped in this scenario keeps its
    /// first, more specific reason.
    pub fn skip_models_outside(&mut self, scenario: &str, runs: impl Fn(Model) -> bool, reason: &str) {
        let already = |m: &str| {
            self.results
                .skipped
                .iter()
                .any(|s| s.model.as_deref() == Some(m) && s.scenario.as_deref() == Some(scenario))
        };
        let dropped: Vec<String> = self
            .plan
            .models
            .iter()
            .filter(|m| !m.parse().is_ok_and(&runs) && !already(m))
            .cloned()
            .collect();
        for model in dropped {
            self.skip(Some(&model), scenario, reason.to_string());
        }
    }

    /// The selected models a scenario runs (those `capable`), in report
    /// order. Every selected model it does not run is recorded as skipped
    /// with `outside`, and when none is left, the scenario itself is, naming
    /// the models that would have run: no model drops out silently.
    pub fn models_for(&mut self, scenario: &str, capable: impl Fn(Model) -> bool + Copy, outside: &str) -> Vec<String> {
        self.skip_models_outside(scenario, capable, outside);
        let models = self.plan.models_where(capable);
        if models.is_empty() {
            let names: Vec<&str> = servers::run_models().filter(|m| capable(*m)).map(Model::name).collect();
            self.skip(None, scenario, format!("none of {} was selected", names.join(", ")));
        }
        models
    }

    /// Rewrites results.json, so a failure later still leaves this data.
    pub fn save(&mut self) -> anyhow::Result<()> {
        self.results.environment.elapsed_s = self.started.elapsed().as_secs_f64();
        export::json::write(&self.plan.out, &self.results)
    }
}

/// What [`Ctx::with_server`] shows and records for one measurement.
#[derive(Debug, Clone)]
pub struct Measurement<'a> {
    pub scenario: &'a str,
    pub model: &'a str,
    /// The console step's text ("starting" when `None`) and the context of
    /// a failure (none when `None`), e.g. a variant: `pool:10`.
    pub label: Option<String>,
    /// Run the body once `GET /ping` answers 200 (the default), or right
    /// after the ready line.
    pub wait_serving: bool,
}

impl<'a> Measurement<'a> {
    pub fn new(scenario: &'a str, model: &'a str) -> Measurement<'a> {
        Measurement {
            scenario,
            model,
            label: None,
            wait_serving: true,
        }
    }

    /// Names the measurement on the console and in its failure.
    pub fn label(mut self, label: impl Into<String>) -> Measurement<'a> {
        self.label = Some(label.into());
        self
    }

    /// The body starts right after the ready line, without waiting for
    /// `GET /ping` to answer (it measures that first request itself).
    pub fn from_ready_line(mut self) -> Measurement<'a> {
        self.wait_serving = false;
        self
    }
}

/// `hostlab recycle MODEL --kind K`: the recycle scenario for one model and
/// one kind, written as a result set like any run. Errors are bad arguments.
pub fn recycle_plan(args: crate::cli::RecycleArgs) -> anyhow::Result<RunPlan> {
    if !args.model.parse().is_ok_and(Model::recycles) {
        let names: Vec<&str> = Model::top_level().filter(|m| m.recycles()).map(Model::name).collect();
        bail!(
            "`{}` has no recyclable part; `hostlab recycle` takes one of {}",
            args.model,
            names.join(", ")
        );
    }
    let kind = args.kind.as_str();
    if !scenarios::recycle::applies(&args.model, kind) {
        bail!("`{kind}` applies to split only (it kills the actor service)");
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of requests per second");
    }
    let delayed_threshold_us = match args.delayed_ms {
        Some(ms) if !(ms.is_finite() && ms > 0.0) => {
            bail!("--delayed-ms must be a positive number of milliseconds, e.g. 10 or 0.5")
        }
        Some(ms) => Some((ms * 1e3).round() as u64),
        None => None,
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "recycle-{}",
            plan::timestamp_dir_name(std::time::SystemTime::now())
        ))
    });
    let mut plan = RunPlan::from_args(RunArgs {
        quick: true,
        models: vec![args.model],
        scenarios: vec![plan::Scenario::Recycle],
        duration: None,
        repeats: Some(1),
        out: Some(out),
        client_cpus: args.client_cpus,
        server_cpus: args.server_cpus,
        server_cpu_quota: Some(crate::cli::Quota::Off),
    })?;
    plan.recycle_kinds = vec![kind.to_string()];
    plan.recycle_rate = args.rate;
    plan.recycle_duration = args.duration;
    plan.recycle_at = args.duration / 3;
    plan.recycle_at_capacity = false;
    plan.delayed_threshold_us = delayed_threshold_us;
    plan.recycle_json = args.json;
    Ok(plan)
}

/// `hostlab recycle --kind`: the recycle scenario's kinds (one list,
/// `scenarios::recycle::KINDS`), with `idle` and `suspend` as short names
/// of `idle-terminate` and `idle-suspend`; the value is the kind's full name.
pub fn recycle_kind_parser() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let kinds: Vec<PossibleValue> = scenarios::recycle::KINDS
        .iter()
        .map(|(kind, _)| match *kind {
            "idle-terminate" => PossibleValue::new(*kind).alias("idle"),
            "idle-suspend" => PossibleValue::new(*kind).alias("suspend"),
            _ => PossibleValue::new(*kind),
        })
        .collect();
    PossibleValuesParser::new(kinds.clone()).map(move |given| {
        kinds
            .iter()
            .find(|k| k.matches(&given, false))
            .map_or(given, |k| k.get_name().to_string())
    })
}

/// Runs a plan (`hostlab run`, `hostlab recycle`) and writes its result set.
pub fn execute(plan: RunPlan) -> anyhow::Result<()> {
    let cores = online_cpus();
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("cannot create the output folder {}", plan.out.display()))?;
    let environment = capture_environment(&plan, cores);
    let steal_at_start = steal_ticks();
    let mut notes = Vec::new();
    if let Some(w) = &plan.shared_cpu_warning {
        eprintln!("hostlab: warning: {w}");
        notes.push(w.clone());
    }
    for s in &plan.skipped {
        println!("skipped: {}: {}", s.model.as_deref().unwrap_or("-"), s.reason);
    }
    // The servers' lifecycle logs would bury the progress line: children
    // log warnings only, unless RUST_LOG says otherwise.
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: no other thread exists yet (the runtime starts below), so
        // nothing reads the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LOG", "warn,ractor_cluster=error");
        }
    }
    // Pin before the runtime exists: its threads inherit the affinity; the
    // servers are re-pinned to the server CPUs as they start.
    crate::load::pin_cpus(&plan.client_cpus)
        .with_context(|| format!("cannot pin the generator to CPUs {:?}", plan.client_cpus))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_cpus.len().max(1))
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let total_estimate: f64 = plan.scenarios.iter().map(|s| plan.estimate_s(*s)).sum();
    sweep_stale_scratch();
    let tmp = scratch_dir();
    std::fs::create_dir_all(&tmp)?;
    let _scratch = Scratch(tmp.clone());
    let mut ctx = Ctx {
        results: Results {
            schema_version: results::SCHEMA_VERSION,
            environment,
            settings: settings(&plan),
            entries: Vec::new(),
            skipped: plan.skipped.clone(),
            notes,
            finished: false,
            claims: Vec::new(),
        },
        http: Http::new(),
        console: Console::new(total_estimate),
        tmp: tmp.clone(),
        failures: Vec::new(),
        started: Instant::now(),
        plan,
    };
    println!(
        "hostlab run: {} on {} x {} -> {} (about {:.0} s)",
        ctx.plan
            .scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", "),
        ctx.plan.models.join(", "),
        ctx.plan.repeats,
        ctx.plan.out.display(),
        total_estimate
    );
    ctx.save()?;
    // Ctrl-C or SIGTERM: remove the control groups of the server-bound
    // mode and the scratch folder (the servers die by their parent-death
    // signal), then exit as the signal would.
    let scratch = tmp.clone();
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return;
        };
        let code = tokio::select! {
            _ = tokio::signal::ctrl_c() => 130,
            _ = term.recv() => 143,
        };
        cpu::cgroup::remove_all();
        let _ = std::fs::remove_dir_all(&scratch);
        eprintln!("hostlab: interrupted");
        std::process::exit(code);
    });
    // Scenarios run inside block_on on this (main) thread, so children are
    // forked from a thread that lives for the whole run (PDEATHSIG).
    let outcome = runtime.block_on(scenarios::run_all(&mut ctx));
    ctx.console.finish();
    ctx.results.finished = outcome.is_ok() && ctx.failures.is_empty();
    ctx.results.environment.steal_percent = steal_percent(steal_at_start, steal_ticks());
    ctx.save()?;
    let out = ctx.plan.out.clone();
    let (rows, claims) = export::write_all(&out, &ctx.results)?;
    if let Err(e) = outcome {
        bail!(
            "{e:#}\nthe figures measured before the failure are in {}/results.json and report.md",
            out.display()
        );
    }
    print!("{}", console::summary(&rows, &claims));
    if !ctx.plan.recycle_at_capacity {
        scenarios::recycle::report_one(&ctx.plan, &ctx.results)?;
    }
    println!("results: {}/report.md", out.display());
    if !ctx.failures.is_empty() {
        bail!(
            "{} measurement(s) failed (the rest are in {}):\n  {}",
            ctx.failures.len(),
            out.display(),
            ctx.failures.join("\n  ")
        );
    }
    Ok(())
}

/// `hostlab link-sink`: the receiving process of the `link` scenario.
pub fn link_sink(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        println!("hostlab ready model=link url=http://{addr} pid={}", std::process::id());
        use std::io::Write;
        std::io::stdout().flush()?;
        hostlab_workloads::link::serve_sink(listener)
            .await
            .map_err(|e| anyhow::anyhow!(e))
    })
}

/// `hostlab report DIR`: re-render report.md, summary.csv and the charts.
pub fn report_main(dir: &Path) -> anyhow::Result<()> {
    let results = export::json::read(dir)?;
    let (rows, claims) = export::write_all(dir, &results)?;
    print!("{}", console::summary(&rows, &claims));
    println!("rewrote {}/report.md, summary.csv and charts/", dir.display());
    Ok(())
}

fn settings(plan: &RunPlan) -> Settings {
    Settings {
        quick: plan.quick,
        models: plan.models.clone(),
        scenarios: plan.scenarios.iter().map(|s| s.name()).collect(),
        duration_s: plan.duration.as_secs_f64(),
        warmup_s: plan.warmup.as_secs_f64(),
        repeats: plan.repeats,
        connections: plan.connections,
        recycle_rate_per_sec: plan.recycle_rate,
        recycle_duration_s: plan.recycle_duration.as_secs_f64(),
        recycle_at_s: plan.recycle_at.as_secs_f64(),
        latency_duration_s: plan.latency_duration.as_secs_f64(),
        latency_fractions: plan.latency_fractions.clone(),
        soak_duration_s: plan.soak_duration.as_secs_f64(),
        soak_recycle_every_s: plan.soak_recycle_every.as_secs_f64(),
        server_cpu_quota: plan.server_cpu_quota,
    }
}

fn online_cpus() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .map_or(1, |n| n.max(1) as usize)
}

fn capture_environment(plan: &RunPlan, cores: usize) -> RunEnvironment {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().into());
    RunEnvironment {
        cpu_model,
        cores,
        client_cpus: plan.client_cpus.clone(),
        server_cpus: plan.server_cpus.clone(),
        kernel,
        rustc: command_output("rustc", &["--version"]),
        hostlab_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: Some(env!("HOSTLAB_GIT_COMMIT").to_string()).filter(|c| c != "unknown"),
        git_dirty: match env!("HOSTLAB_GIT_DIRTY") {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        tool_versions: tool_versions(),
        steal_percent: None,
        command_line: std::env::args().collect(),
        started_utc: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        elapsed_s: 0.0,
    }
}

/// The optional peers' versions: `wrk -v` (which exits 1 after printing),
/// `oha --version`, `nginx -v` (on stderr). Only peers found on PATH.
fn tool_versions() -> std::collections::BTreeMap<String, String> {
    let mut found = std::collections::BTreeMap::new();
    for (tool, flag) in [("wrk", "-v"), ("oha", "--version"), ("nginx", "-v")] {
        let Some(exe) = servers::which(tool) else { continue };
        let Ok(out) = std::process::Command::new(exe).arg(flag).output() else {
            continue;
        };
        let text = [out.stdout, out.stderr].concat();
        if let Some(line) = String::from_utf8_lossy(&text)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
        {
            found.insert(tool.to_string(), line.to_string());
        }
    }
    found
}

/// Machine-wide (steal, total) CPU time from the first line of /proc/stat, in ticks.
fn steal_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    Some((*v.get(7)?, total))
}

/// Steal between two [`steal_ticks`] readings, percent of all CPU time.
fn steal_percent(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((s0, t0), (s1, t1)) = (before?, after?);
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    Some(s1.saturating_sub(s0) as f64 / total as f64 * 100.0)
}

/// First line of a command's stdout, if it ran and succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    })
}

/// Scratch folders are `<temp>/hostlab-run-<pid>`.
const SCRATCH_PREFIX: &str = "hostlab-run-";

/// This run's scratch folder (server logs, journals, deploy files).
fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", std::process::id()))
}

/// The run's scratch folder (server logs, journals), removed when the run
/// returns, on an error as well as on success.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the scratch folders of runs that were killed (SIGKILL leaves no
/// chance to clean up): those whose process no longer exists.
fn sweep_stale_scratch() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
