//! `proxy`: the out-of-process model (IIS + ANCM out-of-process). The front
//! process listens for clients, runs the front pipeline, and forwards every
//! request over keep-alive loopback connections (one per client connection) to `hostlab serve app`,
//! a separate process the front's [`Manager`] starts, restarts and recycles.
//!
//! Each app generation listens on its own fresh port, so a pooled connection
//! can never carry a request to a process that is draining (hyper issues
//! #3553/#3077: reusing a connection the server is closing fails the request).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::manager::{Generation, Manager, Unavailable};

/// Longest the front waits for the app's response headers.
pub const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the front waits to open a loopback connection to the app.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The proxy's inner service, one per client connection: pick the current
/// app generation and forward over this client connection's own upstream
/// connection.
///
/// HTTP/1.1 requests on one client connection are sequential, so giving each
/// client connection its own keep-alive upstream connection needs no shared
/// pool and no lock on the request path (a pool's checkout is the main cost
/// of hyper-util's pooled client). Upstream connections are bounded by
/// client connections, and an upstream connection to an older generation is
/// never reused: it is replaced on the first request after a switch.
#[derive(Clone)]
pub struct Upstream {
    manager: Manager,
    connection: Arc<Mutex<Option<UpstreamConnection>>>,
}

struct UpstreamConnection {
    generation: u64,
    sender: SendRequest<Body>,
}

impl Upstream {
    /// A fresh upstream slot for one client connection.
    pub fn for_client_connection(manager: Manager) -> Upstream {
        Upstream {
            manager,
            connection: Arc::new(Mutex::new(None)),
        }
    }

    async fn forward(self, mut req: Request<Body>) -> Response<Body> {
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
        let sent = tokio::time::timeout(UPSTREAM_RESPONSE_TIMEOUT, self.send(generation, req)).await;
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
        let kept = self.connection.lock().expect("not poisoned").take();
        if let Some(kept) = kept
            && !fresh
            && kept.generation == generation.number
            && !kept.sender.is_closed()
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
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender)
    }

    fn put_back(&self, generation: u64, sender: SendRequest<Body>) {
        *self.connection.lock().expect("not poisoned") = Some(UpstreamConnection { generation, sender });
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

    let runtime = crate::server_runtime()?;
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
            Some(a) => Some(admin::serve(a, manager.clone(), Some(state.clone()), None).await?),
            None => None,
        };
        signals::recycle_on_sighup(manager.clone());
        let (drain, drain_rx) = DrainSignal::new();
        let serving = tokio::spawn(crate::front::serve(
            listener,
            state,
            {
                let manager = manager.clone();
                move || Upstream::for_client_connection(manager.clone())
            },
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
