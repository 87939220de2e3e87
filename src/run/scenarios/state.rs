//! State ("Where are all my books?"): add books, recycle each way, count the
//! books afterwards, per model, without a journal (state in memory only,
//! claim C4) and with `--journal` (a fresh SQLite file per run in the output
//! folder's `journals/`, claim C7). The overlapped and stop-start recycles
//! also carry long tasks in flight, counted by [`super::inflight`].

use hostlab_hosts::{Model, Role};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use super::recycle::{KINDS, applies, crash_role, flags, trigger, wait_for_phase};
use super::{inflight, recovery};
use crate::run::results::{Entry, InflightFigures, StateFigures};
use crate::run::servers::{Http, PING_ONLY, Server, book_count, seed_books};
use crate::run::{Ctx, Measurement};

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    // Ours (nginx is not), serving the workload the books live in.
    let measured = |m: Model| m.serves_workload() && !m.needs_nginx();
    ctx.skip_models_outside("state", Model::serves_workload, PING_ONLY);
    let models = ctx.models_for(
        "state",
        measured,
        "nginx is the system's server in front of an app without a journal or a process manager of ours",
    );
    if models.is_empty() {
        return Ok(());
    }
    let journals = recovery::journal_dir(ctx)?;
    for model in models {
        for journal in [false, true] {
            let with = if journal { " + journal" } else { "" };
            // A fresh journal per run, kept in the output folder.
            let journal_flags = |kind: &str| -> Vec<String> {
                if !journal {
                    return Vec::new();
                }
                let path = journals.join(format!("state-{model}-{kind}.db"));
                recovery::remove_journal(&path);
                vec!["--journal".into(), path.display().to_string()]
            };
            if !model.parse().is_ok_and(Model::recycles) {
                let kind = "process restart";
                ctx.console.step("state", &model, &format!("{kind}{with}"));
                match restart(ctx, &model, &journal_flags("restart"), journal).await {
                    Ok(entry) => ctx.push(entry),
                    Err(e) => ctx.fail(&model, "state", e.context(format!("{kind}{with}"))),
                }
                ctx.save()?;
                continue;
            }
            // The two overlapped kinds differ only in warm-up, which no book depends on.
            // split's `actors-crash` kills the actor service, where its state lives.
            let wanted = ctx.plan.recycle_kinds.clone();
            for (kind, kind_flags) in KINDS
                .iter()
                .filter(|(k, _)| *k != "overlapped-no-warmup" && wanted.iter().any(|w| w == k) && applies(&model, k))
            {
                let mut args = flags(kind_flags);
                if journal {
                    // With a journal, warm-up may not read the state: the new
                    // process gets the journal only after the switch.
                    for a in args.iter_mut().filter(|a| a.contains("/books")) {
                        *a = "/ping,/healthz".into();
                    }
                }
                args.extend(journal_flags(kind));
                let measurement = Measurement::new("state", &model).label(format!("{kind}{with}"));
                // Overlapped and stop-start also carry tasks in flight
                // (same server, same recycle: the books do not mind).
                let tasks = inflight::KINDS.contains(kind) && ctx.plan.inflight_tasks > 0;
                ctx.with_server(measurement, &args, async |ctx, server| {
                    let (before, after, tasks) = recycle(ctx, server, &model, kind, journal, tasks).await?;
                    ctx.push(entry(&model, kind, journal, ctx.plan.books, before, after));
                    if let Some(figures) = tasks {
                        ctx.push(inflight_entry(&model, figures));
                    }
                    anyhow::Ok(())
                })
                .await?;
            }
        }
    }
    Ok(())
}

fn entry(model: &str, kind: &str, journal: bool, added: u64, before: u64, after: u64) -> Entry {
    Entry {
        model: model.into(),
        scenario: "state".into(),
        variant: if journal {
            format!("{kind} + journal")
        } else {
            kind.into()
        },
        repeat: 1,
        state: Some(StateFigures {
            kind: kind.into(),
            journal,
            books_added: added,
            books_before: before,
            books_after: after,
        }),
        ..Entry::default()
    }
}

/// Tasks in flight across one recycle: the variant `tasks in flight, KIND`
/// (`+ journal`).
fn inflight_entry(model: &str, figures: InflightFigures) -> Entry {
    let with = if figures.journal { " + journal" } else { "" };
    Entry {
        model: model.into(),
        scenario: "state".into(),
        variant: format!("tasks in flight, {}{with}", figures.kind),
        repeat: 1,
        inflight: Some(figures),
        ..Entry::default()
    }
}

/// A model without a process manager: stop the process, start a new one.
async fn restart(ctx: &mut Ctx, model: &str, extra: &[String], journal: bool) -> anyhow::Result<Entry> {
    let before = ctx
        .serving(model, extra, async |ctx, server| {
            seed_books(&ctx.http, &server.url, ctx.plan.books).await?;
            book_count(&ctx.http, &server.url).await
        })
        .await?;
    let after = ctx
        .serving(model, extra, async |ctx, server| {
            book_count(&ctx.http, &server.url).await
        })
        .await?;
    Ok(entry(model, "process restart", journal, ctx.plan.books, before, after))
}

/// Seeds (books, and with `tasks` long tasks right before the trigger),
/// recycles one way, waits until it is done, counts.
async fn recycle(
    ctx: &Ctx,
    server: &Server,
    model: &str,
    kind: &str,
    journal: bool,
    tasks: bool,
) -> anyhow::Result<(u64, u64, Option<InflightFigures>)> {
    let http = &ctx.http;
    let admin = server.admin.clone().ok_or_else(|| anyhow!("no admin URL"))?;
    seed_books(http, &server.url, ctx.plan.books).await?;
    let before = book_count(http, &server.url).await?;
    if tasks {
        let posting = inflight::Posting::start(http, &server.url, ctx.plan.inflight_tasks).await?;
        let at_recycle = posting.lead_in(http, &server.url).await?;
        let triggered = trigger(http, &admin, kind).await;
        let sent = posting.finish(at_recycle).await;
        triggered?;
        let after = book_count(&Http::new(), &server.url).await?;
        // A journal carries the done count across; split's actors outlive a front recycle.
        let spans = journal || model.parse().is_ok_and(|m: Model| m.roles().contains(&Role::Actors));
        let figures = inflight::count(&server.url, &sent, kind, journal, spans).await?;
        return Ok((before, after, Some(figures)));
    }
    match kind {
        "idle-terminate" => wait_for_phase(http, &admin, "stopped").await?,
        "idle-suspend" => wait_for_phase(http, &admin, "suspended").await?,
        "crash" | "actors-crash" => {
            let role = crash_role(kind).unwrap_or("app");
            let old = role_pid(http, &admin, role).await?;
            trigger(http, &admin, kind).await?;
            wait_for_new_pid(http, &admin, role, old).await?;
            if kind == "actors-crash" {
                // The fronts reconnect to a restarted actor service on their
                // own (answering 503 until then): count once they do.
                return Ok((before, count_when_answered(&server.url).await?, None));
            }
        }
        _ => trigger(http, &admin, kind).await?,
    }
    // A new connection: on inprocess a kept-alive connection belongs to the
    // worker that accepted it, and a suspended worker cannot be woken
    // through it (see docs/run.md); this scenario counts books, nothing else.
    let after = book_count(&Http::new(), &server.url).await?;
    Ok((before, after, None))
}

/// The book count once the server answers `GET /stats` again (at most 20 s).
async fn count_when_answered(url: &str) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match book_count(&Http::new(), url).await {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the fronts did not reach the restarted actor service within 20 s"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn role_pid(http: &Http, admin: &str, role: &str) -> anyhow::Result<Option<u64>> {
    Ok(http.get_json(&format!("{admin}/status")).await?["pids"][role].as_u64())
}

/// Waits until the manager has restarted a crashed process (a new pid of
/// the role: `app`, or split's `actors`).
async fn wait_for_new_pid(http: &Http, admin: &str, role: &str, old: Option<u64>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pid = role_pid(http, admin, role).await?;
        if pid.is_some() && pid != old {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the manager did not restart the crashed {role} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
