//! The journal's costs (docs/journal.md): durable append with one writer
//! waiting for each commit, and with 64 concurrent writers sharing commits
//! (group commit), in both durability modes; and recovery (open, check,
//! replay) of 100,000 events with and without a snapshot, whose elements/s is
//! the replay rate. Run one group with `cargo bench --bench journal -- append`.
//!
//! The files live in a temporary folder on the disk `TMPDIR` points at: fsync
//! costs depend on that disk.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hostlab_workloads::books::Book;
use hostlab_workloads::journal::{Durability, Event, Journal, JournalConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn event(id: u64) -> Event {
    Event::BookAdded {
        book: Book {
            id,
            title: format!("Book {id}"),
            author: "Ursula K. Le Guin".into(),
            year: Some(1969),
        },
        idempotency_key: Some(format!("key-{id}")),
    }
}

fn open(path: &Path, durability: Durability, snapshot_every: u64) -> Journal {
    let mut config = JournalConfig::new(path);
    config.durability = durability;
    config.snapshot_every = snapshot_every;
    config.compact = false;
    Journal::open(&config).expect("open journal").0
}

/// Append `n` events one after another, each waiting for its commit.
async fn append_waiting(journal: &Journal, first: u64, n: u64) {
    for id in first..first + n {
        let (tx, rx) = tokio::sync::oneshot::channel();
        journal.append(event(id), move |r| drop(tx.send(r))).await;
        rx.await.unwrap().unwrap();
    }
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("journal/append");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    for (durability, name) in [(Durability::Full, "full"), (Durability::Normal, "normal")] {
        for writers in [1u64, 64] {
            let id = BenchmarkId::new(name, format!("{writers} writers"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let dir = tempfile::tempdir().unwrap();
                    let journal = open(&dir.path().join("bench.db"), durability, 0);
                    let per_writer = iters.div_ceil(writers);
                    let started = Instant::now();
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..writers {
                            let journal = journal.clone();
                            tasks.push(tokio::spawn(async move {
                                append_waiting(&journal, w * per_writer + 1, per_writer).await;
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    let took = started.elapsed();
                    rt.block_on(journal.close());
                    // Time per event (criterion divides by iters).
                    took.mul_f64(iters as f64 / (per_writer * writers) as f64)
                })
            });
        }
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    const EVENTS: u64 = 100_000;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("journal/recovery");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    for snapshot in [false, true] {
        let name = if snapshot {
            "100k events, snapshot"
        } else {
            "100k events"
        };
        let path = dir.path().join(format!("{}.db", if snapshot { "snap" } else { "log" }));
        let journal = open(&path, Durability::Normal, if snapshot { EVENTS } else { 0 });
        rt.block_on(async {
            journal.append_all((1..=EVENTS).map(event)).await.unwrap();
            journal.close().await;
        });
        let config = JournalConfig::new(&path);
        group.bench_function(name, |b| {
            b.iter(|| {
                let (journal, recovered) = Journal::open(&config).unwrap();
                assert_eq!(recovered.state.books.len() as u64, EVENTS);
                rt.block_on(journal.close());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append, recovery);
criterion_main!(benches);
