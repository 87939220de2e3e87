//! `proxy`: the out-of-process model (IIS + ANCM out-of-process). The front
//! process listens for clients, runs the front pipeline, and forwards every
//! request over keep-alive loopback connections (one per client connection,
//! polled in that client connection's task) to `hostlab serve app`, a
//! separate process the front's [`Manager`] starts, restarts and recycles.
//!
//! Each app generation listens on its own fresh port, so a kept connection
//! can never carry a request to a process that is draining (hyper issues
//! #3553/#3077: reusing a connection the server is closing fails the request).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::IntoResponse;
use hostlab_workloads::error::ApiError;
use http::{Request, Response, StatusCode};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::limits::{DEFAULT_PROXY_UPSTREAM_TIMEOUT, Limits, refusal};
use crate::manager::{Generation, Manager, Unavailable};

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
/// switch. The upstream connection is not a task of its own: the client
/// connection's task polls it through [`UpstreamDriver`], so a request and
/// its response never cross between tasks.
#[derive(Clone)]
pub(crate) struct Upstream {
    manager: Manager,
    slot: Arc<Mutex<UpstreamSlot>>,
    limits: Limits,
}

/// One client connection's upstream connection: its sending half, kept
/// between requests, and the connection itself, which [`UpstreamDriver`] polls.
#[derive(Default)]
struct UpstreamSlot {
    kept: Option<UpstreamConnection>,
    /// hyper's connection future (reads and writes the socket); replacing it
    /// closes the connection it replaced.
    connection: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The client connection's task, woken when a new connection is set.
    waker: Option<Waker>,
}

impl UpstreamSlot {
    /// Hand a new upstream connection to the driver (dropping, so closing,
    /// the one it replaces) and wake the driver's task to poll it.
    fn set_connection(&mut self, connection: http1::Connection<TokioIo<tokio::net::TcpStream>, Body>) {
        self.connection = Some(Box::pin(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream connection ended: {e}");
            }
        }));
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

struct UpstreamConnection {
    generation: u64,
    sender: SendRequest<Body>,
    /// When its last response came. The app closes a connection idle for its
    /// header-read timeout (the same as the front's); one idle for half of
    /// that is not reused, so a request never races the app's close.
    last_used: Instant,
}

/// Polls a client connection's upstream connection in the client
/// connection's own task (the companion future of [`crate::front::serve_with`]),
/// the way nginx's one event loop handles both sides of a request. It never
/// completes; dropping it (when the client connection ends) closes the
/// upstream connection.
pub(crate) struct UpstreamDriver(Arc<Mutex<UpstreamSlot>>);

impl Future for UpstreamDriver {
    type Output = Infallible;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Infallible> {
        let mut slot = self.0.lock().expect("not poisoned");
        if let Some(connection) = slot.connection.as_mut()
            && connection.as_mut().poll(cx).is_ready()
        {
            slot.connection = None;
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Upstream {
    /// A fresh upstream slot for one client connection, and the driver
    /// its task polls.
    pub(crate) fn for_client_connection(manager: Manager, limits: Limits) -> (Upstream, UpstreamDriver) {
        let slot = Arc::new(Mutex::new(UpstreamSlot::default()));
        let upstream = Upstream {
            manager,
            slot: slot.clone(),
            limits,
        };
        (upstream, UpstreamDriver(slot))
    }

    async fn forward(self, req: Request<Body>) -> Response<Body> {
        // A chunked body is read whole before anything goes upstream, and
        // sent on with a Content-Length (as nginx does by default): a broken
        // or ambiguous body never reaches the app, and the app sees one
        // framing only. Bodies with a Content-Length stream through; hyper
        // has checked their framing, and the app's own body deadline holds.
        let mut req = match buffer_chunked(req, self.limits.body_read_timeout).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let timeout = self.limits.upstream_timeout.unwrap_or(DEFAULT_PROXY_UPSTREAM_TIMEOUT);
        let guard = match self.manager.acquire().await {
            Ok(guard) => guard,
            Err(e) => return unavailable(e),
        };
        let generation = guard.generation();
        // hyper's connection-level client sends the URI as the request
        // target: keep it in origin form.
        if req.uri().authority().is_some() {
            let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            *req.uri_mut() = path.parse().expect("a path and query is a valid URI");
        }
        let sent = tokio::time::timeout(timeout, self.send(generation, req)).await;
        drop(guard);
        match sent {
            Ok(Ok(response)) => response.map(|body| Body::new(IdleTimeout::new(body, timeout))),
            Ok(Err(e)) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!("the app process did not answer: {e}; it may have crashed, retry"),
            )
            .upstream()
            .into_response(),
            Err(_) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                format!("the app sent no response within {timeout:?} (--upstream-timeout)"),
            )
            .upstream()
            .into_response(),
        }
    }

    /// Send on this client connection's upstream connection; if that
    /// connection turns out to be closed before the request went out, send
    /// it once more on a new one (the request is handed back unsent, so the
    /// retry is safe even for a POST).
    async fn send(
        &self,
        generation: &Generation,
        req: Request<Body>,
    ) -> Result<Response<hyper::body::Incoming>, String> {
        let mut sender = self.sender(generation, false).await?;
        let req = match sender.ready().await {
            Ok(()) => match sender.try_send_request(req).await {
                Ok(response) => {
                    self.put_back(generation.number, sender);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => return Err(e.into_error().to_string()),
                },
            },
            Err(_) => req,
        };
        let mut sender = self.sender(generation, true).await?;
        sender.ready().await.map_err(|e| e.to_string())?;
        let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
        self.put_back(generation.number, sender);
        Ok(response)
    }

    /// The kept connection if it belongs to `generation` and is open, else a new one.
    async fn sender(&self, generation: &Generation, fresh: bool) -> Result<SendRequest<Body>, String> {
        let kept = self.slot.lock().expect("not poisoned").kept.take();
        if let Some(kept) = kept
            && !fresh
            && kept.generation == generation.number
            && !kept.sender.is_closed()
            && kept.last_used.elapsed() < self.limits.header_read_timeout / 2
        {
            return Ok(kept.sender);
        }
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
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
        self.slot.lock().expect("not poisoned").set_connection(connection);
        Ok(sender)
    }

    fn put_back(&self, generation: u64, sender: SendRequest<Body>) {
        self.slot.lock().expect("not poisoned").kept = Some(UpstreamConnection {
            generation,
            sender,
            last_used: Instant::now(),
        });
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

/// A response body that fails when the next part does not arrive within
/// the timeout: an app that stalls mid-body must not hold the client
/// forever (the client sees the response cut short and the connection closed).
struct IdleTimeout<B> {
    body: B,
    timeout: Duration,
    /// Made on the first wait only: most bodies arrive with their headers,
    /// and then no timer is ever set.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> IdleTimeout<B> {
    fn new(body: B, timeout: Duration) -> Self {
        IdleTimeout {
            body,
            timeout,
            sleep: None,
        }
    }
}

impl<B> hyper::body::Body for IdleTimeout<B>
where
    B: hyper::body::Body<Data = bytes::Bytes, Error = hyper::Error> + Unpin,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    let message = format!("the app sent no more of its response body within {timeout:?}");
                    return Poll::Ready(Some(Err(message.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
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
        let serving = tokio::spawn(crate::front::serve_with(
            listener,
            state.clone(),
            {
                let manager = manager.clone();
                let limits = options.limits;
                move |peer| {
                    let (upstream, driver) = Upstream::for_client_connection(manager.clone(), limits);
                    (FrontPipeline::new(state.clone(), peer).layer(upstream), driver)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The driver alone polls the upstream connection, in the task that
    /// sends on it (nothing is spawned for it): a request on a connection
    /// set after the driver first ran gets its whole response.
    #[tokio::test(flavor = "current_thread")]
    async fn the_driver_runs_the_upstream_connection_in_the_senders_task() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let service =
                hyper::service::service_fn(|_req| async { Ok::<_, Infallible>(Response::new(Body::from("pong"))) });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
        let slot = Arc::new(Mutex::new(UpstreamSlot::default()));
        let driver = UpstreamDriver(slot.clone());
        let client = async {
            // Let the driver poll its empty slot first.
            tokio::task::yield_now().await;
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
            slot.lock().unwrap().set_connection(connection);
            let mut bodies = Vec::new();
            for _ in 0..3 {
                sender.ready().await.unwrap();
                let response = sender.send_request(Request::new(Body::empty())).await.unwrap();
                let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
                bodies.push(body.to_bytes());
            }
            bodies
        };
        let both = async {
            tokio::select! {
                bodies = client => bodies,
                never = driver => match never {},
            }
        };
        let bodies = tokio::time::timeout(Duration::from_secs(60), both)
            .await
            .expect("the driver polls the connection");
        assert_eq!(bodies, ["pong"; 3]);
    }
}
