//! The API conformance suite: every row of DESIGN.md's "Workload HTTP API"
//! table, every error code, idempotency, routing stability and overload,
//! run against every hosting model as a real process.
//!
//! A hosting model joins the suite with one `conformance!` line at the bottom.

mod common;

use common::Server;
use hostlab_hosts::Model;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder().build().unwrap()
}

/// Assert the error body format and code; return the body.
async fn expect_error(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status for expected `{code}`");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/json"), "error content type");
    let body: Value = resp.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "error body: {body}");
    let message = body["error"]["message"].as_str().expect("error.message is a string");
    assert!(message.len() > 10, "error message says what to do: {body}");
    body
}

fn row(account: &str, debit: i64, credit: i64) -> Value {
    json!({"account": account, "debit_cents": debit, "credit_cents": credit})
}

/// A balanced task of `n` rows (n even).
fn balanced_task(id: &str, n: usize) -> Value {
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                row("4000-100", 1250, 0)
            } else {
                row("5000-200", 0, 1250)
            }
        })
        .collect();
    json!({"id": id, "kind": "validate", "rows": rows})
}

mod cases {
    use super::*;

    pub(crate) async fn ping_and_health(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        let resp = c.get(server.url("/ping")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(resp.text().await.unwrap(), "pong");

        let health: Value = c
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
        // The process that served the request answers: the app behind a front.
        let kind: Model = model.parse().unwrap();
        let serving_model = kind.serving_part().name();
        let same_process = kind.serving_part() == kind;
        assert_eq!(health["model"], serving_model);
        let pid = health["pid"].as_u64().unwrap() as u32;
        assert_eq!(pid == server.pid, same_process, "pid {pid} vs front {}", server.pid);
        assert!(common::process_alive(pid));
        assert!(health["uptime_ms"].is_u64());
        assert_eq!(health["warm"], true, "warm after /ping was served: {health}");
        server.stop();
    }

    pub(crate) async fn health_is_cold_before_the_first_request(model: &str) {
        let server = Server::start(model, &[]);
        let health: Value = client()
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["warm"], false, "{health}");
        server.stop();
    }

    pub(crate) async fn books_crud(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        let resp = c
            .post(server.url("/books"))
            .json(&json!({"title": "The Dispossessed", "author": "Ursula K. Le Guin", "year": 1974}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let book: Value = resp.json().await.unwrap();
        let id = book["id"].as_u64().expect("book id");
        assert_eq!(location, format!("/books/{id}"));
        assert_eq!(book["title"], "The Dispossessed");
        assert_eq!(book["year"], 1974);

        let resp = c
            .post(server.url("/books"))
            .json(&json!({"title": "Kindred", "author": "Octavia E. Butler"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "year is optional");

        let list: Vec<Value> = c.get(server.url("/books")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], book);

        let got: Value = c.get(server.url(&location)).send().await.unwrap().json().await.unwrap();
        assert_eq!(got, book);

        let resp = c.delete(server.url(&location)).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        expect_error(
            c.get(server.url(&location)).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        expect_error(
            c.delete(server.url(&location)).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        expect_error(
            c.get(server.url("/books/abc")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let list: Vec<Value> = c.get(server.url("/books")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list.len(), 1);
        server.stop();
    }

    pub(crate) async fn book_input_errors(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        let url = server.url("/books");
        let post_json = |body: Value| c.post(&url).json(&body).send();
        for (body, why) in [
            (json!({"title": "", "author": "A"}), "empty title"),
            (json!({"title": "T", "author": "   "}), "blank author"),
            (json!({"title": "x".repeat(201), "author": "A"}), "title over 200 chars"),
            (
                json!({"title": "T", "author": "a".repeat(201)}),
                "author over 200 chars",
            ),
            (json!({"title": "T", "author": "A", "year": 2101}), "year too late"),
            (json!({"title": "T", "author": "A", "year": -3001}), "year too early"),
            (json!({"title": "T"}), "missing author"),
            (json!({"title": 5, "author": "A"}), "wrong type"),
            (json!({"title": "T", "author": "A", "isbn": "x"}), "unknown field"),
            (json!(["T", "A"]), "not an object"),
        ] {
            let resp = post_json(body).await.unwrap();
            assert_eq!(resp.status(), 422, "{why}");
            expect_error(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        }
        let raw = |body: Vec<u8>, ct: Option<&'static str>| {
            let mut req = c.post(&url).body(body);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            req.send()
        };
        let json_ct = Some("application/json");
        expect_error(
            raw(b"{\"title\":".to_vec(), json_ct).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        )
        .await;
        expect_error(
            raw(b"not json".to_vec(), json_ct).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        )
        .await;
        let bad_utf8 = b"{\"title\":\"\xff\xfe\",\"author\":\"A\"}".to_vec();
        expect_error(
            raw(bad_utf8, json_ct).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        )
        .await;
        let ok_body = br#"{"title":"T","author":"A"}"#.to_vec();
        let media = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        expect_error(
            raw(ok_body.clone(), Some("text/plain")).await.unwrap(),
            media,
            "unsupported_media_type",
        )
        .await;
        expect_error(
            raw(ok_body.clone(), None).await.unwrap(),
            media,
            "unsupported_media_type",
        )
        .await;
        let resp = raw(ok_body, Some("application/json; charset=utf-8")).await.unwrap();
        assert_eq!(resp.status(), 201, "content type parameters are fine");

        // Just over 64 KiB, with Content-Length and then streamed (chunked).
        let big = format!(r#"{{"title":"T","author":"A","pad":"{}"}}"#, "x".repeat(64 * 1024));
        expect_error(
            raw(big.clone().into_bytes(), json_ct).await.unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        )
        .await;
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            big.into_bytes().chunks(8192).map(|c| Ok(c.to_vec())).collect();
        let streamed = c
            .post(&url)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
            .send()
            .await
            .unwrap();
        expect_error(streamed, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;

        let list: Vec<Value> = c.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(list.len(), 1, "no rejected request stored a book");
        server.stop();
    }

    pub(crate) async fn idempotent_book_creation(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        let post = |key: &'static str, title: &'static str| {
            c.post(server.url("/books"))
                .header("Idempotency-Key", key)
                .json(&json!({"title": title, "author": "Iain M. Banks"}))
                .send()
        };
        let first = post("key-1", "Excession").await.unwrap();
        assert_eq!(first.status(), 201);
        let first: Value = first.json().await.unwrap();
        for _ in 0..3 {
            let again = post("key-1", "Excession").await.unwrap();
            assert_eq!(again.status(), 200, "a replay is 200, not a second 201");
            assert_eq!(again.json::<Value>().await.unwrap(), first, "the same book");
        }
        expect_error(
            post("key-1", "Look to Windward").await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_conflict",
        )
        .await;
        assert_eq!(
            post("key-2", "Excession").await.unwrap().status(),
            201,
            "a new key is a new book"
        );
        let list: Vec<Value> = c.get(server.url("/books")).send().await.unwrap().json().await.unwrap();
        assert_eq!(list.len(), 2);

        // Concurrent retries of one key still create one book.
        let retries = (0..16).map(|_| post("key-3", "Matter"));
        let statuses: Vec<u16> = futures_join(retries)
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 15, "{statuses:?}");
        let stats: Value = c.get(server.url("/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats["books"], 3);

        let bad_key = c
            .post(server.url("/books"))
            .header("Idempotency-Key", "x".repeat(256))
            .json(&json!({"title": "T", "author": "A"}))
            .send()
            .await
            .unwrap();
        expect_error(bad_key, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
        server.stop();
    }

    pub(crate) async fn tasks_run_and_report_status(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        let resp = c
            .post(server.url("/tasks"))
            .json(&balanced_task("ledger-2026-11", 5000))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "a 5,000-row task fits the body limit");
        let done: Value = resp.json().await.unwrap();
        assert_eq!(done["id"], "ledger-2026-11");
        assert_eq!(done["status"], "done");
        assert_eq!(done["rows"], 5000);
        assert_eq!(done["invalid"], json!([]));
        assert_eq!(done["total_debit_cents"], 2500 * 1250);
        assert_eq!(done["total_credit_cents"], 2500 * 1250);
        assert_eq!(done["balanced"], true);
        assert!(done["actor"].as_u64().unwrap() < 10);

        let polled: Value = c
            .get(server.url("/tasks/ledger-2026-11"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(polled, done);

        let mixed = json!({"id": "t-mixed", "kind": "validate", "rows": [
            row("4000-100", 100, 0), row("4000-1000", 5, 0), row("4000-100", -1, 0),
            row("4000-100", 3, 3), row("4000-100", 0, 0), row("5000-100", 0, 90)]});
        let r: Value = c
            .post(server.url("/tasks"))
            .json(&mixed)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let bad: Vec<u64> = r["invalid"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["row"].as_u64().unwrap())
            .collect();
        assert_eq!(bad, [1, 2, 3, 4]);
        assert!(r["invalid"][0]["reason"].as_str().unwrap().contains("four digits"));
        assert_eq!(
            (r["total_debit_cents"].as_i64(), r["total_credit_cents"].as_i64()),
            (Some(100), Some(90))
        );
        assert_eq!(r["balanced"], false);

        expect_error(
            c.get(server.url("/tasks/never-sent")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        server.stop();
    }

    pub(crate) async fn task_input_errors(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        let url = server.url("/tasks");
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        for (task, why) in [
            (balanced_task("too-many", 5002), "over 5,000 rows"),
            (json!({"id": "", "kind": "k", "rows": []}), "empty id"),
            (json!({"id": "a b", "kind": "k", "rows": []}), "id with a space"),
            (json!({"id": "x".repeat(129), "kind": "k", "rows": []}), "id over 128"),
            (json!({"id": "t", "kind": "", "rows": []}), "empty kind"),
            (json!({"id": "t", "kind": "k".repeat(65), "rows": []}), "kind over 64"),
            (json!({"id": "t", "kind": "k"}), "missing rows"),
            (
                json!({"id": "t", "kind": "k", "rows": [{"account": "4000-100", "debit_cents": "5", "credit_cents": 0}]}),
                "string amount",
            ),
        ] {
            let resp = c.post(&url).json(&task).send().await.unwrap();
            assert_eq!(resp.status(), unprocessable, "{why}");
            expect_error(resp, unprocessable, "validation").await;
        }
        let malformed = c
            .post(&url)
            .header("content-type", "application/json")
            .body("{\"id\":")
            .send()
            .await
            .unwrap();
        expect_error(malformed, StatusCode::BAD_REQUEST, "invalid_json").await;
        let wrong_type = c
            .post(&url)
            .header("content-type", "text/csv")
            .body("a,b")
            .send()
            .await
            .unwrap();
        expect_error(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
        // The server refuses by Content-Length alone, before the body is sent.
        let (status, body) = head_only_request(&server, "/tasks", 4 * 1024 * 1024 + 1).await;
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("\"too_large\""), "{body}");
        server.stop();
    }

    pub(crate) async fn routing_is_a_stable_consistent_hash(model: &str) {
        let actors_of = |server: &Server| {
            let url = server.url("/tasks");
            async move {
                let c = client();
                let mut actors = Vec::new();
                for i in 0..40 {
                    let task = json!({"id": format!("task-{i}"), "kind": "k", "rows": [row("4000-100", 1, 0)]});
                    let r: Value = c.post(&url).json(&task).send().await.unwrap().json().await.unwrap();
                    actors.push(r["actor"].as_u64().unwrap());
                }
                actors
            }
        };
        let server = Server::start(model, &[]);
        let first = actors_of(&server).await;
        assert_eq!(actors_of(&server).await, first, "same id, same actor");
        let distinct: std::collections::BTreeSet<_> = first.iter().collect();
        assert!(distinct.len() >= 8, "40 ids spread over most of 10 actors: {first:?}");
        let stats: Value = client()
            .get(server.url("/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["actors"]["mode"], "pool");
        assert_eq!(stats["actors"]["live"], 10);
        assert_eq!(stats["tasks"]["done"], 80);
        server.stop();

        // Another process (a restart, another model) maps ids the same way.
        let again = Server::start(model, &[]);
        assert_eq!(actors_of(&again).await, first, "routing is stable across processes");
        again.stop();

        let grown = Server::start(model, &["--routing", "pool:11"]);
        let moved = actors_of(&grown)
            .await
            .iter()
            .zip(&first)
            .filter(|(a, b)| a != b)
            .count();
        assert!(moved <= 10, "growing 10 -> 11 actors moves few ids ({moved} of 40)");
        grown.stop();
    }

    pub(crate) async fn per_task_routing_keeps_an_actor_per_id(model: &str) {
        let server = Server::start(model, &["--routing", "per-task"]);
        let c = client();
        for i in 0..25 {
            let task = json!({"id": format!("job-{}", i % 20), "kind": "k", "rows": [row("4000-100", 1, 0)]});
            assert_eq!(
                c.post(server.url("/tasks")).json(&task).send().await.unwrap().status(),
                200
            );
        }
        let stats: Value = c.get(server.url("/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats["actors"]["mode"], "per-task");
        assert_eq!(stats["actors"]["live"], 20, "one live actor per distinct id: {stats}");
        let polled: Value = c
            .get(server.url("/tasks/job-3"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(polled["status"], "done");
        server.stop();
    }

    pub(crate) async fn full_mailboxes_answer_503_overloaded(model: &str) {
        // One slot per mailbox; many concurrent 5,000-row tasks for one id
        // queue on one actor, so some must be turned away.
        let server = Server::start(model, &["--mailbox", "1"]);
        let c = client();
        let task = balanced_task("hot-id", 5000);
        let mut overloaded = None;
        let mut done = 0;
        for _round in 0..20 {
            let sends = (0..32).map(|_| c.post(server.url("/tasks")).json(&task).send());
            for resp in futures_join(sends).await {
                let resp = resp.unwrap();
                match resp.status().as_u16() {
                    200 => done += 1,
                    503 => overloaded = Some(resp),
                    other => panic!("unexpected status {other}"),
                }
            }
            if overloaded.is_some() && done > 0 {
                break;
            }
        }
        let resp = overloaded.expect("a full mailbox answers 503");
        assert_eq!(resp.headers()["retry-after"], "1");
        expect_error(resp, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
        assert!(done > 0, "admitted tasks still complete");
        let stats: Value = c.get(server.url("/stats")).send().await.unwrap().json().await.unwrap();
        assert!(stats["tasks"]["rejected_overloaded"].as_u64().unwrap() > 0, "{stats}");
        // The server recovers once the burst is over.
        assert_eq!(
            c.post(server.url("/tasks")).json(&task).send().await.unwrap().status(),
            200
        );
        server.stop();
    }

    pub(crate) async fn unknown_routes_and_wrong_methods(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        expect_error(
            c.get(server.url("/nope")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        expect_error(
            c.get(server.url("/books/1/pages")).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let not_allowed = StatusCode::METHOD_NOT_ALLOWED;
        expect_error(
            c.post(server.url("/ping")).send().await.unwrap(),
            not_allowed,
            "method_not_allowed",
        )
        .await;
        expect_error(
            c.put(server.url("/books")).send().await.unwrap(),
            not_allowed,
            "method_not_allowed",
        )
        .await;
        expect_error(
            c.get(server.url("/tasks")).send().await.unwrap(),
            not_allowed,
            "method_not_allowed",
        )
        .await;
        expect_error(
            c.delete(server.url("/stats")).send().await.unwrap(),
            not_allowed,
            "method_not_allowed",
        )
        .await;
        server.stop();
    }

    pub(crate) async fn stats_report_the_workload(model: &str) {
        let server = Server::start(model, &[]);
        let c = client();
        c.post(server.url("/books"))
            .json(&json!({"title": "T", "author": "A"}))
            .send()
            .await
            .unwrap();
        let stats: Value = c.get(server.url("/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats["books"], 1);
        assert!(stats["tasks"].is_object());
        assert_eq!(stats["actors"]["mode"], "pool");
        assert!(stats["journal"].is_object());
        assert!(stats["rss_bytes"].as_u64().unwrap() > 1_000_000, "{stats}");
        server.stop();
    }

    pub(crate) async fn signals_drain_and_exit_cleanly(model: &str) {
        use nix::sys::signal::Signal;
        let mut server = Server::start(model, &[]);
        server.signal(Signal::SIGHUP);
        // SIGHUP is answered (nothing to recycle), not fatal.
        let resp = client().get(server.url("/ping")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(server.is_running());
        let pid = server.pid;
        let status = server.stop_with(Signal::SIGINT);
        assert!(status.success(), "SIGINT drains and exits 0: {status}");
        assert!(!common::process_alive(pid));
    }
}

/// Send only the head of a POST that declares a `content_length`-byte JSON
/// body, and read the answer the server gives without waiting for the body.
async fn head_only_request(server: &Server, path: &str, content_length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut chunk = [0u8; 4096];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer before the body was sent");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Run requests concurrently.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::iter(chunks)
}

macro_rules! conformance {
    ($($module:ident => $model:literal),* $(,)?) => {$(
        mod $module {
            use super::cases;
            #[tokio::test] async fn ping_and_health() { cases::ping_and_health($model).await }
            #[tokio::test] async fn health_is_cold_before_the_first_request() { cases::health_is_cold_before_the_first_request($model).await }
            #[tokio::test] async fn books_crud() { cases::books_crud($model).await }
            #[tokio::test] async fn book_input_errors() { cases::book_input_errors($model).await }
            #[tokio::test] async fn idempotent_book_creation() { cases::idempotent_book_creation($model).await }
            #[tokio::test] async fn tasks_run_and_report_status() { cases::tasks_run_and_report_status($model).await }
            #[tokio::test] async fn task_input_errors() { cases::task_input_errors($model).await }
            #[tokio::test] async fn routing_is_a_stable_consistent_hash() { cases::routing_is_a_stable_consistent_hash($model).await }
            #[tokio::test] async fn per_task_routing_keeps_an_actor_per_id() { cases::per_task_routing_keeps_an_actor_per_id($model).await }
            #[tokio::test] async fn full_mailboxes_answer_503_overloaded() { cases::full_mailboxes_answer_503_overloaded($model).await }
            #[tokio::test] async fn unknown_routes_and_wrong_methods() { cases::unknown_routes_and_wrong_methods($model).await }
            #[tokio::test] async fn stats_report_the_workload() { cases::stats_report_the_workload($model).await }
            #[tokio::test] async fn signals_drain_and_exit_cleanly() { cases::signals_drain_and_exit_cleanly($model).await }
        }
    )*};
}

// One line per hosting model.
conformance! {
    edge => "edge",
    edge_actix => "edge-actix",
    app => "app",
    proxy => "proxy",
    inprocess => "inprocess",
    split => "split",
}
