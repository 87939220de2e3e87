//! In-process costs of the workload: the consistent-hash routing decision,
//! task validation at 100 and 5,000 rows, an actor call round trip, task
//! dispatch under `pool:10` and `per-task` routing, and a request through the
//! router with no socket (the floor every hosting model adds its own cost
//! to). Run one group with `cargo bench --bench actors -- routing`; see
//! docs/benches.md.

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hostlab_workloads::ops::{Op, Reply};
use hostlab_workloads::tasks::{Row, TaskRequest, validate_rows};
use hostlab_workloads::{Routing, Workload, WorkloadConfig, app, hashing};
use tower::ServiceExt;

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            account: format!("{:04}-{:03}", 4000 + i % 7, i % 1000),
            debit_cents: if i % 2 == 0 { 1250 } else { 0 },
            credit_cents: if i % 2 == 0 { 0 } else { 1250 },
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let ids: Vec<String> = (0..1024).map(|i| format!("task-{i}")).collect();
    c.bench_function("routing/jump_hash_pool_10", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ids.len();
            hashing::actor_for(black_box(&ids[i]), 10)
        })
    });
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validation");
    for n in [100, 5_000] {
        let data = rows(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &data, |b, data| {
            b.iter(|| validate_rows(black_box(data)))
        });
    }
    group.finish();
}

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One ask of the book store through its bounded mailbox and back
/// (`GET /books/{id}` without HTTP): the cost every API call pays once.
fn actor_call(c: &mut Criterion) {
    let runtime = multi_thread_runtime();
    let workload = runtime.block_on(Workload::start(WorkloadConfig::new("bench"))).unwrap();
    c.bench_function("actor/call_round_trip", |b| {
        b.to_async(&runtime).iter(|| async {
            match workload.execute(Op::GetBook(black_box(1))).await {
                Reply::Book(book) => book,
                other => panic!("unexpected reply {other:?}"),
            }
        })
    });
    workload.stop();
}

/// Task ids the dispatch group cycles through: under `per-task` every one
/// keeps its own actor, so after the first round the figure is the steady
/// state (spawner lookup and forward), not actor spawning.
const DISPATCH_IDS: usize = 1_000;

/// A 10-row task through the actors (`POST /tasks` without HTTP) under each
/// routing: `pool:10` (jump hash straight to one of 10 actors) against
/// `per-task` (a spawner actor forwarding to one actor per id), claim C6.
fn dispatch(c: &mut Criterion) {
    let runtime = multi_thread_runtime();
    let mut group = c.benchmark_group("dispatch");
    for routing in [Routing::Pool(10), Routing::PerTask] {
        let mut config = WorkloadConfig::new("bench");
        config.routing = routing;
        let workload = runtime.block_on(Workload::start(config)).unwrap();
        let tasks: Vec<TaskRequest> = (0..DISPATCH_IDS)
            .map(|i| TaskRequest {
                id: format!("task-{i}"),
                kind: "ledger".into(),
                rows: rows(10),
            })
            .collect();
        let run = |task: TaskRequest| {
            let workload = workload.clone();
            async move {
                match workload.execute(Op::RunTask(task)).await {
                    Reply::Task(record) => record,
                    other => panic!("unexpected reply {other:?}"),
                }
            }
        };
        // Create every per-task actor before measuring.
        runtime.block_on(async {
            for task in &tasks {
                run(task.clone()).await;
            }
        });
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(routing), |b| {
            b.to_async(&runtime).iter_batched(
                || {
                    i = (i + 1) % tasks.len();
                    tasks[i].clone()
                },
                run,
                criterion::BatchSize::SmallInput,
            )
        });
        workload.stop();
    }
    group.finish();
}

fn router_in_process(c: &mut Criterion) {
    let runtime = multi_thread_runtime();
    let workload = runtime.block_on(Workload::start(WorkloadConfig::new("bench"))).unwrap();
    let router = app(workload.clone());
    runtime.block_on(add_books(&router, 100));
    let mut group = c.benchmark_group("router_in_process");
    // `/books` lists 100 books, as in the throughput scenario.
    for path in ["/ping", "/books"] {
        group.bench_function(path, |b| {
            b.to_async(&runtime).iter(|| async {
                let req = http::Request::get(path).body(Body::empty()).unwrap();
                let resp = router.clone().oneshot(req).await.unwrap();
                assert!(resp.status().is_success());
                axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap()
            })
        });
    }
    group.finish();
    workload.stop();
}

async fn add_books(router: &axum::Router, n: usize) {
    for i in 0..n {
        let body = format!(r#"{{"title":"Book {i}","author":"Author {i}","year":2000}}"#);
        let req = http::Request::post("/books")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 201);
    }
}

criterion_group! {
    name = benches;
    // Short phases keep the whole `cargo bench` reasonable on 2 cores.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = routing, validation, actor_call, dispatch, router_in_process
}
criterion_main!(benches);
