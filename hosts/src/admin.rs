//! The admin endpoint of the front models (`--admin ADDR`; loopback only
//! unless `--admin-token` is set, and then every call must carry
//! `Authorization: Bearer TOKEN`):
//! `GET /status` (phase, pids, recycles, the last recycle's timings, the
//! front's access counters) and `POST /recycle` (recycle now, answer with
//! the recycle's report once it is done).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::ServeError;
use crate::front::FrontState;
use crate::manager::{Manager, RecycleReason};

#[derive(Clone)]
struct Admin {
    manager: Manager,
    front: Option<Arc<FrontState>>,
    /// The split model's actor service pid (0 while none runs).
    actors_pid: Option<Arc<AtomicU32>>,
}

/// Bind the admin endpoint and serve it in the background; returns its address.
pub async fn serve(
    addr: SocketAddr,
    token: Option<String>,
    manager: Manager,
    front: Option<Arc<FrontState>>,
    actors_pid: Option<Arc<AtomicU32>>,
) -> Result<SocketAddr, ServeError> {
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::AdminNotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/status", get(status))
        .route("/recycle", post(recycle))
        .fallback(|| async {
            admin_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "the admin endpoint has GET /status and POST /recycle",
            )
        })
        .method_not_allowed_fallback(|| async {
            admin_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET /status and POST /recycle",
            )
        })
        .with_state(Admin {
            manager,
            front,
            actors_pid,
        });
    let router = match token {
        Some(token) => {
            let token: Arc<[u8]> = token.into_bytes().into();
            router.layer(axum::middleware::from_fn(move |req, next| {
                require_token(token.clone(), req, next)
            }))
        }
        None => router,
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("admin endpoint failed: {e}");
        }
    });
    Ok(bound)
}

async fn status(State(admin): State<Admin>) -> Response {
    let status = admin.manager.status();
    axum::Json(json!({
        "phase": status.phase,
        "pids": {
            "front": std::process::id(),
            "app": status.app_pid,
            "actors": admin.actors_pid.as_ref().map(|p| p.load(Ordering::Relaxed)).filter(|p| *p != 0),
        },
        "generation": status.generation,
        "recycles": status.recycles,
        "crashes": status.crashes,
        "restarts_after_crash": status.restarts_after_crash,
        "cold_starts": status.cold_starts,
        "last_start_to_ready_ms": status.last_start_to_ready_ms,
        "last_recycle": status.last_recycle,
        // proxy only: inprocess and split fronts' connections wait in the
        // shared socket's accept queue, where nothing counts them.
        "held": {"requests": status.held_requests, "total_delay_ms": status.held_total_ms},
        "access": admin.front.as_ref().map(|f| f.counters.snapshot()),
        "policy": status.policy,
    }))
    .into_response()
}

async fn recycle(State(admin): State<Admin>) -> Response {
    match admin.manager.recycle(RecycleReason::Admin).await {
        Some(report) if report.error.is_none() => axum::Json(report).into_response(),
        Some(report) if report.skipped => (StatusCode::CONFLICT, axum::Json(report)).into_response(),
        Some(report) => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(report)).into_response(),
        None => admin_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the front is shutting down",
        ),
    }
}

/// Let a call through only with `Authorization: Bearer TOKEN`; the token is
/// compared in constant time, so the answer's timing does not tell how much
/// of a guess was right.
async fn require_token(token: Arc<[u8]>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use subtle::ConstantTimeEq;
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if bool::from(given.ct_eq(&token)) {
        return next.run(req).await;
    }
    let mut response = admin_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this admin endpoint needs `Authorization: Bearer TOKEN` with the --admin-token it was started with",
    );
    response
        .headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
    response
}

fn admin_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    hostlab_workloads::error::ApiError::new(status, code, message).into_response()
}
