//! Recovery (claim C7): how fast a restarted process rebuilds its state from
//! the journal, with and without a snapshot, and whether tasks that were
//! accepted but unfinished when the process was SIGKILLed resume and finish
//! exactly once. Measured on `edge`: every model runs the same journal code
//! in the process that holds the actors (the state scenario covers them all).

use hostlab_hosts::Model;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use hostlab_workloads::books::Book;
use hostlab_workloads::journal::{Durability, Event, Journal, JournalConfig};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::run::Ctx;
use crate::run::results::{Entry, RecoveryFigures};

/// The one model measured: every model runs the same journal code.
const EDGE: Model = Model::Edge;
use crate::run::servers::Server;

pub(crate) async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    if !ctx.plan.has_model(EDGE.name()) {
        ctx.skip(None, "recovery", "needs the edge model, which was not selected".into());
        return Ok(());
    }
    ctx.skip_models_outside(
        "recovery",
        |m| m == EDGE,
        "recovery is measured on edge only: every model runs the same journal code, and the state \
         scenario restarts each model on its journal",
    );
    let dir = journal_dir(ctx)?;
    for &events in &ctx.plan.recovery_events.clone() {
        for snapshot in [false, true] {
            let variant = format!("{events} events{}", if snapshot { " + snapshot" } else { "" });
            ctx.console.step("recovery", EDGE.name(), &variant);
            let path = dir.join(format!(
                "recovery-{events}{}.db",
                if snapshot { "-snapshot" } else { "" }
            ));
            let outcome = restart_from(ctx, &path, events, snapshot).await;
            // Large and rebuilt from nothing each run: not worth keeping.
            remove_journal(&path);
            match outcome {
                Ok(figures) => ctx.push(entry(&variant, figures)),
                Err(e) => ctx.fail(EDGE.name(), "recovery", e.context(variant)),
            }
        }
    }
    ctx.console.step("recovery", EDGE.name(), "tasks after SIGKILL");
    match resume_tasks(ctx, &dir.join("recovery-tasks.db")).await {
        Ok(figures) => ctx.push(entry("tasks after SIGKILL", figures)),
        Err(e) => ctx.fail(EDGE.name(), "recovery", e.context("tasks after SIGKILL")),
    }
    ctx.console
        .step("recovery", EDGE.name(), "unfinished tasks in the journal");
    match resume_unfinished(ctx, &dir.join("recovery-unfinished.db")).await {
        Ok(figures) => ctx.push(entry("unfinished tasks in the journal", figures)),
        Err(e) => ctx.fail(EDGE.name(), "recovery", e.context("unfinished tasks in the journal")),
    }
    ctx.save()
}

/// The run's journals live in its output folder.
pub(crate) fn journal_dir(ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let dir = ctx.plan.out.join("journals");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(std::path::absolute(dir)?)
}

/// Delete a journal and its side files (a fresh start for the next use).
pub(crate) fn remove_journal(path: &Path) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn entry(variant: &str, figures: RecoveryFigures) -> Entry {
    Entry {
        model: EDGE.name().into(),
        scenario: "recovery".into(),
        variant: variant.into(),
        repeat: 1,
        startup_ms: Some(figures.startup_ms),
        recovery: Some(figures),
        ..Entry::default()
    }
}

/// Write `events` BookAdded events (through the journal's own writer), then
/// start `serve edge` on the file and read how it recovered.
async fn restart_from(ctx: &mut Ctx, path: &Path, events: u64, snapshot: bool) -> anyhow::Result<RecoveryFigures> {
    remove_journal(path);
    let mut config = JournalConfig::new(path);
    // Writing the test data is not what is measured: commit it fast.
    config.durability = Durability::Normal;
    config.snapshot_every = if snapshot { events } else { 0 };
    config.compact = false;
    let open = config.clone();
    let (journal, _) = tokio::task::spawn_blocking(move || Journal::open(&open)).await??;
    let books = (1..=events).map(|id| Event::BookAdded {
        book: Book {
            id,
            title: format!("Recovered book {id}"),
            author: "hostlab".into(),
            year: Some(2000),
        },
        idempotency_key: Some(format!("key-{id}")),
    });
    journal.append_all(books).await.map_err(|e| anyhow!("{e}"))?;
    journal.close().await;

    let (stats, startup_ms) = ctx
        .serving(EDGE.name(), &journal_flags(path), async |ctx, server| {
            let stats = ctx.http.get_json(&format!("{}/stats", server.url)).await?;
            anyhow::Ok((stats, server.start_to_ready.as_secs_f64() * 1e3))
        })
        .await?;
    let recovery = &stats["journal"]["recovery"];
    let recovery_ms = recovery["ms"].as_f64().unwrap_or(0.0);
    let events_replayed = recovery["events_replayed"].as_u64().unwrap_or(0);
    Ok(RecoveryFigures {
        events,
        snapshot,
        synthetic: true,
        startup_ms,
        recovery_ms,
        events_replayed,
        replay_events_per_sec: if events_replayed > 0 && recovery_ms > 0.0 {
            events_replayed as f64 / (recovery_ms / 1e3)
        } else {
            0.0
        },
        books_expected: events,
        books_recovered: stats["books"].as_u64().unwrap_or(0),
        ..RecoveryFigures::default()
    })
}

/// `serve edge` on the journal at `path`, never snapshotting on its own.
fn journal_flags(path: &Path) -> Vec<String> {
    let path = path.display().to_string();
    vec!["--journal".into(), path, "--snapshot-every".into(), "0".into()]
}

/// Polls `GET /stats` every `every` until `done` tasks are done (at most
/// 60 s), then lets anything left finish, so that a task run twice would
/// show: the final stats, and when the count was first reached.
async fn stats_when_done(ctx: &Ctx, server: &Server, done: u64, every: Duration) -> anyhow::Result<(Value, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("{}/stats", server.url);
    loop {
        let stats = ctx.http.get_json(&url).await?;
        if stats["tasks"]["done"].as_u64().unwrap_or(0) >= done || Instant::now() > deadline {
            let reached = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok((ctx.http.get_json(&url).await?, reached));
        }
        tokio::time::sleep(every).await;
    }
}

fn task(id: &str) -> Value {
    let rows: Vec<Value> = (0..5_000)
        .map(|i| {
            if i % 2 == 0 {
                json!({"account": "4000-100", "debit_cents": 125, "credit_cents": 0})
            } else {
                json!({"account": "5000-200", "debit_cents": 0, "credit_cents": 125})
            }
        })
        .collect();
    json!({"id": id, "kind": "validate", "rows": rows})
}

/// A journal as a crash between acceptance and completion leaves it: tasks
/// accepted (journaled, 202 sent) and none completed. A task here is only
/// unfinished while its actor is busy, and validation is quick, so a real
/// SIGKILL rarely catches one (see [`resume_tasks`]); this writes that state
/// with the journal's own writer, starts `serve edge` on it and waits until
/// every task is done: all must be resumed, and each must finish once.
async fn resume_unfinished(ctx: &mut Ctx, path: &Path) -> anyhow::Result<RecoveryFigures> {
    remove_journal(path);
    let tasks = ctx.plan.recovery_tasks;
    let mut config = JournalConfig::new(path);
    config.durability = Durability::Normal;
    let open = config.clone();
    let (journal, _) = tokio::task::spawn_blocking(move || Journal::open(&open)).await??;
    let mut accepted = Vec::new();
    for i in 0..tasks {
        let task: hostlab_workloads::tasks::TaskRequest = serde_json::from_value(task(&format!("unfinished-{i}")))?;
        accepted.push(Event::TaskAccepted { task });
    }
    journal.append_all(accepted).await.map_err(|e| anyhow!("{e}"))?;
    journal.close().await;

    let started = Instant::now();
    let outcome = ctx
        .serving(EDGE.name(), &journal_flags(path), async |ctx, server| {
            let startup_ms = server.start_to_ready.as_secs_f64() * 1e3;
            let (stats, reached) = stats_when_done(ctx, server, tasks, Duration::from_millis(10)).await?;
            let all_done_ms = reached.duration_since(started).as_secs_f64() * 1e3;
            anyhow::Ok((stats, all_done_ms, startup_ms))
        })
        .await;
    remove_journal(path);
    let (stats, all_done_ms, startup_ms) = outcome?;
    let recovery = &stats["journal"]["recovery"];
    Ok(RecoveryFigures {
        events: tasks,
        synthetic: true,
        startup_ms,
        recovery_ms: recovery["ms"].as_f64().unwrap_or(0.0),
        events_replayed: recovery["events_replayed"].as_u64().unwrap_or(0),
        tasks_accepted: tasks,
        tasks_resumed: recovery["tasks_resumed"].as_u64().unwrap_or(0),
        tasks_done: stats["tasks"]["done"].as_u64().unwrap_or(0),
        all_done_ms: Some(all_done_ms),
        ..RecoveryFigures::default()
    })
}

/// Accept tasks (202), SIGKILL the process right after the last one, start
/// it again on the same journal and wait until every accepted task is done.
async fn resume_tasks(ctx: &mut Ctx, path: &Path) -> anyhow::Result<RecoveryFigures> {
    remove_journal(path);
    let accepted = ctx.plan.recovery_tasks;
    ctx.serving(EDGE.name(), &journal_flags(path), async |ctx, server| {
        // 16 clients at once, so tasks queue up behind each other and some
        // are still unfinished when the process is killed.
        let mut senders = tokio::task::JoinSet::new();
        for client in 0..16 {
            let (http, url) = (ctx.http.clone(), format!("{}/tasks", server.url));
            senders.spawn(async move {
                for i in (client..accepted).step_by(16) {
                    let body = task(&format!("resume-{i}"));
                    let (status, answer) = http
                        .request_with(http::Method::POST, &url, Some(&body), &[("prefer", "respond-async")])
                        .await?;
                    if status != 202 {
                        bail!(
                            "POST /tasks (respond-async) answered {status}: {}",
                            String::from_utf8_lossy(&answer)
                        );
                    }
                }
                Ok(())
            });
        }
        let sent: anyhow::Result<()> = async {
            while let Some(done) = senders.join_next().await {
                done??;
            }
            Ok(())
        }
        .await;
        if let Some(&pid) = server.pids().first() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        sent
    })
    .await?;

    let outcome = ctx
        .serving(EDGE.name(), &journal_flags(path), async |ctx, server| {
            let startup_ms = server.start_to_ready.as_secs_f64() * 1e3;
            let (stats, _) = stats_when_done(ctx, server, accepted, Duration::from_millis(50)).await?;
            anyhow::Ok((stats, startup_ms))
        })
        .await;
    remove_journal(path);
    let (stats, startup_ms) = outcome?;
    let recovery = &stats["journal"]["recovery"];
    Ok(RecoveryFigures {
        events: recovery["events_replayed"].as_u64().unwrap_or(0),
        startup_ms,
        recovery_ms: recovery["ms"].as_f64().unwrap_or(0.0),
        events_replayed: recovery["events_replayed"].as_u64().unwrap_or(0),
        tasks_accepted: accepted,
        tasks_resumed: recovery["tasks_resumed"].as_u64().unwrap_or(0),
        tasks_done: stats["tasks"]["done"].as_u64().unwrap_or(0),
        ..RecoveryFigures::default()
    })
}
