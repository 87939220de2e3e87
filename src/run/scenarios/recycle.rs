//! Recycle: each kind of process restart (overlapped with and without
//! warm-up, stop-start, crash, idle terminate, idle suspend) of the front
//! models under fixed-rate load, with the timeline kept; the cost (failed
//! requests, outage, p99 peak, time to recover) is read off the timeline.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use http::Method;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{load_entry, load_plan, open};
use crate::run::Ctx;
use crate::run::results::RecycleFigures;
use crate::run::servers::{CpuProbe, Http};
use crate::run::stats::analyze_recycle;

/// Models with a recyclable part.
pub const MODELS: [&str; 3] = ["proxy", "inprocess", "split"];

/// The kinds, each with the policy flags it runs under.
pub const KINDS: [(&str, &[&str]); 6] = [
    ("overlapped", &["--overlap", "true", "--warmup", "/ping,/books"]),
    ("overlapped-no-warmup", &["--overlap", "true"]),
    ("stop-start", &["--overlap", "false"]),
    ("crash", &[]),
    (
        "idle-terminate",
        &["--idle-timeout", "1s", "--idle-action", "terminate"],
    ),
    ("idle-suspend", &["--idle-timeout", "1s", "--idle-action", "suspend"]),
];

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
pub fn flags(kind_flags: &[&str]) -> Vec<String> {
    let mut f: Vec<String> = ["--start-mode", "always-running", "--admin", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    if !kind_flags.contains(&"--idle-timeout") {
        f.extend(["--idle-timeout".to_string(), "0".to_string()]);
    }
    f.extend(kind_flags.iter().map(|s| s.to_string()));
    f
}

/// Connections of the fixed-rate runs: enough to keep the schedule through
/// a stall of a few hundred milliseconds at the recycle rate.
const CONNECTIONS: usize = 32;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    ctx.skip_models_outside(
        "recycle",
        &MODELS,
        "no recyclable part (only proxy, inprocess and split have a process manager)",
    );
    let models = ctx.plan.models_among(&MODELS);
    if models.is_empty() {
        ctx.skip(
            None,
            "recycle",
            "no model with a recyclable part (proxy, inprocess) was selected".into(),
        );
        return Ok(());
    }
    for model in models {
        let wanted = ctx.plan.recycle_kinds.clone();
        for (kind, kind_flags) in KINDS.iter().filter(|(k, _)| wanted.iter().any(|w| w == k)) {
            ctx.console.step("recycle", &model, kind);
            let server = match ctx.start(&model, &flags(kind_flags)).await {
                Ok(server) => server,
                Err(e) => {
                    ctx.fail(&model, "recycle", e.context(kind));
                    continue;
                }
            };
            let outcome = one(ctx, &model, kind, &server).await;
            server.stop().await;
            if let Err(e) = outcome {
                ctx.fail(&model, "recycle", e.context(format!("{kind} recycle")));
                continue;
            }
            ctx.save()?;
        }
    }
    Ok(())
}

async fn one(ctx: &mut Ctx, model: &str, kind: &str, server: &crate::run::servers::Server) -> anyhow::Result<()> {
    let admin = server
        .admin
        .clone()
        .ok_or_else(|| anyhow!("{model} printed no admin URL"))?;
    let http = ctx.http.clone();
    server.wait_serving(&http).await?;
    if let Some(phase) = idle_phase(kind) {
        wait_for_phase(&http, &admin, phase).await?;
    }
    let plan = open(
        load_plan(&server.url, Method::GET, "/ping", None)?,
        CONNECTIONS,
        ctx.plan.recycle_rate,
        ctx.plan.recycle_duration,
        Duration::ZERO,
    );
    let probe = CpuProbe::start(&server.pids());
    let t0 = Instant::now();
    let load = tokio::spawn(async move { crate::load::run(&plan, None).await });
    let event_ms = if idle_phase(kind).is_some() {
        0
    } else {
        tokio::time::sleep_until((t0 + ctx.plan.recycle_at).into()).await;
        let at = t0.elapsed().as_millis() as u64;
        trigger(&http, &admin, kind).await?;
        at
    };
    let report = load.await.context("the load task failed")??;
    let processes = probe.finish();
    let admin_status = http.get_json(&format!("{admin}/status")).await.ok();
    let figures = crate::run::results::LoadFigures::from_report(&report, true);
    let analysis = analyze_recycle(&figures.timeline, event_ms);
    let mut entry = load_entry(model, "recycle", kind, 1, &report, true, processes);
    entry.recycle = Some(RecycleFigures {
        kind: kind.into(),
        event_ms,
        failed: figures.requests.errors,
        analysis,
        admin_status,
    });
    ctx.push(entry);
    Ok(())
}

/// Recycles now: `POST /recycle` (the policy decides overlapped or
/// stop-start), or SIGKILL of the app process for a crash.
pub async fn trigger(http: &Http, admin: &str, kind: &str) -> anyhow::Result<()> {
    if kind == "crash" {
        let status = http.get_json(&format!("{admin}/status")).await?;
        let pid = status["pids"]["app"]
            .as_u64()
            .ok_or_else(|| anyhow!("the admin status names no app pid to kill: {status}"))?;
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).with_context(|| format!("cannot SIGKILL app pid {pid}"))?;
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

/// Polls the admin status until the app reaches `phase` (an idle action).
pub async fn wait_for_phase(http: &Http, admin: &str, phase: &str) -> anyhow::Result<()> {
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
