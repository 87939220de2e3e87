//! The HTTP/1.1 server loop every hostlab server runs on hyper (limits,
//! timeouts, draining), and the front pipeline that `proxy`, `inprocess` and
//! the split front add around their inner service as a tower layer
//! ([`FrontPipeline`]: request id, forwarded headers, hop-by-hop stripping,
//! access counters), so those models differ only in the inner service that
//! finally handles the request: a loopback hop to the app (`proxy`) or the
//! workload's router called in-process (`inprocess`). `edge` serves its
//! router without the layer.
//!
//! Draining: once told to stop, the loop stops accepting, answers every
//! further request with `Connection: close` (so a keep-alive client moves to
//! another process after its next request instead of racing a closed
//! socket), and returns when every connection is closed or the limit passed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use http::header::{CONNECTION, Entry, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::limits::{self, AmbiguousFraming, ConnectionGate, FramingSniffer, Limits};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection
/// and must not be passed on to the next hop. As `HeaderName`s, so that the
/// check of each header of each request is a comparison of names (an enum
/// tag for the standard ones), not a case-insensitive string comparison.
static HOP_BY_HOP: [HeaderName; 8] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// Access counters of one front process (plain atomics, no lock per request).
#[derive(Debug, Default)]
pub struct AccessCounters {
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    pub status_2xx: AtomicU64,
    pub status_3xx: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    pub connections_open: AtomicU64,
}

/// A snapshot of [`AccessCounters`] for the admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct AccessSnapshot {
    pub requests: u64,
    pub in_flight: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub connections_open: u64,
}

impl AccessCounters {
    pub fn snapshot(&self) -> AccessSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AccessSnapshot {
            requests: get(&self.requests),
            in_flight: get(&self.in_flight),
            status_2xx: get(&self.status_2xx),
            status_3xx: get(&self.status_3xx),
            status_4xx: get(&self.status_4xx),
            status_5xx: get(&self.status_5xx),
            connections_open: get(&self.connections_open),
        }
    }
}

/// State shared by all connections of one server process.
pub struct FrontState {
    /// Connections open (every server), requests and statuses (counted by
    /// [`FrontPipeline`], so only where it is layered in).
    pub counters: AccessCounters,
    gate: ConnectionGate,
    draining: AtomicBool,
    /// Bumped to make every connection close once it is idle (before an
    /// idle suspend: a frozen process cannot answer its keep-alive clients).
    close_idle: watch::Sender<u64>,
    request_ids: AtomicU64,
    /// Prefix of generated request ids: this process's pid in hex and a
    /// `-`, so ids are unique across the processes of a model.
    id_prefix: String,
}

impl FrontState {
    pub fn new(limits: Limits) -> Arc<FrontState> {
        Arc::new(FrontState {
            counters: AccessCounters::default(),
            gate: ConnectionGate::new(limits),
            draining: AtomicBool::new(false),
            close_idle: watch::Sender::new(0),
            request_ids: AtomicU64::new(0),
            id_prefix: format!("{:x}-", std::process::id()),
        })
    }

    /// Close every keep-alive connection that is idle now (and every busy
    /// one after its current response); new connections are unaffected.
    pub fn close_idle_connections(&self) {
        self.close_idle.send_modify(|n| *n += 1);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn limits(&self) -> &Limits {
        self.gate.limits()
    }

    /// A new request id (as [`FrontState::next_request_id`] makes it),
    /// written into `out`: for the proxy's fast path, which writes heads
    /// as bytes.
    pub(crate) fn write_request_id(&self, out: &mut Vec<u8>) {
        let mut id = [0; MAX_REQUEST_ID_BYTES];
        let len = self.new_request_id(&mut id);
        out.extend_from_slice(&id[..len]);
    }

    /// The next id, `<pid hex>-<counter hex>`, written at the start of
    /// `id` without `fmt`; returns its length.
    fn new_request_id(&self, id: &mut [u8; MAX_REQUEST_ID_BYTES]) -> usize {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let prefix = self.id_prefix.as_bytes();
        id[..prefix.len()].copy_from_slice(prefix);
        prefix.len() + write_hex(&mut id[prefix.len()..], n)
    }

    /// A new request id, `<pid hex>-<counter hex>`: the prefix copied and
    /// the counter's hex digits written on the stack (no `fmt` machinery),
    /// then stored in this thread's [`ID_CHUNK`], so neither the id nor its
    /// copy in the response allocates (both are reference counts).
    fn next_request_id(&self) -> HeaderValue {
        let mut id = [0; MAX_REQUEST_ID_BYTES];
        let len = self.new_request_id(&mut id);
        let id = ID_CHUNK.with_borrow_mut(|chunk| {
            if chunk.capacity() < len {
                // Reuses the chunk's buffer if every id cut from it is gone,
                // else allocates a new one.
                chunk.reserve(ID_CHUNK_BYTES);
            }
            chunk.extend_from_slice(&id[..len]);
            chunk.split().freeze()
        });
        HeaderValue::from_maybe_shared(id).expect("hex digits are a valid header value")
    }
}

/// A pid (at most 8 hex digits and a `-`) and a u64 counter (at most 16 hex
/// digits).
const MAX_REQUEST_ID_BYTES: usize = 25;

/// Bytes of request ids allocated at once: about 60 ids of a busy process.
const ID_CHUNK_BYTES: usize = 1024;

thread_local! {
    /// Where this thread writes its generated request ids: each id is cut
    /// off the chunk as a `Bytes` sharing its buffer, so an id costs no
    /// allocation of its own (one per [`ID_CHUNK_BYTES`]).
    static ID_CHUNK: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
}

/// Write `n` in lowercase hex without leading zeros (as `{n:x}` does) at
/// the start of `out`; returns the number of digits.
fn write_hex(out: &mut [u8], n: u64) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - (n | 1).leading_zeros()).div_ceil(4) as usize;
    for (i, byte) in out[..digits].iter_mut().rev().enumerate() {
        *byte = DIGITS[((n >> (4 * i)) & 0xf) as usize];
    }
    digits
}

/// What every server does around its service: refuse ambiguous framing and
/// requests over the limits, and, while draining, answer with
/// `Connection: close`.
async fn handle<S>(
    state: Arc<FrontState>,
    ambiguous: AmbiguousFraming,
    service: S,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send,
    S::Future: Send,
{
    if ambiguous.is_set() {
        return Ok(limits::ambiguous_framing());
    }
    if let Some(refused) = limits::check_request(&req) {
        return Ok(refused);
    }
    // A request without a body (every GET, hyper's `Incoming::empty()`)
    // gets axum's empty body, which boxes nothing; `Body::new` would box
    // the `Incoming` (an allocation per request for nothing to read).
    let req = req.map(|body| {
        if body.is_end_stream() {
            Body::empty()
        } else {
            Body::new(body)
        }
    });
    let Ok(mut response) = service.oneshot(req).await;
    if state.is_draining() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// The front pipeline's per-request modules as a tower layer, for one
/// client connection: request id, forwarded headers, hop-by-hop stripping
/// around the inner service, then the access counters of `state`.
#[derive(Clone)]
pub struct FrontPipeline {
    state: Arc<FrontState>,
    /// The client's address as a header value, made once per connection.
    peer_ip: HeaderValue,
}

impl FrontPipeline {
    pub fn new(state: Arc<FrontState>, peer: SocketAddr) -> FrontPipeline {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string()).expect("an IP address is a valid header value");
        FrontPipeline { state, peer_ip }
    }

    /// The request half of the pipeline: count the request, strip
    /// hop-by-hop headers, add the request id and the forwarded headers.
    /// Returns what the response half needs.
    fn request(&self, req: &mut Request<Body>) -> ResponseHalf {
        let state = &self.state;
        state.counters.requests.fetch_add(1, Ordering::Relaxed);
        // Counted down when the response half is done or dropped: hyper drops
        // the future when the client disconnects mid-request, and the count
        // must still go down.
        state.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut half = ResponseHalf {
            state: state.clone(),
            request_id: HeaderValue::from_static(""),
        };
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        // Room for the three added headers at once, not a regrowth per insert.
        headers.reserve(3);
        // Entries, so that each header is looked up (hashed) once.
        let request_id = match headers.entry(&X_REQUEST_ID) {
            Entry::Occupied(id) => id.get().clone(),
            Entry::Vacant(slot) => slot.insert(state.next_request_id()).clone(),
        };
        match headers.entry(&X_FORWARDED_FOR) {
            Entry::Occupied(mut earlier) => {
                let appended = match earlier.get().to_str() {
                    Ok(earlier) => {
                        HeaderValue::from_str(&format!("{earlier}, {}", self.peer_ip.to_str().unwrap_or(""))).ok()
                    }
                    Err(_) => Some(self.peer_ip.clone()),
                };
                if let Some(v) = appended {
                    earlier.insert(v);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(self.peer_ip.clone());
            }
        }
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        half.request_id = request_id;
        half
    }
}

/// The response half of the pipeline for one request: the request id to
/// send back and the counters to update. Dropping it (done or not) counts
/// the request out of `in_flight`.
struct ResponseHalf {
    state: Arc<FrontState>,
    request_id: HeaderValue,
}

impl ResponseHalf {
    fn respond(self, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        strip_hop_by_hop(headers);
        headers.insert(&X_REQUEST_ID, self.request_id.clone());
        let counters = &self.state.counters;
        let class = match response.status().as_u16() {
            200..=299 => &counters.status_2xx,
            300..=399 => &counters.status_3xx,
            400..=499 => &counters.status_4xx,
            _ => &counters.status_5xx,
        };
        class.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ResponseHalf {
    fn drop(&mut self) {
        self.state.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> tower::Layer<S> for FrontPipeline {
    type Service = Pipelined<S>;

    fn layer(&self, inner: S) -> Pipelined<S> {
        Pipelined {
            pipeline: self.clone(),
            inner,
        }
    }
}

/// A service with the [`FrontPipeline`] around it.
#[derive(Clone)]
pub struct Pipelined<S> {
    pipeline: FrontPipeline,
    inner: S,
}

impl<S> tower::Service<Request<Body>> for Pipelined<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = PipelinedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// Calls the inner service itself, made ready by `poll_ready` (no clone
    /// of it per request: the connection loop already clones this service
    /// for each request).
    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let half = self.pipeline.request(&mut req);
        PipelinedFuture {
            inner: self.inner.call(req),
            half: Some(half),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's answer, then the response half of the pipeline:
    /// a plain future, not a boxed one (one allocation less per request).
    pub struct PipelinedFuture<F> {
        #[pin]
        inner: F,
        half: Option<ResponseHalf>,
    }
}

impl<F> std::future::Future for PipelinedFuture<F>
where
    F: std::future::Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.inner.poll(cx));
        if let Some(half) = this.half.take() {
            half.respond(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    // Almost no request has one: one pass over the names instead of a
    // removal per hop-by-hop name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// How long a draining front keeps an idle keep-alive connection open for
/// its client's next request (which it answers with `Connection: close`)
/// before it closes the connection itself.
const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Tells a [`serve`] loop to stop accepting and drain.
#[derive(Clone)]
pub struct DrainSignal(watch::Sender<bool>);

impl DrainSignal {
    pub fn new() -> (DrainSignal, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (DrainSignal(tx), rx)
    }

    pub fn drain(&self) {
        let _ = self.0.send(true);
    }
}

/// "Close this connection once it is idle": set for every open connection
/// by the server's one watcher task, after the drain grace period or on
/// [`FrontState::close_idle_connections`]. Checking it is one atomic load
/// and, when the connection task waits, one waker registration: no lock,
/// where the two `watch` receivers each connection polled before took one
/// on every wake-up of its task.
#[derive(Default)]
pub struct CloseWhenIdle {
    set: AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl CloseWhenIdle {
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready once the flag is set; wakes the task that polled it last.
    pub fn poll_set(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.is_set() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.is_set() { Poll::Ready(()) } else { Poll::Pending }
    }

    pub async fn wait(&self) {
        std::future::poll_fn(|cx| self.poll_set(cx)).await
    }
}

/// The open connections of one [`serve_with`] loop, for the watcher task
/// that tells them to close when idle. Touched once when a connection
/// opens and once when it closes, never per request.
#[derive(Default)]
struct OpenConnections {
    next: u64,
    /// Each open connection's flag, with the close-idle count when it
    /// opened: a request to close idle connections made before a connection
    /// opened does not close it.
    open: std::collections::HashMap<u64, (u64, Arc<CloseWhenIdle>)>,
}

impl OpenConnections {
    /// Flag the connections that opened before close-idle count `before`
    /// (`u64::MAX`: all of them).
    fn close_when_idle(&self, before: u64) {
        for (opened, flag) in self.open.values() {
            if *opened < before {
                flag.set();
            }
        }
    }
}

/// How a server takes each accepted connection. [`serve`] hands every
/// connection to hyper at once; `proxy` first serves it on its own fast
/// path (`fastpath.rs`) and hands it to hyper only for a request it does
/// not serve itself.
pub trait ConnectionHandler: Send + 'static {
    /// The service hyper serves the connection with, if it gets it.
    type Service: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static;

    /// Serve `tcp` for as long as this handler can; `idle` says when the
    /// connection should close once idle (drain, idle suspend).
    fn take(self, tcp: TcpStream, idle: Arc<CloseWhenIdle>) -> impl Future<Output = Handoff<Self::Service>> + Send;
}

/// What a [`ConnectionHandler`] did with its connection.
pub enum Handoff<S> {
    /// It served the connection until it closed.
    Closed,
    /// hyper serves the rest of the connection with `service`, starting
    /// with the bytes `read` already taken from `tcp`.
    Hyper {
        service: S,
        tcp: TcpStream,
        read: bytes::Bytes,
    },
}

/// The plain [`ConnectionHandler`]: hyper from the first byte.
struct HyperOnly<S>(S);

impl<S> ConnectionHandler for HyperOnly<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Service = S;

    async fn take(self, tcp: TcpStream, _idle: Arc<CloseWhenIdle>) -> Handoff<S> {
        Handoff::Hyper {
            service: self.0,
            tcp,
            read: bytes::Bytes::new(),
        }
    }
}

/// A stream that first yields bytes already read from it (by a
/// [`ConnectionHandler`] that then handed the connection to hyper).
pub struct Rewind<T> {
    read: bytes::Bytes,
    inner: T,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            let part = self.read.split_to(n);
            buf.put_slice(&part);
            return Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accept connections on `listener` and serve each with a service from
/// `new_service` (called once per connection with the client's address),
/// until `drain` fires; then drain (see the module docs) for at most `limit`.
pub async fn serve<S>(
    listener: TcpListener,
    state: Arc<FrontState>,
    new_service: impl Fn(SocketAddr) -> S,
    drain: watch::Receiver<bool>,
    limit: Duration,
) where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    serve_with(listener, state, move |peer| HyperOnly(new_service(peer)), drain, limit).await;
}

/// [`serve`], with each connection taken by a [`ConnectionHandler`] from
/// `new_connection` first.
pub async fn serve_with<H>(
    listener: TcpListener,
    state: Arc<FrontState>,
    new_connection: impl Fn(SocketAddr) -> H,
    mut drain: watch::Receiver<bool>,
    limit: Duration,
) where
    H: ConnectionHandler,
    <H::Service as tower::Service<Request<Body>>>::Future: Send,
{
    let closed = Arc::new(Notify::new());
    let connections = Arc::new(std::sync::Mutex::new(OpenConnections::default()));
    // One watcher per server flips the flags of the open connections: after
    // the drain grace period (every request in it got `Connection: close`),
    // or when told to close idle connections.
    let watcher = tokio::spawn({
        let (connections, mut drain) = (connections.clone(), drain.clone());
        let mut close_idle = state.close_idle.subscribe();
        async move {
            loop {
                tokio::select! {
                    changed = close_idle.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = *close_idle.borrow_and_update();
                        connections.lock().expect("not poisoned").close_when_idle(now);
                    }
                    () = async { let _ = drain.wait_for(|d| *d).await; } => {
                        tokio::time::sleep(IDLE_GRACE.min(limit)).await;
                        connections.lock().expect("not poisoned").close_when_idle(u64::MAX);
                        return;
                    }
                }
            }
        }
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = drain.wait_for(|d| *d) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some((tcp, permit)) = state.gate.admit(tcp) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // One handler per connection: the proxy keeps its upstream
        // connection there (HTTP/1 requests on a connection are sequential).
        let handler = new_connection(peer);
        let (state, closed) = (state.clone(), closed.clone());
        let idle = Arc::new(CloseWhenIdle::default());
        let key = {
            let mut connections = connections.lock().expect("not poisoned");
            let key = connections.next;
            connections.next += 1;
            let opened = *state.close_idle.borrow();
            connections.open.insert(key, (opened, idle.clone()));
            key
        };
        let connections = connections.clone();
        state.counters.connections_open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let result = match handler.take(tcp, idle.clone()).await {
                Handoff::Closed => Ok(()),
                Handoff::Hyper {
                    service: inner,
                    tcp,
                    read,
                } => {
                    let (tcp, ambiguous) = FramingSniffer::new(Rewind { read, inner: tcp });
                    let service = hyper::service::service_fn({
                        let state = state.clone();
                        move |req| handle(state.clone(), ambiguous.clone(), inner.clone(), req)
                    });
                    let conn = state
                        .gate
                        .limits()
                        .http1_builder()
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        result = conn.as_mut() => result,
                        () = idle.wait() => {
                            // Draining and still open after the grace period,
                            // or told to close idle connections: close it once
                            // it is idle.
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection from {peer}: {e}");
            }
            connections.lock().expect("not poisoned").open.remove(&key);
            state.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
            closed.notify_waiters();
        });
    }
    drop(listener);
    state.draining.store(true, Ordering::Relaxed);
    let open = || state.counters.connections_open.load(Ordering::Relaxed);
    let drained = tokio::time::timeout(limit, async {
        while open() > 0 {
            // Re-check at least every 50 ms: a notify can slip between the
            // load and the wait.
            let _ = tokio::time::timeout(Duration::from_millis(50), closed.notified()).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still open after the drain limit of {limit:?}; closing them",
            open()
        );
    }
    watcher.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::Layer;

    /// An inner service that answers with the request's headers as seen,
    /// plus a hop-by-hop header of its own.
    fn echo_headers() -> tower::util::BoxCloneService<Request<Body>, Response<Body>, Infallible> {
        tower::util::BoxCloneService::new(tower::service_fn(|req: Request<Body>| async move {
            let mut response = Response::builder().status(201).header("keep-alive", "timeout=5");
            for (name, value) in req.headers() {
                response = response.header(format!("seen-{name}"), value);
            }
            Ok::<_, Infallible>(response.body(Body::empty()).unwrap())
        }))
    }

    #[tokio::test]
    async fn the_pipeline_adds_ids_and_forwarded_headers_and_counts() {
        let state = FrontState::new(Limits::default());
        let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let service = FrontPipeline::new(state.clone(), peer).layer(echo_headers());
        let request = Request::builder()
            .uri("/ping")
            .header("connection", "x-secret")
            .header("x-secret", "drop me")
            .header("x-forwarded-for", "203.0.113.1")
            .body(Body::empty())
            .unwrap();
        let Ok(response) = service.clone().oneshot(request).await;
        let headers = response.headers();
        assert_eq!(response.status(), 201);
        assert_eq!(headers["seen-x-forwarded-for"], "203.0.113.1, 192.0.2.7");
        assert_eq!(headers["seen-x-forwarded-proto"], "http");
        let id = headers["x-request-id"].clone();
        assert_eq!(headers["seen-x-request-id"], id, "the app sees the id the client gets");
        assert!(!headers.contains_key("seen-connection") && !headers.contains_key("seen-x-secret"));
        assert!(
            !headers.contains_key("keep-alive"),
            "hop-by-hop headers of the response are stripped"
        );

        let request = Request::builder()
            .header("x-request-id", "mine")
            .body(Body::empty())
            .unwrap();
        let Ok(response) = service.oneshot(request).await;
        assert_eq!(response.headers()["x-request-id"], "mine", "a client's id is kept");
        assert_eq!(response.headers()["seen-x-forwarded-for"], "192.0.2.7");

        let counts = state.counters.snapshot();
        assert_eq!((counts.requests, counts.status_2xx, counts.in_flight), (2, 2, 0));
    }

    #[test]
    fn request_ids_are_the_pid_and_a_counter_in_hex() {
        let state = FrontState::new(Limits::default());
        let ids: Vec<HeaderValue> = (0..=256).map(|_| state.next_request_id()).collect();
        let pid = std::process::id();
        for n in [0u64, 1, 9, 10, 15, 16, 255, 256] {
            assert_eq!(ids[n as usize], format!("{pid:x}-{n:x}"));
        }
        let mut out = [0; 16];
        for n in [u64::MAX, 1 << 60, (1 << 60) - 1, 0xabc] {
            let len = write_hex(&mut out, n);
            assert_eq!(&out[..len], format!("{n:x}").as_bytes());
        }
    }

    #[tokio::test]
    async fn forwarded_for_that_is_not_text_is_replaced_and_hop_by_hop_names_match_any_case() {
        let state = FrontState::new(Limits::default());
        let peer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let service = FrontPipeline::new(state, peer).layer(echo_headers());
        let request = Request::builder()
            .header("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap())
            .header("Keep-Alive", "timeout=5")
            .header("TE", "trailers")
            .header("Proxy-Connection", "keep-alive")
            .header("x-request-id", "a")
            .header("x-request-id", "b")
            .body(Body::empty())
            .unwrap();
        let Ok(response) = service.oneshot(request).await;
        let headers = response.headers();
        assert_eq!(headers["seen-x-forwarded-for"], "192.0.2.7");
        for name in ["seen-keep-alive", "seen-te", "seen-proxy-connection"] {
            assert!(!headers.contains_key(name), "{name} is hop-by-hop");
        }
        assert_eq!(headers["x-request-id"], "a", "the client's first id is kept");
    }
}
