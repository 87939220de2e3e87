//! The split model: state lives in the actor service, so front recycles
//! lose nothing; a lost actor service gives quick 503s and the front
//! recovers by itself; idempotent retries never create a second book.

mod common;

use std::time::{Duration, Instant};

use common::{Load, Server, wait_gone};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

async fn status(admin: &str) -> Value {
    reqwest::get(format!("{admin}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_recycles(admin: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(admin).await;
        if s["recycles"] == n {
            return s;
        }
        assert!(Instant::now() < deadline, "recycle {n} did not finish: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn books_and_tasks_survive_front_recycles_under_load() {
    let server = Server::start("split", &["--admin", "127.0.0.1:0", "--start-mode", "always-running"]);
    let admin = server.admin_url();
    let c = reqwest::Client::new();
    for i in 0..20 {
        let book = json!({"title": format!("Book {i}"), "author": "A"});
        assert_eq!(
            c.post(server.url("/books")).json(&book).send().await.unwrap().status(),
            201
        );
    }
    let task = json!({"id": "ledger-1", "kind": "validate", "rows": [{"account": "4000-100", "debit_cents": 5, "credit_cents": 0}]});
    assert_eq!(
        c.post(server.url("/tasks")).json(&task).send().await.unwrap().status(),
        200
    );
    let actors_pid = status(&admin).await["pids"]["actors"].as_u64().unwrap();

    // Load runs, with a stop flag, from before the first recycle until after
    // the last one completed, with successes in between.
    let load = Load::start(server.url("/books"), 2);
    load.wait_successes(50, "before the first recycle").await;
    for n in 1..=3 {
        server.signal(Signal::SIGHUP);
        let s = wait_recycles(&admin, n).await;
        assert_eq!(s["last_recycle"]["error"], Value::Null, "{s}");
        load.wait_successes(50, &format!("after recycle {n}")).await;
    }
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "front recycles failed requests: {:?}", seen.failures);

    let books: Vec<Value> = c.get(server.url("/books")).send().await.unwrap().json().await.unwrap();
    assert_eq!(books.len(), 20, "every book survived three front recycles");
    let polled: Value = c
        .get(server.url("/tasks/ledger-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["status"], "done", "task status survived: {polled}");
    let s = status(&admin).await;
    assert_eq!(
        s["pids"]["actors"].as_u64().unwrap(),
        actors_pid,
        "front recycles never touch the actor service"
    );
    let front = s["pids"]["app"].as_u64().unwrap() as u32;
    server.stop();
    assert!(wait_gone(actors_pid as u32).await, "the actor service stops with split");
    assert!(wait_gone(front).await, "the front stops with split");
}

#[tokio::test]
async fn an_idempotent_retry_across_a_front_recycle_makes_one_book() {
    let server = Server::start("split", &["--admin", "127.0.0.1:0", "--start-mode", "always-running"]);
    let admin = server.admin_url();
    let c = reqwest::Client::new();
    let post = || {
        c.post(server.url("/books"))
            .header("Idempotency-Key", "order-7")
            .json(&json!({"title": "Solaris", "author": "Stanisław Lem"}))
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    server.signal(Signal::SIGHUP);
    wait_recycles(&admin, 1).await;
    let retry = post().await.unwrap();
    assert_eq!(retry.status(), 200, "the retry is recognised after the recycle");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let books: Vec<Value> = c.get(server.url("/books")).send().await.unwrap().json().await.unwrap();
    assert_eq!(books.len(), 1, "one book, not two");
    server.stop();
}

#[tokio::test]
async fn a_lost_actor_service_gives_quick_503s_and_the_front_recovers() {
    let actors = Server::start("actors", &[]);
    let service = actors.url.trim_start_matches("http://").to_owned();
    let front = Server::start("front", &["--actors", &service]);
    let c = reqwest::Client::new();
    let book = json!({"title": "T", "author": "A"});
    assert_eq!(
        c.post(front.url("/books")).json(&book).send().await.unwrap().status(),
        201
    );

    actors.stop_with(Signal::SIGKILL);
    // Requests now fail fast with a clear code, never hang.
    let started = Instant::now();
    let mut saw_503 = false;
    for _ in 0..50 {
        let resp = tokio::time::timeout(Duration::from_secs(15), c.get(front.url("/books")).send())
            .await
            .expect("the front answers while the service is down")
            .unwrap();
        if resp.status() == 503 {
            assert_eq!(resp.headers()["retry-after"], "1");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "backend_unavailable", "{body}");
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_503, "a dead actor service is answered with 503");
    assert!(started.elapsed() < Duration::from_secs(15));

    // Start the service again on the same address: the front reconnects.
    let again = Server::start("actors", &["--listen", &service]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = c.get(front.url("/books")).send().await.unwrap();
        if resp.status() == 200 {
            let books: Vec<Value> = resp.json().await.unwrap();
            assert!(
                books.is_empty(),
                "a new, in-memory actor service starts empty: {books:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the front did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    front.stop();
    again.stop();
}

#[tokio::test]
async fn a_killed_actor_service_is_restarted_by_split() {
    let server = Server::start("split", &["--admin", "127.0.0.1:0", "--start-mode", "always-running"]);
    let admin = server.admin_url();
    let pid = status(&admin).await["pids"]["actors"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = reqwest::get(server.url("/books")).await.unwrap();
        let new_pid = status(&admin).await["pids"]["actors"].as_u64();
        if resp.status() == 200 && new_pid.is_some_and(|p| p as i32 != pid) {
            break;
        }
        assert!(Instant::now() < deadline, "split did not bring the actor service back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop();
}

#[tokio::test]
async fn killing_split_leaves_no_process() {
    let server = Server::start("split", &["--admin", "127.0.0.1:0", "--start-mode", "always-running"]);
    let s = status(&server.admin_url()).await;
    let (actors, front) = (
        s["pids"]["actors"].as_u64().unwrap() as u32,
        s["pids"]["app"].as_u64().unwrap() as u32,
    );
    server.stop_with(Signal::SIGKILL);
    assert!(wait_gone(actors).await, "actor service orphaned");
    assert!(wait_gone(front).await, "front orphaned");
}
