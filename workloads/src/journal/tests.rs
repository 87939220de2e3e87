//! The journal's guarantees, checked on real files: what was acknowledged
//! is recovered, snapshots change nothing, damage is reported and left alone,
//! unfinished tasks resume once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::books::Book;
use crate::ops::{Op, Reply};
use crate::tasks::{Row, TaskRecord, TaskRequest, TaskStatus, Validation};
use crate::{Workload, WorkloadConfig};

fn book(id: u64) -> Book {
    Book {
        id,
        title: format!("title {id}"),
        author: "author".into(),
        year: Some(2000),
    }
}

fn task(id: &str) -> TaskRequest {
    TaskRequest {
        id: id.into(),
        kind: "validate".into(),
        rows: vec![
            Row {
                account: "4000-100".into(),
                debit_cents: 250,
                credit_cents: 0,
            },
            Row {
                account: "5000-100".into(),
                debit_cents: 0,
                credit_cents: 250,
            },
        ],
    }
}

fn done(id: &str) -> TaskRecord {
    TaskRecord {
        id: id.into(),
        kind: "validate".into(),
        status: TaskStatus::Done,
        actor: 0,
        validation: Validation::default(),
    }
}

/// A mix of every event kind, deterministic.
fn events(n: u64) -> Vec<Event> {
    (1..=n)
        .map(|i| match i % 5 {
            0 => Event::BookDeleted { id: i - 3 },
            1 => Event::BookAdded {
                book: book(i),
                idempotency_key: Some(format!("key-{i}")),
            },
            2 => Event::BookAdded {
                book: book(i),
                idempotency_key: None,
            },
            3 => Event::TaskAccepted {
                task: task(&format!("t{}", i % 17)),
            },
            _ => Event::TaskCompleted {
                record: done(&format!("t{}", (i + 10) % 17)),
            },
        })
        .collect()
}

fn config(dir: &Path, snapshot_every: u64, compact: bool) -> JournalConfig {
    let mut c = JournalConfig::new(dir.join("journal.db"));
    c.snapshot_every = snapshot_every;
    c.compact = compact;
    c
}

/// Append every event and wait until they are durable.
async fn append_all(journal: &Journal, events: Vec<Event>) {
    journal.append_all(events).await.unwrap();
}

async fn open(config: &JournalConfig) -> Result<(Journal, Recovered), JournalError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || Journal::open(&config))
        .await
        .unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn recovery_from_snapshot_plus_tail_equals_the_full_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 7, false);
    let (journal, _) = open(&cfg).await.unwrap();
    append_all(&journal, events(200)).await;
    assert!(journal.stats().snapshots > 0);
    journal.close().await;

    let (journal, recovered) = open(&cfg).await.unwrap();
    journal.close().await;
    assert!(recovered.stats.snapshot_seq > 0, "recovery used a snapshot");
    assert!(recovered.stats.events_replayed < 200);
    let full = replay_full_log(&cfg.path, cfg.limits).unwrap();
    assert_eq!(recovered.state, full);
    // And both equal applying the events in memory.
    let mut expected = DurableState::new(cfg.limits);
    events(200).iter().for_each(|e| expected.apply(e));
    assert_eq!(full, expected);
}

#[tokio::test]
async fn compaction_keeps_the_state_and_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 10, true);
    let (journal, _) = open(&cfg).await.unwrap();
    append_all(&journal, events(55)).await;
    journal.close().await;
    let (journal, recovered) = open(&cfg).await.unwrap();
    append_all(&journal, events(3)).await;
    assert_eq!(journal.stats().last_seq, 58, "numbering continues after recovery");
    journal.close().await;
    let mut expected = DurableState::new(cfg.limits);
    events(55).iter().for_each(|e| expected.apply(e));
    assert_eq!(recovered.state, expected);
}

#[tokio::test]
async fn concurrent_appends_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(&config(dir.path(), 0, true)).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let journal = journal.clone();
        writers.push(tokio::spawn(async move {
            let batch = (0..50).map(|i| Event::BookAdded {
                book: book(w * 1000 + i),
                idempotency_key: None,
            });
            append_all(&journal, batch.collect()).await;
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let stats = journal.stats();
    assert_eq!(stats.events_appended, 400);
    assert!(
        stats.commits < 400,
        "group commit: {} commits for 400 events",
        stats.commits
    );
    journal.close().await;
}

#[tokio::test]
async fn a_second_process_is_locked_out_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0, true);
    let (journal, _) = open(&cfg).await.unwrap();
    // The lock file is per open file, so a second open in this process is
    // refused as another process's would be.
    assert!(matches!(open(&cfg).await, Err(JournalError::Locked { .. })));
    journal.close().await;
    let (journal, _) = open(&cfg).await.unwrap();
    journal.close().await;
}

/// Write a journal of `n` events, closed cleanly (WAL checkpointed).
async fn written(dir: &Path, n: u64) -> PathBuf {
    let cfg = config(dir, 0, true);
    let (journal, _) = open(&cfg).await.unwrap();
    append_all(&journal, events(n)).await;
    journal.close().await;
    cfg.path
}

fn damaged_detail(result: Result<(Journal, Recovered), JournalError>) -> String {
    match result {
        Err(e @ JournalError::Damaged { .. }) => e.to_string(),
        Err(e) => panic!("expected a damaged journal, got: {e}"),
        Ok(_) => panic!("a damaged journal opened"),
    }
}

#[tokio::test]
async fn a_changed_byte_is_found_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path(), 20).await;
    let mut bytes = read(&path);
    let at = bytes
        .windows(8)
        .position(|w| w == b"title 11")
        .expect("event text in the file");
    bytes[at + 6] = b'9';
    std::fs::write(&path, &bytes).unwrap();

    let message = damaged_detail(open(&config(dir.path(), 0, true)).await);
    assert!(message.contains("journal.db"), "{message}");
    assert!(message.contains("checksum"), "{message}");
    assert!(message.contains("hostlab journal repair"), "{message}");
    assert_eq!(read(&path), bytes, "the damaged file is left as it was");
    assert!(check(&path).is_err());

    // Repair keeps the events before the damaged one and the original beside it.
    let report = repair(&path).unwrap();
    assert!(Path::new(&report.damaged_copy).exists());
    assert!(report.last_seq >= 1 && report.last_seq < 20, "{report:?}");
    let (journal, recovered) = open(&config(dir.path(), 0, true)).await.unwrap();
    journal.close().await;
    let mut expected = DurableState::new(StateLimits::default());
    events(report.last_seq).iter().for_each(|e| expected.apply(e));
    assert_eq!(recovered.state, expected);
}

#[tokio::test]
async fn truncated_empty_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path(), 300).await;
    let bytes = read(&path);
    let cfg = config(dir.path(), 0, true);

    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    damaged_detail(open(&cfg).await);
    assert_eq!(read(&path).len(), bytes.len() / 2, "left as it was");

    std::fs::write(&path, b"").unwrap();
    let message = damaged_detail(open(&cfg).await);
    assert!(message.contains("not a hostlab journal"), "{message}");

    std::fs::write(&path, b"just some text, not a database at all.......................................................................................").unwrap();
    let message = damaged_detail(open(&cfg).await);
    assert!(message.contains("not an SQLite database"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_tasks_resume_and_complete_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0, true);
    let (journal, _) = open(&cfg).await.unwrap();
    // As if the process died after accepting three tasks and finishing one.
    append_all(
        &journal,
        vec![
            Event::TaskAccepted { task: task("a") },
            Event::TaskAccepted { task: task("b") },
            Event::TaskAccepted { task: task("c") },
            Event::TaskCompleted { record: done("b") },
        ],
    )
    .await;
    journal.close().await;

    let mut wc = WorkloadConfig::new("test");
    wc.journal = Some(cfg.clone());
    let workload = Workload::start(wc.clone()).await.unwrap();
    for id in ["a", "c"] {
        let mut status = None;
        for _ in 0..200 {
            if let Reply::TaskRecord(Some(r)) = workload.execute(Op::GetTask(id.into())).await {
                status = Some(r.status);
                if r.status == TaskStatus::Done {
                    assert!(r.validation.balanced, "the resumed task really ran");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(status, Some(TaskStatus::Done), "task {id}");
    }
    let Reply::Stats(stats) = workload.execute(Op::Stats).await else {
        panic!()
    };
    assert_eq!(stats.tasks_done, 3, "each task completed exactly once");
    assert_eq!(stats.journal.unwrap().recovery.tasks_resumed, 2);
    workload.shutdown().await;

    // Nothing is left to resume, and nothing runs twice.
    let workload = Workload::start(wc).await.unwrap();
    let Reply::Stats(stats) = workload.execute(Op::Stats).await else {
        panic!()
    };
    assert_eq!(stats.tasks_done, 3);
    assert_eq!(stats.journal.unwrap().recovery.tasks_resumed, 0);
    workload.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_books_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut wc = WorkloadConfig::new("test");
    wc.journal = Some(config(dir.path(), 3, true));
    let add = |title: &str, key: Option<&str>| Op::AddBook {
        book: crate::books::NewBook {
            title: title.into(),
            author: "a".into(),
            year: None,
        },
        idempotency_key: key.map(Into::into),
    };
    let workload = Workload::start(wc.clone()).await.unwrap();
    for i in 0..10 {
        assert!(matches!(
            workload.execute(add(&format!("b{i}"), Some(&format!("k{i}")))).await,
            Reply::Added(Ok(_))
        ));
    }
    assert!(matches!(
        workload.execute(Op::DeleteBook(4)).await,
        Reply::Deleted(true)
    ));
    workload.shutdown().await;

    let workload = Workload::start(wc).await.unwrap();
    let Reply::Books(books) = workload.execute(Op::ListBooks).await else {
        panic!()
    };
    assert_eq!(books.len(), 9);
    assert!(books.iter().all(|b| b.id != 4));
    // A key seen before the restart still replays, not duplicates.
    let Reply::Added(Ok(again)) = workload.execute(add("b2", Some("k2"))).await else {
        panic!()
    };
    assert!(again.replayed);
    assert_eq!(again.book.id, 3);
    // New ids continue after the highest ever used.
    let Reply::Added(Ok(new)) = workload.execute(add("new", None)).await else {
        panic!()
    };
    assert_eq!(new.book.id, 11);
    workload.shutdown().await;
}
