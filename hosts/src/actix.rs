//! `edge-actix`: the same workload router behind actix-web's HTTP stack.
//!
//! actix-web parses HTTP and runs its own single-threaded workers; each request
//! is turned into an `http::Request` and handed to the workload's axum router
//! as a tower `Service`, and the router's response is turned back. So both
//! edge hosts run the same handlers, and the models differ only in the server
//! stack in front of them. The actors live on a tokio runtime of their own,
//! shared by all actix workers, as they do in `edge`.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use axum::body::Body;
use futures_util::StreamExt;
use tower::ServiceExt;

use crate::{ServeError, ServeOptions, announce_ready, bind_std, signals};
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
    let limit_s = options.shutdown_limit.as_secs().max(1);

    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(router.clone()))
                .default_service(web::to(forward))
        })
        // actix treats SIGINT as an immediate stop; our contract drains on both.
        .disable_signals()
        .shutdown_timeout(limit_s)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let shutdown = signals::shutdown_signal();
        actix_web::rt::spawn(async move {
            shutdown.await;
            handle.stop(true).await;
        });
        signals::ignore_recycle_signal(model.name());
        announce_ready(model, addr, None);
        server.await
    })?;
    actors.block_on(workload.shutdown());
    drop(actors);
    Ok(())
}

/// The adapter: actix request in, axum router call, actix response out.
async fn forward(req: HttpRequest, mut payload: web::Payload, router: web::Data<axum::Router>) -> HttpResponse {
    // Read at most one byte past the largest body any route accepts: the
    // router then answers 413 itself, with the same error body as `edge`. A
    // body declared larger than that is not read at all: the router refuses
    // it by its Content-Length, as `edge` does, before the client sends it.
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let read_body = declared.is_none_or(|n| n <= MAX_REQUEST_BODY_BYTES as u64);
    let mut body = web::BytesMut::new();
    while read_body && let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(e) => {
                return HttpResponse::BadRequest().body(format!("could not read the body: {e}"));
            }
        }
        if body.len() > MAX_REQUEST_BODY_BYTES {
            break;
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
        out.append_header((name.as_str(), value.as_bytes()));
    }
    out.body(bytes)
}
