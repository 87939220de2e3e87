//! The proxy's client-side fast path (hosts/src/fastpath.rs), end to end
//! through `hostlab serve proxy` on raw client connections: keep-alive and
//! pipelined requests served by the fast path, a request that falls back
//! to hyper mid-connection, request ids, bodiless answers, the header-read
//! timeout on a slow partial head, and draining. Behaviour only, never
//! speed; every wait has a deadline.

mod common;
#[allow(dead_code)] // the harness has more than these tests use
#[path = "common/front.rs"]
mod front;
#[allow(dead_code)] // shared with the other proxy test
#[path = "common/raw_client.rs"]
mod raw_client;

use front::Front;
use nix::sys::signal::Signal;
use raw_client::{ANSWER_DEADLINE, Answer, Client, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl Client {
    /// The next response, which has no body whatever its head says (an
    /// answer to HEAD).
    async fn answer_bodiless(&mut self) -> Answer {
        let (status, head) = self.head().await;
        Answer {
            status,
            head,
            body: Vec::new(),
        }
    }
}

/// The value of header `name` in a response head, if present.
fn header(answer: &Answer, name: &str) -> Option<String> {
    answer.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// Reads until the client's connection ends (the front closed it); fails
/// if an answer or nothing comes instead within the deadline.
async fn closed_by_front(client: &mut Client) {
    let mut more = [0u8; 1024];
    let n = tokio::time::timeout(ANSWER_DEADLINE, client.tcp.read(&mut more))
        .await
        .expect("the front closes the connection within the deadline")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "expected the end of the connection, got {:?}",
        String::from_utf8_lossy(&more[..n])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_keep_alive_pipelined_and_a_fallback_mid_connection() {
    let front = Front::start("proxy", &["--start-mode", "always-running"]);
    let mut client = Client::connect(&front.server.url).await;

    // Keep-alive: each answer has its own generated id; a client's id is kept.
    client.send(get("/ping").as_bytes()).await;
    let first = client.answer().await;
    assert_eq!((first.status, &first.body[..]), (200, &b"pong"[..]), "{}", first.head);
    client
        .send(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine\r\n\r\n")
        .await;
    let second = client.answer().await;
    assert_eq!(header(&second, "x-request-id").as_deref(), Some("mine"));
    let generated = header(&first, "x-request-id").expect("a generated id");
    assert!(generated.contains('-'), "<pid hex>-<counter hex>: {generated}");

    // HEAD: the length of the body it would have, and no body, so the next
    // answer on the connection is read right.
    client.send(b"HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let head = client.answer_bodiless().await;
    assert_eq!(head.status, 200);
    assert_eq!(header(&head, "content-length").as_deref(), Some("4"));

    // Pipelined plain requests, one write: answered in order.
    let pipelined = format!("{}{}{}", get("/ping"), get("/healthz"), get("/ping"));
    client.send(pipelined.as_bytes()).await;
    assert_eq!(client.answer().await.body, b"pong");
    assert_eq!(client.answer().await.status, 200);
    assert_eq!(client.answer().await.body, b"pong");

    // A chunked POST (not a fast-path shape) after those: hyper serves it
    // and the rest of the connection, with the same edits.
    let body = "{\"title\":\"two\",\"author\":\"A\",\"year\":1999}";
    let chunked = format!(
        "POST /books HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    client.send(format!("{chunked}{}", get("/books")).as_bytes()).await;
    let created = client.answer().await;
    assert_eq!(created.status, 201, "{}", created.head);
    assert!(header(&created, "x-request-id").is_some());
    let books = client.answer().await;
    let books: serde_json::Value = serde_json::from_slice(&books.body).unwrap();
    assert_eq!(books[0]["title"], "two");

    // Every request was counted once, by whichever path served it.
    let status = front.status().await;
    assert_eq!(status["access"]["requests"], 8, "{status}");
    assert_eq!(status["access"]["status_2xx"], 8, "{status}");
    assert_eq!(status["access"]["in_flight"], 0, "{status}");
    front.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_and_a_slow_partial_head_end_the_connection() {
    let front = Front::start(
        "proxy",
        &["--start-mode", "always-running", "--header-read-timeout", "1s"],
    );
    // `Connection: close` from the client: the answer says so and the
    // front closes.
    let mut client = Client::connect(&front.server.url).await;
    client
        .send(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let answer = client.answer().await;
    assert_eq!(answer.body, b"pong");
    assert_eq!(header(&answer, "connection").as_deref(), Some("close"));
    closed_by_front(&mut client).await;

    // A head that never ends is closed after the header-read timeout, with
    // no answer.
    let mut slow = Client::connect(&front.server.url).await;
    slow.send(b"GET /ping HTTP/1.1\r\nHost: x\r\n").await;
    closed_by_front(&mut slow).await;
    front.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_closes_fast_path_connections() {
    // Timeouts far beyond the answer deadline: only the drain can close the
    // idle connection within it.
    let front = Front::start(
        "proxy",
        &[
            "--start-mode",
            "always-running",
            "--header-read-timeout",
            "300s",
            "--shutdown-limit",
            "120s",
        ],
    );
    let mut idle = Client::connect(&front.server.url).await;
    idle.send(get("/ping").as_bytes()).await;
    assert_eq!(idle.answer().await.status, 200);
    let mut busy = Client::connect(&front.server.url).await;
    busy.send(get("/ping").as_bytes()).await;
    assert_eq!(busy.answer().await.status, 200);

    front.server.signal(Signal::SIGTERM);
    // The idle connection is closed after the grace period; a request on
    // the other before then is answered with `Connection: close`, or finds
    // it closed already.
    closed_by_front(&mut idle).await;
    if busy.tcp.write_all(get("/ping").as_bytes()).await.is_ok() {
        let mut more = [0u8; 4096];
        let n = tokio::time::timeout(ANSWER_DEADLINE, busy.tcp.read(&mut more))
            .await
            .expect("an answer or the end of the connection")
            .unwrap_or(0);
        if n > 0 {
            let head = String::from_utf8_lossy(&more[..n]).to_ascii_lowercase();
            assert!(head.contains("connection: close"), "{head}");
        }
    }
    front.server.stop();
}
