//! Routing (claim C6): `pool:10` (consistent hash of the task id to 10
//! actors) against `per-task` (one actor per task id) with 10,000 distinct
//! task ids: live actors, memory and task throughput.

use hostlab_hosts::{Model, Role};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::anyhow;

use super::task_body;
use crate::run::results::{Entry, RoutingFigures};
use crate::run::servers::{CpuProbe, Http};
use crate::run::{Ctx, Measurement};

pub(crate) const MODES: [&str; 2] = ["pool:10", "per-task"];
/// Rows in each task: small, so the run measures routing, not validation.
const ROWS: usize = 10;
/// Concurrent callers.
const CONCURRENCY: usize = 32;

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    // Routing is a property of the workload, the same in every model: one
    // model suffices, edge where it runs (no front in the way).
    // Among ours that host their actors: no front first, then one without
    // a forwarding hop (inprocess before proxy).
    let candidates = ctx
        .plan
        .models_where(|m| m.serves_workload() && !m.needs_nginx() && m.hosts_own_actors());
    let Some(model) = candidates
        .iter()
        .filter_map(|m| m.parse::<Model>().ok())
        .min_by_key(|m| (m.has_policy(), m.roles().contains(&Role::App)))
        .map(Model::name)
    else {
        ctx.skip(
            None,
            "routing",
            "none of edge, edge-actix, inprocess, proxy was selected".into(),
        );
        return Ok(());
    };
    ctx.skip_models_outside(
        "routing",
        |m| m.name() == model,
        &format!("routing is a property of the workload, the same in every model: measured once, on {model}"),
    );
    for mode in MODES {
        let flags = ["--routing".to_string(), mode.to_string()];
        let measurement = Measurement::new("routing", model).label(mode);
        ctx.with_server(measurement, &flags, async |ctx, server| {
            let entry = one(ctx, model, mode, server).await?;
            ctx.push(entry);
            anyhow::Ok(())
        })
        .await?;
    }
    Ok(())
}

async fn one(ctx: &Ctx, model: &str, mode: &str, server: &crate::run::servers::Server) -> anyhow::Result<Entry> {
    let http = ctx.http.clone();
    let stats_url = format!("{}/stats", server.url);
    // `null` when the server cannot read its memory: kept as None, never 0.
    let rss_before = http.get_json(&stats_url).await?["rss_bytes"].as_u64();
    let n = ctx.plan.routing_tasks;
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let first_failure: Arc<Mutex<Option<String>>> = Arc::default();
    let url = format!("{}/tasks", server.url);
    let probe = CpuProbe::start(&server.pids());
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (http, next, ok, url): (Http, _, _, String) = (http.clone(), next.clone(), ok.clone(), url.clone());
        let first_failure = first_failure.clone();
        callers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                // A failed task is counted (C6 compares modes that answered
                // every task), not a reason to drop the measurement.
                let failure = match http.post_json(&url, &task_body(&format!("task-{i}"), ROWS)).await {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok((status, body)) => format!("POST /tasks answered {status}: {body}"),
                    Err(e) => format!("POST /tasks failed: {e:#}"),
                };
                first_failure.lock().unwrap().get_or_insert(failure);
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let processes = probe.finish();
    let stats = http.get_json(&stats_url).await?;
    let live = stats["actors"]["live"]
        .as_u64()
        .ok_or_else(|| anyhow!("GET /stats has no actors.live: {stats}"))?;
    let tasks_ok = ok.load(Ordering::Relaxed);
    let first_failure = first_failure.lock().unwrap().take();
    Ok(Entry {
        model: model.into(),
        scenario: "routing".into(),
        variant: mode.into(),
        repeat: 1,
        processes,
        routing: Some(RoutingFigures {
            routing: mode.into(),
            tasks_sent: n,
            tasks_ok,
            tasks_failed: n - tasks_ok,
            first_failure,
            distinct_ids: n,
            rows_per_task: ROWS as u64,
            concurrency: CONCURRENCY,
            tasks_per_sec: tasks_ok as f64 / elapsed.max(1e-9),
            live_actors: live,
            rss_before_bytes: rss_before,
            rss_after_bytes: stats["rss_bytes"].as_u64(),
        }),
        ..Entry::default()
    })
}
