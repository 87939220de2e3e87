//! Recycle: each kind of process restart (overlapped with and without
//! warm-up, stop-start, crash of the app, idle terminate, idle suspend, and
//! for split a crash of the actor service) of the front models under
//! fixed-rate load, next to a control run with the same load and no event.
//!
//! Load levels: half of the model's own /ping capacity (see [`capacity`])
//! and a light 1,000 req/s (skipped by `--quick`). Every kind and the
//! control run `repeats` times at the half-capacity level and once at the
//! light level. The cost is read off the timeline in two windows (see
//! `windows::recycle_windows` and docs/run.md "Recycle method").

use hostlab_hosts::{Model, Role};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use http::Method;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{closed, load_entry, load_plan, open};
use crate::run::Ctx;
use crate::run::deploy::{self, DEPLOY_FILE};
use crate::run::results::{ManagerTimings, ProcessFigures, RecycleFigures};
use crate::run::servers::{Http, Server, cpu_time};
use crate::run::stats::{Spread, analyze_recycle, generator_limited};
use crate::run::windows::recycle_windows;

/// The kinds, each with the policy flags it runs under.
pub(crate) const KINDS: [(&str, &[&str]); 10] = [
    ("overlapped", &["--overlap", "true", "--warmup", "/ping,/books"]),
    ("overlapped-no-warmup", &["--overlap", "true"]),
    ("stop-start", &["--overlap", "false"]),
    ("crash", &[]),
    (
        "idle-terminate",
        &["--idle-timeout", "1s", "--idle-action", "terminate"],
    ),
    ("idle-suspend", &["--idle-timeout", "1s", "--idle-action", "suspend"]),
    // split only: SIGKILL of the actor service (where split's state lives).
    ("actors-crash", &[]),
    // Deploys a file starts (issue 19; run/deploy.rs): ANCM's app_offline,
    // and ASP.NET's restart on a configuration change.
    ("app-offline", &["--app-offline", DEPLOY_FILE]),
    ("config-restart", &["--watch", DEPLOY_FILE]),
    (
        "config-restart-overlapped",
        &["--watch", DEPLOY_FILE, "--watch-overlapped", "--warmup", "/ping,/books"],
    ),
];

/// The variant name of the control runs (no event, same load).
pub(crate) const CONTROL: &str = "control";

/// Share of the model's own capacity the main level runs at.
pub(crate) const CAPACITY_FRACTION: f64 = 0.5;

/// The light level's label (its rate is `RunPlan::recycle_rate`).
pub(crate) const LIGHT: &str = "light";

/// Whether a kind applies to a model (`actors-crash` needs an actor service).
pub(crate) fn applies(model: &str, kind: &str) -> bool {
    kind != "actors-crash" || model.parse().is_ok_and(|m: Model| m.roles().contains(&Role::Actors))
}

/// Idle kinds reach their idle state before the load starts.
fn idle_phase(kind: &str) -> Option<&'static str> {
    match kind {
        "idle-terminate" => Some("stopped"),
        "idle-suspend" => Some("suspended"),
        _ => None,
    }
}

/// Flags of a front model for one kind (always running, admin endpoint,
/// no idle action unless the kind is one).
pub(crate) fn flags(kind_flags: &[&str]) -> Vec<String> {
    let mut f: Vec<String> = ["--start-mode", "always-running", "--admin", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    if !kind_flags.contains(&"--idle-timeout") {
        f.extend(["--idle-timeout".to_string(), "0".to_string()]);
    }
    match deploy::resolve(kind_flags) {
        Ok(resolved) => f.extend(resolved),
        Err(e) => {
            tracing::warn!("{e:#}");
            f.extend(kind_flags.iter().map(|s| s.to_string()));
        }
    }
    f
}

/// Connections of the fixed-rate runs: enough to keep the schedule through
/// a stall of a few hundred milliseconds at tens of thousands of req/s.
const CONNECTIONS: usize = 64;

/// Longest capacity probe when the run has no throughput figure.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// One load level of the scenario.
#[derive(Debug, Clone)]
struct Level {
    /// `50%` or `light`.
    label: String,
    rate: f64,
    repeats: u32,
    /// The capacity the rate derives from, and whether the generator may
    /// have limited it (the rate is then below half the real capacity).
    capacity: Option<(f64, bool)>,
}

/// The variant name of a kind at a level, e.g. `overlapped @ 50%`.
pub(crate) fn variant(kind: &str, level: &str) -> String {
    format!("{kind} @ {level}")
}

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let models = ctx.models_for(
        "recycle",
        Model::recycles,
        "no recyclable part (only proxy, inprocess and split have a process manager)",
    );
    for model in models {
        let levels = match levels(ctx, &model).await {
            Ok(levels) => levels,
            Err(e) => {
                ctx.fail(&model, "recycle", e.context("capacity for the recycle load"));
                continue;
            }
        };
        for level in levels {
            // The control first: its p99.9 is the delayed threshold of the kinds.
            let mut control_p99_9 = Vec::new();
            for repeat in 1..=level.repeats {
                ctx.console.step(
                    "recycle",
                    &model,
                    &format!("{} {repeat}/{}", variant(CONTROL, &level.label), level.repeats),
                );
                let threshold = ctx.plan.delayed_threshold_us;
                match measure(ctx, &model, CONTROL, KINDS[0].1, &level, repeat, threshold).await {
                    Ok(p) => control_p99_9.push(p as f64),
                    Err(e) => ctx.fail(&model, "recycle", e.context(variant(CONTROL, &level.label))),
                }
            }
            let threshold = ctx
                .plan
                .delayed_threshold_us
                .or_else(|| Spread::of(&control_p99_9).map(|s| s.median as u64));
            let wanted = ctx.plan.recycle_kinds.clone();
            for (kind, kind_flags) in KINDS
                .iter()
                .filter(|(k, _)| wanted.iter().any(|w| w == k) && applies(&model, k))
            {
                for repeat in 1..=level.repeats {
                    let name = variant(kind, &level.label);
                    ctx.console
                        .step("recycle", &model, &format!("{name} {repeat}/{}", level.repeats));
                    if let Err(e) = measure(ctx, &model, kind, kind_flags, &level, repeat, threshold).await {
                        ctx.fail(&model, "recycle", e.context(format!("{name} recycle")));
                    }
                }
            }
            ctx.save()?;
        }
    }
    Ok(())
}

/// The levels for a model: half its capacity, then (unless `--quick` or
/// `hostlab recycle`) the light rate; `hostlab recycle` runs its `--rate` only.
async fn levels(ctx: &mut Ctx, model: &str) -> anyhow::Result<Vec<Level>> {
    let mut levels = Vec::new();
    if ctx.plan.recycle_at_capacity {
        let (capacity, limited) = capacity(ctx, model).await?;
        levels.push(Level {
            label: format!("{:.0}%", CAPACITY_FRACTION * 100.0),
            rate: (capacity * CAPACITY_FRACTION).max(1.0),
            repeats: ctx.plan.repeats,
            capacity: Some((capacity, limited)),
        });
    }
    if !ctx.plan.quick || !ctx.plan.recycle_at_capacity {
        levels.push(Level {
            label: if ctx.plan.recycle_at_capacity {
                LIGHT.to_string()
            } else {
                format!("{:.0}/s", ctx.plan.recycle_rate)
            },
            rate: ctx.plan.recycle_rate,
            repeats: if ctx.plan.recycle_at_capacity {
                1
            } else {
                ctx.plan.repeats
            },
            capacity: None,
        });
    }
    Ok(levels)
}

/// The model's GET /ping capacity and whether the generator may have been
/// its limit: the median closed-loop req/s of this run's throughput
/// scenario, else a short closed-loop probe of a fresh server.
///
/// The one place the recycle scenario reads a capacity: issue 13's
/// server-bound (CPU-capped) throughput replaces it where it exists.
async fn capacity(ctx: &mut Ctx, model: &str) -> anyhow::Result<(f64, bool)> {
    let measured: Vec<_> = ctx
        .results
        .entries
        .iter()
        .filter(|e| e.scenario == "throughput" && e.model == model && e.variant == super::throughput::PING)
        .filter_map(|e| e.load.as_ref())
        .collect();
    if let Some(s) = Spread::of(&measured.iter().map(|l| l.requests_per_sec).collect::<Vec<_>>()) {
        let limited = measured
            .iter()
            .any(|l| generator_limited(l.generator_cpu_percent, l.generator_cpus));
        return Ok((s.median, limited));
    }
    ctx.console.step("recycle", model, "capacity probe");
    let outcome = ctx
        .serving(
            model,
            &crate::run::scenarios::steady_flags(model),
            async |ctx, server| {
                let probe = closed(
                    load_plan(&server.url, Method::GET, "/ping", None)?,
                    ctx.plan.connections,
                    ctx.plan.duration.min(PROBE_LIMIT),
                    ctx.plan.warmup.min(Duration::from_millis(500)),
                );
                ctx.load(probe).await
            },
        )
        .await;
    let report = outcome?;
    let capacity = report.measured.requests_per_sec;
    if capacity <= 0.0 {
        bail!("{model} answered no GET /ping in the capacity probe");
    }
    let limited = generator_limited(report.generator.cpu_percent, report.generator.cpus);
    let mut entry = load_entry(model, "recycle", "capacity probe", 1, &report, false, Vec::new());
    entry.recycle = None;
    ctx.push(entry);
    Ok((capacity, limited))
}

/// One run (a recycle of `kind`, or the control) on a fresh server; pushes
/// its entry and returns its p99.9 in µs (the control's is the delayed
/// threshold). `delayed_threshold_us`: the kinds' threshold, or for a
/// control a fixed one (`--delayed-ms`) instead of its own p99.9.
#[allow(clippy::too_many_arguments)]
async fn measure(
    ctx: &mut Ctx,
    model: &str,
    kind: &str,
    kind_flags: &[&str],
    level: &Level,
    repeat: u32,
    delayed_threshold_us: Option<u64>,
) -> anyhow::Result<u64> {
    ctx.serving(model, &flags(kind_flags), async |ctx, server| {
        one(ctx, model, kind, server, level, repeat, delayed_threshold_us).await
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn one(
    ctx: &mut Ctx,
    model: &str,
    kind: &str,
    server: &Server,
    level: &Level,
    repeat: u32,
    delayed_threshold_us: Option<u64>,
) -> anyhow::Result<u64> {
    let admin = server
        .admin
        .clone()
        .ok_or_else(|| anyhow!("{model} printed no admin URL"))?;
    let http = ctx.http.clone();
    if let Some(phase) = idle_phase(kind) {
        wait_for_phase(&http, &admin, phase).await?;
    }
    let mut plan = open(
        load_plan(&server.url, Method::GET, "/ping", None)?,
        CONNECTIONS,
        level.rate,
        ctx.plan.recycle_duration,
        Duration::ZERO,
    );
    // Each interval's histogram, for the windows' exact delayed count and p99.
    plan.interval_histograms = true;
    let mut processes = ProcessSampler::default();
    processes.sample(&server.pids(), true);
    let t0 = Instant::now();
    let load = tokio::spawn(async move { crate::load::run(&plan, None).await });
    let event_at = t0 + ctx.plan.recycle_at;
    let mut event_ms = if idle_phase(kind).is_some() { Some(0) } else { None };
    // Sample every process of the model (new generations, workers and the
    // actor service included) until the load ends; trigger on time.
    while !load.is_finished() {
        if event_ms.is_none() && kind != CONTROL && Instant::now() >= event_at {
            event_ms = Some(t0.elapsed().as_millis() as u64);
            trigger(&http, &admin, kind).await?;
        }
        let mut next = Instant::now() + Duration::from_millis(100);
        if event_ms.is_none() && kind != CONTROL {
            next = next.min(event_at);
        }
        tokio::time::sleep_until(next.into()).await;
        processes.sample(&server.pids(), false);
    }
    let report = load.await.context("the load task failed")??;
    let admin_status = http.get_json(&format!("{admin}/status")).await.ok();
    let figures = crate::run::results::LoadFigures::from_report(&report, true);
    // The control's windows sit where the event would have been.
    let window_at = event_ms.unwrap_or(ctx.plan.recycle_at.as_millis() as u64);
    let analysis = analyze_recycle(&figures.timeline, window_at);
    let p99_9 = figures.latency_us.p99_9;
    // A control's delayed requests are counted against its own p99.9 (the
    // share any run has above the threshold with no event at all), unless
    // `--delayed-ms` set one threshold for every run.
    let threshold = if kind == CONTROL {
        delayed_threshold_us.or(Some(p99_9))
    } else {
        delayed_threshold_us
    };
    let buckets: Vec<_> = report.timeline.iter().map(|r| r.latency_buckets.clone()).collect();
    let (window_1s, drain, downtime_ms) = recycle_windows(&figures.timeline, &buckets, window_at, threshold);
    let mut entry = load_entry(
        model,
        "recycle",
        &variant(kind, &level.label),
        repeat,
        &report,
        true,
        processes.finish(),
    );
    entry.recycle = Some(RecycleFigures {
        kind: kind.into(),
        event_ms: window_at,
        failed: figures.requests.errors,
        analysis,
        level: level.label.clone(),
        rate_per_sec: level.rate,
        capacity_per_sec: level.capacity.map(|c| c.0),
        capacity_generator_limited: level.capacity.is_some_and(|c| c.1),
        control: kind == CONTROL,
        delayed_threshold_us: threshold,
        downtime_ms,
        window_1s: Some(window_1s),
        drain: Some(drain),
        manager: admin_status.as_ref().and_then(ManagerTimings::of),
        admin_status,
    });
    ctx.push(entry);
    Ok(p99_9)
}

/// CPU time and RSS of every process a model had during a run, sampled
/// as processes come and go (an old app generation that exited keeps the
/// CPU it used while sampled; one born during the run counts from zero).
#[derive(Debug, Default)]
struct ProcessSampler {
    started: Option<Instant>,
    /// pid -> (name, CPU at the first sample, CPU at the last, RSS at the last, alive at the last).
    seen: HashMap<u32, (String, Duration, Duration, u64, bool)>,
    order: Vec<u32>,
}

impl ProcessSampler {
    fn sample(&mut self, pids: &[u32], first: bool) {
        self.started.get_or_insert_with(Instant::now);
        for p in self.seen.values_mut() {
            p.4 = false;
        }
        for &pid in pids {
            let Some(cpu) = cpu_time(pid) else { continue };
            let rss = hostlab_workloads::rss_bytes(pid).unwrap_or(0);
            let entry = self.seen.entry(pid).or_insert_with(|| {
                self.order.push(pid);
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map_or_else(|_| "?".into(), |s| s.trim().to_string());
                (name, if first { cpu } else { Duration::ZERO }, cpu, rss, true)
            });
            entry.2 = cpu;
            entry.3 = rss;
            entry.4 = true;
        }
    }

    fn finish(self) -> Vec<ProcessFigures> {
        let wall = self.started.map_or(1e-9, |s| s.elapsed().as_secs_f64().max(1e-9));
        self.order
            .iter()
            .filter_map(|pid| {
                let (name, first, last, rss, alive) = self.seen.get(pid)?;
                Some(ProcessFigures {
                    pid: *pid,
                    name: if *alive {
                        name.clone()
                    } else {
                        format!("{name} (exited)")
                    },
                    cpu_percent: last.saturating_sub(*first).as_secs_f64() / wall * 100.0,
                    rss_bytes: if *alive { *rss } else { 0 },
                })
            })
            .collect()
    }
}

/// Recycles now: `POST /recycle` (the policy decides overlapped or
/// stop-start), or SIGKILL of the app process (`crash`) or of split's
/// actor service (`actors-crash`).
pub(crate) async fn trigger(http: &Http, admin: &str, kind: &str) -> anyhow::Result<()> {
    if deploy::is_deploy(kind) {
        return deploy::trigger(http, admin, kind).await;
    }
    if let Some(role) = crash_role(kind) {
        let status = http.get_json(&format!("{admin}/status")).await?;
        let pid = status["pids"][role]
            .as_u64()
            .ok_or_else(|| anyhow!("the admin status names no {role} pid to kill: {status}"))?;
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).with_context(|| format!("cannot SIGKILL {role} pid {pid}"))?;
        return Ok(());
    }
    let (status, report) = http
        .post_json(&format!("{admin}/recycle"), &serde_json::json!({}))
        .await?;
    if status != 200 {
        bail!("POST {admin}/recycle answered {status}: {report}");
    }
    Ok(())
}

/// The admin status's `pids` key a crash kind kills.
pub(crate) fn crash_role(kind: &str) -> Option<&'static str> {
    match kind {
        "crash" => Some("app"),
        "actors-crash" => Some("actors"),
        _ => None,
    }
}

/// Polls the admin status until the app reaches `phase` (an idle action).
pub(crate) async fn wait_for_phase(http: &Http, admin: &str, phase: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = http.get_json(&format!("{admin}/status")).await?;
        if status["phase"] == phase {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the app never reached phase `{phase}` (last status: {status})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `hostlab recycle`'s own output after the run: the window metrics of the
/// control and the recycle side by side on stdout, and with `--json FILE`
/// the same as JSON (keys: docs/run.md "One recycle").
pub(crate) fn report_one(
    plan: &crate::run::plan::RunPlan,
    results: &crate::run::results::Results,
) -> anyhow::Result<()> {
    let runs: Vec<(&crate::run::results::Entry, &RecycleFigures)> = results
        .entries
        .iter()
        .filter(|e| e.scenario == "recycle")
        .filter_map(|e| Some((e, e.recycle.as_ref()?)))
        .collect();
    let control = runs.iter().find(|(_, r)| r.control).copied();
    let recycle = runs.iter().find(|(_, r)| !r.control).copied();
    let kind = plan.recycle_kinds.first().map_or("-", String::as_str);
    let model = plan.models.first().map_or("-", String::as_str);
    let threshold = recycle.or(control).and_then(|(_, r)| r.delayed_threshold_us);
    let threshold_from = match (plan.delayed_threshold_us, threshold) {
        (Some(_), _) => Some("--delayed-ms"),
        (None, Some(_)) => Some("control p99.9"),
        (None, None) => None,
    };
    print!(
        "{}",
        one_text(
            model,
            kind,
            plan.recycle_rate,
            threshold,
            threshold_from,
            control,
            recycle
        )
    );
    if let Some(path) = &plan.recycle_json {
        let run = |x: Option<(&crate::run::results::Entry, &RecycleFigures)>| {
            x.map(|(e, r)| {
                serde_json::json!({
                    "variant": e.variant,
                    "event_ms": r.event_ms,
                    "requests": e.load.as_ref().map(|l| &l.requests),
                    "latency_us": e.load.as_ref().map(|l| &l.latency_us),
                    "downtime_ms": r.downtime_ms,
                    "delayed_threshold_us": r.delayed_threshold_us,
                    "window_1s": r.window_1s,
                    "drain": r.drain,
                    "manager": r.manager,
                })
            })
        };
        let doc = serde_json::json!({
            "schema_version": 1,
            "model": model,
            "kind": kind,
            "rate_per_sec": plan.recycle_rate,
            "duration_s": plan.recycle_duration.as_secs_f64(),
            "delayed_threshold_us": threshold,
            "delayed_threshold_from": threshold_from,
            "control": run(control),
            "recycle": run(recycle),
            "results": plan.out.join("results.json"),
        });
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The window metrics of a control and a recycle as a small table.
fn one_text(
    model: &str,
    kind: &str,
    rate: f64,
    threshold_us: Option<u64>,
    threshold_from: Option<&str>,
    control: Option<(&crate::run::results::Entry, &RecycleFigures)>,
    recycle: Option<(&crate::run::results::Entry, &RecycleFigures)>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Window metrics of {model} {kind} at {rate:.0} req/s (delayed: slower than {}):",
        match (threshold_us, threshold_from) {
            (Some(t), Some(from)) => format!("{:.3} ms, {from}", t as f64 / 1e3),
            _ => "no threshold, the control did not run".into(),
        }
    );
    let cells = |x: Option<(&crate::run::results::Entry, &RecycleFigures)>| x.map(|(_, r)| window_cells(r));
    let (control_cells, recycle_cells) = (cells(control), cells(recycle));
    let _ = writeln!(out, "  {:<26} {:>14}  {}", "", CONTROL, kind);
    for (i, name) in WINDOW_ROWS.iter().enumerate() {
        let cell = |c: &Option<[String; 7]>| c.as_ref().map_or("-".to_string(), |c| c[i].clone());
        let _ = writeln!(
            out,
            "  {:<26} {:>14}  {}",
            name,
            cell(&control_cells),
            cell(&recycle_cells)
        );
    }
    if let Some(m) = recycle.and_then(|(_, r)| r.manager) {
        let o = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        let _ = writeln!(
            out,
            "  manager (what it saw): start-to-ready {} ms, warm-up {} ms, drain {} ms, unavailable {} ms, total {} ms",
            o(m.start_to_ready_ms),
            o(m.warmup_ms),
            o(m.drain_ms),
            o(m.manager_unavailable_ms),
            o(m.total_ms)
        );
    }
    out
}

/// The rows of `hostlab recycle`'s window table.
const WINDOW_ROWS: [&str; 7] = [
    "failed in [event, +1 s]",
    "failed to the end",
    "delayed in [event, +1 s]",
    "delayed to the end",
    "downtime ms",
    "p99 ms in [event, +1 s]",
    "p99 ms to the end",
];

/// One run's cells of the [`WINDOW_ROWS`] table.
fn window_cells(r: &RecycleFigures) -> [String; 7] {
    use crate::run::results::WindowMetrics;
    let failed = |w: Option<WindowMetrics>| {
        w.map_or("-".into(), |w| match w.failed.total() {
            0 => "0".to_string(),
            n => format!("{n} ({})", w.failed.describe()),
        })
    };
    let delayed = |w: Option<WindowMetrics>| w.and_then(|w| w.delayed).map_or("-".into(), |d| d.to_string());
    let p99 = |w: Option<WindowMetrics>| {
        w.and_then(|w| w.p99_us)
            .map_or("-".into(), |p| format!("{:.2}", p as f64 / 1e3))
    };
    [
        failed(r.window_1s),
        failed(r.drain),
        delayed(r.window_1s),
        delayed(r.drain),
        r.downtime_ms.to_string(),
        p99(r.window_1s),
        p99(r.drain),
    ]
}
