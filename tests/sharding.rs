//! The sharded actor service (`serve actors --shard I/M`, `serve front
//! --actors A0,A1`) and several split fronts (`serve split --fronts N`), on
//! loopback: books land on both nodes and are found by id, a killed node
//! takes only its own shard down and comes back with its journal, a node in
//! the wrong place of the list is refused, bad values exit 2, and two fronts
//! recycle without losing state, idempotency or task status.

mod common;

use std::time::{Duration, Instant};

use common::{Load, Server, run_hostlab, wait_gone};
use hostlab_workloads::hashing::{shard_of_book, shard_of_key};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// `hostlab serve actors --shard I/2` with its own journal in `dir`, on `listen`.
fn node(i: u32, dir: &std::path::Path, listen: &str) -> Server {
    let journal = dir.join(format!("node{i}.db"));
    Server::start(
        "actors",
        &[
            "--shard",
            &format!("{i}/2"),
            "--journal",
            journal.to_str().unwrap(),
            "--listen",
            listen,
        ],
    )
}

async fn get(c: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = tokio::time::timeout(Duration::from_secs(15), c.get(url).send())
        .await
        .expect("the front answers within 15 s")
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn task(id: &str) -> Value {
    json!({"id": id, "kind": "validate", "rows": [{"account": "4000-100", "debit_cents": 5, "credit_cents": 0}]})
}

#[tokio::test]
async fn two_nodes_share_the_store_and_a_killed_node_takes_only_its_shard_down() {
    let dir = tempfile::tempdir().unwrap();
    let node0 = node(0, dir.path(), "127.0.0.1:0");
    let node1 = node(1, dir.path(), "127.0.0.1:0");
    let (a0, a1) = (addr(&node0), addr(&node1));
    let front = Server::start("front", &["--actors", &format!("{a0},{a1}")]);
    let c = reqwest::Client::new();

    let mut ids = Vec::new();
    for i in 0..20 {
        let book = json!({"title": format!("Book {i}"), "author": "A"});
        let resp = c.post(front.url("/books")).json(&book).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap());
    }
    let tasks: Vec<String> = (0..8).map(|i| format!("ledger-{i}")).collect();
    for id in &tasks {
        let resp = c.post(front.url("/tasks")).json(&task(id)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // Each node holds the books of its own shard, and only those.
    let (status, stats) = get(&c, front.url("/stats")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["books"], 20, "{stats}");
    for k in 0..2u32 {
        let own = ids.iter().filter(|&&id| shard_of_book(id, 2) == k).count();
        assert!(own > 0, "no book landed on node {k}: {ids:?}");
        assert_eq!(stats["shards"][k as usize]["books"], own, "node {k}: {stats}");
        let tasks_done = tasks.iter().filter(|id| shard_of_key(id, 2) == k).count();
        assert_eq!(
            stats["shards"][k as usize]["tasks_done"], tasks_done,
            "node {k}: {stats}"
        );
    }
    for &id in &ids {
        let (status, book) = get(&c, front.url(&format!("/books/{id}"))).await;
        assert_eq!(status, 200, "book {id}: {book}");
    }
    let (_, all) = get(&c, front.url("/books")).await;
    assert_eq!(all.as_array().unwrap().len(), 20);

    // SIGKILL node 1: its shard answers 503 backend_unavailable, fast;
    // shard 0 keeps answering.
    node1.stop_with(Signal::SIGKILL);
    let one = *ids.iter().find(|&&id| shard_of_book(id, 2) == 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let started = Instant::now();
        let (status, body) = get(&c, front.url(&format!("/books/{one}"))).await;
        if status == 503 {
            assert_eq!(body["error"]["code"], "backend_unavailable", "{body}");
            assert!(started.elapsed() < Duration::from_secs(5), "a down shard answers fast");
            break;
        }
        assert!(Instant::now() < deadline, "shard 1 never answered 503: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for &id in ids.iter().filter(|&&id| shard_of_book(id, 2) == 0) {
        let (status, body) = get(&c, front.url(&format!("/books/{id}"))).await;
        assert_eq!(status, 200, "shard 0 keeps answering: book {id}: {body}");
    }
    for id in tasks.iter().filter(|id| shard_of_key(id, 2) == 0) {
        let (status, body) = get(&c, front.url(&format!("/tasks/{id}"))).await;
        assert_eq!((status, &body["status"]), (200, &json!("done")), "{body}");
    }
    let (status, body) = get(&c, front.url("/books")).await;
    assert_eq!(status, 503, "a fan-out needs every shard: {body}");
    assert_eq!(body["error"]["code"], "backend_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&a1) && message.contains("1/2"),
        "names the missing shard: {message}"
    );

    // Node 1 again, same address and journal: what it acknowledged is back,
    // and the front relinks by itself.
    let again = node(1, dir.path(), &a1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, all) = get(&c, front.url("/books")).await;
        if status == 200 {
            assert_eq!(all.as_array().unwrap().len(), 20, "every acknowledged book is back");
            break;
        }
        assert!(Instant::now() < deadline, "the front did not relink to node 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = get(&c, front.url(&format!("/books/{one}"))).await;
    assert_eq!(status, 200, "{body}");
    for id in tasks.iter().filter(|id| shard_of_key(id, 2) == 1) {
        let (status, body) = get(&c, front.url(&format!("/tasks/{id}"))).await;
        assert_eq!((status, &body["status"]), (200, &json!("done")), "{body}");
    }
    front.stop();
    again.stop();
    node0.stop();
}

#[tokio::test]
async fn a_node_in_the_wrong_place_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node0 = node(0, dir.path(), "127.0.0.1:0");
    let node1 = node(1, dir.path(), "127.0.0.1:0");
    let (a0, a1) = (addr(&node0), addr(&node1));
    for list in [format!("{a1},{a0}"), a1.clone()] {
        let out = run_hostlab(&["serve", "front", "--listen", "127.0.0.1:0", "--actors", &list]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--actors {list} was accepted: {stderr}");
        // Swapped, both nodes are misplaced: the first found is named.
        assert!(
            stderr.contains(&format!("the actor node at {a1} serves shard 1/2"))
                || stderr.contains(&format!("the actor node at {a0} serves shard 0/2")),
            "--actors {list}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "never ready: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    node0.stop();
    node1.stop();
}

#[test]
fn bad_shard_and_actors_values_exit_2() {
    let journal = std::env::temp_dir().join(format!("hostlab-sharding-unused-{}.db", std::process::id()));
    let journal = journal.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["serve", "actors", "--shard", "2/2"], "below M"),
        (&["serve", "actors", "--shard", "one/2"], "not a shard"),
        (&["serve", "actors", "--shard", "0/0"], "must be 1 to"),
        (&["serve", "front", "--actors", "nowhere"], "--actors"),
        (&["serve", "front", "--actors", "127.0.0.1:1,127.0.0.1:1"], "twice"),
        (&["serve", "front", "--shard", "0/2"], "--shard is for `serve actors`"),
        (
            &["serve", "inprocess", "--fronts", "2"],
            "--fronts is for `serve split`",
        ),
        (
            &["serve", "split", "--actors", "127.0.0.1:1", "--journal", journal],
            "give each external node its own --journal",
        ),
    ];
    for (args, expected) in cases {
        let out = run_hostlab(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(
        !std::path::Path::new(journal).exists(),
        "a refused command creates no journal"
    );
}

/// Pids of `pid`'s children running `hostlab serve front`.
fn fronts_of(pid: u32) -> Vec<u32> {
    let mut fronts = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let cmdline = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if fields.get(1) == Some(&pid.to_string().as_str())
            && fields.first() != Some(&"Z")
            && cmdline.contains("serve\0front\0")
        {
            fronts.push(child);
        }
    }
    fronts.sort_unstable();
    fronts
}

#[tokio::test]
async fn two_fronts_recycle_without_losing_state_keys_or_tasks() {
    let server = Server::start(
        "split",
        &[
            "--fronts",
            "2",
            "--admin",
            "127.0.0.1:0",
            "--start-mode",
            "always-running",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while fronts_of(server.pid).len() < 2 {
        assert!(Instant::now() < deadline, "two fronts did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = fronts_of(server.pid);
    let c = reqwest::Client::new();
    let post = |key: &'static str| {
        c.post(server.url("/books"))
            .header("Idempotency-Key", key)
            .json(&json!({"title": "Solaris", "author": "Stanisław Lem"}))
            .send()
    };
    let first = post("order-7").await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    for i in 0..10 {
        let book = json!({"title": format!("Book {i}"), "author": "A"});
        assert_eq!(
            c.post(server.url("/books")).json(&book).send().await.unwrap().status(),
            201
        );
    }
    let accepted = c
        .post(server.url("/tasks"))
        .header("Prefer", "respond-async")
        .json(&task("ledger-9"))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    let load = Load::start(server.url("/books"), 2);
    load.wait_successes(50, "before the recycle").await;
    server.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = fronts_of(server.pid);
        if now.len() == 2 && now.iter().all(|p| !before.contains(p)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both fronts were not recycled: {before:?} -> {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in &before {
        assert!(wait_gone(*pid).await, "old front {pid} did not exit");
    }
    load.wait_successes(50, "after the recycle").await;
    let seen = load.stop().await;
    assert_eq!(seen.failed, 0, "the recycle failed requests: {:?}", seen.failures);

    let retry = post("order-7").await.unwrap();
    assert_eq!(retry.status(), 200, "the retry is recognised after the recycle");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let (_, books) = get(&c, server.url("/books")).await;
    assert_eq!(
        books.as_array().unwrap().len(),
        11,
        "one book per key, none lost: {books}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, record) = get(&c, server.url("/tasks/ledger-9")).await;
        assert_eq!(status, 200, "{record}");
        if record["status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "the task did not finish: {record}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fronts = fronts_of(server.pid);
    server.stop();
    for pid in fronts {
        assert!(wait_gone(pid).await, "front {pid} outlived split");
    }
}
