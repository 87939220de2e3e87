//! The proxy's own upstream relay (hosts/src/relay.rs), end to end through
//! `hostlab serve proxy` on raw client connections: keep-alive sequences,
//! pipelined requests, a chunked request between plain ones, Content-Length
//! bodies that arrive in parts, and an app killed between two requests of one
//! client connection. Behaviour only, never speed; every wait has a deadline.

mod common;
#[allow(dead_code)] // the harness has more than these tests use
#[path = "common/front.rs"]
mod front;
#[allow(dead_code)] // shared with the other proxy test
#[path = "common/raw_client.rs"]
mod raw_client;

use std::time::{Duration, Instant};

use front::Front;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use raw_client::{Answer, Client, get};

fn post_book(title: &str) -> String {
    let body = format!("{{\"title\":\"{title}\",\"author\":\"A\",\"year\":1999}}");
    format!(
        "POST /books HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn titles(answer: &Answer) -> Vec<String> {
    let books: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    books
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_pipelined_chunked_and_split_bodies_on_one_connection() {
    let front = Front::start("proxy", &["--start-mode", "always-running"]);
    let mut client = Client::connect(&front.server.url).await;

    // A keep-alive sequence: every answer comes, each with its own id.
    let mut ids = Vec::new();
    for _ in 0..5 {
        client.send(get("/ping").as_bytes()).await;
        let answer = client.answer().await;
        assert_eq!(
            (answer.status, &answer.body[..]),
            (200, &b"pong"[..]),
            "{}",
            answer.head
        );
        let id = answer
            .head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-request-id:")
                    .map(|v| v.trim().to_owned())
            })
            .expect("an x-request-id");
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 5, "each request gets its own id: {ids:?}");

    // Pipelined: three requests in one write, answered in order.
    let pipelined = format!("{}{}{}", post_book("one"), get("/ping"), get("/books"));
    client.send(pipelined.as_bytes()).await;
    assert_eq!(client.answer().await.status, 201);
    assert_eq!(client.answer().await.body, b"pong");
    assert_eq!(titles(&client.answer().await), ["one"]);

    // A chunked request between plain ones (the front reads it whole and
    // sends it on with a Content-Length), then plain requests again.
    let body = "{\"title\":\"two\",\"author\":\"A\",\"year\":1999}";
    let (first, rest) = body.split_at(10);
    let chunked = format!(
        "POST /books HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    );
    client.send(chunked.as_bytes()).await;
    assert_eq!(client.answer().await.status, 201);
    client.send(get("/ping").as_bytes()).await;
    assert_eq!(client.answer().await.body, b"pong");

    // A Content-Length body that arrives in two parts, with a pause.
    let whole = post_book("three");
    let (head_and_some, later) = whole.split_at(whole.len() - 8);
    client.send(head_and_some.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.send(later.as_bytes()).await;
    assert_eq!(client.answer().await.status, 201);

    client.send(get("/books").as_bytes()).await;
    assert_eq!(titles(&client.answer().await), ["one", "two", "three"]);
    front.server.stop();
}

/// The app is killed between two requests of one client connection: the
/// kept upstream connection is dead, and the next requests get either a
/// 502 `bad_gateway` or (once the front restarted the app) 200, never a
/// hang; the same client connection is then served by the new app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_outlives_its_app() {
    let front = Front::start("proxy", &["--start-mode", "always-running"]);
    let mut client = Client::connect(&front.server.url).await;
    client.send(get("/ping").as_bytes()).await;
    assert_eq!(client.answer().await.status, 200);
    let pid = front.app_pid().await.expect("an app runs");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        client.send(get("/healthz").as_bytes()).await;
        let answer = client.answer().await;
        match answer.status {
            200 => {
                let health: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
                assert_ne!(health["pid"].as_u64(), Some(pid as u64), "a new app answers");
                break;
            }
            502 | 503 => {
                let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
                let code = error["error"]["code"].as_str().unwrap().to_owned();
                assert!(
                    ["bad_gateway", "app_unavailable"].contains(&code.as_str()),
                    "{}",
                    answer.head
                );
            }
            other => panic!("unexpected {other}: {}", answer.head),
        }
        assert!(Instant::now() < deadline, "the app was not restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    front.server.stop();
}
