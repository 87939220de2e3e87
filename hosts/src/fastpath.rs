//! `proxy`'s client-side fast path: each client request head of the plain,
//! common shape is parsed with `httparse` from one reused buffer, its edited
//! head (request id, forwarded headers, hop-by-hop headers stripped: what
//! [`crate::front::FrontPipeline`] does) is written straight to this client
//! connection's upstream connection ([`crate::relay`]), and the app's
//! response head is relayed as bytes with the pipeline's edits, then its body
//! by its framing. No `Request`, `HeaderMap` or hyper dispatcher per request.
//!
//! Anything else (HTTP/1.0, `Transfer-Encoding`, `Expect`, `Upgrade`, a
//! repeated `Content-Length`, a body that did not come with its head, an
//! unusual method or target, a malformed or oversize head, ...) is not
//! served here: the connection goes to hyper's server and the pipeline for
//! the rest of its life, starting with the bytes already read, so every
//! refusal and limit of the hyper path still applies (docs/proxy.md, "The
//! client-side fast path").

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;

use axum::body::Body;
use bytes::{Buf, BytesMut};
use http::Response;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::front::{CloseWhenIdle, ConnectionHandler, FrontState, Handoff, Pipelined};
#[cfg(doc)]
use crate::limits::MAX_HEAD_BYTES;
use crate::limits::{DEFAULT_PROXY_UPSTREAM_TIMEOUT, MAX_URI_BYTES};
use crate::proxy::Upstream;
use crate::relay::{self, Connection, Framing};

/// Most headers in one request head (hyper's server default); more go to
/// hyper, which refuses them.
const MAX_HEADERS: usize = 100;
/// Largest request head the fast path serves; larger ones (up to the
/// limit, [`MAX_HEAD_BYTES`], and beyond it) go to hyper, which decides.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body the fast path relays, and only when it came with
/// its head; larger or later bodies go to hyper, which streams them.
const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// One client connection of the `proxy` front, served by the fast path
/// first and by hyper (with `service`) after a request it does not serve.
pub(crate) struct ProxyConnection {
    state: Arc<FrontState>,
    peer_ip: String,
    upstream: Upstream,
    service: Pipelined<Upstream>,
}

impl ProxyConnection {
    /// `upstream` must be the one inside `service`, so that both paths use
    /// the same kept upstream connection.
    pub(crate) fn new(
        state: Arc<FrontState>,
        peer: SocketAddr,
        upstream: Upstream,
        service: Pipelined<Upstream>,
    ) -> ProxyConnection {
        ProxyConnection {
            state,
            peer_ip: peer.ip().to_string(),
            upstream,
            service,
        }
    }
}

impl ConnectionHandler for ProxyConnection {
    type Service = Pipelined<Upstream>;

    async fn take(self, mut tcp: TcpStream, idle: Arc<CloseWhenIdle>) -> Handoff<Self::Service> {
        let mut fast = FastPath {
            state: self.state,
            peer_ip: self.peer_ip,
            upstream: self.upstream,
            buf: BytesMut::with_capacity(4096),
            out: Vec::with_capacity(1024),
            answer: Vec::with_capacity(1024),
            request_id: Vec::with_capacity(40),
            sleep: None,
        };
        match fast.serve(&mut tcp, &idle).await {
            Next::Closed => Handoff::Closed,
            Next::Fallback => Handoff::Hyper {
                service: self.service,
                tcp,
                read: fast.buf.freeze(),
            },
        }
    }
}

/// How the fast path leaves a connection.
enum Next {
    Closed,
    /// hyper serves the rest, starting with what is in the buffer.
    Fallback,
}

/// What the buffer holds.
enum Prepared {
    /// Not yet a whole request head.
    Partial,
    /// Not a shape the fast path serves.
    Fallback,
    /// A whole request, its edited head (and body) encoded for the app.
    Request(Plain),
}

/// A request the fast path serves.
struct Plain {
    /// Head and body bytes to remove from the buffer.
    len: usize,
    head: bool,
    /// The client asked to close the connection after it.
    close: bool,
}

enum Read {
    Data,
    End,
    TimedOut,
    Idle,
}

/// The fast path's state for one client connection; the buffers are
/// reused from request to request.
struct FastPath {
    state: Arc<FrontState>,
    peer_ip: String,
    upstream: Upstream,
    /// Bytes read from the client and not yet served.
    buf: BytesMut,
    /// The request as it goes to the app.
    out: Vec<u8>,
    /// The response head (and a body that came with it) as it goes to the client.
    answer: Vec<u8>,
    /// This request's id.
    request_id: Vec<u8>,
    /// The header-read deadline, made on the first wait and reset after.
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl FastPath {
    async fn serve(&mut self, tcp: &mut TcpStream, idle: &CloseWhenIdle) -> Next {
        let header_read_timeout = self.state.limits().header_read_timeout;
        loop {
            // A whole request head, within the header-read timeout counted
            // from when the server starts waiting for it (so also the idle
            // keep-alive timeout), as hyper's server does.
            let deadline = tokio::time::Instant::now() + header_read_timeout;
            let plain = loop {
                if !self.buf.is_empty() {
                    match self.prepare() {
                        Prepared::Request(plain) => break plain,
                        Prepared::Partial if self.buf.len() <= MAX_HEAD => {}
                        _ => return Next::Fallback,
                    }
                } else if idle.is_set() {
                    return Next::Closed;
                }
                match self.read(tcp, idle, deadline).await {
                    Read::Data => {}
                    // A partial head at the end is dropped, as hyper does.
                    Read::End | Read::TimedOut | Read::Idle => return Next::Closed,
                }
            };
            self.buf.advance(plain.len);
            if !self.exchange(tcp, &plain).await {
                return Next::Closed;
            }
        }
    }

    /// Read what the client sent into the buffer; also ends at the
    /// deadline, and (with nothing buffered) when the connection should
    /// close once idle.
    async fn read(&mut self, tcp: &TcpStream, idle: &CloseWhenIdle, deadline: tokio::time::Instant) -> Read {
        let (buf, sleep) = (&mut self.buf, &mut self.sleep);
        let mut armed = false;
        std::future::poll_fn(|cx| {
            match relay::poll_read_buf(tcp, cx, buf) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Read::End),
                Poll::Ready(Ok(_)) => return Poll::Ready(Read::Data),
                Poll::Pending => {}
            }
            if buf.is_empty() && idle.poll_set(cx).is_ready() {
                return Poll::Ready(Read::Idle);
            }
            // The timer is set only when the read has to wait.
            if !armed {
                armed = true;
                match sleep {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    None => *sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
            }
            match sleep.as_mut().expect("armed").as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Read::TimedOut),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    fn prepare(&mut self) -> Prepared {
        prepare(
            &self.buf,
            &mut self.out,
            &mut self.request_id,
            &self.state,
            &self.peer_ip,
        )
    }

    /// Send the prepared request to the app and relay its answer; false
    /// when the client connection is to close.
    async fn exchange(&mut self, tcp: &mut TcpStream, plain: &Plain) -> bool {
        let state = self.state.clone();
        state.counters.requests.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight::enter(&state);
        let limits = &self.upstream.limits;
        let timeout = limits.upstream_timeout.unwrap_or(DEFAULT_PROXY_UPSTREAM_TIMEOUT);
        let guard = match self.upstream.manager.acquire().await {
            Ok(guard) => guard,
            Err(e) => return self.answer_front(tcp, crate::proxy::unavailable(e), plain).await,
        };
        let generation = guard.generation();
        let upstream = &self.upstream;
        let out = &self.out;
        let exchanged = tokio::time::timeout(timeout, async {
            let kept = upstream.kept_for(generation);
            let mut connection = relay::send(kept, || upstream.connect(generation), out).await?;
            let head_len = relay::read_raw_head(&mut connection).await?;
            Ok::<_, String>((connection, head_len))
        })
        .await;
        drop(guard);
        match exchanged {
            Ok(Ok((connection, head_len))) => self.relay_response(tcp, connection, head_len, plain, timeout).await,
            Ok(Err(e)) => self.answer_front(tcp, crate::proxy::bad_gateway(&e), plain).await,
            Err(_) => {
                self.answer_front(tcp, crate::proxy::gateway_timeout(timeout), plain)
                    .await
            }
        }
    }

    /// Relay the app's response, whose head of `head_len` bytes is at the
    /// start of `connection`'s buffer, with the pipeline's edits.
    async fn relay_response(
        &mut self,
        tcp: &mut TcpStream,
        mut connection: Connection,
        head_len: usize,
        plain: &Plain,
        timeout: std::time::Duration,
    ) -> bool {
        let closing = plain.close || self.state.is_draining();
        let answer = &mut self.answer;
        answer.clear();
        let (code, framing, keep_alive) = match encode_response_head(&connection.buf[..head_len], plain.head, answer) {
            Ok(head) => head,
            Err(e) => return self.answer_front(tcp, crate::proxy::bad_gateway(&e), plain).await,
        };
        answer.extend_from_slice(b"x-request-id: ");
        answer.extend_from_slice(&self.request_id);
        if closing {
            answer.extend_from_slice(b"\r\nconnection: close");
        }
        answer.extend_from_slice(b"\r\n\r\n");
        count_status(&self.state, code);
        connection.buf.advance(head_len);
        match framing {
            Framing::Length(n) if connection.buf.len() as u64 >= n => {
                // The whole body came with the head: one write to the client.
                answer.extend_from_slice(&connection.buf[..n as usize]);
                connection.buf.advance(n as usize);
                if keep_alive && connection.buf.is_empty() {
                    connection.last_used = Instant::now();
                    *self.upstream.slot.lock().expect("not poisoned") = Some(connection);
                }
                if tcp.write_all(answer).await.is_err() {
                    return false;
                }
            }
            framing => {
                if tcp.write_all(answer).await.is_err() {
                    return false;
                }
                let chunked = !matches!(framing, Framing::Length(_));
                let mut body = relay::streamed_body(connection, framing, keep_alive, &self.upstream.slot, timeout);
                while let Some(frame) = body.frame().await {
                    // Cut short: the client sees the connection close, as
                    // on hyper's path.
                    let Ok(frame) = frame else { return false };
                    let Ok(data) = frame.into_data() else { continue };
                    let written = if chunked {
                        answer.clear();
                        answer.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        answer.extend_from_slice(&data);
                        answer.extend_from_slice(b"\r\n");
                        tcp.write_all(answer).await
                    } else {
                        tcp.write_all(&data).await
                    };
                    if written.is_err() {
                        return false;
                    }
                }
                if chunked && tcp.write_all(b"0\r\n\r\n").await.is_err() {
                    return false;
                }
            }
        }
        !closing
    }

    /// Send an answer the front made itself (502, 503, 504) with the
    /// pipeline's response edits; false when the connection is to close.
    async fn answer_front(&mut self, tcp: &mut TcpStream, response: Response<Body>, plain: &Plain) -> bool {
        let closing = plain.close || self.state.is_draining();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        count_status(&self.state, parts.status.as_u16());
        let answer = &mut self.answer;
        answer.clear();
        answer.extend_from_slice(b"HTTP/1.1 ");
        answer.extend_from_slice(parts.status.as_str().as_bytes());
        answer.push(b' ');
        answer.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
        answer.extend_from_slice(b"\r\n");
        for (name, value) in &parts.headers {
            let name = name.as_str();
            if is_hop_by_hop(name) || name == "x-request-id" || name == "content-length" || name == "transfer-encoding"
            {
                continue;
            }
            answer.extend_from_slice(name.as_bytes());
            answer.extend_from_slice(b": ");
            answer.extend_from_slice(value.as_bytes());
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(format!("content-length: {}\r\nx-request-id: ", body.len()).as_bytes());
        answer.extend_from_slice(&self.request_id);
        if closing {
            answer.extend_from_slice(b"\r\nconnection: close");
        }
        answer.extend_from_slice(b"\r\n\r\n");
        answer.extend_from_slice(&body);
        tcp.write_all(answer).await.is_ok() && !closing
    }
}

/// Parse the request at the start of `buf` and, if the fast path
/// serves it, encode it for the app into `out` (and its id into
/// `request_id`).
fn prepare(buf: &[u8], out: &mut Vec<u8>, request_id: &mut Vec<u8>, state: &FrontState, peer_ip: &str) -> Prepared {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) => return Prepared::Partial,
        Ok(httparse::Status::Complete(_)) | Err(_) => return Prepared::Fallback,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Prepared::Fallback;
    };
    let head = match method {
        "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => false,
        "HEAD" => true,
        _ => return Prepared::Fallback,
    };
    if !plain_target(target.as_bytes()) {
        return Prepared::Fallback;
    }
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut length: Option<usize> = None;
    let mut close = false;
    let mut forwarded_for: Option<&[u8]> = None;
    let mut has_id = false;
    request_id.clear();
    for header in req.headers.iter() {
        let (name, value) = (header.name, header.value);
        if name.eq_ignore_ascii_case("content-length") {
            // A repeated length goes to hyper, whose sniffer refuses it.
            let Some(n) = length.is_none().then(|| decimal(value)).flatten() else {
                return Prepared::Fallback;
            };
            length = Some(n);
        } else if name.eq_ignore_ascii_case("connection") {
            // Only `close` and `keep-alive`: a header named here would be
            // hop-by-hop too, which hyper's path handles.
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Prepared::Fallback;
                }
            }
            continue;
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Prepared::Fallback;
        } else if is_hop_by_hop(name) || name.eq_ignore_ascii_case("x-forwarded-proto") {
            continue;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for.get_or_insert(value);
            continue;
        } else if !has_id && name.eq_ignore_ascii_case("x-request-id") {
            // The client's first id is kept (and passed on as sent).
            has_id = true;
            request_id.extend_from_slice(value);
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_id {
        state.write_request_id(request_id);
        out.extend_from_slice(b"x-request-id: ");
        out.extend_from_slice(request_id);
        out.extend_from_slice(b"\r\n");
    }
    // The client's address appended to an incoming value that is text,
    // else on its own (as the pipeline does).
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(earlier) = forwarded_for.filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))) {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n\r\n");
    let body = length.unwrap_or(0);
    if body > 0 {
        // Only a body that came whole with its head.
        let Some(bytes) = buf.get(head_len..head_len + body).filter(|_| body <= MAX_BUFFERED_BODY) else {
            return Prepared::Fallback;
        };
        out.extend_from_slice(bytes);
    }
    Prepared::Request(Plain {
        len: head_len + body,
        head,
        close,
    })
}

/// Encode the app's response head (`head`, a whole one) for the client
/// into `answer`, up to the request id: hop-by-hop headers and the app's
/// `X-Request-Id` dropped, the framing header written by the framing the
/// body is relayed with (chunked when it has no length). Returns the
/// status, that framing (RFC 9112 section 6.3: no body after `HEAD`, 204,
/// 304) and whether the upstream connection can be kept.
fn encode_response_head(head: &[u8], head_request: bool, answer: &mut Vec<u8>) -> Result<(u16, Framing, bool), String> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut storage);
    let (Ok(httparse::Status::Complete(_)), Some(code)) = (parsed.parse(head), parsed.code) else {
        return Err("the app's response head is malformed".into());
    };
    let (framing, keep_alive) = relay::raw_framing(parsed.version == Some(1), parsed.headers)?;
    let bodiless = head_request || code == 204 || code == 304;
    let framing = if bodiless { Framing::Length(0) } else { framing };
    answer.extend_from_slice(b"HTTP/1.1 ");
    answer.extend_from_slice(code.to_string().as_bytes());
    answer.push(b' ');
    answer.extend_from_slice(parsed.reason.unwrap_or("").as_bytes());
    answer.extend_from_slice(b"\r\n");
    let headers = &*parsed.headers;
    for header in headers {
        let name = header.name;
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case("x-request-id")
            || (!bodiless
                && (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")))
            || named_in_connection(name, headers)
        {
            continue;
        }
        answer.extend_from_slice(name.as_bytes());
        answer.extend_from_slice(b": ");
        answer.extend_from_slice(header.value);
        answer.extend_from_slice(b"\r\n");
    }
    match framing {
        // The head says what the body would have been; passed on as sent.
        _ if bodiless => {}
        Framing::Length(n) => {
            answer.extend_from_slice(b"content-length: ");
            answer.extend_from_slice(n.to_string().as_bytes());
            answer.extend_from_slice(b"\r\n");
        }
        Framing::Chunked | Framing::ToEnd => answer.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    Ok((code, framing, keep_alive))
}

/// Counts a request in `in_flight` while it lives (also when the
/// connection's future is dropped mid-request).
struct InFlight<'a>(&'a FrontState);

impl InFlight<'_> {
    fn enter(state: &FrontState) -> InFlight<'_> {
        state.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn count_status(state: &FrontState, code: u16) {
    let counters = &state.counters;
    let class = match code {
        200..=299 => &counters.status_2xx,
        300..=399 => &counters.status_3xx,
        400..=499 => &counters.status_4xx,
        _ => &counters.status_5xx,
    };
    class.fetch_add(1, Ordering::Relaxed);
}

/// The hop-by-hop headers of [`crate::front`]'s list, by name in any case.
fn is_hop_by_hop(name: &str) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case("te"),
        7 => name.eq_ignore_ascii_case("trailer") || name.eq_ignore_ascii_case("upgrade"),
        10 => name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive"),
        16 => name.eq_ignore_ascii_case("proxy-connection"),
        18 => name.eq_ignore_ascii_case("proxy-authenticate"),
        19 => name.eq_ignore_ascii_case("proxy-authorization"),
        _ => false,
    }
}

/// Whether a `Connection` header among `headers` names `name` (such a
/// header is hop-by-hop too).
fn named_in_connection(name: &str, headers: &[httparse::Header<'_>]) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
}

/// A `Content-Length` value: digits only (as RFC 9110 says), no sign, no
/// list.
fn decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 15 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A request target the fast path passes on as it is: origin form, within
/// the length limit, of characters that are plainly valid in a path and
/// query (RFC 3986 unreserved, sub-delims, `:`, `@`, `/`, `?`, `%`).
/// Anything else goes to hyper, whose URI parser decides.
fn plain_target(target: &[u8]) -> bool {
    target.first() == Some(&b'/')
        && target.len() <= MAX_URI_BYTES
        && target
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_targets_and_lengths_pass() {
        assert!(plain_target(b"/books?limit=5&x=%20"));
        for bad in [&b"*"[..], b"http://x/", b"/a b", b"/{x}", b"/\xff", b""] {
            assert!(!plain_target(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!plain_target(&[b'/'; MAX_URI_BYTES + 1]));
        assert_eq!(decimal(b"42"), Some(42));
        for bad in [&b""[..], b"+1", b"1,1", b" 1", b"0x10", b"99999999999999999"] {
            assert_eq!(decimal(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    /// `prepare` on `request`: the bytes for the app, or `None` when the
    /// request is not a fast-path shape (or not whole yet).
    fn for_app(request: &[u8]) -> Option<(String, Vec<u8>)> {
        let state = FrontState::new(crate::limits::Limits::default());
        let (mut out, mut id) = (Vec::new(), Vec::new());
        match prepare(request, &mut out, &mut id, &state, "192.0.2.7") {
            Prepared::Request(plain) => {
                assert!(plain.len <= request.len());
                Some((String::from_utf8(out).unwrap(), id))
            }
            Prepared::Partial | Prepared::Fallback => None,
        }
    }

    #[test]
    fn requests_go_to_the_app_with_the_pipelines_edits() {
        let (head, id) = for_app(
            b"GET /ping?x=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
              TE: trailers\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n",
        )
        .unwrap();
        let id = String::from_utf8(id).unwrap();
        assert_eq!(
            head,
            format!(
                "GET /ping?x=1 HTTP/1.1\r\nHost: x\r\nx-request-id: {id}\r\n\
                 x-forwarded-for: 203.0.113.1, 192.0.2.7\r\nx-forwarded-proto: http\r\n\r\n"
            )
        );
        assert!(id.starts_with(&format!("{:x}-", std::process::id())), "{id}");
        // A client's first id is kept and passed on; a body that came with
        // its head goes along; a forwarded-for that is not text is replaced.
        let (head, id) = for_app(
            b"POST /books HTTP/1.1\r\nX-Request-Id: a\r\nX-Request-Id: b\r\nX-Forwarded-For: \xff\r\nContent-Length: 2\r\n\r\nhi",
        )
        .unwrap();
        assert_eq!(id, b"a");
        assert_eq!(
            head,
            "POST /books HTTP/1.1\r\nX-Request-Id: a\r\nX-Request-Id: b\r\nContent-Length: 2\r\n\
             x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\r\nhi"
        );
    }

    #[test]
    fn unusual_requests_are_left_to_hyper() {
        for request in [
            &b"GET /ping HTTP/1.0\r\n\r\n"[..],
            b"POST /books HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /books HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
            b"POST /books HTTP/1.1\r\nContent-Length: 5\r\n\r\nhi",
            b"POST /books HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET /ping HTTP/1.1\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\n\r\n",
            b"GET http://x/ping HTTP/1.1\r\n\r\n",
            b"GET /ping HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET /ping HTTP/1.1\r\nHost: x\r\n",
            format!("GET /ping HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "b".repeat(MAX_HEAD)).as_bytes(),
        ] {
            assert!(for_app(request).is_none(), "{}", String::from_utf8_lossy(request));
        }
    }

    #[test]
    fn response_heads_are_relayed_with_the_pipelines_edits() {
        let mut answer = Vec::new();
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: keep-alive, x-hop\r\n\
                     x-hop: 1\r\nkeep-alive: timeout=5\r\nx-request-id: app\r\ncontent-length: 4\r\n\r\n";
        let (code, framing, keep) = encode_response_head(head, false, &mut answer).unwrap();
        assert_eq!((code, framing, keep), (200, Framing::Length(4), true));
        assert_eq!(
            String::from_utf8(answer).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n"
        );
        // Chunked and to-the-end bodies go out chunked; HEAD, 204 and 304
        // have no body whatever their head says.
        for (head, head_request, expected) in [
            (
                &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
                false,
                (Framing::Chunked, true),
            ),
            (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
                false,
                (Framing::ToEnd, false),
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n",
                true,
                (Framing::Length(0), true),
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false, (Framing::Length(0), true)),
            (
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                false,
                (Framing::Length(0), true),
            ),
        ] {
            let mut answer = Vec::new();
            let (_, framing, keep) = encode_response_head(head, head_request, &mut answer).unwrap();
            assert_eq!((framing, keep), expected, "{}", String::from_utf8_lossy(head));
            let answer = String::from_utf8(answer).unwrap();
            assert_eq!(
                answer.contains("transfer-encoding: chunked"),
                matches!(framing, Framing::Chunked | Framing::ToEnd),
                "{answer}"
            );
        }
        let mut answer = Vec::new();
        assert!(
            encode_response_head(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                false,
                &mut answer
            )
            .is_err()
        );
    }

    #[test]
    fn hop_by_hop_names_match_any_case() {
        for name in [
            "TE",
            "Trailer",
            "upgrade",
            "Connection",
            "KEEP-ALIVE",
            "Proxy-Connection",
        ] {
            assert!(is_hop_by_hop(name), "{name}");
        }
        for name in ["host", "x-request-id", "content-length", "tee"] {
            assert!(!is_hop_by_hop(name), "{name}");
        }
        let headers = [httparse::Header {
            name: "Connection",
            value: b"close, X-Secret",
        }];
        assert!(named_in_connection("x-secret", &headers));
        assert!(!named_in_connection("x-other", &headers));
    }
}
