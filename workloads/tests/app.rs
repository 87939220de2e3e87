//! The workload's router called in-process with `oneshot`, as axum tests its
//! own: no socket, no hosting model, just `app(state)` and the API table of
//! DESIGN.md. (tests/api_conformance.rs runs the same API over every hosting
//! model.)

use axum::body::Body;
use hostlab_workloads::{AppState, Workload, WorkloadConfig, app};
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn workload() -> AppState {
    Workload::start(WorkloadConfig::new("edge"))
        .await
        .expect("the workload starts")
}

async fn call(
    state: &AppState,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app(state.clone()).oneshot(request.body(body).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes().to_vec(),
    )
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a JSON body")
}

#[tokio::test]
async fn ping_answers_pong() {
    let state = workload().await;
    // The first answer comes from the cold path (the process is not warm
    // yet), the second from the warm one; both must be the same answer.
    for path in ["cold", "warm"] {
        let (status, headers, body) = call(&state, Method::GET, "/ping", None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8", "{path}");
        assert_eq!(headers[header::CONTENT_LENGTH], "4", "{path}");
        assert_eq!(body, b"pong", "{path}");
    }
    let (status, headers, body) = call(&state, Method::HEAD, "/ping", None).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0), "HEAD has no body");
    assert_eq!(headers[header::CONTENT_LENGTH], "4", "HEAD");
    state.shutdown().await;
}

#[tokio::test]
async fn a_book_is_created_read_and_deleted() {
    let state = workload().await;
    let book = json!({"title": "Solaris", "author": "Stanisław Lem", "year": 1961});
    let (status, headers, body) = call(&state, Method::POST, "/books", Some(book)).await;
    assert_eq!(status, StatusCode::CREATED);
    let created = json_of(&body);
    let id = created["id"].as_u64().unwrap();
    assert_eq!(headers[header::LOCATION], format!("/books/{id}").as_str());

    let (status, _, body) = call(&state, Method::GET, &format!("/books/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body), created);

    let (status, _, _) = call(&state, Method::DELETE, &format!("/books/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, headers, body) = call(&state, Method::GET, &format!("/books/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body)["error"]["code"], "not_found");
    assert_eq!(headers["x-hostlab-fault"], "client");
    state.shutdown().await;
}

#[tokio::test]
async fn errors_are_exactly_code_and_message() {
    let state = workload().await;
    let (status, _, body) = call(
        &state,
        Method::POST,
        "/books",
        Some(json!({"title": "", "author": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = json_of(&body);
    assert_eq!(error["error"]["code"], "validation");
    let keys: Vec<_> = error["error"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["code", "message"], "{error}");
    assert_eq!(error.as_object().unwrap().len(), 1, "{error}");

    let (status, _, body) = call(&state, Method::GET, "/no-such-path", None).await;
    assert_eq!(
        (status, json_of(&body)["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _, body) = call(&state, Method::PUT, "/ping", None).await;
    assert_eq!(
        (status, json_of(&body)["error"]["code"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed"))
    );
    state.shutdown().await;
}

#[tokio::test]
async fn a_task_runs_and_is_kept() {
    let state = workload().await;
    let task = json!({"id": "t-1", "kind": "ledger", "rows": [
        {"account": "4000-100", "debit_cents": 500, "credit_cents": 0},
        {"account": "4000-200", "debit_cents": 0, "credit_cents": 500},
        {"account": "bad", "debit_cents": 1, "credit_cents": 0},
    ]});
    let (status, _, body) = call(&state, Method::POST, "/tasks", Some(task)).await;
    assert_eq!(status, StatusCode::OK);
    let result = json_of(&body);
    assert_eq!(result["status"], "done");
    assert_eq!(result["balanced"], true, "{result}");
    assert_eq!(result["invalid"][0]["row"], 2, "{result}");

    let (status, _, body) = call(&state, Method::GET, "/tasks/t-1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["id"], "t-1");
    state.shutdown().await;
}
