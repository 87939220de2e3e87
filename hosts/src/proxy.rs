//! `proxy`: the out-of-process model (IIS + ANCM out-of-process). The front
//! process listens for clients, runs the front pipeline, and forwards every
//! request over keep-alive loopback connections (one per client connection,
//! read and written in that client connection's task by [`crate::relay`])
//! to `hostlab serve app`, a
//! separate process the front's [`Manager`] starts, restarts and recycles.
//!
//! Each app generation listens on its own fresh port, so a kept connection
//! can never carry a request to a process that is draining (hyper issues
//! #3553/#3077: reusing a connection the server is closing fails the request).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::IntoResponse;
use hostlab_workloads::error::ApiError;
use http::{Request, Response, StatusCode};

use crate::limits::{DEFAULT_PROXY_UPSTREAM_TIMEOUT, Limits, refusal};
use crate::manager::{Generation, Manager, Unavailable};
use crate::relay::{self, Connection, Slot};

/// Longest the front waits to open a loopback connection to the app (502 after it).
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The proxy's inner service, one per client connection: pick the current
/// app generation and forward over this client connection's own upstream
/// connection.
///
/// HTTP/1.1 requests on one client connection are sequential, so giving each
/// client connection its own keep-alive upstream connection needs no shared
/// pool and no lock that two connections contend for (a pool's checkout is
/// the main cost of hyper-util's pooled client). Upstream connections are
/// bounded by client connections, and an upstream connection to an older
/// generation is never reused: it is replaced on the first request after a
/// switch. The upstream side is [`crate::relay`]: the request is written and
/// its response read by the client connection's own task, in the future
/// hyper polls for this request and in the response body it streams.
///
/// It is cloned for every request (by `oneshot` in the pipeline and in
/// [`tower::Service::call`]), so its state sits behind one `Arc`: a clone
/// is one reference count, not a clone of the manager's command channel.
#[derive(Clone)]
pub(crate) struct Upstream(Arc<UpstreamState>);

pub(crate) struct UpstreamState {
    pub(crate) manager: Manager,
    /// The kept upstream connection, between requests.
    pub(crate) slot: Slot,
    pub(crate) limits: Limits,
}

impl std::ops::Deref for Upstream {
    type Target = UpstreamState;

    fn deref(&self) -> &UpstreamState {
        &self.0
    }
}

impl Upstream {
    /// A fresh upstream slot for one client connection.
    pub(crate) fn for_client_connection(manager: Manager, limits: Limits) -> Upstream {
        Upstream(Arc::new(UpstreamState {
            manager,
            slot: Slot::default(),
            limits,
        }))
    }

    async fn forward(self, req: Request<Body>) -> Response<Body> {
        // A chunked body is read whole before anything goes upstream, and
        // sent on with a Content-Length (as nginx does by default): a broken
        // or ambiguous body never reaches the app, and the app sees one
        // framing only. Bodies with a Content-Length stream through; hyper
        // has checked their framing, and the app's own body deadline holds.
        let req = match buffer_chunked(req, self.limits.body_read_timeout).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let timeout = self.limits.upstream_timeout.unwrap_or(DEFAULT_PROXY_UPSTREAM_TIMEOUT);
        let guard = match self.manager.acquire().await {
            Ok(guard) => guard,
            Err(e) => return unavailable(e),
        };
        let generation = guard.generation();
        let sent = tokio::time::timeout(timeout, self.send(generation, req, timeout)).await;
        drop(guard);
        match sent {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => bad_gateway(&e),
            Err(_) => gateway_timeout(timeout),
        }
    }

    /// Send on this client connection's kept upstream connection if it
    /// belongs to `generation`, is open and was used recently, else on a
    /// new one ([`relay::exchange`] retries once, on a new connection, a
    /// request the kept connection failed to take).
    async fn send(
        &self,
        generation: &Generation,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Body>, String> {
        let kept = self.kept_for(generation);
        relay::exchange(kept, || self.connect(generation), req, &self.slot, timeout).await
    }

    /// This client connection's kept upstream connection, if it belongs to
    /// `generation`, is open and was used recently (so it never races the
    /// app closing an idle connection).
    pub(crate) fn kept_for(&self, generation: &Generation) -> Option<Connection> {
        let kept = self.slot.lock().expect("not poisoned").take();
        kept.filter(|kept| {
            kept.generation == generation.number
                && kept.last_used.elapsed() < self.limits.header_read_timeout / 2
                && kept.is_open()
        })
    }

    /// A new connection to `generation`'s app process.
    pub(crate) async fn connect(&self, generation: &Generation) -> Result<Connection, String> {
        let connect = tokio::net::TcpStream::connect(generation.addr);
        let tcp = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                format!(
                    "no connection to {} within {UPSTREAM_CONNECT_TIMEOUT:?}",
                    generation.addr
                )
            })?
            .map_err(|e| format!("cannot connect to {}: {e}", generation.addr))?;
        Ok(Connection::new(tcp, generation.number))
    }
}

/// Read a chunked request body whole (at most the largest body any route
/// accepts, within the body deadline) and hand the request on with a
/// `Content-Length`; other requests pass unchanged. The refusals close the
/// client connection.
async fn buffer_chunked(req: Request<Body>, deadline: Duration) -> Result<Request<Body>, Response<Body>> {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use http_body_util::{BodyExt, Limited};
    if !req.headers().contains_key(TRANSFER_ENCODING) {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    let limit = hostlab_workloads::MAX_REQUEST_BODY_BYTES;
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::too_large(limit).closing().into_response());
        }
        Ok(Err(e)) => {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &format!("could not read the chunked body: {e}"),
            ));
        }
        Err(_) => {
            return Err(ApiError::request_timeout(deadline).into_response());
        }
    };
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, bytes.len().into());
    Ok(Request::from_parts(parts, Body::from(bytes)))
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

/// 502 for a request the app did not answer.
pub(crate) fn bad_gateway(e: &str) -> Response<Body> {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "bad_gateway",
        format!("the app process did not answer: {e}; it may have crashed, retry"),
    )
    .upstream()
    .into_response()
}

/// 504 for a request the app sent no response head for in time.
pub(crate) fn gateway_timeout(timeout: Duration) -> Response<Body> {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "gateway_timeout",
        format!("the app sent no response within {timeout:?} (--upstream-timeout)"),
    )
    .upstream()
    .into_response()
}

/// 503 for a request that could not get an app process: a full queue is
/// the front's own limit, anything else the app's failure to start.
pub(crate) fn unavailable(e: Unavailable) -> Response<Body> {
    let error = match e {
        // ANCM's app_offline: the file's content, as HTML.
        Unavailable::AppOffline(page) => {
            let html = http::HeaderValue::from_static("text/html");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(http::header::CONTENT_TYPE, html)],
                page,
            )
                .into_response();
        }
        Unavailable::QueueFull(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string()),
        _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "app_unavailable", e.to_string()).upstream(),
    };
    error.retry_after(1).into_response()
}

/// `hostlab serve proxy`: the front process.
pub(crate) fn serve(options: crate::ServeOptions) -> Result<(), crate::ServeError> {
    use tower::Layer;

    use crate::front::{DrainSignal, FrontPipeline, FrontState};
    use crate::manager::Hosting;
    use crate::{admin, bind_std, signals};

    crate::lifecycle::serve(options.model, || async {
        let listener = tokio::net::TcpListener::from_std(bind_std(options.listen)?)?;
        let addr = listener.local_addr()?;
        let hosting = Hosting::Proxy {
            app_args: options.child_args(crate::Model::App),
        };
        let manager = Manager::start(hosting, options.policy.clone()).await;
        let state = FrontState::new(options.limits);
        let admin_addr = match options.admin {
            Some(a) => Some(
                admin::serve(
                    a,
                    options.admin_token.clone(),
                    manager.clone(),
                    Some(state.clone()),
                    None,
                )
                .await?,
            ),
            None => None,
        };
        signals::recycle_on_sighup(manager.clone());
        let (drain, drain_rx) = DrainSignal::new();
        // Each connection is served by the fast path (fastpath.rs) until a
        // request it does not serve itself; hyper and the pipeline serve the
        // rest of that connection, with the same upstream slot.
        let serving = tokio::spawn(crate::front::serve_with(
            listener,
            state.clone(),
            {
                let manager = manager.clone();
                let limits = options.limits;
                move |peer| {
                    let upstream = Upstream::for_client_connection(manager.clone(), limits);
                    let service = FrontPipeline::new(state.clone(), peer).layer(upstream.clone());
                    crate::fastpath::ProxyConnection::new(state.clone(), peer, upstream, service)
                }
            },
            drain_rx,
            options.policy.shutdown_limit,
        ));
        Ok(ProxyFront {
            addresses: (addr, admin_addr),
            manager,
            drain,
            serving,
        })
    })
}

/// A started `proxy` front.
struct ProxyFront {
    addresses: (std::net::SocketAddr, Option<std::net::SocketAddr>),
    manager: Manager,
    drain: crate::front::DrainSignal,
    serving: tokio::task::JoinHandle<()>,
}

impl crate::lifecycle::Server for ProxyFront {
    fn addresses(&self) -> (std::net::SocketAddr, Option<std::net::SocketAddr>) {
        self.addresses
    }

    async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), crate::ServeError> {
        shutdown.await;
        self.drain.drain();
        let _ = self.serving.await;
        self.manager.shutdown().await;
        Ok(())
    }
}
