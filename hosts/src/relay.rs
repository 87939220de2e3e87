//! The proxy's upstream half, written for the one job it has: send a request
//! the front pipeline has checked and edited to the app over this client
//! connection's own keep-alive loopback connection, and read the answer,
//! in the client connection's task, without hyper's client.
//!
//! hyper's connection-level client hands every request from `SendRequest`
//! to its connection's dispatcher through a channel, and the response back
//! through a oneshot, and runs a full read/write/flush loop of its own on
//! each wake-up (docs/proxy.md). Here the request head is encoded into one
//! buffer and written (with the body's first part when it is already there)
//! in one write, the response head is parsed with `httparse`, and a body
//! that arrived with its head (the common case on loopback) goes back as one
//! buffer, with no further read.
//!
//! The framing rules are HTTP/1.1's (RFC 9112 section 6.3): a response to
//! `HEAD`, a 204 or a 304 has no body; `Transfer-Encoding: chunked` is
//! decoded; otherwise `Content-Length` counts the body; otherwise the body
//! runs to the end of the connection. Informational (1xx) answers are
//! skipped. A connection is kept for the next request only if its response
//! was read to its end, its request went out whole, and the app did not say
//! `Connection: close`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Largest response head read from the app (hyper's client default buffer).
const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;
/// Most headers in one response (hyper's client default).
const MAX_RESPONSE_HEADERS: usize = 100;
/// Bytes read from the upstream socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// One open loopback connection to an app generation, with its read buffer.
pub(crate) struct Connection {
    pub(crate) tcp: TcpStream,
    /// Bytes read from the app and not yet handed on.
    pub(crate) buf: BytesMut,
    /// The request head is encoded here (kept to reuse its allocation).
    out: Vec<u8>,
    pub(crate) generation: u64,
    /// When its last response ended.
    pub(crate) last_used: Instant,
}

/// Where a kept connection waits for the client connection's next request.
pub(crate) type Slot = Arc<Mutex<Option<Connection>>>;

/// Why an exchange failed; `unsent` means no byte of the request reached
/// the connection, so it may be sent again on a new one.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) unsent: bool,
    pub(crate) message: String,
}

impl Failure {
    fn sent(message: impl Into<String>) -> Failure {
        Failure {
            unsent: false,
            message: message.into(),
        }
    }
}

impl Connection {
    pub(crate) fn new(tcp: TcpStream, generation: u64) -> Connection {
        let _ = tcp.set_nodelay(true);
        Connection {
            tcp,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(1024),
            generation,
            last_used: Instant::now(),
        }
    }

    /// Whether a kept connection still looks usable: the app has not
    /// closed it and has sent nothing unasked.
    pub(crate) fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.tcp.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Send `req` on `kept` (this client connection's kept connection, if any)
/// or else on a new connection from `connect`, and read its response head.
/// When the kept connection fails before it took any byte of the request,
/// the request goes out once more on a new connection: the app never saw
/// it, so this is safe even for a POST (the body's later parts have not
/// been read from the client yet). The response body reads the rest from
/// the connection and puts it back into `slot` when it ended cleanly and
/// the connection can carry another request. `idle_timeout` bounds the
/// wait for each later part of the body.
pub(crate) async fn exchange<F: Future<Output = Result<Connection, String>>>(
    kept: Option<Connection>,
    connect: impl FnOnce() -> F,
    req: Request<Body>,
    slot: &Slot,
    idle_timeout: Duration,
) -> Result<Response<Body>, String> {
    let (parts, mut body) = req.into_parts();
    let mut kept = kept;
    let mut out = kept.as_mut().map(|k| std::mem::take(&mut k.out)).unwrap_or_default();
    out.clear();
    encode_head(&parts, &mut out);
    // The body's first part goes out with the head when it is already here.
    let mut body_done = body.is_end_stream();
    if !body_done && let Some(frame) = body.frame().now_or_never_frame() {
        match frame {
            None => body_done = true,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
                body_done = body.is_end_stream();
            }
            Some(Err(e)) => return Err(format!("the client's request body failed: {e}")),
        }
    }
    let connection = send(kept, connect, &out).await?;
    let Connection {
        mut tcp,
        mut buf,
        generation,
        ..
    } = connection;
    let head_request = parts.method == Method::HEAD;
    let (head, request_whole) = {
        let (rd, mut wr) = tcp.split();
        // The rest of the body goes out while the answer is awaited: an
        // app may answer (408, 413) before it has read the whole body.
        let mut request_whole = body_done;
        let send_rest = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("the client's request body failed: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    wr.write_all(&data)
                        .await
                        .map_err(|e| format!("writing the request body: {e}"))?;
                }
            }
            Ok::<(), String>(())
        };
        let read_head = read_response_head(rd.as_ref(), &mut buf);
        tokio::pin!(send_rest, read_head);
        let head = loop {
            tokio::select! {
                sent = &mut send_rest, if !body_done => {
                    body_done = true;
                    match sent {
                        Ok(()) => request_whole = true,
                        // The app stopped reading (it may have answered
                        // already): wait for its answer all the same.
                        Err(e) => tracing::debug!("{e}"),
                    }
                }
                head = &mut read_head => break head.map_err(|f| f.message)?,
            }
        };
        (head, request_whole)
    };
    let ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    } = head;
    let framing = if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Length(0)
    } else {
        framing
    };
    let reusable = keep_alive && request_whole;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let connection = Connection {
        tcp,
        buf,
        out,
        generation,
        last_used: Instant::now(),
    };
    let body = match framing {
        Framing::Length(n) if connection.buf.len() as u64 >= n => {
            // The whole body came with the head: one buffer, no more reads.
            let mut connection = connection;
            let bytes = connection.buf.split_to(n as usize).freeze();
            if reusable && connection.buf.is_empty() {
                *slot.lock().expect("not poisoned") = Some(connection);
            }
            if bytes.is_empty() {
                Body::empty()
            } else {
                Body::from(bytes)
            }
        }
        framing => Body::new(streamed_body(connection, framing, reusable, slot, idle_timeout)),
    };
    *response.body_mut() = body;
    Ok(response)
}

/// Write `out` (a request head and the body's first part) on `kept`, or on
/// a new connection from `connect` when there is no kept one. When the kept
/// connection fails before it took any byte, `out` goes out once more on a
/// new connection: the app never saw it, so this is safe even for a POST.
pub(crate) async fn send<F: Future<Output = Result<Connection, String>>>(
    kept: Option<Connection>,
    connect: impl FnOnce() -> F,
    out: &[u8],
) -> Result<Connection, String> {
    Ok(match kept {
        Some(mut kept) => match write_first(&mut kept.tcp, out).await {
            Ok(()) => kept,
            Err(failure) if failure.unsent => {
                tracing::debug!(
                    "kept upstream connection failed unsent ({}); retrying on a new one",
                    failure.message
                );
                let mut fresh = connect().await?;
                write_first(&mut fresh.tcp, out).await.map_err(|f| f.message)?;
                fresh
            }
            Err(failure) => return Err(failure.message),
        },
        None => {
            let mut fresh = connect().await?;
            write_first(&mut fresh.tcp, out).await.map_err(|f| f.message)?;
            fresh
        }
    })
}

/// Read until a whole final (non-1xx) response head is at the start of
/// `connection`'s buffer (1xx answers are skipped, a 101 refused) and
/// return its length; the head stays in the buffer, for the caller to
/// parse and relay as bytes (the proxy's fast path).
pub(crate) async fn read_raw_head(connection: &mut Connection) -> Result<usize, String> {
    let Connection { tcp, buf, .. } = connection;
    loop {
        if !buf.is_empty() {
            let mut storage = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut parsed = httparse::Response::new(&mut storage);
            match parsed.parse(buf) {
                Ok(httparse::Status::Complete(len)) => match parsed.code.unwrap_or(0) {
                    101 => return Err("the app switched protocols; the front does not pass upgrades".into()),
                    100..=199 => {
                        buf.advance(len);
                        continue;
                    }
                    _ => return Ok(len),
                },
                Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(format!("the app's response head is over {MAX_RESPONSE_HEAD} bytes"));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(format!("the app's response head is malformed: {e}")),
            }
        }
        match std::future::poll_fn(|cx| poll_read_buf(tcp, cx, buf)).await {
            Ok(0) if buf.is_empty() => return Err("the app closed the connection before it answered".into()),
            Ok(0) => return Err("the app closed the connection in the middle of its response head".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the response: {e}")),
        }
    }
}

/// A response's framing (RFC 9112 section 6.3, before the rules for
/// `HEAD`, 204 and 304) and whether its connection can be kept, from its
/// parsed head: the same rules as [`parse_response_head`], on bytes.
pub(crate) fn raw_framing(http11: bool, headers: &[httparse::Header<'_>]) -> Result<(Framing, bool), String> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut keep_alive = http11;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("the app sent a bad Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("the app sent two different Content-Lengths".into());
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if transfer_encoding {
        if chunked { Framing::Chunked } else { Framing::ToEnd }
    } else {
        length.map_or(Framing::ToEnd, Framing::Length)
    };
    Ok((framing, keep_alive))
}

/// The body of a response whose head was relayed as bytes, read from
/// `connection` as the client takes it (see [`UpstreamBody`]): the
/// connection goes back into `slot` when the body ended cleanly and
/// `reusable` holds.
pub(crate) fn streamed_body(
    connection: Connection,
    framing: Framing,
    reusable: bool,
    slot: &Slot,
    idle_timeout: Duration,
) -> impl hyper::body::Body<Data = Bytes, Error = BoxError> + Unpin + use<> {
    UpstreamBody {
        connection: Some(connection),
        state: match framing {
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::ToEnd => State::ToEnd,
        },
        reusable,
        slot: slot.clone(),
        timeout: idle_timeout,
        sleep: None,
    }
}

/// Poll a future once, without waiting.
trait NowOrNever: Future + Sized {
    fn now_or_never_frame(self) -> Option<Self::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut this = std::pin::pin!(self);
        match this.as_mut().poll(&mut cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        }
    }
}

impl<F: Future> NowOrNever for F {}

/// Write the head (and first body part) of a request; a failure before
/// any byte was taken leaves the request unsent.
async fn write_first(tcp: &mut TcpStream, out: &[u8]) -> Result<(), Failure> {
    let mut written = 0;
    while written < out.len() {
        match tcp.write(&out[written..]).await {
            Ok(0) => {
                return Err(Failure {
                    unsent: written == 0,
                    message: "the app's connection took no more bytes".into(),
                });
            }
            Ok(n) => written += n,
            Err(e) => {
                return Err(Failure {
                    unsent: written == 0,
                    message: format!("writing the request: {e}"),
                });
            }
        }
    }
    Ok(())
}

/// The request line and headers as HTTP/1.1, the target in origin form.
fn encode_head(parts: &http::request::Parts, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() { b"/" } else { target.as_bytes() });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    ToEnd,
}

struct ResponseHead {
    status: StatusCode,
    headers: http::HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Read until a whole final (non-1xx) response head is in `buf`, parse it
/// and remove it from `buf`.
async fn read_response_head(tcp: &TcpStream, buf: &mut BytesMut) -> Result<ResponseHead, Failure> {
    loop {
        if !buf.is_empty() {
            match parse_response_head(buf)? {
                Some((len, head)) => {
                    buf.advance(len);
                    match head {
                        Some(head) => return Ok(head),
                        // 1xx: skip it, the final answer follows.
                        None => continue,
                    }
                }
                None if buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(Failure::sent(format!(
                        "the app's response head is over {MAX_RESPONSE_HEAD} bytes"
                    )));
                }
                None => {}
            }
        }
        let read = std::future::poll_fn(|cx| poll_read_buf(tcp, cx, buf)).await;
        match read {
            Ok(0) => {
                return Err(Failure::sent(if buf.is_empty() {
                    "the app closed the connection before it answered"
                } else {
                    "the app closed the connection in the middle of its response head"
                }));
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::sent(format!("reading the response: {e}"))),
        }
    }
}

/// Read what the socket has into `buf` (0: the app closed its side).
pub(crate) fn poll_read_buf(tcp: &TcpStream, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<std::io::Result<usize>> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_CHUNK);
    }
    loop {
        ready!(tcp.poll_read_ready(cx))?;
        let spare = buf.capacity() - buf.len();
        let mut read = None;
        let outcome = tcp.try_io(tokio::io::Interest::READABLE, || {
            let n = tcp.try_read_buf(buf)?;
            read = Some(n);
            // A short read drained the socket: clear its readiness (the
            // event seen before the read, so a later one is not lost), as
            // tokio's own `poll_read` does; else the next read of this
            // connection is a `recvfrom` that fails with EAGAIN first.
            if n > 0 && n < spare {
                Err(std::io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match (read, outcome) {
            (Some(n), _) => return Poll::Ready(Ok(n)),
            (None, Err(e)) if e.kind() != std::io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
            (None, _) => continue,
        }
    }
}

/// Parse a response head at the start of `buf`: `None` when incomplete,
/// `Some((length, None))` for a 1xx answer to skip.
fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, Option<ResponseHead>)>, Failure> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut storage);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Failure::sent(format!("the app's response head is malformed: {e}"))),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| Failure::sent(format!("the app answered status {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Failure::sent(
            "the app switched protocols; the front does not pass upgrades",
        ));
    }
    if status.is_informational() {
        return Ok(Some((len, None)));
    }
    let http11 = parsed.version == Some(1);
    let mut headers = http::HeaderMap::with_capacity(parsed.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut keep_alive = http11;
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Failure::sent(format!("the app sent a bad header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| Failure::sent(format!("the app sent a bad value for {name}")))?;
        if name == CONTENT_LENGTH {
            let n = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| Failure::sent("the app sent a bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::sent("the app sent two different Content-Lengths"));
            }
            length = Some(n);
        } else if name == TRANSFER_ENCODING {
            transfer_encoding = true;
            chunked = value
                .as_bytes()
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONNECTION {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        headers.append(name, value);
    }
    let framing = if transfer_encoding {
        if chunked { Framing::Chunked } else { Framing::ToEnd }
    } else {
        length.map_or(Framing::ToEnd, Framing::Length)
    };
    Ok(Some((
        len,
        Some(ResponseHead {
            status,
            headers,
            framing,
            keep_alive,
        }),
    )))
}

/// Where a streamed response body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many body bytes still to come.
    Length(u64),
    /// A chunk-size line is next.
    ChunkSize,
    /// This many bytes of the current chunk still to come, then its CRLF.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// Everything until the app closes the connection.
    ToEnd,
    Done,
}

/// A response body read from the app as the client takes it. Each part
/// must arrive within the timeout, else the body fails (the client sees
/// the response cut short). Dropped before its end, it closes the
/// connection; read to its end, it puts the connection back.
struct UpstreamBody {
    connection: Option<Connection>,
    state: State,
    reusable: bool,
    slot: Slot,
    timeout: Duration,
    /// Made on the first wait only.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl UpstreamBody {
    /// The next piece of the body from what is buffered: `Ok(None)` when
    /// more bytes must be read first.
    fn decode(&mut self, eof: bool) -> Result<Option<Option<Bytes>>, BoxError> {
        let connection = self.connection.as_mut().expect("not done");
        let buf = &mut connection.buf;
        loop {
            match self.state {
                State::Done => return Ok(Some(None)),
                State::Length(0) => {
                    self.state = State::Done;
                }
                State::Length(n) => {
                    if buf.is_empty() {
                        if eof {
                            return Err("the app closed the connection in the middle of its response body".into());
                        }
                        return Ok(None);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    self.state = State::Length(n - take as u64);
                    return Ok(Some(Some(buf.split_to(take).freeze())));
                }
                State::ToEnd => {
                    if !buf.is_empty() {
                        return Ok(Some(Some(buf.split().freeze())));
                    }
                    if eof {
                        self.state = State::Done;
                        continue;
                    }
                    return Ok(None);
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        buf.advance(len);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < 1024 && !eof => return Ok(None),
                    _ => return Err("the app sent a malformed chunked body".into()),
                },
                State::ChunkData(n) => {
                    if buf.is_empty() {
                        if eof {
                            return Err("the app closed the connection in the middle of a chunk".into());
                        }
                        return Ok(None);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    self.state = if take as u64 == n {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(n - take as u64)
                    };
                    return Ok(Some(Some(buf.split_to(take).freeze())));
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        if eof {
                            return Err("the app closed the connection in the middle of a chunk".into());
                        }
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("the app sent a malformed chunked body".into());
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => match memchr::memmem::find(buf, b"\r\n") {
                    // Trailer fields are dropped (`Trailer` is hop-by-hop here).
                    Some(0) => {
                        buf.advance(2);
                        self.state = State::Done;
                    }
                    Some(i) => buf.advance(i + 2),
                    None if buf.len() < 8192 && !eof => return Ok(None),
                    None => return Err("the app sent malformed chunked trailers".into()),
                },
            }
        }
    }

    /// The body ended cleanly: keep the connection for the next request.
    fn finish(&mut self) {
        if let Some(mut connection) = self.connection.take()
            && self.reusable
            && connection.buf.is_empty()
        {
            connection.last_used = Instant::now();
            *self.slot.lock().expect("not poisoned") = Some(connection);
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.connection.is_none() {
            return Poll::Ready(None);
        }
        let mut eof = false;
        loop {
            match this.decode(eof) {
                Err(e) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(Some(Some(data))) => {
                    this.sleep = None;
                    if this.state == State::Length(0) {
                        this.state = State::Done;
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
                }
                Ok(Some(None)) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            let connection = this.connection.as_mut().expect("not done");
            match poll_read_buf(&connection.tcp, cx, &mut connection.buf) {
                Poll::Ready(Ok(0)) => eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.connection = None;
                    return Poll::Ready(Some(Err(format!("reading the response body: {e}").into())));
                }
                Poll::Pending => {
                    let timeout = this.timeout;
                    let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        this.connection = None;
                        let message = format!("the app sent no more of its response body within {timeout:?}");
                        return Poll::Ready(Some(Err(message.into())));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.connection.is_none() || self.state == State::Done
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.state {
            State::Length(n) => hyper::body::SizeHint::with_exact(n),
            _ => hyper::body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// Read one request (head and a Content-Length body) from `tcp`: the
    /// head as text, the body as bytes; `None` at the end of the connection.
    async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
        loop {
            if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0usize);
                while buf.len() < end + 4 + length {
                    let mut more = [0u8; 4096];
                    let n = tcp.read(&mut more).await.unwrap();
                    assert!(n > 0, "the body came whole");
                    buf.extend_from_slice(&more[..n]);
                }
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return Some((head, body));
            }
            let mut more = [0u8; 4096];
            match tcp.read(&mut more).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&more[..n]),
            }
        }
    }

    /// A fake app: each accepted connection answers its requests with the
    /// answers `script` gives (by request number on that connection, and
    /// the request), raw; `None` closes the connection. Returns its address
    /// and the number of connections it accepted.
    async fn fake_app(
        script: impl Fn(usize, &str, &[u8]) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let script = Arc::new(script);
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut n = 0;
                    while let Some((head, body)) = read_request(&mut tcp, &mut buf).await {
                        match script(n, &head, &body) {
                            // A leading `!`: write the rest, then close.
                            Some(answer) if answer.first() == Some(&b'!') => {
                                let _ = tcp.write_all(&answer[1..]).await;
                                return;
                            }
                            Some(answer) => {
                                if tcp.write_all(&answer).await.is_err() {
                                    return;
                                }
                            }
                            None => return,
                        }
                        n += 1;
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn connect(addr: std::net::SocketAddr) -> Result<Connection, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        Ok(Connection::new(tcp, 1))
    }

    /// One exchange on the slot's kept connection (or a new one), body collected.
    async fn roundtrip(
        addr: std::net::SocketAddr,
        slot: &Slot,
        req: Request<Body>,
    ) -> Result<(StatusCode, http::HeaderMap, Result<Bytes, String>), String> {
        let kept = slot.lock().unwrap().take().filter(Connection::is_open);
        let response = tokio::time::timeout(LIMIT, exchange(kept, || connect(addr), req, slot, LIMIT))
            .await
            .expect("an answer in time")?;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(LIMIT, body.collect())
            .await
            .expect("a body in time")
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        Ok((parts.status, parts.headers, body))
    }

    fn get(path: &str) -> Request<Body> {
        Request::builder()
            .uri(path)
            .header("host", "x")
            .body(Body::empty())
            .unwrap()
    }

    fn answer(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-app: yes\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_keep_alive_sequence_uses_one_connection() {
        let (addr, accepted) = fake_app(|n, head, _| {
            assert!(head.starts_with(&format!("GET /r{n}?q=1 HTTP/1.1\r\n")), "{head}");
            assert!(head.contains("host: x\r\n"), "{head}");
            Some(answer(&format!("answer {n}")))
        })
        .await;
        let slot = Slot::default();
        for n in 0..5 {
            let (status, headers, body) = roundtrip(addr, &slot, get(&format!("/r{n}?q=1"))).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(headers["x-app"], "yes");
            assert_eq!(body.unwrap(), format!("answer {n}"));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn request_bodies_with_a_length_reach_the_app_whole() {
        let (addr, _) = fake_app(|_, head, body| {
            assert!(head.starts_with("POST /books HTTP/1.1\r\n"), "{head}");
            Some(answer(&format!("got {}", String::from_utf8_lossy(body))))
        })
        .await;
        let slot = Slot::default();
        // One already buffered, one streamed in parts.
        let req = Request::post("/books")
            .header("content-length", "5")
            .body(Body::from("hello"))
            .unwrap();
        let (_, _, body) = roundtrip(addr, &slot, req).await.unwrap();
        assert_eq!(body.unwrap(), "got hello");
        let (tx, rx) = futures_util_channel();
        let req = Request::post("/books")
            .header("content-length", "10")
            .body(Body::from_stream(rx))
            .unwrap();
        tokio::spawn(async move {
            for part in ["abcde", "fghij"] {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(Ok::<_, std::io::Error>(Bytes::from(part))).await.unwrap();
            }
        });
        let (_, _, body) = roundtrip(addr, &slot, req).await.unwrap();
        assert_eq!(body.unwrap(), "got abcdefghij");
    }

    fn futures_util_channel() -> (
        tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
        impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (tx, stream)
    }

    #[tokio::test]
    async fn chunked_informational_and_bodiless_answers_are_framed_right() {
        let (addr, accepted) = fake_app(|n, _, _| {
            Some(match n {
                0 => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
                1 => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                2 => b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n".to_vec(),
                _ => answer("last"),
            })
        })
        .await;
        let slot = Slot::default();
        let (status, _, body) = roundtrip(addr, &slot, get("/chunked")).await.unwrap();
        assert_eq!((status, body.unwrap()), (StatusCode::OK, Bytes::from("hello world")));
        let (status, _, body) = roundtrip(addr, &slot, get("/none")).await.unwrap();
        assert_eq!((status, body.unwrap()), (StatusCode::NO_CONTENT, Bytes::new()));
        let head = Request::head("/head").body(Body::empty()).unwrap();
        let (status, headers, body) = roundtrip(addr, &slot, head).await.unwrap();
        assert_eq!((status, body.unwrap()), (StatusCode::OK, Bytes::new()));
        assert_eq!(headers["content-length"], "7");
        let (_, _, body) = roundtrip(addr, &slot, get("/last")).await.unwrap();
        assert_eq!(body.unwrap(), "last");
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "all on one connection"
        );
    }

    #[tokio::test]
    async fn an_app_that_closes_mid_response_cuts_the_body_short_and_is_not_reused() {
        let (addr, accepted) = fake_app(|n, _, _| match n {
            0 => Some(b"!HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial".to_vec()),
            _ => None,
        })
        .await;
        let slot = Slot::default();
        // The app writes part of the body, then closes.
        let (status, _, body) = roundtrip(addr, &slot, get("/a")).await.unwrap();
        assert_eq!(status, 200);
        let error = body.unwrap_err();
        assert!(error.contains("in the middle of its response body"), "{error}");
        assert!(slot.lock().unwrap().is_none(), "a cut connection is not kept");
        // The next request goes out on a new connection.
        let (_, _, body) = roundtrip(addr, &slot, get("/b")).await.unwrap();
        assert!(body.is_err());
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_app_that_closes_without_answering_is_an_error_not_a_hang() {
        let (addr, _) = fake_app(|_, _, _| None).await;
        let slot = Slot::default();
        let failed = roundtrip(addr, &slot, get("/a")).await.unwrap_err();
        assert!(failed.contains("before it answered"), "{failed}");
        assert!(slot.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_kept_connection_the_app_closed_is_replaced_before_sending() {
        let (addr, accepted) = fake_app(|_, _, _| {
            Some(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok".to_vec())
        })
        .await;
        let slot = Slot::default();
        let (_, _, body) = roundtrip(addr, &slot, get("/1")).await.unwrap();
        assert_eq!(body.unwrap(), "ok");
        // Close the kept connection from the app's side, as an app closing an
        // idle keep-alive connection does.
        let kept = slot.lock().unwrap().take().unwrap();
        let std = kept.tcp.into_std().unwrap();
        std.shutdown(std::net::Shutdown::Read).unwrap();
        let reopened = TcpStream::from_std(std).unwrap();
        *slot.lock().unwrap() = Some(Connection::new(reopened, 1));
        // Let the reactor see the end of the stream, as it does for an idle
        // connection the app closed a while ago.
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Not usable any more: is_open says so (the test helper drops it).
        let (_, _, body) = roundtrip(addr, &slot, get("/2")).await.unwrap();
        assert_eq!(body.unwrap(), "ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_kept_connection_that_fails_unsent_is_retried_once_on_a_new_one() {
        let (addr, accepted) = fake_app(|_, _, body| Some(answer(&String::from_utf8_lossy(body)))).await;
        let slot = Slot::default();
        // A "kept" connection whose writing side is already shut: the write
        // fails before any byte is taken.
        let tcp = TcpStream::connect(addr).await.unwrap();
        let std = tcp.into_std().unwrap();
        std.shutdown(std::net::Shutdown::Write).unwrap();
        let dead = Connection::new(TcpStream::from_std(std).unwrap(), 1);
        let req = Request::post("/books")
            .header("content-length", "4")
            .body(Body::from("once"))
            .unwrap();
        let response = exchange(Some(dead), || connect(addr), req, &slot, LIMIT).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "once");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_before_the_whole_body_is_passed_on_and_the_connection_dropped() {
        let (addr, _) = fake_app(|_, _, _| None).await;
        // A raw app that answers 408 after reading only the head.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let early = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            tcp.write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let _ = addr;
        let slot = Slot::default();
        let (_tx, rx) = futures_util_channel();
        let req = Request::post("/books")
            .header("content-length", "100")
            .body(Body::from_stream(rx))
            .unwrap();
        let (status, _, body) = roundtrip(early, &slot, req).await.unwrap();
        assert_eq!(
            (status, body.unwrap()),
            (StatusCode::REQUEST_TIMEOUT, Bytes::from("slow"))
        );
        assert!(slot.lock().unwrap().is_none());
    }

    #[test]
    fn heads_go_out_in_origin_form_with_the_headers_as_given() {
        let req = Request::get("http://example.com/a/b?c=d")
            .header("host", "example.com")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        encode_head(&parts, &mut out);
        assert_eq!(
            out,
            b"GET /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"
        );
    }

    #[test]
    fn bad_response_heads_are_refused() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(parse_response_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let Some((_, Some(head))) = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap() else {
            panic!("a whole head");
        };
        assert_eq!((head.framing, head.keep_alive), (Framing::ToEnd, false));
        let Some((_, Some(head))) =
            parse_response_head(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").unwrap()
        else {
            panic!("a whole head");
        };
        assert_eq!((head.framing, head.keep_alive), (Framing::Length(0), false));
    }
}
