//! `--journal`: what a client was told is stored survives SIGKILL, accepted
//! tasks finish exactly once after a crash, a damaged journal stops startup
//! and is left alone, and every model hands its journal over across recycles
//! and restarts.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, hostlab, wait_gone};
use hostlab_hosts::Model;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> Value {
    client().get(url).send().await.unwrap().json().await.unwrap()
}

/// Titles of the stored books, with how often each appears, and their ids.
async fn books(server: &Server) -> HashMap<String, Vec<u64>> {
    let list = get_json(&server.url("/books")).await;
    let mut by_title: HashMap<String, Vec<u64>> = HashMap::new();
    for b in list.as_array().unwrap() {
        by_title
            .entry(b["title"].as_str().unwrap().to_owned())
            .or_default()
            .push(b["id"].as_u64().unwrap());
    }
    by_title
}

fn journal_arg(dir: &Path) -> String {
    dir.join("journal.db").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_retries_never_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_arg(dir.path());
    let server = Server::start("edge", &["--journal", &journal, "--snapshot-every", "50"]);
    // The first answer comes after the workload's start-up work (its cold start).
    assert_eq!(reqwest::get(server.url("/ping")).await.unwrap().status(), 200);

    // Four writers add books with idempotency keys until the server dies.
    let mut writers = Vec::new();
    for w in 0..4 {
        let url = server.url("/books");
        writers.push(tokio::spawn(async move {
            let c = client();
            let mut tried = Vec::new();
            for i in 0..5_000 {
                let key = format!("w{w}-{i}");
                let body = json!({"title": key, "author": "A"});
                tried.push(key.clone());
                match c.post(&url).header("idempotency-key", &key).json(&body).send().await {
                    Ok(r) if r.status() == 201 => {
                        let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
                        tried.pop();
                        tried.push(format!("{key}={id}"));
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => break,
                }
            }
            tried
        }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let pid = server.pid;
    drop(server); // SIGKILL, in the middle of the writes
    assert!(wait_gone(pid).await);
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut unacked = Vec::new();
    for w in writers {
        for entry in w.await.unwrap() {
            match entry.split_once('=') {
                Some((key, id)) => drop(acked.insert(key.to_owned(), id.parse().unwrap())),
                None => unacked.push(entry),
            }
        }
    }
    assert!(acked.len() > 20, "the writers got going ({} acknowledged)", acked.len());

    let server = Server::start("edge", &["--journal", &journal, "--snapshot-every", "50"]);
    let stored = books(&server).await;
    for (title, id) in &acked {
        assert_eq!(
            stored.get(title),
            Some(&vec![*id]),
            "acknowledged book {title} is back, once"
        );
    }
    assert!(stored.values().all(|ids| ids.len() == 1), "no book is stored twice");
    let stats = get_json(&server.url("/stats")).await;
    assert!(
        stats["journal"]["recovery"]["events_replayed"].as_u64().unwrap() <= 50,
        "{stats}"
    );

    // Retrying every request with its key creates each missing book once and
    // replays the rest with the same id.
    let c = client();
    for key in acked.keys().chain(&unacked) {
        let r = c
            .post(server.url("/books"))
            .header("idempotency-key", key)
            .json(&json!({"title": key, "author": "A"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        match acked.get(key) {
            Some(first) => assert_eq!((status, id), (200, *first), "replay of {key}"),
            None => assert!(status == 200 || status == 201, "retry of {key}: {status}"),
        }
    }
    let stored = books(&server).await;
    assert_eq!(stored.len(), acked.len() + unacked.len());
    assert!(stored.values().all(|ids| ids.len() == 1), "no book is stored twice");
    server.stop();
}

fn task(id: &str, rows: usize) -> Value {
    let rows: Vec<Value> = (0..rows)
        .map(|i| {
            if i % 2 == 0 {
                json!({"account": "4000-100", "debit_cents": 10, "credit_cents": 0})
            } else {
                json!({"account": "5000-200", "debit_cents": 0, "credit_cents": 10})
            }
        })
        .collect();
    json!({"id": id, "kind": "validate", "rows": rows})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_tasks_finish_exactly_once_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_arg(dir.path());
    let server = Server::start("edge", &["--journal", &journal]);
    let c = client();
    let mut accepted = Vec::new();
    for i in 0..60 {
        let id = format!("ledger-{i}");
        let r = c
            .post(server.url("/tasks"))
            .header("prefer", "respond-async")
            .json(&task(&id, 5_000))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["location"], format!("/tasks/{id}").as_str());
        accepted.push(id);
    }
    let pid = server.pid;
    drop(server); // SIGKILL right after the last 202: some tasks have not run
    assert!(wait_gone(pid).await);

    let server = Server::start("edge", &["--journal", &journal]);
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &accepted {
        loop {
            let r = get_json(&server.url(&format!("/tasks/{id}"))).await;
            if r["status"] == "done" {
                assert_eq!(r["rows"], 5_000, "{id} ran on its rows");
                assert_eq!(r["balanced"], true);
                break;
            }
            assert!(Instant::now() < deadline, "task {id} did not finish: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let stats = get_json(&server.url("/stats")).await;
    assert_eq!(
        stats["tasks"]["done"],
        accepted.len(),
        "each accepted task completed once: {stats}"
    );
    let resumed = stats["journal"]["recovery"]["tasks_resumed"].as_u64().unwrap();
    eprintln!("{resumed} of {} tasks resumed after the crash", accepted.len());
    server.stop();
}

#[tokio::test]
async fn a_damaged_journal_stops_startup_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal_arg(dir.path());
    let server = Server::start("edge", &["--journal", &journal]);
    let c = client();
    for i in 0..5 {
        let r = c
            .post(server.url("/books"))
            .json(&json!({"title": format!("Damage me {i}"), "author": "A"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    server.stop();
    let ok = common::output(hostlab().args(["journal", "check", &journal]));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("books: 5"));

    let mut bytes = std::fs::read(&journal).unwrap();
    let at = bytes.windows(11).position(|w| w == b"Damage me 3").unwrap();
    bytes[at] = b'd';
    std::fs::write(&journal, &bytes).unwrap();

    let out = common::output(hostlab().args(["serve", "edge", "--listen", "127.0.0.1:0", "--journal", &journal]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no ready line");
    assert!(stderr.contains(&journal) && stderr.contains("checksum"), "{stderr}");
    assert!(stderr.contains("hostlab journal check"), "{stderr}");
    assert_eq!(std::fs::read(&journal).unwrap(), bytes, "the file is left as it was");

    let check = common::output(hostlab().args(["journal", "check", &journal]));
    assert_eq!(check.status.code(), Some(1));
    let repair = common::output(hostlab().args(["journal", "repair", &journal]));
    assert!(repair.status.success(), "{}", String::from_utf8_lossy(&repair.stderr));
    let server = Server::start("edge", &["--journal", &journal]);
    assert_eq!(books(&server).await.len(), 3, "the events before the damaged one");
    server.stop();
}

/// A front model with a journal, an admin endpoint and its app running.
fn start_front(model: &str, journal: &str) -> Server {
    Server::start(
        model,
        &[
            "--journal",
            journal,
            "--admin",
            "127.0.0.1:0",
            "--start-mode",
            "always-running",
        ],
    )
}

async fn add_books(server: &Server, n: usize) {
    let c = client();
    for i in 0..n {
        let r = c
            .post(server.url("/books"))
            .json(&json!({"title": format!("Kept {i}"), "author": "A"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
}

async fn wait_for(admin: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = get_json(&format!("{admin}/status")).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Overlapped recycles of proxy and inprocess: the new process waits for the
/// old one to let go of the journal; requests during the switch are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapped_recycles_hand_the_journal_over_without_failures() {
    // The models whose recycle moves the actors (and so their journal).
    for model in Model::top_level().filter(|m| m.recycles() && m.hosts_own_actors()) {
        let model = model.name();
        let dir = tempfile::tempdir().unwrap();
        let journal = journal_arg(dir.path());
        let server = start_front(model, &journal);
        let admin = server.admin_url();
        add_books(&server, 10).await;
        let url = server.url("/books");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let load = tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            let mut sent = 0;
            // Until both recycles are done (bounded).
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 50_000 {
                sent += 1;
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (sent, failures)
        });
        for n in 1..=2u64 {
            let r = client().post(format!("{admin}/recycle")).send().await.unwrap();
            assert!(r.status().is_success(), "{model}: recycle {n}: {}", r.status());
            wait_for(&admin, "recycle", |s| s["recycles"] == n).await;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let (sent, failures) = load.await.unwrap();
        eprintln!("{model}: {sent} requests during 2 recycles");
        assert!(
            failures.is_empty(),
            "{model}: {} failures: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        assert_eq!(books(&server).await.len(), 10, "{model}: books kept");
        add_books(&server, 1).await;
        server.stop();
    }
}

/// A crashed app, worker or actor service comes back with its books.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_state_holders_recover_their_books() {
    for model in Model::top_level().filter(|m| m.recycles()) {
        // The admin status's `pids` key of the process holding the state.
        let holder = if model.hosts_own_actors() { "app" } else { "actors" };
        let model = model.name();
        let dir = tempfile::tempdir().unwrap();
        let journal = journal_arg(dir.path());
        let server = start_front(model, &journal);
        let admin = server.admin_url();
        add_books(&server, 7).await;
        let status = get_json(&format!("{admin}/status")).await;
        let pid = status["pids"][holder]
            .as_u64()
            .unwrap_or_else(|| panic!("{model}: pids.{holder} in {status}"));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        assert!(wait_gone(pid as u32).await);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client().get(server.url("/books")).send().await
                && r.status() == 200
            {
                let n = r.json::<Value>().await.unwrap().as_array().unwrap().len();
                assert_eq!(n, 7, "{model}: books after the {holder} crashed");
                break;
            }
            assert!(Instant::now() < deadline, "{model} did not recover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.stop();
    }
}
