//! `edge-actix`: the same workload router behind actix-web's HTTP stack.
//!
//! actix-web parses HTTP and runs its own single-threaded workers; each request
//! is turned into an `http::Request` and handed to the workload's axum router
//! as a tower `Service`, and the router's response is turned back. So both
//! edge hosts run the same handlers, and the models differ only in the server
//! stack in front of them. The actors live on a tokio runtime of their own,
//! shared by all actix workers, as they do in `edge`.
//!
//! Limits (docs/security.md): actix's own parser already refuses
//! `Content-Length` with `Transfer-Encoding`, repeated `Content-Length` or
//! `Transfer-Encoding`, obs-fold and heads over 128 KiB; this adapter adds
//! the URI, head-size, body-deadline and connection limits `edge` has.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use axum::body::Body;
use futures_util::StreamExt;
use tower::ServiceExt;

use crate::lifecycle::{self, Server};
use crate::limits::{self, Limits};
use crate::{ServeError, ServeOptions, bind_std, signals};
use hostlab_workloads::{MAX_REQUEST_BODY_BYTES, Workload, app};

pub(crate) fn serve(options: &ServeOptions) -> Result<(), ServeError> {
    // The actors need a runtime that runs on its own threads: actix's
    // workers do not drive it.
    let actors = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let workload = actors.block_on(Workload::start(options.workload_config()))?;
    let router = app(workload.clone());
    let listener = bind_std(options.listen)?;
    let addr = listener.local_addr()?;
    let model = options.model;
    let limit_s = options.policy.shutdown_limit.as_secs().max(1);
    let limits = options.limits;
    let open = Arc::new(AtomicUsize::new(0));

    actix_web::rt::System::new().block_on(lifecycle::lifecycle(model, async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(router.clone()))
                .app_data(web::Data::new(limits))
                .default_service(web::to(forward))
        })
        // Every connection holds a slot while open; one over the limit gets
        // a 503 for its first request and is closed (actix's own
        // per-worker limit would instead leave it waiting unaccepted).
        .on_connect(move |_, extensions| {
            extensions.insert(ConnectionSlot::take(&open, limits.max_connections));
        })
        .client_request_timeout(limits.header_read_timeout)
        // After a `Connection: close` answer to a request whose body is
        // still coming, actix waits for the client to hang up; do not wait
        // forever for a client that never does.
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        // actix treats SIGINT as an immediate stop; our contract drains on both.
        .disable_signals()
        .shutdown_timeout(limit_s)
        .listen(listener)?
        .run();
        signals::ignore_recycle_signal(model.name());
        Ok(ActixServer { addr, server })
    }))?;
    actors.block_on(workload.shutdown());
    drop(actors);
    Ok(())
}

/// A started actix-web server.
struct ActixServer {
    addr: std::net::SocketAddr,
    server: actix_web::dev::Server,
}

impl Server for ActixServer {
    fn addresses(&self) -> (std::net::SocketAddr, Option<std::net::SocketAddr>) {
        (self.addr, None)
    }

    async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            shutdown.await;
            handle.stop(true).await;
        });
        Ok(self.server.await?)
    }
}

/// Counts a connection while it is open (actix drops a connection's
/// extensions when it closes).
struct ConnectionSlot {
    open: Arc<AtomicUsize>,
    over_limit: bool,
}

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> ConnectionSlot {
        let n = open.fetch_add(1, Ordering::Relaxed) + 1;
        ConnectionSlot {
            open: open.clone(),
            over_limit: n > max,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The adapter: actix request in, axum router call, actix response out.
async fn forward(
    req: HttpRequest,
    mut payload: web::Payload,
    router: web::Data<axum::Router>,
    limits: web::Data<Limits>,
) -> HttpResponse {
    if req.conn_data::<ConnectionSlot>().is_some_and(|s| s.over_limit) {
        return into_actix(limits::too_many_connections(limits.max_connections)).await;
    }
    let head_bytes: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if head_bytes > limits::MAX_HEAD_BYTES {
        return into_actix(limits::refusal(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!("the request headers are over the {}-byte limit", limits::MAX_HEAD_BYTES),
        ))
        .await;
    }
    // Read at most one byte past the largest body any route accepts: the
    // router then answers 413 itself, with the same error body as `edge`. A
    // body declared larger than that is not read at all: the router refuses
    // it by its Content-Length, as `edge` does, before the client sends it.
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let read_body = declared.is_none_or(|n| n <= MAX_REQUEST_BODY_BYTES as u64);
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let probe = http::Request::builder().uri(target).body(()).unwrap_or_default();
    if let Some(refused) = limits::check_request(&probe) {
        return into_actix(refused).await;
    }
    let mut body = web::BytesMut::new();
    let read = tokio::time::timeout(limits.body_read_timeout, async {
        while read_body && let Some(chunk) = payload.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() > MAX_REQUEST_BODY_BYTES {
                break;
            }
        }
        Ok::<_, actix_web::error::PayloadError>(())
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return into_actix(limits::refusal(
                http::StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("could not read the body: {e}"),
            ))
            .await;
        }
        Err(_) => {
            let timeout = hostlab_workloads::api::ApiError::request_timeout(limits.body_read_timeout);
            return into_actix(axum::response::IntoResponse::into_response(timeout)).await;
        }
    }
    // actix-web 4 is built on `http` 0.2 and axum on `http` 1: the types are
    // copied by their byte forms.
    let mut request = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().path_and_query().map_or("/", |pq| pq.as_str()));
    for (name, value) in req.headers() {
        request = request.header(name.as_str(), value.as_bytes());
    }
    let request = match request.body(Body::from(body.freeze())) {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadRequest().body(format!("malformed request: {e}")),
    };
    let response = match router.get_ref().clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    into_actix(response).await
}

/// An axum response as an actix one.
async fn into_actix(response: http::Response<Body>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return HttpResponse::InternalServerError().body(format!("response body failed: {e}"));
        }
    };
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        if name == http::header::CONNECTION {
            // actix manages this header itself; `close` must go through its API.
            if value.as_bytes().eq_ignore_ascii_case(b"close") {
                out.force_close();
            }
            continue;
        }
        out.append_header((name.as_str(), value.as_bytes()));
    }
    out.body(bytes)
}
