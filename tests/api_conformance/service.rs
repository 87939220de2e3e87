//! The service's own routes, whatever the workload: `GET /ping`, `GET /healthz`,
//! `GET /stats`, unknown routes and wrong methods, and the signals.

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

    let health: Value = json_answer(c.get(server.url("/healthz"))).await;
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
    let health: Value = json_answer(client().get(server.url("/healthz"))).await;
    assert_eq!(health["warm"], false, "{health}");
    server.stop();
}

pub(crate) async fn unknown_routes_and_wrong_methods(model: &str) {
    let server = Server::start(model, &[]);
    let c = client();
    let (not_found, not_allowed) = (StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED);
    for (method, path, status, code) in [
        (Method::GET, "/nope", not_found, "not_found"),
        (Method::GET, "/books/1/pages", not_found, "not_found"),
        (Method::POST, "/ping", not_allowed, "method_not_allowed"),
        (Method::PUT, "/books", not_allowed, "method_not_allowed"),
        (Method::GET, "/tasks", not_allowed, "method_not_allowed"),
        (Method::DELETE, "/stats", not_allowed, "method_not_allowed"),
    ] {
        expect_refused(c.request(method, server.url(path)), status, code).await;
    }
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
    let stats: Value = json_answer(c.get(server.url("/stats"))).await;
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
