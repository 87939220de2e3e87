//! Soak (opt-in, `--scenarios soak`; not in the default list, never in CI):
//! each overlapped model (proxy, inprocess, split) runs a small `POST /tasks`
//! at half its own measured capacity for the soak duration, with an
//! overlapped recycle (`POST /recycle`) every 30 s, while the RSS of every
//! server process (front, app or worker, actor service) is sampled. Pass:
//! no failed request and total RSS growth of at most 5 %. See docs/run.md.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::Method;

use super::recycle::{KINDS, flags, trigger};
use super::{closed, load_entry, load_plan, open, task_body};
use crate::run::Ctx;
use crate::run::results::{RssSample, SoakFigures, SoakProcess};
use crate::run::servers::Server;
use crate::run::stats::generator_limited;

/// The models with an overlapped recycle.
pub const MODELS: [&str; 3] = ["proxy", "inprocess", "split"];
/// The request: a 10-row task under one id. It crosses every hop of every
/// model (in `split` it reaches the actor service, which `/ping` does not),
/// and it stores nothing new (the task record is replaced), so memory that
/// grows is not data the API was asked to keep.
pub const VARIANT: &str = "POST /tasks (10 rows)";
const TASK_ID: &str = "soak";
const TASK_ROWS: usize = 10;
/// Share of the model's measured capacity the soak runs at.
pub const FRACTION: f64 = 0.5;
/// Most RSS growth, start to end, for a pass.
pub const RSS_GROWTH_LIMIT_PERCENT: f64 = 5.0;
/// Longest capacity probe.
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// Connections of the fixed-rate run: enough in flight for tens of
/// thousands of requests per second at a few milliseconds each.
const CONNECTIONS: usize = 64;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let models = ctx.plan.models_among(&MODELS);
    if models.is_empty() {
        ctx.skip(
            None,
            "soak",
            "no model with an overlapped recycle (proxy, inprocess, split) was selected".into(),
        );
        return Ok(());
    }
    let (_, overlapped_flags) = KINDS[0];
    for model in models {
        ctx.console.step("soak", &model, "starting");
        let server = match ctx.start(&model, &flags(overlapped_flags)).await {
            Ok(server) => server,
            Err(e) => {
                ctx.fail(&model, "soak", e);
                continue;
            }
        };
        let outcome = one(ctx, &model, &server).await;
        server.stop().await;
        if let Err(e) = outcome {
            ctx.fail(&model, "soak", e);
            continue;
        }
        ctx.save()?;
    }
    Ok(())
}

async fn one(ctx: &mut Ctx, model: &str, server: &Server) -> anyhow::Result<()> {
    let admin = server
        .admin
        .clone()
        .ok_or_else(|| anyhow!("{model} printed no admin URL"))?;
    let http = ctx.http.clone();
    server.wait_serving(&http).await?;
    let body = Bytes::from(serde_json::to_vec(&task_body(TASK_ID, TASK_ROWS))?);

    // Capacity for this very request on this model, closed loop (at most
    // 5 s: `--duration` also sets the soak's length).
    ctx.console.step("soak", model, "capacity probe");
    let probe = closed(
        load_plan(&server.url, Method::POST, "/tasks", Some(body.clone()))?,
        ctx.plan.connections,
        ctx.plan.duration.min(PROBE_LIMIT),
        ctx.plan.warmup,
    );
    let capacity_report = ctx.load(probe).await?;
    let capacity = capacity_report.measured.requests_per_sec;
    if capacity <= 0.0 {
        anyhow::bail!("{model} answered no {VARIANT} in the capacity probe, so there is no rate to soak at");
    }
    let capacity_limited = generator_limited(capacity_report.generator.cpu_percent, capacity_report.generator.cpus);
    ctx.push(load_entry(
        model,
        "soak",
        "capacity probe",
        1,
        &capacity_report,
        false,
        Vec::new(),
    ));

    let duration = ctx.plan.soak_duration;
    let every = ctx.plan.soak_recycle_every;
    let rate = (capacity * FRACTION).max(1.0);
    ctx.console.step(
        "soak",
        model,
        &format!("{rate:.0} req/s for {}", humantime::format_duration(duration)),
    );
    let mut plan = open(
        load_plan(&server.url, Method::POST, "/tasks", Some(body))?,
        CONNECTIONS,
        rate,
        duration,
        Duration::ZERO,
    );
    plan.interval = Duration::from_secs(1);
    let t0 = Instant::now();
    let load = tokio::spawn(async move { crate::load::run(&plan, None).await });

    // Recycle every `every` while the load runs, but not in the last half
    // interval; sample RSS just before each recycle and after the load, so
    // every sample sees an app that has run about `every` under load.
    let mut samples = Vec::new();
    let mut recycle_at_ms = Vec::new();
    let mut recycle_errors = Vec::new();
    let mut k = 1;
    while every * k + every / 2 <= duration {
        tokio::time::sleep_until((t0 + every * k).into()).await;
        samples.push(sample_rss(server, t0));
        recycle_at_ms.push(t0.elapsed().as_millis() as u64);
        if let Err(e) = trigger(&http, &admin, "overlapped").await {
            recycle_errors.push(format!("{e:#}"));
        }
        k += 1;
    }
    let report = load.await.context("the load task failed")??;
    samples.push(sample_rss(server, t0));
    let admin_status = http.get_json(&format!("{admin}/status")).await.ok();
    let recycles_seen = admin_status.as_ref().and_then(|s| s["recycles"].as_u64());

    let rss_start_bytes = samples.first().map_or(0, |s| s.total_bytes);
    let rss_end_bytes = samples.last().map_or(0, |s| s.total_bytes);
    let rss_growth_percent = growth_percent(rss_start_bytes, rss_end_bytes);
    let failed = report.measured.requests.errors;
    let (pass, verdict) = verdict(
        failed.total(),
        &failed.describe(),
        recycle_errors.len(),
        rss_growth_percent,
    );
    let mut entry = load_entry(model, "soak", VARIANT, 1, &report, true, Vec::new());
    entry.soak = Some(SoakFigures {
        capacity_per_sec: capacity,
        capacity_generator_limited: capacity_limited,
        fraction: FRACTION,
        rate_per_sec: rate,
        duration_s: duration.as_secs_f64(),
        recycle_every_s: every.as_secs_f64(),
        recycles: recycle_at_ms.len() as u64 - recycle_errors.len() as u64,
        recycles_reported: recycles_seen,
        recycle_at_ms,
        recycle_errors,
        failed,
        rss_start_bytes,
        rss_end_bytes,
        rss_growth_percent,
        rss_growth_limit_percent: RSS_GROWTH_LIMIT_PERCENT,
        rss_samples: samples,
        pass,
        verdict,
    });
    ctx.push(entry);
    Ok(())
}

/// RSS of every process of the model now, each with its role.
fn sample_rss(server: &Server, t0: Instant) -> RssSample {
    let processes: Vec<SoakProcess> = server
        .pids()
        .into_iter()
        .filter_map(|pid| {
            Some(SoakProcess {
                pid,
                role: role(pid)?,
                rss_bytes: hostlab_workloads::rss_bytes(pid)?,
            })
        })
        .collect();
    RssSample {
        t_ms: t0.elapsed().as_millis() as u64,
        total_bytes: processes.iter().map(|p| p.rss_bytes).sum(),
        processes,
    }
}

/// What a process is, from its command line `hostlab serve ROLE ...`:
/// the model's own name for the first process (the front or supervisor),
/// `app`, `worker`, `front` or `actors` for the parts it started.
fn role(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    args.find(|a| a == "serve")?;
    args.next()
}

/// Growth from `start` to `end` in percent of `start` (0 when `start` is 0).
pub fn growth_percent(start: u64, end: u64) -> f64 {
    if start == 0 {
        return 0.0;
    }
    (end as f64 - start as f64) / start as f64 * 100.0
}

/// Pass when no request failed, every recycle was accepted, and RSS grew at
/// most [`RSS_GROWTH_LIMIT_PERCENT`]; the verdict says which rule failed.
pub fn verdict(failed: u64, failed_classes: &str, recycle_errors: usize, rss_growth_percent: f64) -> (bool, String) {
    let mut why = Vec::new();
    if failed > 0 {
        why.push(format!("{failed} failed requests ({failed_classes})"));
    }
    if recycle_errors > 0 {
        why.push(format!("{recycle_errors} recycles refused"));
    }
    if rss_growth_percent > RSS_GROWTH_LIMIT_PERCENT {
        why.push(format!(
            "RSS grew {rss_growth_percent:+.1} % (limit {RSS_GROWTH_LIMIT_PERCENT} %)"
        ));
    }
    if why.is_empty() {
        (
            true,
            format!("pass: 0 failed, RSS {rss_growth_percent:+.1} % (limit {RSS_GROWTH_LIMIT_PERCENT} %)"),
        )
    } else {
        (false, format!("fail: {}", why.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_relative_to_the_start() {
        assert_eq!(growth_percent(100, 105), 5.0);
        assert_eq!(growth_percent(200, 100), -50.0);
        assert_eq!(growth_percent(0, 100), 0.0);
    }

    #[test]
    fn verdict_names_each_broken_rule() {
        assert!(verdict(0, "none", 0, 5.0).0, "5 % is within the limit");
        let (pass, text) = verdict(3, "3 5xx", 1, 7.5);
        assert!(!pass);
        assert!(
            text.contains("3 failed") && text.contains("1 recycles") && text.contains("+7.5 %"),
            "{text}"
        );
        assert!(verdict(0, "none", 0, -2.0).1.starts_with("pass"));
    }
}
