//! State ("Where are all my books?"): add books, recycle each way, count the
//! books afterwards, per model. Without a journal the state is in memory
//! only; `--journal` is not built yet, so runs with it are listed as not
//! measured.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use super::recycle::{KINDS, flags, trigger, wait_for_phase};
use crate::run::Ctx;
use crate::run::results::{Entry, StateFigures};
use crate::run::servers::{Http, Server, book_count, seed_books};

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let models = ctx
        .plan
        .models_among(&["edge", "edge-actix", "proxy", "inprocess", "split"]);
    if models.is_empty() {
        ctx.skip(
            None,
            "state",
            "none of edge, edge-actix, proxy, inprocess, split was selected".into(),
        );
        return Ok(());
    }
    ctx.skip(
        None,
        "state",
        "with --journal: not measured, the journal is not built yet (state is in memory only)".into(),
    );
    for model in models {
        if model == "edge" || model == "edge-actix" {
            ctx.console.step("state", &model, "process restart");
            match restart(ctx, &model).await {
                Ok(entry) => ctx.push(entry),
                Err(e) => ctx.fail(&model, "state", e.context("process restart")),
            }
        } else {
            // The two overlapped kinds differ only in warm-up, which no book depends on.
            for (kind, kind_flags) in KINDS.iter().filter(|(k, _)| *k != "overlapped-no-warmup") {
                ctx.console.step("state", &model, kind);
                let server = match ctx.start(&model, &flags(kind_flags)).await {
                    Ok(server) => server,
                    Err(e) => {
                        ctx.fail(&model, "state", e.context(*kind));
                        continue;
                    }
                };
                let outcome = recycle(ctx, &server, kind).await;
                server.stop().await;
                match outcome {
                    Ok((before, after)) => ctx.push(entry(&model, kind, ctx.plan.books, before, after)),
                    Err(e) => ctx.fail(&model, "state", e.context(format!("{kind} recycle"))),
                }
            }
        }
        ctx.save()?;
    }
    Ok(())
}

fn entry(model: &str, kind: &str, added: u64, before: u64, after: u64) -> Entry {
    Entry {
        model: model.into(),
        scenario: "state".into(),
        variant: kind.into(),
        repeat: 1,
        state: Some(StateFigures {
            kind: kind.into(),
            journal: false,
            books_added: added,
            books_before: before,
            books_after: after,
        }),
        ..Entry::default()
    }
}

/// A model without a process manager: stop the process, start a new one.
async fn restart(ctx: &mut Ctx, model: &str) -> anyhow::Result<Entry> {
    let server = ctx.start(model, &[]).await?;
    let seeded = async {
        server.wait_serving(&ctx.http).await?;
        seed_books(&ctx.http, &server.url, ctx.plan.books).await?;
        book_count(&ctx.http, &server.url).await
    }
    .await;
    server.stop().await;
    let before = seeded?;
    let server = ctx.start(model, &[]).await?;
    let after = book_count(&ctx.http, &server.url).await;
    server.stop().await;
    Ok(entry(model, "process restart", ctx.plan.books, before, after?))
}

/// Seeds, recycles one way, waits until it is done, counts.
async fn recycle(ctx: &Ctx, server: &Server, kind: &str) -> anyhow::Result<(u64, u64)> {
    let http = &ctx.http;
    let admin = server.admin.clone().ok_or_else(|| anyhow!("no admin URL"))?;
    server.wait_serving(http).await?;
    seed_books(http, &server.url, ctx.plan.books).await?;
    let before = book_count(http, &server.url).await?;
    match kind {
        "idle-terminate" => wait_for_phase(http, &admin, "stopped").await?,
        "idle-suspend" => wait_for_phase(http, &admin, "suspended").await?,
        "crash" => {
            let old = app_pid(http, &admin).await?;
            trigger(http, &admin, kind).await?;
            wait_for_new_app(http, &admin, old).await?;
        }
        _ => trigger(http, &admin, kind).await?,
    }
    // A new connection: on inprocess a kept-alive connection belongs to the
    // worker that accepted it, and a suspended worker cannot be woken
    // through it (see docs/run.md); this scenario counts books, nothing else.
    let after = book_count(&Http::new(), &server.url).await?;
    Ok((before, after))
}

async fn app_pid(http: &Http, admin: &str) -> anyhow::Result<Option<u64>> {
    Ok(http.get_json(&format!("{admin}/status")).await?["pids"]["app"].as_u64())
}

/// Waits until the manager has restarted a crashed app (a new app pid).
async fn wait_for_new_app(http: &Http, admin: &str, old: Option<u64>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pid = app_pid(http, admin).await?;
        if pid.is_some() && pid != old {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the manager did not restart the crashed app within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
