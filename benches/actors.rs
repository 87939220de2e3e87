//! In-process costs of the workload: the consistent-hash routing decision,
//! task validation at 100 and 5,000 rows, an actor call round trip, and a
//! request through the router with no socket (the floor every hosting model
//! adds its own cost to). Run one group with `cargo bench --bench actors -- routing`.

use std::hint::black_box;

use axum::body::Body;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hostlab_workloads::tasks::{Row, validate_rows};
use hostlab_workloads::{Workload, WorkloadConfig, app, hashing};
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

fn router_in_process(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
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

criterion_group!(benches, routing, validation, router_in_process);
criterion_main!(benches);
