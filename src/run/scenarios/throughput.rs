//! Throughput: closed loop per model and endpoint (`GET /ping`, `GET /books`
//! with 100 books, `POST /tasks` with 5,000 rows), repeated; medians with
//! min/max and ratios to edge come from the summary.

use bytes::Bytes;
use http::Method;

use super::{closed, load_entry, load_plan, steady_flags, task_body};
use crate::run::Ctx;
use crate::run::servers::{CpuProbe, seed_books};

pub const PING: &str = "GET /ping";
pub const BOOKS: &str = "GET /books (100 books)";
pub const TASKS: &str = "POST /tasks (5,000 rows)";

/// Connections for the heavy `POST /tasks` runs: each request carries about
/// 350 KB, and more connections only queue on the task actor.
const TASK_CONNECTIONS: usize = 8;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let task = Bytes::from(serde_json::to_vec(&task_body("bench-5000", 5000))?);
    for model in ctx.plan.models.clone() {
        ctx.console.step("throughput", &model, "starting");
        let server = match ctx.start(&model, &steady_flags(&model)).await {
            Ok(server) => server,
            Err(e) => {
                ctx.fail(&model, "throughput", e);
                continue;
            }
        };
        let outcome = async {
            server.wait_serving(&ctx.http).await?;
            seed_books(&ctx.http, &server.url, ctx.plan.books).await?;
            let endpoints = [
                (PING, Method::GET, "/ping", None, ctx.plan.connections),
                (BOOKS, Method::GET, "/books", None, ctx.plan.connections),
                (TASKS, Method::POST, "/tasks", Some(task.clone()), TASK_CONNECTIONS),
            ];
            for (variant, method, path, body, connections) in endpoints {
                for repeat in 1..=ctx.plan.repeats {
                    ctx.console.step(
                        "throughput",
                        &model,
                        &format!("{variant} {repeat}/{}", ctx.plan.repeats),
                    );
                    let plan = closed(
                        load_plan(&server.url, method.clone(), path, body.clone())?,
                        connections,
                        ctx.plan.duration,
                        ctx.plan.warmup,
                    );
                    let probe = CpuProbe::start(&server.pids());
                    let report = ctx.load(plan).await?;
                    let processes = probe.finish();
                    if report.measured.requests.ok == 0 {
                        anyhow::bail!(
                            "{model}: no {variant} request succeeded ({} sent); the model is not answering",
                            report.measured.requests.total
                        );
                    }
                    let mut entry = load_entry(&model, "throughput", variant, repeat, &report, false, processes);
                    entry.startup_ms = Some(server.start_to_ready.as_secs_f64() * 1e3);
                    ctx.push(entry);
                }
            }
            anyhow::Ok(())
        }
        .await;
        server.stop().await;
        if let Err(e) = outcome {
            ctx.fail(&model, "throughput", e);
            continue;
        }
        ctx.save()?;
    }
    Ok(())
}
