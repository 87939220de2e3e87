//! `/books`: create, read, list and delete, input errors and body limits,
//! and creation made idempotent by `Idempotency-Key`.

use super::*;

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

    let list: Vec<Value> = json_answer(c.get(server.url("/books"))).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0], book);

    let got: Value = json_answer(c.get(server.url(&location))).await;
    assert_eq!(got, book);

    let resp = c.delete(server.url(&location)).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    expect_refused(c.get(server.url(&location)), StatusCode::NOT_FOUND, "not_found").await;
    expect_refused(c.delete(server.url(&location)), StatusCode::NOT_FOUND, "not_found").await;
    expect_refused(c.get(server.url("/books/abc")), StatusCode::NOT_FOUND, "not_found").await;
    let list: Vec<Value> = json_answer(c.get(server.url("/books"))).await;
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
        req
    };
    let json_ct = Some("application/json");
    let ok_body = br#"{"title":"T","author":"A"}"#.to_vec();
    let (bad_json, unsupported) = (StatusCode::BAD_REQUEST, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for (body, content_type, status, code) in [
        (b"{\"title\":".to_vec(), json_ct, bad_json, "invalid_json"),
        (b"not json".to_vec(), json_ct, bad_json, "invalid_json"),
        (
            b"{\"title\":\"\xff\xfe\",\"author\":\"A\"}".to_vec(),
            json_ct,
            bad_json,
            "invalid_json",
        ),
        (
            ok_body.clone(),
            Some("text/plain"),
            unsupported,
            "unsupported_media_type",
        ),
        (ok_body.clone(), None, unsupported, "unsupported_media_type"),
    ] {
        expect_refused(raw(body, content_type), status, code).await;
    }
    let resp = raw(ok_body, Some("application/json; charset=utf-8"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "content type parameters are fine");

    // Just over 64 KiB, with Content-Length and then streamed (chunked).
    let big = format!(r#"{{"title":"T","author":"A","pad":"{}"}}"#, "x".repeat(64 * 1024));
    expect_refused(
        raw(big.clone().into_bytes(), json_ct),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.into_bytes().chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let streamed = c
        .post(&url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    expect_error(streamed, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;

    let list: Vec<Value> = json_answer(c.get(&url)).await;
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
    let list: Vec<Value> = json_answer(c.get(server.url("/books"))).await;
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
    let stats: Value = json_answer(c.get(server.url("/stats"))).await;
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
