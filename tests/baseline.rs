//! `hostlab serve baseline`: the bare hyper floor prints the standard ready
//! line, answers `GET /ping` like every model, keeps connections alive,
//! answers nothing else, and exits cleanly on SIGTERM.

mod common;

use common::Server;

#[tokio::test]
async fn baseline_answers_ping_and_prints_its_ready_line() {
    // `Server::start` checks the ready line strictly (model, url, pid).
    let server = Server::start("baseline", &[]);
    assert!(
        server
            .ready_line
            .starts_with("hostlab ready model=baseline url=http://127.0.0.1:"),
        "{}",
        server.ready_line
    );
    assert!(
        !server.ready_line.contains("admin="),
        "no admin endpoint: {}",
        server.ready_line
    );

    // One client, so the requests share a keep-alive connection.
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client.get(server.url("/ping")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(response.text().await.unwrap(), "pong");
    }

    // No router: nothing but /ping.
    for path in ["/books", "/healthz", "/ping/x"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = client.post(server.url("/ping")).send().await.unwrap();
    assert_eq!(response.status(), 404, "POST /ping");

    server.stop();
}
