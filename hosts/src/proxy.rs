//! `proxy`: the out-of-process model (IIS + ANCM out-of-process). The front
//! process listens for clients, runs the front pipeline, and forwards every
//! request over pooled keep-alive loopback connections to `hostlab serve app`,
//! a separate process the front's [`Manager`] starts, restarts and recycles.
//!
//! Each app generation listens on its own fresh port, so a pooled connection
//! can never carry a request to a process that is draining (hyper issues
//! #3553/#3077: reusing a connection the server is closing fails the request).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::manager::{Manager, Unavailable};

/// Longest the front waits for the app's response headers.
pub const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The proxy's inner service: pick the current app generation, forward.
#[derive(Clone)]
pub struct Upstream {
    manager: Manager,
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    pub fn new(manager: Manager) -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the idle timeout is not enforced at all.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Upstream { manager, client }
    }

    async fn forward(self, mut req: Request<Body>) -> Response<Body> {
        let guard = match self.manager.acquire().await {
            Ok(guard) => guard,
            Err(e) => return unavailable(e),
        };
        let target = format!(
            "{}{}",
            guard.generation().url,
            req.uri().path_and_query().map_or("/", |pq| pq.as_str())
        );
        match target.parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("cannot forward this URI: {e}"),
                );
            }
        }
        let sent = tokio::time::timeout(UPSTREAM_RESPONSE_TIMEOUT, self.client.request(req)).await;
        drop(guard);
        match sent {
            Ok(Ok(response)) => response.map(Body::new),
            Ok(Err(e)) => error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                &format!("the app process did not answer: {e}; it may have crashed, retry"),
            ),
            Err(_) => error(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                &format!("the app sent no response within {UPSTREAM_RESPONSE_TIMEOUT:?}"),
            ),
        }
    }
}

impl tower::Service<Request<Body>> for Upstream {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(req).await) })
    }
}

/// 503 for a request that could not get an app process.
pub fn unavailable(e: Unavailable) -> Response<Body> {
    let code = match e {
        Unavailable::QueueFull(_) => "overloaded",
        _ => "app_unavailable",
    };
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, code, &e.to_string());
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    response
}

/// An error in the workload API's format.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("static parts are valid")
}

/// `hostlab serve proxy`: the front process.
pub(crate) fn serve(options: crate::ServeOptions) -> Result<(), crate::ServeError> {
    use crate::front::{DrainSignal, FrontState};
    use crate::manager::Hosting;
    use crate::{admin, announce_ready, bind_std, signals};

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        let shutdown = signals::shutdown_signal();
        let hosting = Hosting::Proxy {
            app_args: options.child_args("app"),
        };
        let manager = Manager::start(hosting, options.policy.clone()).await;
        let state = FrontState::new();
        let admin_addr = match options.admin {
            Some(a) => Some(admin::serve(a, manager.clone(), Some(state.clone())).await?),
            None => None,
        };
        signals::recycle_on_sighup(manager.clone());
        let (drain, drain_rx) = DrainSignal::new();
        let serving = tokio::spawn(crate::front::serve(
            listener,
            state,
            Upstream::new(manager.clone()),
            drain_rx,
            options.policy.shutdown_limit,
        ));
        announce_ready(options.model, addr, admin_addr);
        shutdown.await;
        drain.drain();
        let _ = serving.await;
        manager.shutdown().await;
        Ok(())
    })
}
