//! The API conformance suite: every row of DESIGN.md's "Workload HTTP API"
//! table, every error code, idempotency, routing stability and overload,
//! run against every hosting model as a real process.
//!
//! A hosting model joins the suite with one `conformance!` line at the bottom.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/http.rs"]
mod http;

use common::Server;
use hostlab_hosts::Model;
use http::json_answer;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
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

/// Send `request` and assert it is refused with `status` and the error
/// body of `code`; return the body.
async fn expect_refused(request: RequestBuilder, status: StatusCode, code: &str) -> Value {
    expect_error(request.send().await.unwrap(), status, code).await
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

mod books;
mod service;
mod tasks;

/// Every case, by name, for the `conformance!` table.
mod cases {
    pub(crate) use super::books::*;
    pub(crate) use super::service::*;
    pub(crate) use super::tasks::*;
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
