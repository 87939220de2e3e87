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
mod ctx;
mod deploy;
mod export;
pub mod grade;
pub mod plan;
mod results;
mod scenarios;
mod servers;
mod stats;
mod summary;
#[cfg(test)]
mod test_support;
mod windows;

use hostlab_hosts::Model;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};

use crate::cli::RunArgs;
use console::Console;
use plan::RunPlan;
use results::{Results, RunEnvironment, Settings};
use servers::Http;

pub use compare::main as compare_main;
pub use ctx::{Ctx, Measurement};

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
        hosts: crate::cli::HostsMode::Local,
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
    // Network namespaces a killed hostlab left behind (src/netns.rs).
    crate::netns::sweep_stale();
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
    // mode, this process's network namespaces and the scratch folder (the
    // servers die by their parent-death signal), then exit as the signal
    // would.
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
        crate::netns::remove_own();
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

/// `hostlab link-sink`: the receiving process of the `link` scenario, on
/// the runtime the actor service (every server process) runs on.
pub fn link_sink(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let runtime = hostlab_hosts::server_runtime().context("cannot start the tokio runtime")?;
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
