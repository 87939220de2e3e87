//! The proxy's own upstream relay (hosts/src/relay.rs), end to end through
//! `hostlab serve proxy` on raw client connections: keep-alive sequences,
//! pipelined requests, a chunked request between plain ones, Content-Length
//! bodies that arrive in parts, and an app killed between two requests of one
//! client connection. Behaviour only, never speed; every wait has a deadline.

mod common;
#[allow(dead_code)] // the harness has more than these tests use
#[path = "common/front.rs"]
mod front;

use std::time::{Duration, Instant};

use front::Front;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any one answer may take on a busy machine.
const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// One response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads responses off one client connection, keeping what was read past
/// the current one.
struct Client {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(front: &Front) -> Client {
        let addr = front.server.url.trim_start_matches("http://").to_owned();
        Client {
            tcp: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) {
        let mut more = [0u8; 16 * 1024];
        let n = tokio::time::timeout(ANSWER_DEADLINE, self.tcp.read(&mut more))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        assert!(
            n > 0,
            "the connection closed mid-answer: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&more[..n]);
    }

    /// The next whole response (Content-Length or chunked body).
    async fn answer(&mut self) -> Answer {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        self.buf.drain(..end);
        let status = head[9..12].parse().unwrap();
        let lower = head.to_ascii_lowercase();
        let body = if lower.contains("transfer-encoding: chunked") {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill().await;
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&self.buf[..line_end]).unwrap().trim(), 16).unwrap();
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill().await;
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            while self.buf.len() < length {
                self.fill().await;
            }
            self.buf.drain(..length).collect()
        };
        Answer { status, head, body }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

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
    let mut client = Client::connect(&front).await;

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
    let mut client = Client::connect(&front).await;
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
