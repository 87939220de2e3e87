//! The workload's HTTP API (DESIGN.md "Workload HTTP API"): one axum router
//! that every hosting model serves. Every error is
//! `{"error":{"code":"<snake_case>","message":"<what is wrong and how to fix it>"}}`.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::books::{AddError, NewBook};
use crate::coldstart::ROUTES;
use crate::ops::{AddedBook, Op, Refusal, Reply};
use crate::tasks::{MAX_ROWS, TaskRequest, valid_task_id};
use crate::{AppState, Routing};

/// Largest `POST /books` body.
pub const MAX_BOOK_BODY_BYTES: usize = 64 * 1024;
/// Largest `POST /tasks` body: a 5,000-row task is about 350 KB of JSON
/// (70 bytes a row); 4 MiB leaves room for long account padding and whitespace.
pub const MAX_TASK_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest body any route accepts; hosts that buffer bodies stop reading here.
pub const MAX_REQUEST_BODY_BYTES: usize = MAX_TASK_BODY_BYTES;
/// Each route's lazy cache (its index in [`ROUTES`]): the first request
/// on a route computes it, like a JIT compiling the route's handler.
const ROUTE_PING: usize = 0;
const ROUTE_BOOKS: usize = 1;
const ROUTE_BOOK: usize = 2;
const ROUTE_TASKS: usize = 3;
const ROUTE_TASK: usize = 4;
const ROUTE_STATS: usize = 5;
const _: () = assert!(ROUTES.len() == ROUTE_STATS + 1);

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// The workload's router: every route of the API table, JSON errors for
/// unknown paths (404) and wrong methods (405). Every handler but
/// `/healthz`'s takes [`Warming`] first (the cold start's wait and the warm
/// mark; [`Ping`] does the same itself), instead of a middleware layer:
/// `Router::layer` wraps every route in one more boxed service, which cost
/// about six allocations per request (issue 16, docs/edge.md).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/ping", get(Ping))
        .route("/healthz", get(healthz))
        .route("/books", get(list_books).post(add_book))
        .route("/books/{id}", get(get_book).delete(delete_book))
        .route("/tasks", axum::routing::post(run_task))
        .route("/tasks/{id}", get(get_task))
        .route("/stats", get(stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

pub use crate::error::ApiError;

/// The API's own errors.
impl ApiError {
    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} does not exist"))
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }

    fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message).retry_after(1)
    }
}

/// A JSON body of at most `LIMIT` bytes: 415 without a JSON content type,
/// 413 over the limit, 400 for malformed JSON or invalid UTF-8, 422 for JSON
/// of the wrong shape (missing or unknown fields, wrong types).
pub struct JsonBody<T, const LIMIT: usize>(pub T);

impl<T: DeserializeOwned, const LIMIT: usize> FromRequest<AppState> for JsonBody<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let mut body = req.into_body();
        if let Some(n) = declared
            && n > LIMIT as u64
        {
            // Read (and drop) a moderately oversize body so the client, still
            // sending it, is not reset before it reads the 413; a huge one is
            // refused at once and its connection closed.
            if n <= (LIMIT + OVERSIZE_DISCARD_BYTES) as u64 {
                discard(&mut body, OVERSIZE_DISCARD_BYTES).await;
            }
            return Err(ApiError::too_large(LIMIT));
        }
        // One deadline for the whole body, not per read: a client trickling
        // a byte now and then must not hold the request open forever.
        let deadline = state.config.body_read_timeout;
        let bytes = tokio::time::timeout(deadline, read_limited(&mut body, LIMIT))
            .await
            .map_err(|_| ApiError::request_timeout(deadline))??;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Read the whole body: 400 when it cannot be read (a broken chunked
/// encoding, a client gone), 413 past `limit` bytes.
async fn read_limited(body: &mut Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("could not read the body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if bytes.len() + data.len() > limit {
            discard(body, OVERSIZE_DISCARD_BYTES).await;
            return Err(ApiError::too_large(limit));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes.freeze())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// How much of an oversize body is read and dropped before the 413 goes out.
const OVERSIZE_DISCARD_BYTES: usize = 1024 * 1024;

/// Read and drop up to `max` more bytes of `body`, for at most a second.
async fn discard(body: &mut Body, max: usize) {
    let mut seen = 0;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        while seen <= max
            && let Some(Ok(frame)) = body.frame().await
        {
            seen += frame.data_ref().map_or(0, |d| d.len());
        }
    })
    .await;
}

/// Parse a JSON object body. Syntax errors (and invalid UTF-8) are 400
/// `invalid_json`; well-formed JSON of the wrong shape is 422 `validation`.
pub fn parse_json<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let invalid = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    };
    // serde's derived structs also accept a JSON array of the fields in
    // order; the API takes objects only.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(invalid)?;
        return Err(ApiError::validation("the body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::validation(format!("the JSON has the wrong shape: {e}")),
        _ => invalid(e),
    })
}

/// Marks the process warm after its first request other than `/healthz`;
/// until then, requests wait for the start-up index (docs/policies.md
/// "Cold start"). Once warm, the index is built, so the warm path costs one
/// atomic load.
///
/// The first extractor of every handler but `healthz` (and of the 404 and
/// 405 fallbacks), so it runs before any other extractor, as the middleware
/// it replaces did. Its guard marks the process warm when the handler is
/// done, also when a later extractor rejects the request (that answer is a
/// response too); a request dropped while it runs (the client went away)
/// counts as well, since by then the index is built.
struct Warming(#[allow(dead_code)] Option<MarkWarm>);

/// Sets the warm flag when dropped.
struct MarkWarm(AppState);

impl Drop for MarkWarm {
    fn drop(&mut self) {
        self.0.warm.store(true, Ordering::Relaxed);
    }
}

impl FromRequestParts<AppState> for Warming {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.warm.load(Ordering::Relaxed) || parts.uri.path() == "/healthz" {
            return Ok(Warming(None));
        }
        state.cold.built().await;
        Ok(Warming(Some(MarkWarm(state.clone()))))
    }
}

/// `GET /ping`: `pong`. The route every model's cost per request is
/// measured on (issue 16), so it is a [`Handler`] of its own rather than an
/// `async fn`: axum boxes an `async fn` handler's future on every request,
/// while [`PingFuture`] is a plain value once the process is warm. Before
/// that, it does what [`Warming`] does for the other handlers (wait for the
/// start-up index, then mark the process warm), in a boxed future.
#[derive(Clone, Copy)]
struct Ping;

impl Handler<Ping, AppState> for Ping {
    type Future = PingFuture;

    fn call(self, req: Request, state: AppState) -> PingFuture {
        if state.warm.load(Ordering::Relaxed) {
            state.cold.route(ROUTE_PING);
            return PingFuture::Warm(Some(pong()));
        }
        PingFuture::Cold(Box::pin(async move {
            let (mut parts, _) = req.into_parts();
            let Ok(warming) = Warming::from_request_parts(&mut parts, &state).await;
            state.cold.route(ROUTE_PING);
            let response = pong();
            drop(warming);
            response
        }))
    }
}

/// The answer of `/ping`. The length is a static header: axum would
/// otherwise format it into a newly allocated header value every time.
fn pong() -> Response {
    ([(header::CONTENT_LENGTH, HeaderValue::from_static("4"))], "pong").into_response()
}

/// [`Ping`]'s future: the answer at once when warm, else the cold start's
/// wait first.
enum PingFuture {
    Warm(Option<Response>),
    Cold(std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>),
}

impl std::future::Future for PingFuture {
    type Output = Response;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Response> {
        match self.get_mut() {
            PingFuture::Warm(response) => {
                std::task::Poll::Ready(response.take().expect("PingFuture polled after it completed"))
            }
            PingFuture::Cold(future) => future.as_mut().poll(cx),
        }
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "model": state.config.model,
        "pid": std::process::id(),
        "uptime_ms": state.started.elapsed().as_millis() as u64,
        "warm": state.warm.load(Ordering::Relaxed),
    }))
    .into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_BYTES => Ok(Some(key.to_owned())),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"),
        )),
    }
}

/// Turn a reply the handler did not expect into an error: a refusal maps
/// to its 503, anything else is a bug between handler and backend.
fn refused(reply: Reply) -> ApiError {
    let retry = |status, code, message: String| ApiError::new(status, code, message).retry_after(1);
    match reply {
        Reply::Refused(Refusal::Overloaded(why)) => {
            ApiError::overloaded(format!("{why}; retry after the Retry-After delay"))
        }
        Reply::Refused(Refusal::Stopped(why)) => retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{why}: the server is shutting down; retry on a running server"),
        ),
        Reply::Refused(Refusal::Unreachable(why)) => retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "backend_unavailable",
            format!("the actor service is unreachable ({why}); retry after the Retry-After delay"),
        )
        .upstream(),
        Reply::Refused(Refusal::Recovering(why)) => retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering",
            format!("the state is being recovered from the journal ({why}); retry after the Retry-After delay"),
        ),
        Reply::Refused(Refusal::JournalFailed(why)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_unavailable",
            format!(
                "{why}; no change can be stored: fix the cause and restart the server, which recovers from the journal"
            ),
        ),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("unexpected reply from the actors: {other:?}"),
        ),
    }
}

async fn add_book(
    _warming: Warming,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(book): JsonBody<NewBook, MAX_BOOK_BODY_BYTES>,
) -> Result<Response, ApiError> {
    state.cold.route(ROUTE_BOOKS);
    let idempotency_key = idempotency_key(&headers)?;
    book.validate().map_err(ApiError::validation)?;
    let added = match state.execute(Op::AddBook { book, idempotency_key }).await {
        Reply::Added(added) => added,
        other => return Err(refused(other)),
    };
    let (status, book) = match added {
        Ok(AddedBook { book, replayed: false }) => (StatusCode::CREATED, book),
        // A replay answers 200 (not 201) with the book the key first created,
        // so a client can tell that nothing new was stored.
        Ok(AddedBook { book, replayed: true }) => (StatusCode::OK, book),
        Err(e @ AddError::IdempotencyConflict) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                e.to_string(),
            ));
        }
        Err(e @ AddError::Full(_)) => {
            return Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "store_full",
                e.to_string(),
            ));
        }
    };
    let location = HeaderValue::from_str(&format!("/books/{}", book.id)).expect("digits are a valid header");
    Ok((status, [(header::LOCATION, location)], axum::Json(&*book)).into_response())
}

async fn list_books(_warming: Warming, State(state): State<AppState>) -> Result<Response, ApiError> {
    state.cold.route(ROUTE_BOOKS);
    match state.execute(Op::ListBooks).await {
        Reply::Books(books) => Ok(axum::Json(books).into_response()),
        other => Err(refused(other)),
    }
}

fn book_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(&format!("book `{raw}`")))
}

async fn get_book(
    _warming: Warming,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    state.cold.route(ROUTE_BOOK);
    let id = book_id(&raw)?;
    match state.execute(Op::GetBook(id)).await {
        Reply::Book(Some(book)) => {
            // The book's derived entry: computed on its first request.
            state.cold.book(id);
            Ok(axum::Json(&*book).into_response())
        }
        Reply::Book(None) => Err(ApiError::not_found(&format!("book {id}"))),
        other => Err(refused(other)),
    }
}

async fn delete_book(
    _warming: Warming,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.cold.route(ROUTE_BOOK);
    let id = book_id(&raw)?;
    match state.execute(Op::DeleteBook(id)).await {
        Reply::Deleted(true) => Ok(StatusCode::NO_CONTENT),
        Reply::Deleted(false) => Err(ApiError::not_found(&format!("book {id}"))),
        other => Err(refused(other)),
    }
}

/// Whether a request asks for `Prefer: respond-async` (RFC 7240), in any of
/// its `Prefer` headers; never a rejection.
struct RespondAsync(bool);

impl<S: Send + Sync> FromRequestParts<S> for RespondAsync {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RespondAsync(
            parts
                .headers
                .get_all("prefer")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async")),
        ))
    }
}

/// `POST /tasks`: run the task and answer its result (200), or, with
/// `Prefer: respond-async` (RFC 7240), accept it and answer 202 `pending` at
/// once with a `Location` to poll; with `--journal` an accepted task is
/// journaled first and resumes after a crash.
async fn run_task(
    _warming: Warming,
    State(state): State<AppState>,
    RespondAsync(respond_async): RespondAsync,
    JsonBody(task): JsonBody<TaskRequest, MAX_TASK_BODY_BYTES>,
) -> Result<Response, ApiError> {
    state.cold.route(ROUTE_TASKS);
    task.validate().map_err(ApiError::validation)?;
    if !respond_async {
        return match state.execute(Op::RunTask(task)).await {
            Reply::Task(record) => Ok(axum::Json(record).into_response()),
            other => Err(refused(other)),
        };
    }
    match state.execute(Op::AcceptTask(task)).await {
        Reply::Task(record) => {
            let location = HeaderValue::from_str(&format!("/tasks/{}", record.id))
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
            let mut response = (StatusCode::ACCEPTED, axum::Json(record)).into_response();
            response.headers_mut().insert(header::LOCATION, location);
            response
                .headers_mut()
                .insert("preference-applied", HeaderValue::from_static("respond-async"));
            Ok(response)
        }
        other => Err(refused(other)),
    }
}

async fn get_task(
    _warming: Warming,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.cold.route(ROUTE_TASK);
    if !valid_task_id(&id) {
        return Err(ApiError::not_found(&format!("task `{id}`")));
    }
    match state.execute(Op::GetTask(id.clone())).await {
        Reply::TaskRecord(Some(record)) => Ok(axum::Json(record).into_response()),
        Reply::TaskRecord(None) => Err(ApiError::not_found(&format!("task `{id}`"))),
        other => Err(refused(other)),
    }
}

async fn stats(_warming: Warming, State(state): State<AppState>) -> Result<Response, ApiError> {
    state.cold.route(ROUTE_STATS);
    let s = match state.execute(Op::Stats).await {
        Reply::Stats(stats) => stats,
        other => return Err(refused(other)),
    };
    let mode = match s.routing {
        Routing::Pool(_) => "pool",
        Routing::PerTask => "per-task",
    };
    let mut body = json!({
        "books": s.books,
        "tasks": {
            "done": s.tasks_done,
            "rejected_overloaded": s.tasks_rejected_overloaded,
            "max_rows": MAX_ROWS,
        },
        "actors": {
            "mode": mode,
            "routing": s.routing.to_string(),
            "live": s.live_actors,
        },
        "journal": match &s.journal {
            None => json!({"enabled": false}),
            Some(j) => json!({
                "enabled": true,
                "path": j.path,
                "durability": j.durability,
                "events_appended": j.events_appended,
                "commits": j.commits,
                "largest_batch": j.largest_batch,
                "last_seq": j.last_seq,
                "snapshots": j.snapshots,
                "recovery": {
                    "snapshot_seq": j.recovery.snapshot_seq,
                    "events_replayed": j.recovery.events_replayed,
                    "ms": j.recovery.micros as f64 / 1000.0,
                    "tasks_resumed": j.recovery.tasks_resumed,
                },
                "error": j.error,
            }),
        },
        // Where the actors run: this process, or the split model's actor service.
        "rss_bytes": s.rss_bytes,
    });
    // A front of a sharded actor service: each node's own counts.
    if !s.shards.is_empty() {
        body["shards"] = json!(
            s.shards
                .iter()
                .map(|n| json!({
                    "shard": n.shard, "books": n.books, "tasks_done": n.tasks_done, "live_actors": n.live_actors,
                }))
                .collect::<Vec<_>>()
        );
    }
    Ok(axum::Json(body).into_response())
}

async fn not_found(_warming: Warming, req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {} {}; see docs/workload.md for the API",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(_warming: Warming, req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see docs/workload.md for the API",
            req.method(),
            req.uri().path()
        ),
    )
}
