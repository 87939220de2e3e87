//! The cold start's wait and the warm mark (docs/policies.md "Cold start"),
//! made by the `Warming` extractor of every handler but `/healthz`'s: which
//! answers mark the process warm, and that a request waits for the start-up
//! index before it is answered.

use axum::body::Body;
use hostlab_workloads::coldstart::ColdStartConfig;
use hostlab_workloads::{AppState, Workload, WorkloadConfig, app};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

async fn workload(init_entries: u32) -> AppState {
    let mut config = WorkloadConfig::new("edge");
    config.cold = ColdStartConfig {
        init_entries,
        first_hit_rounds: 1,
    };
    Workload::start(config).await.expect("the workload starts")
}

async fn status(state: &AppState, method: Method, uri: &str) -> StatusCode {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    app(state.clone()).oneshot(request).await.unwrap().status()
}

async fn warm(state: &AppState) -> bool {
    let request = Request::builder().uri("/healthz").body(Body::empty()).unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let health: Value = serde_json::from_slice(&body).unwrap();
    health["warm"].as_bool().expect("warm is a boolean")
}

#[tokio::test]
async fn healthz_in_any_method_leaves_the_process_cold() {
    let state = workload(0).await;
    assert_eq!(status(&state, Method::GET, "/healthz").await, StatusCode::OK);
    assert_eq!(
        status(&state, Method::POST, "/healthz").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert!(!warm(&state).await);
    state.shutdown().await;
}

#[tokio::test]
async fn every_other_answer_marks_it_warm() {
    let cases = [
        (Method::GET, "/ping", StatusCode::OK),
        (Method::GET, "/no-such-route", StatusCode::NOT_FOUND),
        (Method::PUT, "/ping", StatusCode::METHOD_NOT_ALLOWED),
        // Refused by a later extractor (no JSON content type): still an answer.
        (Method::POST, "/books", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (Method::GET, "/books/x", StatusCode::NOT_FOUND),
    ];
    for (method, uri, expected) in cases {
        let state = workload(0).await;
        assert!(!warm(&state).await);
        assert_eq!(status(&state, method.clone(), uri).await, expected, "{method} {uri}");
        assert!(warm(&state).await, "{method} {uri} marks the process warm");
        state.shutdown().await;
    }
}

#[tokio::test]
async fn a_request_is_answered_only_once_the_start_up_index_is_built() {
    let state = workload(20_000).await;
    assert_eq!(status(&state, Method::GET, "/ping").await, StatusCode::OK);
    assert!(state.cold_start().is_built(), "the answer came after the index");
    assert!(warm(&state).await);
    state.shutdown().await;
}
