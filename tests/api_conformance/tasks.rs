//! `/tasks`: running and polling tasks, input errors, how task ids are
//! routed to actors (pool and per-task), and full mailboxes.

use super::*;

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

    let polled: Value = json_answer(c.get(server.url("/tasks/ledger-2026-11"))).await;
    assert_eq!(polled, done);

    let mixed = json!({"id": "t-mixed", "kind": "validate", "rows": [
        row("4000-100", 100, 0), row("4000-1000", 5, 0), row("4000-100", -1, 0),
        row("4000-100", 3, 3), row("4000-100", 0, 0), row("5000-100", 0, 90)]});
    let r: Value = json_answer(c.post(server.url("/tasks")).json(&mixed)).await;
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

    expect_refused(
        c.get(server.url("/tasks/never-sent")),
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
                let r: Value = json_answer(c.post(&url).json(&task)).await;
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
    let stats: Value = json_answer(client().get(server.url("/stats"))).await;
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
    let stats: Value = json_answer(c.get(server.url("/stats"))).await;
    assert_eq!(stats["actors"]["mode"], "per-task");
    assert_eq!(stats["actors"]["live"], 20, "one live actor per distinct id: {stats}");
    let polled: Value = json_answer(c.get(server.url("/tasks/job-3"))).await;
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
    let stats: Value = json_answer(c.get(server.url("/stats"))).await;
    assert!(stats["tasks"]["rejected_overloaded"].as_u64().unwrap() > 0, "{stats}");
    // The server recovers once the burst is over.
    assert_eq!(
        c.post(server.url("/tasks")).json(&task).send().await.unwrap().status(),
        200
    );
    server.stop();
}
